"""Crash safety of ``unweave serve``: SIGKILL the server mid-job, restart it, check the jobs.

Round 1 submits several jobs, kills the server (SIGKILL, no clean shutdown) while one is
separating, restarts it on the same data folder and waits: every job must end done or
failed, never stay running; done jobs must serve complete stems and no partial output may
be left. Round 2 kills the server twice during the same job to check that an interrupted job
is retried once and then failed. Writes bench/results/server_fault.json.

Usage: python bench/server_fault.py [--jobs 4] [--model tiny-demucs] [--seconds 60]
"""

from __future__ import annotations

import argparse
import io
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import httpx
import soundfile as sf
from server_load import RESULTS, TERMINAL, ServerProcess, make_clip, wait_all


def submit(url: str, clip: bytes, model: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        r = httpx.post(url + "/api/jobs", data={"model": model},
                       files={"file": (f"clip{i}.wav", clip, "audio/wav")}, timeout=120)
        r.raise_for_status()
        ids.append(r.json()["id"])
    return ids


def wait_running(url: str, min_progress: float, timeout: float = 300.0) -> dict:
    """The first job seen running with at least ``min_progress``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job in httpx.get(url + "/api/jobs", timeout=10).json()["jobs"]:
            if job["status"] == "running" and job["progress"] >= min_progress:
                return job
        time.sleep(0.05)
    raise RuntimeError("no job reached the wanted progress")


def rows(data_dir: Path) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(data_dir / "unweave.db") as db:
        return {i: (s, a) for i, s, a in db.execute("SELECT id, status, attempts FROM jobs")}


def check_outputs(url: str, data_dir: Path, jobs: dict[str, dict], seconds: float) -> list[str]:
    """Problems found: unreadable or short stems of done jobs, leftovers of killed work."""
    problems = []
    for job_id, job in jobs.items():
        job_dir = data_dir / "jobs" / job_id
        leftovers = [p.name for p in job_dir.glob("work-*")] + [
            p.name for p in job_dir.rglob(".*") if p.name != "."]
        if leftovers:
            problems.append(f"{job_id}: leftovers {leftovers}")
        if job["status"] != "done":
            if list(job_dir.glob("stems/*")):
                problems.append(f"{job_id}: {job['status']} job has stems on disk")
            continue
        for stem in job["stems"]:
            content = httpx.get(url + stem["url"], timeout=60).content
            info = sf.info(io.BytesIO(content))
            if abs(info.duration - seconds) > 1e-3:
                problems.append(f"{job_id}/{stem['name']}: {info.duration:.3f} s, not {seconds}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--model", default="tiny-demucs")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each upload")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    clip = make_clip(args.seconds)
    result: dict = {"model": args.model, "clip_seconds": args.seconds, "jobs": args.jobs}
    opts = ("--workers", "1", "--queue-limit", str(args.jobs + 2), "--model", args.model)

    with tempfile.TemporaryDirectory(prefix="unweave-fault-") as tmp:
        # --- round 1: one kill mid-job, then every job must end ------------------------
        data = Path(tmp) / "round1"
        data.mkdir()
        server = ServerProcess(data, *opts).start()
        ids = submit(server.url, clip, args.model, args.jobs)
        victim = wait_running(server.url, 0.2)
        server.kill()
        before = rows(data)
        t0 = time.perf_counter()
        server = ServerProcess(data, *opts, port=server.port).start()
        restart_seconds = time.perf_counter() - t0
        try:
            jobs = wait_all(server.url, ids, args.timeout)
            problems = check_outputs(server.url, data, jobs, args.seconds)
        finally:
            server.stop()
        result["round1"] = {
            "killed_during": {"id": victim["id"], "progress": victim["progress"]},
            "rows_after_kill": {s: sum(v[0] == s for v in before.values())
                                for s in ("queued", "running", "done")},
            "restart_seconds": round(restart_seconds, 2),
            "final": {i: {"status": j["status"], "attempts": j["attempts"]}
                      for i, j in jobs.items()},
            "all_terminal": all(j["status"] in TERMINAL for j in jobs.values()),
            "victim_status": jobs[victim["id"]]["status"],
            "problems": problems,
        }

        # --- round 2: the same job killed twice -> retried once, then failed -----------
        data = Path(tmp) / "round2"
        data.mkdir()
        server = ServerProcess(data, *opts).start()
        (job_id,) = submit(server.url, clip, args.model, 1)
        for _ in range(2):
            wait_running(server.url, 0.1)
            server.kill()
            server = ServerProcess(data, *opts, port=server.port).start()
        try:
            job = wait_all(server.url, [job_id], args.timeout)[job_id]
        finally:
            server.stop()
        result["round2"] = {"status": job["status"], "attempts": job["attempts"],
                            "error": job["error"]}  # fmt: skip

    r1, r2 = result["round1"], result["round2"]
    result["ok"] = bool(r1["all_terminal"] and not r1["problems"]
                        and r1["victim_status"] == "done" and r2["status"] == "failed")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "server_fault.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
