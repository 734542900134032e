"""Overlap-add engine: identity properties, shifts, streaming equivalence, memory bounds."""

import pytest
import torch

from unweave.inference.chunking import ChunkedSeparation, ChunkPlan, apply, triangular_window

from .conftest import IdentityModel


@pytest.mark.parametrize("length", [0, 1, 7, 4000, 4001, 12345])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.6])
@pytest.mark.parametrize("segment", [0.1, 0.37])
def test_identity_reproduces_input(length, overlap, segment):
    model = IdentityModel()
    mix = torch.randn(2, length)
    out = apply(model, mix, segment=segment, overlap=overlap)
    assert out.shape == (2, 2, length)
    torch.testing.assert_close(out[0], mix, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1], 2 * mix, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shifts", [1, 2, 5])
def test_shifts_are_a_no_op_for_identity(shifts):
    model = IdentityModel()
    mix = torch.randn(2, 9001)
    out = apply(model, mix, segment=0.3, shifts=shifts)
    torch.testing.assert_close(out[0], mix, atol=1e-5, rtol=1e-5)
    assert model.calls >= shifts  # each shift is a real pass


def test_block_feeding_does_not_change_the_result():
    torch.manual_seed(0)
    model = _NonLinear()
    mix = torch.randn(2, 20000)
    whole = apply(model, mix, segment=0.4, overlap=0.3, shifts=2, seed=3)
    for block in (0.05, 0.3, 1.1):
        streamed = apply(model, mix, segment=0.4, overlap=0.3, shifts=2, seed=3, block_seconds=block)
        torch.testing.assert_close(streamed, whole, atol=1e-5, rtol=1e-5)


def test_shifts_change_the_output_of_a_shift_variant_model():
    model = _NonLinear()
    mix = torch.randn(2, 8000)
    plain = apply(model, mix, segment=0.25, shifts=0)
    shifted = apply(model, mix, segment=0.25, shifts=3, seed=1)
    assert not torch.allclose(plain, shifted)


def test_engine_memory_stays_bounded():
    model = IdentityModel(segment=0.25)
    engine = ChunkedSeparation(model, overlap=0.25)
    peak = 0
    for _ in range(200):
        engine.feed(torch.randn(2, 1000))
        peak = max(peak, engine.buffer.shape[-1], engine.passes[0].filled)
    assert peak <= 2 * engine.plan.segment_length + 1000


def test_window_positive_and_peaks_at_one():
    for n in (1, 2, 3, 100, 101):
        w = triangular_window(n)
        assert w.shape == (n,) and bool((w > 0).all()) and float(w.max()) == 1.0


def test_plan_rejects_bad_overlap():
    with pytest.raises(ValueError, match="overlap"):
        ChunkPlan.for_model(IdentityModel(), 1.0, 1.0)


class _NonLinear(IdentityModel):
    """Position-dependent (not shift-equivariant) model, as strided convolutions are."""

    def forward(self, mix):
        ramp = torch.linspace(0.5, 1.5, mix.shape[-1])
        return torch.stack([torch.tanh(mix) * ramp, mix - torch.tanh(mix) * ramp], dim=1)


class _LevelDependent(IdentityModel):
    """Scales the mixture by its own RMS over time: zero padding would change every sample."""

    def forward(self, mix):
        self.calls += 1
        rms = mix.pow(2).mean(-1, keepdim=True).sqrt()
        return torch.stack([mix * rms, mix - mix * rms], dim=1)


@pytest.mark.parametrize("length", [1, 999, 3000])
def test_short_input_runs_without_zero_padding(length):
    model = _LevelDependent(segment=0.5)  # 4000 samples: one chunk, longer than the input
    mix = torch.randn(2, length)
    out = apply(model, mix)
    torch.testing.assert_close(out, model(mix[None])[0], atol=1e-5, rtol=1e-5)


def test_last_chunk_runs_on_the_samples_it_covers():
    model = _LevelDependent(segment=0.5)
    mix = torch.randn(2, 10000)  # chunks at 0 and 4000 (full), 8000 (2000 samples left)
    out = apply(model, mix, overlap=0.0)
    torch.testing.assert_close(out[..., 8000:], model(mix[None, :, 8000:])[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[..., :4000], model(mix[None, :, :4000])[0], atol=1e-5, rtol=1e-5)
    # Streaming gives the same result, and with shifts the first (delayed) chunk is partial too.
    for shifts in (0, 3):
        whole = apply(model, mix, overlap=0.25, shifts=shifts, seed=1)
        streamed = apply(model, mix, overlap=0.25, shifts=shifts, seed=1, block_seconds=0.3)
        torch.testing.assert_close(streamed, whole, atol=1e-5, rtol=1e-5)


def test_finish_without_input_and_shifts_returns_nothing():
    model = _LevelDependent(segment=0.5)
    engine = ChunkedSeparation(model, shifts=2, seed=4)
    out = engine.finish()
    assert out.shape == (2, 2, 0)
    assert model.calls == 0  # no model pass over a chunk that holds none of the signal
