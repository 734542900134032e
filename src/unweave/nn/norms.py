"""Normalisation layers for (B, C, N) feature maps (Luo & Mesgarani 2019, arXiv 1809.07454)."""

from __future__ import annotations

import torch
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
        self.weight = nn.Parameter(torch.ones(1, channels, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2), keepdim=True)
        var = (x - mean).pow(2).mean(dim=(1, 2), keepdim=True)
        return self.weight * (x - mean) / torch.sqrt(var + self.eps) + self.bias


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
