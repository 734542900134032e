"""Decode in-memory encoded audio (MP3, Vorbis, FLAC, G.722, WAV, ...) with PyAV.

Corpus builders read members of archives and bundles without writing them to disk first; this
module is the single place where such bytes become float32 arrays.
"""

from __future__ import annotations

import io

import numpy as np

from ...errors import AudioReadError

_INT_SCALE = {"s16": 32768.0, "s16p": 32768.0, "s32": 2147483648.0, "s32p": 2147483648.0}


def _frame_to_array(frame) -> np.ndarray:
    """One decoded frame -> (C, n) float32."""
    arr = frame.to_ndarray()
    fmt = frame.format.name
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        arr = arr.reshape(-1, channels).T  # packed (1, n*C) -> (C, n)
    if fmt in _INT_SCALE:
        return arr.astype(np.float32) / _INT_SCALE[fmt]
    if fmt in ("u8", "u8p"):
        return (arr.astype(np.float32) - 128.0) / 128.0
    return arr.astype(np.float32)


def decode_bytes(data: bytes, *, format: str | None = None,
                 name: str = "<bytes>") -> tuple[np.ndarray, int]:
    """Decode an encoded audio stream held in memory.

    Args:
        data: the encoded file or raw stream (e.g. an MP3 stream, an Ogg file, raw G.722).
        format: demuxer name for headerless streams (``"g722"``, ``"mp3"``); None to probe.
        name: shown in error messages.

    Returns:
        ``(audio, sample_rate)`` with audio ``(C, T)`` float32 in [-1, 1].
    """
    import av

    if not data:
        raise AudioReadError(f"{name}: stream is empty")
    try:
        with av.open(io.BytesIO(data), format=format) as container:
            if not container.streams.audio:
                raise AudioReadError(f"{name}: no audio stream")
            stream = container.streams.audio[0]
            chunks = [_frame_to_array(fr) for fr in container.decode(stream)]
            sample_rate = int(stream.codec_context.sample_rate or stream.rate)
    except AudioReadError:
        raise
    except Exception as exc:  # PyAV raises many error types (InvalidDataError, ValueError...)
        raise AudioReadError(f"{name}: cannot decode ({exc})") from exc
    if not chunks:
        raise AudioReadError(f"{name}: no audio frames decoded")
    channels = max(c.shape[0] for c in chunks)
    chunks = [np.repeat(c, channels, axis=0) if c.shape[0] != channels else c for c in chunks]
    return np.concatenate(chunks, axis=1), sample_rate


def decode_g722(data: bytes, *, name: str = "<g722>") -> tuple[np.ndarray, int]:
    """Raw G.722 bitstream (Asterisk ``.g722`` prompts, 64 kbit/s) -> ((1, T) float32, 16000)."""
    return decode_bytes(data, format="g722", name=name)


def pcm_u8_to_float(data: bytes) -> np.ndarray:
    """8-bit unsigned PCM bytes -> (1, T) float32 in [-1, 1)."""
    return ((np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0)[None]
