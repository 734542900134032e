"""HTTP API of ``unweave serve``, in-process (FastAPI TestClient), tiny models, synthetic audio.

Most tests inject a fake separator (fast, controllable: blocks, fails, ...); the end-to-end
tests run the real ``Separator`` with the untrained ``tiny-conv_tasnet``.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")
from fastapi.testclient import TestClient

from unweave.errors import AudioReadError
from unweave.server import Settings, create_app
from unweave.server.store import RUNNING, Job

SR = 16000
TERMINAL = {"done", "failed", "cancelled"}


def wav_bytes(seconds: float = 1.0, sample_rate: int = SR, channels: int = 2) -> bytes:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t)[:, None] + 0.05 * rng.standard_normal((t.size, channels))
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def fake_separate(model, path, out_dir, options, progress):
    """'low' = 0.25 * mix and 'high' = 0.75 * mix (or 0.5 * mix per requested stem)."""
    mix, sr = sf.read(path, dtype="float32", always_2d=True)
    fmt = options.get("format", "wav")
    plan = {n: 0.5 for n in options.get("stems") or ()} or {"low": 0.25, "high": 0.75}
    out = {}
    for i, (name, gain) in enumerate(plan.items()):
        progress(i / len(plan), "separating")
        out[name] = Path(out_dir) / f"{name}.{fmt}"
        sf.write(out[name], mix * gain, sr, format=fmt.upper())
    return out


class Gate:
    """A separator that reports progress until released (or cancelled through progress)."""

    def __init__(self) -> None:
        self.release, self.started = threading.Event(), threading.Event()

    def __call__(self, model, path, out_dir, options, progress):
        self.started.set()
        while not self.release.wait(0.01):
            progress(0.5, "separating")
        return fake_separate(model, path, out_dir, options, progress)


def make_client(tmp_path: Path, **kw) -> TestClient:
    kw.setdefault("separate_fn", fake_separate)
    kw.setdefault("models", ("tiny-conv_tasnet", "tiny-demucs"))
    return TestClient(create_app(Settings(data_dir=tmp_path / "data", **kw)))


def submit(client, data: bytes | None = None, name="clip.wav", **fields):
    fields.setdefault("model", "tiny-conv_tasnet")
    return client.post("/api/jobs", files={"file": (name, data or wav_bytes(), "audio/wav")},
                       data=fields)


def wait(client, job_id: str, statuses=TERMINAL, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


def read_wav(content: bytes) -> np.ndarray:
    data, _ = sf.read(io.BytesIO(content), dtype="float64", always_2d=True)
    return data


# --- end to end with the real separator --------------------------------------------------
@pytest.fixture(scope="module")
def done_job(tmp_path_factory):
    """One real separation (tiny-conv_tasnet), shared by the read-only tests below."""
    from unweave.pretrained.catalog import catalog_entries

    tmp = tmp_path_factory.mktemp("server")
    offered = (*catalog_entries(), "tiny-conv_tasnet", "tiny-demucs")  # tiny ones by name
    with TestClient(create_app(Settings(data_dir=tmp / "data", models=offered))) as client:
        r = submit(client, wav_bytes(1.5))
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "queued"
        job = wait(client, r.json()["id"])
        assert job["status"] == "done", job
        yield client, job


def test_upload_separate_download(done_job):
    client, job = done_job
    assert job["progress"] == 1.0 and job["error"] is None
    assert [s["name"] for s in job["stems"]]
    for stem in job["stems"]:
        r = client.get(stem["url"])
        assert r.status_code == 200
        assert r.headers["content-type"] == "audio/wav" == stem["content_type"]
        audio = read_wav(r.content)
        assert audio.shape[0] == int(1.5 * SR)  # stems keep the input's rate and length


def test_remix_is_gain_weighted_sum(done_job):
    client, job = done_job
    names = [s["name"] for s in job["stems"]]
    gains = {name: 0.5 + i for i, name in enumerate(names)}
    r = client.post(f"/api/jobs/{job['id']}/remix", json={"gains": gains})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    expected = sum(g * read_wav(client.get(f"/api/jobs/{job['id']}/stems/{n}").content)
                   for n, g in gains.items())
    np.testing.assert_allclose(read_wav(r.content), expected, atol=1e-6)


def test_zip_contains_every_stem(done_job):
    client, job = done_job
    r = client.get(f"/api/jobs/{job['id']}/stems.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        names = sorted(Path(n).stem for n in zf.namelist())
        assert names == sorted(s["name"] for s in job["stems"])


def test_peaks_and_events(done_job):
    client, job = done_job
    peaks = client.get(f"/api/jobs/{job['id']}/peaks").json()
    assert set(peaks["stems"]) == {s["name"] for s in job["stems"]}
    assert all(len(v) == peaks["bins"] and max(v) >= 0 for v in peaks["stems"].values())
    assert peaks["duration_seconds"] == pytest.approx(1.5)
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    assert "event: end" in text and '"status":"done"' in text


def test_models_listing(done_job):
    client, _ = done_job
    data = client.get("/api/models").json()
    tiny = {m["name"]: m for m in data["models"]}["tiny-conv_tasnet"]
    assert tiny["trained"] is False and tiny["sources"] and tiny["description"]
    assert "wav" in data["formats"]
    # each task's catalog default is marked, and the music one is preselected on the page
    from unweave.pretrained.catalog import default_model
    marked = {m["task"]: m["name"] for m in data["models"] if m["default"]}
    assert marked == {t: default_model(t) for t in ("music", "vocals", "soundtrack", "speech")}
    assert data["default"] == default_model("music")


def test_models_listing_offers_only_trained_models_by_default(tmp_path):
    from unweave.pretrained.catalog import catalog_entries

    data = make_client(tmp_path, models=None).get("/api/models").json()
    names = [m["name"] for m in data["models"]]
    assert names == list(catalog_entries())  # no untrained tiny-* test models
    assert all(m["trained"] for m in data["models"])


def mp4_bytes(seconds: float = 1.0, sample_rate: int = 44100) -> bytes:
    """A small video file: an MPEG-4 picture track plus an AAC stereo audio track."""
    av = pytest.importorskip("av")
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as box:
        video = box.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = box.add_stream("aac", rate=sample_rate)
        audio.layout = "stereo"
        for i in range(int(seconds * 10)):
            picture = np.full((48, 64, 3), 20 * i % 255, np.uint8)
            box.mux(video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for i in range(0, tone.size, 1024):
            block = np.repeat(tone[None, i : i + 1024], 2, 0).reshape(1, -1)  # interleaved
            frame = av.AudioFrame.from_ndarray(block, format="flt", layout="stereo")
            frame.sample_rate = sample_rate
            box.mux(audio.encode(frame))
        box.mux(video.encode())
        box.mux(audio.encode())
    return buf.getvalue()


def test_video_upload_to_flac_stems(done_job):
    client, _ = done_job
    r = submit(client, mp4_bytes(), name="movie.mp4", model="tiny-demucs", format="flac")
    assert r.status_code == 202, r.text
    job = wait(client, r.json()["id"])
    assert job["status"] == "done", job
    assert job["duration_seconds"] == pytest.approx(1.0, abs=0.1)
    stem = job["stems"][0]
    r = client.get(stem["url"])
    assert r.headers["content-type"] == "audio/flac" == stem["content_type"]
    assert sf.info(io.BytesIO(r.content)).format == "FLAC"


# --- errors --------------------------------------------------------------------------------
def test_errors_are_json(tmp_path):
    with make_client(tmp_path, max_upload_mb=0.05, max_duration_seconds=2.0) as client:
        missing = "0f8fad5b-d9cb-469f-a165-70867728950e"
        assert client.get(f"/api/jobs/{missing}").status_code == 404
        r = client.get("/api/jobs/not-a-uuid")
        assert r.status_code == 400 and "job id" in r.json()["detail"]
        assert client.get("/api/jobs/..%2F..%2Fetc/stems/x").status_code in (400, 404)
        r = submit(client, b"this is text, not audio\n" * 50, name="notes.wav")
        assert r.status_code == 415 and "notes.wav" in r.json()["detail"]
        assert str(tmp_path) not in r.json()["detail"]  # no server paths leak
        r = submit(client, wav_bytes(1.0, channels=2))  # ~64 KB > 0.05 MiB
        assert r.status_code == 413, r.text
        r = submit(client, wav_bytes(3.0, sample_rate=4000, channels=1))  # small but 3 s long
        assert r.status_code == 413 and "longer" in r.json()["detail"]
        assert submit(client, wav_bytes(0.5), model="nope").status_code == 422
        assert submit(client, wav_bytes(0.5), shifts="many").status_code == 422
        assert submit(client, wav_bytes(0.5), format="exe").status_code == 422
        assert submit(client, wav_bytes(0.5), options="{bad json").status_code == 422
        r = client.post("/api/jobs", content=b"raw", headers={"content-type": "text/plain"})
        assert r.status_code == 400
        r = client.post("/api/jobs", data={"model": "tiny-demucs"},
                        files={"other": ("x.txt", b"x")})
        assert r.status_code == 400
        assert not list((tmp_path / "data" / "uploads").iterdir())  # rejected uploads removed


def test_queue_full_gives_429(tmp_path):
    gate = Gate()
    with make_client(tmp_path, workers=1, queue_limit=1, separate_fn=gate) as client:
        first = submit(client).json()["id"]
        assert gate.started.wait(10)
        second = submit(client)
        assert second.status_code == 202
        third = submit(client)
        assert third.status_code == 429 and "queue" in third.json()["detail"]
        gate.release.set()
        assert wait(client, first)["status"] == "done"
        assert wait(client, second.json()["id"])["status"] == "done"


def test_stems_hidden_until_done_and_cancel(tmp_path):
    gate = Gate()
    with make_client(tmp_path, workers=1, separate_fn=gate) as client:
        running = submit(client).json()["id"]
        queued = submit(client).json()["id"]
        assert gate.started.wait(10)
        job = wait(client, running, {"running"})
        assert job["stems"] == [] and job["progress"] < 1
        assert client.get(f"/api/jobs/{running}/stems/low").status_code == 409
        r = client.post(f"/api/jobs/{queued}/cancel")
        assert r.json()["status"] == "cancelled"
        r = client.post(f"/api/jobs/{running}/cancel")
        assert r.status_code == 200
        job = wait(client, running)
        assert job["status"] == "cancelled" and job["stems"] == []
        jobs_dir = tmp_path / "data" / "jobs" / running
        assert not any(jobs_dir.rglob("*.wav"))  # half-made output removed
        assert not list((tmp_path / "data" / "uploads").iterdir())


def test_delete_removes_files(tmp_path):
    with make_client(tmp_path) as client:
        job_id = submit(client, format="flac").json()["id"]
        job = wait(client, job_id)
        assert job["status"] == "done"
        r = client.get(f"/api/jobs/{job_id}/stems/high")
        assert r.headers["content-type"] == "audio/flac"
        assert client.get(f"/api/jobs/{job_id}/stems/vocals").status_code == 404
        assert (tmp_path / "data" / "jobs" / job_id).is_dir()
        assert client.delete(f"/api/jobs/{job_id}").status_code == 204
        assert not (tmp_path / "data" / "jobs" / job_id).exists()
        assert client.get(f"/api/jobs/{job_id}").status_code == 404
        assert client.get("/api/jobs").json()["jobs"] == []


def test_stem_choice_and_remix_validation(tmp_path):
    with make_client(tmp_path) as client:
        sources = {m["name"]: m for m in client.get("/api/models").json()["models"]}
        first = sources["tiny-conv_tasnet"]["sources"][0]
        job_id = submit(client, options=json.dumps({"stems": [first]})).json()["id"]
        job = wait(client, job_id)
        assert job["options"]["stems"] == [first]
        assert submit(client, stems="nonexistent").status_code == 422
        r = client.post(f"/api/jobs/{job_id}/remix", json={"gains": {"nonexistent": 1}})
        assert r.status_code == 422
        r = client.post(f"/api/jobs/{job_id}/remix", json={"gains": {"low": -1}})
        assert r.status_code == 422


def test_failed_separation_reports_error(tmp_path):
    def broken(model, path, out_dir, options, progress):
        raise AudioReadError(f"{path}: truncated data")

    def crashing(model, path, out_dir, options, progress):
        (Path(out_dir) / "low.wav").write_bytes(b"partial")
        raise RuntimeError("out of memory")

    with make_client(tmp_path, separate_fn=broken) as client:
        job = wait(client, submit(client, name="song.wav").json()["id"])
        assert job["status"] == "failed"
        assert job["error"] == "song.wav: truncated data"
    with make_client(tmp_path, separate_fn=crashing) as client:
        job = wait(client, submit(client).json()["id"])
        assert job["status"] == "failed" and "RuntimeError" in job["error"]
        assert not list((tmp_path / "data" / "jobs").rglob("*.wav"))
        assert not list((tmp_path / "data" / "uploads").iterdir())


def test_token_required(tmp_path):
    with make_client(tmp_path, token="s3cret") as client:
        assert client.get("/").status_code == 200  # the page itself asks for the token
        r = client.get("/api/jobs")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert client.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        r = client.post("/api/jobs", headers=auth, data={"model": "tiny-demucs"},
                        files={"file": ("a.wav", wav_bytes(), "audio/wav")})
        assert r.status_code == 202
        job_id = r.json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/api/jobs/{job_id}?token=s3cret").json()["status"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert client.get(f"/api/jobs/{job_id}/stems/low?token=s3cret").status_code == 200
        assert client.get(f"/api/jobs/{job_id}/stems/low").status_code == 401


def test_restart_recovers_interrupted_jobs(tmp_path):
    """A row left 'running' by a crash is retried once, then failed; never left running."""
    settings = Settings(data_dir=tmp_path / "data", separate_fn=fake_separate,
                        models=("tiny-conv_tasnet",))
    crashed = create_app(settings)  # never started: as if killed
    store, files = crashed.state.jobs.store, crashed.state.jobs.files
    for job_id, attempts in (("8c5f1a2e-2b7f-4e11-9a0e-1f0c9a6b7d01", 1),
                             ("8c5f1a2e-2b7f-4e11-9a0e-1f0c9a6b7d02", 2)):
        files.upload(f"{job_id}.wav").write_bytes(wav_bytes())
        (files.work_dir(job_id, attempts)).mkdir(parents=True)
        (files.work_dir(job_id, attempts) / "low.wav").write_bytes(b"half written")
        store.insert(Job(id=job_id, model="tiny-conv_tasnet", filename="a.wav",
                         upload=f"{job_id}.wav", status=RUNNING, attempts=attempts,
                         options={"format": "wav"}))
    files.upload("0f8fad5b-d9cb-469f-a165-70867728950e.part").write_bytes(b"cut upload")
    with TestClient(create_app(settings)) as client:
        retried = wait(client, "8c5f1a2e-2b7f-4e11-9a0e-1f0c9a6b7d01")
        assert retried["status"] == "done" and retried["attempts"] == 2
        gave_up = client.get("/api/jobs/8c5f1a2e-2b7f-4e11-9a0e-1f0c9a6b7d02").json()
        assert gave_up["status"] == "failed" and "stopped" in gave_up["error"]
        assert not list((tmp_path / "data" / "uploads").iterdir())  # orphan + used uploads gone
        assert not list((tmp_path / "data" / "jobs").rglob("work-*"))


def test_shutdown_requeues_running_job(tmp_path):
    gate = Gate()
    settings = {"separate_fn": gate}
    with make_client(tmp_path, **settings) as client:
        job_id = submit(client).json()["id"]
        wait(client, job_id, {"running"})
    gate.release.set()
    with make_client(tmp_path, **settings) as client:
        job = wait(client, job_id)
        assert job["status"] == "done" and job["attempts"] == 1  # a clean stop costs no attempt


def test_expiry_deletes_old_jobs(tmp_path):
    with make_client(tmp_path, expire_hours=1.0) as client:
        old = wait(client, submit(client).json()["id"])["id"]
        jobs = client.app.state.jobs
        assert jobs.cleanup_expired(now=time.time() + 1800) == []
        assert jobs.cleanup_expired(now=time.time() + 3601) == [old]
        assert client.get(f"/api/jobs/{old}").status_code == 404
        assert not (tmp_path / "data" / "jobs" / old).exists()


def test_page_and_openapi(tmp_path):
    with make_client(tmp_path) as client:
        page = client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        for asset in ("app.js", "player.js", "app.css"):
            assert f"/static/{asset}" in page.text
            assert client.get(f"/static/{asset}").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
        for path in ("/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/events",
                     "/api/jobs/{job_id}/stems/{stem}", "/api/jobs/{job_id}/stems.zip",
                     "/api/jobs/{job_id}/peaks", "/api/jobs/{job_id}/remix",
                     "/api/jobs/{job_id}/cancel", "/api/models"):
            assert path in paths
