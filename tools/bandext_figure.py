"""Spectrograms of one stem with and without band extension, beside the mixture.

    python tools/bandext_figure.py examples/example.flac --model tasnet --stem drums \
        --out docs/results/band_extension.png

Separates the file twice (``band_extension`` on and off) and draws the mixture and the stem from
both runs, 0 to the file's Nyquist frequency, with the model's Nyquist frequency marked.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from unweave.audio import io
from unweave.inference.separator import Separator
from unweave.metrics.report import _figure, _save


def spectrogram_db(wav: torch.Tensor, n_fft: int = 2048) -> np.ndarray:
    """(C, T) -> (F, N) dB of the channel mean's magnitude."""
    spec = torch.stft(wav.mean(0), n_fft, n_fft // 4, window=torch.hann_window(n_fft),
                      return_complex=True).abs()
    return 20 * np.log10(spec.numpy() + 1e-6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("audio")
    parser.add_argument("--model", default="tasnet")
    parser.add_argument("--stem", default="drums")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    wav, rate = io.read(args.audio)
    on = Separator(args.model, jobs=2)
    off = Separator(on.model, jobs=2, band_extension=False)
    panels = [("mixture", wav), (f"{args.stem}, --no-band-extension",
                                 off.separate_tensor(wav, rate)[args.stem]),
              (f"{args.stem}, band extension (default)", on.separate_tensor(wav, rate)[args.stem])]
    fig = _figure(13, 3.8)
    axes = fig.subplots(1, 3, sharey=True)
    for ax, (title, signal) in zip(axes, panels):
        db = spectrogram_db(signal.float())
        extent = (0, signal.shape[-1] / rate, 0, rate / 2000)
        ax.imshow(db, origin="lower", aspect="auto", extent=extent, vmin=db.max() - 90,
                  vmax=db.max(), cmap="magma")
        ax.axhline(on.sample_rate / 2000, color="w", ls="--", lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("frequency (kHz); dashed: the model's Nyquist")
    fig.suptitle(f"{args.model} on {args.audio} ({rate} Hz; the model runs at {on.sample_rate} Hz)")
    _save(fig, Path(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
