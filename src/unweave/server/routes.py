"""The ``/api`` routes. Handlers stay thin: validation here, work in ``JobManager``/``media``.

Every blocking call (probing, zipping, rendering, model listing) runs in a thread, so the
event loop keeps serving progress streams while files are processed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from ..errors import UnweaveError
from .files import clean_filename, content_type, new_job_id, parse_job_id, upload_suffix
from .jobs import JobManager
from .options import parse_options
from .schemas import (
    ErrorResponse,
    JobCreated,
    JobInfo,
    JobList,
    ModelInfo,
    ModelList,
    Peaks,
    RemixRequest,
    StemInfo,
)
from .store import DONE, Job
from .upload import UploadError, receive_upload

SSE_POLL_SECONDS = 0.25
SSE_KEEPALIVE_SECONDS = 15.0
FORMATS = ["wav", "flac", "mp3"]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 413, 415, 422, 429)
}


def _media(name: str, *args: Any) -> Any:
    """Call ``media.<name>(*args)``: run it in a worker thread. ``media`` imports torch and the
    decoders, so it is imported there on first use (the startup warm-up imports it early)."""
    from . import media

    return getattr(media, name)(*args)


def _jobs(request: Request) -> JobManager:
    return request.app.state.jobs


def _job_or_404(request: Request, job_id: str) -> Job:
    canonical = parse_job_id(job_id)
    if canonical is None:
        raise HTTPException(400, f"malformed job id {job_id[:64]!r} (expected a uuid4)")
    job = _jobs(request).store.get(canonical)
    if job is None:
        raise HTTPException(404, f"no job {canonical}")
    return job


def _done_or_409(job: Job) -> Job:
    if job.status != DONE:
        raise HTTPException(409, f"job {job.id} is {job.status}, not done")
    return job


def job_info(job: Job) -> JobInfo:
    stems = [
        StemInfo(name=n, url=f"/api/jobs/{job.id}/stems/{n}", content_type=content_type(rel))
        for n, rel in job.stems.items()
    ]
    return JobInfo(
        id=job.id, status=job.status, model=job.model, filename=job.filename,
        options=job.options, created_at=job.created_at, started_at=job.started_at,
        finished_at=job.finished_at, progress=job.progress, stage=job.stage,
        eta_seconds=job.eta_seconds, error=job.error, stems=stems, attempts=job.attempts,
        duration_seconds=job.duration_seconds,
    )  # fmt: skip


def _list_models_once(state) -> list[dict]:
    with state.models_lock:  # a threading.Lock: concurrent first requests list once
        if state.models is None:
            from ..pretrained.catalog import list_models

            allowed = state.settings.models  # None: the trained models; tiny ones only by name
            rows = list_models(include_tiny=allowed is not None)
            state.models = [r for r in rows if allowed is None or r["name"] in allowed]
    return state.models


async def load_models(app) -> list[dict]:
    """The offered models (catalog rows), listed once per app, in a thread."""
    if app.state.models is not None:
        return app.state.models
    return await app.state.jobs.run(_list_models_once, app.state)


async def _models(request: Request) -> list[dict]:
    return await load_models(request.app)


def _default_model(settings, models: list[dict]) -> str | None:
    if settings.default_model:
        return settings.default_model
    # the catalog's default for music, else any task's default, else the first trained model
    marked = [m for m in models if m.get("default")]
    chosen = ([m for m in marked if m["task"] == "music"] or marked
              or [m for m in models if m.get("trained")] or models)
    return chosen[0]["name"] if chosen else None


def _stem_base(job: Job) -> str:
    stem = Path(job.filename).stem
    return "".join(ch if ch.isalnum() or ch in "-_ " else "_" for ch in stem).strip() or "stems"


def build_router() -> APIRouter:
    api = APIRouter(responses=ERRORS)

    @api.get("/models", response_model=ModelList, summary="Models that can be chosen")
    async def list_models(request: Request) -> ModelList:
        models = await _models(request)
        settings = request.app.state.settings
        infos = [ModelInfo(**{k: m[k] for k in ModelInfo.model_fields if k in m}) for m in models]
        return ModelList(models=infos, default=_default_model(settings, models), formats=FORMATS,
                         max_upload_mb=settings.max_upload_mb,
                         max_duration_seconds=settings.max_duration_seconds)  # fmt: skip

    @api.post(
        "/jobs", response_model=JobCreated, status_code=202, summary="Upload a file to separate",
        openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {
            "schema": {"type": "object", "required": ["file"], "properties": {
                "file": {"type": "string", "format": "binary",
                         "description": "Audio or video file (any length)."},
                "model": {"type": "string", "description": "Model name (GET /api/models)."},
                "shifts": {"type": "integer", "minimum": 0, "maximum": 10},
                "stems": {"type": "string", "description": "Comma-separated stems to keep."},
                "format": {"type": "string", "enum": FORMATS},
                "options": {"type": "string", "description": "JSON object with the above."},
            }}}}}},
    )  # fmt: skip
    async def create_job(request: Request) -> JobCreated:
        jobs, settings = _jobs(request), request.app.state.settings
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes + 2**20:
            raise HTTPException(413, f"upload is larger than the limit of "
                                     f"{settings.max_upload_mb:g} MiB")  # fmt: skip
        if not jobs.reserve_slot():  # before the body is read: a full queue answers at once
            raise HTTPException(429, "the queue is full; try again in a few minutes")
        try:
            job = await _receive_job(request, jobs, settings)
            if not jobs.enqueue(job):
                jobs.files.upload(job.upload).unlink(missing_ok=True)
                raise HTTPException(429, "the queue is full; try again in a few minutes")
        finally:
            jobs.release_slot()
        return JobCreated(id=job.id, status=job.status)

    async def _receive_job(request: Request, jobs: JobManager, settings) -> Job:
        job_id = new_job_id()
        part = jobs.files.upload(f"{job_id}.part")
        try:
            form = await receive_upload(request.stream(), request.headers.get("content-type"),
                                        part, settings.max_upload_bytes)  # fmt: skip
        except UploadError as exc:
            raise HTTPException(exc.status, exc.detail) from None
        try:
            return await _new_job(request, job_id, form, part)
        except BaseException:
            part.unlink(missing_ok=True)
            raise

    async def _new_job(request: Request, job_id: str, form, part: Path) -> Job:
        settings = request.app.state.settings
        models = {m["name"]: m for m in await _models(request)}
        model_name = form.fields.get("model") or _default_model(settings, list(models.values()))
        if model_name not in models:
            raise HTTPException(422, f"unknown model {model_name!r} "
                                     f"(GET /api/models lists {len(models)})")  # fmt: skip
        try:
            options = parse_options(form.fields, models[model_name]["sources"], FORMATS)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        filename = clean_filename(form.filename)
        upload = _jobs(request).files.upload(f"{job_id}{upload_suffix(filename)}")
        part.rename(upload)
        try:
            duration = await _jobs(request).run(_media, "probe", upload)
        except UnweaveError as exc:
            upload.unlink(missing_ok=True)
            message = str(exc).replace(str(upload), filename)
            raise HTTPException(415, f"not a readable audio or video file: {message}") from None
        except BaseException:
            upload.unlink(missing_ok=True)
            raise
        if duration > settings.max_duration_seconds:
            upload.unlink(missing_ok=True)
            raise HTTPException(413, f"{filename}: {duration:.0f} s is longer than the limit of "
                                     f"{settings.max_duration_seconds:g} s")  # fmt: skip
        return Job(id=job_id, model=model_name, filename=filename, upload=upload.name,
                   options=options, created_at=time.time(), duration_seconds=duration)

    @api.get("/jobs", response_model=JobList, summary="Recent jobs, newest first")
    async def recent_jobs(request: Request, limit: int = 50) -> JobList:
        limit = min(max(limit, 1), 500)
        return JobList(jobs=[job_info(j) for j in _jobs(request).store.recent(limit)])

    @api.get("/jobs/{job_id}", response_model=JobInfo, summary="Status of one job")
    async def get_job(request: Request, job_id: str) -> JobInfo:
        return job_info(_job_or_404(request, job_id))

    @api.get("/jobs/{job_id}/events", summary="Server-sent events: progress until the end",
             response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}}})  # fmt: skip
    async def job_events(request: Request, job_id: str) -> StreamingResponse:
        job_id = _job_or_404(request, job_id).id
        store = _jobs(request).store

        async def stream():
            yield "retry: 2000\n\n"
            last, last_sent = None, time.monotonic()
            while True:
                job = store.get(job_id)
                if job is None:
                    yield 'event: gone\ndata: {"detail": "job deleted"}\n\n'
                    return
                payload = job_info(job).model_dump_json()
                if payload != last:
                    yield f"event: progress\ndata: {payload}\n\n"
                    last, last_sent = payload, time.monotonic()
                elif time.monotonic() - last_sent > SSE_KEEPALIVE_SECONDS:
                    yield ": keep-alive\n\n"
                    last_sent = time.monotonic()
                if job.terminal:
                    yield f"event: end\ndata: {payload}\n\n"
                    return
                if await request.is_disconnected():
                    return
                await asyncio.sleep(SSE_POLL_SECONDS)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @api.get("/jobs/{job_id}/stems/{stem}", summary="Download one stem",
             response_class=FileResponse,
             responses={200: {"content": {"audio/wav": {}, "audio/flac": {}, "audio/mpeg": {}}}})
    async def get_stem(request: Request, job_id: str, stem: str) -> FileResponse:
        job = _done_or_409(_job_or_404(request, job_id))
        if stem not in job.stems:  # the only stem names that exist are the job's own
            raise HTTPException(404, f"job {job.id} has no stem {stem[:64]!r} "
                                     f"(stems: {', '.join(job.stems)})")  # fmt: skip
        path = _jobs(request).files.stem(job.id, job.stems[stem])
        return FileResponse(path, media_type=content_type(path),
                            filename=f"{_stem_base(job)} - {stem}{path.suffix}")  # fmt: skip

    @api.get("/jobs/{job_id}/stems.zip", summary="Download every stem as a zip",
             response_class=FileResponse, responses={200: {"content": {"application/zip": {}}}})
    async def get_zip(request: Request, job_id: str) -> FileResponse:
        job = _done_or_409(_job_or_404(request, job_id))
        jobs = _jobs(request)
        dest = jobs.files.job_dir(job.id) / "stems.zip"
        await jobs.run(_media, "build_zip", jobs.stem_paths(job), _stem_base(job), dest)
        return FileResponse(dest, media_type="application/zip",
                            filename=f"{_stem_base(job)} - stems.zip")  # fmt: skip

    @api.get("/jobs/{job_id}/peaks", response_model=Peaks, summary="Waveform peaks per stem")
    async def get_peaks(request: Request, job_id: str) -> Response:
        job = _done_or_409(_job_or_404(request, job_id))
        jobs = _jobs(request)
        path = jobs.files.peaks(job.id)
        if not path.is_file():
            await jobs.run(_media, "write_peaks", jobs.stem_paths(job), jobs.settings.peaks_bins, path)
        return Response(path.read_bytes(), media_type="application/json")

    @api.post("/jobs/{job_id}/remix", summary="Render the stems mixed at the given gains",
              response_class=FileResponse, responses={200: {"content": {"audio/wav": {}}}})
    async def remix(request: Request, job_id: str, body: RemixRequest) -> FileResponse:
        job = _done_or_409(_job_or_404(request, job_id))
        unknown = [s for s in body.gains if s not in job.stems]
        if unknown:
            raise HTTPException(422, f"unknown stem(s) {', '.join(map(repr, unknown))} "
                                     f"(stems: {', '.join(job.stems)})")  # fmt: skip
        jobs = _jobs(request)
        dest = jobs.files.job_dir(job.id) / f".remix-{new_job_id()}.wav"
        try:
            await jobs.run(_media, "render_remix", jobs.stem_paths(job), body.gains, dest)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        return FileResponse(dest, media_type="audio/wav",
                            filename=f"{_stem_base(job)} - remix.wav",
                            background=BackgroundTask(dest.unlink, missing_ok=True))

    @api.post("/jobs/{job_id}/cancel", response_model=JobInfo, summary="Cancel a job")
    async def cancel(request: Request, job_id: str) -> JobInfo:
        job = _job_or_404(request, job_id)
        return job_info(_jobs(request).cancel(job.id) or job)

    @api.delete("/jobs/{job_id}", status_code=204, summary="Delete a job and its files")
    async def delete(request: Request, job_id: str) -> Response:
        job = _job_or_404(request, job_id)
        await _jobs(request).run(_jobs(request).delete, job.id)
        return Response(status_code=204)

    return api

