"""Temporal convolutional network block of Conv-TasNet (Luo & Mesgarani 2019, arXiv 1809.07454)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .norms import GlobalLayerNorm


class TemporalBlock(nn.Module):
    """1x1 conv -> PReLU -> gLN -> dilated depthwise conv -> PReLU -> gLN -> residual + skip.

    The depthwise convolution is non-causal and keeps the number of frames (``same`` padding,
    also for even kernels).

    Args:
        channels: bottleneck channels B (input, residual output).
        hidden_channels: channels H inside the block.
        skip_channels: channels of the skip output (0: no skip path, ``skip`` is None).
        residual: compute the residual output (False for a network's last block, whose
            residual would be unused: ``x`` is then returned unchanged).
        kernel_size: depthwise kernel size P in frames.
        dilation: depthwise dilation in frames.

    Shape:
        x: (B, B_ch, N) -> (residual (B, B_ch, N), skip (B, skip_channels, N) or None)
    """

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        skip_channels: int,
        kernel_size: int,
        dilation: int,
        residual: bool = True,
    ) -> None:
        super().__init__()
        total = (kernel_size - 1) * dilation
        # odd totals (even kernels) need an explicit asymmetric pad; otherwise the conv pads
        self.padding = (total // 2, total - total // 2) if total % 2 else None
        self.inner = nn.Sequential(
            nn.Conv1d(channels, hidden_channels, 1),
            nn.PReLU(),
            GlobalLayerNorm(hidden_channels),
        )
        self.depthwise = nn.Conv1d(
            hidden_channels, hidden_channels, kernel_size, dilation=dilation,
            groups=hidden_channels, padding=0 if total % 2 else total // 2,
        )
        self.post = nn.Sequential(nn.PReLU(), GlobalLayerNorm(hidden_channels))
        self.residual = nn.Conv1d(hidden_channels, channels, 1) if residual else None
        self.skip = nn.Conv1d(hidden_channels, skip_channels, 1) if skip_channels else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        y = self.inner(x)
        if self.padding is not None:
            y = F.pad(y, self.padding)
        y = self.post(self.depthwise(y))
        skip = self.skip(y) if self.skip is not None else None
        if self.residual is not None:
            x = x + self.residual(y)
        return x, skip
