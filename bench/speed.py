"""Real-time factor of each architecture (registry defaults) and each catalog model (with its
default soft-mask refinement) on a 180 s stereo clip with N CPU threads, side by side with
HTDemucs from the `demucs` package (random weights: speed only) when it is installed.

Catalog models and HTDemucs get the same input, a 44.1 kHz stereo clip (``--rate``), and give
stems at that rate: a catalog model is timed through ``Separator.separate_tensor`` as
`unweave separate` runs it, so resampling to and from the model's rate, refinement and band
extension are all in its time. Bare architectures (``arch:``) are timed on input at their own
rate, without any of that. Every runner first separates a short clip once, untimed (first calls
allocate and choose kernels: the first timed round was up to 30 % slower without it).

RTF here = seconds of audio per second of wall time (higher is faster). Runs are interleaved
in rounds; every wall time is written, the speedups over HTDemucs both from the best times and
per round (the shared 2-core machines vary up to 3x run to run, and a round's two runs share
the load, so the median per-round ratio is the steadier figure).
Usage: python bench/speed.py [--seconds 180] [--threads 2] [--repeats 2] [--rate 44100]
[--only NAME ...]
[--out FILE.json]. Writes bench/results/speed.json (speed_subset.json with --only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from unweave.inference.chunking import apply
from unweave.inference.separator import Separator
from unweave.pretrained.catalog import catalog_entries, count_parameters
from unweave.registry import build_model, list_architectures

RESULTS = Path(__file__).parent / "results"
WARMUP_SECONDS = 10.0


def htdemucs_runner():
    """A function of the clip's length giving HTDemucs' run on a 44.1 kHz stereo clip, and the
    model's parameter count; None without the `demucs` package."""
    try:
        from demucs.apply import apply_model
        from demucs.htdemucs import HTDemucs
    except ImportError:
        return None
    torch.manual_seed(0)
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"]).eval()

    def make(seconds: float):
        mix = torch.randn(1, 2, int(seconds * 44100)) * 0.1

        def run() -> None:
            with torch.inference_mode():
                apply_model(model, mix, shifts=0, split=True, overlap=0.25, progress=False)

        return run

    return make, count_parameters(model)


def unweave_runner(model: torch.nn.Module):
    """A bare architecture on input at its own rate (no resampling, refinement or extension)."""

    def make(seconds: float):
        mix = torch.randn(model.audio_channels, int(seconds * model.sample_rate)) * 0.1
        return lambda: apply(model, mix, overlap=0.25)

    return make


def separator_runner(sep: Separator, rate: int):
    """``sep`` as `unweave separate` runs it on a stereo clip at ``rate``: resampling, its
    refinement, chunking and overlaps, and band extension above the model's rate."""

    def make(seconds: float):
        mix = torch.randn(2, int(seconds * rate)) * 0.1
        return lambda: sep.separate_tensor(mix, rate)

    return make


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--rate", type=int, default=44100,
                    help="sample rate of the clip given to catalog models (HTDemucs: 44100)")
    ap.add_argument("--only", nargs="*", default=None, help="subset of runner names")
    ap.add_argument("--out", default=None,
                    help="results file: a bare name goes in bench/results/ (default: speed.json, "
                         "or speed_subset.json with --only)")
    args = ap.parse_args()
    # decided before the runs, so that a bad path fails at once: a bare file name lands in
    # bench/results/, a path is taken as given
    out = Path(args.out) if args.out else None
    if out is None or out.parent == Path("."):
        out = RESULTS / (args.out or ("speed.json" if not args.only else "speed_subset.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)

    def wanted(name: str) -> bool:  # decided before building: the paper-size models are large
        return not args.only or any(o in name for o in args.only)

    runners: dict[str, tuple] = {}
    for arch in list_architectures():
        if wanted(f"arch:{arch}"):
            torch.manual_seed(0)
            model = build_model(arch).eval()
            runners[f"arch:{arch}"] = (unweave_runner(model),
                                       count_parameters(model))
    for name in catalog_entries():
        if wanted(f"model:{name}"):
            sep = Separator(name)  # as `unweave separate` runs it (with refinement if on)
            runners[f"model:{name}"] = (separator_runner(sep, args.rate),
                                        count_parameters(sep.model))
    ht_name = "htdemucs (demucs 4.1.0, random weights)"
    ht = htdemucs_runner() if wanted(ht_name) else None
    if ht is not None:
        runners[ht_name] = ht

    for make, _ in runners.values():  # warm-up, untimed
        make(WARMUP_SECONDS)()
    walls: dict[str, list[float]] = {name: [] for name in runners}
    clips = {name: make(args.seconds) for name, (make, _) in runners.items()}
    for _ in range(args.repeats):  # interleaved: each round times every runner once
        for name, run in clips.items():
            started = time.perf_counter()
            run()
            walls[name].append(time.perf_counter() - started)
            print(f"{name}: {walls[name][-1]:.1f} s", flush=True)
    rows = {name: {"params": runners[name][1], "wall_seconds": [round(w, 2) for w in walls[name]],
                   "best_wall_seconds": round(min(walls[name]), 2),
                   "real_time_factor": round(args.seconds / min(walls[name]), 2)}
            for name in runners}
    ht_key = next((k for k in rows if k.startswith("htdemucs")), None)
    if ht_key:
        for name, row in rows.items():
            row["speedup_vs_htdemucs"] = round(min(walls[ht_key]) / min(walls[name]), 2)
            # the same ratio within each round (both timed under the same machine load); its
            # median is the figure least moved by a noisy neighbour
            ratios = [h / w for h, w in zip(walls[ht_key], walls[name])]  # in round order
            row["speedup_per_round"] = [round(r, 2) for r in ratios]
            row["median_speedup_per_round"] = round(statistics.median(ratios), 2)
    result = {"benchmark": "separation speed", "clip_seconds": args.seconds, "threads": args.threads,
              "catalog_input_rate": args.rate, "warmup_seconds": WARMUP_SECONDS,
              "repeats": args.repeats, "machine": platform.machine(), "cpu_count": os.cpu_count(),
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "runs": rows}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
