"""Training packs: a whole corpus (or a budgeted excerpt of it) in one small file.

A GPU run can carry a pack (~60 MiB) instead of a corpus folder; ``data.root`` may point at
one. Layout::

    b"UWPACK01" | uint64 LE header length | header (UTF-8 JSON) | FLAC blobs

The header holds ``meta`` (the corpus's ``dataset.json`` plus ``sample_rate``/``channels`` of
the pack) and ``entries``: ``{split, kind ("stem"|"speech"|"noise"), item, name, offset, size,
frames, channels}``; offsets are relative to the end of the header. Each blob is a 16-bit FLAC
file at the pack's rate. ``write_pack`` packs the validation items (centre excerpts of at most
30 s, at most an eighth of the budget), then the training items in a seeded random order (speech and noise interleaved for
denoise corpora), each cut to an excerpt: ``seconds_per_track`` long, or by default what is
left of the split's budget shared among the items still to come (at least 5 s), so that the
budget is spread over every track rather than spent on the first ones.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..audio.convert import resample
from ..data.dataset import Clip, Corpus, Track, open_corpus, read_meta
from ..errors import UnweaveError

MAGIC = b"UWPACK01"
MIN_SECONDS = 5.0  # shortest excerpt worth packing (several training segments)
VALID_SECONDS = 30.0  # longest validation excerpt (training validates on the centre 10 s)


def _encode(wav: np.ndarray, sample_rate: int) -> bytes:
    """``wav: (C, T)`` float32 -> 16-bit FLAC bytes."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(wav.T, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


Unit = tuple[str, str, dict[str, Clip]]  # (kind, item, {name: clip}): a track or one clip


def _units(corpus: Corpus, split: str) -> list[list[Unit]]:
    """Packable units of a split, one list per kind (speech and noise for denoise corpora)."""
    if corpus.is_denoise:
        return [[(kind, Path(c.path).stem, {Path(c.path).stem: c})
                 for c in getattr(corpus, kind).get(split, [])] for kind in ("speech", "noise")]
    return [[("stem", t.name, t.stems) for t in corpus.tracks.get(split, [])]]


def _order(groups: list[list[Unit]], rng: np.random.Generator, cap: int) -> list[Unit]:
    """Shuffle each kind, then merge them so that every prefix holds about as many seconds of
    each kind (a budget cut keeps noise as well as speech); ``cap`` = frames kept per unit."""
    queues = [[g[i] for i in rng.permutation(len(g))] for g in groups]
    seconds = [0] * len(queues)
    out: list[Unit] = []
    while any(queues):
        k = min((i for i, q in enumerate(queues) if q), key=lambda i: seconds[i])
        unit = queues[k].pop(0)
        seconds[k] += min(cap, max(c.frames for c in unit[2].values()))
        out.append(unit)
    return out


def write_pack(corpus_dir: str | Path, out_path: str | Path, *, max_mb: float = 60.0,
               sample_rate: int | None = None, channels: int | None = None,
               seconds_per_track: float | None = None, seed: int = 0) -> dict:
    """Write a training pack of ``corpus_dir`` under ``max_mb`` MiB; returns a summary dict."""
    corpus_dir, out_path = Path(corpus_dir), Path(out_path)
    if not corpus_dir.is_dir():
        raise UnweaveError(f"{corpus_dir}: corpus folder not found")
    meta = read_meta(corpus_dir)
    sample_rate = int(sample_rate or meta.get("sample_rate") or 44100)
    corpus = open_corpus(corpus_dir, sample_rate, memory_mb=0)  # index only, read by window
    channels = int(channels or meta.get("channels") or 0)
    if not channels:
        clips = [c for s in corpus.tracks.values() for t in s for c in t.stems.values()]
        clips += [c for s in corpus.speech.values() for c in s]
        channels = max((c.channels for c in clips), default=1)
    budget = int(max_mb * 2**20 * 0.98) - 4096
    groups = {s: _units(corpus, s) for s in ("train", "valid")}
    if not any(groups["train"]):
        raise UnweaveError(f"{corpus_dir}: no training items found")
    rng = np.random.default_rng(seed)
    # FLAC bytes per second, first from one probe unit, then from what was packed so far.
    kind, item, clips = next(g for g in groups["train"] if g)[0]
    probe = min(max(c.frames for c in clips.values()), 10 * sample_rate)
    size = sum(len(_encode(c.read(0, probe, channels), sample_rate)) for c in clips.values())
    rate = max(size / (probe / sample_rate), 1.0)
    count = sum(len(g) for split in groups.values() for g in split)
    nominal = seconds_per_track or max(MIN_SECONDS, budget / rate / count)
    units = {s: _order(g, rng, int(nominal * sample_rate)) for s, g in groups.items()}
    entries, blobs, used = [], [], 0
    kept = {"train": 0, "valid": 0}
    packed_seconds = {"train": 0.0, "valid": 0.0}
    packed_bytes = 0
    for split, limit in (("valid", budget // 8), ("train", budget)):
        split_used, todo = 0, units[split]
        for n, (kind, item, clips) in enumerate(todo):
            room = min(limit - split_used, budget - used)
            if room <= 0:
                break
            # Without a fixed excerpt length, share what is left among the units still to come.
            seconds = seconds_per_track or max(MIN_SECONDS, room / (len(todo) - n) / rate)
            if split == "valid":
                seconds = min(seconds, VALID_SECONDS)
            frames = max(c.frames for c in clips.values())
            length = min(frames, int(seconds * sample_rate))
            start = (frames - length) // 2 if split == "valid" else int(
                rng.integers(0, frames - length + 1))
            encoded = [(name, _encode(c.read(start, length, channels), sample_rate))
                       for name, c in clips.items()]
            size = sum(len(b) for _, b in encoded)
            if size > room:
                continue
            for name, blob in encoded:
                entries.append({"split": split, "kind": kind, "item": item, "name": name,
                                "offset": used, "size": len(blob), "frames": length,
                                "channels": channels})
                blobs.append(blob)
                used += len(blob)
            split_used += size
            kept[split] += 1
            packed_seconds[split] += length / sample_rate
            packed_bytes += size
            rate = max(packed_bytes / sum(packed_seconds.values()), 1.0)
    if not kept["train"]:
        raise UnweaveError(f"{out_path}: not even one training item fits in {max_mb} MiB")
    header = json.dumps({"version": 1, "meta": {**meta, "sample_rate": sample_rate,
                                                "channels": channels},
                         "entries": entries}).encode()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack("<Q", len(header)) + header)
        for blob in blobs:
            f.write(blob)
    tmp.replace(out_path)
    return {"path": str(out_path), "bytes": out_path.stat().st_size, "sample_rate": sample_rate,
            "channels": channels,
            "train_items": kept["train"], "train_total": len(units["train"]),
            "train_minutes": round(packed_seconds["train"] / 60, 2),
            "valid_items": kept["valid"], "valid_total": len(units["valid"]),
            "valid_minutes": round(packed_seconds["valid"] / 60, 2)}


def read_pack_header(path: str | Path) -> tuple[dict, int]:
    """``(header, data_offset)`` of a pack file; raises ``UnweaveError`` if it is not one."""
    with open(path, "rb") as f:
        head = f.read(16)
        if len(head) < 16 or head[:8] != MAGIC:
            raise UnweaveError(f"{path}: not an unweave training pack")
        (length,) = struct.unpack("<Q", head[8:])
        try:
            header = json.loads(f.read(length))
        except ValueError:
            raise UnweaveError(f"{path}: training pack header is corrupt") from None
    return header, 16 + length


def read_pack(path: str | Path, sample_rate: int) -> Corpus:
    """Decode a pack into an in-memory ``Corpus`` at ``sample_rate`` (int16, or float16 when
    resampled)."""
    header, base = read_pack_header(path)
    pack_rate = int(header["meta"]["sample_rate"])
    corpus = Corpus(root=str(path), meta=dict(header["meta"]))
    tracks: dict[str, dict[str, dict[str, Clip]]] = {}
    with open(path, "rb") as f:
        for e in header["entries"]:
            f.seek(base + e["offset"])
            blob = f.read(e["size"])
            if len(blob) != e["size"]:
                raise UnweaveError(f"{path}: training pack is truncated")
            data = sf.read(io.BytesIO(blob), dtype="int16", always_2d=True)[0]  # (T, C)
            if pack_rate != sample_rate:
                wav = torch.from_numpy(data.T.astype(np.float32) / 32768)
                data = resample(wav, pack_rate, sample_rate).numpy().T.astype(np.float16)
            clip = Clip.from_array(np.ascontiguousarray(data), sample_rate,
                                   f"{path}:{e['split']}/{e['item']}/{e['name']}")
            if e["kind"] == "stem":
                tracks.setdefault(e["split"], {}).setdefault(e["item"], {})[e["name"]] = clip
            else:
                getattr(corpus, e["kind"]).setdefault(e["split"], []).append(clip)
    for split, items in tracks.items():
        corpus.tracks[split] = [Track(name, stems) for name, stems in items.items()]
    return corpus


__all__ = ["MAGIC", "read_pack", "read_pack_header", "write_pack"]
