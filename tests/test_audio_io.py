"""unweave.audio: round trips, decoders, conversions, block reading and atomic writing."""

from __future__ import annotations

import errno
import fractions
import math
import os

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from unweave.audio import convert, io
from unweave.errors import AudioWriteError

SR = 44100


def sine(freq: float, seconds: float = 1.0, sample_rate: int = SR, amp: float = 0.5):
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    return (amp * torch.sin(2 * math.pi * freq * t)).float()


def stereo(seconds: float = 1.0, sample_rate: int = SR):
    """(2, T): 440 Hz left, 660 Hz right."""
    return torch.stack([sine(440, seconds, sample_rate), sine(660, seconds, sample_rate, 0.3)])


def peak_hz(x: torch.Tensor, sample_rate: int) -> float:
    spec = torch.fft.rfft(x.double() * torch.hann_window(x.shape[-1], dtype=torch.float64))
    return float(spec.abs().argmax()) * sample_rate / x.shape[-1]


def corr(a: torch.Tensor, b: torch.Tensor) -> float:
    n = min(a.shape[-1], b.shape[-1])
    a, b = a[..., :n].flatten().double(), b[..., :n].flatten().double()
    return float((a @ b) / (a.norm() * b.norm()))


def encode_pyav(path, codec: str, *, sample_rate=SR, channels=2, seconds=1.0, video=None):
    """Write a sine with PyAV: ``codec`` audio (or None), plus a ``video`` codec stream if set."""
    container = av.open(str(path), "w")
    vstream = None
    if video:
        vstream = container.add_stream(video, rate=25)
        vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
    if codec:
        astream = container.add_stream(
            codec, rate=sample_rate, layout="stereo" if channels == 2 else "mono"
        )
        wav = torch.stack([sine(440, seconds, sample_rate)] * channels).numpy()
        for k in range(0, wav.shape[1], 960):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(wav[:, k : k + 960]), format="fltp", layout=astream.layout.name
            )
            frame.sample_rate, frame.pts = sample_rate, k
            frame.time_base = fractions.Fraction(1, sample_rate)
            for packet in astream.encode(frame):
                container.mux(packet)
        for packet in astream.encode(None):
            container.mux(packet)
    if vstream is not None:
        for i in range(int(seconds * 25)):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode(None):
            container.mux(packet)
    container.close()
    return path


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize(
    "name, subtype, tol",
    [
        ("a.wav", "PCM_16", 1.0 / 2**15),
        ("a.wav", "PCM_24", 1.0 / 2**23),
        ("a.wav", "FLOAT", 0.0),
        ("a.flac", "PCM_16", 1.0 / 2**15),
        ("a.flac", "PCM_24", 1.0 / 2**23),
    ],
)
def test_lossless_round_trip(tmp_path, name, subtype, tol):
    x = stereo(0.5)
    path = io.write(tmp_path / name, x, SR, subtype=subtype)
    y, rate = io.read(path)
    assert rate == SR and y.dtype == torch.float32 and y.shape == x.shape
    assert float((y - x).abs().max()) <= tol
    meta = io.info(path)
    assert (meta.sample_rate, meta.channels, meta.frames) == (SR, 2, x.shape[1])
    assert meta.codec == subtype and meta.duration_seconds == pytest.approx(0.5)
    assert leftovers(tmp_path) == []


def test_mp3_round_trip(tmp_path):
    x = stereo(1.0)
    path = io.write(tmp_path / "a.mp3", x, SR)
    y, rate = io.read(path)
    assert rate == SR and y.shape[0] == 2
    assert abs(y.shape[1] - x.shape[1]) <= 1152
    assert corr(y, x) > 0.99
    assert peak_hz(y[0], SR) == pytest.approx(440, abs=3)


def test_ogg_vorbis_read(tmp_path):
    x = stereo(1.0)
    sf.write(tmp_path / "a.ogg", x.numpy().T, SR, format="OGG", subtype="VORBIS")
    y, rate = io.read(tmp_path / "a.ogg")
    assert rate == SR and y.shape == x.shape and corr(y, x) > 0.99


@pytest.mark.parametrize(
    "name, codec, rate, video",
    [
        ("a.m4a", "aac", 44100, None),
        ("a.webm", "libopus", 48000, None),
        ("a.opus", "libopus", 48000, None),
        ("v.mp4", "aac", 44100, "mpeg4"),
        ("v.mkv", "aac", 44100, "mpeg4"),
    ],
)
def test_pyav_formats_read(tmp_path, name, codec, rate, video):
    path = encode_pyav(tmp_path / name, codec, sample_rate=rate, video=video)
    y, got_rate = io.read(path)
    assert got_rate == rate and y.shape[0] == 2 and y.dtype == torch.float32
    assert abs(y.shape[1] - rate) <= 2048  # 1 s, give or take codec padding
    assert peak_hz(y[0], rate) == pytest.approx(440, abs=3)
    meta = io.info(path)
    assert meta.sample_rate == rate and meta.channels == 2 and meta.frames is None
    assert meta.duration_seconds == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("name", ["a.wav", "a.m4a"])
def test_start_and_duration_select_exact_samples(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".wav"):
        io.write(path, stereo(1.0), SR, subtype="FLOAT")
    else:
        encode_pyav(path, "aac")
    full, _ = io.read(path)
    part, _ = io.read(path, start_seconds=0.25, duration_seconds=0.5)
    start = round(0.25 * SR)
    assert torch.equal(part, full[:, start : start + round(0.5 * SR)])
    tail, _ = io.read(path, start_seconds=0.9, duration_seconds=5.0)  # cut at the end
    assert torch.equal(tail, full[:, round(0.9 * SR) :])


# --------------------------------------------------------------------------- conversions
def test_read_channel_conversion(tmp_path):
    x = stereo(0.2)
    io.write(tmp_path / "s.wav", x, SR, subtype="FLOAT")
    mono, _ = io.read(tmp_path / "s.wav", channels=1)
    assert torch.allclose(mono, x.mean(0, keepdim=True), atol=1e-7)
    io.write(tmp_path / "m.wav", x[:1], SR, subtype="FLOAT")
    both, _ = io.read(tmp_path / "m.wav", channels=2)
    assert both.shape == (2, x.shape[1]) and torch.equal(both[0], both[1])


def test_convert_channels_rules():
    x = torch.randn(6, 100)
    down = convert.convert_channels(x, 2)  # 5.1 -> stereo, ITU, LFE dropped
    c = 1 / math.sqrt(2)
    left = (x[0] + c * x[2] + c * x[4]) / (1 + 2 * c)
    assert torch.allclose(down[0], left, atol=1e-6)
    same = torch.ones(6, 10)
    assert torch.allclose(convert.convert_channels(same, 2), torch.ones(2, 10))
    assert torch.equal(convert.convert_channels(x[:3], 2), x[:2])
    assert convert.convert_channels(x, 6) is x
    assert convert.convert_channels(torch.randn(4, 2, 7), 1).shape == (4, 1, 7)  # (S, C, T)
    with pytest.raises(ValueError):
        convert.convert_channels(x[:2], 4)


@pytest.mark.parametrize("from_rate, to_rate", [(44100, 16000), (16000, 44100), (48000, 44100)])
@pytest.mark.parametrize("length", [1, 2, 999, 44101])
def test_resample_length(from_rate, to_rate, length):
    y = convert.resample(torch.randn(2, length), from_rate, to_rate)
    assert y.shape == (2, convert.resampled_length(length, from_rate, to_rate))
    assert y.shape[1] == math.floor(length * to_rate / from_rate + 0.5)


def test_resampled_length_rounds_half_up():
    assert convert.resampled_length(1, 48000, 24000) == 1
    assert convert.resampled_length(3, 48000, 24000) == 2
    assert convert.resampled_length(0, 48000, 24000) == 0


def test_resample_keeps_frequency_and_level():
    x = sine(1000, 1.0, 44100)[None]
    y = convert.resample(x, 44100, 16000)
    assert peak_hz(y[0], 16000) == pytest.approx(1000, abs=2)
    assert float(y[0, 2000:-2000].abs().max()) == pytest.approx(0.5, abs=0.01)
    assert convert.resample(x, 44100, 44100) is x


def test_apply_clip():
    x = torch.tensor([[0.5, -2.0, 1.5]])
    assert float(convert.apply_clip(x, "rescale").abs().max()) == pytest.approx(0.99)
    quiet = torch.tensor([[0.5, -1.0]])
    assert torch.equal(convert.apply_clip(quiet, "rescale"), quiet)
    assert torch.equal(convert.apply_clip(x, "clamp"), torch.tensor([[0.5, -1.0, 1.0]]))
    assert convert.apply_clip(x, "none") is x
    with pytest.raises(ValueError):
        convert.apply_clip(x, "loud")


@pytest.mark.parametrize("clip, expected", [("rescale", 0.99), ("clamp", 1.0), ("none", 1.0)])
def test_write_clip_policy_pcm(tmp_path, clip, expected):
    x = torch.tensor([[0.1, 1.5, -0.3, -1.2]]).repeat(1, 100)
    io.write(tmp_path / "c.wav", x, SR, clip=clip)
    y, _ = io.read(tmp_path / "c.wav")
    assert float(y.max()) == pytest.approx(expected, abs=1e-3)


def test_write_float_without_clip_keeps_overs(tmp_path):
    x = torch.tensor([[0.1, 1.5, -0.3, -1.2]]).repeat(1, 100)
    io.write(tmp_path / "f.wav", x, SR, subtype="FLOAT", clip="none")
    assert torch.equal(io.read(tmp_path / "f.wav")[0], x)


# --------------------------------------------------------------------------- block reading
@pytest.mark.parametrize(
    "name, rate, channels",
    [("a.flac", None, None), ("a.flac", 16000, None), ("a.flac", 48000, 1),
     ("a.webm", 44100, None), ("a.m4a", None, 1)],
)
def test_iter_blocks_matches_read(tmp_path, name, rate, channels):
    path = tmp_path / name
    if name.endswith(".flac"):
        io.write(path, stereo(1.3), SR)
    else:
        encode_pyav(path, "libopus" if name.endswith("webm") else "aac",
                    sample_rate=48000 if name.endswith("webm") else SR, seconds=1.3)
    whole, out_rate = io.read(path, sample_rate=rate, channels=channels)
    blocks = list(io.iter_blocks(path, 0.1, sample_rate=rate, channels=channels))
    block_length = round(0.1 * out_rate)
    assert all(b.shape[1] == block_length for b in blocks[:-1])
    assert 1 <= blocks[-1].shape[1] <= block_length
    joined = torch.cat(blocks, dim=1)
    assert joined.shape == whole.shape
    assert torch.allclose(joined, whole, atol=1e-5)


def test_reader_reports_output_length(tmp_path):
    io.write(tmp_path / "a.wav", stereo(0.7), SR)
    with io.open_reader(tmp_path / "a.wav", sample_rate=22050) as reader:
        assert reader.frames == convert.resampled_length(round(0.7 * SR), SR, 22050)
        total = sum(b.shape[1] for b in reader.blocks(1000))
    assert total == reader.frames and reader.sample_rate == 22050 and reader.channels == 2


def test_reader_blocks_once(tmp_path):
    io.write(tmp_path / "a.wav", stereo(0.1), SR)
    with io.open_reader(tmp_path / "a.wav") as reader:
        list(reader.blocks(512))
        with pytest.raises(RuntimeError):
            list(reader.blocks(512))


# --------------------------------------------------------------------------- writing
def test_streaming_writer_commit(tmp_path):
    x = stereo(0.5)
    with io.open_writer(tmp_path / "out.flac", SR, 2) as writer:
        for block in x.split(1000, dim=1):
            writer.write(block)
        assert leftovers(tmp_path) != []  # in progress: only the temporary file exists
        assert not (tmp_path / "out.flac").exists()
    y, _ = io.read(tmp_path / "out.flac")
    assert torch.allclose(y, x, atol=1 / 2**15)
    assert leftovers(tmp_path) == []


def test_streaming_writer_abort_and_exception(tmp_path):
    (tmp_path / "keep.wav").write_bytes(b"old")
    writer = io.open_writer(tmp_path / "keep.wav", SR, 2)
    writer.write(stereo(0.1))
    writer.abort()
    assert (tmp_path / "keep.wav").read_bytes() == b"old"  # destination untouched
    with pytest.raises(KeyError), io.open_writer(tmp_path / "never.wav", SR, 2) as writer:
        writer.write(stereo(0.1))
        raise KeyError("boom")
    assert not (tmp_path / "never.wav").exists()
    assert leftovers(tmp_path) == []


def test_streaming_writer_clip_modes(tmp_path):
    x = torch.tensor([[0.2, 1.6, -0.4]]).repeat(1, 50)
    with pytest.raises(ValueError):
        io.open_writer(tmp_path / "r.wav", SR, 1, clip="rescale")
    with io.open_writer(tmp_path / "r.wav", SR, 1, clip="rescale", peak=1.6) as writer:
        for block in x.split(7, dim=1):
            writer.write(block)
    io.write(tmp_path / "w.wav", x, SR, clip="rescale")
    assert torch.equal(io.read(tmp_path / "r.wav")[0], io.read(tmp_path / "w.wav")[0])
    with io.open_writer(tmp_path / "c.wav", SR, 1) as writer:  # default: clamp
        writer.write(x)
    assert float(io.read(tmp_path / "c.wav")[0].max()) == pytest.approx(1.0, abs=1e-4)


def test_write_creates_parent_folders(tmp_path):
    path = io.write(tmp_path / "track" / "stems" / "vocals.wav", stereo(0.1), SR)
    assert path.exists()


def test_write_unwritable_folder(tmp_path):
    (tmp_path / "afile").write_text("x")
    target = tmp_path / "afile" / "out.wav"  # parent is a file: fails even for root
    with pytest.raises(AudioWriteError, match="out.wav"):
        io.write(target, stereo(0.1), SR)
    with pytest.raises(AudioWriteError, match="out.wav"):
        io.open_writer(target, SR, 2)
    with pytest.raises(AudioWriteError, match="out.wav"):
        io.write("/proc/unweave-test/out.wav", stereo(0.1), SR)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_write_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(AudioWriteError, match="out.wav"):
            io.write(folder / "out.wav", stereo(0.1), SR)
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("streaming", [False, True])
def test_disk_full_leaves_nothing(tmp_path, monkeypatch, streaming):
    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sf.SoundFile, "write", full)
    target = tmp_path / "out.wav"
    with pytest.raises(AudioWriteError, match=r"out\.wav.*no space left on device"):
        if streaming:
            with io.open_writer(target, SR, 2) as writer:
                writer.write(stereo(0.1))
        else:
            io.write(target, stereo(0.1), SR)
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_bad_requests(tmp_path):
    x = stereo(0.1)
    with pytest.raises(AudioWriteError, match="a.xyz"):
        io.write(tmp_path / "a.xyz", x, SR)
    with pytest.raises(AudioWriteError, match="FLOAT"):
        io.write(tmp_path / "a.flac", x, SR, subtype="FLOAT")
    with pytest.raises(AudioWriteError, match="96000 Hz"):
        io.write(tmp_path / "a.mp3", x, 96000)
    with pytest.raises(AudioWriteError, match="NaN"):
        io.write(tmp_path / "n.wav", torch.full((1, 10), float("nan")), SR)
    with pytest.raises(AudioWriteError, match="0 samples"):
        io.write(tmp_path / "e.wav", torch.zeros(2, 0), SR)
    assert io.write(tmp_path / "noext", x, SR, fmt="flac").exists()
    assert io.info(tmp_path / "noext").format.lower() == "flac"  # probed by FFmpeg
    assert [p.name for p in tmp_path.iterdir()] == ["noext"]


@pytest.mark.parametrize(
    "fmt, subtype", [("WAV", "PCM_U8"), ("WAV", "PCM_16"), ("WAV", "PCM_32"), ("WAV", "FLOAT"),
                     ("WAV", "DOUBLE"), ("FLAC", "PCM_24")],
)
def test_pyav_path_decodes_pcm_like_soundfile(tmp_path, fmt, subtype):
    path = tmp_path / "pcm.bin"  # unknown suffix: FFmpeg probes it first
    sf.write(path, stereo(0.2).numpy().T, SR, format=fmt, subtype=subtype)
    via_pyav, _ = io.read(path)
    assert io.info(path).codec != subtype  # really decoded by FFmpeg
    expected = torch.from_numpy(sf.read(path, dtype="float32")[0].T.copy())
    assert via_pyav.shape == expected.shape
    assert torch.allclose(via_pyav, expected, atol=1e-6)


@pytest.mark.parametrize("from_rate, to_rate", [(44100, 16000), (16000, 48000), (8000, 8000)])
def test_stream_resampler_matches_whole(from_rate, to_rate):
    x = torch.randn(2, 12345)
    resampler = convert.StreamResampler(from_rate, to_rate, 2)
    sizes = [1, 7, 1000, 3, 4096, 2000]
    pieces, pos, k = [], 0, 0
    while pos < x.shape[1]:
        n = sizes[k % len(sizes)]
        pieces.append(resampler.process(x[:, pos : pos + n]))
        pos, k = pos + n, k + 1
    pieces.append(resampler.flush())
    joined = torch.cat(pieces, dim=1)
    whole = convert.resample(x, from_rate, to_rate)
    assert joined.shape == whole.shape == (2, convert.resampled_length(12345, from_rate, to_rate))
    assert torch.allclose(joined, whole, atol=1e-5)
    with pytest.raises(RuntimeError):
        resampler.flush()


def test_resample_gives_the_same_samples_on_one_thread_or_several():
    import soxr

    gen = torch.Generator().manual_seed(5)
    wav = torch.randn(3, 2, 80000, generator=gen)  # long enough for the thread pool
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        pooled = convert.resample(wav, 22050, 44100)
        torch.set_num_threads(1)
        serial = convert.resample(wav, 22050, 44100)
    finally:
        torch.set_num_threads(before)
    assert pooled.shape == (3, 2, convert.resampled_length(80000, 22050, 44100))
    assert torch.equal(pooled, serial)
    direct = soxr.resample(wav[1, 0].numpy(), 22050, 44100, quality="HQ")
    np.testing.assert_array_equal(pooled[1, 0].numpy(), direct)
