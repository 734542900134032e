"""``create_app(settings)``: the FastAPI application (HTTP API + the static web page).

No module-level state: the job manager, the model list and the settings live on
``app.state``. The lifespan starts the workers (recovering interrupted jobs first), runs the
expiry task, and on shutdown sends running jobs back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import importlib
import logging
import threading
from importlib import resources
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from .jobs import JobManager
from .settings import Settings

log = logging.getLogger("unweave.server")


def static_dir() -> Path:
    return Path(str(resources.files("unweave.server") / "static"))


def _require_token(request: Request) -> None:
    """Dependency of every /api route: checks the optional API token."""
    token = request.app.state.settings.token
    if not token:
        return
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else None
    given = given or request.query_params.get("token")
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            401, "a valid API token is required (Authorization: Bearer TOKEN or ?token=TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )  # fmt: skip


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


async def _expiry_loop(jobs: JobManager, interval: float) -> None:
    while True:
        try:
            await jobs.run(jobs.cleanup_expired)
        except Exception:  # keep the loop alive; the next round retries
            log.exception("expiry cleanup failed")
        await asyncio.sleep(interval)


async def _warm_up(app: FastAPI) -> None:
    """Import the audio stack and list the models in the background right after startup,
    so the first uploads do not each wait for torch to load."""
    from .routes import load_models

    try:
        await load_models(app)
        await app.state.jobs.run(importlib.import_module, "unweave.server.media")
    except Exception:  # the first request retries and reports the error
        log.exception("listing the models failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (defaults: ``Settings()``)."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        jobs: JobManager = app.state.jobs
        jobs.start()  # quick (rows and folders); nothing is served before it returns
        tasks = [asyncio.create_task(_expiry_loop(jobs, settings.cleanup_interval_seconds)),
                 asyncio.create_task(_warm_up(app))]  # fmt: skip
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            jobs.stop()  # joins the worker and I/O threads

    app = FastAPI(
        title="unweave",
        version=__version__,
        description="Separate recordings into stems: upload a file, follow the job, download, "
        "listen to and remix the stems.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.jobs = JobManager(settings)
    app.state.models = None  # filled at startup or first use (building the list imports torch)
    app.state.models_lock = threading.Lock()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, 422)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(jsonable_encoder({"detail": "internal server error"}), 500)

    from .routes import build_router  # routes import pydantic models; keep create_app cheap

    app.include_router(build_router(), prefix="/api", dependencies=[Depends(_require_token)])

    page = static_dir()
    app.mount("/static", StaticFiles(directory=page), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(page / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", include_in_schema=False)
    async def health() -> dict:
        return {"status": "ok", "version": __version__}

    return app
