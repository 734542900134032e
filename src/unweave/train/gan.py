"""Optional adversarial stage for speech models: a small discriminator and LSGAN losses.

The stage starts at ``gan.start_step`` (typically on a model pre-trained with a reconstruction
loss, ``model.init``): for ``gan.pretrain_steps`` steps only the discriminator learns (the
separator is frozen, its outputs are the "fake" examples); afterwards the separator minimises
``reconstruction + adv_weight * (LSGAN + feature_weight * feature matching)`` while the
discriminator keeps learning. Discriminators see each estimated source as a signal
``(B*S, C, T)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SpecDiscriminator(nn.Module):
    """2-D conv net on log-magnitude spectrograms: ``wav (B, C, T) -> logits (B, 1, F', N')``.

    Returns ``(logits, features)`` where ``features`` are the hidden activations (for feature
    matching).
    """

    def __init__(self, *, audio_channels: int = 1, channels: int = 16, n_fft: int = 512,
                 hop: int = 128, layers: int = 4) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        convs, ch_in = [], audio_channels
        for i in range(layers):
            ch_out = channels * 2 ** min(i, 3)
            convs.append(nn.Conv2d(ch_in, ch_out, (3, 9), stride=(2, 1) if i else 1,
                                   padding=(1, 4)))
            ch_in = ch_out
        self.convs = nn.ModuleList(convs)
        self.out = nn.Conv2d(ch_in, 1, 3, padding=1)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, channels, length = wav.shape
        window = torch.hann_window(self.n_fft, device=wav.device)
        x = wav.float().reshape(batch * channels, length)
        if length < self.n_fft:
            x = F.pad(x, (0, self.n_fft - length))
        spec = torch.stft(x, self.n_fft, self.hop, window=window, return_complex=True)
        x = torch.log1p(spec.abs()).view(batch, channels, *spec.shape[-2:])  # (B, C, F, N)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            features.append(x)
        return self.out(x), features


class WaveDiscriminator(nn.Module):
    """Strided 1-D conv net on waveforms: ``wav (B, C, T) -> logits (B, 1, T')``."""

    def __init__(self, *, audio_channels: int = 1, channels: int = 16, layers: int = 4) -> None:
        super().__init__()
        convs, ch_in = [nn.Conv1d(audio_channels, channels, 15, padding=7)], channels
        for i in range(layers - 1):
            ch_out = min(channels * 4 ** (i + 1), 256)
            convs.append(nn.Conv1d(ch_in, ch_out, 41, stride=4, padding=20,
                                   groups=max(1, ch_in // 16)))
            ch_in = ch_out
        self.convs = nn.ModuleList(convs)
        self.out = nn.Conv1d(ch_in, 1, 3, padding=1)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x, features = wav.float(), []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            features.append(x)
        return self.out(x), features


def build_discriminator(kind: str, *, audio_channels: int, channels: int = 16) -> nn.Module:
    if kind == "spec":
        return SpecDiscriminator(audio_channels=audio_channels, channels=channels)
    if kind == "wave":
        return WaveDiscriminator(audio_channels=audio_channels, channels=channels)
    raise ValueError(f"unknown discriminator {kind!r} (known: spec, wave)")


def lsgan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN discriminator loss: real -> 1, fake -> 0."""
    return (real - 1).pow(2).mean() + fake.pow(2).mean()


def lsgan_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN generator loss: push the discriminator's output on fakes to 1."""
    return (fake - 1).pow(2).mean()


def feature_matching(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Mean L1 between discriminator activations on real and fake signals."""
    return sum((r.detach() - f).abs().mean() for r, f in zip(real, fake)) / max(len(real), 1)


def _signals(stems: torch.Tensor) -> torch.Tensor:
    return stems.reshape(-1, *stems.shape[-2:])  # (B, S, C, T) -> (B*S, C, T)


class GanStage:
    """Discriminator, its optimizer and the phase logic of the adversarial stage."""

    def __init__(self, cfg, *, audio_channels: int, device: torch.device) -> None:
        self.cfg = cfg
        self.disc = build_discriminator(cfg.disc, audio_channels=audio_channels,
                                        channels=cfg.channels).to(device)
        self.optim = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9))

    def phase(self, step: int) -> str:
        """``"off"`` before ``start_step``, then ``"pretrain"``, then ``"adversarial"``."""
        if step < self.cfg.start_step:
            return "off"
        if step < self.cfg.start_step + self.cfg.pretrain_steps:
            return "pretrain"
        return "adversarial"

    def d_step(self, ref: torch.Tensor, est: torch.Tensor) -> float:
        """One discriminator update on references (real) vs detached estimates (fake)."""
        real, _ = self.disc(_signals(ref))
        fake, _ = self.disc(_signals(est.detach()))
        loss = lsgan_d_loss(real, fake)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        return float(loss.detach())

    def g_loss(self, ref: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
        """Adversarial + feature-matching loss for the separator (weighted by ``adv_weight``)."""
        fake, fake_feats = self.disc(_signals(est))
        loss = lsgan_g_loss(fake)
        if self.cfg.feature_weight:
            with torch.no_grad():
                _, real_feats = self.disc(_signals(ref))
            loss = loss + self.cfg.feature_weight * feature_matching(real_feats, fake_feats)
        return self.cfg.adv_weight * loss

    def state_dict(self) -> dict:
        return {"disc": self.disc.state_dict(), "optim": self.optim.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.disc.load_state_dict(state["disc"])
        self.optim.load_state_dict(state["optim"])
