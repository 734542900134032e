"""Atomic audio writing: whole-signal :func:`write` and the streaming :class:`AudioWriter`.

Re-exported by :mod:`unweave.audio.io` (import from there). Formats (chosen by ``fmt`` or the
path's suffix): ``wav`` (``PCM_16``, ``PCM_24``, ``FLOAT``), ``flac`` (``PCM_16``, ``PCM_24``),
``mp3`` (LAME VBR, highest quality; 8-48 kHz only) and ``ogg`` (Vorbis); all through soundfile
(libsndfile >= 1.1 encodes MP3). ``subtype`` defaults to ``PCM_16`` and is ignored for the lossy
formats.

Atomicity: samples go to a hidden temporary file in the destination folder
(``.NAME.<random>.part``), renamed over ``path`` with ``os.replace`` only when complete. On any
error (unwritable folder, disk full = ENOSPC, encoder error) the temporary file is removed and
:class:`~unweave.errors.AudioWriteError` is raised with a one-line message starting with the path.
Missing parent folders are created.

Clip policy (see :func:`unweave.audio.convert.apply_clip`): :func:`write` takes ``"rescale"``
(default), ``"clamp"`` or ``"none"``. A streaming writer cannot see the whole signal, so
:class:`AudioWriter` takes ``"clamp"`` (default) or ``"none"``, and ``"rescale"`` only together
with ``peak=``, the peak of the whole signal known by the caller (e.g. from a first pass); each
block is then scaled exactly as ``write(..., clip="rescale")`` would scale the whole signal.
``"rescale"`` without ``peak`` raises ``ValueError`` rather than silently clamping.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from pathlib import Path
from typing import Self

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from ..errors import AudioWriteError
from .convert import CLIP_MODES, RESCALE_PEAK, apply_clip

__all__ = ["MP3_SAMPLE_RATES", "WRITE_FORMATS", "AudioWriter", "open_writer", "write"]

# fmt -> (libsndfile format, allowed subtypes or None for lossy)
WRITE_FORMATS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "wav": ("WAV", ("PCM_16", "PCM_24", "FLOAT")),
    "flac": ("FLAC", ("PCM_16", "PCM_24")),
    "mp3": ("MP3", None),
    "ogg": ("OGG", None),
}
_LOSSY_SUBTYPE = {"mp3": "MPEG_LAYER_III", "ogg": "VORBIS"}
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def _resolve_format(path: Path, fmt: str | None, subtype: str | None) -> tuple[str, str, str]:
    """-> (fmt key, libsndfile format, libsndfile subtype); AudioWriteError when unsupported."""
    key = (fmt or path.suffix.lstrip(".")).lower()
    if key not in WRITE_FORMATS:
        names = ", ".join(WRITE_FORMATS)
        raise AudioWriteError(f"{path}: unsupported output format {key!r} (use {names})")
    sf_format, subtypes = WRITE_FORMATS[key]
    if subtypes is None:
        return key, sf_format, _LOSSY_SUBTYPE[key]
    subtype = (subtype or "PCM_16").upper()
    if subtype not in subtypes:
        raise AudioWriteError(
            f"{path}: {key} cannot store {subtype} samples (use {' or '.join(subtypes)})"
        )
    return key, sf_format, subtype


def _reason(exc: BaseException, folder: Path | None = None) -> str:
    """One-line cause of a write failure (call it before deleting the temporary file)."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "no space left on device"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc).replace("\n", " ").strip()
    if "': " in text:  # libsndfile: "Error opening 'x': System error : ..."
        text = text.split("': ", 1)[1]
    if "No space left" in text:
        return "no space left on device"
    if "System error" in text and folder is not None and _disk_full(folder):
        return "no space left on device"  # libsndfile hides errno; the free space tells
    return text.rstrip(".") or type(exc).__name__


def _disk_full(folder: Path) -> bool:
    try:
        stat = os.statvfs(folder)
    except (OSError, AttributeError):
        return False
    return stat.f_bavail * stat.f_frsize < 64 * 1024


class AudioWriter:
    """Incremental, atomic writer: ``write(block (C, t))`` repeatedly, then :meth:`commit`.

    As a context manager it commits on a clean exit and aborts (deleting the temporary file)
    when the block raises. After :meth:`commit` or :meth:`abort` the writer is closed.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        sample_rate: int,
        channels: int,
        *,
        fmt: str | None = None,
        subtype: str | None = None,
        clip: str = "clamp",
        peak: float | None = None,
    ):
        self.path = Path(path)
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.fmt, sf_format, sf_subtype = _resolve_format(self.path, fmt, subtype)
        if clip not in CLIP_MODES:
            raise ValueError(f"clip must be one of {CLIP_MODES}, got {clip!r}")
        if clip == "rescale" and peak is None:
            raise ValueError("clip='rescale' on a streaming writer needs peak= (the whole "
                             "signal's peak); use 'clamp' or 'none' otherwise")
        self.clip = clip
        self._gain = RESCALE_PEAK / peak if clip == "rescale" and peak > 1.0 else 1.0
        if not 1 <= self.channels:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if self.fmt == "mp3" and self.sample_rate not in MP3_SAMPLE_RATES:
            raise AudioWriteError(
                f"{self.path}: mp3 cannot store {self.sample_rate} Hz "
                f"(supported: {', '.join(map(str, MP3_SAMPLE_RATES))})"
            )
        self.frames_written = 0
        self._file: sf.SoundFile | None = None
        self._tmp = self.path.parent / f".{self.path.name}.{uuid.uuid4().hex[:12]}.part"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise AudioWriteError(
                f"{self.path}: cannot create folder {self.path.parent} (a file is in the way)"
            ) from None
        except OSError as exc:
            raise AudioWriteError(
                f"{self.path}: cannot create folder {self.path.parent} ({_reason(exc)})"
            ) from None
        if self.path.is_dir():
            raise AudioWriteError(f"{self.path}: is a folder")
        extra = {}
        if self.fmt == "mp3":
            extra = {"compression_level": 0.0, "bitrate_mode": "VARIABLE"}
        try:  # create it ourselves first: Python reports the real errno, libsndfile does not
            with open(self._tmp, "xb"):
                pass
        except OSError as exc:
            raise AudioWriteError(f"{self.path}: cannot write ({_reason(exc)})") from None
        try:
            self._file = sf.SoundFile(
                str(self._tmp), "w", self.sample_rate, self.channels,
                subtype=sf_subtype, format=sf_format, **extra,
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes one AudioWriteError
            reason = _reason(exc, self.path.parent)
            self._discard()
            raise AudioWriteError(f"{self.path}: cannot write ({reason})") from None

    @property
    def closed(self) -> bool:
        return self._file is None

    def write(self, block: Tensor) -> None:
        """Append ``block: (C, t)`` (float; any device). Raises AudioWriteError on I/O errors."""
        if self._file is None:
            raise RuntimeError(f"{self.path}: writer is closed")
        if block.dim() != 2 or block.shape[0] != self.channels:
            raise ValueError(f"expected a ({self.channels}, t) block, got {tuple(block.shape)}")
        data = block.detach().to("cpu", torch.float32)
        if not torch.isfinite(data).all():
            self.abort()
            raise AudioWriteError(f"{self.path}: refusing to write NaN or infinite samples")
        if self._gain != 1.0:
            data = data * self._gain
        if self.clip != "none":
            data = apply_clip(data, "clamp")  # after the rescale gain, this is a no-op
        frames = np.ascontiguousarray(data.numpy().T)  # (t, C)
        try:
            self._file.write(frames)
        except Exception as exc:  # noqa: BLE001
            reason = _reason(exc, self.path.parent)
            self.abort()
            raise AudioWriteError(f"{self.path}: write failed ({reason})") from None
        self.frames_written += frames.shape[0]

    def commit(self) -> Path:
        """Finish the file and move it into place atomically; returns the final path."""
        if self._file is None:
            raise RuntimeError(f"{self.path}: writer is closed")
        try:
            self._file.close()
            self._file = None
            os.replace(self._tmp, self.path)
        except Exception as exc:  # noqa: BLE001
            reason = _reason(exc, self.path.parent)
            self._file = None
            self._discard()
            raise AudioWriteError(f"{self.path}: write failed ({reason})") from None
        return self.path

    def abort(self) -> None:
        """Drop everything written so far (the destination is left untouched)."""
        if self._file is not None:
            with contextlib.suppress(Exception):  # closing a failed file may fail again
                self._file.close()
            self._file = None
        self._discard()

    def _discard(self) -> None:
        try:
            self._tmp.unlink(missing_ok=True)
        except OSError:
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif self._file is not None:
            self.commit()

    def __del__(self):  # a writer dropped without commit leaves no temporary file behind
        if getattr(self, "_file", None) is not None:
            self.abort()


def open_writer(
    path: str | os.PathLike,
    sample_rate: int,
    channels: int,
    *,
    fmt: str | None = None,
    subtype: str | None = None,
    clip: str = "clamp",
    peak: float | None = None,
) -> AudioWriter:
    """Open an :class:`AudioWriter` (see the module docstring for formats and clip policy)."""
    return AudioWriter(
        path, sample_rate, channels, fmt=fmt, subtype=subtype, clip=clip, peak=peak
    )


def write(
    path: str | os.PathLike,
    wav: Tensor,
    sample_rate: int,
    *,
    fmt: str | None = None,
    subtype: str | None = None,
    clip: str = "rescale",
) -> Path:
    """Write ``wav: (C, T)`` to ``path`` atomically; returns the path.

    ``clip`` is applied to the whole signal first (``"rescale"``: one gain so the peak is 0.99
    when it exceeds 1). Raises :class:`AudioWriteError` (with nothing left on disk) on failure.
    """
    path = Path(path)
    if wav.dim() != 2:
        raise ValueError(f"expected wav of shape (C, T), got {tuple(wav.shape)}")
    if wav.shape[-1] == 0:
        raise AudioWriteError(f"{path}: nothing to write (0 samples)")
    data = wav.detach().to("cpu", torch.float32)
    if not torch.isfinite(data).all():
        raise AudioWriteError(f"{path}: refusing to write NaN or infinite samples")
    if clip not in CLIP_MODES:
        raise ValueError(f"clip must be one of {CLIP_MODES}, got {clip!r}")
    data = apply_clip(data, clip)
    writer = AudioWriter(path, sample_rate, data.shape[0], fmt=fmt, subtype=subtype, clip="none")
    with writer:
        writer.write(data)
    return path
