"""Conv-TasNet: time-domain masking with a temporal convolutional network separator.

Reference: Y. Luo, N. Mesgarani, "Conv-TasNet: Surpassing Ideal Time-Frequency Magnitude Masking
for Speech Separation", IEEE/ACM TASLP 27(8), 2019, arXiv 1809.07454. The defaults are the
music variant used as a baseline by Défossez et al. (arXiv 1911.13254): N=256, L=20, B=256,
H=512, P=3, X=10, R=4, stereo in and out.

Encoder: Conv1d(C -> N, kernel L, stride L/2) + ReLU. Separator: gLN -> 1x1 conv N -> B ->
R repeats of X temporal blocks (dilation 2**x) whose skip outputs are summed -> PReLU ->
1x1 conv to S*N -> mask nonlinearity. Decoder: ConvTranspose1d(N -> C, kernel L, stride L/2)
applied to every masked source representation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import GlobalLayerNorm, TemporalBlock, apply_mask_nonlinearity, check_mask
from ..registry import register_model
from .base import SeparationModel


@register_model(
    "conv_tasnet",
    task="music",
    tiny={
        "filters": 16, "filter_length": 16, "bottleneck_channels": 8, "hidden_channels": 16,
        "blocks": 2, "repeats": 1, "segment": 1.0,
    },
)
class ConvTasNet(SeparationModel):
    """Conv-TasNet separator (stereo-capable: encoder in = decoder out = ``audio_channels``).

    Shape:
        mix: (B, C, T) -> (B, S, C, T) for any T >= 1; the input is zero-padded on the right to
        ``valid_length(T)`` and the output cropped back.
    """

    def __init__(
        self,
        *,
        # Sources and signal
        sources: tuple[str, ...] = ("drums", "bass", "other", "vocals"),
        sample_rate: int = 44100,
        audio_channels: int = 2,
        segment: float = 8.0,
        # Encoder / decoder
        filters: int = 256,
        filter_length: int = 20,
        # Separator (temporal convolutional network)
        bottleneck_channels: int = 256,
        hidden_channels: int = 512,
        skip_channels: int | None = None,
        kernel_size: int = 3,
        blocks: int = 10,
        repeats: int = 4,
        mask: str = "relu",
    ) -> None:
        """
        Args:
            sources: names of the estimated sources, in output order.
            sample_rate: sample rate in Hz.
            audio_channels: channels C of the mixture and of each source.
            segment: preferred chunk length in seconds for long inputs.
            filters: encoder basis filters N.
            filter_length: encoder/decoder filter length L in samples (stride L // 2, even).
            bottleneck_channels: channels B of the separator bottleneck.
            hidden_channels: channels H inside each temporal block.
            skip_channels: channels of the skip paths (None: same as B; 0: no skip paths, the
                mask is computed from the residual output as in Demucs's variant).
            kernel_size: depthwise kernel P of the temporal blocks, in frames.
            blocks: temporal blocks X per repeat (dilations 1, 2, ..., 2**(X-1)).
            repeats: repeats R of the X blocks.
            mask: mask nonlinearity, one of "relu", "sigmoid", "softmax" (over sources).
        """
        super().__init__(
            sources=sources, sample_rate=sample_rate, audio_channels=audio_channels,
            segment=segment,
        )
        if filter_length < 2 or filter_length % 2:
            raise ValueError(f"filter_length must be even and >= 2, got {filter_length}")
        skip_channels = bottleneck_channels if skip_channels is None else int(skip_channels)
        self.filters = int(filters)
        self.filter_length = int(filter_length)
        self.stride = self.filter_length // 2
        self.mask = check_mask(mask)
        self.use_skip = skip_channels > 0

        self.encoder = nn.Conv1d(
            self.audio_channels, self.filters, self.filter_length, self.stride, bias=False
        )
        self.norm = GlobalLayerNorm(self.filters)
        self.bottleneck = nn.Conv1d(self.filters, bottleneck_channels, 1)
        count = repeats * blocks
        self.tcn = nn.ModuleList(
            TemporalBlock(
                bottleneck_channels, hidden_channels, skip_channels, kernel_size,
                dilation=2 ** (index % blocks),
                # with skip paths, the last block's residual output would go unused
                residual=not (self.use_skip and index == count - 1),
            )
            for index in range(count)
        )
        mask_in = skip_channels if self.use_skip else bottleneck_channels
        self.mask_net = nn.Sequential(
            nn.PReLU(), nn.Conv1d(mask_in, len(self.sources) * self.filters, 1)
        )
        self.decoder = nn.ConvTranspose1d(
            self.filters, self.audio_channels, self.filter_length, self.stride, bias=False
        )

    def valid_length(self, length: int) -> int:
        """Smallest length >= ``length`` (samples), and >= L, that the encoder frames exactly:
        ``L + k * L/2`` samples."""
        frames = max(0, math.ceil((int(length) - self.filter_length) / self.stride))
        return self.filter_length + frames * self.stride

    def _masks(self, encoded: torch.Tensor) -> torch.Tensor:
        """encoded: (B, N, frames) -> masks (B, S, N, frames)."""
        x = self.bottleneck(self.norm(encoded))  # (B, B_ch, frames)
        skip_sum = 0
        for block in self.tcn:
            x, skip = block(x)
            if skip is not None:
                skip_sum = skip_sum + skip
        y = self.mask_net(skip_sum if self.use_skip else x)  # (B, S * N, frames)
        y = y.view(y.shape[0], len(self.sources), self.filters, y.shape[-1])  # (B, S, N, frames)
        return apply_mask_nonlinearity(y, self.mask)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix: (B, C, T) -> (B, S, C, T)."""
        batch, _, length = mix.shape
        x = F.pad(mix, (0, self.valid_length(length) - length))  # (B, C, T')
        encoded = F.relu(self.encoder(x))  # (B, N, frames)
        masked = self._masks(encoded) * encoded.unsqueeze(1)  # (B, S, N, frames)
        frames = masked.shape[-1]
        out = self._decode(masked.reshape(-1, self.filters, frames))  # (B * S, C, T')
        out = out.view(batch, len(self.sources), self.audio_channels, -1)  # (B, S, C, T')
        return out[..., :length]

    def _decode(self, frames: torch.Tensor) -> torch.Tensor:
        """The decoder: (B', N, frames) -> (B', C, (frames + 1) * L/2).

        Without autograd, as one matrix product (every frame's L samples per channel) and an
        overlap-add of its two halves: the same sums as the transposed convolution, in about half
        its time on CPU (oneDNN's strided transposed convolution is slow at these sizes)."""
        if torch.is_grad_enabled():
            return self.decoder(frames)
        batch, _, count = frames.shape
        chans, half = self.audio_channels, self.stride
        weight = self.decoder.weight.reshape(self.filters, chans * self.filter_length)
        samples = torch.matmul(weight.t(), frames).view(batch, chans, 2, half, count)
        out = frames.new_empty(batch, chans, count + 1, half)
        out[:, :, :count] = samples[:, :, 0].transpose(-1, -2)
        out[:, :, count].zero_()
        out[:, :, 1:] += samples[:, :, 1].transpose(-1, -2)
        return out.view(batch, chans, -1)
