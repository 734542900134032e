"""Recurrent layers shared by the models."""

from __future__ import annotations

import torch
from torch import nn


class BLSTM(nn.Module):
    """Multi-layer bidirectional LSTM over frames, with an optional linear output projection.

    Args:
        input_size: features per frame D.
        hidden_size: LSTM units per direction.
        num_layers: stacked LSTM layers.
        output_size: size of a linear projection of the ``2 * hidden_size`` outputs
            (None: no projection, the output has ``2 * hidden_size`` features).
        dropout: dropout between LSTM layers (training only).

    Shape:
        x: (B, N, D) -> (B, N, output_size or 2 * hidden_size)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        output_size: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            input_size, hidden_size, num_layers=num_layers, bidirectional=True,
            batch_first=True, dropout=dropout if num_layers > 1 else 0.0,
        )
        self.proj = nn.Linear(2 * hidden_size, output_size) if output_size else None
        self.output_size = output_size or 2 * hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x)  # (B, N, 2 * hidden)
        return self.proj(y) if self.proj is not None else y
