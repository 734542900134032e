"""Training losses, each a small documented function over separated stems.

Every loss takes ``est`` and ``ref`` of the same shape ``(..., T)`` (usually ``(B, S, C, T)``)
and returns a scalar tensor (mean over the batch). Losses that need the mixture or the
interference (noise-weighted MSE, noise Huber, source projection) also take ``mix: (B, C, T)``
and then expect ``(B, S, C, T)`` inputs. ``get_loss(name, **kw)`` returns a callable
``loss(est, ref, mix=None)`` with the keyword arguments bound, for configs.

Conventions: losses are minimised; "negative" metrics (``neg_si_sdr``, ``neg_snr``) are in dB.
All computations run in float32 whatever the autocast dtype of the model outputs.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .dsp.stft import stft

EPS = 1e-8

# (n_fft, hop, win_length) triplets for the multi-resolution STFT loss (as in Parallel WaveGAN).
DEFAULT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((512, 128, 512), (1024, 256, 1024),
                                                         (2048, 512, 2048))


def _f32(*xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(x.float() for x in xs)


def _magnitude(x: torch.Tensor, n_fft: int, hop: int, win_length: int | None = None,
               power: float = 1.0) -> torch.Tensor:
    """Magnitude spectrogram: ``x: (..., T) -> (..., F, N)`` with ``F = n_fft // 2 + 1``.

    Short inputs are zero-padded to ``n_fft`` so any length works.
    """
    win_length = win_length or n_fft
    shape = x.shape
    x = x.reshape(-1, shape[-1])  # (M, T)
    if x.shape[-1] < n_fft:
        x = F.pad(x, (0, n_fft - x.shape[-1]))
    spec = stft(x, n_fft, hop, win_length)  # (M, F, N)
    mag = spec.abs().clamp_min(EPS) if power == 1.0 else spec.abs().pow(power)
    return mag.reshape(*shape[:-1], *mag.shape[-2:])


# ---------------------------------------------------------------- waveform and magnitude losses
def l1(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all samples."""
    est, ref = _f32(est, ref)
    return (est - ref).abs().mean()


def mse(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all samples."""
    est, ref = _f32(est, ref)
    return (est - ref).pow(2).mean()


def spec_l1(est: torch.Tensor, ref: torch.Tensor, *, n_fft: int = 1024, hop: int = 256,
            ) -> torch.Tensor:
    """L1 between STFT magnitudes ``(..., F, N)`` of ``est`` and ``ref``."""
    est, ref = _f32(est, ref)
    return (_magnitude(est, n_fft, hop) - _magnitude(ref, n_fft, hop)).abs().mean()


def spec_mse(est: torch.Tensor, ref: torch.Tensor, *, n_fft: int = 1024, hop: int = 256,
             ) -> torch.Tensor:
    """MSE between STFT magnitudes ``(..., F, N)`` of ``est`` and ``ref``."""
    est, ref = _f32(est, ref)
    return (_magnitude(est, n_fft, hop) - _magnitude(ref, n_fft, hop)).pow(2).mean()


def compressed_spec(est: torch.Tensor, ref: torch.Tensor, *, n_fft: int = 512, hop: int = 128,
                    power: float = 0.3, complex_weight: float = 0.3) -> torch.Tensor:
    """MSE between power-law compressed STFTs (Braun and Tashev's compressed spectral loss).

    Each STFT ``X`` is compressed to ``|X|**power * X / |X|``; the loss is
    ``(1 - complex_weight) * mean(| |E|**p - |R|**p |**2) + complex_weight * mean(|E_c - R_c|**2)``.
    Compression lifts quiet bins (residual noise in speech pauses, weak harmonics) towards loud
    ones, which is what perceptual scores such as PESQ weigh; the complex term also sees phase.
    """
    if not 0.0 < power <= 1.0:
        raise ValueError(f"power must be in (0, 1], got {power!r}")
    if not 0.0 <= complex_weight <= 1.0:
        raise ValueError(f"complex_weight must be in [0, 1], got {complex_weight!r}")
    est, ref = _f32(est, ref)
    spec = stft(torch.stack([est, ref]), n_fft, hop)  # (2, ..., F, N)
    # |X|**p with a smooth floor: the plain power has an infinite gradient at |X| = 0
    mag = (spec.real.pow(2) + spec.imag.pow(2) + EPS).pow(power / 2)
    cplx = spec * (mag / (spec.abs() + EPS))
    m_est, m_ref = mag.chunk(2)
    c_est, c_ref = cplx.chunk(2)
    mag_term = (m_est - m_ref).pow(2).mean()
    cplx_term = (c_est - c_ref).abs().pow(2).mean()
    return (1.0 - complex_weight) * mag_term + complex_weight * cplx_term


def multi_resolution_stft(est: torch.Tensor, ref: torch.Tensor, *,
                          resolutions: Sequence[Sequence[int]] = DEFAULT_RESOLUTIONS,
                          sc_weight: float = 1.0, mag_weight: float = 1.0,
                          log_floor: float = 1e-5) -> torch.Tensor:
    """Multi-resolution STFT loss: mean over resolutions of spectral convergence + log-magnitude L1.

    Spectral convergence is ``|| |ref| - |est| ||_F / || |ref| ||_F`` over the whole batch (as in
    Parallel WaveGAN; per-signal ratios explode on silent references); the log term is
    ``mean |log max(|ref|, floor) - log max(|est|, floor)|``. ``resolutions`` is a list of
    ``(n_fft, hop[, win_length])``.
    """
    est, ref = _f32(est, ref)
    total = est.new_zeros(())
    for res in resolutions:
        n_fft, hop = int(res[0]), int(res[1])
        win = int(res[2]) if len(res) > 2 else n_fft
        m_est, m_ref = _magnitude(est, n_fft, hop, win), _magnitude(ref, n_fft, hop, win)
        sc = (m_ref - m_est).norm() / (m_ref.norm() + EPS)
        log_mag = (m_ref.clamp_min(log_floor).log() - m_est.clamp_min(log_floor).log()).abs()
        total = total + sc_weight * sc + mag_weight * log_mag.mean()
    return total / len(resolutions)


# ---------------------------------------------------------------- SNR-type losses
def si_sdr(est: torch.Tensor, ref: torch.Tensor, *, eps: float = EPS) -> torch.Tensor:
    """Scale-invariant SDR in dB per signal: ``(..., T) -> (...)`` (mean removed)."""
    est, ref = _f32(est, ref)
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return 10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


def snr(est: torch.Tensor, ref: torch.Tensor, *, eps: float = EPS) -> torch.Tensor:
    """Plain SNR (= SDR without projection) in dB per signal: ``(..., T) -> (...)``."""
    est, ref = _f32(est, ref)
    return 10 * torch.log10((ref.pow(2).sum(-1) + eps) / ((ref - est).pow(2).sum(-1) + eps))


def neg_si_sdr(est: torch.Tensor, ref: torch.Tensor, *, eps: float = EPS) -> torch.Tensor:
    """Negative SI-SDR (dB), averaged over all signals; channels are scored separately."""
    return -si_sdr(est, ref, eps=eps).mean()


def neg_snr(est: torch.Tensor, ref: torch.Tensor, *, eps: float = EPS) -> torch.Tensor:
    """Negative SNR (dB), averaged over all signals."""
    return -snr(est, ref, eps=eps).mean()


# ---------------------------------------------------------------- losses that see the mixture
def _stem_energy(x: torch.Tensor) -> torch.Tensor:
    """Energy per example and source, channels together: ``(B, S, C, T) -> (B, S)``."""
    return x.pow(2).flatten(2).sum(-1)


def _mix_energy(mix: torch.Tensor) -> torch.Tensor:
    """Energy per example, channels together: ``(B, C, T) -> (B, 1)``."""
    return mix.pow(2).flatten(1).sum(-1, keepdim=True)


def noise_weighted_mse(est: torch.Tensor, ref: torch.Tensor, mix: torch.Tensor, *,
                       floor: float = 1e-3, eps: float = EPS) -> torch.Tensor:
    """Error energy relative to the input noise energy, per example and source, averaged.

    ``est, ref: (B, S, C, T)``, ``mix: (B, C, T)``. Each source's error is divided by the
    energy of what it has to remove (``mix - ref``), so quiet and loud noises count alike:
    1.0 means "no better than outputting the mixture", 0.0 a perfect estimate. ``floor`` times
    the mixture energy is added to the divisor so that nothing-to-remove cases stay bounded.
    """
    est, ref, mix = _f32(est, ref, mix)
    noise = mix.unsqueeze(1) - ref  # (B, S, C, T)
    err = _stem_energy(est - ref)  # (B, S)
    return (err / (_stem_energy(noise) + floor * _mix_energy(mix) + eps)).mean()


def noise_huber(est: torch.Tensor, ref: torch.Tensor, mix: torch.Tensor, *,
                noise_index: int | None = None, delta: float = 0.01) -> torch.Tensor:
    """Huber loss on the noise estimate, for speech enhancement.

    ``est, ref: (B, S, C, T)``, ``mix: (B, C, T)``. With ``noise_index`` the model's own noise
    source is scored; otherwise the noise estimate is ``mix - sum(est)`` (what the model left out)
    against ``mix - sum(ref)``. ``delta`` is the quadratic/linear switch point (waveform units).
    """
    est, ref, mix = _f32(est, ref, mix)
    if noise_index is not None:
        n_est, n_ref = est[:, noise_index], ref[:, noise_index]
    else:
        n_est, n_ref = mix - est.sum(1), mix - ref.sum(1)
    return F.huber_loss(n_est, n_ref, delta=delta) / delta


def soft_snr(est: torch.Tensor, ref: torch.Tensor, mix: torch.Tensor | None = None, *,
             max_snr_db: float = 30.0, eps: float = EPS) -> torch.Tensor:
    """Negative SNR (dB) per source with a soft floor tied to the mixture, averaged.

    ``est, ref: (B, S, C, T)``, ``mix: (B, C, T)`` (the sum of ``ref`` without it). With
    ``tau = 10^(-max_snr_db / 10)`` and ``E_x`` the mixture energy (channels together):
    ``10 log10((|ref - est|^2 + tau E_x) / (|ref|^2 + tau E_x))``. Every source counts by its
    own level, so a stem 20 dB below the others weighs as much as they do (plain L1 lets the
    model leave it silent); a silent reference gives 0 for a silent estimate, and the floor
    stops any source from being pushed past ``max_snr_db`` below the mixture. A perfect
    estimate scores about ``-max_snr_db`` for a source as loud as the mixture.
    """
    est, ref = _f32(est, ref)
    mix = ref.sum(1) if mix is None else mix.float()
    floor = 10 ** (-max_snr_db / 10) * _mix_energy(mix)  # (B, 1)
    err, energy = _stem_energy(ref - est), _stem_energy(ref)  # (B, S)
    return (10 * torch.log10((err + floor + eps) / (energy + floor + eps))).mean()


# ---------------------------------------------------------------- spectrogram SSIM
def _gaussian_window(size: int, sigma: float, device, dtype) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-coords.pow(2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]  # (1, 1, size, size)


def spec_ssim(est: torch.Tensor, ref: torch.Tensor, *, n_fft: int = 512, hop: int = 128,
              window: int = 7, sigma: float = 1.5, floor_db: float = -80.0) -> torch.Tensor:
    """``1 - SSIM`` between log-magnitude spectrograms (images ``(F, N)`` per signal).

    Log magnitudes (dB) are clamped at ``floor_db`` below the reference's maximum and mapped to
    ``[0, 1]`` with the reference's range, so the SSIM constants (``0.01, 0.03``) apply.
    """
    est, ref = _f32(est, ref)
    m_est = 20 * _magnitude(est, n_fft, hop).log10()
    m_ref = 20 * _magnitude(ref, n_fft, hop).log10()
    shape = m_ref.shape
    m_est, m_ref = m_est.reshape(-1, 1, *shape[-2:]), m_ref.reshape(-1, 1, *shape[-2:])  # (M,1,F,N)
    top = m_ref.amax(dim=(-2, -1), keepdim=True)
    lo = top + floor_db
    m_est = ((m_est.maximum(lo) - lo) / -floor_db).clamp(max=1.5)
    m_ref = (m_ref.maximum(lo) - lo) / -floor_db
    win = _gaussian_window(window, sigma, est.device, est.dtype)
    pad = window // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), win)

    mu_x, mu_y = blur(m_est), blur(m_ref)
    var_x = blur(m_est * m_est) - mu_x.pow(2)
    var_y = blur(m_ref * m_ref) - mu_y.pow(2)
    cov = blur(m_est * m_ref) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x.pow(2) + mu_y.pow(2) + c1) * (var_x + var_y + c2))
    return 1 - ssim.mean()


# ---------------------------------------------------------------- source projection
def project_on_sources(est: torch.Tensor, target: torch.Tensor, interference: torch.Tensor,
                       *, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares split ``est = a * target + b * interference + residual`` per signal.

    All inputs ``(..., T)``; returns ``a, b: (...)`` and ``residual: (..., T)`` (orthogonal to
    both). The 2x2 normal equations are solved in closed form (no batched ``linalg.solve``).
    """
    est, target, interference = _f32(est, target, interference)
    g_tt = target.pow(2).sum(-1)
    g_ii = interference.pow(2).sum(-1)
    g_ti = (target * interference).sum(-1)
    p_t = (est * target).sum(-1)
    p_i = (est * interference).sum(-1)
    det = g_tt * g_ii - g_ti.pow(2)
    # Relative ridge keeps the solve finite when target/interference are silent or collinear.
    det = det + eps * (g_tt * g_ii + eps)
    a = (p_t * g_ii - p_i * g_ti) / det
    b = (p_i * g_tt - p_t * g_ti) / det
    residual = est - a[..., None] * target - b[..., None] * interference
    return a, b, residual


def source_projection(est: torch.Tensor, ref: torch.Tensor, mix: torch.Tensor | None = None, *,
                      target_weight: float = 1.0, interference_weight: float = 1.0,
                      residual_weight: float = 1.0, floor: float = 1e-3,
                      eps: float = EPS) -> torch.Tensor:
    """Source-projection loss: penalise gain error, interference leakage and artefacts.

    ``est, ref: (B, S, C, T)``; the interference of source ``s`` is ``mix - ref[:, s]`` (or the
    sum of the other references without ``mix``). With ``est = a*ref + b*interf + r``:
    ``loss = (wt*(a-1)^2*E_t + wi*b^2*E_i + wr*E_r) / (E_t + floor*E_mix)``, where ``E`` are
    energies: each term is an error energy relative to the target energy (``floor`` keeps
    silent targets bounded). Averaged over batch, sources and channels.
    """
    est, ref = _f32(est, ref)
    mix = ref.sum(1) if mix is None else mix.float()
    interference = mix.unsqueeze(1) - ref
    a, b, residual = project_on_sources(est, ref, interference, eps=eps)
    e_t = ref.pow(2).sum(-1)
    e_i = interference.pow(2).sum(-1)
    e_r = residual.pow(2).sum(-1)
    e_mix = mix.pow(2).sum(-1).unsqueeze(1)  # (B, 1, C)
    loss = (target_weight * (a - 1).pow(2) * e_t + interference_weight * b.pow(2) * e_i
            + residual_weight * e_r) / (e_t + floor * e_mix + eps)
    return loss.mean()


# ---------------------------------------------------------------- lookup by name
LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "l1": l1,
    "mse": mse,
    "spec_l1": spec_l1,
    "spec_mse": spec_mse,
    "compressed_spec": compressed_spec,
    "mrstft": multi_resolution_stft,
    "si_sdr": neg_si_sdr,
    "snr": neg_snr,
    "soft_snr": soft_snr,
    "noise_weighted_mse": noise_weighted_mse,
    "noise_huber": noise_huber,
    "spec_ssim": spec_ssim,
    "projection": source_projection,
}


def source_weighted(fn: Callable[..., torch.Tensor],
                    weights: list[float]) -> Callable[..., torch.Tensor]:
    """``fn`` applied to each source ``s`` of ``est, ref: (B, S, C, T)`` on its own, weighted by
    ``weights[s]`` and divided by the weights' sum. With equal weights a loss that averages over
    the sources (L1, spectral L1, ...) is unchanged; a larger weight trains that source harder.
    ``mix`` is passed whole, so losses that score a source against ``mix - ref`` (noise-weighted
    MSE, projection, soft SNR) keep their meaning; ``noise_huber``, which scores the sources'
    sum or one source by index, does not split by source (``get_weighted_loss`` refuses it)."""
    if not weights or any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"source weights must be finite, >= 0 and not all 0, got {weights!r}")
    total = float(sum(weights))

    def weighted(est, ref, mix=None):
        if est.shape[1] != len(weights):
            raise ValueError(f"{len(weights)} source weights for {est.shape[1]} sources")
        return sum(w * fn(est[:, s:s + 1], ref[:, s:s + 1], mix)
                   for s, w in enumerate(weights) if w > 0) / total

    return weighted


def _needs_mix(fn: Callable) -> bool:
    return "mix" in inspect.signature(fn).parameters


def get_loss(name: str, **kwargs) -> Callable[..., torch.Tensor]:
    """Loss callable ``loss(est, ref, mix=None) -> scalar`` for ``name`` with ``kwargs`` bound.

    ``name`` is a key of ``LOSSES`` or ``"sum"`` with ``terms=[{"name", "weight", "kwargs"}]``
    for a weighted sum, e.g. L1 plus 0.5 x multi-resolution STFT.
    """
    if name == "sum":
        terms = kwargs.pop("terms", None)
        if not terms or kwargs or any(not isinstance(t, dict) or "name" not in t for t in terms):
            raise ValueError("loss 'sum' takes only terms=[{name, weight, kwargs}, ...]")
        parts = [(float(t.get("weight", 1.0)), get_loss(t["name"], **dict(t.get("kwargs") or {})))
                 for t in terms]

        def summed(est, ref, mix=None):
            return sum(w * fn(est, ref, mix) for w, fn in parts)

        return summed
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r} (known: {', '.join(sorted(LOSSES))}, sum)")
    fn = LOSSES[name]
    params = inspect.signature(fn).parameters
    unknown = [k for k in kwargs if k not in params or k in ("est", "ref", "mix")]
    if unknown:
        raise ValueError(f"loss {name!r} has no option(s) {', '.join(unknown)}")
    bound = functools.partial(fn, **kwargs)
    if _needs_mix(fn):
        required = params["mix"].default is inspect.Parameter.empty

        def with_mix(est, ref, mix=None):
            if mix is None and required:
                raise ValueError(f"loss {name!r} needs the mixture")
            return bound(est, ref, mix=mix)

        return with_mix
    return lambda est, ref, mix=None: bound(est, ref)


# Losses that score the sources' sum (or one source by index), so cannot be taken per source.
_WHOLE_LOSSES = frozenset({"noise_huber"})


def _loss_names(name: str, kwargs: dict | None = None) -> list[str]:
    """The names of the losses a config uses: ``[name]``, or the terms' names for ``"sum"``."""
    if name != "sum":
        return [name]
    return [n for t in (kwargs or {}).get("terms") or [] for n in _loss_names(
        t.get("name", ""), t.get("kwargs"))]


def get_weighted_loss(name: str, weights: list[float], **kwargs) -> Callable[..., torch.Tensor]:
    """``get_loss(name, **kwargs)`` taken per source with ``weights`` (``source_weighted``);
    a loss that does not split by source (``noise_huber``, alone or as a term) is an error."""
    whole = sorted(set(_loss_names(name, kwargs)) & _WHOLE_LOSSES)
    if whole:
        raise ValueError(f"source_weights cannot split {', '.join(whole)} (it scores the "
                         "sources' sum or one source by index); drop one of the two")
    return source_weighted(get_loss(name, **kwargs), weights)
