"""Band extension: share the mixture's content above a model's band out among its stems.

A model that runs at 22.05 kHz hears nothing above 11 kHz of a 44.1 kHz file; its stems, brought
back to 44.1 kHz, are empty up there, and a remix of them sounds dull (no cymbal air, no
sibilance). The mixture still has that band. :class:`BandExtender` splits it among the stems by
how much of each stem is in the **guide band** just below the model's Nyquist frequency, frame
by frame: with ``r`` the part of the mixture the model never saw (the mixture minus the mixture
taken to the model's rate and back) and ``e_j(t)`` a short-time energy envelope of stem ``j``
high-passed at ``guide * model_nyquist``,

    stem_j  +=  w_j(t) * r,    w_j = (e_j + floor * b_j) / sum_k (e_k + floor * b_k)

where ``b_j`` is the stem's broadband envelope: where every stem is silent in the guide band the
broadband shares decide, and where all are silent the shares are equal. The weights sum to one,
so the stems gain exactly ``r`` between them: stems that summed to the model-rate mixture now sum
to the full-band one.

Everything is causal IIR filtering with carried state, so :meth:`BandExtender.process` over
blocks gives the same samples as one call over the whole signal, and memory does not grow with
the length of a file.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import signal

from ..audio import convert

#: guide band: from this fraction of the model's Nyquist frequency up to its band edge
GUIDE_FRACTION = 0.6
#: time constant of the energy envelopes, seconds
SMOOTHING_SECONDS = 0.01
#: weight of the broadband envelope against the guide band's (decides where the guide is silent)
BROADBAND_FLOOR = 1e-3
_TINY = 1e-30
#: longest piece processed at once (its float32 temporaries are ~50 MB for 4 stereo stems)
PIECE_SECONDS = 5.0


class BandExtender:
    """Streaming band extension of ``sources`` stems on ``channels`` channels.

    Args:
        sources: number of stems S.
        channels: audio channels C.
        model_rate: the rate the model ran at; its Nyquist frequency bounds its band.
        sample_rate: the rate of the stems and the mixture given to :meth:`process`.
        guide: lower edge of the guide band, as a fraction of the model's Nyquist frequency.
        smoothing: envelope time constant in seconds.

    ``active`` is False when ``sample_rate <= model_rate`` (nothing lies above the model's band);
    :meth:`process` then returns the stems unchanged.
    """

    def __init__(self, sources: int, channels: int, model_rate: int, sample_rate: int, *,
                 guide: float = GUIDE_FRACTION, smoothing: float = SMOOTHING_SECONDS) -> None:
        if not 0.0 < guide < 1.0:
            raise ValueError(f"guide must be in (0, 1), got {guide}")
        if smoothing <= 0:
            raise ValueError(f"smoothing must be positive, got {smoothing}")
        self.sources, self.channels = int(sources), int(channels)
        self.model_rate, self.sample_rate = int(model_rate), int(sample_rate)
        self.active = self.sample_rate > self.model_rate
        rows = self.sources * self.channels
        if not self.active:
            return
        # float32 throughout (filters, states, envelopes): the weights need no more, and float64
        # temporaries of 4 stereo stems cost twice the time and memory
        self._sos = signal.butter(4, guide * self.model_rate / 2, "highpass", fs=self.sample_rate,
                                  output="sos").astype(np.float32)
        self._hp_state = np.zeros((self._sos.shape[0], rows, 2), np.float32)
        pole = float(np.exp(-1.0 / (smoothing * self.sample_rate)))
        self._env = (np.array([1.0 - pole], np.float32), np.array([1.0, -pole], np.float32))
        self._env_state = np.zeros((rows, 1), np.float32)

    def process(self, stems: torch.Tensor, mix: torch.Tensor, mix_band: torch.Tensor) -> torch.Tensor:
        """stems: (S, C, t) model stems at ``sample_rate``; mix: (C, t) the mixture;
        mix_band: (C, t) the mixture taken to the model's rate and back -> (S, C, t)."""
        if not self.active or stems.shape[-1] == 0:
            return stems
        if stems.shape[:2] != (self.sources, self.channels):
            raise ValueError(f"expected stems of shape ({self.sources}, {self.channels}, t), "
                             f"got {tuple(stems.shape)}")
        length = stems.shape[-1]
        out = stems.detach().to("cpu", torch.float32).clone()  # (S, C, t), extended in place
        rows = out.numpy().reshape(-1, length)  # (S * C, t), a view of out
        residual = (mix - mix_band).detach().to("cpu", torch.float32).numpy()  # (C, t)
        step = max(1, int(PIECE_SECONDS * self.sample_rate))
        for i in range(0, length, step):  # bounded temporaries; the carried state is seamless
            self._piece(rows[:, i:i + step], residual[:, i:i + step])
        return out.to(stems.device, stems.dtype)

    def _piece(self, rows: np.ndarray, residual: np.ndarray) -> None:
        """Add each stem's share of ``residual`` (C, t) to ``rows`` (S * C, t), in place."""
        length = rows.shape[-1]
        guide, self._hp_state = signal.sosfilt(self._sos, rows, axis=-1, zi=self._hp_state)
        # the envelope filter is linear: one pass over guide + floor * broadband energies
        power = np.square(guide, out=guide)
        power += BROADBAND_FLOOR * np.square(rows)
        env, self._env_state = signal.lfilter(*self._env, power, axis=-1, zi=self._env_state)
        score = env.reshape(self.sources, self.channels, length)
        score += _TINY
        score /= score.sum(0, keepdims=True)  # the weights
        score *= residual[None]
        rows += score.reshape(rows.shape)


def band_seen(mixture_model: torch.Tensor, model_rate: int, sample_rate: int,
              length: int) -> torch.Tensor:
    """The mixture as the model heard it, at ``sample_rate``: ``mixture_model`` (C, t) at
    ``model_rate`` resampled and trimmed or zero-padded to ``length`` samples -> (C, length).
    The ``mix_band`` argument of :meth:`BandExtender.process` for a whole signal."""
    band = convert.resample(mixture_model, model_rate, sample_rate)[..., :length]
    return F.pad(band, (0, length - band.shape[-1]))


def extend_stems(stems: torch.Tensor, mixture: torch.Tensor, band: torch.Tensor,
                 model_rate: int, sample_rate: int) -> torch.Tensor:
    """Band extension of whole stems in one call: stems (S, C, T) and the mixture (C, >= T) at
    ``sample_rate``, ``band`` from :func:`band_seen` -> (S, C, T). Unchanged when
    ``sample_rate <= model_rate``."""
    length = stems.shape[-1]
    extender = BandExtender(stems.shape[0], stems.shape[1], model_rate, sample_rate)
    return extender.process(stems, mixture[..., :length], band[..., :length])
