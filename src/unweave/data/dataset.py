"""Training datasets: random segments of stems corpora and speech + noise mixtures.

Corpus layouts (built by ``unweave data build``):

- stems: ``ROOT/{train,valid}/<item>/<stem>.wav`` (+ optional ``mixture.wav``, ignored: the
  training mixture is always the sum of the stems) and ``ROOT/dataset.json`` with ``task``,
  ``sample_rate``, ``channels``, ``sources``;
- denoise: ``ROOT/{train,valid}/speech/*.wav`` and ``ROOT/{train,valid}/noise/*.wav``
  (``dataset.json`` with ``"task": "denoise"``, or detected from the layout);
- a training pack file (``unweave train pack``), read by ``unweave.train.pack``.

Loading is cheap per example: when the decoded corpus fits in ``memory_mb`` every clip is
decoded once into int16 (16-bit PCM sources) or float16 arrays; otherwise windows are read with
soundfile seeks. Each example is a pure function of ``(seed, index)``, so a run resumes exactly
and DDP ranks draw disjoint indices. Items: ``stems: (S, C, T)`` float32, ``S`` = ``sources``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..audio.convert import convert_channels, resample
from ..errors import UnweaveError
from . import mixing

SPLITS = ("train", "valid")


@dataclass
class Clip:
    """One signal at the training rate: an in-memory ``(T, C)`` array or a file read by window."""

    path: str
    frames: int  # length at ``sample_rate``
    sample_rate: int  # training rate (the file's own rate is ``file_rate``)
    file_rate: int
    channels: int  # the clip's own channel count (``read`` converts)
    data: np.ndarray | None = None  # (T, C) int16 or float16, at ``sample_rate``

    @classmethod
    def from_array(cls, array: np.ndarray, sample_rate: int, name: str = "<memory>") -> Clip:
        """Wrap a decoded ``(T, C)`` int16/float16 array already at ``sample_rate``."""
        return cls(path=name, frames=array.shape[0], sample_rate=sample_rate,
                   file_rate=sample_rate, channels=array.shape[1], data=array)

    @classmethod
    def from_file(cls, path: Path, sample_rate: int, preload: bool) -> Clip:
        info = sf.info(str(path))
        frames = info.frames if info.samplerate == sample_rate else (
            (2 * info.frames * sample_rate + info.samplerate) // (2 * info.samplerate))
        clip = cls(path=str(path), frames=frames, sample_rate=sample_rate,
                   file_rate=info.samplerate, channels=info.channels)
        if preload:
            clip.data = _decode(path, info, sample_rate)
        return clip

    def read(self, start: int, length: int, channels: int) -> np.ndarray:
        """Samples ``[start, start + length)`` as float32 ``(channels, length)``, zero-padded."""
        out = np.zeros((length, self.channels), dtype=np.float32)
        stop = min(start + length, self.frames)
        if stop > start:
            out[: stop - start] = self._window(start, stop)
        wav = torch.from_numpy(np.ascontiguousarray(out.T))
        return convert_channels(wav, channels).numpy()

    def _window(self, start: int, stop: int) -> np.ndarray:
        if self.data is not None:
            part = self.data[start:stop]
            scale = 1 / 32768 if part.dtype == np.int16 else 1.0
            return part.astype(np.float32) * scale
        if self.file_rate == self.sample_rate:
            return sf.read(self.path, start=start, stop=stop, dtype="float32", always_2d=True)[0]
        # A file at another rate, read by window: read a wider window that starts on a
        # sample shared by both rates (so the grids align exactly), resample, cut the margins.
        step = self.file_rate // math.gcd(self.file_rate, self.sample_rate)
        ratio = self.file_rate / self.sample_rate
        margin = 256  # file samples each side: more than the resampler's transient
        f0 = max(0, int(start * ratio - margin) // step * step)
        f1 = int(np.ceil(stop * ratio)) + margin
        raw = sf.read(self.path, start=f0, stop=f1, dtype="float32", always_2d=True)[0]
        res = resample(torch.from_numpy(raw.T.copy()), self.file_rate, self.sample_rate).numpy().T
        first = start - f0 * self.sample_rate // self.file_rate  # exact: f0 is on the shared grid
        res = res[first: first + stop - start]
        if res.shape[0] < stop - start:
            res = np.pad(res, ((0, stop - start - res.shape[0]), (0, 0)))
        return res


def _decode(path: Path, info, sample_rate: int) -> np.ndarray:
    """Whole file as (T, C): int16 for 16-bit PCM at the training rate, float16 otherwise."""
    if info.subtype == "PCM_16" and info.samplerate == sample_rate:
        return sf.read(str(path), dtype="int16", always_2d=True)[0]
    wav = sf.read(str(path), dtype="float32", always_2d=True)[0]
    if info.samplerate != sample_rate:
        wav = resample(torch.from_numpy(wav.T.copy()), info.samplerate, sample_rate).numpy().T
    return np.ascontiguousarray(wav.astype(np.float16))


@dataclass
class Track:
    name: str
    stems: dict[str, Clip]

    @property
    def frames(self) -> int:
        return max((c.frames for c in self.stems.values()), default=0)


@dataclass
class Corpus:
    """An opened corpus: ``tracks[split]`` (stems) or ``speech[split]`` + ``noise[split]``."""

    root: str
    meta: dict
    tracks: dict[str, list[Track]] = field(default_factory=dict)
    speech: dict[str, list[Clip]] = field(default_factory=dict)
    noise: dict[str, list[Clip]] = field(default_factory=dict)

    @property
    def is_denoise(self) -> bool:
        return self.meta.get("task") == "denoise"


def read_meta(root: Path) -> dict:
    meta_path = root / "dataset.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if "task" not in meta and (root / "train" / "speech").is_dir() and (
            root / "train" / "noise").is_dir():
        meta["task"] = "denoise"
    return meta


def open_corpus(root: str | Path, sample_rate: int, *, memory_mb: float = 2048.0,
                splits: tuple[str, ...] = SPLITS) -> Corpus:
    """Index (and, when it fits in ``memory_mb``, decode) a corpus folder or pack file."""
    root = Path(root)
    if root.is_file():
        from ..train.pack import read_pack

        return read_pack(root, sample_rate)
    if not root.is_dir():
        raise UnweaveError(f"{root}: corpus not found (a folder or a training pack)")
    meta = read_meta(root)
    # Hidden files are a builder's temporary outputs (".tmp-*.wav"), not corpus audio.
    wavs = {s: sorted(f for f in (root / s).glob("*/*.wav")
                      if not f.name.startswith(".") and not f.parent.name.startswith("."))
            for s in splits}
    total = 0
    for files in wavs.values():
        for f in files:
            info = sf.info(str(f))
            total += info.frames * sample_rate / info.samplerate * info.channels * 2
    preload = total <= memory_mb * 2**20
    corpus = Corpus(root=str(root), meta=meta)
    for split, files in wavs.items():
        if meta.get("task") == "denoise":
            corpus.speech[split] = [Clip.from_file(f, sample_rate, preload)
                                    for f in files if f.parent.name == "speech"]
            corpus.noise[split] = [Clip.from_file(f, sample_rate, preload)
                                   for f in files if f.parent.name == "noise"]
            continue
        by_item: dict[str, dict[str, Clip]] = {}
        for f in files:
            if f.stem != "mixture":
                by_item.setdefault(f.parent.name, {})[f.stem] = Clip.from_file(
                    f, sample_rate, preload)
        corpus.tracks[split] = [Track(n, stems) for n, stems in sorted(by_item.items())]
    return corpus


def _spread(items: list, count: int) -> list:
    """``count`` items evenly spaced over ``items`` (all of them if there are fewer)."""
    if count >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, num=max(count, 1)).round().astype(int)]


def _as_corpus(root, sample_rate: int, memory_mb: float) -> Corpus:
    return root if isinstance(root, Corpus) else open_corpus(root, sample_rate,
                                                             memory_mb=memory_mb)


FILL_TRIES = 4
SILENT_RMS = 1e-3  # -60 dBFS


def _silent(window: np.ndarray) -> bool:
    return float(np.sqrt(np.mean(np.square(window, dtype=np.float64)))) < SILENT_RMS


class StemsDataset(torch.utils.data.Dataset):
    """Random ``segment_seconds`` windows of the stems of a split: item ``(S, C, T)`` float32.

    Args:
        root: corpus folder, pack file, or an opened ``Corpus``.
        split: "train" or "valid".
        sources: stems to return, in order (default: ``dataset.json`` sources).
        segment_seconds: window length in seconds; ``extra_length`` samples are added (room
            for time-shift / speed augmentation).
        remix: probability that each stem of an example comes from a different random track.
        fill_silent: probability that a stem silent in its window (under -60 dBFS RMS: a song
            without drums, a song's intro) is drawn instead from another random track, at a
            random offset (up to ``FILL_TRIES`` tries), so that a corpus with some incomplete
            songs still gives examples with every stem.
        fill_sources: the stems ``fill_silent`` applies to (empty: all).
        seed: base seed; item ``i`` depends only on ``(seed, i)``.
        size: nominal length (default: about one pass over the split's audio).
    """

    def __init__(self, root, split: str, sources: tuple[str, ...] | list[str] | None = None,
                 segment_seconds: float = 4.0, sample_rate: int = 44100, channels: int = 2, *,
                 remix: float = 0.0, fill_silent: float = 0.0, fill_sources=(),
                 extra_length: int = 0, seed: int = 0,
                 memory_mb: float = 2048.0, size: int | None = None) -> None:
        self.corpus = _as_corpus(root, sample_rate, memory_mb)
        self.tracks = self.corpus.tracks.get(split, [])
        if not self.tracks:
            raise UnweaveError(f"{self.corpus.root}: no tracks in split {split!r}")
        found = sorted({s for t in self.tracks for s in t.stems})
        self.sources = tuple(sources or self.corpus.meta.get("sources") or found)
        missing = [s for s in self.sources if s not in found]
        if missing:
            raise UnweaveError(f"{self.corpus.root}: no stem named {', '.join(missing)} in "
                               f"split {split!r} (found: {', '.join(found)})")
        self.split, self.sample_rate, self.channels = split, sample_rate, channels
        self.length = round(segment_seconds * sample_rate) + int(extra_length)
        self.remix, self.seed = float(remix), int(seed)
        if not 0.0 <= fill_silent <= 1.0:
            raise UnweaveError(f"fill_silent must be a probability in [0, 1], got {fill_silent}")
        self.fill_silent = float(fill_silent)
        unknown = sorted(set(fill_sources) - set(self.sources))
        if unknown:
            raise UnweaveError(f"fill_sources: no stem named {', '.join(unknown)} "
                               f"(stems: {', '.join(self.sources)})")
        self.fill_sources = frozenset(fill_sources or self.sources)
        total = sum(t.frames for t in self.tracks)
        self.size = size or max(1, total // max(1, self.length))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, int(index)])
        track = int(rng.integers(len(self.tracks)))
        choice = mixing.remix_choice(rng, track, len(self.tracks), len(self.sources), self.remix)
        same = len(set(choice)) == 1
        start = mixing.random_offset(rng, self.tracks[track].frames, self.length)
        out = np.zeros((len(self.sources), self.channels, self.length), dtype=np.float32)
        for s, (name, t) in enumerate(zip(self.sources, choice)):
            tr = self.tracks[t]
            if not same:  # incoherent remix: each stem at its own offset
                start = mixing.random_offset(rng, tr.frames, self.length)
            clip = tr.stems.get(name)
            if clip is not None:
                out[s] = clip.read(start, self.length, self.channels)
            if (self.fill_silent and name in self.fill_sources and _silent(out[s])
                    and rng.random() < self.fill_silent):
                self._fill(out[s], name, rng)
        return torch.from_numpy(out)

    def _fill(self, target: np.ndarray, name: str, rng) -> None:
        """Write into ``target`` a window of stem ``name`` from another random track (the first
        of ``FILL_TRIES`` draws that is not silent; left silent when none is)."""
        for _ in range(FILL_TRIES):
            tr = self.tracks[int(rng.integers(len(self.tracks)))]
            clip = tr.stems.get(name)
            if clip is None:
                continue
            start = mixing.random_offset(rng, tr.frames, self.length)
            window = clip.read(start, self.length, self.channels)
            if not _silent(window):
                target[:] = window
                return

    def valid_items(self, max_items: int, segment_seconds: float) -> list[tuple[str, torch.Tensor]]:
        """Deterministic validation examples: the centre ``segment_seconds`` (the whole track
        for 0) of ``max_items`` tracks spread over the sorted list: ``[(name, (S, C, T))]``."""
        items = []
        for tr in _spread(self.tracks, max_items):
            length = tr.frames if segment_seconds <= 0 else min(
                tr.frames, int(segment_seconds * self.sample_rate))
            start = (tr.frames - length) // 2
            stems = np.zeros((len(self.sources), self.channels, length), dtype=np.float32)
            for s, name in enumerate(self.sources):
                if name in tr.stems:
                    stems[s] = tr.stems[name].read(start, length, self.channels)
            items.append((tr.name, torch.from_numpy(stems)))
        return items


class SpeechNoiseDataset(torch.utils.data.Dataset):
    """Clean speech mixed with noise at a random SNR: item ``(2, C, T)`` = (speech, noise).

    Speech shorter than the segment is zero-padded at a random position, noise is looped.
    The pair is scaled so that the mixture RMS is uniform in ``level_db`` (dBFS), without
    peaks above 0.99. Args as ``StemsDataset`` plus ``snr_db`` and ``level_db`` ranges.
    """

    sources = ("speech", "noise")

    def __init__(self, root, split: str, segment_seconds: float = 4.0, sample_rate: int = 16000,
                 channels: int = 1, *, snr_db=(-5.0, 10.0), level_db=(-35.0, -15.0),
                 extra_length: int = 0, seed: int = 0, memory_mb: float = 2048.0,
                 size: int | None = None) -> None:
        self.corpus = _as_corpus(root, sample_rate, memory_mb)
        self.speech = self.corpus.speech.get(split, [])
        self.noise = self.corpus.noise.get(split, [])
        if not self.speech or not self.noise:
            raise UnweaveError(f"{self.corpus.root}: split {split!r} needs speech/*.wav and "
                               f"noise/*.wav (found {len(self.speech)} and {len(self.noise)})")
        self.split, self.sample_rate, self.channels = split, sample_rate, channels
        self.length = round(segment_seconds * sample_rate) + int(extra_length)
        self.snr_db, self.level_db = tuple(snr_db), tuple(level_db)
        self.seed = int(seed)
        total = sum(c.frames for c in self.speech)
        self.size = size or max(1, total // max(1, self.length))

    def __len__(self) -> int:
        return self.size

    def _example(self, rng: np.random.Generator, speech: Clip, noise: Clip, length: int,
                 snr: float, level: float) -> np.ndarray:
        s_start = mixing.random_offset(rng, speech.frames, length)
        s = speech.read(s_start, min(length, speech.frames), self.channels)
        s = mixing.fit_length(rng, s, length, loop=False)
        n_len = min(noise.frames, length)
        n = noise.read(mixing.random_offset(rng, noise.frames, n_len), n_len, self.channels)
        n = mixing.fit_length(rng, n, length, loop=True)
        s, n = mixing.mix_at_snr(s, n, snr)
        return mixing.set_level(np.stack([s, n]), level)

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, int(index)])
        speech = self.speech[int(rng.integers(len(self.speech)))]
        noise = self.noise[int(rng.integers(len(self.noise)))]
        snr, level = rng.uniform(*self.snr_db), rng.uniform(*self.level_db)
        return torch.from_numpy(self._example(rng, speech, noise, self.length, snr, level))

    def valid_items(self, max_items: int, segment_seconds: float) -> list[tuple[str, torch.Tensor]]:
        """Deterministic pairs: ``max_items`` speech clips spread over the (sorted) list, the
        i-th with noise clip i mod #noise at SNRs spread evenly over ``snr_db``; whole clips or
        their first ``segment_seconds`` (padded noise windows are random but seeded)."""
        items = []
        chosen = _spread(self.speech, max_items)
        snrs = np.linspace(*self.snr_db, num=max(len(chosen), 1))
        for i, speech in enumerate(chosen):
            rng = np.random.default_rng([self.seed, 10**6 + i])
            length = speech.frames if segment_seconds <= 0 else min(
                speech.frames, int(segment_seconds * self.sample_rate))
            level = float(np.mean(self.level_db))
            stems = self._example(rng, speech, self.noise[i % len(self.noise)], length,
                                  float(snrs[i]), level)
            items.append((Path(speech.path).stem, torch.from_numpy(stems)))
        return items


def make_dataset(root, split: str, *, task: str | None = None,
                 **kwargs) -> torch.utils.data.Dataset:
    """``SpeechNoiseDataset`` for denoise corpora, ``StemsDataset`` otherwise.

    ``kwargs`` are passed on; the ones a class does not take (``sources``, ``remix`` and the
    ``fill_*`` options for denoise,
    ``snr_db``/``level_db`` for stems) are dropped.
    """
    corpus = _as_corpus(root, kwargs["sample_rate"], kwargs.pop("memory_mb", 2048.0))
    if task == "denoise" or corpus.is_denoise:
        for key in ("sources", "remix", "fill_silent", "fill_sources"):
            kwargs.pop(key, None)
        return SpeechNoiseDataset(corpus, split, **kwargs)
    for key in ("snr_db", "level_db"):
        kwargs.pop(key, None)
    return StemsDataset(corpus, split, **kwargs)
