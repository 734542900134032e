"""A cascade: one model takes a source out of the mixture, another separates what is left.

A four-stem music model has to find the drums, bass and other instruments under the loudest
stem, the vocals. ``Cascade(vocals_model, stems_model)`` lets the vocals/accompaniment model
take the vocals out first and runs the stems model on the mixture minus those vocals; whatever
vocals the stems model still finds there (the first model's misses) join the first model's
vocals. ``Cascade`` satisfies the model metadata contract, so chunking, shifts, refinement (of
the final stems from the original mixture) and every front end run it unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from .bag import common_format, run_padded


class Cascade(nn.Module):
    """``then`` on the mixture minus ``first``'s estimate of ``source``.

    Args:
        first: a model estimating ``source`` (its other sources are not used).
        then: the model for the rest, with the same sample rate and channels; the cascade's
            sources are ``then``'s, plus ``source`` at the end when ``then`` lacks it.
        source: the source ``first`` takes out.

    Shape:
        mix: (B, C, T) -> (B, S, C, T) for any T (each model pads to its own valid length).
    """

    def __init__(self, first: nn.Module, then: nn.Module, source: str = "vocals") -> None:
        super().__init__()
        if source not in first.sources:
            raise ValueError(f"cascade: the first model has no source {source!r} "
                             f"(its sources: {tuple(first.sources)})")
        self.sample_rate, self.audio_channels, self.segment = common_format(
            (then, first), "cascade models")
        self.first, self.then, self.source = first, then, source
        self.sources = tuple(then.sources) + (() if source in then.sources else (source,))
        self._take = list(first.sources).index(source)
        self._put = self.sources.index(source)

    def valid_length(self, length: int) -> int:
        return int(length)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix: (B, C, T) -> (B, S, C, T)."""
        taken = run_padded(self.first, mix)[:, self._take]
        rest = run_padded(self.then, mix - taken)
        if rest.shape[1] < len(self.sources):  # ``then`` lacks the source: a silent stem
            rest = nn.functional.pad(rest, (0, 0, 0, 0, 0, 1))
        put = self._put
        return torch.cat([rest[:, :put], rest[:, put:put + 1] + taken[:, None],
                          rest[:, put + 1:]], dim=1)
