"""Load on ``unweave serve``: many parallel uploads against a bounded queue.

Starts the server as a subprocess (tiny model, few workers, small queue), fires N uploads at
once, and reports how many were accepted (202) or refused (429), the server's peak RSS, the
latency of a status request while the workers are busy (the event loop must stay free), and
that every accepted job finishes. Writes bench/results/server_load.json.

Usage: python bench/server_load.py [--uploads 50] [--workers 2] [--queue-limit 10]
                                   [--model tiny-conv_tasnet] [--seconds 10]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

RESULTS = Path(__file__).parent / "results"
TERMINAL = {"done", "failed", "cancelled"}


def make_clip(seconds: float, sample_rate: int = 44100) -> bytes:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = 0.3 * np.sin(2 * np.pi * 110 * t)[:, None] + 0.05 * rng.standard_normal((t.size, 2))
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m unweave serve`` in a subprocess; ``url`` once it answers /healthz."""

    def __init__(self, data_dir: Path, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir, self.args = data_dir, args
        self.proc: subprocess.Popen | None = None
        self.rss_samples: list[float] = []

    def start(self, timeout: float = 120.0) -> ServerProcess:
        cmd = [sys.executable, "-m", "unweave", "serve", "--port", str(self.port),
               "--data-dir", str(self.data_dir), "--log-level", "warning", *self.args]
        log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} (see {log.name})")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start in time")

    def peak_rss_mib(self) -> float:
        """Peak resident set size of the server process (VmHWM), MiB."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_all(url: str, ids: list[str], timeout: float) -> dict[str, dict]:
    deadline, jobs = time.monotonic() + timeout, {}
    with httpx.Client(base_url=url, timeout=10) as client:
        while time.monotonic() < deadline:
            jobs = {i: client.get(f"/api/jobs/{i}").json() for i in ids}
            if all(j["status"] in TERMINAL for j in jobs.values()):
                break
            time.sleep(0.5)
    return jobs


def _p50(seconds: list[float]) -> float | None:
    return round(float(np.median(seconds)) * 1000, 1) if seconds else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queue-limit", type=int, default=10)
    parser.add_argument("--model", default="tiny-conv_tasnet")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each upload")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()

    clip = make_clip(args.seconds)
    with tempfile.TemporaryDirectory(prefix="unweave-load-") as tmp:
        server = ServerProcess(Path(tmp) / "data", "--workers", str(args.workers),
                               "--queue-limit", str(args.queue_limit), "--model", args.model)
        (Path(tmp) / "data").mkdir()
        server.start()
        try:
            def upload(i: int) -> tuple[int, str | None, float]:
                t0 = time.perf_counter()
                r = httpx.post(server.url + "/api/jobs", data={"model": args.model},
                               files={"file": (f"clip{i}.wav", clip, "audio/wav")}, timeout=120)
                body = r.json()
                return r.status_code, body.get("id"), time.perf_counter() - t0

            started = time.perf_counter()
            with ThreadPoolExecutor(args.uploads) as pool:
                results = list(pool.map(upload, range(args.uploads)))
            upload_wall = time.perf_counter() - started
            codes = [c for c, _, _ in results]
            accepted = [i for c, i, _ in results if c == 202]

            # the event loop stays responsive while workers separate
            latencies, stop = [], threading.Event()

            def probe() -> None:
                with httpx.Client(base_url=server.url, timeout=10) as client:
                    while not stop.is_set():
                        t0 = time.perf_counter()
                        client.get("/api/jobs?limit=20")
                        latencies.append(time.perf_counter() - t0)
                        time.sleep(0.05)

            prober = threading.Thread(target=probe)
            prober.start()
            jobs = wait_all(server.url, accepted, args.timeout)
            stop.set()
            prober.join()
            total_wall = time.perf_counter() - started
            peak_rss = server.peak_rss_mib()
        finally:
            server.stop()

    statuses = [j["status"] for j in jobs.values()]
    lat = np.array(latencies) * 1000
    result = {
        "uploads": args.uploads, "workers": args.workers, "queue_limit": args.queue_limit,
        "model": args.model, "clip_seconds": args.seconds, "clip_mib": len(clip) / 2**20,
        "accepted_202": codes.count(202), "rejected_429": codes.count(429),
        "other_status": sorted({c for c in codes if c not in (202, 429)}),
        "accepted_done": statuses.count("done"), "accepted_failed": statuses.count("failed"),
        "accepted_unfinished": sum(s not in TERMINAL for s in statuses),
        "all_accepted_finished": all(s == "done" for s in statuses),
        "upload_burst_seconds": round(upload_wall, 2),
        "latency_202_p50_ms": _p50([t for c, _, t in results if c == 202]),
        "latency_429_p50_ms": _p50([t for c, _, t in results if c == 429]),
        "total_seconds": round(total_wall, 2),
        "status_latency_ms_p50": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "status_latency_ms_p95": round(float(np.percentile(lat, 95)), 1) if lat.size else None,
        "status_latency_ms_max": round(float(lat.max()), 1) if lat.size else None,
        "server_peak_rss_mib": round(peak_rss, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "server_load.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = result["all_accepted_finished"] and not result["other_status"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
