"""Metrics: hand-made cases (scale invariance, known SNR, perfect estimates, gain sensitivity)
and parity with reference implementations (museval 0.4.1, fast_bss_eval) when installed."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import scipy.signal
import torch

from unweave.metrics import (
    MissingDependencyError,
    bss_eval_v4,
    bss_eval_v4_median,
    mdx_sdr,
    pesq_score,
    sdr_framewise,
    sdr_museval,
    sdr_v4_simple,
    si_sdr,
    snr,
    stoi_score,
)
from unweave.metrics.sdr import frame_bounds

SR = 8000


def _noise(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _museval():
    try:  # museval imports stempeg, which needs an ffmpeg binary (not an ImportError)
        import museval
    except (ImportError, RuntimeError) as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"museval not usable: {exc}")
    return museval


def synthetic_scene(n_src=3, n_chan=2, seconds=3.2, seed=0, sample_rate=SR):
    """Sources plus scaled interference and noise, FIR filtered, delayed, time-varying gains.

    Returns references, estimates: (S, C, T) float64.
    """
    rng = np.random.default_rng(seed)
    length = int(seconds * sample_rate)
    refs = rng.standard_normal((n_src, n_chan, length))
    refs[0] = scipy.signal.lfilter([1.0, 0.5, 0.25], 1.0, refs[0], axis=-1)  # coloured source
    gain = 0.6 + 0.4 * np.sin(np.linspace(0, 5 * np.pi, length))
    ests = np.empty_like(refs)
    for s in range(n_src):
        fir = np.r_[1.0, 0.2 * rng.standard_normal(15)]
        est = np.roll(scipy.signal.lfilter(fir, 1.0, refs[s], axis=-1), 3 + s, axis=-1) * gain
        for o in range(n_src):
            if o != s:
                est = est + 0.15 * (o + 1) * refs[o]
        ests[s] = est + 0.05 * rng.standard_normal((n_chan, length))
    return refs, ests


# ----------------------------------------------------------------------------------------------
# utterance metrics: hand-made cases
def test_si_sdr_is_scale_invariant_and_sdr_is_not():
    ref = _noise((2, 4000))
    est = ref + 0.3 * _noise((2, 4000), seed=1)
    base = si_sdr(ref, est)
    for gain in (0.01, 0.5, 3.7, 100.0):
        np.testing.assert_allclose(si_sdr(ref, gain * est), base, atol=1e-6)
    # SDR (museval image definition) and SNR are gain-sensitive
    assert np.all(snr(ref, 0.5 * est) < snr(ref, est) - 1.0)
    ref3, est3 = ref[:, None], est[:, None]
    assert np.all(sdr_museval(ref3, 0.5 * est3, SR) < sdr_museval(ref3, est3, SR) - 1.0)


@pytest.mark.parametrize("target_db", [10.0, 0.0, 25.0])
def test_snr_of_known_noise_level(target_db):
    signal = _noise(16000)
    noise = _noise(16000, seed=3)
    noise *= np.sqrt(np.sum(signal**2) / np.sum(noise**2) / 10 ** (target_db / 10))
    assert snr(signal, signal + noise) == pytest.approx(target_db, abs=1e-6)
    # with a zero-mean reference and an orthogonal noise, SI-SDR agrees
    noise_orth = noise - signal * (noise @ signal) / (signal @ signal)
    noise_orth *= np.sqrt(np.sum(signal**2) / np.sum(noise_orth**2) / 10 ** (target_db / 10))
    orth = si_sdr(signal, signal + noise_orth, zero_mean=False)
    assert orth == pytest.approx(target_db, abs=1e-6)
    # museval SDR on one 2 s frame is the same ratio
    one_frame = sdr_museval(
        signal[None, None], (signal + noise)[None, None], SR, window_seconds=2.0
    )
    assert one_frame[0] == pytest.approx(target_db, abs=1e-6)


def test_perfect_estimate_scores_very_high():
    ref = _noise((3, 2, 8000))
    assert np.all(si_sdr(ref, ref) > 100)
    assert np.all(snr(ref, ref) > 100)
    assert np.all(mdx_sdr(ref, ref, dim=(-2, -1)) > 90)
    assert np.all(np.isposinf(sdr_museval(ref, ref, SR)))


def test_gain_sensitivity_of_sdr_matches_the_formula():
    ref = _noise((2, 1, 3 * SR))
    # s_hat = g s  ->  SDR = -20 log10 |1 - g| on every frame
    for gain in (0.5, 0.9, 1.5):
        expected = -20 * math.log10(abs(1 - gain))
        np.testing.assert_allclose(sdr_museval(ref, gain * ref, SR), expected, atol=1e-9)
        np.testing.assert_allclose(sdr_v4_simple(ref, gain * ref, SR), expected, atol=1e-9)
    # SI-SDR ignores the gain entirely
    assert np.all(si_sdr(ref, 0.5 * ref) > 100)


def test_mdx_sdr_is_the_challenge_formula():
    ref, est = _noise((4, 2, 1000)), _noise((4, 2, 1000), seed=5)
    num = np.sum(ref**2, axis=(1, 2)) + 1e-7
    den = np.sum((ref - est) ** 2, axis=(1, 2)) + 1e-7
    np.testing.assert_allclose(mdx_sdr(ref, est, dim=(-2, -1)), 10 * np.log10(num / den))
    # silent reference and silent estimate: 0 dB, not NaN
    assert mdx_sdr(np.zeros(10), np.zeros(10)) == pytest.approx(0.0)


def test_torch_in_torch_out_batched_and_differentiable():
    ref = torch.randn(3, 2, 500, dtype=torch.float32)
    est = (ref + 0.1 * torch.randn_like(ref)).requires_grad_()
    for fn in (si_sdr, snr, mdx_sdr):
        out = fn(ref, est)
        assert isinstance(out, torch.Tensor) and out.shape == (3, 2) and out.dtype == torch.float32
        np.testing.assert_allclose(out.detach().numpy(), fn(ref.numpy(), est.detach().numpy()),
                                   rtol=1e-5)
    (-si_sdr(ref, est).mean()).backward()
    assert est.grad is not None and torch.isfinite(est.grad).all()
    assert isinstance(si_sdr(ref.numpy(), est.detach().numpy()), np.ndarray)
    # numpy framewise metrics accept tensors
    assert sdr_museval(ref, est.detach(), 250).shape == (3,)


# ----------------------------------------------------------------------------------------------
# framewise SDR: museval's framing and silence rules
def test_frame_bounds_follow_museval():
    assert frame_bounds(10, 4, 4) == [(0, 4), (4, 8)]  # trailing partial frame dropped
    assert frame_bounds(10, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert frame_bounds(3, 4, 4) == [(0, 3)]  # shorter than a window: one frame
    x = _noise((1, 1, 5 * SR + 100))
    assert sdr_framewise(x, 0.5 * x, SR).shape == (1, 5)


def test_silent_frames_are_dropped_jointly():
    ref = _noise((2, 1, 4 * SR))
    est = ref + 0.1 * _noise((2, 1, 4 * SR), seed=2)
    est[0, :, 2 * SR : 3 * SR] += 0.5 * ref[0, :, 2 * SR : 3 * SR]  # frame 2 worse for source 0
    ref[1, :, :SR] = 0.0  # frame 0 silent for source 1
    scores, frames = sdr_museval(ref, est, SR, return_frames=True)
    assert np.all(np.isnan(frames[:, 0]))  # museval drops the frame for every source
    assert np.all(np.isfinite(frames[:, 1:]))
    np.testing.assert_allclose(scores, np.median(frames[:, 1:], axis=1))
    alone = sdr_v4_simple(ref, est, SR)  # per-signal rule keeps source 0's frame 0
    assert alone[0] != pytest.approx(scores[0])
    assert np.isnan(sdr_museval(np.zeros((1, 1, SR)), np.ones((1, 1, SR)), SR)[0])


def test_full_bss_eval_sdr_equals_the_simple_image_sdr():
    refs, ests = synthetic_scene(n_src=2, n_chan=2, seconds=2.5, seed=4)
    full = bss_eval_v4(refs, ests, SR, filters_length=64)
    np.testing.assert_allclose(full["sdr"], sdr_framewise(refs, ests, SR), atol=1e-9)
    med = bss_eval_v4_median(refs, ests, SR, filters_length=64)
    np.testing.assert_allclose(med["sdr"], sdr_museval(refs, ests, SR), atol=1e-9)


def test_bss_eval_decomposition_on_a_filtered_reference():
    refs = _noise((2, 1, 2 * SR))
    ests = np.stack([scipy.signal.lfilter([0.8, 0.3, -0.1], 1.0, r, axis=-1) for r in refs])
    out = bss_eval_v4(refs, ests, SR, filters_length=16)
    # pure filtering: no interference; artifacts only from the frame edges (v4 projects the
    # frame's references with filters fitted on the whole signal)
    assert np.all(out["sir"] > 80) and np.all(out["sar"] > 40)
    # ...but the filtering is counted as spatial distortion: |s|^2 / |(h - delta) * s|^2
    np.testing.assert_allclose(out["isr"], 10 * np.log10(1 / 0.14), atol=0.2)
    np.testing.assert_allclose(out["sdr"], out["isr"], atol=1e-3)
    ests[0] += 0.3 * refs[1]
    leaky = bss_eval_v4(refs, ests, SR, filters_length=16)
    np.testing.assert_allclose(leaky["sir"][0], 10 * np.log10(1 / 0.09 * 0.74), atol=0.2)


# ----------------------------------------------------------------------------------------------
# parity with reference implementations
def test_parity_with_museval():
    museval = _museval()
    refs, ests = synthetic_scene(n_src=2, n_chan=2, seconds=2.6, seed=0)
    m_sdr, m_isr, m_sir, m_sar = museval.evaluate(
        refs.transpose(0, 2, 1), ests.transpose(0, 2, 1), win=SR, hop=SR
    )
    ours = bss_eval_v4(refs, ests, SR)
    for name, theirs in (("sdr", m_sdr), ("isr", m_isr), ("sir", m_sir), ("sar", m_sar)):
        np.testing.assert_allclose(ours[name], theirs, atol=0.01, err_msg=name)
    np.testing.assert_allclose(sdr_framewise(refs, ests, SR), m_sdr, atol=1e-9)
    np.testing.assert_allclose(sdr_museval(refs, ests, SR), np.nanmedian(m_sdr, axis=1), atol=1e-9)


def test_parity_with_museval_overlapping_frames_and_silence():
    museval = _museval()
    refs, ests = synthetic_scene(n_src=2, n_chan=1, seconds=3.0, seed=1)
    refs[1, :, : SR // 2] = 0.0
    m_sdr = museval.evaluate(
        refs.transpose(0, 2, 1), ests.transpose(0, 2, 1), win=SR, hop=SR // 2
    )[0]
    ours, frames = sdr_museval(refs, ests, SR, hop_seconds=0.5, return_frames=True)
    np.testing.assert_array_equal(np.isnan(frames), np.isnan(m_sdr))
    np.testing.assert_allclose(frames, m_sdr, atol=1e-9)
    np.testing.assert_allclose(ours, np.nanmedian(m_sdr, axis=1), atol=1e-9)


def test_parity_with_fast_bss_eval_sources():
    fast_bss_eval = pytest.importorskip("fast_bss_eval")
    refs, ests = synthetic_scene(n_src=3, n_chan=1, seconds=2.0, seed=2)
    # fast_bss_eval: torch tensors (its NumPy backend breaks on NumPy 2), single thread
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sdr, sir, sar = fast_bss_eval.bss_eval_sources(
            torch.from_numpy(refs[:, 0]), torch.from_numpy(ests[:, 0]), compute_permutation=False
        )
    finally:
        torch.set_num_threads(threads)
    ours = bss_eval_v4(refs, ests, SR, window_seconds=math.inf, mode="sources")
    np.testing.assert_allclose(ours["sdr"][:, 0], sdr.numpy(), atol=0.01)
    np.testing.assert_allclose(ours["sir"][:, 0], sir.numpy(), atol=0.01)
    np.testing.assert_allclose(ours["sar"][:, 0], sar.numpy(), atol=0.01)


# ----------------------------------------------------------------------------------------------
# perceptual metrics (optional packages)
def _speech_like(seconds=2.0, sample_rate=16000, seed=0):
    """Voiced-speech stand-in: harmonic bursts with a wandering pitch, separated by pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = 140 + 30 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 2.0 * t), 0, None) ** 0.5
    return 0.3 * voiced * envelope + 1e-3 * rng.standard_normal(t.shape)


def test_pesq_and_stoi_rank_clean_above_noisy():
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    clean = _speech_like()
    noisy = clean + 0.1 * _noise(clean.shape, seed=7)
    batch_ref = np.stack([clean, clean])
    batch_est = np.stack([clean, noisy])
    p = pesq_score(batch_ref, batch_est, 16000)
    assert p.shape == (2,) and p[0] > 4.0 and p[1] < p[0] - 0.5
    s = stoi_score(batch_ref, batch_est, 16000)
    assert s[0] > 0.99 and s[1] < s[0]
    # resampling path (PESQ needs 16 kHz) and silent input
    p8 = pesq_score(torch.from_numpy(clean[::2].copy()), torch.from_numpy(noisy[::2].copy()), 8000)
    assert 1.0 < float(p8) < 4.0
    assert np.isnan(pesq_score(np.zeros(16000), clean[:16000], 16000))


def test_missing_optional_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pesq", None)  # import pesq -> ImportError
    monkeypatch.setitem(sys.modules, "pystoi", None)
    with pytest.raises(MissingDependencyError, match="'pesq' package"):
        pesq_score(np.ones(100), np.ones(100), 16000)
    with pytest.raises(ImportError, match="pystoi"):
        stoi_score(np.ones(100), np.ones(100), 16000)
