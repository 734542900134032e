"""Fixed noisy-speech test set from a denoise corpus's validation pools (held-out speakers and
noises): each item is a clean clip plus a noise excerpt at a seeded SNR (default 0-5 dB),
written as ``OUT/<item>/{speech,noise,mixture}.wav`` so that ``unweave evaluate`` can score it.

Usage: python bench/denoise_testset.py corpora/denoise/valid OUT [--items 40] [--snr 0 5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from unweave.audio import io


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pools", type=Path, help="folder with speech/ and noise/ subfolders")
    ap.add_argument("out", type=Path)
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--snr", type=float, nargs=2, default=(0.0, 5.0))
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    speech = sorted((args.pools / "speech").glob("*.wav"))
    noises = sorted((args.pools / "noise").glob("*.wav"))
    rng.shuffle(speech)
    made = 0
    for path in speech:
        if made == args.items:
            break
        clean, sr = io.read(path, channels=1)
        if clean.shape[-1] < args.min_seconds * sr:
            continue
        noise_path = noises[int(rng.integers(len(noises)))]
        noise_info = io.info(noise_path)
        length = clean.shape[-1]
        start = float(rng.uniform(0, max(0.0, noise_info.duration_seconds - length / sr)))
        noise, _ = io.read(noise_path, sample_rate=sr, channels=1, start_seconds=start,
                           duration_seconds=length / sr)
        noise = torch.nn.functional.pad(noise, (0, length - noise.shape[-1]))
        snr = float(rng.uniform(*args.snr))
        gain = (clean.pow(2).mean() / (noise.pow(2).mean() + 1e-12) / 10 ** (snr / 10)).sqrt()
        noise = noise * gain
        mix = clean + noise
        peak = float(mix.abs().max())
        scale = 0.9 / peak if peak > 0.9 else 1.0
        item = args.out / f"{made:03d}_{path.stem}"
        for name, wav in (("speech", clean), ("noise", noise), ("mixture", mix)):
            io.write(item / f"{name}.wav", wav * scale, sr, subtype="FLOAT", clip="none")
        made += 1
    print(f"{made} items at {args.snr[0]:g}-{args.snr[1]:g} dB SNR in {args.out}")


if __name__ == "__main__":
    main()
