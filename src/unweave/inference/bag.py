"""A bag of models: several separators, averaged per source.

As Demucs' bags of models do, each member may carry a weight per source (0 leaves a member's
estimate of that source out, e.g. a source it never learnt). The bag's sources are its first
member's; another member may estimate other sources too (a vocals/accompaniment model in a
four-stem bag), and contributes, by name, to the bag's sources it has. ``Bag`` satisfies the
model metadata contract, so chunking, shifts, refinement and every front end run it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def common_format(models: Sequence[nn.Module], what: str) -> tuple[int, int, float | None]:
    """(sample rate, channels, shortest segment) of models run on one mixture, which must agree
    on rate and channels (a ``ValueError`` naming ``what`` otherwise)."""
    want = (models[0].sample_rate, models[0].audio_channels)
    for m in models[1:]:
        got = (m.sample_rate, m.audio_channels)
        if got != want:
            raise ValueError(f"{what} differ: (sample_rate, channels) {got} vs {want}")
    segments = [m.segment for m in models if m.segment]
    return int(want[0]), int(want[1]), (min(segments) if segments else None)


def run_padded(model: nn.Module, mix: torch.Tensor) -> torch.Tensor:
    """``model`` on ``mix`` padded to the model's valid length, cut back: (B, C, T) -> (B, S, C, T)."""
    length = mix.shape[-1]
    pad = int(model.valid_length(length)) - length
    return model(nn.functional.pad(mix, (0, pad)) if pad > 0 else mix)[..., :length]


class Bag(nn.Module):
    """Weighted per-source average of ``models``.

    Args:
        models: separation models with the same sample rate and channels; the bag's sources
            are the first model's, and every other model must estimate at least one of them.
        weights: one row per model, one weight per bag source (default: 1 where the model has
            the source, else 0); each source's weights are normalised to sum to 1, every
            source needs a non-zero one, and a model must weigh 0 the sources it lacks.

    Shape:
        mix: (B, C, T) -> (B, S, C, T) for any T (each member pads to its own valid length).
    """

    def __init__(self, models: Sequence[nn.Module],
                 weights: Sequence[Sequence[float]] | None = None) -> None:
        super().__init__()
        if not models:
            raise ValueError("a bag needs at least one model")
        first = models[0]
        self.sources = tuple(first.sources)
        self.sample_rate, self.audio_channels, self.segment = common_format(models, "bag members")
        for m in models[1:]:
            if not set(m.sources) & set(self.sources):
                raise ValueError(f"bag member with sources {tuple(m.sources)} has none of the "
                                 f"bag's sources {self.sources}")
        self.members = nn.ModuleList(models)
        # checked on the CPU even under a meta device
        has = torch.tensor([[s in m.sources for s in self.sources] for m in models], device="cpu")
        rows = has.float() if weights is None else [list(map(float, row)) for row in weights]
        w = torch.as_tensor(rows, dtype=torch.float32, device="cpu")
        if w.shape != (len(models), len(self.sources)) or (w < 0).any():
            raise ValueError(f"bag weights: expected {len(models)} rows of {len(self.sources)} "
                             f"non-negative numbers, got {w.tolist()}")
        lacking = (w > 0) & ~has
        if lacking.any():
            m, s = (int(i) for i in lacking.nonzero()[0])
            raise ValueError(f"bag weights: member {m} has no source {self.sources[s]!r} "
                             f"(its sources: {tuple(models[m].sources)}), so its weight must be 0")
        if (w.sum(0) == 0).any():
            raise ValueError(f"bag weights: every source needs a non-zero weight, got {w.tolist()}")
        self.register_buffer("weights", w / w.sum(0), persistent=False)  # (M, S)
        # for each member, (bag index, member index) of the sources it contributes
        self._picks = [
            [(i, list(m.sources).index(s)) for i, s in enumerate(self.sources) if w[k, i] > 0]
            for k, m in enumerate(models)
        ]

    def valid_length(self, length: int) -> int:
        return int(length)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix: (B, C, T) -> (B, S, C, T)."""
        batch, chans, length = mix.shape
        out = mix.new_zeros(batch, len(self.sources), chans, length)
        for model, w, picks in zip(self.members, self.weights, self._picks, strict=True):
            if not picks:
                continue
            est = run_padded(model, mix)
            for i, j in picks:
                out[:, i] = out[:, i] + w[i].to(est.dtype) * est[:, j]
        return out
