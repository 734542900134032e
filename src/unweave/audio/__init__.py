"""unweave.audio: decode, encode and convert audio; the rest of unweave sees float32 (C, T).

``io``: :func:`info`, :func:`read`, :func:`open_reader` / :func:`iter_blocks` (block decoding),
:func:`write`, :func:`open_writer` (atomic, streaming). ``convert``: :func:`resample`,
:func:`convert_channels`, :func:`apply_clip`.
"""

from .convert import apply_clip, convert_channels, resample, resampled_length
from .io import (
    AudioInfo,
    AudioReader,
    AudioWriter,
    info,
    iter_blocks,
    open_reader,
    open_writer,
    read,
    write,
)

__all__ = [
    "AudioInfo",
    "AudioReader",
    "AudioWriter",
    "apply_clip",
    "convert_channels",
    "info",
    "iter_blocks",
    "open_reader",
    "open_writer",
    "read",
    "resample",
    "resampled_length",
    "write",
]
