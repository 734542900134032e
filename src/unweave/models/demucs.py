"""Demucs: waveform U-Net with a BLSTM bottleneck (v1/v2).

Reference: A. Défossez, N. Usunier, L. Bottou, F. Bach, "Music Source Separation in the Waveform
Domain", arXiv 1911.13254 (2019), and "Demucs: Deep Extractor for Music Sources with extra
unlabeled data remixed", arXiv 1909.01174 (2019).

Encoder layer i: Conv1d(kernel 8, stride 4) -> ReLU -> Conv1d 1x1 (2x channels) -> GLU, with
``channels * growth**i`` channels. Bottleneck: 2-layer bidirectional LSTM projected back to the
channel count. Decoder mirrored: 1x1 conv (2x) -> GLU -> ConvTranspose1d(kernel 8, stride 4) ->
ReLU (none on the last layer), with additive skip connections from the encoder. The input is
standardised by the mean and std of the mono mixture and the output de-standardised. Convolution
weights are rescaled at init so their std is close to ``rescale`` (the paper's weight rescaling).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..nn import BLSTM, crop_center, pad_center
from ..registry import register_model
from .base import SeparationModel


def rescale_conv_(conv: nn.Module, reference: float) -> None:
    """Scale a conv's weight and bias in place by ``(std / reference) ** -0.5``."""
    std = conv.weight.std().detach()
    scale = (std / reference) ** 0.5
    conv.weight.data /= scale
    if conv.bias is not None:
        conv.bias.data /= scale


@register_model(
    "demucs",
    task="music",
    tiny={"channels": 4, "depth": 3, "lstm_layers": 1, "segment": 1.0},
)
class Demucs(SeparationModel):
    """Demucs waveform separator.

    Shape:
        mix: (B, C, T) -> (B, S, C, T) for any T >= 1; the input is zero-padded (centred) to
        ``valid_length(T)`` and the output cropped back.
    """

    def __init__(
        self,
        *,
        # Sources and signal
        sources: tuple[str, ...] = ("drums", "bass", "other", "vocals"),
        sample_rate: int = 44100,
        audio_channels: int = 2,
        segment: float = 10.0,
        # Architecture
        channels: int = 64,
        growth: float = 2.0,
        depth: int = 6,
        kernel_size: int = 8,
        stride: int = 4,
        lstm_layers: int = 2,
        # Behaviour
        normalize: bool = True,
        rescale: float = 0.1,
    ) -> None:
        """
        Args:
            sources: names of the estimated sources, in output order.
            sample_rate: sample rate in Hz.
            audio_channels: channels C of the mixture and of each source.
            segment: preferred chunk length in seconds for long inputs.
            channels: output channels of the first encoder layer.
            growth: channel multiplier from one encoder layer to the next (unitless).
            depth: number of encoder (and decoder) layers.
            kernel_size: kernel of the strided convolutions, in samples/frames.
            stride: stride of the strided convolutions, in samples/frames.
            lstm_layers: bidirectional LSTM layers at the bottleneck (0: none).
            normalize: standardise the input by the mono mixture's mean and std (and undo it).
            rescale: reference std for the initial conv weight rescaling (0: no rescaling).
        """
        super().__init__(
            sources=sources, sample_rate=sample_rate, audio_channels=audio_channels,
            segment=segment,
        )
        self.depth = int(depth)
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.normalize = bool(normalize)

        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        in_ch = self.audio_channels
        out_ch = int(channels)
        for index in range(self.depth):
            self.encoder.append(nn.Sequential(
                nn.Conv1d(in_ch, out_ch, kernel_size, stride),
                nn.ReLU(),
                nn.Conv1d(out_ch, 2 * out_ch, 1),
                nn.GLU(dim=1),
            ))
            dec_out = len(self.sources) * self.audio_channels if index == 0 else in_ch
            layers: list[nn.Module] = [
                nn.Conv1d(out_ch, 2 * out_ch, 1),
                nn.GLU(dim=1),
                nn.ConvTranspose1d(out_ch, dec_out, kernel_size, stride),
            ]
            if index > 0:
                layers.append(nn.ReLU())
            self.decoder.insert(0, nn.Sequential(*layers))  # deepest first
            in_ch = out_ch
            out_ch = int(growth * out_ch)
        self.bottleneck_channels = in_ch
        self.lstm = BLSTM(in_ch, in_ch, lstm_layers, output_size=in_ch) if lstm_layers else None

        if rescale:
            for module in self.modules():
                if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
                    rescale_conv_(module, rescale)

    def valid_length(self, length: int) -> int:
        """Smallest length >= ``length`` (samples) for which every convolution is exact, i.e.
        no input sample is dropped by a strided convolution and the decoder returns the input
        length exactly."""
        frames = int(length)
        for _ in range(self.depth):
            frames = max(1, math.ceil((frames - self.kernel_size) / self.stride) + 1)
        for _ in range(self.depth):
            frames = (frames - 1) * self.stride + self.kernel_size
        return int(frames)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix: (B, C, T) -> (B, S, C, T)."""
        batch, _, length = mix.shape
        x = mix
        if self.normalize:
            mono = mix.mean(dim=1, keepdim=True)  # (B, 1, T)
            mean = mono.mean(dim=-1, keepdim=True)  # (B, 1, 1)
            std = mono.std(dim=-1, keepdim=True, correction=0)  # (B, 1, 1); 0 for T == 1
            x = (x - mean) / (1e-5 + std)
        x = pad_center(x, self.valid_length(length))  # (B, C, T')

        saved = []
        for encode in self.encoder:
            x = encode(x)
            saved.append(x)
        if self.lstm is not None:
            x = self.lstm(x.transpose(1, 2)).transpose(1, 2)  # (B, D, N) -> (B, D, N)
        for decode in self.decoder:
            skip = saved.pop()
            x = decode(x + crop_center(skip, x.shape[-1]))

        x = crop_center(x, length)  # (B, S * C, T)
        if self.normalize:
            x = x * (1e-5 + std) + mean
        return x.view(batch, len(self.sources), self.audio_channels, length)  # (B, S, C, T)
