"""On-the-fly mixing: random segments, Demucs-style remixing across tracks, SNR mixing.

Pure numpy/torch helpers used by ``unweave.data.dataset`` (per example) and by the trainer
(per batch). Randomness always comes from an explicit generator so that a training run is
reproducible and resumable from its step counter alone.
"""

from __future__ import annotations

import numpy as np
import torch

EPS = 1e-10


def remix_choice(rng: np.random.Generator, track: int, num_tracks: int, num_stems: int,
                 prob: float) -> list[int]:
    """Track index for each stem of one example.

    With probability ``prob`` every stem comes from an independently drawn random track (the
    Demucs remix: new, incoherent mixtures); otherwise all stems come from ``track``.
    """
    if prob > 0 and num_tracks > 1 and rng.random() < prob:
        return [int(i) for i in rng.integers(0, num_tracks, size=num_stems)]
    return [track] * num_stems


def random_offset(rng: np.random.Generator, frames: int, length: int) -> int:
    """Uniform start of a ``length``-sample window in ``frames`` samples (0 if it does not fit)."""
    return int(rng.integers(0, frames - length + 1)) if frames > length else 0


def shuffle_sources(stems: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Batch-level remix: permute each source independently across the batch.

    ``stems: (B, S, C, T) -> (B, S, C, T)``; the mixture of example b becomes the sum of
    sources taken from different examples.
    """
    batch, num_sources = stems.shape[:2]
    out = torch.empty_like(stems)
    for s in range(num_sources):
        perm = torch.randperm(batch, generator=generator).to(stems.device)
        out[:, s] = stems[perm, s]
    return out


def energy(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray,
               snr_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale ``noise`` so that ``10 log10(E_speech / E_noise) = snr_db``.

    ``speech, noise: (C, T)``; returns ``(speech, scaled_noise)``. A silent speech segment keeps
    the noise as it is; a silent noise segment stays silent.
    """
    e_s, e_n = energy(speech), energy(noise)
    if e_s <= EPS or e_n <= EPS:
        return speech, noise
    gain = np.sqrt(e_s / (e_n * 10 ** (snr_db / 10)))
    return speech, (noise * gain).astype(noise.dtype, copy=False)


def set_level(stems: np.ndarray, level_db: float, peak: float = 0.99) -> np.ndarray:
    """Scale all ``stems: (S, C, T)`` together so the mixture's RMS is ``level_db`` dBFS.

    The gain is then reduced if needed so that neither the mixture nor any stem peaks above
    ``peak``. Silent inputs are returned unchanged.
    """
    mix = stems.sum(0)
    rms = np.sqrt(energy(mix))
    if rms <= EPS:
        return stems
    gain = 10 ** (level_db / 20) / rms
    top = max(float(np.abs(mix).max()), float(np.abs(stems).max()))
    if top * gain > peak:
        gain = peak / top
    return (stems * gain).astype(stems.dtype, copy=False)


def fit_length(rng: np.random.Generator, x: np.ndarray, length: int, *, loop: bool) -> np.ndarray:
    """Make ``x: (C, T)`` exactly ``length`` samples long.

    Longer clips are cropped at a random offset. Shorter clips are tiled (``loop=True``, for
    noise) or zero-padded at a random position (``loop=False``, for speech).
    """
    frames = x.shape[-1]
    if frames >= length:
        start = random_offset(rng, frames, length)
        return x[:, start:start + length]
    if frames == 0:
        return np.zeros((x.shape[0], length), dtype=x.dtype)
    if loop:
        reps = -(-length // frames) + 1
        tiled = np.tile(x, (1, reps))
        start = int(rng.integers(0, frames))
        return tiled[:, start:start + length]
    out = np.zeros((x.shape[0], length), dtype=x.dtype)
    start = int(rng.integers(0, length - frames + 1))
    out[:, start:start + frames] = x
    return out
