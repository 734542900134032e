"""Energy-ratio metrics: SI-SDR, SNR, the MDX utterance SDR and museval's framewise SDR.

Two families:

* Utterance metrics (:func:`si_sdr`, :func:`snr`, :func:`mdx_sdr`): one number per signal, summed
  over ``dim`` (the last axis by default), batched over every other axis. Torch tensors in give
  torch tensors out (differentiable, same dtype and device; sums run in float64); NumPy arrays
  in give float64 arrays out.
* Framewise SDR (:func:`sdr_framewise`, :func:`sdr_v4_simple`, :func:`sdr_museval`): the
  "image" SDR of BSS Eval v4 as museval reports it, on 1 s frames. Always NumPy float64 out.

Why museval's SDR needs no distortion filters: in ``bss_eval_images`` (museval ``mode="v4"``)
the estimate is split as ``s_true + e_spat + e_interf + e_artif`` where ``e_artif`` is defined
as the remainder, so ``e_spat + e_interf + e_artif == estimate - s_true`` exactly, and
``SDR = 10 log10(|s|^2 / |s - s_hat|^2)`` per frame. The 512-tap filters only move energy
between ISR, SIR and SAR (see :mod:`unweave.metrics.bsseval`, which computes those). Checked
against museval 0.4.1 in ``tests/test_metrics.py``. Unlike SI-SDR, this SDR is gain-sensitive.
"""

from __future__ import annotations

import math

import numpy as np
import torch

Array = np.ndarray | torch.Tensor
Dim = int | tuple[int, ...]

# MDX 2021 (AIcrowd starter kit) adds delta = 1e-7 to both energies.
MDX_EPS = 1e-7


# ----------------------------------------------------------------------------------------------
# helpers
def _pair(references: Array, estimates: Array) -> tuple[Array, Array, torch.dtype | None]:
    """Both as torch float64 (if either is a tensor) or NumPy float64; plus the dtype to return."""
    if isinstance(references, torch.Tensor) or isinstance(estimates, torch.Tensor):
        like = references if isinstance(references, torch.Tensor) else estimates
        out_dtype = like.dtype if like.dtype.is_floating_point else torch.float32
        ref = torch.as_tensor(references, device=like.device).to(torch.float64)
        est = torch.as_tensor(estimates, device=like.device).to(torch.float64)
        return ref, est, out_dtype
    return np.asarray(references, np.float64), np.asarray(estimates, np.float64), None


def _sum(x: Array, dim: Dim, keepdim: bool = False) -> Array:
    if isinstance(x, torch.Tensor):
        return x.sum(dim=dim, keepdim=keepdim)
    return x.sum(axis=dim, keepdims=keepdim)


def _mean(x: Array, dim: Dim) -> Array:
    if isinstance(x, torch.Tensor):
        return x.mean(dim=dim, keepdim=True)
    return x.mean(axis=dim, keepdims=True)


def _db_ratio(num: Array, den: Array, out_dtype: torch.dtype | None) -> Array:
    if isinstance(num, torch.Tensor):
        return (10 * torch.log10(num / den)).to(out_dtype)
    return 10 * np.log10(num / den)


def to_numpy(x: Array) -> np.ndarray:
    """float64 NumPy copy of a tensor or array (detached, on the CPU)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, np.float64)


# ----------------------------------------------------------------------------------------------
# utterance metrics
def snr(references: Array, estimates: Array, *, dim: Dim = -1, eps: float = 1e-8) -> Array:
    """Signal-to-noise ratio in dB: ``10 log10((|s|^2 + eps) / (|s - s_hat|^2 + eps))``.

    Gain-sensitive (a scaled estimate scores lower). ``eps`` keeps silent references finite.

    Shape:
        references, estimates: (..., T) (broadcastable) -> (...), summing over ``dim``.
    """
    ref, est, out_dtype = _pair(references, estimates)
    num = _sum(ref**2, dim) + eps
    den = _sum((ref - est) ** 2, dim) + eps
    return _db_ratio(num, den, out_dtype)


def mdx_sdr(
    references: Array, estimates: Array, *, dim: Dim = -1, eps: float = MDX_EPS
) -> Array:
    """Utterance-level SDR of the Music Demixing challenge (MDX 2021, Demucs' "nSDR").

    ``10 log10((|s|^2 + eps) / (|s - s_hat|^2 + eps))`` with the challenge's ``eps = 1e-7``.
    MDX sums over channels *and* samples: pass ``dim=(-2, -1)`` for (S, C, T) stems, as
    ``unweave evaluate`` does.

    Shape:
        references, estimates: (..., T) -> (...), summing over ``dim``.
    """
    return snr(references, estimates, dim=dim, eps=eps)


def si_sdr(
    references: Array,
    estimates: Array,
    *,
    dim: Dim = -1,
    zero_mean: bool = True,
    eps: float = 1e-8,
) -> Array:
    """Scale-invariant SDR in dB (Le Roux et al., "SDR - half-baked or well done?", 2019).

    The reference is rescaled by ``alpha = <s_hat, s> / |s|^2`` before the energy ratio
    ``|alpha s|^2 / |alpha s - s_hat|^2``; any non-zero gain on the estimate leaves it unchanged.

    Args:
        references: clean signals.
        estimates: estimated signals.
        dim: axis (or axes) the inner products run over.
        zero_mean: subtract each signal's mean first (the paper's definition).
        eps: added to the energies so silent signals give finite numbers.

    Shape:
        references, estimates: (..., T) -> (...).
    """
    ref, est, out_dtype = _pair(references, estimates)
    if zero_mean:
        ref = ref - _mean(ref, dim)
        est = est - _mean(est, dim)
    alpha = _sum(est * ref, dim, keepdim=True) / (_sum(ref**2, dim, keepdim=True) + eps)
    target = alpha * ref
    num = _sum(target**2, dim) + eps
    den = _sum((est - target) ** 2, dim) + eps
    return _db_ratio(num, den, out_dtype)


# ----------------------------------------------------------------------------------------------
# framewise SDR (BSS Eval v4 "image" definition)
def frame_bounds(length: int, window_length: int, hop: int) -> list[tuple[int, int]]:
    """museval's frames: full windows only; one frame of the whole signal when it is shorter."""
    if window_length >= length:
        return [(0, length)]
    count = (length - window_length + hop) // hop
    return [(k * hop, k * hop + window_length) for k in range(count)]


def frame_lengths(sample_rate: int, window_seconds: float, hop_seconds: float) -> tuple[int, int]:
    """(window_length, hop) in samples; ``window_seconds=math.inf`` means one frame."""
    window = math.inf if math.isinf(window_seconds) else round(window_seconds * sample_rate)
    hop = round(hop_seconds * sample_rate)
    if hop <= 0 or window <= 0:
        raise ValueError("window_seconds and hop_seconds must give at least one sample")
    return window, hop  # type: ignore[return-value]


def _as_sct(x: Array) -> np.ndarray:
    arr = to_numpy(x)
    if arr.ndim == 1:
        arr = arr[None]
    return arr


def sdr_framewise(
    references: Array,
    estimates: Array,
    sample_rate: int,
    *,
    window_seconds: float = 1.0,
    hop_seconds: float = 1.0,
) -> np.ndarray:
    """Framewise image SDR ``10 log10(sum s^2 / sum (s - s_hat)^2)`` over channels and frame.

    A frame whose reference (or estimate) is all zeros is NaN; a perfect frame is ``+inf``.
    Estimates are zero-padded or cut to the reference length (museval's ``pad_or_truncate``).

    Shape:
        references, estimates: (..., C, T) -> (..., N) frames; (T,) is read as (1, T).
    """
    ref, est = _as_sct(references), _as_sct(estimates)
    est = _fit(est, ref.shape[-1])
    window, hop = frame_lengths(sample_rate, window_seconds, hop_seconds)
    bounds = frame_bounds(ref.shape[-1], window, hop)
    out = np.empty(ref.shape[:-2] + (len(bounds),))
    for n, (a, b) in enumerate(bounds):
        s, e = ref[..., a:b], est[..., a:b]
        num = np.sum(s**2, axis=(-2, -1))
        den = np.sum((s - e) ** 2, axis=(-2, -1))
        with np.errstate(divide="ignore", invalid="ignore"):
            val = 10 * np.log10(num / den)
        silent = ~np.any(s != 0, axis=(-2, -1)) | ~np.any(e != 0, axis=(-2, -1))
        out[..., n] = np.where(silent, np.nan, val)
    return out


def _fit(est: np.ndarray, length: int) -> np.ndarray:
    if est.shape[-1] >= length:
        return est[..., :length]
    pad = [(0, 0)] * (est.ndim - 1) + [(0, length - est.shape[-1])]
    return np.pad(est, pad)


def _nanmedian(frames: np.ndarray) -> np.ndarray:
    out = np.full(frames.shape[:-1], np.nan)
    ok = ~np.all(np.isnan(frames), axis=-1)
    if np.any(ok):
        out[ok] = np.nanmedian(frames[ok], axis=-1)
    return out


def sdr_v4_simple(
    references: Array,
    estimates: Array,
    sample_rate: int,
    *,
    window_seconds: float = 1.0,
    hop_seconds: float = 1.0,
) -> np.ndarray:
    """Median over 1 s frames of ``10 log10(sum s^2 / sum (s - s_hat)^2)`` (silent frames skipped).

    Each signal is scored on its own (a silent frame of *another* source does not drop this
    one's frame; :func:`sdr_museval` applies museval's joint rule). NaN when every frame is silent.

    Shape:
        references, estimates: (..., C, T) -> (...); (T,) gives a 0-d array.
    """
    frames = sdr_framewise(
        references, estimates, sample_rate, window_seconds=window_seconds, hop_seconds=hop_seconds
    )
    return _nanmedian(frames)


def sdr_museval(
    references: Array,
    estimates: Array,
    sample_rate: int,
    *,
    window_seconds: float = 1.0,
    hop_seconds: float = 1.0,
    return_frames: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Per-source SDR as museval 0.4.1 reports it (``museval.evaluate``, ``mode="v4"``).

    The median over frames of the BSS Eval v4 image SDR, frames of ``window_seconds`` every
    ``hop_seconds`` (only full frames, as museval). Like museval, a frame is NaN for *every*
    source when any reference or any estimate is all zeros in it; NaN frames are ignored by the
    median (pandas / ``np.nanmedian`` as in museval's aggregation).

    Shape:
        references, estimates: (S, C, T) -> (S,); with ``return_frames`` also (S, N).
    """
    ref, est = _as_sct(references), _as_sct(estimates)
    if ref.ndim != 3:
        raise ValueError(f"sdr_museval expects (S, C, T) arrays, got shape {ref.shape}")
    est = _fit(est, ref.shape[-1])
    frames = sdr_framewise(
        ref, est, sample_rate, window_seconds=window_seconds, hop_seconds=hop_seconds
    )
    frames[:, np.any(np.isnan(frames), axis=0)] = np.nan  # joint silence rule
    scores = _nanmedian(frames)
    return (scores, frames) if return_frames else scores
