"""A separation model followed by soft-mask refinement (:mod:`unweave.dsp.postfilter`).

``Refined(model)`` satisfies the same metadata contract as the model it wraps, so chunking,
shifts and every front end run it unchanged; the refinement runs on each chunk, before the
overlap-add, at the model's sample rate.
"""

from __future__ import annotations

import torch
from torch import nn

from ..dsp.postfilter import fft_size, soft_mask_refine
from ..errors import UnweaveError
from .chunking import apply

# "soft": a soft mask per stem and channel; "spatial": plus each source's spatial covariance
# (a multichannel Wiener filter, the default: on the music and soundtrack validation sets it
# scored at least as well on every stem's median but one, within 0.2 dB)
REFINE_MODES = ("soft", "spatial")
DEFAULT_REFINE_MODE = "spatial"
# seconds of audio the spatial covariances are estimated over (the models run in their own
# shorter chunks inside): a 30 s soundtrack item as one block scored better than 6 s chunks on
# every stem; bounded, so memory does not grow with the file (a few hundred MB per block)
SPATIAL_CONTEXT_SECONDS = 30.0
# overlap of those blocks: enough to cross-fade one block's filter into the next, and little
# extra work (the model's own chunks inside a block keep the caller's overlap)
CONTEXT_OVERLAP = 0.1


def refine_mode(value: bool | str | None, model_setting: bool | str | None = None) -> str | None:
    """The refinement mode for a request ``value`` (None: the model's setting ``model_setting``;
    False: off; True: the model's mode, else the default; or a mode name). None means off."""
    if value is None:
        value = model_setting
    if value is None or value is False:
        return None
    if value is True:
        return model_setting if isinstance(model_setting, str) else DEFAULT_REFINE_MODE
    if value not in REFINE_MODES:
        raise UnweaveError(f"unknown refinement {value!r}: choose from {', '.join(REFINE_MODES)}")
    return str(value)


class Refined(nn.Module):
    """``model`` whose stems are re-derived from the mixture by soft masks.

    Args:
        model: a separation model (``unweave.models.base`` contract).
        power: magnitude exponent of the masks (1: ratio mask, 2: Wiener filter).
        n_fft: STFT size (default: ~93 ms at the model's rate).
        spatial: multichannel Wiener filter with per-source spatial covariances
            (:func:`unweave.dsp.postfilter.soft_mask_refine`); no effect on mono models.
        context: seconds of audio each refinement sees (None: the model's segment). When longer
            than the model's segment, the wrapper's chunks are ``context`` long and the model
            runs on each of them in its own chunks (overlap-added, as ``Separator`` would run
            it), so that the spatial covariances come from more frames.
        overlap: overlap of the model's own chunks inside a ``context`` block.
        batch_size: the model's chunks per forward call inside a ``context`` block.
    """

    def __init__(self, model: nn.Module, power: float = 1.0, n_fft: int | None = None,
                 spatial: bool = False, context: float | None = None,
                 overlap: float = 0.25, batch_size: int = 4) -> None:
        super().__init__()
        self.inner = model
        self.power = float(power)
        self.spatial = bool(spatial)
        self.n_fft = int(n_fft or fft_size(model.sample_rate))
        for attr in ("sources", "sample_rate", "audio_channels", "segment"):
            setattr(self, attr, getattr(model, attr))
        for attr in ("model_name", "trained"):
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))
        inner_segment = getattr(model, "segment", None)
        self.context = (float(context) if context and inner_segment
                        and float(context) > float(inner_segment) else None)
        self.overlap, self.batch_size = float(overlap), int(batch_size)
        if self.context:
            self.segment = self.context

    @classmethod
    def for_mode(cls, model: nn.Module, mode: str, *, overlap: float = 0.25,
                 batch_size: int = 4) -> Refined:
        """``model`` refined in ``mode`` (one of :data:`REFINE_MODES`) as ``Separator`` runs
        it: the spatial mode estimates its covariances over ``SPATIAL_CONTEXT_SECONDS``."""
        spatial = mode == "spatial"
        return cls(model, spatial=spatial, overlap=overlap, batch_size=batch_size,
                   context=SPATIAL_CONTEXT_SECONDS if spatial else None)

    @property
    def mode(self) -> str:
        return "spatial" if self.spatial else "soft"

    # how the caller should chunk this wrapper (None: as it would the model): context blocks
    # overlap a little and go one at a time (a block's refinement holds a few hundred MB)
    @property
    def chunk_overlap(self) -> float | None:
        return CONTEXT_OVERLAP if self.context else None

    @property
    def chunk_batch(self) -> int | None:
        return 1 if self.context else None

    def valid_length(self, length: int) -> int:
        return int(length) if self.context else self.inner.valid_length(length)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix: (B, C, T) -> (B, S, C, T)."""
        if not self.context:
            return soft_mask_refine(mix, self.inner(mix), self.n_fft, power=self.power,
                                    spatial=self.spatial)
        outs = []
        for item in mix:  # one at a time: a context-long refinement holds a few hundred MB
            est = apply(self.inner, item, segment=self.inner.segment, overlap=self.overlap,
                        batch_size=self.batch_size, device=item.device)
            outs.append(soft_mask_refine(item, est.to(item.device), self.n_fft,
                                         power=self.power, spatial=self.spatial))
        return torch.stack(outs)
