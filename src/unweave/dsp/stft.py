"""Short-time Fourier transform: the only place ``torch.stft`` / ``torch.istft`` are called.

Both use a periodic Hann window of ``win_length`` samples (zero-padded to ``n_fft`` when shorter),
``center=True`` with zero padding at the edges (so any signal length works, including lengths
shorter than ``n_fft // 2`` where reflect padding would fail), and no normalisation: ``istft``
divides by the summed squared window, so ``istft(stft(x), length=T) == x`` up to float error
whenever the hop is at most ``win_length / 2``.

Shapes: ``x: (..., T) -> X: (..., F, N)`` with ``F = n_fft // 2 + 1`` bins and
``N = 1 + T // hop_length`` frames (the same ``N`` for every ``n_fft`` at one hop).
"""

from __future__ import annotations

import torch


def num_frames(length: int, hop_length: int) -> int:
    """Number of STFT frames ``N`` for a signal of ``length`` samples (center=True)."""
    return 1 + int(length) // int(hop_length)


def _window(win_length: int, x: torch.Tensor) -> torch.Tensor:
    dtype = x.real.dtype if x.is_complex() else x.dtype
    if not dtype.is_floating_point:
        dtype = torch.float32
    return torch.hann_window(win_length, periodic=True, dtype=dtype, device=x.device)


def stft(
    x: torch.Tensor, n_fft: int, hop_length: int, win_length: int | None = None
) -> torch.Tensor:
    """Complex STFT of real signals.

    Args:
        x: real signal(s), any leading shape.
        n_fft: FFT size in samples; ``F = n_fft // 2 + 1`` bins.
        hop_length: frame hop in samples.
        win_length: Hann window length in samples (default ``n_fft``, at most ``n_fft``).

    Shape:
        x: (..., T) -> (..., F, N), complex.
    """
    win_length = int(win_length or n_fft)
    if win_length > n_fft:
        raise ValueError(f"win_length {win_length} exceeds n_fft {n_fft}")
    *lead, length = x.shape
    flat = x.reshape(-1, length)  # (B', T)
    spec = torch.stft(
        flat,
        n_fft=int(n_fft),
        hop_length=int(hop_length),
        win_length=win_length,
        window=_window(win_length, x),
        center=True,
        pad_mode="constant",
        normalized=False,
        onesided=True,
        return_complex=True,
    )  # (B', F, N)
    return spec.reshape(*lead, spec.shape[-2], spec.shape[-1])


def istft(
    spec: torch.Tensor,
    n_fft: int,
    hop_length: int,
    length: int,
    win_length: int | None = None,
) -> torch.Tensor:
    """Inverse of :func:`stft` (weighted overlap-add), cropped or zero-padded to ``length``.

    Args:
        spec: complex spectrogram, any leading shape, ``F == n_fft // 2 + 1``.
        n_fft: FFT size in samples, as given to :func:`stft`.
        hop_length: frame hop in samples, as given to :func:`stft`.
        length: output length ``T`` in samples.
        win_length: Hann window length in samples (default ``n_fft``).

    Shape:
        spec: (..., F, N) complex -> (..., T) real.
    """
    win_length = int(win_length or n_fft)
    *lead, bins, frames = spec.shape
    if bins != n_fft // 2 + 1:
        raise ValueError(
            f"spectrogram has {bins} bins, expected {n_fft // 2 + 1} for n_fft {n_fft}"
        )
    flat = spec.reshape(-1, bins, frames)  # (B', F, N)
    wav = torch.istft(
        flat,
        n_fft=int(n_fft),
        hop_length=int(hop_length),
        win_length=win_length,
        window=_window(win_length, spec),
        center=True,
        normalized=False,
        onesided=True,
        length=int(length),
    )  # (B', T)
    return wav.reshape(*lead, int(length))
