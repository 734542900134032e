"""Band extension: stems of a model below the file's rate get the mixture's upper band."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from unweave.audio import convert
from unweave.dsp.bandext import BandExtender

from .conftest import IdentityModel

RATE, MODEL_RATE = 44100, 22050


def tone(freq, seconds=1.0, rate=RATE, gate=None):
    t = torch.arange(int(seconds * rate)) / rate
    wav = torch.sin(2 * torch.pi * freq * t)
    if gate is not None:  # on during [gate[0], gate[1]) seconds
        wav = wav * ((t >= gate[0]) & (t < gate[1]))
    return torch.stack([wav, 0.5 * wav]).float()  # (2, T)


def band_of(mix):
    down = convert.resample(mix, RATE, MODEL_RATE)
    return convert.resample(down, MODEL_RATE, RATE)[..., : mix.shape[-1]]


def band_energy(wav, low, high, rate=RATE):
    spec = torch.fft.rfft(wav.double(), dim=-1).abs() ** 2
    freqs = torch.fft.rfftfreq(wav.shape[-1], 1 / rate)
    return float(spec[..., (freqs >= low) & (freqs < high)].sum())


def test_the_upper_band_follows_the_stem_that_has_energy_near_the_model_band_edge():
    # stem a: a 9 kHz tone in the first half (the guide band of a 22.05 kHz model); stem b: a
    # 1 kHz tone throughout. The mixture also has a 15 kHz tone in the first half (a cymbal's
    # air above what the model hears): it belongs with stem a.
    a, b = tone(9000, gate=(0.0, 0.5)), tone(1000)
    air = 0.3 * tone(15000, gate=(0.0, 0.5))
    mix = a + b + air
    stems = torch.stack([band_of(a), band_of(b)])
    out = BandExtender(2, 2, MODEL_RATE, RATE).process(stems, mix, band_of(mix))
    high_a, high_b = (band_energy(s, 13000, 17000) for s in out)
    assert high_a > 0.95 * band_energy(air, 13000, 17000)
    assert high_b < 0.02 * high_a


def test_the_stems_gain_exactly_what_the_model_never_saw():
    gen = torch.Generator().manual_seed(0)
    mix = 0.1 * torch.randn(2, RATE // 2, generator=gen)
    band = band_of(mix)
    stems = torch.stack([0.3 * band, 0.7 * band])
    out = BandExtender(2, 2, MODEL_RATE, RATE).process(stems, mix, band)
    torch.testing.assert_close(out.sum(0), mix, atol=1e-5, rtol=0)
    assert band_energy(out[0], 12000, 22050) > 0.01 * band_energy(mix, 12000, 22050)


def test_blocks_give_the_same_samples_as_one_call():
    gen = torch.Generator().manual_seed(1)
    mix = 0.1 * torch.randn(2, 30000, generator=gen)
    band = band_of(mix)
    stems = torch.stack([0.2 * band, 0.8 * band]) + 0.01 * torch.randn(2, 2, 30000, generator=gen)
    whole = BandExtender(2, 2, MODEL_RATE, RATE).process(stems, mix, band)
    ext, parts, start = BandExtender(2, 2, MODEL_RATE, RATE), [], 0
    for size in (7000, 1, 12345, 30000):
        end = min(start + size, mix.shape[-1])
        parts.append(ext.process(stems[..., start:end], mix[:, start:end], band[:, start:end]))
        start = end
    torch.testing.assert_close(torch.cat(parts, -1), whole, atol=1e-6, rtol=0)


@pytest.mark.parametrize("rate", [MODEL_RATE, 16000])
def test_nothing_happens_at_or_below_the_model_rate(rate):
    ext = BandExtender(2, 2, MODEL_RATE, rate)
    stems = torch.randn(2, 2, 100)
    assert not ext.active
    assert ext.process(stems, torch.randn(2, 100), torch.zeros(2, 100)) is stems


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="guide"):
        BandExtender(2, 2, MODEL_RATE, RATE, guide=1.5)
    with pytest.raises(ValueError, match="smoothing"):
        BandExtender(2, 2, MODEL_RATE, RATE, smoothing=0)


class Shares(IdentityModel):
    """Sources that add up to the mixture: 0.25 and 0.75 of it."""

    def forward(self, mix):
        return torch.stack([0.25 * mix, 0.75 * mix], dim=1)


def test_separator_stems_sum_to_the_full_band_file_in_memory_and_streaming(tmp_path):
    from unweave.inference.separator import OutputOptions, Separator

    mix = 0.3 * tone(440, seconds=1.3) + 0.2 * tone(16000, seconds=1.3)  # 16 kHz: above 11 kHz
    path = tmp_path / "mix.wav"
    sf.write(path, mix.numpy().T, RATE, subtype="FLOAT")
    sep = Separator(Shares(sample_rate=MODEL_RATE))
    stems = sep.separate_tensor(mix, RATE)
    total = stems["a"] + stems["b"]
    assert band_energy(total - mix, 0, RATE / 2) < 1e-6 * band_energy(mix, 0, RATE / 2)
    files = sep.separate_to_files(path, tmp_path / "out",
                                  options=OutputOptions(subtype="FLOAT", clip="none"))
    for name, file in files.items():
        written, rate = sf.read(file, always_2d=True)
        assert rate == RATE
        np.testing.assert_allclose(written.T, stems[name].numpy(), atol=1e-5)
    plain = Separator(Shares(sample_rate=MODEL_RATE), band_extension=False).separate_tensor(mix, RATE)
    assert band_energy(plain["a"] + plain["b"], 13000, 19000) < 1e-4 * band_energy(mix, 13000, 19000)


def test_long_calls_are_processed_in_pieces_with_the_same_result(monkeypatch):
    from unweave.dsp import bandext

    gen = torch.Generator().manual_seed(2)
    mix = 0.1 * torch.randn(2, 20000, generator=gen)
    band = band_of(mix)
    stems = torch.stack([0.4 * band, 0.6 * band]) + 0.01 * torch.randn(2, 2, 20000, generator=gen)
    whole = BandExtender(2, 2, MODEL_RATE, RATE).process(stems, mix, band)
    monkeypatch.setattr(bandext, "PIECE_SECONDS", 0.05)  # 2205-sample pieces
    pieces = BandExtender(2, 2, MODEL_RATE, RATE).process(stems, mix, band)
    torch.testing.assert_close(pieces, whole, atol=1e-6, rtol=0)


def test_the_stem_writer_in_short_pieces_writes_the_same_files(tmp_path, monkeypatch):
    from unweave.inference import separator
    from unweave.inference.separator import OutputOptions, Separator

    mix = 0.3 * tone(440, seconds=1.3) + 0.2 * tone(16000, seconds=1.3)
    path = tmp_path / "mix.wav"
    sf.write(path, mix.numpy().T, RATE, subtype="FLOAT")
    sep = Separator(Shares(sample_rate=MODEL_RATE))
    options = OutputOptions(subtype="FLOAT", clip="none", two_stems="a")
    whole = sep.separate_to_files(path, tmp_path / "whole", options=options)
    monkeypatch.setattr(separator, "WRITE_PIECE_SECONDS", 0.07)  # 18 pieces per block
    pieces = sep.separate_to_files(path, tmp_path / "pieces", options=options)
    for name in ("a", "no_a"):
        a, _ = sf.read(whole[name], always_2d=True)
        b, _ = sf.read(pieces[name], always_2d=True)
        assert a.shape == b.shape == (mix.shape[-1], 2)
        np.testing.assert_allclose(b, a, atol=1e-6, rtol=0)
        assert np.abs(a).max() > 0.01
