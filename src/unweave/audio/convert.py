"""Sample-rate conversion, channel conversion and the clip policy: one function each.

All three take and return float32 tensors whose last axis is time: ``wav: (..., C, T)``.
They never touch files; ``unweave.audio.io`` calls them on decoded audio and before encoding.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import soxr
import torch
from torch import Tensor

__all__ = [
    "CLIP_MODES",
    "RESCALE_PEAK",
    "StreamResampler",
    "apply_clip",
    "convert_channels",
    "resample",
    "resampled_length",
]

#: Clip policies understood by :func:`apply_clip` (and by ``io.write``).
CLIP_MODES = ("rescale", "clamp", "none")
#: Peak after ``apply_clip(..., "rescale")`` when the input peak was above 1 (-0.09 dBFS).
RESCALE_PEAK = 0.99
#: soxr quality used everywhere (the block reader uses the same one, so both paths agree).
SOXR_QUALITY = "HQ"
#: shorter signals are resampled row by row on one thread (a pool costs more than it saves)
_PARALLEL_MIN_LENGTH = 1 << 16

# 5.1 / 7.1 in WAVE / FFmpeg / FLAC channel order: FL FR FC LFE BL BR [SL SR].
# ITU-R BS.775 style stereo downmix without the LFE, rows = (left, right).
_C = 1.0 / math.sqrt(2.0)
_DOWNMIX = {
    6: [[1.0, 0.0, _C, 0.0, _C, 0.0], [0.0, 1.0, _C, 0.0, 0.0, _C]],
    8: [[1.0, 0.0, _C, 0.0, _C, 0.0, _C, 0.0], [0.0, 1.0, _C, 0.0, 0.0, _C, 0.0, _C]],
}


def resampled_length(length: int, from_rate: int, to_rate: int) -> int:
    """Number of samples after resampling ``length`` samples: ``floor(length * to / from + 1/2)``.

    Computed exactly in integers (ties round up). Both :func:`resample` and the block reader in
    ``unweave.audio.io`` produce exactly this many samples.
    """
    return (2 * length * to_rate + from_rate) // (2 * from_rate)


def resample(wav: Tensor, from_rate: int, to_rate: int) -> Tensor:
    """Resample with soxr ('HQ'): ``wav: (..., C, T) -> (..., C, T')``.

    ``T' = resampled_length(T, from_rate, to_rate)``. Returns ``wav`` itself when the rates are
    equal. Output is float32 on the input's device.
    """
    from_rate, to_rate = int(from_rate), int(to_rate)
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if from_rate == to_rate:
        return wav
    lead, length = wav.shape[:-1], wav.shape[-1]
    out_length = resampled_length(length, from_rate, to_rate)
    flat = wav.detach().reshape(-1, length).to("cpu", torch.float32)  # (K, T), K = prod(lead)
    if length == 0 or flat.shape[0] == 0:
        return torch.zeros(*lead, out_length, dtype=torch.float32, device=wav.device)
    # one row at a time: soxr takes a (T,) row as it lies in memory, where a (T, K) frame array
    # would need a transposed copy each way (2.7x slower for 8 rows of 180 s; same samples)
    rows = flat.numpy()
    out = np.empty((len(rows), out_length), dtype=np.float32)

    def one(i: int) -> None:
        out[i] = _fit_row(soxr.resample(rows[i], from_rate, to_rate, quality=SOXR_QUALITY),
                          out_length)  # soxr already gives out_length; guard it

    workers = min(len(rows), torch.get_num_threads())
    if workers > 1 and length >= _PARALLEL_MIN_LENGTH:
        # soxr releases the GIL: rows on torch's threads (2 threads: 8 rows of 180 s in half the
        # time); each row is computed alone, so the samples do not depend on the thread count
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(len(rows))))
    else:
        for i in range(len(rows)):
            one(i)
    return torch.from_numpy(out).reshape(*lead, out_length).to(wav.device)


class StreamResampler:
    """Block-wise :func:`resample` with seamless boundaries (``soxr.ResampleStream``, 'HQ').

    ``process(block: (C, t)) -> (C, t')`` for each block in order, then ``flush() -> (C, t'')``
    once. All outputs concatenated hold exactly ``resampled_length(total_in, from, to)`` samples
    and match :func:`resample` of the whole signal to float rounding. With equal rates blocks
    pass through unchanged.
    """

    def __init__(self, from_rate: int, to_rate: int, channels: int):
        self.from_rate, self.to_rate, self.channels = int(from_rate), int(to_rate), int(channels)
        if self.from_rate <= 0 or self.to_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
        self._stream = None
        if self.from_rate != self.to_rate:
            # one mono stream per channel: rows go in as they lie in memory (see resample)
            self._stream = [soxr.ResampleStream(self.from_rate, self.to_rate, 1,
                                                dtype="float32", quality=SOXR_QUALITY)
                            for _ in range(self.channels)]
        self.consumed = self.emitted = 0
        self._flushed = False

    def process(self, block: Tensor) -> Tensor:
        """``block: (C, t) -> (C, t')`` (t' may be 0 while the filter fills)."""
        if self._flushed:
            raise RuntimeError("StreamResampler.process() after flush()")
        if block.shape[-2] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {block.shape[-2]}")
        self.consumed += block.shape[-1]
        if self._stream is None:
            self.emitted += block.shape[-1]
            return block
        rows = block.detach().to("cpu", torch.float32).numpy()
        out = np.stack([s.resample_chunk(np.ascontiguousarray(r), last=False)
                        for s, r in zip(self._stream, rows)])  # (C, t')
        self.emitted += out.shape[1]
        return torch.from_numpy(out).to(block.device)

    def flush(self) -> Tensor:
        """The remaining ``(C, t'')`` samples; brings the total to the exact length."""
        if self._flushed:
            raise RuntimeError("StreamResampler.flush() called twice")
        self._flushed = True
        if self._stream is None:
            return torch.zeros(self.channels, 0)
        want = max(0, resampled_length(self.consumed, self.from_rate, self.to_rate) - self.emitted)
        tail = np.stack([_fit_row(s.resample_chunk(np.zeros(0, np.float32), last=True), want)
                         for s in self._stream])  # (C, want)
        self.emitted += want
        return torch.from_numpy(tail)


def _fit_row(samples: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad one channel ``samples: (T,)`` to ``length`` float32 samples."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if samples.shape[0] >= length:
        return samples[:length]
    return np.concatenate([samples, np.zeros(length - samples.shape[0], np.float32)])


def convert_channels(wav: Tensor, channels: int) -> Tensor:
    """Change the channel count: ``wav: (..., C, T) -> (..., channels, T)``.

    Rules (memoryless, so block-wise conversion equals whole-file conversion):

    - same count: ``wav`` is returned unchanged;
    - ``C == 1``: the channel is duplicated ``channels`` times;
    - ``channels == 1``: the average of all ``C`` channels;
    - ``C`` = 6 (5.1) or 8 (7.1) to 2: ITU-R BS.775 downmix in WAVE/FFmpeg channel order
      (FL FR FC LFE BL BR [SL SR]): centre and surrounds at -3 dB, LFE dropped, each output
      normalised by its gain sum so that a signal equal on all channels keeps its level;
    - any other ``C > channels``: the first ``channels`` channels (front left/right first in
      every standard layout);
    - ``1 < C < channels``: ``ValueError`` (no meaningful up-mix).
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    have = wav.shape[-2]
    if have == channels:
        return wav
    if have == 1:
        return wav.expand(*wav.shape[:-2], channels, wav.shape[-1]).contiguous()
    if channels == 1:
        return wav.mean(dim=-2, keepdim=True)
    if channels == 2 and have in _DOWNMIX:
        matrix = torch.tensor(_DOWNMIX[have], dtype=wav.dtype, device=wav.device)  # (2, C)
        matrix = matrix / matrix.sum(dim=1, keepdim=True)
        return torch.einsum("oc,...ct->...ot", matrix, wav)
    if have > channels:
        return wav[..., :channels, :].contiguous()
    raise ValueError(f"cannot convert {have} channels to {channels}")


def apply_clip(wav: Tensor, mode: str) -> Tensor:
    """Keep samples within [-1, 1] before integer encoding: ``wav: (..., C, T) -> same shape``.

    - ``"rescale"``: if the peak over the whole tensor exceeds 1, scale everything by one gain
      so that the peak becomes :data:`RESCALE_PEAK` (0.99); otherwise unchanged;
    - ``"clamp"``: hard-clip each sample to [-1, 1];
    - ``"none"``: unchanged (integer encoders then saturate; float files keep the values).
    """
    if mode == "none":
        return wav
    if mode == "clamp":
        return wav.clamp(-1.0, 1.0)
    if mode == "rescale":
        if wav.numel() == 0:
            return wav
        peak = float(wav.abs().max())
        if peak > 1.0:
            return wav * (RESCALE_PEAK / peak)
        return wav
    raise ValueError(f"clip mode must be one of {CLIP_MODES}, got {mode!r}")
