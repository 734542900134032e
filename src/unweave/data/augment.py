"""Batch augmentation in torch, applied per source before the mixture is summed.

Every function maps ``stems: (B, S, C, T) -> (B, S, C, T)`` and draws its random parameters
per example and source from an explicit ``torch.Generator`` (on the CPU; the tensors may live
on any device). Because each source is transformed separately and the trainer forms the
mixture afterwards (``mix = stems.sum(1)``), the stems always sum to the mixture.

``Augmenter`` chains them from the ``data.augment`` section of a recipe. Speed change and
time shift need a longer input: ask the dataset for ``augmenter.input_length(T)`` samples and
``augmenter(stems, T)`` returns exactly ``T``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from scipy.fft import next_fast_len

from ..errors import UnweaveError


def _uniform(shape, low: float | torch.Tensor, high: float | torch.Tensor, generator,
             device) -> torch.Tensor:
    """Uniform in [low, high); tensor bounds broadcast against ``shape`` (e.g. one per source)."""
    return (torch.rand(shape, generator=generator) * (high - low) + low).to(device)


def _coin(shape, prob: float, generator, device) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) < prob).to(device)


def random_gain(stems: torch.Tensor, max_db: float, generator=None) -> torch.Tensor:
    """Scale each source by a gain uniform in ``+-max_db`` dB."""
    return _scale_db(stems, _uniform(stems.shape[:2], -max_db, max_db, generator, stems.device))


def source_gain(stems: torch.Tensor, ranges: torch.Tensor, generator=None) -> torch.Tensor:
    """Scale each source by a gain uniform in its own dB range; ``ranges``: (S, 2) low, high
    (a source at 0, 0 is left as it is), e.g. effects drawn 0-8 dB quieter than the corpus's."""
    db = _uniform(stems.shape[:2], ranges[:, 0], ranges[:, 1], generator, stems.device)
    return _scale_db(stems, db)


def _scale_db(stems: torch.Tensor, db: torch.Tensor) -> torch.Tensor:
    """stems (B, S, C, T) times the gain of ``db`` (B, S)."""
    return stems * (10 ** (db / 20))[..., None, None]


def sign_flip(stems: torch.Tensor, prob: float, generator=None) -> torch.Tensor:
    """Negate each source with probability ``prob``."""
    flip = _coin(stems.shape[:2], prob, generator, stems.device)
    return torch.where(flip[..., None, None], -stems, stems)


def channel_swap(stems: torch.Tensor, prob: float, generator=None) -> torch.Tensor:
    """Reverse the channel order of each source with probability ``prob`` (no-op for mono)."""
    if stems.shape[2] < 2:
        return stems
    swap = _coin(stems.shape[:2], prob, generator, stems.device)
    return torch.where(swap[..., None, None], stems.flip(2), stems)


def _source_mask(names: Sequence[str] | None, only: Sequence[str] | None, count: int,
                 device) -> torch.Tensor:
    if not only or names is None:
        return torch.ones(count, dtype=torch.bool, device=device)
    return torch.tensor([n in only for n in names], dtype=torch.bool, device=device)


def random_eq(stems: torch.Tensor, sample_rate: int, prob: float, max_db: float = 6.0,
              generator=None, sources: Sequence[str] | None = None,
              only: Sequence[str] | None = None) -> torch.Tensor:
    """Random zero-phase EQ: low shelf + high shelf + one peak, each within ``+-max_db``.

    The curve is built on a log-frequency axis (shelves are logistic steps around random corner
    frequencies, the peak a Gaussian one or two octaves wide) and applied by FFT filtering with
    zero padding. Applied with probability ``prob`` to the sources named in ``only`` (all if
    empty; ``sources`` gives the names of axis 1).
    """
    batch, num_sources, _, length = stems.shape
    pad = min(length, 4096)
    n_fft = next_fast_len(length + pad)
    freqs = torch.fft.rfftfreq(n_fft, 1 / sample_rate).clamp_min(20.0).log2()  # (F,)
    shape = (batch, num_sources, 1)

    def draw(low, high):
        return _uniform(shape, low, high, generator, "cpu")

    low_fc, high_fc = draw(math.log2(80), math.log2(400)), draw(math.log2(2000), math.log2(8000))
    peak_fc, peak_bw = draw(math.log2(200), math.log2(5000)), draw(0.5, 1.0)
    curve_db = (draw(-max_db, max_db) * torch.sigmoid(4 * (low_fc - freqs))
                + draw(-max_db, max_db) * torch.sigmoid(4 * (freqs - high_fc))
                + draw(-max_db, max_db) * torch.exp(-0.5 * ((freqs - peak_fc) / peak_bw) ** 2))
    use = _coin(stems.shape[:2], prob, generator, stems.device)
    use &= _source_mask(sources, only, num_sources, stems.device)
    if not use.any():
        return stems
    gain = (10 ** (curve_db / 20)).to(stems.device)[use]  # (K, F): the chosen sources only
    spec = torch.fft.rfft(F.pad(stems[use].float(), (0, pad)), n=n_fft)  # (K, C, F)
    out = stems.clone()
    out[use] = torch.fft.irfft(spec * gain[:, None], n=n_fft)[..., :length].to(stems.dtype)
    return out


def synthetic_reverb(stems: torch.Tensor, sample_rate: int, prob: float,
                     rt60: Sequence[float] = (0.1, 0.6), generator=None,
                     sources: Sequence[str] | None = None,
                     only: Sequence[str] | None = None) -> torch.Tensor:
    """Convolve with synthetic room responses: a direct path plus exponentially decaying noise.

    Per source: RT60 uniform in ``rt60`` (seconds; the tail falls by 60 dB in that time),
    direct-to-reverberant ratio uniform in [0, 12] dB, independent tails per channel. The output
    keeps the input's energy. Applied with probability ``prob`` to the sources in ``only``.
    """
    batch, num_sources, channels, length = stems.shape
    ir_length = max(2, min(length, int(max(rt60) * sample_rate)))
    t = torch.arange(ir_length) / sample_rate
    rt = _uniform((batch, num_sources, 1, 1), *rt60, generator, "cpu")
    tail = torch.randn(batch, num_sources, channels, ir_length, generator=generator)
    tail = tail * torch.exp(-math.log(1000.0) * t / rt)
    tail[..., 0] = 0.0
    drr_db = _uniform((batch, num_sources, 1, 1), 0.0, 12.0, generator, "cpu")
    tail = tail / tail.pow(2).sum(-1, keepdim=True).sqrt().clamp_min(1e-8) * 10 ** (-drr_db / 20)
    tail[..., 0] = 1.0
    use = _coin(stems.shape[:2], prob, generator, stems.device)
    use &= _source_mask(sources, only, num_sources, stems.device)
    if not use.any():
        return stems
    ir = tail.to(stems.device)[use]  # (K, C, ir_length): the chosen sources only
    dry = stems[use].float()  # (K, C, T)
    n_fft = next_fast_len(length + ir_length)
    wet = torch.fft.irfft(torch.fft.rfft(dry, n=n_fft) * torch.fft.rfft(ir, n=n_fft),
                          n=n_fft)[..., :length]
    e_in = dry.pow(2).sum((-2, -1), keepdim=True)
    e_out = wet.pow(2).sum((-2, -1), keepdim=True).clamp_min(1e-12)
    out = stems.clone()
    out[use] = (wet * (e_in / e_out).sqrt()).to(stems.dtype)
    return out


def speed_shift_crop(stems: torch.Tensor, length: int, max_speed: float = 0.0,
                     max_shift: int = 0, generator=None,
                     per_source: bool = False) -> torch.Tensor:
    """Crop ``length`` samples with a random speed change and per-source time shifts.

    ``stems: (B, S, C, L) -> (B, S, C, length)`` with ``L >= input_length(length, max_speed,
    max_shift)``. The speed factor (uniform in ``1 +- max_speed``) resamples by linear
    interpolation, changing pitch and tempo together. It is shared by the sources of an example
    so that a coherent mixture stays coherent, unless ``per_source``: then each source draws its
    own (for stems that need not stay in time with each other, such as a soundtrack's speech,
    music and effects). Each source then starts at its own offset, up to ``max_shift`` samples
    apart.
    """
    batch, num_sources, channels, have = stems.shape
    if have < input_length(length, max_speed, max_shift):
        raise ValueError(f"need {input_length(length, max_speed, max_shift)} input samples, "
                         f"got {have}")
    speed = _uniform((batch, num_sources if per_source else 1, 1), 1 - max_speed,
                     1 + max_speed, generator, "cpu")
    span = (length - 1) * speed  # (B, 1 or S, 1) input samples covered
    room = (have - 1 - span - max_shift).clamp_min(0)
    base = torch.rand(batch, 1, 1, generator=generator) * room
    shift = torch.rand(batch, num_sources, 1, generator=generator) * max_shift
    pos = base + shift + torch.arange(length) * speed  # (B, S, length)
    pos = pos.clamp(0, have - 1)
    if max_speed == 0:
        pos = pos.floor()  # integer offsets: an exact copy, no interpolation
    i0 = pos.floor().long().clamp(max=have - 2 if have > 1 else 0)
    frac = (pos - i0).to(stems.device, stems.dtype)[:, :, None]  # (B, S, 1, length)
    i0 = i0.to(stems.device)[:, :, None].expand(batch, num_sources, channels, length)
    i1 = (i0 + 1).clamp(max=have - 1)
    return stems.gather(-1, i0) * (1 - frac) + stems.gather(-1, i1) * frac


def input_length(length: int, max_speed: float = 0.0, max_shift: int = 0) -> int:
    """Input samples ``speed_shift_crop`` needs to return ``length`` samples."""
    return math.ceil((length - 1) * (1 + max_speed)) + 1 + int(max_shift) + (
        1 if max_speed > 0 else 0)


def _gain_ranges(ranges: Mapping[str, Sequence[float]],
                 sources: tuple[str, ...]) -> torch.Tensor | None:
    """``{source: [low_db, high_db]}`` -> (S, 2) in ``sources`` order (None when empty)."""
    if not ranges:
        return None
    unknown = sorted(set(ranges) - set(sources))
    if unknown:
        raise UnweaveError(f"data.augment.source_gain_db: unknown source(s) "
                           f"{', '.join(unknown)} (the corpus's sources: {', '.join(sources)})")
    rows = []
    for name in sources:
        pair = ranges.get(name, (0.0, 0.0))
        try:
            low, high = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise UnweaveError(f"data.augment.source_gain_db.{name}: expected [low_db, "
                               f"high_db], got {pair!r}") from None
        if low > high:
            raise UnweaveError(f"data.augment.source_gain_db.{name}: low {low} above high {high}")
        rows.append((low, high))
    return torch.tensor(rows, dtype=torch.float32)


class Augmenter:
    """The augmentation chain of a recipe's ``data.augment`` section (see ``AugmentConfig``).

    ``augmenter(stems (B, S, C, L), length) -> (B, S, C, length)``: crop with speed/shift, then
    gain, per-source gain ranges, sign flip, channel swap, EQ and reverb, each per source.
    """

    def __init__(self, sample_rate: int, sources: Sequence[str], *, gain_db: float = 0.0,
                 channel_swap: float = 0.0, sign_flip: float = 0.0, shift_seconds: float = 0.0,
                 speed: float = 0.0, speed_per_source: bool = False, eq_prob: float = 0.0, eq_db: float = 6.0,
                 reverb_prob: float = 0.0, rt60: Sequence[float] = (0.1, 0.6),
                 reverb_sources: Sequence[str] = (), eq_sources: Sequence[str] = (),
                 source_gain_db: Mapping[str, Sequence[float]] | None = None) -> None:
        self.sample_rate, self.sources = int(sample_rate), tuple(sources)
        self.source_gain = _gain_ranges(source_gain_db or {}, self.sources)
        self.gain_db, self.channel_swap, self.sign_flip = gain_db, channel_swap, sign_flip
        self.max_shift = round(shift_seconds * sample_rate)
        self.speed, self.speed_per_source = float(speed), bool(speed_per_source)
        self.eq_prob, self.eq_db, self.eq_sources = eq_prob, eq_db, tuple(eq_sources)
        self.reverb_prob, self.rt60 = reverb_prob, tuple(rt60)
        self.reverb_sources = tuple(reverb_sources)

    def input_length(self, length: int) -> int:
        return input_length(length, self.speed, self.max_shift)

    def __call__(self, stems: torch.Tensor, length: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        if stems.shape[-1] != length or self.speed or self.max_shift:
            stems = speed_shift_crop(stems, length, self.speed, self.max_shift, generator,
                                     self.speed_per_source)
        if self.gain_db:
            stems = random_gain(stems, self.gain_db, generator)
        if self.source_gain is not None:
            stems = source_gain(stems, self.source_gain, generator)
        if self.sign_flip:
            stems = sign_flip(stems, self.sign_flip, generator)
        if self.channel_swap:
            stems = channel_swap(stems, self.channel_swap, generator)
        if self.eq_prob:
            stems = random_eq(stems, self.sample_rate, self.eq_prob, self.eq_db, generator,
                              self.sources, self.eq_sources)
        if self.reverb_prob:
            stems = synthetic_reverb(stems, self.sample_rate, self.reverb_prob, self.rt60,
                                     generator, self.sources, self.reverb_sources)
        return stems
