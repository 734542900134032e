"""Audio sources inside the unpacked Debian packages, as lazily decoded clips.

Each function takes a :class:`~unweave.data.debs.Package` and returns ``Clip`` objects whose
``load()`` decodes on demand (bundles are read once and kept in memory; members are decoded
each time they are used). ``group`` is the unit of the train/valid split: a speaker, a
dialogue, a track, or a file.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UnweaveError
from .common import Origin
from .debs import Package
from .extract import codec, queen, sky, wad, zero_ad
from .reserved import is_reserved_midi

Loader = Callable[[], "tuple[np.ndarray, int]"]


@dataclass(frozen=True)
class Clip:
    """One decodable piece of audio: ``load() -> ((C, T) float32, sample_rate)``."""

    name: str
    group: str
    origin: Origin
    load: Loader

    def try_load(self, failures: list[str] | None = None):
        """``load()``, or None (noted in ``failures``) when the clip cannot be decoded."""
        try:
            audio, sr = self.load()
        except UnweaveError as exc:
            if failures is not None:
                failures.append(str(exc))
            return None
        if audio.size == 0:
            if failures is not None:
                failures.append(f"{self.origin.file}: no samples")
            return None
        return audio, sr


def origin_of(pkg: Package, file: str) -> Origin:
    """Provenance of ``file`` (a path or member) inside a package."""
    return Origin(pkg.name, pkg.version, pkg.license, file)


def _single(root: Path, pattern: str, what: str) -> Path:
    found = sorted(root.rglob(pattern))
    if not found:
        raise UnweaveError(f"{root}: no {what} ({pattern}) in the unpacked package")
    return found[0]


def asterisk_clips(pkg: Package) -> list[Clip]:
    """Asterisk G.722 prompts; group = speaker folder (e.g. ``en_US_f_Allison``)."""
    files = sorted(pkg.root.rglob("*.g722"))
    if not files:
        raise UnweaveError(f"{pkg.name}: no .g722 prompts found")
    clips = []
    for path in files:
        rel = path.relative_to(pkg.root / "usr/share/asterisk/sounds")
        speaker = rel.parts[0]
        if "silence" in rel.parts:
            continue
        clips.append(Clip(str(rel.with_suffix("")), speaker, origin_of(pkg, str(rel)),
                          lambda p=path: codec.decode_g722(p.read_bytes(), name=str(p))))
    return clips


def queen_clips(pkg: Package) -> list[Clip]:
    """Flight of the Amazon Queen speech (``*.SB`` MP3 streams); group = dialogue prefix."""
    bundle_path = _single(pkg.root, "queen.1c", "queen.1c bundle")
    data = bundle_path.read_bytes()
    _, entries = queen.read_table(data, name=str(bundle_path))
    clips = []
    for entry in queen.speech_entries(entries):
        clips.append(Clip(entry.name, f"queen:{entry.name[:2]}",
                          origin_of(pkg, f"queen.1c:{entry.name}"),
                          lambda e=entry: codec.decode_bytes(queen.entry_bytes(data, e),
                                                             format="mp3", name=e.name)))
    return clips


def sky_clips(pkg: Package) -> list[Clip]:
    """Beneath a Steel Sky speech (files 50000-55999); group = section (thousands digit)."""
    dnr = _single(pkg.root, "sky.dnr", "sky.dnr index")
    dsk_bytes = (dnr.parent / "sky.dsk").read_bytes()
    index = sky.read_index(dnr.read_bytes())

    def load(number: int):
        data = sky.load_file(io.BytesIO(dsk_bytes), index[number])
        pcm = sky.speech_pcm(data)
        if not pcm:
            raise UnweaveError(f"sky.dsk file {number}: empty speech clip")
        return codec.pcm_u8_to_float(pcm), sky.SPEECH_SAMPLE_RATE

    return [Clip(str(n), f"sky:{(n - sky.SPEECH_FIRST) // 1000}", origin_of(pkg, f"sky.dsk:{n}"),
                 lambda n=n: load(n)) for n in sky.speech_numbers(index)]


def zero_ad_clips(pkg: Package, group: str) -> list[Clip]:
    """0 A.D. ``public.zip`` audio of one group (music, ambient, sfx, voice); group = file."""
    archive = zero_ad.open_archive(_single(pkg.root, "public.zip", "public.zip"))

    def load(member: str):
        return codec.decode_bytes(archive.read(member), name=member)

    return [Clip(Path(m).stem, f"0ad:{m}", origin_of(pkg, f"public.zip:{m}"),
                 lambda m=m: load(m)) for m in zero_ad.list_members(archive, group)]


def file_clips(pkg: Package, pattern: str, exclude: tuple[str, ...] = ()) -> list[Clip]:
    """Plain audio files of a package (wesnoth music, sonic-pi samples); group = file."""
    import soundfile as sf

    def load(path: Path):
        if path.suffix.lower() in (".wav", ".flac"):
            audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
            return audio.T, sr
        return codec.decode_bytes(path.read_bytes(), name=str(path))

    clips = []
    for path in sorted(pkg.root.rglob(pattern)):
        if any(word in path.name for word in exclude) or not path.is_file():
            continue
        rel = str(path.relative_to(pkg.root))
        clips.append(Clip(path.stem, f"{pkg.name}:{rel}", origin_of(pkg, rel),
                          lambda p=path: load(p)))
    return clips


@dataclass(frozen=True)
class MidiTrack:
    name: str
    midi: bytes
    sha256: str
    origin: Origin
    split: str | None = None  # a fixed split (None: drawn from the track's hash)


def freedoom_tracks(pkg: Package) -> tuple[list[MidiTrack], list[str]]:
    """Unique freedoom music lumps, reserved ones excluded -> (tracks, excluded names)."""
    tracks, excluded, seen = [], [], set()
    for wad_path in sorted(pkg.root.rglob("*.wad")):
        for lump, midi, digest in wad.music_lumps(wad_path.read_bytes(), name=wad_path.name):
            label = f"{wad_path.stem}:{lump}"
            if is_reserved_midi(digest):
                excluded.append(label)
                continue
            if digest in seen:
                continue
            seen.add(digest)
            tracks.append(MidiTrack(label.replace(":", "_"), midi, digest,
                                    origin_of(pkg, f"{wad_path.name}:{lump}")))
    return tracks, excluded
