"""Augmentation keeps shapes, keeps stems summing to the mixture, and does what it says."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from unweave.data import augment, mixing
from unweave.errors import UnweaveError

SR = 8000


def _stems(b=3, s=2, c=2, t=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, s, c, t, generator=g) * 0.1


def _gen(seed=1):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("op", [
    lambda x, g: augment.random_gain(x, 6.0, g),
    lambda x, g: augment.sign_flip(x, 0.5, g),
    lambda x, g: augment.channel_swap(x, 0.5, g),
    lambda x, g: augment.random_eq(x, SR, 1.0, 6.0, g),
    lambda x, g: augment.synthetic_reverb(x, SR, 1.0, (0.1, 0.3), g),
])
def test_ops_keep_shape_and_finite(op):
    x = _stems()
    y = op(x, _gen())
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()


def test_probability_zero_is_identity():
    x = _stems()
    g = _gen()
    assert torch.equal(augment.sign_flip(x, 0.0, g), x)
    assert torch.equal(augment.channel_swap(x, 0.0, g), x)
    assert torch.equal(augment.random_eq(x, SR, 0.0, 6.0, g), x)
    assert torch.equal(augment.synthetic_reverb(x, SR, 0.0, (0.1, 0.3), g), x)


def test_gain_sign_swap_are_exact_per_source_transforms():
    x = _stems()
    y = augment.random_gain(x, 6.0, _gen())
    ratio = (y / x).flatten(2)  # one constant per (example, source)
    assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio), rtol=1e-4)
    assert (ratio[..., 0] <= 10 ** (6 / 20) + 1e-4).all()
    flipped = augment.sign_flip(x, 1.0, _gen())
    assert torch.equal(flipped, -x)
    swapped = augment.channel_swap(x, 1.0, _gen())
    assert torch.equal(swapped, x.flip(2))


def test_eq_and_reverb_only_touch_named_sources():
    x = _stems()
    names = ("speech", "noise")
    y = augment.synthetic_reverb(x, SR, 1.0, (0.1, 0.3), _gen(), names, ["speech"])
    assert torch.equal(y[:, 1], x[:, 1]) and not torch.allclose(y[:, 0], x[:, 0])
    # Reverb keeps the energy of each source.
    assert torch.allclose(y[:, 0].pow(2).sum((-2, -1)), x[:, 0].pow(2).sum((-2, -1)), rtol=1e-3)
    z = augment.random_eq(x, SR, 1.0, 6.0, _gen(), names, ["noise"])
    assert torch.equal(z[:, 0], x[:, 0]) and not torch.allclose(z[:, 1], x[:, 1])


def test_speed_shift_crop_lengths_and_identity():
    x = _stems(t=5000)
    out = augment.speed_shift_crop(x, 4000, 0.0, 0, _gen())
    assert out.shape == (3, 2, 2, 4000)
    # Without speed change the crop is an exact window of the input, same for every source.
    b0 = out[0, 0, 0]
    starts = [i for i in range(1001) if torch.equal(x[0, 0, 0, i:i + 4000], b0)]
    assert starts and torch.equal(out[0, 1, 0], x[0, 1, 0, starts[0]:starts[0] + 4000])
    need = augment.input_length(4000, 0.1, 200)
    y = augment.speed_shift_crop(_stems(t=need), 4000, 0.1, 200, _gen())
    assert y.shape[-1] == 4000 and torch.isfinite(y).all()
    with pytest.raises(ValueError):
        augment.speed_shift_crop(_stems(t=4000), 4000, 0.1, 200, _gen())


def test_speed_change_resamples_a_sine():
    t = torch.arange(8000) / SR
    x = torch.sin(2 * torch.pi * 500 * t).view(1, 1, 1, -1)
    need = augment.input_length(4000, 0.2)
    y = augment.speed_shift_crop(x[..., :need], 4000, 0.2, 0, _gen(3))[0, 0, 0]
    peak = torch.fft.rfft(y).abs().argmax().item() * SR / 4000
    assert abs(peak - 500) > 5 and 390 < peak < 610  # pitch moved, within +-20 %


def _peak_hz(y: torch.Tensor) -> float:
    return torch.fft.rfft(y).abs().argmax().item() * SR / y.shape[-1]


def test_speed_per_source_draws_one_factor_per_source():
    t = torch.arange(8000) / SR
    x = torch.sin(2 * torch.pi * 500 * t).view(1, 1, 1, -1).expand(4, 3, 1, -1)
    need = augment.input_length(4000, 0.2)
    shared = augment.speed_shift_crop(x[..., :need], 4000, 0.2, 0, _gen(5))
    own = augment.speed_shift_crop(x[..., :need], 4000, 0.2, 0, _gen(5), per_source=True)
    for b in range(4):
        same = {round(_peak_hz(shared[b, s, 0])) for s in range(3)}
        assert len(same) == 1  # one factor for the whole example
        peaks = [_peak_hz(own[b, s, 0]) for s in range(3)]
        assert all(390 < p < 610 for p in peaks)
    spread = [max(_peak_hz(own[b, s, 0]) for s in range(3))
              - min(_peak_hz(own[b, s, 0]) for s in range(3)) for b in range(4)]
    assert max(spread) > 10  # sources of one example moved by different factors
    aug = augment.Augmenter(SR, ("speech", "music", "sfx"), speed=0.2, speed_per_source=True)
    out = aug(x[..., :aug.input_length(4000)], 4000, _gen(5))
    assert torch.equal(out, own)


def test_augmenter_chain_keeps_sum_to_mixture():
    names = ("speech", "noise")
    aug = augment.Augmenter(SR, names, gain_db=3, channel_swap=0.5, sign_flip=0.5,
                            shift_seconds=0.01, speed=0.05, eq_prob=0.5, reverb_prob=0.5,
                            rt60=[0.1, 0.2], reverb_sources=["speech"])
    length = 4000
    stems = aug(_stems(t=aug.input_length(length)), length, _gen())
    assert stems.shape == (3, 2, 2, length)
    mix = stems.sum(1)  # the trainer's mixture
    assert torch.allclose(mix - stems[:, 1], stems[:, 0], atol=1e-6)
    # Deterministic for a given generator seed.
    again = aug(_stems(t=aug.input_length(length)), length, _gen())
    assert torch.equal(stems, again)


def test_source_gain_ranges_scale_only_the_named_source_within_its_range():
    names = ("speech", "music", "sfx")
    aug = augment.Augmenter(SR, names, source_gain_db={"sfx": [-8, -2]})
    stems = torch.ones(200, 3, 2, 100)
    out = aug(stems, 100, _gen())
    assert torch.equal(out[:, :2], stems[:, :2])  # unnamed sources untouched
    db = 20 * torch.log10(out[:, 2, 0, 0])
    assert db.min() >= -8 - 1e-4 and db.max() <= -2 + 1e-4
    assert db.max() - db.min() > 4  # drawn across the range, not one fixed gain
    assert torch.equal(out[:, 2], out[:, 2, :1, :1].expand(-1, 2, 100))  # one gain per source


@pytest.mark.parametrize("ranges, message", [
    ({"effects": [-8, 0]}, "unknown source"),
    ({"sfx": [0, -8]}, "above high"),
    ({"sfx": "loud"}, "expected [low_db, high_db]"),
])
def test_source_gain_ranges_reject_bad_entries(ranges, message):
    with pytest.raises(UnweaveError, match=re.escape(message)):
        augment.Augmenter(SR, ("speech", "music", "sfx"), source_gain_db=ranges)


def test_batch_shuffle_and_snr_mixing():
    x = _stems(b=6)
    y = mixing.shuffle_sources(x, _gen())
    for s in range(2):  # each source is a permutation of the batch
        assert sorted(y[:, s, 0, 0].tolist()) == sorted(x[:, s, 0, 0].tolist())
    rng = np.random.default_rng(0)
    speech = rng.standard_normal((1, 1000)) * 0.5
    noise = rng.standard_normal((1, 1000)) * 0.1
    _, scaled = mixing.mix_at_snr(speech, noise, 5.0)
    got = 10 * np.log10(np.mean(speech**2) / np.mean(scaled**2))
    assert got == pytest.approx(5.0, abs=1e-6)
    looped = mixing.fit_length(rng, noise[:, :300], 1000, loop=True)
    assert looped.shape == (1, 1000)
