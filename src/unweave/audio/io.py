"""Audio file I/O: the only place that touches decoders and encoders.

The rest of unweave sees float32 tensors ``(C, T)``. There is no global backend state: each call
picks a decoder for its file.

Decoding
    ``.wav .wave .flac .ogg .oga .mp3 .aif .aiff`` go to soundfile (libsndfile); everything else
    (``.m4a .aac .opus .mp4 .mkv .webm .mov ...``, any video) goes to PyAV (FFmpeg), audio stream
    only. When the first decoder cannot open a file, the other one is tried before giving up.

Validation (every failure is an :class:`~unweave.errors.AudioReadError` whose one-line message
starts with the path): missing file, folder, empty file, no audio stream, not a recognised
format, 0 frames, shorter than :data:`MIN_DURATION_SECONDS`, sample rate outside
[:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`], more than :data:`MAX_CHANNELS` channels,
NaN/inf samples, truncated data. Truncation is detected where the file declares its length:
WAV (data chunk size vs file size), FLAC (STREAMINFO total vs decoded, or a decoder error), and,
with a tolerance of ``max(0.5 s, 5 %)`` because their declared lengths may be estimates, MP3 and
PyAV streams that declare a duration (mp4/m4a/ogg). Other files are read as far as they decode.

Lengths
    Reading at another ``sample_rate`` gives exactly
    ``resampled_length(n, file_rate, sample_rate) = floor(n * sample_rate / file_rate + 1/2)``
    samples for ``n`` decoded frames, both in :func:`read` and in block reading
    (:func:`iter_blocks` / :class:`AudioReader`), whose blocks concatenate to the same signal
    (soxr 'HQ' in both; the block path uses :class:`convert.StreamResampler`, built on
    ``soxr.ResampleStream``, so block boundaries are seamless). Channel conversion is memoryless,
    so it is applied per block before resampling.

Writing lives in :mod:`unweave.audio.writer` and is re-exported here (:func:`write`,
:func:`open_writer`, :class:`AudioWriter`).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import av
import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from ..errors import AudioReadError
from . import convert
from .writer import AudioWriter, open_writer, write

__all__ = [
    "MAX_CHANNELS",
    "MAX_SAMPLE_RATE",
    "MIN_DURATION_SECONDS",
    "MIN_SAMPLE_RATE",
    "AudioInfo",
    "AudioReader",
    "AudioWriter",
    "info",
    "iter_blocks",
    "open_reader",
    "open_writer",
    "read",
    "write",
]

MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 32
#: Files shorter than this are rejected as "too short" (a 1-sample file is a broken export).
MIN_DURATION_SECONDS = 0.001

SOUNDFILE_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff"})
# soundfile formats whose frame count is exact (anything else is treated as an estimate).
_EXACT_FORMATS = frozenset({"WAV", "WAVEX", "FLAC", "AIFF", "W64", "RF64", "CAF", "AU"})
_SOURCE_CHUNK = 65536  # frames per soundfile read


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, from its header (nothing is decoded).

    ``frames`` is ``None`` when the container does not state an exact count (most PyAV formats);
    ``duration_seconds`` is then the container's estimate, or ``None``.
    """

    sample_rate: int
    channels: int
    frames: int | None
    duration_seconds: float | None
    format: str  # container: "WAV", "FLAC", "MP3", ... (soundfile) or FFmpeg's demuxer name
    codec: str  # "PCM_16", "VORBIS", ... (soundfile) or FFmpeg's codec name ("aac", "opus")


# ----------------------------------------------------------------------------------------------
# Decoder back ends: each yields float32 numpy chunks (t, C) in file order.
# ----------------------------------------------------------------------------------------------
class _SoundfileSource:
    def __init__(self, path: Path, handle: sf.SoundFile):
        self.path, self._f = path, handle
        self.sample_rate, self.channels = int(handle.samplerate), int(handle.channels)
        self.format, self.codec = handle.format, handle.subtype
        self.exact = handle.format in _EXACT_FORMATS
        self.frames: int | None = int(handle.frames)
        self.declared = self.frames
        self.duration_seconds = self.frames / self.sample_rate if self.sample_rate else None

    def chunks(self, start: int) -> Iterator[np.ndarray]:
        if start >= self.frames > 0:
            return  # past the end: the caller reports it
        try:
            if start:
                self._f.seek(start)
            while True:
                data = self._f.read(_SOURCE_CHUNK, dtype="float32", always_2d=True)
                if len(data) == 0:
                    return
                yield data
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioReadError(
                f"{self.path}: decoding failed, the file is truncated or corrupt ({_clean(exc)})"
            ) from None

    def close(self) -> None:
        self._f.close()


class _PyAVSource:
    exact = False
    frames = None

    def __init__(self, path: Path, container, stream):
        self.path, self._c, self._s = path, container, stream
        ctx = stream.codec_context
        self.sample_rate = int(ctx.sample_rate or 0)
        self.channels = int(ctx.layout.nb_channels) if ctx.layout else 0
        self.format, self.codec = container.format.name, ctx.name
        self.declared: int | None = None
        if stream.duration is not None and stream.time_base is not None and self.sample_rate:
            self.declared = round(float(stream.duration * stream.time_base) * self.sample_rate)
        if self.declared is not None:
            self.duration_seconds = self.declared / self.sample_rate
        elif container.duration:
            self.duration_seconds = container.duration / av.time_base
        else:
            self.duration_seconds = None

    def chunks(self, start: int) -> Iterator[np.ndarray]:
        skip = start  # sample-exact: decode from the start and drop what precedes ``start``
        try:
            for packet in self._c.demux(self._s):
                for frame in packet.decode():
                    if frame.sample_rate != self.sample_rate:
                        raise AudioReadError(
                            f"{self.path}: sample rate changes mid-stream "
                            f"({self.sample_rate} -> {frame.sample_rate} Hz)"
                        )
                    data = self._frame_to_array(frame)
                    if skip:
                        drop = min(skip, len(data))
                        data, skip = data[drop:], skip - drop
                    if len(data):
                        yield data
        except av.FFmpegError as exc:
            raise AudioReadError(
                f"{self.path}: decoding failed, the file is truncated or corrupt ({_clean(exc)})"
            ) from None

    def _frame_to_array(self, frame) -> np.ndarray:
        """One decoded frame -> float32 (t, C) in [-1, 1]."""
        arr = frame.to_ndarray()
        fmt = frame.format
        if fmt.is_planar:  # (C, t)
            arr = arr.T
        else:  # (1, t * C), interleaved
            arr = arr.reshape(frame.samples, frame.layout.nb_channels)
        arr = _pcm_to_float(arr, fmt.name.rstrip("p"))
        if arr is None:
            raise AudioReadError(f"{self.path}: unsupported decoded sample format {fmt.name!r}")
        if arr.shape[1] != self.channels:
            try:
                wav = convert.convert_channels(torch.from_numpy(arr.T.copy()), self.channels)
            except ValueError:
                raise AudioReadError(
                    f"{self.path}: channel count changes mid-stream "
                    f"({self.channels} -> {arr.shape[1]})"
                ) from None
            arr = wav.numpy().T
        return np.ascontiguousarray(arr, dtype=np.float32)

    def close(self) -> None:
        self._c.close()


def _pcm_to_float(arr: np.ndarray, fmt: str) -> np.ndarray | None:
    """Packed FFmpeg samples -> float32 in [-1, 1] (same scaling as libsndfile); None if unknown."""
    if fmt in ("flt", "dbl"):
        return arr.astype(np.float32, copy=False)
    if fmt == "u8":
        return (arr.astype(np.float32) - 128.0) / 128.0
    scale = {"s16": 2.0**15, "s32": 2.0**31, "s64": 2.0**63}.get(fmt)
    if scale is None:
        return None
    return (arr.astype(np.float64) / scale).astype(np.float32)


def _clean(exc: BaseException) -> str:
    """A decoder's message on one line, without the repeated path."""
    text = str(exc).replace("\n", " ").strip()
    if text.startswith("Error opening") and "': " in text:
        text = text.split("': ", 1)[1]
    if "Invalid data found when processing input" in text:
        text = "invalid data"
    if text.startswith("[Errno") and "] " in text:
        text = text.split("] ", 1)[1].split(":", 1)[0]
    return text.rstrip(".") or type(exc).__name__


# ----------------------------------------------------------------------------------------------
# Opening and validating
# ----------------------------------------------------------------------------------------------
def _check_path(path: Path) -> None:
    if not path.exists():
        raise AudioReadError(f"{path}: file not found")
    if path.is_dir():
        raise AudioReadError(f"{path}: is a folder, not an audio file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioReadError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if size == 0:
        raise AudioReadError(f"{path}: file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioReadError(f"{path}: permission denied")


def _open_soundfile(path: Path) -> _SoundfileSource:
    handle = sf.SoundFile(str(path))
    return _SoundfileSource(path, handle)


def _open_pyav(path: Path) -> _PyAVSource:
    container = av.open(str(path), metadata_errors="ignore")
    try:
        if not container.streams.audio:
            kind = " (video only)" if container.streams.video else ""
            raise AudioReadError(f"{path}: no audio stream{kind}")
        return _PyAVSource(path, container, container.streams.audio[0])
    except BaseException:
        container.close()
        raise


def _open_source(path: str | os.PathLike) -> _SoundfileSource | _PyAVSource:
    """Open ``path`` with the right decoder (falling back to the other) and check its header."""
    path = Path(path)
    _check_path(path)
    first, second = (_open_soundfile, _open_pyav), (_open_pyav, _open_soundfile)
    order = first if path.suffix.lower() in SOUNDFILE_SUFFIXES else second
    errors: list[str] = []
    src = None
    for opener in order:
        try:
            src = opener(path)
        except AudioReadError:
            raise
        except (sf.LibsndfileError, RuntimeError, av.FFmpegError, OSError, ValueError) as exc:
            errors.append(_clean(exc))
            continue
        if src.frames == 0 and not src.exact and opener is _open_soundfile:
            src.close()  # e.g. an Ogg whose last page is missing: let FFmpeg try
            errors.append("no frames")
            src = None
            continue
        break
    if src is None:
        if "no frames" in errors:
            raise AudioReadError(f"{path}: no audio decodes, the file is truncated or corrupt")
        reason = errors[0] if errors else "unknown error"
        raise AudioReadError(f"{path}: not a readable audio or video file ({reason})")
    try:
        _check_header(path, src)
    except BaseException:
        src.close()
        raise
    return src


def _check_header(path: Path, src) -> None:
    rate, channels = src.sample_rate, src.channels
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioReadError(
            f"{path}: sample rate {rate} Hz is out of range "
            f"({MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)"
        )
    if channels < 1:
        raise AudioReadError(f"{path}: audio stream has no channels")
    if channels > MAX_CHANNELS:
        raise AudioReadError(f"{path}: {channels} channels: at most {MAX_CHANNELS} supported")
    if src.format in ("WAV", "WAVEX"):
        _check_wav_data_chunk(path)
    if src.declared == 0 and (src.exact or isinstance(src, _PyAVSource)):
        raise AudioReadError(f"{path}: contains no audio samples (0 frames)")
    if src.exact and src.frames is not None:
        _check_min_length(path, src.frames, rate)


def _check_min_length(path: Path, frames: int, rate: int) -> None:
    if frames == 0:
        raise AudioReadError(f"{path}: contains no audio samples (0 frames)")
    if frames < MIN_DURATION_SECONDS * rate:
        unit = "sample" if frames == 1 else "samples"
        raise AudioReadError(
            f"{path}: too short ({frames} {unit} at {rate} Hz; "
            f"at least {MIN_DURATION_SECONDS * 1000:g} ms is needed)"
        )


def _check_wav_data_chunk(path: Path) -> None:
    """Raise if a RIFF/WAVE data chunk announces more bytes than the file holds."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        block_align, pos = 0, 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"fmt ":
                block_align = struct.unpack("<12xH", f.read(14))[0] if chunk_size >= 14 else 0
            elif chunk_id == b"data":
                available = size - pos - 8
                if chunk_size in (0, 0xFFFFFFFF) or chunk_size <= available or not block_align:
                    return
                if chunk_size - available < block_align:
                    return
                raise AudioReadError(
                    f"{path}: truncated file (header announces {chunk_size // block_align} "
                    f"frames, only {available // block_align} present)"
                )
            pos += 8 + chunk_size + (chunk_size & 1)


def _check_complete(path: Path, src, decoded: int) -> None:
    """After decoding to the end: length and truncation checks."""
    _check_min_length(path, decoded, src.sample_rate)
    declared = src.declared
    if declared is None or decoded >= declared:
        return
    missing = declared - decoded
    tolerance = 0 if src.exact else max(0.5 * src.sample_rate, 0.05 * declared)
    if missing > tolerance:
        raise AudioReadError(
            f"{path}: truncated file (header announces {declared} frames, "
            f"only {decoded} decode)"
        )


def _checked(path: Path, src, start: int, count: int | None) -> Iterator[np.ndarray]:
    """Source chunks ``[start, start + count)`` with NaN checks; full reads get end checks."""
    taken = 0
    for data in src.chunks(start):
        if count is not None and taken + len(data) >= count:
            data = data[: count - taken]
        if not np.isfinite(data).all():
            raise AudioReadError(f"{path}: contains NaN or infinite samples")
        taken += len(data)
        if len(data):
            yield data
        if count is not None and taken >= count:
            return
    if start == 0:
        _check_complete(path, src, taken)
    elif taken == 0:
        raise AudioReadError(f"{path}: start {start / src.sample_rate:g} s is past the end")


def _to_info(src) -> AudioInfo:
    return AudioInfo(
        sample_rate=src.sample_rate,
        channels=src.channels,
        frames=src.frames if src.exact else None,
        duration_seconds=src.duration_seconds,
        format=src.format,
        codec=src.codec,
    )


def _check_target(sample_rate: int | None, channels: int | None) -> None:
    if sample_rate is not None and not MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be in {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
    if channels is not None and not 1 <= int(channels) <= MAX_CHANNELS:
        raise ValueError(f"channels must be in 1-{MAX_CHANNELS}")


# ----------------------------------------------------------------------------------------------
# Public reading API
# ----------------------------------------------------------------------------------------------
def info(path: str | os.PathLike) -> AudioInfo:
    """Header information of ``path`` (validated like :func:`read`, without decoding)."""
    src = _open_source(path)
    try:
        return _to_info(src)
    finally:
        src.close()


def read(
    path: str | os.PathLike,
    *,
    sample_rate: int | None = None,
    channels: int | None = None,
    start_seconds: float = 0.0,
    duration_seconds: float | None = None,
) -> tuple[Tensor, int]:
    """Decode ``path`` -> ``(wav (C, T) float32, sample_rate)``.

    ``sample_rate``/``channels`` convert on the way (:func:`convert.resample`,
    :func:`convert.convert_channels`); ``None`` keeps the file's. ``start_seconds`` and
    ``duration_seconds`` select ``round(x * file_rate)`` frames, sample-exactly; a duration past
    the end is cut at the end. Only reads from the start get the end-of-file length checks.
    """
    _check_target(sample_rate, channels)
    src = _open_source(path)
    try:
        rate = src.sample_rate
        start = max(0, round(start_seconds * rate))
        count = None if duration_seconds is None else max(0, round(duration_seconds * rate))
        if count == 0:
            raise ValueError("duration_seconds selects no samples")
        parts = list(_checked(src.path, src, start, count))
    finally:
        src.close()
    frames = np.concatenate(parts, axis=0) if parts else np.zeros((0, src.channels), np.float32)
    wav = torch.from_numpy(np.ascontiguousarray(frames.T))  # (C, T)
    if channels is not None:
        wav = convert.convert_channels(wav, int(channels))
    if sample_rate is not None and int(sample_rate) != rate:
        wav = convert.resample(wav, rate, int(sample_rate))
        rate = int(sample_rate)
    return wav.contiguous(), rate


class AudioReader:
    """Sequential block reader that never holds the whole file.

    ``sample_rate``/``channels`` are the output's; ``frames`` is the exact output length when the
    file states its length exactly (else ``None``); ``info`` describes the file. Iterate once with
    :meth:`blocks`. Use as a context manager (or call :meth:`close`).
    """

    def __init__(
        self, path: str | os.PathLike, *, sample_rate: int | None = None,
        channels: int | None = None,
    ):
        _check_target(sample_rate, channels)
        self._src = _open_source(path)
        self.path = self._src.path
        self.info = _to_info(self._src)
        self.sample_rate = int(sample_rate) if sample_rate else self.info.sample_rate
        self.channels = int(channels) if channels else self.info.channels
        self.frames = None
        if self.info.frames is not None:
            self.frames = convert.resampled_length(
                self.info.frames, self.info.sample_rate, self.sample_rate
            )
        self._used = False

    def blocks(self, block_length: int) -> Iterator[Tensor]:
        """Yield ``(C, block_length)`` float32 tensors; only the last may be shorter (>= 1)."""
        if block_length < 1:
            raise ValueError("block_length must be >= 1")
        if self._used:
            raise RuntimeError("AudioReader.blocks() can only be iterated once")
        self._used = True
        src = self._src
        resampler = convert.StreamResampler(self.info.sample_rate, self.sample_rate, self.channels)
        pending: list[Tensor] = []
        held = 0
        for data in _checked(self.path, src, 0, None):
            wav = torch.from_numpy(data.T)  # (C_file, t)
            if self.channels != src.channels:
                wav = convert.convert_channels(wav, self.channels)
            wav = resampler.process(wav)
            pending.append(wav)
            held += wav.shape[-1]
            while held >= block_length:
                block, pending = _take(pending, block_length)
                held -= block_length
                yield block
        tail = resampler.flush()
        pending.append(tail)
        held += tail.shape[-1]
        while held > 0:
            n = min(block_length, held)
            block, pending = _take(pending, n)
            held -= n
            yield block

    def close(self) -> None:
        self._src.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _take(pending: list[Tensor], n: int) -> tuple[Tensor, list[Tensor]]:
    """First ``n`` samples of the queued ``(C, t)`` pieces (contiguous float32), and the rest."""
    buf = torch.cat(pending, dim=-1) if len(pending) > 1 else pending[0]
    return buf[:, :n].contiguous(), [buf[:, n:]]


def open_reader(
    path: str | os.PathLike, *, sample_rate: int | None = None, channels: int | None = None
) -> AudioReader:
    """Open ``path`` for block reading (see :class:`AudioReader`); header errors raise here."""
    return AudioReader(path, sample_rate=sample_rate, channels=channels)


def iter_blocks(
    path: str | os.PathLike,
    block_seconds: float,
    *,
    sample_rate: int | None = None,
    channels: int | None = None,
) -> Iterator[Tensor]:
    """Decode ``path`` block by block: yields ``(C, t)`` float32 tensors.

    Every block holds ``round(block_seconds * out_rate)`` samples except the last one; their
    concatenation equals :func:`read` with the same ``sample_rate``/``channels`` (to float
    rounding when resampling) and has exactly ``resampled_length(frames, file_rate, out_rate)``
    samples. Header problems raise :class:`AudioReadError` at the call; problems found while
    decoding (NaN, truncation, ...) raise it from the iterator.
    """
    reader = AudioReader(path, sample_rate=sample_rate, channels=channels)  # header errors: now
    block_length = max(1, round(block_seconds * reader.sample_rate))
    return _closing_blocks(reader, block_length)


def _closing_blocks(reader: AudioReader, block_length: int) -> Iterator[Tensor]:
    try:
        yield from reader.blocks(block_length)
    finally:
        reader.close()
