"""STFT helpers: shapes, frame counts and perfect reconstruction."""

from __future__ import annotations

import pytest
import torch

from unweave.dsp.stft import istft, num_frames, stft


@pytest.mark.parametrize(
    "n_fft,hop,win", [(2048, 512, None), (256, 64, None), (512, 128, None), (2048, 353, 1411)]
)
@pytest.mark.parametrize("length", [1, 100, 1000, 4097])
def test_stft_round_trip(n_fft, hop, win, length):
    x = torch.randn(2, 3, length, generator=torch.Generator().manual_seed(0))
    spec = stft(x, n_fft, hop, win)
    assert spec.is_complex()
    assert spec.shape == (2, 3, n_fft // 2 + 1, num_frames(length, hop))
    y = istft(spec, n_fft, hop, length, win)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, rtol=0, atol=1e-5)


def test_stft_frames_do_not_depend_on_fft_size():
    x = torch.randn(4097)
    assert {stft(x, n, 128).shape[-1] for n in (256, 512, 1024, 8192)} == {num_frames(4097, 128)}


def test_stft_of_a_sinusoid_peaks_at_its_bin():
    sample_rate, n_fft = 8000, 512
    t = torch.arange(sample_rate) / sample_rate
    freq = 40 * sample_rate / n_fft  # exactly bin 40
    spec = stft(torch.sin(2 * torch.pi * freq * t), n_fft, 128)
    assert spec.abs().mean(dim=-1).argmax().item() == 40


def test_stft_is_differentiable():
    x = torch.randn(1, 1000, requires_grad=True)
    istft(stft(x, 256, 64) * 0.5, 256, 64, 1000).sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 0.5))


def test_stft_rejects_mismatched_sizes():
    with pytest.raises(ValueError):
        stft(torch.randn(100), 64, 16, 128)
    with pytest.raises(ValueError):
        istft(torch.zeros(1, 10, 3, dtype=torch.complex64), 64, 16, 100)
