"""Shared test set-up: one torch thread (2-core CI, PITFALLS.md), small synthetic signals."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
os.environ["UNWEAVE_CACHE"] = tempfile.mkdtemp(prefix="unweave-test-cache-")  # never ~/.cache


class IdentityModel(torch.nn.Module):
    """Oracle-style stand-in: source i = (i + 1) * mixture. Exactly linear, for engine tests."""

    def __init__(self, sources=("a", "b"), sample_rate=8000, audio_channels=2, segment=0.5):
        super().__init__()
        self.sources, self.sample_rate = tuple(sources), sample_rate
        self.audio_channels, self.segment = audio_channels, segment
        self.calls = 0

    def valid_length(self, length: int) -> int:
        return length

    def forward(self, mix):
        self.calls += 1
        return torch.stack([(i + 1) * mix for i in range(len(self.sources))], dim=1)


@pytest.fixture
def identity_model():
    return IdentityModel()


def write_tone(path, seconds=1.0, sample_rate=8000, channels=2, freq=440.0, amp=0.3):
    import soundfile as sf

    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wav = amp * np.sin(2 * np.pi * freq * t)
    data = np.stack([wav * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)
    sf.write(str(path), data, sample_rate)
    return path


@pytest.fixture
def tone(tmp_path):
    return write_tone(tmp_path / "tone.wav")
