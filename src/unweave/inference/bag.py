"""A bag of models: several separators with the same sources, averaged per source.

As Demucs' bags of models do, each member may carry a weight per source (0 leaves a member's
estimate of that source out, e.g. a source it never learnt). ``Bag`` satisfies the model
metadata contract, so chunking, shifts, refinement and every front end run it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Bag(nn.Module):
    """Weighted per-source average of ``models``.

    Args:
        models: separation models with the same sources (same order), sample rate and channels.
        weights: one row per model, one weight per source (default: all 1); each source's
            weights are normalised to sum to 1, and every source needs a non-zero one.

    Shape:
        mix: (B, C, T) -> (B, S, C, T) for any T (each member pads to its own valid length).
    """

    def __init__(self, models: Sequence[nn.Module],
                 weights: Sequence[Sequence[float]] | None = None) -> None:
        super().__init__()
        if not models:
            raise ValueError("a bag needs at least one model")
        first = models[0]
        for m in models[1:]:
            got = (tuple(m.sources), m.sample_rate, m.audio_channels)
            want = (tuple(first.sources), first.sample_rate, first.audio_channels)
            if got != want:
                raise ValueError(f"bag members differ: (sources, sample_rate, channels) {got} "
                                 f"vs {want}")
        self.members = nn.ModuleList(models)
        self.sources = tuple(first.sources)
        self.sample_rate = int(first.sample_rate)
        self.audio_channels = int(first.audio_channels)
        segments = [m.segment for m in models if m.segment]
        self.segment = min(segments) if segments else None
        rows = [[1.0] * len(self.sources)] * len(models) if weights is None else [
            list(map(float, row)) for row in weights]
        w = torch.tensor(rows, device="cpu")  # checked on the CPU even under a meta device
        if w.shape != (len(models), len(self.sources)) or (w < 0).any():
            raise ValueError(f"bag weights: expected {len(models)} rows of {len(self.sources)} "
                             f"non-negative numbers, got {w.tolist()}")
        if (w.sum(0) == 0).any():
            raise ValueError(f"bag weights: every source needs a non-zero weight, got {w.tolist()}")
        self.register_buffer("weights", w / w.sum(0), persistent=False)  # (M, S)

    def valid_length(self, length: int) -> int:
        return int(length)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix: (B, C, T) -> (B, S, C, T)."""
        length = mix.shape[-1]
        out = None
        for model, w in zip(self.members, self.weights, strict=True):
            pad = int(model.valid_length(length)) - length
            est = model(nn.functional.pad(mix, (0, pad)) if pad > 0 else mix)[..., :length]
            est = est * w.to(est.dtype)[None, :, None, None]
            out = est if out is None else out + est
        return out
