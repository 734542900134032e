"""Shared pieces of the corpus builders: audio conversion, loudness, atomic WAV writes,
deterministic splits, and the corpus writer (layout, manifest, dataset.json).

Corpus layout (the training and evaluation code rely on it)::

    DIR/{train,valid}/<item>/<stem>.wav     separation tasks (plus mixture.wav)
    DIR/{train,valid}/{speech,noise}/<file>.wav   denoise pools (mixed on the fly)
    DIR/manifest.csv, DIR/manifest.json, DIR/dataset.json
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import AudioWriteError, UnweaveError
from ..fileio import TEMP_GLOB, atomic_path, write_text_atomic

SPLITS = ("train", "valid")
ORIGINS_FILE = ".origins.json"  # per item folder: provenance of each stem, written last
MANIFEST_FIELDS = ("split", "item", "stem", "path", "duration", "sha256", "package", "version",
                   "license", "file")


# ----------------------------------------------------------------------------- audio helpers
def convert(audio: np.ndarray, sample_rate: int, target_rate: int, channels: int) -> np.ndarray:
    """Resample and set the channel count: ``(C, T) -> (channels, T')`` float32."""
    import soxr

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.shape[0] != channels:
        audio = audio.mean(axis=0, keepdims=True) if channels == 1 else np.repeat(
            audio.mean(axis=0, keepdims=True), channels, axis=0)
    if sample_rate != target_rate and audio.shape[1] > 0:
        audio = soxr.resample(audio.T, sample_rate, target_rate, quality="HQ").T
    return np.ascontiguousarray(audio, dtype=np.float32)


def loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (EBU R128 / BS.1770, LUFS) of ``(C, T)``; RMS-based for < 0.4 s."""
    import pyloudnorm

    if audio.shape[1] >= int(0.4 * sample_rate):
        value = pyloudnorm.Meter(sample_rate).integrated_loudness(audio.T.astype(np.float64))
        if np.isfinite(value):
            return float(value)
    rms = float(np.sqrt(np.mean(np.square(audio), dtype=np.float64)))
    return 20 * np.log10(max(rms, 1e-9)) - 0.691


def normalize_loudness(audio: np.ndarray, sample_rate: int, target_lufs: float,
                       peak: float = 0.99) -> np.ndarray:
    """Scale ``(C, T)`` to ``target_lufs``, then down (never up) so that ``|x| <= peak``."""
    current = loudness(audio, sample_rate)
    if current < -70:  # silence: leave as is
        return audio
    out = audio * np.float32(10 ** ((target_lufs - current) / 20))
    top = float(np.abs(out).max(initial=0.0))
    if top > peak:
        out *= np.float32(peak / top)
    return out


def trim_silence(audio: np.ndarray, sample_rate: int, threshold_db: float = -45.0,
                 pad_seconds: float = 0.05) -> np.ndarray:
    """Cut leading/trailing parts ``threshold_db`` below the peak: (C, T) -> (C, T')."""
    frame = max(1, int(0.01 * sample_rate))
    n = audio.shape[1] // frame
    if n == 0:
        return audio
    energy = np.square(audio[:, :n * frame]).reshape(audio.shape[0], n, frame).mean(axis=(0, 2))
    level = 10 * np.log10(energy + 1e-12)
    active = np.flatnonzero(level > level.max() + threshold_db)
    if active.size == 0:
        return audio[:, :0]
    pad = int(pad_seconds * sample_rate)
    start = max(0, active[0] * frame - pad)
    stop = min(audio.shape[1], (active[-1] + 1) * frame + pad)
    return audio[:, start:stop]


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """(C, T) float -> (T, C) int16 (clipped)."""
    return np.clip(np.round(audio.T * 32768.0), -32768, 32767).astype(np.int16)


def quantize_stems(stems: dict[str, np.ndarray], peak: float = 0.98) -> dict[str, np.ndarray]:
    """Stems {name: (C, T) float} -> int16 ``(T, C)`` stems plus their exact sum ``mixture``.

    All stems share one gain, lowered (never raised) so that the mixture and every stem peak
    at most ``peak``; the mixture is the integer sum of the quantized stems, so the written
    stems sum to the written mixture exactly.
    """
    total = sum(stems.values())
    top = max([float(np.abs(total).max(initial=0.0))]
              + [float(np.abs(s).max(initial=0.0)) for s in stems.values()])
    gain = min(1.0, peak / top) if top > 0 else 1.0
    out = {name: to_pcm16(audio * np.float32(gain)) for name, audio in stems.items()}
    mixture = sum(q.astype(np.int32) for q in out.values())
    out["mixture"] = np.clip(mixture, -32768, 32767).astype(np.int16)
    return out


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write ``(C, T)`` float (or ``(T, C)`` int16) as 16-bit WAV, atomically."""
    data = audio if audio.dtype == np.int16 else to_pcm16(audio)
    try:
        with atomic_path(path) as tmp:
            sf.write(tmp, data, sample_rate, subtype="PCM_16", format="WAV")
    except Exception as exc:
        raise AudioWriteError(f"{path}: cannot write ({exc})") from exc



# Python packages whose versions decide a corpus's audio (rendering, resampling, re-pitching,
# dithering); recorded in dataset.json so two builds that differ can be told apart
RENDER_PACKAGES = ("numpy", "scipy", "soxr", "soundfile", "pyfluidsynth", "pyworld",
                   "pyworld-prebuilt", "av")


def tool_versions() -> dict[str, str]:
    """Versions of the installed packages (and of libfluidsynth) a corpus build depends on."""
    from importlib import metadata

    versions = {}
    for name in RENDER_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    from .render import libfluidsynth_version

    library = libfluidsynth_version()
    if library:
        versions["libfluidsynth"] = library
    return versions


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def split_for(group: str, valid_fraction: float = 0.1, salt: str = "unweave") -> str:
    """Deterministic split of a whole group (track, speaker, file) -> "train" | "valid"."""
    value = int(hashlib.sha1(f"{salt}:{group}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "valid" if value < valid_fraction else "train"


def rng_for(*keys) -> np.random.Generator:
    """A generator seeded from the given keys (stable across runs and machines)."""
    seed = int(hashlib.sha1(":".join(map(str, keys)).encode()).hexdigest()[:16], 16)
    return np.random.default_rng(seed)


def safe_name(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return keep.strip("._") or "item"


# ----------------------------------------------------------------------------- provenance
@dataclass(frozen=True)
class Origin:
    """Where a piece of audio came from (one Debian package member, or generated)."""

    package: str
    version: str
    license: str
    file: str


def join_origins(origins: list[Origin]) -> dict[str, str]:
    """Several origins -> one manifest row's fields (unique values joined by ';')."""
    def unique(values):
        return ";".join(dict.fromkeys(values))
    return {"package": unique(o.package for o in origins),
            "version": unique(o.version for o in origins),
            "license": unique(o.license for o in origins),
            "file": unique(o.file for o in origins)}


# ----------------------------------------------------------------------------- the writer
@dataclass
class CorpusWriter:
    """Writes items of one corpus, skipping finished ones, and the manifest at the end."""

    out: Path
    task: str
    sample_rate: int
    channels: int
    sources: tuple[str, ...]
    limit_minutes: float | None = None
    rows: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in SPLITS})
    items: dict[str, int] = field(default_factory=lambda: {s: 0 for s in SPLITS})
    packages: dict[str, dict] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    failures: list[str] = field(default_factory=list)  # clips that could not be decoded
    # (k, n): a worker of a parallel build writes only the items whose key hashes to k of n,
    # and no manifest (the final pass over all items writes it)
    shard: tuple[int, int] | None = None

    def __post_init__(self):
        self.out = Path(self.out)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a file in the way, no permission, ...
            raise UnweaveError(f"{self.out}: cannot make the corpus folder ({e.strerror})") from e
        if self.shard is not None:
            k, n = self.shard
            if not 0 <= k < n:
                raise ValueError(f"bad shard {self.shard}: need 0 <= k < n")
            if self.limit_minutes is not None:
                raise UnweaveError("a sharded (parallel) build cannot take a minute limit")

    def mine(self, key: str) -> bool:
        """True when this writer (or this shard of a parallel build) writes item ``key``."""
        if self.shard is None:
            return True
        k, n = self.shard
        return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) % n == k

    def progress_args(self, desc: str) -> dict:
        """tqdm ``desc``/``position``: one bar per shard of a parallel build."""
        if self.shard is None:
            return {"desc": desc}
        return {"desc": f"{desc} {self.shard[0] + 1}/{self.shard[1]}", "position": self.shard[0]}

    # limits: the valid split gets at most a fifth of the budget so both splits fill up
    def full(self, split: str) -> bool:
        if self.limit_minutes is None:
            return False
        budget = self.limit_minutes * 60 * (0.2 if split == "valid" else 0.8)
        return self.seconds[split] >= budget

    def all_full(self) -> bool:
        return all(self.full(s) for s in SPLITS)

    def done(self, split: str, item: str) -> bool:
        """True when an item folder is complete (its ``.origins.json`` is written last)."""
        return (self.out / split / item / ORIGINS_FILE).is_file()

    def reuse(self, split: str, item: str) -> None:
        """Record the rows of a finished item without recomputing it."""
        folder = self.out / split / item
        saved = json.loads((folder / ORIGINS_FILE).read_text())
        origins = {stem: [Origin(**o) for o in items] for stem, items in saved.items()}
        self.write(split, item, {stem: None for stem in origins}, origins)

    def write(self, split: str, item: str, stems: dict[str, np.ndarray],
              origins: dict[str, list[Origin]], *, folder: Path | None = None) -> None:
        """Write ``stems`` {stem: (C, T) float | (T, C) int16 | None = reuse} and record rows.

        ``folder`` overrides ``out/split/item`` (the denoise pools use ``out/split/<pool>``,
        with the stem as the file name).
        """
        folder = folder if folder is not None else self.out / split / item
        if folder == self.out / split / item and any(a is not None for a in stems.values()):
            # an earlier build stopped while writing this item (a terminated shard, Ctrl-C)
            # may have left its temporary files (".tmp-*": as named before unweave.fileio);
            # this writer alone owns the item
            for stale in [*folder.glob(".tmp-*"), *folder.glob(TEMP_GLOB)]:
                stale.unlink(missing_ok=True)
        duration = 0.0
        for stem, audio in stems.items():
            path = folder / f"{stem}.wav"
            if audio is not None:  # None: reuse the file already written
                write_wav(path, audio, self.sample_rate)
            self._record(split, item, stem, path, origins.get(stem, []))
            duration = max(duration, self.rows[-1]["duration"])
        if folder == self.out / split / item and not (folder / ORIGINS_FILE).is_file():
            write_text_atomic(folder / ORIGINS_FILE, json.dumps(
                {stem: [asdict(o) for o in origins.get(stem, [])] for stem in stems}))
        self.seconds[split] += duration
        self.items[split] += 1

    def _record(self, split, item, stem, path: Path, origins: list[Origin]) -> None:
        info = sf.info(str(path))
        for o in origins:
            self.packages.setdefault(o.package, {"version": o.version, "license": o.license})
        self.rows.append({
            "split": split, "item": item, "stem": stem,
            "path": str(path.relative_to(self.out)),
            "duration": round(info.frames / info.samplerate, 3),
            "sha256": sha256_file(path), **join_origins(origins),
        })

    def finish(self, extra: dict | None = None) -> dict:
        """Write manifest.csv, manifest.json and dataset.json -> the dataset.json content.

        A shard of a parallel build writes nothing and returns its counts and failures.
        """
        import io

        if self.shard is not None:
            return {"counts": dict(self.items), "skipped_sources": self.failures}

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.out / "manifest.csv", buffer.getvalue())
        write_text_atomic(self.out / "manifest.json", json.dumps(self.rows, indent=1))
        from .. import __version__

        info = {
            "task": self.task, "sample_rate": self.sample_rate, "channels": self.channels,
            "sources": list(self.sources),
            "counts": dict(self.items),
            "minutes": {s: round(v / 60, 2) for s, v in self.seconds.items()},
            "packages": self.packages,
            "limit_minutes": self.limit_minutes,
            "build_seconds": round(time.time() - self.started, 1),
            "unweave_version": __version__,
            "tools": tool_versions(),
            "skipped_sources": self.failures,
            **(extra or {}),
        }
        write_text_atomic(self.out / "dataset.json", json.dumps(info, indent=2))
        return info
