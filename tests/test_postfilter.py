"""Soft-mask refinement: stems share out the mixture, leakage is removed, the wrapper is a model."""

from __future__ import annotations

import math

import pytest
import torch

from unweave.dsp.postfilter import fft_size, soft_mask_refine
from unweave.inference.refine import Refined
from unweave.inference.separator import Separator
from unweave.metrics import snr

from .conftest import IdentityModel

RATE = 8000


def tones(*freqs: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * RATE)) / RATE
    return torch.stack([0.3 * torch.sin(2 * math.pi * f * t)[None].repeat(2, 1) for f in freqs])


def test_refined_stems_sum_to_the_mixture():
    gen = torch.Generator().manual_seed(0)
    mix = torch.randn(3, 2, 5000, generator=gen)  # (B, C, T)
    est = torch.randn(3, 4, 2, 5000, generator=gen)  # (B, S, C, T), unrelated to the mixture
    out = soft_mask_refine(mix, est, n_fft=512)
    assert out.shape == est.shape
    torch.testing.assert_close(out.sum(1), mix, rtol=0, atol=1e-4)


def test_refinement_removes_leakage_between_separate_bands():
    refs = tones(300.0, 2000.0)  # (S, C, T): two sources far apart in frequency
    mix = refs.sum(0)
    leaky = torch.stack([refs[0] + 0.2 * refs[1], 0.6 * (refs[1] + 0.2 * refs[0])])  # and a gain error
    refined = soft_mask_refine(mix, leaky, n_fft=512, power=2.0)
    before, after = snr(refs, leaky), snr(refs, refined)
    # leftover at 2 kHz: mask 0.6^2 / (0.6^2 + 0.2^2) = 0.9, i.e. 20 dB; the gain error is gone too
    assert after.min() > 19 and (after > before + 5).all(), (before, after)


def test_silent_bins_are_shared_equally_and_power_is_checked():
    mix = tones(440.0)[0]
    out = soft_mask_refine(mix, torch.zeros(2, 2, mix.shape[-1]), n_fft=256)
    torch.testing.assert_close(out[0], mix / 2, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="power"):
        soft_mask_refine(mix, out, n_fft=256, power=0.0)


def test_spatial_refinement_uses_where_sources_sit_in_the_stereo_field():
    gen = torch.Generator().manual_seed(0)
    left, right = torch.randn(2, 16000, generator=gen)  # two noises with the same spectrum
    refs = torch.stack([torch.stack([left, 0.3 * left]), torch.stack([0.3 * right, right])])
    mix = refs.sum(0)
    leaky = torch.stack([refs[0] + 0.5 * refs[1], refs[1] + 0.5 * refs[0]])
    soft = soft_mask_refine(mix, leaky, n_fft=512)
    spatial = soft_mask_refine(mix, leaky, n_fft=512, spatial=True)
    torch.testing.assert_close(spatial.sum(0), mix, rtol=0, atol=1e-4)
    # the spectra cannot tell the sources apart, their panning can: about 5 dB better
    # everywhere (13.6 vs 8.3 dB on each source's loud channel, 3.1 vs -2.1 on its quiet one)
    gain = snr(refs, spatial) - snr(refs, soft)
    assert (gain > 3.0).all(), gain
    # one channel: no spatial information, the soft mask exactly
    torch.testing.assert_close(soft_mask_refine(mix[:1], leaky[:, :1], n_fft=512, spatial=True),
                               soft_mask_refine(mix[:1], leaky[:, :1], n_fft=512))


def test_fft_size_is_about_93_ms():
    assert fft_size(22050) == 2048 and fft_size(44100) == 4096 and fft_size(8000) == 1024


def test_refined_model_keeps_the_contract_and_the_separator_applies_it():
    inner = IdentityModel(sources=("a", "b", "c"), sample_rate=RATE)
    wrapped = Refined(inner)
    assert (wrapped.sources, wrapped.sample_rate, wrapped.audio_channels, wrapped.segment) == (
        inner.sources, inner.sample_rate, inner.audio_channels, inner.segment)
    assert wrapped.valid_length(1234) == 1234
    mix = tones(440.0, seconds=1.3)[0]
    plain = Separator(IdentityModel(sources=("a", "b", "c"), sample_rate=RATE))
    assert plain.refine is False  # no catalog setting: off
    raw = plain.separate_tensor(mix, RATE)
    assert torch.allclose(raw["b"], 2 * mix, atol=1e-5)  # identity model: source i = (i+1) mix
    sep = Separator(inner, refine=True)
    assert isinstance(sep.model, Refined)
    stems = sep.separate_tensor(mix, RATE)
    # masks 1/6, 2/6, 3/6 of the mixture; the stems add up to it through the overlap-add
    torch.testing.assert_close(stems["c"], mix / 2, rtol=0, atol=1e-4)
    torch.testing.assert_close(sum(stems.values()), mix, rtol=0, atol=1e-4)


def test_catalog_setting_is_the_default_and_flags_override_it():
    inner = IdentityModel(sample_rate=RATE)
    inner.refine = True
    assert Separator(inner).refine is True
    assert Separator(IdentityModel(sample_rate=RATE), refine=False).refine is False
    inner2 = IdentityModel(sample_rate=RATE)
    inner2.refine = True
    assert Separator(inner2, refine=False).refine is False


def test_chunk_overlap_comes_from_the_request_or_the_model():
    from unweave.inference.separator import DEFAULT_OVERLAP

    plain = IdentityModel(sample_rate=RATE)
    assert Separator(plain).overlap == DEFAULT_OVERLAP == 0.25
    own = IdentityModel(sample_rate=RATE)
    own.default_overlap = 0.1  # a catalog entry's "overlap"
    sep = Separator(own)
    assert sep.overlap == 0.1 and sep.chunk_overlap == 0.1
    assert Separator(own, overlap=0.5).overlap == 0.5  # the request wins
    own.default_overlap = 0.0  # no overlap is a valid setting of its own
    assert Separator(own).overlap == 0.0
    # with a refinement over long blocks, the model inside runs at its own overlap
    refined = IdentityModel(sample_rate=RATE)
    refined.default_overlap, refined.refine, refined.segment = 0.1, "spatial", 1.0
    sep = Separator(refined)
    assert isinstance(sep.model, Refined) and sep.model.overlap == 0.1
    mix = torch.randn(2, RATE * 3)
    torch.testing.assert_close(sum(sep.separate_tensor(mix, RATE).values()), mix, rtol=0,
                               atol=1e-4)


def test_refinement_modes_come_from_the_request_or_the_model():
    from unweave.errors import UnweaveError

    def mode(model_setting, request):
        inner = IdentityModel(sample_rate=RATE)
        if model_setting is not None:
            inner.refine = model_setting
        sep = Separator(inner, refine=request)
        spatial = sep.model.spatial if isinstance(sep.model, Refined) else None
        return sep.refine_mode, spatial

    assert mode(None, None) == (None, None)
    assert mode(None, True) == ("spatial", True)  # the default mode
    assert mode(True, None) == ("spatial", True)
    assert mode("soft", None) == ("soft", False)  # a catalog entry's own mode
    assert mode("soft", True) == ("soft", False)
    assert mode("soft", "spatial") == ("spatial", True)
    assert mode("spatial", False) == (None, None)
    with pytest.raises(UnweaveError, match="unknown refinement 'wiener'"):
        mode(None, "wiener")


def test_refinement_context_runs_the_model_in_its_own_chunks():
    class Recording(IdentityModel):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.lengths = []

        def forward(self, mix):
            self.lengths.append(mix.shape[-1])
            return super().forward(mix)

    inner = Recording(sources=("a", "b"), sample_rate=RATE, segment=0.5)
    wrapped = Refined(inner, spatial=True, context=2.0)
    assert wrapped.segment == 2.0 and wrapped.valid_length(1234) == 1234
    assert Refined(inner, spatial=True, context=0.25).segment == 0.5  # shorter: no effect
    mix = tones(440.0, 1000.0, seconds=3.3).sum(0)
    mix[1] *= 0.5  # not the same in both channels
    stems = Separator(wrapped).separate_tensor(mix, RATE)
    # the model saw only chunks of its own segment, the refinement 2 s chunks
    assert inner.lengths and max(inner.lengths) <= int(0.5 * RATE)
    # identity model: every source has the mixture's spatial image, so the spatial filter
    # gives the soft masks, 1/3 and 2/3 of the mixture
    torch.testing.assert_close(stems["a"], mix / 3, rtol=0, atol=1e-4)
    torch.testing.assert_close(stems["a"] + stems["b"], mix, rtol=0, atol=1e-4)


def test_stereo_spatial_filter_matches_the_general_one():
    from unweave.dsp.postfilter import _spatial_wiener, _StereoWiener

    gen = torch.Generator().manual_seed(1)
    masks = torch.rand(2, 3, 2, 65, 40, generator=gen)  # (B, S, C, F, N)
    masks = masks / masks.sum(dim=1, keepdim=True)
    mix = torch.complex(torch.randn(2, 2, 65, 40, generator=gen),
                        torch.randn(2, 2, 65, 40, generator=gen))
    general = _spatial_wiener(masks, mix, 1e-10)
    wiener = _StereoWiener(masks, mix, 1e-10)
    fast = torch.stack([wiener.stem(j) for j in range(masks.shape[1])], dim=1)
    torch.testing.assert_close(fast, general, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast.sum(1), mix, rtol=0, atol=1e-5)


def test_cli_refine_choices_are_the_refinement_modes():
    from unweave.cli import REFINE_CHOICES
    from unweave.inference.refine import REFINE_MODES

    assert REFINE_CHOICES == REFINE_MODES  # spelt out in the CLI to keep torch out of --help
