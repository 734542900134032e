"""Cost of band extension (`unweave.dsp.bandext`): what a 22.05 kHz model's separation of a
44.1 kHz file pays on top of the model for stems that reach 22 kHz.

Times, on a stereo clip of --seconds at 44.1 kHz with --sources stems, blocks of 30 s as
`Separator.separate_to_files` feeds them: (a) taking the mixture to 22.05 kHz and back (the band
the model saw), (b) `BandExtender.process`. bench/speed.py's catalog timings include both (they
separate a 44.1 kHz clip through `Separator`). Usage: python bench/bandext.py [--seconds 180] [--sources 4]
[--repeats 3]. Writes bench/results/bandext.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from unweave.audio import convert
from unweave.dsp.bandext import BandExtender

RESULTS = Path(__file__).parent / "results"
RATE, MODEL_RATE, BLOCK_SECONDS = 44100, 22050, 30.0


def run_once(mix: torch.Tensor, stems: torch.Tensor) -> tuple[float, float]:
    """Seconds for (the band round trip, the extender), block by block."""
    block = int(BLOCK_SECONDS * RATE)
    down = convert.StreamResampler(RATE, MODEL_RATE, 2)
    up = convert.StreamResampler(MODEL_RATE, RATE, 2)
    ext = BandExtender(stems.shape[0], 2, MODEL_RATE, RATE)
    resample_s = extend_s = 0.0
    done = 0
    for start in range(0, mix.shape[-1], block):
        t0 = time.perf_counter()
        band = up.process(down.process(mix[:, start:start + block]))
        t1 = time.perf_counter()
        n = band.shape[-1]
        if n:
            ext.process(stems[..., done:done + n], mix[:, done:done + n], band)
            done += n
        t2 = time.perf_counter()
        resample_s, extend_s = resample_s + t1 - t0, extend_s + t2 - t1
    return resample_s, extend_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    gen = torch.Generator().manual_seed(0)
    length = int(args.seconds * RATE)
    mix = 0.1 * torch.randn(2, length, generator=gen)
    stems = 0.05 * torch.randn(args.sources, 2, length, generator=gen)
    runs = [run_once(mix, stems) for _ in range(args.repeats)]
    best_resample = min(r[0] for r in runs)
    best_extend = min(r[1] for r in runs)
    result = {
        "seconds": args.seconds, "sources": args.sources, "sample_rate": RATE,
        "model_rate": MODEL_RATE, "repeats": args.repeats,
        "resample_seconds": [round(r[0], 3) for r in runs],
        "extend_seconds": [round(r[1], 3) for r in runs],
        "best_total_seconds": round(best_resample + best_extend, 3),
        "realtime_factor": round(args.seconds / (best_resample + best_extend), 1),
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bandext.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
