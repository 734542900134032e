"""File -> stems: the pipeline every front end (CLI, Python API, web app) goes through.

``read blocks -> convert rate/channels -> chunked model (overlap-add, shifts) -> stems ->
back to the input rate -> band extension -> write incrementally``. Peak memory is a few segments
plus the block size whatever the length of the file; outputs appear atomically, only once
complete.

A model running below the input's rate (22.05 kHz models on 44.1 kHz files) gives stems that
are empty above its Nyquist frequency; band extension (:mod:`unweave.dsp.bandext`, on by
default) shares the mixture's content up there among the stems, so that they again sum to the
full-band mixture.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import torch
from torch import nn

from ..audio import convert, io
from ..dsp.bandext import BandExtender, band_seen, extend_stems
from ..errors import AudioWriteError, UnweaveError
from ..pretrained.catalog import load_model
from .chunking import ChunkedSeparation, apply, check_settings
from .refine import Refined, refine_mode

Progress = Callable[[float, str], None]  # (fraction done in [0, 1], stage)
BLOCK_SECONDS = 30.0
#: the stem writer brings back, extends and writes the stems of a block in pieces this long
WRITE_PIECE_SECONDS = 5.0
FORMATS = {"wav": "wav", "flac": "flac", "mp3": "mp3"}
SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
#: chunk overlap of models whose catalog entry names none
DEFAULT_OVERLAP = 0.25


@dataclass
class OutputOptions:
    """How stems are written: format, sample type, clip policy, which stems."""

    fmt: str = "wav"
    subtype: str = "PCM_16"
    clip: str = "rescale"
    stems: tuple[str, ...] | None = None  # None: every source
    two_stems: str | None = None  # write STEM and no_STEM (mixture minus STEM)
    consistent: bool = False  # distribute the residual so the stems sum to the mixture

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise UnweaveError(f"unknown output format {self.fmt!r} (wav, flac, mp3)")
        if self.subtype not in SUBTYPES:
            raise UnweaveError(f"unknown sample type {self.subtype!r} ({', '.join(SUBTYPES)})")
        if self.clip not in ("rescale", "clamp", "none"):
            raise UnweaveError(f"unknown clip mode {self.clip!r} (rescale, clamp, none)")


class StemPlan:
    """Which stems are produced from the model's sources, and how (names, residuals)."""

    def __init__(self, sources: tuple[str, ...], options: OutputOptions) -> None:
        self.sources = sources
        if options.two_stems is not None:
            if options.two_stems not in sources:
                raise UnweaveError(
                    f"--two-stems {options.two_stems}: not a source of this model ({', '.join(sources)})")
            self.names = (options.two_stems, f"no_{options.two_stems}")
        elif options.stems:
            unknown = [s for s in options.stems if s not in sources]
            if unknown:
                raise UnweaveError(
                    f"--stems {','.join(unknown)}: not a source of this model ({', '.join(sources)})")
            self.names = tuple(s for s in sources if s in options.stems)
        else:
            self.names = tuple(sources)
        self.options = options

    def make(self, est: torch.Tensor, mix: torch.Tensor) -> dict[str, torch.Tensor]:
        """est: (S, C, t), mix: (C, t), both at the output rate -> {stem: (C, t)}."""
        if self.options.consistent:
            est = est + (mix - est.sum(0)) / est.shape[0]
        by_name = dict(zip(self.sources, est))
        if self.options.two_stems is not None:
            stem = by_name[self.options.two_stems]
            return {self.names[0]: stem, self.names[1]: mix - stem}
        return {name: by_name[name] for name in self.names}


MAX_CHANNELS = 64  # more rows than this is taken for a (time, channels) array


def _check_wav(wav) -> torch.Tensor:
    """``wav`` as a (C, T) float tensor, or a ValueError / TypeError saying what is wrong."""
    wav = torch.as_tensor(wav)
    if wav.dim() == 1:
        wav = wav[None]
    if wav.dim() != 2:
        raise ValueError(f"wav must be (channels, time) or (time,), got shape {tuple(wav.shape)}")
    if not wav.is_floating_point():
        raise TypeError(f"wav must hold real float samples in [-1, 1], got {wav.dtype} (scale "
                        f"integer PCM first, e.g. wav / 32768 for int16)")
    if wav.shape[0] > MAX_CHANNELS:
        raise ValueError(f"wav has shape {tuple(wav.shape)}: expected (channels, time), and "
                         f"{wav.shape[0]} channels is more than {MAX_CHANNELS}; for a (time, "
                         f"channels) array pass wav.T")
    if not bool(torch.isfinite(wav).all()):
        raise ValueError("wav holds NaN or infinite samples")
    return wav


class Separator:
    """Separate audio with a model by name (catalog, ``tiny-<arch>``), checkpoint path or module.

    Args:
        model: catalog name, ``"default"``, checkpoint path/URL, or an ``nn.Module``.
        shifts: random-shift passes averaged (0: none).
        overlap: chunk overlap fraction (None: the model's own, ``overlap`` in its catalog
            entry, else :data:`DEFAULT_OVERLAP`).
        segment: chunk length in seconds (default: the model's).
        device: ``cpu``, ``cuda`` or ``mps``.
        jobs: CPU threads for the model (None: leave torch's default).
        batch_size: chunks per forward call.
        refine: soft-mask refinement of the stems from the mixture (``unweave.dsp.postfilter``):
            ``"soft"``, ``"spatial"`` (with the sources' spatial covariances), True (the
            model's mode, else ``"spatial"``) or False; None: the model's own setting
            (``refine`` in its catalog entry, else off).
        band_extension: when the input's rate is above the model's, share the mixture's content
            above the model's band among the stems (:mod:`unweave.dsp.bandext`); False leaves
            the stems empty up there.
    """

    def __init__(self, model: str | nn.Module = "default", *, shifts: int = 0,
                 overlap: float | None = None,
                 segment: float | None = None, device: str = "cpu", jobs: int | None = None,
                 batch_size: int = 4, seed: int = 0, refine: bool | str | None = None,
                 band_extension: bool = True) -> None:
        self.device = _check_device(device)
        self.model = (load_model(model) if not isinstance(model, nn.Module) else model)
        if overlap is None:  # the catalog entry's own (0 is a valid one), else the default
            overlap = getattr(self.model, "default_overlap", None)
            overlap = DEFAULT_OVERLAP if overlap is None else overlap
        check_settings(shifts=shifts, overlap=overlap, segment=segment)  # now, not at first use
        if isinstance(self.model, Refined):
            self.refine_mode = self.model.mode
        else:
            self.refine_mode = refine_mode(refine, getattr(self.model, "refine", None))
            if self.refine_mode is not None:
                self.model = Refined.for_mode(self.model, self.refine_mode, overlap=overlap,
                                              batch_size=batch_size)
        self.refine = self.refine_mode is not None
        self.model.to(self.device).eval()
        self.model_name = getattr(self.model, "model_name", type(self.model).__name__.lower())
        self.shifts, self.overlap, self.segment = shifts, overlap, segment
        # a refinement over long blocks chunks them with its own (small) overlap; the model
        # inside keeps ``overlap``
        self.chunk_overlap = getattr(self.model, "chunk_overlap", None) or overlap
        self.batch_size = getattr(self.model, "chunk_batch", None) or batch_size
        self.seed = seed
        self.band_extension = bool(band_extension)
        if jobs is not None:
            torch.set_num_threads(max(1, jobs))
        ChunkedSeparation(self.model, segment=segment, overlap=self.chunk_overlap)  # validate

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self.model.sources)

    @property
    def sample_rate(self) -> int:
        return int(self.model.sample_rate)

    def _extends(self, sample_rate: int) -> bool:
        """Whether stems of input at ``sample_rate`` get band extension."""
        return self.band_extension and sample_rate > self.sample_rate

    def _extender(self, sample_rate: int) -> BandExtender | None:
        if not self._extends(sample_rate):
            return None
        return BandExtender(len(self.sources), self.model.audio_channels, self.sample_rate,
                            sample_rate)

    def _engine(self, progress: Callable[[int], None] | None = None) -> ChunkedSeparation:
        return ChunkedSeparation(self.model, segment=self.segment, overlap=self.chunk_overlap,
                                 shifts=self.shifts, batch_size=self.batch_size,
                                 device=self.device, seed=self.seed, progress=progress)

    # -- in memory ---------------------------------------------------------------------------
    def separate_tensor(self, wav: torch.Tensor, sample_rate: int,
                        progress: Progress | None = None) -> dict[str, torch.Tensor]:
        """wav: (C, T) or (T,) float samples at ``sample_rate`` (a tensor or a NumPy array) ->
        {source: (C_model, T)} at ``sample_rate``."""
        wav = _check_wav(wav)
        full = convert.convert_channels(wav.float(), self.model.audio_channels)
        mix = convert.resample(full, sample_rate, self.sample_rate)
        total = max(1, mix.shape[-1])
        done = [0]

        def tick(n: int) -> None:
            done[0] += n
            if progress:
                progress(min(1.0, done[0] / total), "separating")

        est = apply(self.model, mix, segment=self.segment, overlap=self.chunk_overlap,
                    shifts=self.shifts, batch_size=self.batch_size, device=self.device,
                    seed=self.seed, block_seconds=BLOCK_SECONDS, progress=tick)
        est = _fit_length(convert.resample(est, self.sample_rate, sample_rate), wav.shape[-1])
        if self._extends(sample_rate):
            band = band_seen(mix, self.sample_rate, sample_rate, wav.shape[-1])
            est = extend_stems(est, full, band, self.sample_rate, sample_rate)
        return dict(zip(self.sources, est))

    def separate_file(self, path: str | os.PathLike,
                      progress: Progress | None = None) -> dict[str, torch.Tensor]:
        """Decode a whole file and separate it: {source: (C, T)} at the file's sample rate."""
        wav, sample_rate = io.read(path)
        return self.separate_tensor(wav, sample_rate, progress=progress)

    # -- streaming, file to files -------------------------------------------------------------
    def separate_to_files(self, path: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                          *, stems: tuple[str, ...] | list[str] | None = None, fmt: str = "wav",
                          progress: Progress | None = None, targets: dict[str, Path] | None = None,
                          options: OutputOptions | None = None) -> dict[str, Path]:
        """Separate ``path`` with bounded memory; write each stem to ``out_dir/<stem>.<fmt>``
        (or to ``targets[stem]``). Returns {stem: path}. Nothing is left behind on error."""
        options = options or OutputOptions(fmt=fmt, stems=tuple(stems) if stems else None)
        plan = StemPlan(self.sources, options)
        if targets is None:
            if out_dir is None:
                raise UnweaveError("separate_to_files needs out_dir or targets")
            targets = {n: Path(out_dir) / f"{n}.{options.fmt}" for n in plan.names}
        meta = io.info(path)
        in_rate = meta.sample_rate
        expected = (meta.duration_seconds or 0.0) * self.sample_rate  # progress estimate only
        done = [0]

        def tick(n: int) -> None:
            done[0] += n
            if progress and expected:
                progress(min(0.99, done[0] / max(1, expected)), "separating")

        engine = self._engine(tick)
        channels = self.model.audio_channels
        native = io.iter_blocks(path, BLOCK_SECONDS, channels=channels)
        stream = _MixtureStream(native, in_rate, self.sample_rate, channels)
        with _StemWriters(targets, plan, in_rate, channels, options, model_rate=self.sample_rate,
                          extender=self._extender(in_rate)) as writers:
            for est, mix in _aligned(engine, stream.blocks()):
                writers.write(est, mix, stream)
            writers.finish(stream)
            if progress:
                progress(0.99, "writing")
            paths = writers.commit()
        if progress:
            progress(1.0, "done")
        return paths


def _aligned(engine: ChunkedSeparation,
             blocks: Iterator[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (estimate (S, C, t), mixture (C, t)) pairs aligned in time."""
    pending = _Fifo()
    for block in blocks:
        pending.put(block)
        est = engine.feed(block)
        if est.shape[-1]:
            yield est, pending.take(est.shape[-1])
    est = engine.finish()
    if est.shape[-1]:
        yield est, pending.take(est.shape[-1])


class _Fifo:
    """(C, t) blocks in, any number of samples out, in order."""

    def __init__(self, channels: int = 1) -> None:
        self.blocks: list[torch.Tensor] = []
        self.channels = channels

    def put(self, block: torch.Tensor) -> None:
        self.blocks.append(block)
        self.channels = block.shape[0]

    def take(self, n: int) -> torch.Tensor:
        """The next ``n`` samples, zero-padded past the end of what was put."""
        out, need = [], n
        while need and self.blocks:
            head = self.blocks[0]
            if head.shape[-1] <= need:
                out.append(self.blocks.pop(0))
                need -= head.shape[-1]
            else:
                out.append(head[:, :need])
                self.blocks[0] = head[:, need:]
                need = 0
        if need:
            out.append(torch.zeros(self.channels, need))
        return torch.cat(out, -1)


class _MixtureStream:
    """The file's mixture at its own rate, block by block: ``blocks()`` yields it at the model's
    rate for the engine, while :meth:`take` hands out the same samples at the file's rate, in
    order, to whoever writes the stems (a FIFO: it holds what the engine has not caught up to)."""

    def __init__(self, native: Iterator[torch.Tensor], rate: int, model_rate: int,
                 channels: int) -> None:
        self.native = native
        self.down = convert.StreamResampler(rate, model_rate, channels)
        self.pending = _Fifo(channels)

    def blocks(self) -> Iterator[torch.Tensor]:
        for block in self.native:
            self.pending.put(block)
            out = self.down.process(block)
            if out.shape[-1]:
                yield out
        tail = self.down.flush()
        if tail.shape[-1]:
            yield tail

    def take(self, n: int) -> torch.Tensor:
        """The next ``n`` samples at the file's rate (zeros past its end)."""
        return self.pending.take(n)


class _StemWriters:
    """Brings the model's stems back to the file's rate (with band extension), makes the
    plan's stems from them and the file's mixture, writes them incrementally as float32 temp
    files beside the targets (tracking peaks), then encodes each to its final format with the
    clip policy and renames it into place."""

    def __init__(self, targets: dict[str, Path], plan: StemPlan, sample_rate: int,
                 channels: int, options: OutputOptions, model_rate: int,
                 extender: BandExtender | None = None) -> None:
        names = plan.names
        self.plan, self.extender = plan, extender
        self.targets = {n: Path(targets[n]) for n in names}
        self.sample_rate, self.channels, self.options = sample_rate, channels, options
        self.model_rate = model_rate
        # one resampler per model source (the plan's stems may combine them), and with band
        # extension one for the model-rate mixture (the band the model saw)
        self.resamplers = [convert.StreamResampler(model_rate, sample_rate, channels)
                           for _ in plan.sources]
        self.mix_resampler = (convert.StreamResampler(model_rate, sample_rate, channels)
                              if extender is not None else None)
        self.temps: dict[str, Path] = {}
        self.writers: dict[str, io.AudioWriter] = {}
        self.peaks = dict.fromkeys(names, 0.0)
        # folders this writer made, deepest first: removed again (when empty) on failure
        self.made_dirs: list[Path] = []

    def __enter__(self) -> Self:
        try:
            for name, target in self.targets.items():
                self._make_dir(target.parent)
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".float.wav",
                                           dir=target.parent)
                os.close(fd)
                self.temps[name] = Path(tmp)
                self.writers[name] = io.open_writer(tmp, self.sample_rate, self.channels,
                                                    fmt="wav", subtype="FLOAT", clip="none")
        except OSError as exc:
            self._cleanup()
            raise AudioWriteError(f"{target.parent}: cannot write output ({exc.strerror or exc})") from exc
        except BaseException:
            self._cleanup()
            raise
        return self

    def write(self, est: torch.Tensor, mix: torch.Tensor, stream: _MixtureStream) -> None:
        """est: (S, C, t) and mix: (C, t) at the model's rate, aligned.

        Taken in pieces of WRITE_PIECE_SECONDS: every stage after the model (resampling, band
        extension, the plan's stems) keeps its own state, so pieces give the same samples as
        the whole block, and their temporaries are those of a few seconds, not of a block."""
        step = max(1, int(WRITE_PIECE_SECONDS * self.model_rate))
        for i in range(0, est.shape[-1], step):
            up = torch.stack([r.process(stem[..., i:i + step])
                              for r, stem in zip(self.resamplers, est)])
            band = self.mix_resampler.process(mix[..., i:i + step]) if self.mix_resampler else None
            self._emit(up, band, stream)

    def finish(self, stream: _MixtureStream) -> None:
        """Flush the resamplers: the last samples of every stem."""
        up = torch.stack([r.flush() for r in self.resamplers])
        self._emit(up, self.mix_resampler.flush() if self.mix_resampler else None, stream)

    def _emit(self, est: torch.Tensor, band: torch.Tensor | None, stream: _MixtureStream) -> None:
        if not est.shape[-1]:
            return
        mix = stream.take(est.shape[-1])
        if self.extender is not None:
            est = self.extender.process(est, mix, band)
        for name, block in self.plan.make(est, mix).items():
            self.peaks[name] = max(self.peaks[name], float(block.abs().max()))
            self.writers[name].write(block)

    def commit(self) -> dict[str, Path]:
        for writer in self.writers.values():
            writer.commit()
        committed: list[Path] = []
        try:
            for name, target in self.targets.items():
                # rescale is per stem (as Demucs does), from the peak of the first pass
                with io.open_writer(target, self.sample_rate, self.channels,
                                    fmt=self.options.fmt, subtype=self.options.subtype,
                                    clip=self.options.clip, peak=self.peaks[name]) as out:
                    for block in io.iter_blocks(self.temps[name], BLOCK_SECONDS):
                        out.write(block)
                    out.commit()
                committed.append(target)
                self.temps.pop(name).unlink(missing_ok=True)
        except BaseException:
            for path in committed:  # a set of stems appears whole or not at all
                path.unlink(missing_ok=True)
            raise
        return dict(self.targets)

    def _make_dir(self, folder: Path) -> None:
        missing = []
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:  # made by someone else meanwhile: theirs to keep
                continue
            self.made_dirs.insert(0, path)

    def _cleanup(self) -> None:
        for writer in self.writers.values():
            writer.abort()
        for tmp in self.temps.values():
            tmp.unlink(missing_ok=True)
        for folder in self.made_dirs:  # a failed file leaves no empty folder behind
            try:
                folder.rmdir()
            except OSError:  # not empty: something else writes there too
                pass
        self.made_dirs.clear()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.temps:
            self._cleanup()
        if isinstance(exc, OSError):
            raise AudioWriteError(f"{next(iter(self.targets.values())).parent}: "
                                  f"writing stems failed ({exc.strerror or exc})") from exc


def _fit_length(wav: torch.Tensor, length: int) -> torch.Tensor:
    if wav.shape[-1] >= length:
        return wav[..., :length]
    return torch.nn.functional.pad(wav, (0, length - wav.shape[-1]))


def _check_device(device: str) -> str:
    if device == "cuda" and not torch.cuda.is_available():
        raise UnweaveError("--device cuda: no CUDA device is available")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UnweaveError("--device mps: no MPS device is available")
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise UnweaveError(f"--device {device}: unknown device (cpu, cuda, mps)")
    return device


def real_time_factor(audio_seconds: float, started: float) -> float:
    """Seconds of audio processed per second of wall time."""
    return audio_seconds / max(1e-9, time.perf_counter() - started)
