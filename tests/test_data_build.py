"""Corpus builders and extractors on tiny synthetic fixtures (offline, no Debian access).

A fake cache holds pre-"unpacked" packages built here: a queen.1c bundle with an MP3 speech
entry, sky.dnr/sky.dsk with RNC-packed and stored speech, a WAD with MIDI and MUS lumps, a
public.zip with Ogg members, Asterisk G.722 prompts, Sonic Pi FLAC and Wesnoth Ogg files.
"""

from __future__ import annotations

import io
import itertools
import json
import struct
import zipfile
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from unweave.data import build_denoise, build_music4, build_soundtrack, debs, midi_stems, sources
from unweave.data.common import CorpusWriter, quantize_stems, split_for
from unweave.data.extract import codec, mus, queen, rnc, sky, wad, zero_ad
from unweave.errors import UnweaveError

SR_SPEECH = 11025


# ----------------------------------------------------------------------------- encoders
def tone(seconds: float, rate: int, freq: float = 220.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)  # syllable-like modulation
    return (amp * env * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def encode(x: np.ndarray, rate: int, codec_name: str, fmt: str, sample_fmt: str) -> bytes:
    """Mono float -> encoded bytes with PyAV (mp3, g722...)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as out:
        stream = out.add_stream(codec_name, rate=rate, layout="mono")
        pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(pcm, format=sample_fmt, layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def ogg_bytes(x: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([x, x], 1), rate, format="OGG", subtype="VORBIS")
    return buffer.getvalue()


# ----------------------------------------------------------------------------- RNC packer
class _BitWriter:
    """LSB-first bits in 16-bit LE words; literal bytes go after the word being filled."""

    def __init__(self):
        self.out, self.word, self.used = bytearray(), 0, 16

    def bit(self, value: int) -> None:
        if self.used == 16:
            self.word, self.used = len(self.out), 0
            self.out += b"\0\0"
        if value:
            self.out[self.word + self.used // 8] |= 1 << (self.used % 8)
        self.used += 1

    def bits(self, value: int, n: int) -> None:
        for i in range(n):
            self.bit(value >> i & 1)

    def literal(self, data: bytes) -> None:
        self.out += data


def _canonical(lengths):
    codes, code = {}, 0
    for length in range(1, 17):
        for symbol, sym_length in enumerate(lengths):
            if sym_length == length:
                codes[symbol] = (code >> (16 - length), length)
                code += 1 << (16 - length)
    return codes


TABLES = ([4] * 16, [2, 2, 3, 3, 3, 3], [1, 2, 3, 3])  # raw runs, offsets - 1, lengths - 2


def _put_value(w: _BitWriter, codes, value: int) -> None:
    symbol = value if value < 2 else value.bit_length()
    code, length = codes[symbol]
    for i in reversed(range(length)):
        w.bit(code >> i & 1)
    if symbol >= 2:
        w.bits(value - (1 << (symbol - 1)), symbol - 1)


def _tokens(data: bytes, start: int, stop: int):
    """Greedy pairs (literal run, (offset, length) | None) for data[start:stop]."""
    pairs, literal, p = [], bytearray(), start
    while p < stop:
        best = None
        for offset in (1, 2, 25, 32):
            length = 0
            while (p - offset >= 0 and p + length < stop and length < 9
                   and data[p + length] == data[p - offset + length]):
                length += 1
            if length >= 3 and (best is None or length > best[1]):
                best = (offset, length)
        if best:
            pairs.append((bytes(literal), best))
            literal = bytearray()
            p += best[1]
        else:
            literal.append(data[p])
            p += 1
    pairs.append((bytes(literal), None))
    return pairs


def rnc_pack(data: bytes, blocks: int = 2) -> bytes:
    """Pack with RNC method 1 (fixed tables, greedy matches) -> header + stream."""
    w = _BitWriter()
    w.bits(0, 2)
    bounds = np.linspace(0, len(data), blocks + 1).astype(int)
    for b in range(blocks):
        tables = [_canonical(t) for t in TABLES]
        for lengths in TABLES:
            w.bits(len(lengths), 5)
            for length in lengths:
                w.bits(length, 4)
        pairs = _tokens(data, bounds[b], bounds[b + 1])
        w.bits(len(pairs), 16)
        for run, match in pairs:
            _put_value(w, tables[0], len(run))
            w.literal(run)
            if match:
                _put_value(w, tables[1], match[0] - 1)
                _put_value(w, tables[2], match[1] - 2)
    body = bytes(w.out)
    header = b"RNC\x01" + struct.pack(">IIHH", len(data), len(body), rnc.crc16(data),
                                      rnc.crc16(body)) + bytes([0, blocks])
    return header + body


# ----------------------------------------------------------------------------- extractor tests
def test_crc16_known_vector():
    assert rnc.crc16(b"123456789") == 0xBB3D  # CRC-16/ARC check value


@pytest.mark.parametrize("blocks", [1, 3])
def test_rnc_roundtrip_with_matches_and_literals(blocks):
    rng = np.random.default_rng(0)
    periodic = bytes(int(128 + 100 * np.sin(2 * np.pi * n / 25)) for n in range(300))
    data = periodic + bytes([128]) * 40 + bytes(rng.integers(0, 256, 123, dtype=np.uint8))
    packed = rnc_pack(data, blocks)
    assert len(packed) < len(data) + 18  # matches were used
    assert rnc.unpack(packed) == data


def test_rnc_rejects_bad_signature_and_crc():
    packed = bytearray(rnc_pack(bytes(range(200))))
    with pytest.raises(UnweaveError, match="RNC"):
        rnc.unpack(b"XYZ" + bytes(packed[3:]), name="f")
    packed[-1] ^= 0xFF
    with pytest.raises(UnweaveError, match="CRC"):
        rnc.unpack(bytes(packed), name="f")


def _u8(x: np.ndarray) -> bytes:
    return np.clip(np.round(x * 127 + 128), 0, 255).astype(np.uint8).tobytes()


def make_sky(folder: Path) -> dict[int, bytes]:
    """sky.dnr + sky.dsk: 50001 RNC-packed speech, 50002 stored speech, 100 other."""
    pcm1, pcm2 = _u8(tone(0.6, SR_SPEECH)), _u8(tone(0.4, SR_SPEECH, 330))
    head = lambda flag, total: struct.pack("<11H", flag, 0, 0, 0, 0, 0, total, 0, 0, 0, 0)
    files = {
        50001: (head(0x81, len(pcm1)) + rnc_pack(pcm1), 0),
        50002: (head(0, len(pcm2)) + pcm2, 1 << 23),
        100: (b"other data" * 5, 1 << 23),
    }
    dsk, entries = bytearray(), []
    for number, (blob, flags) in files.items():
        dsk += bytes(-len(dsk) % 16)  # 16-byte aligned: offsets stored in 16-byte units
        offset = ((len(dsk) >> 4) | 0x800000).to_bytes(3, "little")
        entries.append(struct.pack("<H", number) + offset
                       + (len(blob) | flags).to_bytes(3, "little"))
        dsk += blob
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sky.dnr").write_bytes(struct.pack("<I", len(entries)) + b"".join(entries))
    (folder / "sky.dsk").write_bytes(bytes(dsk))
    return {50001: pcm1, 50002: pcm2}


def test_sky_index_and_speech(tmp_path):
    expected = make_sky(tmp_path)
    index = sky.read_index((tmp_path / "sky.dnr").read_bytes())
    assert sky.speech_numbers(index) == [50001, 50002]
    with open(tmp_path / "sky.dsk", "rb") as dsk:
        for number, pcm in expected.items():
            assert sky.speech_pcm(sky.load_file(dsk, index[number])) == pcm
        assert sky.load_file(dsk, index[100]) == b"other data" * 5


def make_queen(path: Path) -> None:
    """queen.1c with two MP3 speech entries and one other entry (ScummVM layout)."""
    blobs = [("0100A1J1.SB", encode(tone(0.8, SR_SPEECH), SR_SPEECH, "libmp3lame", "mp3", "s16p")),
             ("ROOM1.DOG", b"not speech"),
             ("C2ABC012.SB", encode(tone(0.5, SR_SPEECH, 300), SR_SPEECH, "libmp3lame", "mp3",
                                    "s16p"))]
    table_end = 15 + 21 * len(blobs)
    table, data, offset = b"", b"", table_end
    for name, blob in blobs:
        table += name.encode().ljust(12, b"\0") + bytes([1]) + struct.pack(">II", offset, len(blob))
        data += blob
        offset += len(blob)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"QTBL" + b"CEM10\0" + b"\0\0" + bytes([1])
                     + struct.pack(">H", len(blobs)) + table + data)


def test_queen_bundle_speech_decodes(tmp_path):
    make_queen(tmp_path / "queen.1c")
    data = (tmp_path / "queen.1c").read_bytes()
    compression, entries = queen.read_table(data)
    assert compression == 1 and len(entries) == 3
    speech = queen.speech_entries(entries)
    assert [e.name for e in speech] == ["0100A1J1.SB", "C2ABC012.SB"]
    audio, rate = codec.decode_bytes(queen.entry_bytes(data, speech[0]), format="mp3")
    assert rate == SR_SPEECH and audio.shape[0] == 1
    assert abs(audio.shape[1] / rate - 0.8) < 0.15
    with pytest.raises(UnweaveError, match="QTBL"):
        queen.read_table(b"NOPE" + data[4:])


def midi_bytes(notes, program=0, channel=0, drums=True) -> bytes:
    """Type-0 MIDI: notes [(key, start_beats, beats)] on ``channel`` plus a drum and bass part."""
    events = [(0, mido.Message("program_change", channel=channel, program=program)),
              (0, mido.Message("program_change", channel=1, program=33))]
    for key, start, length in notes:
        events.append((start, mido.Message("note_on", channel=channel, note=key, velocity=90)))
        events.append((start + length, mido.Message("note_off", channel=channel, note=key)))
        events.append((start, mido.Message("note_on", channel=1, note=key - 24, velocity=80)))
        events.append((start + length, mido.Message("note_off", channel=1, note=key - 24)))
        if drums:
            events.append((start, mido.Message("note_on", channel=9, note=36, velocity=100)))
            events.append((start + 0.25, mido.Message("note_off", channel=9, note=36)))
    events.sort(key=lambda e: e[0])
    return _type0_midi(events)


def _type0_midi(events) -> bytes:
    """Type-0 MIDI bytes from [(beat, message)] in time order, 96 ticks a beat."""
    track, now = mido.MidiTrack(), 0
    for beat, msg in events:
        tick = int(beat * 96)
        track.append(msg.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(type=0, ticks_per_beat=96)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


MELODY = [(60 + [0, 2, 4, 5, 7, 5, 4, 2][i % 8], i * 0.5, 0.45) for i in range(24)]


def make_mus() -> bytes:
    """MUS: program 30 on channel 0, one note with volume, a delay, release, end."""
    score = bytes([0x40, 0, 30,            # controller 0 (program) = 30 on channel 0
                   0x90, 60 | 0x80, 100, 70,  # play note 60 vol 100, last -> delay 70 ticks
                   0x00, 60,               # release note 60
                   0x1F, 38, 0x80 | 1, 6,  # play drum 38 on MUS channel 15, delay 134 ticks
                   0x60])                  # score end
    header = b"MUS\x1a" + struct.pack("<HHHHHH", len(score), 16, 1, 0, 0, 0)
    return header + score


def test_mus_to_midi_events():
    midi = mido.MidiFile(file=io.BytesIO(mus.mus_to_midi(make_mus())))
    msgs = [m for m in midi if not m.is_meta]
    assert msgs[0].type == "program_change" and msgs[0].program == 30
    assert msgs[1].type == "note_on" and msgs[1].note == 60 and msgs[1].velocity == 100
    assert msgs[2].type == "note_off" and msgs[2].time == pytest.approx(0.5, abs=1e-3)
    assert msgs[3].channel == 9 and msgs[3].note == 38  # MUS channel 15 -> percussion


def make_wad(path: Path, lumps: list[tuple[str, bytes]]) -> None:
    data, directory = bytearray(b"PWAD" + bytes(8)), b""
    for name, blob in lumps:
        directory += struct.pack("<ii8s", len(data), len(blob), name.encode())
        data += blob
    data[4:12] = struct.pack("<ii", len(lumps), len(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data) + directory)


def test_wad_music_lumps_midi_and_mus(tmp_path):
    midi = midi_bytes(MELODY[:4])
    make_wad(tmp_path / "x.wad", [("MAP01", b"map"), ("D_RUNNIN", midi), ("D_OTHER", make_mus())])
    lumps = wad.music_lumps((tmp_path / "x.wad").read_bytes())
    assert [name for name, _, _ in lumps] == ["D_RUNNIN", "D_OTHER"]
    assert lumps[0][1] == midi and lumps[1][1][:4] == b"MThd"
    with pytest.raises(UnweaveError, match="not a WAD"):
        wad.read_lumps(b"JUNK" + bytes(20))


def test_g722_decode_roundtrip():
    x = tone(1.0, 16000)
    audio, rate = codec.decode_g722(encode(x, 16000, "g722", "g722", "s16"))
    assert rate == 16000 and audio.shape[0] == 1
    assert abs(audio.shape[1] - 16000) < 400
    assert 0.1 < float(np.abs(audio).max()) < 0.5
    with pytest.raises(UnweaveError, match="empty"):
        codec.decode_g722(b"", name="is.g722")


# ----------------------------------------------------------------------------- fake cache
SPEAKERS = {"en": "en_US_f_Allison", "es": "es_MX_f_Allison", "it": "it_IT_m_Carlo",
            "ru": "ru_RU_f_IvrvoiceRU"}
VERSIONS = {"wesnoth-1.16-music": "1%3a1.16.9-1"}


def _package(cache: Path, name: str) -> Path:
    version = VERSIONS.get(name, "1.0-1")
    deb = cache / "debs" / f"{name}_{version}_all.deb"
    deb.parent.mkdir(parents=True, exist_ok=True)
    deb.write_bytes(b"")
    root = cache / "pkgs" / name
    root.mkdir(parents=True, exist_ok=True)
    (root / ".unpacked").write_text(deb.name + "\n")
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    for i, (lang, speaker) in enumerate(SPEAKERS.items()):
        root = _package(cache, f"asterisk-core-sounds-{lang}-g722")
        folder = root / "usr/share/asterisk/sounds" / speaker
        folder.mkdir(parents=True)
        for k in range(2):
            (folder / f"prompt{k}.g722").write_bytes(
                encode(tone(1.0, 16000, 180 + 20 * i + 10 * k), 16000, "g722", "g722", "s16"))
        (folder / "empty.g722").write_bytes(b"")  # real packages have one: skipped
    rng = np.random.default_rng(1)
    zroot = _package(cache, "0ad-data") / "usr/share/games/0ad/mods/public"
    zroot.mkdir(parents=True)
    with zipfile.ZipFile(zroot / "public.zip", "w") as archive:
        archive.writestr("audio/music/Theme_A.ogg", ogg_bytes(tone(8.0, 44100, 262), 44100))
        archive.writestr("audio/music/Theme_B.ogg", ogg_bytes(tone(7.0, 44100, 196), 44100))
        archive.writestr("audio/ambient/rain.ogg",
                         ogg_bytes(0.1 * rng.standard_normal(3 * 22050).astype(np.float32), 22050))
        archive.writestr("audio/attack/hit.ogg", ogg_bytes(tone(0.5, 22050, 800), 22050))
        archive.writestr("audio/voice/hello.ogg", ogg_bytes(tone(0.5, 22050, 200), 22050))
        archive.writestr("art/readme.txt", "not audio")
    samples = _package(cache, "sonic-pi-samples") / "usr/share/sonic-pi/samples"
    samples.mkdir(parents=True)
    sf.write(samples / "vinyl_hiss.flac", 0.05 * rng.standard_normal(2 * 44100), 44100)
    sf.write(samples / "perc_bell.flac", tone(0.7, 44100, 1200), 44100)
    music = _package(cache, "wesnoth-1.16-music") / "usr/share/games/wesnoth/1.16/data/core/music"
    music.mkdir(parents=True)
    (music / "battle.ogg").write_bytes(ogg_bytes(tone(6.0, 44100, 147), 44100))
    make_queen(_package(cache, "flight-of-the-amazon-queen")
               / "usr/share/scummvm/flight-of-the-amazon-queen/queen.1c")
    make_sky(_package(cache, "beneath-a-steel-sky") / "usr/share/scummvm/beneath-a-steel-sky")
    make_wad(_package(cache, "freedoom") / "usr/share/games/doom/freedoom2.wad",
             [("D_SONGA", midi_bytes(MELODY)), ("D_SONGB", midi_bytes(MELODY[::-1], program=73)),
              ("D_DUPE", midi_bytes(MELODY)), ("D_MUSIC", make_mus())])
    sf3 = _package(cache, "musescore-general-soundfont") / "usr/share/sounds/sf3/Fake.sf3"
    sf3.parent.mkdir(parents=True)
    sf3.write_bytes(b"fake")
    return cache


class FakeRenderer:
    """Stands in for FluidSynth: each note is a decaying sine."""

    def __init__(self, soundfont, sample_rate=44100, gain=0.3):
        self.sample_rate = sample_rate

    def presets(self, bank):
        return list(range(64)) if bank == 128 else list(range(128))

    def render(self, events, duration, *, programs=None, program_map=None, reverb=None,
               tail_seconds=2.0):
        out = np.zeros((2, round((duration + tail_seconds) * self.sample_rate)), np.float32)
        started = {}
        for time, kind, args in events:
            if kind == "on":
                started[args[:2]] = time
            elif kind == "off" and args[:2] in started:
                start = int(started.pop(args[:2]) * self.sample_rate)
                n = max(1, int(time * self.sample_rate) - start)
                t = np.arange(n) / self.sample_rate
                freq = 440 * 2 ** ((args[1] - 69) / 12)
                note = 0.1 * np.sin(2 * np.pi * freq * t) * np.exp(-3 * t)
                out[:, start:start + n] += note[:out.shape[1] - start]
        return out


# ----------------------------------------------------------------------------- builder tests
def test_fetch_uses_cache_and_reads_versions(cache):
    packages = debs.fetch(["wesnoth-1.16-music", "freedoom"], cache)
    assert packages["wesnoth-1.16-music"].version == "1:1.16.9-1"
    assert packages["freedoom"].license.startswith("BSD")


def test_zero_ad_groups(cache):
    archive = zero_ad.open_archive(next((cache / "pkgs/0ad-data").rglob("public.zip")))
    assert zero_ad.list_members(archive, "music") == ["audio/music/Theme_A.ogg",
                                                      "audio/music/Theme_B.ogg"]
    assert zero_ad.list_members(archive, "sfx") == ["audio/attack/hit.ogg"]
    assert zero_ad.list_members(archive, "voice") == ["audio/voice/hello.ogg"]
    audio, rate = codec.decode_bytes(archive.read("audio/ambient/rain.ogg"))
    assert rate == 22050 and audio.shape == (2, 3 * 22050)
    with pytest.raises(UnweaveError, match="unknown"):
        zero_ad.list_members(archive, "speech")


def test_fetch_errors_name_the_packages(tmp_path, monkeypatch):
    monkeypatch.setattr(debs.shutil, "which", lambda name: None)
    with pytest.raises(UnweaveError, match="freedoom.*apt-get is not available"):
        debs.fetch(["freedoom"], tmp_path)
    with pytest.raises(UnweaveError, match="reserved"):
        debs.fetch(["asterisk-core-sounds-fr-g722"], tmp_path)
    with pytest.raises(UnweaveError, match="reserved"):
        debs.fetch(["fluid-soundfont-gm"], tmp_path)


def test_freedoom_tracks_skip_reserved_and_duplicates(cache, monkeypatch):
    package = debs.fetch(["freedoom"], cache)["freedoom"]
    tracks, excluded = sources.freedoom_tracks(package)
    assert [t.name for t in tracks] == ["freedoom2_D_SONGA", "freedoom2_D_SONGB",
                                        "freedoom2_D_MUSIC"]  # D_DUPE has D_SONGA's bytes
    monkeypatch.setattr(sources, "is_reserved_midi", lambda digest: digest == tracks[0].sha256)
    tracks2, excluded = sources.freedoom_tracks(package)
    assert excluded == ["freedoom2:D_SONGA", "freedoom2:D_DUPE"]
    assert tracks[0].sha256 not in {t.sha256 for t in tracks2}


def test_midi_stems_assign_and_melody():
    score = midi_stems.parse_midi(midi_bytes(MELODY), tempo_factor=2.0, transpose=2)
    stems = midi_stems.assign_stems(score)
    assert len(stems["drums"]) == len(stems["bass"]) == len(stems["vocals"]) == 24
    assert stems["other"] == []  # the only melodic channel is the lead -> vocals
    assert stems["vocals"][0].key == 62  # transposed
    assert score.duration == pytest.approx((23 * 0.5 + 0.45) * 0.5 / 2, abs=0.01)  # beats->s
    line = midi_stems.melody(stems["vocals"])
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(line))
    events = midi_stems.events_for(score, stems["bass"])
    assert {e[2][0] for e in events} == {1}


def _parts_midi(parts) -> bytes:
    """Type-0 MIDI from parts [(channel, program, [(keys, start_beats, beats)])]."""
    events = [(0, mido.Message("program_change", channel=ch, program=prog))
              for ch, prog, _ in parts]
    for ch, _, notes in parts:
        for keys, start, length in notes:
            for key in keys:
                events.append((start, mido.Message("note_on", channel=ch, note=key, velocity=90)))
                events.append((start + length, mido.Message("note_off", channel=ch, note=key)))
    events.sort(key=lambda e: (e[0], e[1].type == "note_on"))  # note-offs first at a tick
    return _type0_midi(events)


def test_low_lines_go_to_bass_only_when_asked():
    """A monophonic line down at G1-D2 on a sawtooth lead preset is the song's bass part; a low
    string pad (chords), a taiko (percussion preset) and the melody are not."""
    melody = [((key,), start, 0.45) for key, start, _ in MELODY]
    saw = [((31 + [0, 3, 5, 7][i % 4],), i * 0.5, 0.45) for i in range(24)]
    pad = [((36, 40), i * 2.0, 1.9) for i in range(6)]
    taiko = [((34,), i * 0.5, 0.2) for i in range(24)]
    score = midi_stems.parse_midi(_parts_midi([(0, 0, melody), (2, 81, saw), (3, 48, pad),
                                               (4, 116, taiko)]))
    assert midi_stems.low_lines(score) == {(2, 81)}
    channels = {stem: {n.channel for n in notes}
                for stem, notes in midi_stems.assign_stems(score).items()}
    assert channels == {"drums": set(), "bass": set(), "vocals": {0}, "other": {2, 3, 4}}
    channels = {stem: {n.channel for n in notes} for stem, notes
                in midi_stems.assign_stems(score, low_lines_to_bass=True).items()}
    assert channels == {"drums": set(), "bass": {2}, "vocals": {0}, "other": {3, 4}}


def test_music4_options_are_kept_per_folder(tmp_path):
    """A corpus folder keeps the bass rule it was started with: resuming it with another rule
    would mix items of both."""
    from unweave.cli import main

    lines = {"low_lines_to_bass": True}
    build_music4.check_options(tmp_path / "new", lines)
    build_music4.check_options(tmp_path / "new", lines)  # resuming with the same rule
    with pytest.raises(UnweaveError, match="new.*built with options"):
        build_music4.check_options(tmp_path / "new", {"low_lines_to_bass": False})
    (tmp_path / "old" / "train").mkdir(parents=True)  # built before options were recorded
    build_music4.check_options(tmp_path / "old", {"low_lines_to_bass": False})
    with pytest.raises(UnweaveError, match="old.*build into a new folder"):
        build_music4.check_options(tmp_path / "old", lines)
    assert main(["data", "build", "denoise", "--bass-lines", "--out", str(tmp_path / "d")]) == 1
    assert not (tmp_path / "d").exists()


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    """A file where the corpus folder should go: a one-line error, the file left as it was."""
    from unweave.cli import main

    (tmp_path / "afile").write_bytes(b"keep")
    assert main(["data", "build", "denoise", "--out", str(tmp_path / "afile")]) == 1
    assert "afile: not a folder (a file is there)" in capsys.readouterr().err
    with pytest.raises(UnweaveError, match="afile/sub: cannot make the corpus folder"):
        CorpusWriter(tmp_path / "afile" / "sub", "denoise", 16000, 1, ("speech", "noise"))
    assert (tmp_path / "afile").read_bytes() == b"keep"


def test_text_writes_of_one_file_at_once_do_not_collide(tmp_path, monkeypatch):
    """The shards of a parallel build all record a new folder's options: a second writer that
    starts while the first is between writing and renaming must not take the first's temporary
    file (it did: a fresh `data build music4 --bass-lines --jobs 2` lost a shard)."""
    import os

    from unweave import fileio
    from unweave.data import common

    target = tmp_path / "build_options.json"
    replace = os.replace
    nested = []

    def interleaved(src, dst):
        if not nested:  # the other process writes the same file at this moment
            nested.append(src)
            common.write_text_atomic(target, "second")
        replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", interleaved)
    common.write_text_atomic(target, "first")
    assert target.read_text() == "first"  # the outer rename came last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build_options.json"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        common.write_text_atomic(target, "third")
    assert target.read_text() == "first"  # the old file stays, no temporary file is left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build_options.json"]


def test_rewriting_an_item_clears_the_temporary_files_of_a_stopped_build(tmp_path):
    from unweave.data.common import ORIGINS_FILE, CorpusWriter

    folder = tmp_path / "train" / "song"
    folder.mkdir(parents=True)
    stale = [folder / ".tmp-k2j4.wav", folder / f"{ORIGINS_FILE}.x9q.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    keep = folder / "notes.txt"  # not a temporary file: left alone
    keep.write_text("mine")
    writer = CorpusWriter(tmp_path, "test", 8000, 1, ("a",))
    writer.write("train", "song", {"a": np.zeros((1, 800), np.float32)}, {})
    assert sorted(p.name for p in folder.iterdir()) == sorted([ORIGINS_FILE, "a.wav",
                                                               "notes.txt"])
    assert keep.read_text() == "mine"


def test_quantize_stems_sum_exactly():
    rng = np.random.default_rng(0)
    stems = {s: rng.standard_normal((2, 1000)).astype(np.float32) for s in ("a", "b", "c")}
    out = quantize_stems(stems)
    total = sum(out[s].astype(np.int32) for s in ("a", "b", "c"))
    assert np.array_equal(total, out["mixture"].astype(np.int32))
    assert np.abs(out["mixture"]).max() <= 0.98 * 32768 + 1


def test_split_is_deterministic_by_group():
    assert split_for("track-1") == split_for("track-1")
    assert {split_for(f"t{i}", 0.5) for i in range(50)} == {"train", "valid"}


def _wav_dirs(root: Path, split: str) -> list[Path]:
    return sorted(p for p in (root / split).iterdir() if p.is_dir())


def test_denoise_build_layout_manifest_resume(cache, tmp_path):
    from unweave.cli import main

    out = tmp_path / "denoise"
    assert main(["data", "build", "denoise", "--out", str(out), "--cache", str(cache),
                 "--no-progress"]) == 0
    info = json.loads((out / "dataset.json").read_text())
    assert info["task"] == "denoise" and info["sample_rate"] == 16000 and info["channels"] == 1
    assert info["tools"]["numpy"] == np.__version__  # what decided the audio, for comparisons
    assert {p.parent.name for p in (out / "valid/speech").glob("*.wav")} == {"speech"}
    assert all(p.name.startswith("ru_RU") for p in (out / "valid/speech").glob("*.wav"))
    assert not any(p.name.startswith("ru_RU") for p in (out / "train/speech").glob("*.wav"))
    assert len(list((out / "train/speech").glob("*.wav"))) == 6  # empty prompts skipped
    noise = {p.name for p in (out / "train/noise").glob("*.wav")}
    assert {"0ad_rain.wav", "sonicpi_vinyl_hiss.wav", "noise_pink_0.wav"} <= noise
    audio, rate = sf.read(out / "train/noise/0ad_rain.wav")
    assert rate == 16000 and audio.ndim == 1
    rows = json.loads((out / "manifest.json").read_text())
    assert set(rows[0]) >= {"package", "version", "license", "file", "duration", "split",
                            "sha256"}
    assert (out / "manifest.csv").read_text().startswith("split,item,stem,path,duration,sha256")
    assert any("empty.g722" in f for f in info["skipped_sources"])
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    build_denoise.build(out, cache=cache, progress=False)  # resume: nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == mtimes
    assert json.loads((out / "manifest.json").read_text()) == rows


def test_soundtrack_build_items(cache, tmp_path):
    from unweave.data.check import check_corpus

    out = tmp_path / "soundtrack"
    info = build_soundtrack.build(out, cache=cache, progress=False)
    assert sum(info["counts"].values()) == 3  # Theme_A, Theme_B, battle: one 30 s item each
    items = _wav_dirs(out, "train") + (_wav_dirs(out, "valid") if (out / "valid").is_dir() else [])
    for item in items:
        assert {p.stem for p in item.glob("*.wav")} == {"speech", "music", "sfx", "mixture"}
        audio, rate = sf.read(item / "mixture.wav")
        assert rate == 44100 and audio.shape == (30 * 44100, 2)
    report = check_corpus(out)
    assert report["problems"] == [], report["problems"]
    speech_rows = [r for r in json.loads((out / "manifest.json").read_text())
                   if r["stem"] == "speech" and r["package"]]
    assert speech_rows and all(set(r["package"].split(";")) <= {
        "flight-of-the-amazon-queen", "beneath-a-steel-sky"} for r in speech_rows)


def test_music4_build_with_fake_synth_and_limit(cache, tmp_path, monkeypatch):
    pytest.importorskip("pyworld")
    from unweave.data.check import check_corpus

    monkeypatch.setattr(build_music4, "FluidRenderer", FakeRenderer)
    out = tmp_path / "music4"
    info = build_music4.build(out, cache=cache, progress=False, limit_minutes=0.3)
    assert 1 <= sum(info["counts"].values()) < 6  # the limit stopped it early
    assert info["bass"] == "GM bass presets (programs 32-39)"
    assert json.loads((out / "build_options.json").read_text()) == {"low_lines_to_bass": False}
    item = next(p for s in ("train", "valid") if (out / s).is_dir() for p in _wav_dirs(out, s))
    assert {p.stem for p in item.glob("*.wav")} == {"drums", "bass", "other", "vocals",
                                                     "mixture"}
    assert check_corpus(out)["problems"] == []
    assert info["minutes"]["train"] + info["minutes"]["valid"] > 0
    # the vocals are sung speech (not the soundfont), at about the accompaniment's loudness
    vocals, _ = sf.read(item / "vocals.wav")
    accompaniment = sum(sf.read(item / f"{s}.wav")[0] for s in ("drums", "bass", "other"))
    ratio_db = 10 * np.log10(np.mean(vocals ** 2) / np.mean(accompaniment ** 2))
    assert -12 < ratio_db < 12, ratio_db
    rows = json.loads((out / "manifest.json").read_text())
    vocal_packages = {r["package"] for r in rows if r["stem"] == "vocals" and r["package"]}
    assert vocal_packages and all(p.startswith(("asterisk-core-sounds", "flight-of", "beneath"))
                                  for name in vocal_packages for p in name.split(";"))


def _manifest_digest(out: Path) -> list[tuple]:
    rows = json.loads((out / "manifest.json").read_text())
    return sorted((r["split"], r["item"], r["stem"], r["sha256"]) for r in rows)


def test_music4_sharded_build_equals_serial(cache, tmp_path, monkeypatch):
    pytest.importorskip("pyworld")
    monkeypatch.setattr(build_music4, "FluidRenderer", FakeRenderer)
    monkeypatch.setattr(build_music4, "VARIANTS", {"train": 1, "valid": 1})
    serial, sharded = tmp_path / "serial", tmp_path / "sharded"
    info = build_music4.build(serial, cache=cache, progress=False)
    parts = [build_music4.build(sharded, cache=cache, progress=False, shard=(k, 3))
             for k in range(3)]
    assert not (sharded / "manifest.json").exists()  # shards leave the manifest to the last pass
    # every item written by exactly one shard
    assert sum(sum(p["counts"].values()) for p in parts) == sum(info["counts"].values()) >= 2
    build_music4.build(sharded, cache=cache, progress=False)
    assert _manifest_digest(sharded) == _manifest_digest(serial)
    with pytest.raises(UnweaveError, match="limit"):
        build_music4.build(tmp_path / "x", cache=cache, limit_minutes=1.0, shard=(0, 3))


def test_music4_more_variants_add_items_to_a_folder(cache, tmp_path, monkeypatch):
    """--variants N renders each training song N times; a second build with more variants keeps
    the items there (byte for byte) and adds the new ones; validation songs stay at one."""
    pytest.importorskip("pyworld")
    from unweave.cli import main

    monkeypatch.setattr(build_music4, "FluidRenderer", FakeRenderer)
    out = tmp_path / "m4"
    build_music4.build(out, cache=cache, progress=False, variants=1)
    before = _manifest_digest(out)
    info = build_music4.build(out, cache=cache, progress=False, variants=2)
    after = _manifest_digest(out)
    assert set(before) < set(after) and info["variants"] == {"train": 2, "valid": 1}
    items = {(split, item) for split, item, _, _ in after}
    train = {i.rsplit("_v", 1)[0] for s, i in items if s == "train"}
    assert {(s, i) for s, i in items if s == "train"} == {("train", f"{t}_v{k}") for t in train
                                                           for k in (0, 1)}
    assert all(i.endswith("_v0") for s, i in items if s == "valid")
    assert main(["data", "build", "denoise", "--variants", "3", "--out", str(tmp_path / "d")]) == 1
    assert main(["data", "build", "music4", "--variants", "0", "--out", str(tmp_path / "d")]) == 1
    assert not (tmp_path / "d").exists()


def test_soundtrack_parallel_build_cli(cache, tmp_path):
    from unweave.cli.data import build_corpus

    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    build_soundtrack.build(serial, cache=cache, progress=False)
    info = build_corpus(build_soundtrack, str(parallel), cache=str(cache), limit_minutes=None,
                        progress=False, jobs=2)
    assert info["jobs"] == 2 and sum(info["counts"].values()) == 3
    assert json.loads((parallel / "dataset.json").read_text())["jobs"] == 2
    assert _manifest_digest(parallel) == _manifest_digest(serial)
    with pytest.raises(UnweaveError, match="--limit"):
        build_corpus(build_soundtrack, str(tmp_path / "x"), cache=str(cache), limit_minutes=5.0,
                     progress=False, jobs=2)


def test_parallel_build_stops_at_the_first_failing_shard(tmp_path):
    """A shard that fails ends the build with its error at once: the other shards are stopped,
    not waited for (a failed shard used to surface only when the rest had finished)."""
    from tests import fake_builder
    from unweave.cli.data import build_corpus

    out = tmp_path / "corpus"
    out.mkdir()
    with pytest.raises(UnweaveError, match="shard 1 cannot read its source"):
        build_corpus(fake_builder, str(out), cache=None, limit_minutes=None, progress=False,
                     jobs=2)
    import multiprocessing

    assert not (out / "shard0-finished").exists()  # not waited for (it sleeps 20 s first)
    assert multiprocessing.active_children() == []  # and not left running either
    assert not (out / "dataset.json").exists()


def test_vocals_build_with_fake_synth(cache, tmp_path, monkeypatch):
    pytest.importorskip("pyworld")
    from unweave.data import build_vocals
    from unweave.data.check import check_corpus

    monkeypatch.setattr(build_music4, "FluidRenderer", FakeRenderer)
    monkeypatch.setattr(build_music4, "VARIANTS", {"train": 1, "valid": 1})
    out = tmp_path / "vocals"
    info = build_vocals.build(out, cache=cache, progress=False, limit_minutes=0.2)
    assert sum(info["counts"].values()) >= 1
    item = next(p for s in ("train", "valid") if (out / s).is_dir() for p in _wav_dirs(out, s))
    assert {p.stem for p in item.glob("*.wav")} == {"vocals", "accompaniment", "mixture"}
    vocals, rate = sf.read(item / "vocals.wav")
    assert rate == 44100 and np.abs(vocals).max() > 0.01
    assert check_corpus(out)["problems"] == []


def _real_soundfont() -> Path | None:
    import os

    roots = [Path(os.environ.get("UNWEAVE_DATA_CACHE", "~/.cache/unweave")).expanduser()]
    for root in roots:
        found = sorted((root / "pkgs/musescore-general-soundfont").rglob("*.sf3"))
        if found:
            return found[0]
    return None


@pytest.mark.slow
def test_fluidsynth_stems_add_up_to_the_full_render():
    pytest.importorskip("fluidsynth")
    soundfont = _real_soundfont()
    if soundfont is None:
        pytest.skip("MuseScore General soundfont not in the cache (set UNWEAVE_DATA_CACHE)")
    from unweave.data.render import FluidRenderer

    renderer = FluidRenderer(soundfont)
    score = midi_stems.parse_midi(midi_bytes(MELODY))
    stems = midi_stems.assign_stems(score)
    programs = {9: (128, 0)}
    parts = [renderer.render(midi_stems.events_for(score, notes), score.duration,
                             programs=programs) for notes in stems.values() if notes]
    full = renderer.render(midi_stems.events_for(score, score.notes), score.duration,
                           programs=programs)
    assert all(np.abs(p).max() > 1e-3 for p in parts)
    residual = full - sum(parts)
    assert 10 * np.log10(np.sum(full ** 2) / np.sum(residual ** 2)) > 30  # dB


def test_chorale_tracks_are_training_songs_with_a_sung_soprano_and_a_low_bass():
    """A music21 chorale becomes a MIDI song: soprano -> vocals (the melody that is sung),
    bass on a GM bass preset an octave down, alto and tenor -> other, no drums, fixed train
    split; song_splits renders it once whatever --variants says."""
    pytest.importorskip("music21")
    from unweave.data import chorales

    (track,) = chorales.chorale_tracks(1)
    assert track.split == "train" and track.name.startswith("bach_")
    assert track.origin.package == "music21" and "non-commercial" in track.origin.license
    voices = chorales.parts_notes(Path(chorales.chorale_paths()[0]).parent
                                  / (track.name[len("bach_"):] + ".mxl"))
    score = midi_stems.parse_midi(track.midi, name=track.name)
    stems = midi_stems.assign_stems(score)
    assert not stems["drums"]
    assert [n.key for n in stems["vocals"]] == [k for _, _, k in voices[0]]
    assert sorted(n.key for n in stems["bass"]) == sorted(k - 12 for _, _, k in voices[3])
    assert {n.program for n in stems["bass"]} <= set(midi_stems.BASS_PROGRAMS)
    assert len(stems["other"]) == len(voices[1]) + len(voices[2])
    assert len(midi_stems.melody(stems["vocals"])) >= 8
    jobs = build_music4.song_splits([track], variants=3)
    assert jobs == [("train", track, 0)]
    with pytest.raises(UnweaveError, match="--chorales"):
        chorales.chorale_tracks(-1)


def test_chorales_option_belongs_to_music4(tmp_path):
    from unweave.cli import main

    assert main(["data", "build", "vocals", "--chorales", "3", "--out", str(tmp_path / "v")]) == 1
    assert main(["data", "build", "music4", "--chorales", "-1", "--out", str(tmp_path / "m")]) == 1
    assert not (tmp_path / "v").exists() and not (tmp_path / "m").exists()
