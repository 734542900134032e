"""2-D convolution blocks for spectrogram U-Nets.

Down/up blocks follow Jansson et al. 2017 ("Singing voice separation with deep U-Net
convolutional networks", ISMIR): stride-2 5x5 convolutions with BatchNorm and LeakyReLU(0.2)
going down, stride-2 transposed convolutions with BatchNorm, ReLU and optional dropout going up.
The dense block follows Takahashi & Mitsufuji 2017 (MMDenseNet, arXiv 1706.09588).
"""

from __future__ import annotations

import torch
from torch import nn


class DownBlock2d(nn.Module):
    """Halve both spatial axes: Conv2d(stride 2) -> BatchNorm -> LeakyReLU(0.2).

    Args:
        in_channels: input feature maps.
        out_channels: output feature maps.
        kernel_size: odd square kernel size.

    Shape:
        x: (B, in, F, N) -> (B, out, F / 2, N / 2) for even F, N.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=2, padding=kernel_size // 2),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class UpBlock2d(nn.Module):
    """Double both spatial axes: ConvTranspose2d(stride 2) -> BatchNorm -> ReLU -> Dropout.

    Args:
        in_channels: input feature maps.
        out_channels: output feature maps.
        kernel_size: odd square kernel size.
        dropout: dropout probability after the activation (training only).
        final: output layer: a bare transposed convolution (no norm, activation or dropout).

    Shape:
        x: (B, in, F, N) -> (B, out, 2 F, 2 N)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 5,
        dropout: float = 0.0,
        final: bool = False,
    ) -> None:
        super().__init__()
        conv = nn.ConvTranspose2d(
            in_channels, out_channels, kernel_size, stride=2, padding=kernel_size // 2,
            output_padding=1,
        )
        layers: list[nn.Module] = [conv]
        if not final:
            layers += [nn.BatchNorm2d(out_channels), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DenseBlock2d(nn.Module):
    """Densely connected block: ``num_layers`` x (BatchNorm -> ReLU -> Conv3x3 adding ``growth``
    maps), each layer seeing the concatenation of all previous maps, then a 1x1 transition back
    to ``channels`` maps.

    Args:
        channels: input and output feature maps.
        growth: feature maps added by each layer.
        num_layers: number of BN-ReLU-Conv layers.

    Shape:
        x: (B, channels, F, N) -> (B, channels, F, N)
    """

    def __init__(self, channels: int, growth: int, num_layers: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(channels + i * growth),
                nn.ReLU(),
                nn.Conv2d(channels + i * growth, growth, 3, padding=1),
            )
            for i in range(num_layers)
        )
        self.transition = nn.Conv2d(channels + num_layers * growth, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return self.transition(torch.cat(features, dim=1))
