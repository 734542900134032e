"""MRX: multi-resolution crossnet for three-stem soundtrack separation (speech, music, effects).

Reference: D. Petermann, G. Wichern, Z.-Q. Wang, J. Le Roux, "The Cocktail Fork Problem:
Three-Stem Audio Separation for Real-World Soundtracks", ICASSP 2022, arXiv 2110.09958.

Three STFTs with Hann windows of ``window_ms`` (default 32, 64, 256 ms) share one hop of
``hop_ms`` (default 8 ms), so with ``center=True`` all three have ``N = 1 + T // hop`` frames.
Window lengths are ``round(sample_rate * ms / 1000)`` samples and each FFT size is the next power
of two (at 44.1 kHz: windows 1411, 2822, 11290 samples, FFT sizes 2048, 4096, 16384, hop 353).
Per resolution, the magnitude frames go through a fully connected encoder (Linear -> LayerNorm ->
ReLU); the three encodings are averaged and fed to a bidirectional LSTM; per source and per
resolution a fully connected decoder (Linear -> sigmoid) predicts a magnitude mask that is
applied to that resolution's mixture STFT (mixture phase). The three inverse STFTs are averaged.
With ``mask="softmax"`` the decoders' outputs are a softmax over the sources in each bin instead,
so that the masks share the mixture and sum to 1 (the estimates sum to the mixture) and no
source's mask can saturate at 0 on its own (a quiet source cannot die).
Audio channels are processed independently (folded into the batch).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..dsp.stft import istft, stft
from ..nn import BLSTM, apply_mask_nonlinearity, check_mask
from ..registry import register_model
from .base import SeparationModel

MASKS = ("sigmoid", "softmax")


@register_model(
    "mrx",
    task="soundtrack",
    tiny={
        "window_ms": (4.0, 8.0, 16.0), "hop_ms": 2.0, "hidden_size": 8, "lstm_layers": 1,
        "segment": 1.0,
    },
)
class MRX(SeparationModel):
    """Multi-resolution crossnet separator.

    Shape:
        mix: (B, C, T) -> (B, S, C, T) for any T >= 1 (``N = 1 + T // hop`` frames inside).
    """

    def __init__(
        self,
        *,
        # Sources and signal
        sources: tuple[str, ...] = ("speech", "music", "sfx"),
        sample_rate: int = 44100,
        audio_channels: int = 2,
        segment: float = 10.0,
        # STFT resolutions
        window_ms: tuple[float, ...] = (32.0, 64.0, 256.0),
        hop_ms: float = 8.0,
        # Network
        hidden_size: int = 256,
        lstm_layers: int = 3,
        dropout: float = 0.0,
        input_power: float = 1.0,
        mask: str = "sigmoid",
    ) -> None:
        """
        Args:
            sources: names of the estimated sources, in output order.
            sample_rate: sample rate in Hz.
            audio_channels: channels C of the mixture and of each source (processed alike).
            segment: preferred chunk length in seconds for long inputs.
            window_ms: Hann window length of each STFT resolution, in milliseconds.
            hop_ms: hop shared by all resolutions, in milliseconds.
            hidden_size: LSTM units per direction; encoders output ``2 * hidden_size`` features.
            lstm_layers: stacked bidirectional LSTM layers.
            dropout: dropout between LSTM layers (training only).
            input_power: the encoders see ``|X| ** input_power``; 1.0 is the plain magnitude
                (the paper), 0.3 compresses the dynamic range so that quiet bins (effects,
                high frequencies) are not drowned by the loud ones. The masks still apply to
                the uncompressed mixture STFT.
            mask: "sigmoid" (each source's mask in (0, 1) on its own; the paper) or "softmax"
                (the sources' masks share each bin and sum to 1).
        """
        super().__init__(
            sources=sources, sample_rate=sample_rate, audio_channels=audio_channels,
            segment=segment,
        )
        self.win_lengths = tuple(max(2, round(self.sample_rate * ms / 1000)) for ms in window_ms)
        self.n_ffts = tuple(2 ** math.ceil(math.log2(win)) for win in self.win_lengths)
        self.hop_length = max(1, round(self.sample_rate * hop_ms / 1000))
        if self.hop_length > min(self.win_lengths) // 2:
            raise ValueError(
                f"hop {self.hop_length} samples exceeds half the shortest window "
                f"{min(self.win_lengths)}: the STFT would not be invertible"
            )
        if not 0 < input_power <= 1:
            raise ValueError(f"input_power must be in (0, 1], got {input_power}")
        self.input_power = float(input_power)
        self.mask = check_mask(mask, MASKS)
        features = 2 * int(hidden_size)
        bins = [n_fft // 2 + 1 for n_fft in self.n_ffts]
        self.encoders = nn.ModuleList(
            nn.Sequential(nn.Linear(f, features), nn.LayerNorm(features), nn.ReLU()) for f in bins
        )
        self.lstm = BLSTM(features, int(hidden_size), int(lstm_layers), dropout=dropout)
        # decoders[r][s]: resolution r, source s; they output logits, the mask is applied in
        # forward (a Sequential keeps the parameter names of the earlier Linear -> Sigmoid)
        self.decoders = nn.ModuleList(
            nn.ModuleList(nn.Sequential(nn.Linear(features, f)) for _ in self.sources)
            for f in bins
        )

    def valid_length(self, length: int) -> int:
        """Every length is processed exactly (centred STFTs, shared hop): returns ``length``."""
        return int(length)

    def _features(self, spec: torch.Tensor) -> torch.Tensor:
        """(B * C, F, N) complex -> (B * C, N, F) encoder input."""
        mag = spec.abs().transpose(1, 2)
        if self.input_power == 1.0:
            return mag
        return (mag + 1e-8).pow(self.input_power)  # the offset keeps the gradient finite at 0

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix: (B, C, T) -> (B, S, C, T)."""
        batch, chans, length = mix.shape
        x = mix.reshape(batch * chans, length)  # (B * C, T)
        specs = [
            stft(x, n_fft, self.hop_length, win)  # (B * C, F_r, N)
            for n_fft, win in zip(self.n_ffts, self.win_lengths, strict=True)
        ]
        encoded = [
            encoder(self._features(spec))  # (B * C, N, F_r) -> (B * C, N, D)
            for encoder, spec in zip(self.encoders, specs, strict=True)
        ]
        hidden = self.lstm(torch.stack(encoded).mean(dim=0))  # (B * C, N, D)

        out = 0
        resolutions = zip(specs, self.decoders, self.n_ffts, self.win_lengths, strict=True)
        for spec, decoders, n_fft, win in resolutions:
            logits = torch.stack(
                [decoder(hidden).transpose(1, 2) for decoder in decoders], dim=1
            )  # (B * C, S, F_r, N)
            masks = apply_mask_nonlinearity(logits, self.mask)
            est = masks * spec.unsqueeze(1)  # (B * C, S, F_r, N) complex
            out = out + istft(est, n_fft, self.hop_length, length, win)  # (B * C, S, T)
        out = out / len(specs)
        out = out.view(batch, chans, len(self.sources), length)  # (B, C, S, T)
        return out.transpose(1, 2).contiguous()  # (B, S, C, T)
