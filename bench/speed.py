"""Real-time factor of each architecture (registry defaults) and each catalog model (with its
default soft-mask refinement) on a 180 s stereo clip with N CPU threads, side by side with
HTDemucs from the `demucs` package (random weights: speed only) when it is installed.

RTF here = seconds of audio per second of wall time (higher is faster). Runs are interleaved
in rounds; every wall time is written, the speedups over HTDemucs both from the best times and
per round (the shared 2-core machines vary up to 3x run to run, and a round's two runs share
the load, so the median per-round ratio is the steadier figure).
Usage: python bench/speed.py [--seconds 180] [--threads 2] [--repeats 2] [--only NAME ...]
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


def htdemucs_runner(seconds: float):
    try:
        from demucs.apply import apply_model
        from demucs.htdemucs import HTDemucs
    except ImportError:
        return None
    torch.manual_seed(0)
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"]).eval()
    mix = torch.randn(1, 2, int(seconds * 44100)) * 0.1

    def run() -> None:
        with torch.inference_mode():
            apply_model(model, mix, shifts=0, split=True, overlap=0.25, progress=False)

    return run, count_parameters(model)


def unweave_runner(model: torch.nn.Module, seconds: float):
    mix = torch.randn(model.audio_channels, int(seconds * model.sample_rate)) * 0.1

    def run() -> None:
        apply(model, mix, overlap=0.25)

    return run


def separator_runner(sep: Separator, seconds: float):
    """``sep`` as `unweave separate` runs it: its refinement, chunking and overlaps."""
    mix = torch.randn(sep.model.audio_channels, int(seconds * sep.sample_rate)) * 0.1

    def run() -> None:
        sep.separate_tensor(mix, sep.sample_rate)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
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
            runners[f"arch:{arch}"] = (unweave_runner(model, args.seconds),
                                       count_parameters(model))
    for name in catalog_entries():
        if wanted(f"model:{name}"):
            sep = Separator(name)  # as `unweave separate` runs it (with refinement if on)
            runners[f"model:{name}"] = (separator_runner(sep, args.seconds),
                                        count_parameters(sep.model))
    ht_name = "htdemucs (demucs 4.1.0, random weights)"
    ht = htdemucs_runner(args.seconds) if wanted(ht_name) else None
    if ht is not None:
        runners[ht_name] = ht

    walls: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.repeats):  # interleaved: each round times every runner once
        for name, (run, _) in runners.items():
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
              "repeats": args.repeats, "machine": platform.machine(), "cpu_count": os.cpu_count(),
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "runs": rows}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
