"""Spectrogram U-Net for singing voice separation and speech enhancement.

References: A. Jansson, E. Humphrey, N. Montecchio, R. Bittner, A. Kumar, T. Weyde, "Singing
Voice Separation with Deep U-Net Convolutional Networks", ISMIR 2017; W. Choi, M. Kim, J. Chung,
D. Lee, S. Jung, "Investigating U-Nets with various Intermediate Blocks for Spectrogram-based
Singing Voice Separation", ISMIR 2020 (arXiv 1912.02591); the acapellabot project (2017). Dense
blocks follow Takahashi & Mitsufuji, MMDenseNet (arXiv 1706.09588).

The mixture STFT is fed either as per-channel magnitudes (``input="magnitude"``, C feature maps)
or as real and imaginary parts (``input="complex"``, 2C maps). A 2-D U-Net (stride-2 5x5 convs
with BatchNorm + LeakyReLU going down, transposed convs with BatchNorm + ReLU going up,
concatenated skip connections, optional dense blocks at every level) predicts for each estimate
either a mask (``output="mask"``: a sigmoid magnitude mask applied to the mixture STFT, i.e. with
the mixture phase, or with ``mask="softmax"`` masks that share each bin between the sources, or
an unbounded complex mask for complex input) or the spectrum itself
(``output="spectrum"``: a magnitude combined with the mixture phase, or a complex spectrum).
Frequency and frame axes are zero-padded to multiples of ``2**depth`` and cropped back. A
band-limited model (``max_frequency``) sees and masks only the bins up to that frequency, and its
last source takes the whole mixture above it (e.g. ``sources=("bass", "rest")``). Optionally
the input is divided by its RMS (``normalize``) and its magnitudes power-law compressed
(``compress``) before the network; masks and spectra are applied in the original scale.

``predict="noise"`` turns the model into an interference estimator: the network estimates only
the second source (e.g. "noise" or "accompaniment"); the first is the mixture minus that
estimate, so the two outputs always sum to the mixture. Speech enhancement configuration:
``sources=("speech", "noise"), sample_rate=16000, audio_channels=1, n_fft=512, hop_length=128``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..dsp.stft import istft, num_frames, stft
from ..nn import DenseBlock2d, DownBlock2d, UpBlock2d, apply_mask_nonlinearity, check_mask
from ..registry import register_model
from .base import SeparationModel

INPUTS = ("magnitude", "complex")
OUTPUTS = ("mask", "spectrum")
PREDICTS = ("sources", "noise")
MASKS = ("sigmoid", "softmax")


@register_model(
    "spec_unet",
    task="vocals",
    tiny={"depth": 2, "channels": 4, "n_fft": 256, "hop_length": 64, "segment": 1.0},
)
class SpecUNet(SeparationModel):
    """Spectrogram U-Net separator.

    Shape:
        mix: (B, C, T) -> (B, S, C, T) for any T >= 1 (STFT with ``F = n_fft // 2 + 1`` bins and
        ``N = 1 + T // hop_length`` frames inside).
    """

    def __init__(
        self,
        *,
        # Sources and signal
        sources: tuple[str, ...] = ("vocals", "accompaniment"),
        sample_rate: int = 44100,
        audio_channels: int = 2,
        segment: float = 10.0,
        # STFT
        n_fft: int = 2048,
        hop_length: int = 512,
        # U-Net
        depth: int = 6,
        channels: int = 16,
        kernel_size: int = 5,
        dropout: float = 0.0,
        dense: bool = False,
        dense_growth: int | None = None,
        # Input and output representations
        input: str = "magnitude",
        output: str = "mask",
        predict: str = "sources",
        mask: str = "sigmoid",
        normalize: bool = False,
        compress: float = 1.0,
        max_frequency: float | None = None,
    ) -> None:
        """
        Args:
            sources: names of the estimated sources, in output order (with
                ``predict="noise"``: exactly two, target first, interference second).
            sample_rate: sample rate in Hz.
            audio_channels: channels C of the mixture and of each source.
            segment: preferred chunk length in seconds for long inputs.
            n_fft: STFT size (and Hann window length) in samples.
            hop_length: STFT hop in samples.
            depth: number of down (and up) sampling levels.
            channels: feature maps after the first level, doubled at each level.
            kernel_size: odd square kernel of the (transposed) convolutions, in bins/frames.
            dropout: dropout probability after the three deepest decoder layers (training only).
            dense: add a dense block (4 x BN-ReLU-Conv3x3, concatenated) at every level.
            dense_growth: feature maps each dense layer adds (None: half the level's maps).
            input: "magnitude" (C magnitude maps) or "complex" (2C real/imag maps).
            output: "mask" (applied to the mixture STFT) or "spectrum" (estimated directly).
            predict: "sources" (one estimate per source) or "noise" (estimate the interference,
                the target is the mixture minus it).
            mask: for magnitude masks, "sigmoid" (each source's mask in (0, 1) on its own) or
                "softmax" (the masks of all sources share each bin and sum to 1, so the
                estimates sum to the mixture and no source's mask can die on its own).
            normalize: divide the mixture STFT by its RMS (per item) before the network, and
                multiply spectrum outputs back, so that the network sees level-free input.
            compress: exponent applied to the magnitudes the network sees (phase kept for
                complex input); 1.0 feeds them as they are, 0.3 is a common power-law
                compression that evens out loud and quiet bins.
            max_frequency: if set (Hz), the network sees and masks only the STFT bins up to
                this frequency; above it the last source takes the whole mixture (masks only,
                ``predict="sources"``). None: every bin.
        """
        super().__init__(
            sources=sources, sample_rate=sample_rate, audio_channels=audio_channels,
            segment=segment,
        )
        for name, value, allowed in (
            ("input", input, INPUTS), ("output", output, OUTPUTS), ("predict", predict, PREDICTS)
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        check_mask(mask, MASKS)
        if mask == "softmax" and (input, output, predict) != ("magnitude", "mask", "sources"):
            raise ValueError(
                "mask='softmax' needs input='magnitude', output='mask' and predict='sources'"
            )
        if predict == "noise" and len(self.sources) != 2:
            raise ValueError(f"predict='noise' needs two sources (target, noise), got {sources}")
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.depth = int(depth)
        self.input_mode = input
        self.output_mode = output
        self.predict = predict
        self.mask = mask
        if not 0.0 < float(compress) <= 1.0:
            raise ValueError(f"compress must be in (0, 1], got {compress!r}")
        self.normalize = bool(normalize)
        self.compress = float(compress)
        self.band_bins = self._band_bins(max_frequency)
        self.estimates = 1 if predict == "noise" else len(self.sources)
        maps = self.audio_channels * (2 if input == "complex" else 1)  # per estimate

        widths = [int(channels) * 2**level for level in range(self.depth)]
        self.down = nn.ModuleList()
        self.down_dense = nn.ModuleList()
        self.up = nn.ModuleList()
        self.up_dense = nn.ModuleList()
        in_ch = maps
        for level, width in enumerate(widths):
            self.down.append(DownBlock2d(in_ch, width, kernel_size))
            self.down_dense.append(self._dense(width, dense, dense_growth))
            final = level == 0
            up_in = width if level == self.depth - 1 else 2 * width  # concatenated skip
            up_out = self.estimates * maps if final else widths[level - 1]
            drop = dropout if level >= self.depth - 3 and not final else 0.0
            self.up.append(UpBlock2d(up_in, up_out, kernel_size, dropout=drop, final=final))
            up_dense = nn.Identity() if final else self._dense(up_out, dense, dense_growth)
            self.up_dense.append(up_dense)
            in_ch = width

    def _band_bins(self, max_frequency: float | None) -> int | None:
        """Number of low STFT bins the network sees (None: all)."""
        if max_frequency is None:
            return None
        nyquist = self.sample_rate / 2
        if not 0.0 < float(max_frequency) < nyquist:
            raise ValueError(f"max_frequency must be in (0, {nyquist:g}) Hz, got {max_frequency!r}")
        if (self.output_mode, self.predict) != ("mask", "sources") or len(self.sources) < 2:
            raise ValueError("max_frequency needs output='mask', predict='sources' and at least "
                             "two sources (the last takes the band above it)")
        return math.ceil(float(max_frequency) * self.n_fft / self.sample_rate) + 1

    @staticmethod
    def _dense(width: int, dense: bool, growth: int | None) -> nn.Module:
        if not dense:
            return nn.Identity()
        return DenseBlock2d(width, growth or max(1, width // 2))

    def valid_length(self, length: int) -> int:
        """Smallest length >= ``length`` (samples) whose frame count is a multiple of
        ``2**depth`` (no frame padding inside); every length is processed correctly."""
        multiple = 2**self.depth
        frames = num_frames(length, self.hop_length)
        target = -(-frames // multiple) * multiple
        return int(length) if target == frames else (target - 1) * self.hop_length

    def _unet(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, maps, F', N') -> (B, estimates * maps, F', N'); F', N' multiples of 2**depth."""
        skips = []
        for down, dense in zip(self.down, self.down_dense, strict=True):
            x = dense(down(x))
            skips.append(x)
        for level in reversed(range(self.depth)):
            skip = skips.pop()
            if level < self.depth - 1:
                x = torch.cat([x, skip], dim=1)  # (B, 2 * width, F_l, N_l)
            else:
                x = skip
            x = self.up_dense[level](self.up[level](x))
        return x

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix: (B, C, T) -> (B, S, C, T)."""
        batch, chans, length = mix.shape
        full = stft(mix, self.n_fft, self.hop_length)  # (B, C, F, N) complex
        spec = full[..., : self.band_bins, :]  # the band the network sees (all: band_bins None)
        bins, frames = spec.shape[-2:]
        feats, scale = spec, None
        if self.normalize:  # (B, 1, 1, 1) RMS of the mixture STFT
            scale = spec.abs().pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-8)
            feats = spec / scale
        if self.compress != 1.0:
            feats = feats * feats.abs().clamp_min(1e-8).pow(self.compress - 1.0)
        if self.input_mode == "magnitude":
            feats = feats.abs()  # (B, C, F, N)
        else:
            feats = torch.cat([feats.real, feats.imag], dim=1)  # (B, 2C, F, N)
        multiple = 2**self.depth
        pad_f = -bins % multiple
        pad_n = -frames % multiple
        out = self._unet(F.pad(feats, (0, pad_n, 0, pad_f)))[..., :bins, :frames]

        mixture = spec.unsqueeze(1)  # (B, 1, C, F, N)
        if self.input_mode == "magnitude":
            out = out.reshape(batch, self.estimates, chans, bins, frames)  # (B, K, C, F, N)
            if self.output_mode == "mask":
                masks = apply_mask_nonlinearity(out, self.mask)
                est = masks * mixture
            else:
                phase = mixture / mixture.abs().clamp_min(1e-8)
                est = F.relu(out) * phase
        else:
            out = out.reshape(batch, self.estimates, 2, chans, bins, frames)  # (B, K, 2, C, F, N)
            est = torch.complex(out[:, :, 0], out[:, :, 1])  # (B, K, C, F, N)
            if self.output_mode == "mask":
                est = est * mixture
        if scale is not None and self.output_mode == "spectrum":
            est = est * scale.unsqueeze(1)  # back to the mixture's level
        if bins < full.shape[-2]:  # above the band: silent, but the last source takes the mixture
            est = F.pad(est, (0, 0, 0, full.shape[-2] - bins))  # (B, K, C, F, N)
            est[:, -1, ..., bins:, :] = full[..., bins:, :]
        wav = istft(est, self.n_fft, self.hop_length, length)  # (B, K, C, T)
        if self.predict == "noise":
            noise = wav[:, 0]  # (B, C, T)
            return torch.stack([mix - noise, noise], dim=1)  # (B, 2, C, T)
        return wav
