"""Post-filters on separated stems: soft-mask (generalised Wiener) refinement.

A waveform model's estimates leak each other's sound and need not add up to the mixture.
Refinement keeps only what each estimate says about *where* its source is in the
time-frequency plane: with ``V_j = |STFT(estimate_j)| ** power``, every stem becomes

    istft( V_j / sum_k V_k  *  STFT(mixture) )

so the stems share out the mixture (they sum to it up to the STFT's float error) and carry its
phase. ``power=2`` is the classic Wiener filter on power spectrograms; ``power=1`` (the default)
is the generalised, "fractional power" variant (Liutkus & Badeau, ICASSP 2015), which on the
music4 validation songs scored higher for Conv-TasNet than ``power=2``. Bins where every estimate
is silent get equal shares.

``spatial=True`` (multichannel mixtures) adds each source's spatial covariance: a per-bin C x C
matrix ``R_j(f)``, estimated from the soft-mask stems above over the whole chunk, models where
the source sits in the stereo field. Every stem then becomes the multichannel Wiener filter

    Y_j = v_j R_j (sum_k v_k R_k)^-1 X,    v_j = mean over channels of mask_j |X|

(the local Gaussian model of Duong, Vincent & Gribonval 2010, one EM-style update as in
Nugraha, Liutkus & Vincent 2016, here with the fractional-power spectra above). The gains still
sum to the identity, so the stems still sum to the mixture; a panned source is told apart from
one in the centre even where their spectra overlap. With one channel it is the soft mask.
"""

from __future__ import annotations

import math

import torch

from .stft import istft, stft

# The window Wiener refinement of music stems is usually run with (Open-Unmix: 4096 at 44.1 kHz).
WINDOW_SECONDS = 0.093
# frequency bins the stereo spatial filter processes at a time
SPATIAL_BAND = 128


def fft_size(sample_rate: int, seconds: float = WINDOW_SECONDS) -> int:
    """The power of two nearest ``seconds`` at ``sample_rate`` (2048 at 22.05 kHz)."""
    return 2 ** max(6, round(math.log2(seconds * sample_rate)))


def soft_mask_refine(
    mixture: torch.Tensor,
    estimates: torch.Tensor,
    n_fft: int,
    hop_length: int | None = None,
    power: float = 1.0,
    eps: float = 1e-10,
    spatial: bool = False,
) -> torch.Tensor:
    """Redistribute the mixture among the stems by soft masks from the estimates' spectrograms.

    Args:
        mixture: the mixture the estimates were separated from.
        estimates: one estimate per source, on the sources axis (-3).
        n_fft: STFT size (Hann window) in samples.
        hop_length: STFT hop (default ``n_fft // 4``).
        power: exponent on the estimates' magnitudes (1: ratio mask, 2: Wiener filter).
        eps: floor on the summed masks' denominator.
        spatial: multichannel Wiener filter with per-source spatial covariances (see above).

    Shape:
        mixture: (..., C, T), estimates: (..., S, C, T) -> (..., S, C, T).
    """
    if power <= 0:
        raise ValueError(f"power must be positive, got {power}")
    hop = int(hop_length or n_fft // 4)
    length = mixture.shape[-1]
    mix_spec = stft(mixture, n_fft, hop)  # (..., C, F, N)
    sources = estimates.shape[-3]
    # one source's STFT at a time, into one buffer: a long block's complex spectrograms of every
    # source at once (or a stacked copy of them) would be its largest temporaries
    weights = mix_spec.real.new_empty((*estimates.shape[:-2], *mix_spec.shape[-3:]))
    for j, est in enumerate(estimates.unbind(-3)):
        weights.select(-4, j).copy_(stft(est, n_fft, hop).abs())
    if power != 1.0:
        weights.pow_(power)
    # (V_j + eps / S) / (sum_k V_k + eps): V_j / sum_k V_k wherever an estimate has sound, 1 / S
    # where none has; one division instead of a masked select (this runs on every chunk)
    masks = weights.add_(eps / sources).div_(weights.sum(dim=-4, keepdim=True))
    if spatial and mixture.shape[-2] == 2:
        stem = _StereoWiener(masks, mix_spec, eps).stem
    elif spatial and mixture.shape[-2] > 2:
        stems = _spatial_wiener(masks, mix_spec, eps)

        def stem(j: int) -> torch.Tensor:
            return stems.select(-4, j)
    else:
        def stem(j: int) -> torch.Tensor:
            return masks.select(-4, j) * mix_spec
    out = mixture.new_empty(estimates.shape)
    for j in range(sources):  # one source's filtered spectrogram at a time, as above
        out.select(-3, j).copy_(istft(stem(j), n_fft, hop, length))
    return out


def _spatial_wiener(masks: torch.Tensor, mix_spec: torch.Tensor, eps: float) -> torch.Tensor:
    """Any number of channels (the stereo case has its own, faster, version below).

    Multichannel Wiener filter of ``mix_spec`` (..., C, F, N) from the first-pass stems
    ``masks * X`` of the soft masks ``masks`` (..., S, C, F, N), which also weigh each source's
    fractional-power spectrum (``v_j = masks_j |X|`` averaged over channels)."""
    stems = masks * mix_spec.unsqueeze(-4)
    # per-source spatial covariance per bin, normalised by the source's power (the "local
    # Gaussian model"): R_j(f) = sum_n y y^H / sum_n mean_c |y_c|^2
    power = torch.view_as_real(stems).square().sum(dim=-1).mean(dim=-3)  # (..., S, F, N)
    cov = torch.einsum("...afn,...bfn->...fab", stems, stems.conj())  # (..., S, F, C, C)
    cov = cov / (power.sum(dim=-1) + eps)[..., None, None]
    v = (masks * mix_spec.unsqueeze(-4).abs()).mean(dim=-3)  # (..., S, F, N)
    total = torch.einsum("...sfn,...sfab->...fnab", v.to(cov.dtype), cov)  # (..., F, N, C, C)
    channels = mix_spec.shape[-3]
    eye = torch.eye(channels, dtype=total.dtype, device=total.device)
    # a ridge of 1e-3 of the bin's power keeps the solve stable where the sources' spatial
    # images coincide (a mono recording copied to both channels makes every R_j the same
    # rank-1 matrix): there the filter falls back to the soft masks
    ridge = total.diagonal(dim1=-2, dim2=-1).real.mean(dim=-1)[..., None, None] * 1e-3 + eps
    total = total + ridge * eye
    # z = (sum_k v_k R_k)^-1 X once for all sources; stem j = v_j R_j z
    z = torch.linalg.solve(total, mix_spec.movedim(-3, -1).unsqueeze(-1))
    z = z.squeeze(-1).movedim(-1, -3)  # (..., C, F, N)
    out = torch.einsum("...sfab,...bfn->...safn", cov, z) * v.unsqueeze(-3)
    # the ridge leaves a little of the mixture unassigned: share it out by the soft masks, so
    # that the stems sum to the mixture exactly
    return out + masks * (mix_spec - out.sum(dim=-4)).unsqueeze(-4)


class _StereoWiener:
    """:func:`_spatial_wiener` for two channels, written out on real masks: the first-pass stems
    are ``masks * X``, so each covariance is a sum of real products with ``|X_c|^2`` and one
    complex cross term ``X_0 X_1^*``, and the 2 x 2 Hermitian solve has a closed form (about
    3x faster than the general version on a CPU; the two agree to float precision).

    What all sources share (``z = (sum_k v_k R_k)^-1 X`` and the ridge) is computed once, in
    bands of bins; :meth:`stem` then gives one source's filtered spectrogram, so that only one
    source's complex spectrogram exists at a time.

    Shape: masks (..., S, 2, F, N), mix_spec (..., 2, F, N); stem(j) -> (..., 2, F, N).
    """

    def __init__(self, masks: torch.Tensor, mix_spec: torch.Tensor, eps: float) -> None:
        self.masks = masks
        x0, x1 = mix_spec.unbind(-3)  # (..., F, N) each
        self.a0, self.a1 = x0.abs(), x1.abs()
        shape = (*masks.shape[:-4], masks.shape[-4], masks.shape[-2], 1)  # (..., S, F, 1)
        self.r00 = masks.new_empty(shape)
        self.r11 = masks.new_empty(shape)
        self.r01 = torch.empty(shape, dtype=mix_spec.dtype, device=mix_spec.device)
        self.z0, self.z1 = torch.empty_like(x0), torch.empty_like(x1)
        self.ridge = torch.empty_like(self.a0)
        # every bin is filtered on its own: bands of bins bound the temporaries' memory
        for lo in range(0, masks.shape[-2], SPATIAL_BAND):
            self._band(slice(lo, lo + SPATIAL_BAND), x0, x1, eps)

    def _band(self, band: slice, x0: torch.Tensor, x1: torch.Tensor, eps: float) -> None:
        m0, m1 = self.masks[..., band, :].unbind(-3)  # (..., S, f, N) each
        x0, x1 = x0[..., None, band, :], x1[..., None, band, :]  # (..., 1, f, N)
        a0, a1 = self.a0[..., None, band, :], self.a1[..., None, band, :]
        cross = x0 * x1.conj()
        w00, w11, w01 = m0.square() * a0.square(), m1.square() * a1.square(), m0 * m1
        # R_j(f), normalised by the source's power summed over frames (mean over channels)
        p00, p11 = w00.sum(dim=-1, keepdim=True), w11.sum(dim=-1, keepdim=True)  # (..., S, f, 1)
        norm = (p00 + p11) / 2 + eps
        r00, r11 = p00 / norm, p11 / norm
        r01 = torch.complex((w01 * cross.real).sum(dim=-1, keepdim=True),
                            (w01 * cross.imag).sum(dim=-1, keepdim=True)) / norm
        v = (m0 * a0 + m1 * a1) / 2  # fractional-power spectra (..., S, f, N)
        t00 = (v * r00).sum(dim=-3)  # (..., f, N)
        t11 = (v * r11).sum(dim=-3)
        t01 = torch.complex((v * r01.real).sum(dim=-3), (v * r01.imag).sum(dim=-3))
        ridge = (t00 + t11) / 2 * 1e-3 + eps
        t00, t11 = t00 + ridge, t11 + ridge
        det = t00 * t11 - t01.abs().square()  # real: the matrix is Hermitian
        x0, x1 = x0.squeeze(-3), x1.squeeze(-3)
        self.z0[..., band, :] = (t11 * x0 - t01 * x1) / det
        self.z1[..., band, :] = (t00 * x1 - t01.conj() * x0) / det
        self.ridge[..., band, :] = ridge
        self.r00[..., band, :], self.r11[..., band, :], self.r01[..., band, :] = r00, r11, r01

    def stem(self, j: int) -> torch.Tensor:
        """Source ``j``: ``v_j R_j z``, plus its soft-mask share of what the ridge left over
        (``sum_j v_j R_j z = X - ridge z``, so the stems sum to the mixture exactly)."""
        m0, m1 = self.masks.select(-4, j).unbind(-3)  # (..., F, N)
        v = (m0 * self.a0 + m1 * self.a1) / 2
        r00, r11, r01 = (r.select(-3, j) for r in (self.r00, self.r11, self.r01))  # (..., F, 1)
        # out_0 = (v r00 + ridge m0) z0 + v r01 z1,  out_1 = (v r11 + ridge m1) z1 + conj(v r01) z0:
        # two real gains and one complex one (v is real), each used where it is made
        cross = r01 * v  # (..., F, N) complex
        out = torch.empty((*v.shape[:-2], 2, *v.shape[-2:]), dtype=self.z0.dtype,
                          device=v.device)
        out0, out1 = out.unbind(-3)
        torch.mul(self.z0, torch.addcmul(m0 * self.ridge, v, r00), out=out0).add_(self.z1 * cross)
        torch.mul(self.z1, torch.addcmul(m1 * self.ridge, v, r11), out=out1).add_(
            self.z0 * cross.conj())
        return out
