"""Decoder-level bad inputs: each raises AudioReadError with a one-line message naming the file."""

from __future__ import annotations

import fractions
import struct

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from unweave.audio import io
from unweave.errors import AudioReadError

SR = 44100


def stereo(seconds):
    t = torch.arange(int(seconds * SR)) / SR
    return torch.stack([0.5 * torch.sin(2 * torch.pi * 440 * t)] * 2)


def encode_pyav(path, audio_codec, video=None, seconds=1.0):
    """A small file written by PyAV: ``audio_codec`` (or None) and/or a ``video`` stream."""
    container = av.open(str(path), "w")
    if video:
        vstream = container.add_stream(video, rate=25)
        vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        for i in range(int(seconds * 25)):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode(None))
    if audio_codec:
        astream = container.add_stream(audio_codec, rate=SR, layout="stereo")
        for k, block in enumerate(stereo(seconds).split(1024, dim=1)):
            frame = av.AudioFrame.from_ndarray(block.contiguous().numpy(), format="fltp",
                                               layout="stereo")
            frame.sample_rate, frame.pts = SR, k * 1024
            frame.time_base = fractions.Fraction(1, SR)
            container.mux(astream.encode(frame))
        container.mux(astream.encode(None))
    container.close()
    return path


def _wav(path, frames=SR // 10, channels=1, rate=SR, subtype="PCM_16", fill=0.1):
    sf.write(path, np.full((frames, channels), fill, np.float32), rate, subtype=subtype)
    return path


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def missing(d):
    return d / "missing.wav"


def folder(d):
    (d / "folder.wav").mkdir()
    return d / "folder.wav"


def empty(d):
    (d / "empty.wav").write_bytes(b"")
    return d / "empty.wav"


def header_only(d):
    return _wav(d / "header_only.wav", frames=0)


def truncated_wav(d):
    return _truncate(io.write(d / "cut.wav", stereo(1.0), SR))


def truncated_flac(d):
    return _truncate(io.write(d / "cut.flac", torch.randn(2, SR) * 0.1, SR))


def truncated_mp3(d):
    return _truncate(io.write(d / "cut.mp3", stereo(2.0), SR))


def truncated_m4a(d):
    return _truncate(encode_pyav(d / "cut.m4a", "aac"))


def text_as_wav(d):
    (d / "notes.wav").write_text("this is not audio\n" * 20)
    return d / "notes.wav"


def text_as_m4a(d):
    (d / "notes.m4a").write_text("this is not audio either\n" * 20)
    return d / "notes.m4a"


def video_only(d):
    return encode_pyav(d / "silent_film.mp4", None, video="mpeg4")


def nan_samples(d):
    return _wav(d / "nan.wav", subtype="FLOAT", fill=float("nan"))


def inf_samples(d):
    return _wav(d / "inf.wav", subtype="FLOAT", fill=float("inf"))


def one_sample(d):
    return _wav(d / "one.wav", frames=1)


def low_rate(d):
    return _wav(d / "slow.wav", rate=100, frames=100)


def high_rate(d):
    return _wav(d / "fast.wav", rate=1_000_000, frames=2000)


def many_channels(d):
    return _wav(d / "wide.wav", channels=64, frames=1000)


CASES = {
    missing: "file not found",
    folder: "is a folder",
    empty: "file is empty",
    header_only: "no audio samples",
    truncated_wav: "truncated",
    truncated_flac: "truncated",
    truncated_mp3: "truncated",
    truncated_m4a: "not a readable",
    text_as_wav: "not a readable audio",
    text_as_m4a: "not a readable audio",
    video_only: "no audio stream",
    nan_samples: "contains NaN or infinite samples",
    inf_samples: "contains NaN or infinite samples",
    one_sample: "too short",
    low_rate: "sample rate 100 Hz is out of range",
    high_rate: "out of range",
    many_channels: "64 channels: at most 32 supported",
}
# Problems visible in the header are reported by info() too; the others need decoding.
DECODE_ONLY = {truncated_flac, truncated_mp3, nan_samples, inf_samples}


@pytest.mark.parametrize("make", list(CASES), ids=lambda f: f.__name__)
def test_read_rejects(tmp_path, make):
    path = make(tmp_path)
    with pytest.raises(AudioReadError) as err:
        io.read(path)
    message = str(err.value)
    assert message.startswith(str(path)) and path.name in message
    assert CASES[make] in message and "\n" not in message


@pytest.mark.parametrize("make", list(CASES), ids=lambda f: f.__name__)
def test_iter_blocks_rejects(tmp_path, make):
    path = make(tmp_path)
    with pytest.raises(AudioReadError, match=CASES[make]):
        for _ in io.iter_blocks(path, 0.05):
            pass


@pytest.mark.parametrize(
    "make", [m for m in CASES if m not in DECODE_ONLY], ids=lambda f: f.__name__
)
def test_info_rejects(tmp_path, make):
    path = make(tmp_path)
    with pytest.raises(AudioReadError, match=CASES[make]):
        io.info(path)


def test_nan_late_in_file_found_by_blocks(tmp_path):
    x = np.zeros((3 * SR, 2), np.float32)  # longer than one decoder read
    x[-10, 1] = np.nan
    sf.write(tmp_path / "late.wav", x, SR, subtype="FLOAT")
    blocks = io.iter_blocks(tmp_path / "late.wav", 0.1)
    assert next(blocks).shape == (2, SR // 10)  # the first blocks decode fine
    with pytest.raises(AudioReadError, match="late.wav: contains NaN"):
        list(blocks)


def test_minimum_length_boundary(tmp_path):
    ok = _wav(tmp_path / "ok.wav", frames=45)  # 45 samples at 44.1 kHz >= 1 ms
    assert io.read(ok)[0].shape == (1, 45)
    with pytest.raises(AudioReadError, match="too short"):
        io.read(_wav(tmp_path / "short.wav", frames=44))


def test_wav_header_announcing_too_much_is_truncated(tmp_path):
    path = _wav(tmp_path / "liar.wav", frames=1000)
    data = bytearray(path.read_bytes())
    pos = data.index(b"data")
    struct.pack_into("<I", data, pos + 4, 10_000 * 2)  # claim 10000 frames
    path.write_bytes(bytes(data))
    with pytest.raises(AudioReadError, match="announces 10000 frames, only 1000 present"):
        io.read(path)


def test_bad_arguments_are_value_errors(tmp_path):
    path = io.write(tmp_path / "ok.wav", stereo(0.1), SR)
    with pytest.raises(ValueError):
        io.read(path, sample_rate=10)
    with pytest.raises(ValueError):
        io.read(path, channels=0)
    with pytest.raises(AudioReadError, match="past the end"):
        io.read(path, start_seconds=5.0)
