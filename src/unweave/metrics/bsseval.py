"""BSS Eval v4 (museval ``mode="v4"``): SDR, ISR, SIR and SAR with 512-tap distortion filters.

Vincent, Gribonval & Fevotte, "Performance measurement in blind audio source separation" (2006);
Stoter, Liutkus & Ito, "The 2018 Signal Separation Evaluation Campaign" (2018) for v4, where the
distortion filters are fitted once on the whole signals and the energy ratios are taken on
frames.

Each estimate ``s_hat_k`` is projected by least squares onto the span of delayed copies
(0 .. L-1 samples, every channel) of

* all references -> ``P_all`` (filters from the Gram system of every source and channel),
* its own reference -> ``P_k``,

and then, on each frame, with ``s`` the true image (zero-padded by L-1 samples):

============  ============================================  ==============================
``"images"``  SDR = |s|^2 / |s_hat - s|^2                   ISR = |s|^2 / |P_k - s|^2
(museval)     SIR = |P_k|^2 / |P_all - P_k|^2               SAR = |P_all|^2 / |s_hat - P_all|^2
``"sources"`` SDR = |P_k|^2 / |s_hat - P_k|^2               (bss_eval_sources v3; ISR is NaN)
============  ============================================  ==============================

Cross-correlations come from FFTs; the Gram systems are solved with ``scipy.linalg.solve``
(torch's batched solve breaks with several threads on CPU, see docs/PITFALLS.md). Cost grows as
``(S C L)^3``: four stereo sources is a 4096 x 4096 system, a few seconds.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.linalg
from scipy.fft import irfft, next_fast_len, rfft

from .sdr import Array, _as_sct, _fit, frame_bounds, frame_lengths

METRICS = ("sdr", "isr", "sir", "sar")


def _db(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10 * np.log10(num / den)


def _lagged_xcorr(a_spec: np.ndarray, b_spec: np.ndarray, n_fft: int, lags: int) -> np.ndarray:
    """``out[..., d] = sum_t a[..., t - d] * b[t]`` for d in [0, lags), from spectra.

    a_spec is rfft(a); b_spec is rfft(b) (both of size n_fft >= T + lags - 1, no wrap-around).
    """
    corr = irfft(b_spec * np.conj(a_spec), n=n_fft, axis=-1)  # corr[k] = sum_t a[t] b[t + k]
    return corr[..., :lags]


def _solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``gram @ x = rhs`` by LU as museval (numpy.linalg.solve), least squares if singular.

    Tonal references make the Gram matrix ill-conditioned; like museval we accept the LU
    solution without a warning: the projections, not the filters, enter the metrics.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        try:
            return scipy.linalg.solve(gram, rhs, assume_a="gen", check_finite=False)
        except np.linalg.LinAlgError:
            return scipy.linalg.lstsq(gram, rhs, check_finite=False)[0]


def _filters(ref: np.ndarray, est: np.ndarray, filters_length: int):
    """Least-squares distortion filters.

    Shape:
        ref, est: (S, C, T) -> (h_all (K=S, S, C, L, C), h_own (K=S, C, L, C)):
        ``P_all[k][c] = sum_{j, cj} h_all[k, j, cj, :, c] * ref[j, cj]`` (convolution).
    """
    n_src, n_chan, length = ref.shape
    lags = filters_length
    n_fft = next_fast_len(length + lags - 1, real=True)
    ref_spec = rfft(ref, n=n_fft, axis=-1)  # (S, C, F)
    est_spec = rfft(est, n=n_fft, axis=-1)  # (K, C, F)
    flat = ref_spec.reshape(n_src * n_chan, -1)  # (SC, F)
    dim = n_src * n_chan * lags

    # Gram matrix of every delayed reference channel: G[(i,a), (j,b)] = <x_i(t-a), x_j(t-b)>.
    gram = np.empty((n_src * n_chan, lags, n_src * n_chan, lags))
    for i in range(n_src * n_chan):
        # r[j, k] = sum_t x_i[t] x_j[t + k] for k in (-(L-1), L-1)
        corr = irfft(flat * np.conj(flat[i]), n=n_fft, axis=-1)  # (SC, n_fft)
        ext = np.concatenate([corr[:, n_fft - lags + 1 :], corr[:, :lags]], axis=-1)
        # <x_i(t-a), x_j(t-b)> = r_ij[a - b] -> index (a - b) + L - 1
        idx = np.arange(lags)[:, None] - np.arange(lags)[None, :] + lags - 1  # (a, b)
        gram[i] = ext[:, idx].transpose(1, 0, 2)  # (a, j, b)
    gram = gram.reshape(dim, dim)
    gram[np.diag_indices(dim)] += np.finfo(float).eps  # as museval

    # Right-hand sides: D[(j, cj, a), (k, c)] = <x_{j,cj}(t - a), s_hat_{k,c}(t)>.
    rhs = np.empty((n_src * n_chan, lags, n_src * n_chan))
    for m in range(n_src * n_chan):
        k, c = divmod(m, n_chan)
        rhs[:, :, m] = _lagged_xcorr(flat, est_spec[k, c], n_fft, lags)
    rhs = rhs.reshape(dim, n_src * n_chan)

    h_all = _solve(gram, rhs)
    h_all = h_all.reshape(n_src, n_chan, lags, n_src, n_chan).transpose(3, 0, 1, 2, 4)

    h_own = np.empty((n_src, n_chan, lags, n_chan))
    block = n_chan * lags
    for k in range(n_src):
        sel = slice(k * block, (k + 1) * block)
        sub = _solve(gram[sel, sel], rhs[sel, k * n_chan : (k + 1) * n_chan])
        h_own[k] = sub.reshape(n_chan, lags, n_chan)
    return h_all, h_own


def bss_eval_v4(
    references: Array,
    estimates: Array,
    sample_rate: int,
    *,
    window_seconds: float = 1.0,
    hop_seconds: float = 1.0,
    filters_length: int = 512,
    mode: str = "images",
) -> dict[str, np.ndarray]:
    """Framewise BSS Eval v4 metrics in dB, as ``museval.metrics.bss_eval`` (no permutation).

    Args:
        references: true source images.
        estimates: estimated images, same order (cut or zero-padded to the references' length).
        sample_rate: Hz, to turn the frame sizes into samples.
        window_seconds: frame length; ``math.inf`` scores the whole signal as one frame.
        hop_seconds: frame hop.
        filters_length: distortion filter taps ``L`` (512 in BSS Eval).
        mode: ``"images"`` (museval / SiSEC) or ``"sources"`` (bss_eval_sources v3 ratios).

    Frames where any reference or any estimate is all zeros are NaN for every source, as museval.

    Shape:
        references, estimates: (S, C, T) -> {"sdr", "isr", "sir", "sar"}: each (S, N) frames.
    """
    if mode not in ("images", "sources"):
        raise ValueError(f"mode must be 'images' or 'sources', got {mode!r}")
    ref, est = _as_sct(references), _as_sct(estimates)
    if ref.ndim != 3 or est.ndim != 3 or ref.shape[:2] != est.shape[:2]:
        raise ValueError(f"bss_eval_v4 expects two (S, C, T) arrays, got {ref.shape}, {est.shape}")
    est = _fit(est, ref.shape[-1])
    n_src, n_chan, length = ref.shape
    lags = int(filters_length)
    h_all, h_own = _filters(ref, est, lags)

    window, hop = frame_lengths(sample_rate, window_seconds, hop_seconds)
    bounds = frame_bounds(length, window if not math.isinf(window) else length, hop)
    out = {name: np.full((n_src, len(bounds)), np.nan) for name in METRICS}
    spec_cache: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
    for n, (a, b) in enumerate(bounds):
        r, e = ref[..., a:b], est[..., a:b]
        if not (np.all(np.any(r != 0, axis=(1, 2))) and np.all(np.any(e != 0, axis=(1, 2)))):
            continue  # museval: any silent source or estimate -> NaN frame
        size = b - a + lags - 1
        if size not in spec_cache:
            n_fft = next_fast_len(size, real=True)
            spec_cache[size] = (
                n_fft,
                rfft(h_all, n=n_fft, axis=3),  # (K, S, C, F, C)
                rfft(h_own, n=n_fft, axis=2),  # (K, C, F, C)
            )
        n_fft, hf_all, hf_own = spec_cache[size]
        rf = rfft(r, n=n_fft, axis=-1)  # (S, C, F)
        p_all = irfft(np.einsum("jaf,kjafc->kcf", rf, hf_all), n=n_fft, axis=-1)[..., :size]
        p_own = irfft(np.einsum("kaf,kafc->kcf", rf, hf_own), n=n_fft, axis=-1)[..., :size]
        s_true = np.zeros((n_src, n_chan, size))
        s_true[..., : b - a] = r
        s_hat = np.zeros_like(s_true)
        s_hat[..., : b - a] = e

        def energy(x: np.ndarray) -> np.ndarray:
            return np.sum(x**2, axis=(1, 2))

        if mode == "images":
            out["sdr"][:, n] = _db(energy(s_true), energy(s_hat - s_true))
            out["isr"][:, n] = _db(energy(s_true), energy(p_own - s_true))
        else:
            out["sdr"][:, n] = _db(energy(p_own), energy(s_hat - p_own))
        out["sir"][:, n] = _db(energy(p_own), energy(p_all - p_own))
        out["sar"][:, n] = _db(energy(p_all), energy(s_hat - p_all))
    return out


def bss_eval_v4_median(references: Array, estimates: Array, sample_rate: int, **kwargs) -> dict:
    """:func:`bss_eval_v4` reduced to the per-source median over frames (NaN frames skipped).

    Shape:
        references, estimates: (S, C, T) -> {"sdr", "isr", "sir", "sar"}: each (S,).
    """
    frames = bss_eval_v4(references, estimates, sample_rate, **kwargs)
    result = {}
    for name, values in frames.items():
        med = np.full(values.shape[0], np.nan)
        ok = ~np.all(np.isnan(values), axis=-1)
        if np.any(ok):
            med[ok] = np.nanmedian(values[ok], axis=-1)
        result[name] = med
    return result
