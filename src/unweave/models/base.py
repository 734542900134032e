"""The metadata contract every separation model satisfies.

A model is an ``nn.Module`` with:
  sources: tuple[str, ...]     output order on axis 1
  sample_rate: int             Hz
  audio_channels: int
  segment: float | None        preferred chunk length in seconds (None: any)
  valid_length(n) -> int       smallest length >= n the model handles without padding loss
  forward(mix (B, C, T)) -> (B, S, C, T) for any T

``SeparationModel`` stores the metadata and the constructor kwargs (for plain-data checkpoints).
"""

from __future__ import annotations

from torch import nn


class SeparationModel(nn.Module):
    """Base class holding the metadata contract; subclasses implement ``forward``."""

    def __init__(
        self,
        *,
        sources: tuple[str, ...] | list[str],
        sample_rate: int,
        audio_channels: int,
        segment: float | None = None,
    ) -> None:
        super().__init__()
        self.sources = tuple(sources)
        self.sample_rate = int(sample_rate)
        self.audio_channels = int(audio_channels)
        self.segment = segment

    def valid_length(self, length: int) -> int:
        """Smallest length >= ``length`` (samples) the model processes exactly."""
        return int(length)
