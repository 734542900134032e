"""Losses on hand-made cases: perfect estimates, known scales, known projections, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from unweave import losses
from unweave.dsp.stft import stft


def _stems(b=2, s=2, c=1, t=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, s, c, t, generator=g)


def test_l1_mse_known_values():
    ref = torch.zeros(1, 1, 1, 4)
    est = torch.tensor([1.0, -1.0, 2.0, 0.0]).view(1, 1, 1, 4)
    assert losses.l1(est, ref).item() == pytest.approx(1.0)
    assert losses.mse(est, ref).item() == pytest.approx(1.5)


@pytest.mark.parametrize("name", ["l1", "mse", "spec_l1", "spec_mse", "compressed_spec", "mrstft",
                                  "spec_ssim",                                  "noise_weighted_mse", "noise_huber", "projection"])
def test_perfect_estimate_is_zero(name):
    ref = _stems()
    mix = ref.sum(1)
    kw = {"resolutions": [(256, 64), (128, 32)]} if name == "mrstft" else {}
    loss = losses.get_loss(name, **kw)(ref.clone(), ref, mix)
    assert loss.item() == pytest.approx(0.0, abs=1e-4)


def test_compressed_spec_values_and_gradients():
    ref = _stems(b=2, s=2, t=2048)
    est = ref + 0.1 * _stems(b=2, s=2, t=2048, seed=5)
    # No compression, complex term only: the mean squared STFT error of est - ref.
    diff = stft(est - ref, 256, 64)  # the project's STFT (unweave.dsp.stft)
    plain = losses.compressed_spec(est, ref, n_fft=256, hop=64, power=1.0, complex_weight=1.0)
    assert plain.item() == pytest.approx(diff.abs().pow(2).mean().item(), rel=1e-3)
    # Compression: the same relative error costs far more on a quiet signal than without it.
    quiet = losses.compressed_spec(0.01 * est, 0.01 * ref, n_fft=256, hop=64, power=0.3)
    loud = losses.compressed_spec(est, ref, n_fft=256, hop=64, power=0.3)
    assert quiet.item() / loud.item() == pytest.approx(0.01 ** 0.6, rel=0.05)
    # Silent inputs keep finite gradients (the smooth floor).
    est0 = torch.zeros(1, 1, 1, 1024, requires_grad=True)
    losses.compressed_spec(est0, torch.zeros(1, 1, 1, 1024)).backward()
    assert torch.isfinite(est0.grad).all()
    with pytest.raises(ValueError, match="power"):
        losses.compressed_spec(est, ref, power=0.0)


def test_si_sdr_scale_invariance_and_snr_known_value():
    ref = _stems(b=1, s=1)
    noise = _stems(b=1, s=1, seed=1)
    est = ref + 0.1 * noise
    a = losses.si_sdr(est, ref)
    b = losses.si_sdr(3.7 * est, ref)
    c = losses.si_sdr(est, 0.2 * ref)
    assert torch.allclose(a, b, atol=1e-3) and torch.allclose(a, c, atol=1e-3)
    # SNR: noise at exactly 1/10 the energy -> 10 dB.
    noise = noise * (ref.pow(2).sum() / noise.pow(2).sum() / 10).sqrt()
    assert losses.snr(ref + noise, ref).item() == pytest.approx(10.0, abs=1e-3)
    assert losses.neg_snr(ref + noise, ref).item() == pytest.approx(-10.0, abs=1e-3)
    # SNR is not scale invariant.
    assert losses.snr(2 * ref, ref).item() == pytest.approx(0.0, abs=1e-4)
    assert losses.neg_si_sdr(est, ref).item() == pytest.approx(-a.mean().item(), abs=1e-5)


def test_projection_recovers_known_coefficients():
    g = torch.Generator().manual_seed(3)
    t = 2000
    target = torch.randn(1, 1, 1, t, generator=g)
    interf = torch.randn(1, 1, 1, t, generator=g)
    resid = torch.randn(1, 1, 1, t, generator=g)
    # Make the residual orthogonal to target and interference (Gram-Schmidt).
    basis = torch.cat([target, interf], dim=-2)[0, 0]  # (2, T)
    q, _ = torch.linalg.qr(basis.T)
    resid = resid - (resid[0, 0, 0] @ q @ q.T)
    est = 0.8 * target - 0.3 * interf + 0.05 * resid
    a, b, r = losses.project_on_sources(est, target, interf)
    assert a.item() == pytest.approx(0.8, abs=1e-4)
    assert b.item() == pytest.approx(-0.3, abs=1e-4)
    assert torch.allclose(r, 0.05 * resid, atol=1e-4)
    # The loss is the sum of the three normalised error energies.
    ref = torch.cat([target, interf], dim=1)  # source 0 = target, source 1 = interference
    mix = ref.sum(1)
    est2 = torch.cat([est, interf], dim=1)  # source 1 perfect
    e_t, e_i, e_r = (x.pow(2).sum().item() for x in (target, interf, 0.05 * resid))
    expected0 = (0.8 - 1) ** 2 + 0.09 * e_i / e_t + e_r / e_t
    got = losses.source_projection(est2, ref, mix, floor=0.0).item() * 2  # mean over 2 sources
    assert got == pytest.approx(expected0, rel=1e-3)


def test_noise_weighted_mse_identity_is_one():
    ref = _stems()
    mix = ref.sum(1)
    est = mix.unsqueeze(1).expand_as(ref)  # "output the mixture" for every source
    assert losses.noise_weighted_mse(est, ref, mix, floor=0).item() == pytest.approx(1.0, rel=1e-5)
    # With nothing to remove (the other source silent) the loss stays bounded.
    ref[:, 1] = 0.0
    est = ref + 0.01
    assert losses.noise_weighted_mse(est, ref, ref.sum(1)).item() < 100


def test_soft_snr_weighs_quiet_stems_and_stays_bounded():
    ref = _stems(b=1, s=2, t=8000)
    ref[:, 1] *= 0.1  # a stem 20 dB below the other
    mix = ref.sum(1)
    # Known value: 10 log10((E_err + tau E_x) / (E_ref + tau E_x)) per source, averaged.
    est = ref * 0.9
    tau = 10 ** (-30 / 10)
    e_x = mix.pow(2).sum()
    want = sum(10 * math.log10((0.01 * ref[:, i].pow(2).sum() + tau * e_x)
                               / (ref[:, i].pow(2).sum() + tau * e_x)) for i in range(2)) / 2
    assert losses.soft_snr(est, ref, mix).item() == pytest.approx(want, rel=1e-4)
    # Silencing the quiet stem costs about 10 dB on its own (its SNR down to the floor at
    # -30 dB of the mixture), halved by the average over two stems; L1 hardly notices it.
    silent = ref.clone()
    silent[:, 1] = 0
    perfect = losses.soft_snr(ref.clone(), ref, mix).item()
    assert losses.soft_snr(silent, ref, mix).item() - perfect > 4.5
    assert losses.l1(silent, ref).item() < 0.1 * losses.l1(ref * 0, ref).item()
    # A silent reference with a silent estimate scores 0; the floor caps the best score.
    ref[:, 1] = 0
    assert losses.soft_snr(ref.clone(), ref, ref.sum(1)).item() == pytest.approx(-15.0, abs=0.01)


def test_noise_huber_uses_noise_source_or_residual():
    ref = _stems(s=2)
    mix = ref.sum(1)
    est = ref.clone()
    est[:, 1] += 0.5
    assert losses.noise_huber(est, ref, mix, noise_index=1).item() > 0
    assert losses.noise_huber(est[:, :1], ref[:, :1], mix).item() == pytest.approx(0.0)


def test_mrstft_and_ssim_grow_with_error():
    ref = _stems(b=1, s=1)
    small = ref + 0.01 * _stems(b=1, s=1, seed=5)
    big = ref + 0.5 * _stems(b=1, s=1, seed=5)
    res = [(256, 64), (512, 128, 256)]
    assert (losses.multi_resolution_stft(small, ref, resolutions=res)
            < losses.multi_resolution_stft(big, ref, resolutions=res))
    assert losses.spec_ssim(small, ref) < losses.spec_ssim(big, ref)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_gradients_are_finite_even_for_silence(name):
    ref = _stems(t=3000)
    ref[0, 1] = 0.0  # a silent source (classes are sometimes absent)
    mix = ref.sum(1)
    est = (ref + 0.1 * _stems(t=3000, seed=2)).requires_grad_(True)
    kw = {"noise_index": 1} if name == "noise_huber" else {}
    loss = losses.get_loss(name, **kw)(est, ref, mix)
    loss.backward()
    assert math.isfinite(loss.item())
    assert torch.isfinite(est.grad).all()
    assert est.grad.abs().sum() > 0
    assert loss.item() < 1e3  # a silent source must not blow the loss up


def test_source_weighted_equal_weights_keep_the_loss_and_weights_shift_it():
    ref = _stems(s=3)
    est = ref.clone()
    est[:, 1] += 0.5  # only source 1 is wrong
    spec = losses.get_loss("spec_l1", n_fft=256, hop=64)
    for fn in (losses.get_loss("l1"), spec):
        plain = fn(est, ref).item()
        assert losses.source_weighted(fn, [1, 1, 1])(est, ref).item() == pytest.approx(plain)
        # Source 1's error counts 4 / 6 instead of 1 / 3 of the total: twice the loss.
        assert losses.source_weighted(fn, [1, 4, 1])(est, ref).item() == pytest.approx(2 * plain)
        assert losses.source_weighted(fn, [1, 0, 1])(est, ref).item() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="3 sources"):
        losses.source_weighted(losses.get_loss("l1"), [1, 1])(est, ref)
    for bad in ([], [0, 0], [1, -1], [1, float("nan")]):
        with pytest.raises(ValueError, match="source weights"):
            losses.source_weighted(losses.l1, bad)


def test_get_loss_sum_and_errors():
    ref = _stems()
    est = ref + 0.1
    fn = losses.get_loss("sum", terms=[{"name": "l1"}, {"name": "mse", "weight": 2.0}])
    expected = losses.l1(est, ref) + 2 * losses.mse(est, ref)
    assert fn(est, ref).item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get_loss("nope")
    with pytest.raises(ValueError, match="no option"):
        losses.get_loss("l1", n_fft=3)
    with pytest.raises(ValueError, match="takes only terms"):
        losses.get_loss("sum", terms=[{"weight": 1.0}])  # a term without a name
    with pytest.raises(ValueError, match="needs the mixture"):
        losses.get_loss("noise_weighted_mse")(est, ref)
