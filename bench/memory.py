"""Peak RSS of `unweave separate` on a 1-minute and a 60-minute stereo 44.1 kHz file.

Target: the 60-minute file separates with peak RSS under 1 GB, within 1.2x of the 1-minute
figure. Each run is a fresh subprocess; peak RSS is read from getrusage(RUSAGE_CHILDREN).
Usage: python bench/memory.py [--model default] [--minutes 1 60] [--threads 2]
Writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

RESULTS = Path(__file__).parent / "results"


def make_input(path: Path, minutes: float, sample_rate: int = 44100) -> None:
    """Write a stereo test signal block by block (never whole in memory)."""
    rng = np.random.default_rng(0)
    block = sample_rate * 10
    total = int(minutes * 60 * sample_rate)
    with sf.SoundFile(str(path), "w", sample_rate, 2, subtype="PCM_16") as f:
        done = 0
        while done < total:
            n = min(block, total - done)
            t = (done + np.arange(n)) / sample_rate
            tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2
            noise = 0.05 * rng.standard_normal((n, 2))
            f.write((tone[:, None] + noise).astype(np.float32))
            done += n


def peak_rss_of(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` in a fresh child: (peak RSS MiB, wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:  # ru_maxrss is a max over all children: run each size in its own parent
        raise RuntimeError("run each size in a separate bench process")
    return peak / 1024, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 60])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--one", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:  # child mode: measure one size
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / f"input_{args.one:g}min.wav"
            make_input(src, args.one)
            cmd = [sys.executable, "-m", "unweave", "separate", "-q", "-n", args.model,
                   "-j", str(args.threads), "-o", str(Path(tmp) / "out"), str(src)]
            rss, wall = peak_rss_of(cmd)
            print(json.dumps({"minutes": args.one, "peak_rss_mib": round(rss, 1),
                              "wall_seconds": round(wall, 1),
                              "real_time_factor": round(args.one * 60 / wall, 2)}))
        return
    rows = []
    for minutes in args.minutes:
        out = subprocess.run([sys.executable, __file__, "--model", args.model, "--threads",
                              str(args.threads), "--one", str(minutes)],
                             check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    result = {"benchmark": "peak RSS of unweave separate", "model": args.model,
              "threads": args.threads, "machine": platform.machine(),
              "cpu_count": __import__("os").cpu_count(), "runs": rows,
              "date": time.strftime("%Y-%m-%d")}
    if len(rows) >= 2:
        result["ratio_longest_to_shortest"] = round(rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"], 3)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
