"""Model-agnostic chunked inference: weighted (triangular) overlap-add, batching, random shifts.

The engine is streaming: blocks of the input go in, finished output samples come out, and the
memory it holds is a few segments long whatever the length of the file. A whole tensor is just
one block (``apply``).

Shifts: ``shifts=K`` runs K passes whose chunk grids start at K random offsets in
``[0, max_shift)`` (a zero-padded delay of the input, as Demucs does with ``--shifts``) and
averages them. Since each pass is normalised by its own window sum, an identity model
reproduces its input exactly for any segment, overlap or shift.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

Progress = Callable[[float], None]  # called with the input samples newly covered by model passes


def triangular_window(length: int) -> torch.Tensor:
    """Triangular overlap-add weights of ``length`` samples, strictly positive, peak 1."""
    half = torch.arange(1, length // 2 + 1, dtype=torch.float32)
    rest = torch.arange(length - length // 2, 0, -1, dtype=torch.float32)
    window = torch.cat([half, rest])
    return window / window.max()


def check_settings(*, shifts: int = 0, overlap: float = 0.0,
                   segment: float | None = None) -> None:
    """ValueError for a chunking setting out of range: shifts < 0, overlap outside [0, 1),
    segment <= 0 seconds (None: the model's own)."""
    if shifts < 0:
        raise ValueError(f"shifts must be >= 0, got {shifts}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if segment is not None and segment <= 0:
        raise ValueError(f"segment must be positive, got {segment}")


@dataclass(frozen=True)
class ChunkPlan:
    """Chunk geometry in samples: ``segment_length`` per chunk, ``stride`` between starts."""

    segment_length: int
    stride: int
    model_length: int  # segment_length padded to the model's valid length

    @classmethod
    def for_model(cls, model: nn.Module, segment: float | None, overlap: float) -> ChunkPlan:
        seconds = segment if segment is not None else getattr(model, "segment", None) or 10.0
        check_settings(overlap=overlap, segment=seconds)
        segment_length = max(2, round(seconds * model.sample_rate))
        stride = max(1, segment_length - round(overlap * segment_length))
        return cls(segment_length, stride, int(model.valid_length(segment_length)))


class _OverlapAdd:
    """One pass of streaming overlap-add over a chunk grid delayed by ``offset`` samples.

    Chunk k covers input samples ``[k * stride - offset, k * stride - offset + segment_length)``
    (zeros outside the signal).
    """

    def __init__(self, plan: ChunkPlan, offset: int, sources: int, channels: int) -> None:
        self.plan = plan
        self.offset = offset
        self.window = triangular_window(plan.segment_length)
        self.next_chunk = 0
        self.emitted = 0  # output samples [0, emitted) are already handed out
        # Accumulators for output samples [emitted, emitted + capacity); grown geometrically
        # (amortised O(1) per chunk), compacted on pop.
        self.acc = torch.zeros(sources, channels, 2 * plan.segment_length)
        self.weight = torch.zeros(2 * plan.segment_length)
        self.filled = 0  # samples of the accumulators that hold data

    def chunk_start(self, k: int) -> int:
        return k * self.plan.stride - self.offset

    def ready_chunks(self, available: int, final: bool) -> list[int]:
        """Chunks not yet run whose input lies within the first ``available`` samples.

        When ``final`` (the input ended at ``available``), every chunk starting before the end.
        """
        ks = []
        k = self.next_chunk
        while True:
            start = self.chunk_start(k)
            ready = start < available if final else start + self.plan.segment_length <= available
            if not ready:
                return ks
            ks.append(k)
            k += 1

    def add(self, k: int, out: torch.Tensor) -> None:
        """Accumulate chunk ``k``'s output ``out: (S, C, segment_length)``."""
        start = self.chunk_start(k)
        lo = max(start, self.emitted)
        hi = start + self.plan.segment_length
        if hi <= lo:
            return
        need = hi - self.emitted
        if self.acc.shape[-1] < need:
            grow = max(need, 2 * self.acc.shape[-1]) - self.acc.shape[-1]
            self.acc = torch.cat([self.acc, self.acc.new_zeros(*self.acc.shape[:2], grow)], -1)
            self.weight = torch.cat([self.weight, self.weight.new_zeros(grow)])
        self.filled = max(self.filled, need)
        w = self.window[lo - start:]
        self.acc[..., lo - self.emitted: hi - self.emitted] += out[..., lo - start:] * w
        self.weight[lo - self.emitted: hi - self.emitted] += w
        self.next_chunk = k + 1

    def finished_until(self, total: int | None) -> int:
        """Output samples before this index receive no more chunks."""
        limit = self.chunk_start(self.next_chunk)
        return limit if total is None else min(limit, total)

    def pop(self, until: int) -> torch.Tensor:
        """Hand out normalised output ``[emitted, until)`` as ``(S, C, until - emitted)``."""
        n = until - self.emitted
        if n <= 0:
            return self.acc[..., :0].clone()
        out = self.acc[..., :n] / self.weight[:n]
        rest = max(0, self.filled - n)
        self.acc[..., :rest] = self.acc[..., n: n + rest].clone()
        self.weight[:rest] = self.weight[n: n + rest].clone()
        self.acc[..., rest: self.filled] = 0
        self.weight[rest: self.filled] = 0
        self.filled = rest
        self.emitted = until
        return out


def _run_model(model: nn.Module, batch: torch.Tensor, valid_length: int,
               device: torch.device) -> torch.Tensor:
    """batch: (b, C, n) -> (b, S, C, n); the input is zero-padded to ``valid_length`` (the
    model's valid length for n samples) and the output cropped back."""
    n = batch.shape[-1]
    batch = batch.to(device)
    if valid_length > n:
        batch = nn.functional.pad(batch, (0, valid_length - n))
    with torch.inference_mode():
        out = model(batch)  # (b, S, C, valid_length)
    return out[..., :n].float().cpu()


class ChunkedSeparation:
    """Streaming separation: ``feed`` blocks ``(C, t)``, get finished ``(S, C, t')`` back.

    Args:
        model: a separation model (metadata contract in ``unweave.models.base``).
        segment: chunk length in seconds (default: the model's ``segment``).
        overlap: fraction of a chunk shared with the next, in [0, 1).
        shifts: number of randomly shifted passes to average (0: a single unshifted pass).
        max_shift: largest shift in seconds.
        batch_size: chunks per forward call.
        seed: seed of the shift offsets (reproducible output).
    """

    def __init__(self, model: nn.Module, *, segment: float | None = None, overlap: float = 0.25,
                 shifts: int = 0, max_shift: float = 0.5, batch_size: int = 4,
                 device: str | torch.device = "cpu", seed: int = 0,
                 progress: Progress | None = None) -> None:
        check_settings(shifts=shifts)
        self.model = model
        self.plan = ChunkPlan.for_model(model, segment, overlap)
        self.device = torch.device(device)
        self.batch_size = max(1, batch_size)
        self.progress = progress
        max_offset = max(1, min(int(max_shift * model.sample_rate), self.plan.stride))
        gen = torch.Generator().manual_seed(seed)
        offsets = [0] if shifts == 0 else [
            int(torch.randint(0, max_offset, (1,), generator=gen)) for _ in range(shifts)
        ]
        n_src, channels = len(model.sources), model.audio_channels
        self.passes = [_OverlapAdd(self.plan, off, n_src, channels) for off in offsets]
        self.channels = channels
        self.buffer = torch.zeros(channels, 0)  # input samples [buffer_start, received)
        self.buffer_start = 0
        self.received = 0
        self.emitted = 0

    def _process(self, final: bool) -> None:
        length = self.plan.segment_length
        for ola in self.passes:
            ks = ola.ready_chunks(self.received, final)
            # Chunks that reach past either end of the signal (a short file, the last chunk, a
            # shifted first chunk) run on the samples they cover only: zero padding in front of
            # the model is input it never saw in training and changes its output near the edge.
            group: list[int] = []
            for k in ks:
                start = ola.chunk_start(k)
                if start >= 0 and start + length <= self.received:
                    group.append(k)
                    if len(group) == self.batch_size:
                        self._run_group(ola, group)
                        group = []
                    continue
                self._run_group(ola, group)  # keep chunks in order: add() tracks the next one
                group = []
                ola.add(k, self._run_partial(start))
                self._tick(1)
            self._run_group(ola, group)

    def _run_group(self, ola: _OverlapAdd, group: list[int]) -> None:
        if not group:
            return
        chunks = torch.stack([self._chunk_input(ola.chunk_start(k)) for k in group])
        outs = _run_model(self.model, chunks, self.plan.model_length, self.device)
        for k, out in zip(group, outs):
            ola.add(k, out)
        self._tick(len(group))

    def _tick(self, chunks: int) -> None:
        if self.progress is not None:  # each chunk advances its pass by one stride
            self.progress(chunks * self.plan.stride / len(self.passes))

    def _run_partial(self, start: int) -> torch.Tensor:
        """Output (S, C, segment_length) of the chunk at ``start`` computed from the part of it
        inside the signal (zeros elsewhere, where it is never read)."""
        length = self.plan.segment_length
        lo, hi = max(start, 0), min(start + length, self.received)
        if hi <= lo:  # nothing of the signal in this chunk (an empty input)
            return torch.zeros(len(self.model.sources), self.channels, length)
        piece = self.buffer[None, :, lo - self.buffer_start: hi - self.buffer_start]  # (1, C, n)
        out = _run_model(self.model, piece, int(self.model.valid_length(hi - lo)), self.device)[0]
        full = out.new_zeros(*out.shape[:-1], length)
        full[..., lo - start: hi - start] = out
        return full

    def _chunk_input(self, start: int) -> torch.Tensor:
        length = self.plan.segment_length
        chunk = torch.zeros(self.channels, length)
        lo, hi = max(start, self.buffer_start), min(start + length, self.received)
        if hi > lo:
            chunk[:, lo - start: hi - start] = self.buffer[:, lo - self.buffer_start: hi - self.buffer_start]
        return chunk

    def _emit(self, total: int | None) -> torch.Tensor:
        until = min(ola.finished_until(total) for ola in self.passes)
        until = max(until, self.emitted)
        outs = [ola.pop(until) for ola in self.passes]
        self.emitted = until
        # Drop input no chunk of any pass will read again.
        keep_from = min(ola.chunk_start(ola.next_chunk) for ola in self.passes)
        drop = max(0, min(keep_from, self.received) - self.buffer_start)
        if drop:
            self.buffer = self.buffer[:, drop:]
            self.buffer_start += drop
        return torch.stack(outs).mean(0) if len(outs) > 1 else outs[0]

    def feed(self, block: torch.Tensor) -> torch.Tensor:
        """block: (C, t) -> finished output (S, C, t') (t' may be 0)."""
        if block.dim() != 2 or block.shape[0] != self.channels:
            raise ValueError(f"expected a block of shape ({self.channels}, t), got {tuple(block.shape)}")
        self.buffer = torch.cat([self.buffer, block.float().cpu()], dim=-1)
        self.received += block.shape[-1]
        self._process(final=False)
        return self._emit(total=None)

    def finish(self) -> torch.Tensor:
        """Process what is left; returns the rest of the output (S, C, t')."""
        self._process(final=True)
        return self._emit(total=self.received)


def iter_separate(engine: ChunkedSeparation, blocks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Run ``engine`` over input ``blocks``; yields output blocks (S, C, t), empty ones skipped."""
    for block in blocks:
        out = engine.feed(block)
        if out.shape[-1]:
            yield out
    out = engine.finish()
    if out.shape[-1]:
        yield out


def apply(model: nn.Module, mix: torch.Tensor, *, segment: float | None = None,
          overlap: float = 0.25, shifts: int = 0, batch_size: int = 4,
          device: str | torch.device = "cpu", seed: int = 0, block_seconds: float | None = None,
          progress: Progress | None = None) -> torch.Tensor:
    """Separate a whole tensor. mix: (C, T) -> (S, C, T).

    ``block_seconds`` feeds the input in blocks (the result does not depend on it).
    """
    engine = ChunkedSeparation(model, segment=segment, overlap=overlap, shifts=shifts,
                               batch_size=batch_size, device=device, seed=seed, progress=progress)
    total = mix.shape[-1]
    step = total if not block_seconds else max(1, int(block_seconds * model.sample_rate))
    blocks = (mix[:, i: i + step] for i in range(0, max(total, 1), max(step, 1))) if total else iter([])
    outs = list(iter_separate(engine, blocks))
    if not outs:
        return mix.new_zeros(len(model.sources), mix.shape[0], 0)
    result = torch.cat(outs, dim=-1)
    assert result.shape[-1] == total, (result.shape, total)
    return result


def n_chunks(total_length: int, plan: ChunkPlan, shifts: int) -> int:
    """Approximate number of forward chunks for progress estimates."""
    return max(1, shifts) * max(1, math.ceil(total_length / plan.stride))
