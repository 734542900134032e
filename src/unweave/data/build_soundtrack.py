"""``soundtrack`` corpus (Divide-and-Remaster-like): speech, music and effects stems.

Items are 30 s excerpts of real soundtrack music (0 A.D., Wesnoth), with voice acting (Flight
of the Amazon Queen, Beneath a Steel Sky) placed as a dialogue track and effects (0 A.D.
ambiences as beds, 0 A.D. game effects and Sonic Pi one-shots as events). Each source is
loudness-normalised, then set to a DnR-like level: speech -17, music -24, effects -21 LUFS
(+-3/3/4 dB); each class is sometimes absent. Stems are written with ``mixture.wav`` = their
exact sum. Train/valid split: by music track, speech dialogue group, and effect file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import debs, sources
from .common import (
    CorpusWriter,
    convert,
    normalize_loudness,
    quantize_stems,
    rng_for,
    safe_name,
    split_for,
    trim_silence,
)

SAMPLE_RATE, CHANNELS = 44100, 2
ITEM_SECONDS = 30.0
PACKAGES = ("flight-of-the-amazon-queen", "beneath-a-steel-sky", "0ad-data",
            "wesnoth-1.16-music", "sonic-pi-samples")
LEVELS = {"speech": (-17.0, 3.0), "music": (-24.0, 3.0), "sfx": (-21.0, 4.0)}
ABSENT = {"speech": 0.05, "music": 0.08, "sfx": 0.05}
VALID_FRACTION = 0.12


def _level(rng, stem: str) -> float:
    centre, spread = LEVELS[stem]
    return centre + rng.uniform(-spread, spread)


def _load(clip, failures: list[str], channels=CHANNELS) -> np.ndarray:
    """Decode and convert a clip -> (channels, T); (channels, 0) if it cannot be decoded."""
    loaded = clip.try_load(failures)
    if loaded is None:
        return np.zeros((channels, 0), np.float32)
    return convert(loaded[0], loaded[1], SAMPLE_RATE, channels)


def _place(track: np.ndarray, audio: np.ndarray, start: int) -> None:
    """Add ``audio`` (C, t) into ``track`` (C, T) at ``start``, cut at the end."""
    stop = min(track.shape[1], start + audio.shape[1])
    if stop > start:
        track[:, start:stop] += audio[:, :stop - start]


def speech_track(rng, pool, length: int, used: list, failures: list) -> np.ndarray:
    """Dialogue: clips one after another with 0.3-3 s gaps -> (C, length)."""
    track = np.zeros((CHANNELS, length), np.float32)
    t = int(rng.uniform(0, 3) * SAMPLE_RATE)
    attempts = 0
    while t < length - SAMPLE_RATE // 2 and attempts < 100:
        attempts += 1
        clip = pool[rng.integers(len(pool))]
        audio = trim_silence(_load(clip, failures), SAMPLE_RATE)
        if audio.shape[1] < SAMPLE_RATE // 5:
            continue
        audio = normalize_loudness(audio, SAMPLE_RATE, _level(rng, "speech"))
        _place(track, audio, t)
        used.append(clip.origin)
        t += audio.shape[1] + int(rng.uniform(0.3, 3.0) * SAMPLE_RATE)
    return track


def sfx_track(rng, beds, events, length: int, used: list, failures: list) -> np.ndarray:
    """Effects: an optional looped ambience bed plus Poisson-many events -> (C, length)."""
    track = np.zeros((CHANNELS, length), np.float32)
    if beds and rng.random() < 0.6:
        clip = beds[rng.integers(len(beds))]
        bed = _load(clip, failures)
        if bed.shape[1] > SAMPLE_RATE // 2:
            reps = int(np.ceil((length + bed.shape[1]) / bed.shape[1]))
            bed = np.tile(bed, (1, reps))
            offset = int(rng.integers(bed.shape[1] - length))
            bed = normalize_loudness(bed[:, offset:offset + length], SAMPLE_RATE,
                                     _level(rng, "sfx") - 6)
            track += bed
            used.append(clip.origin)
    for _ in range(max(1, rng.poisson(4))):
        clip = events[rng.integers(len(events))]
        audio = trim_silence(_load(clip, failures), SAMPLE_RATE, threshold_db=-60)
        if audio.shape[1] == 0:
            continue
        audio = audio[:, :int(8 * SAMPLE_RATE)]
        audio = normalize_loudness(audio, SAMPLE_RATE, _level(rng, "sfx"))
        _place(track, audio, int(rng.integers(max(1, length - audio.shape[1] // 2))))
        used.append(clip.origin)
    return track


def _pools(packages) -> dict[str, dict[str, list]]:
    music = sources.zero_ad_clips(packages["0ad-data"], "music")
    music += sources.file_clips(packages["wesnoth-1.16-music"], "*.ogg", exclude=("silence",))
    speech = sources.queen_clips(packages["flight-of-the-amazon-queen"])
    speech += sources.sky_clips(packages["beneath-a-steel-sky"])
    beds = sources.zero_ad_clips(packages["0ad-data"], "ambient")
    events = sources.zero_ad_clips(packages["0ad-data"], "sfx")
    events += sources.file_clips(packages["sonic-pi-samples"], "*.flac",
                                 exclude=("ambi_choir", "loop_"))
    pools = {}
    for name, clips in (("music", music), ("speech", speech), ("beds", beds),
                        ("events", events)):
        pools[name] = {s: [c for c in clips if split_for(c.group, VALID_FRACTION) == s]
                       for s in ("train", "valid")}
    return pools


def build(out: str | Path, *, cache=None, limit_minutes: float | None = None,
          progress: bool = True, shard: tuple[int, int] | None = None) -> dict:
    """Build the soundtrack corpus in ``out`` -> dataset.json content (``shard``: see
    CorpusWriter; a music track and its items belong to one shard)."""
    packages = debs.fetch(list(PACKAGES), cache)
    writer = CorpusWriter(Path(out), "soundtrack", SAMPLE_RATE, CHANNELS,
                          ("speech", "music", "sfx"), limit_minutes, shard=shard)
    pools = _pools(packages)
    length = int(ITEM_SECONDS * SAMPLE_RATE)
    tracks = [(s, c) for s in ("train", "valid") for c in pools["music"][s]]
    order = rng_for("soundtrack-order").permutation(len(tracks))
    for index in tqdm(order, **writer.progress_args("soundtrack"), disable=not progress):
        split, clip = tracks[index]
        if writer.all_full():
            break
        if writer.full(split):
            continue
        prefix = safe_name(clip.name)
        if not writer.mine(prefix):
            continue
        if writer.done(split, f"{prefix}_000"):  # resume: reuse the finished items of a track
            k = 0
            while writer.done(split, f"{prefix}_{k:03d}"):
                writer.reuse(split, f"{prefix}_{k:03d}")
                k += 1
            continue
        music = normalize_loudness(_load(clip, writer.failures), SAMPLE_RATE, LEVELS["music"][0])
        music = trim_silence(music, SAMPLE_RATE, threshold_db=-50)
        if music.shape[1] < 5 * SAMPLE_RATE:
            continue
        for k in range(max(1, round(music.shape[1] / length))):
            if writer.full(split):
                break
            item = f"{prefix}_{k:03d}"
            rng = rng_for("soundtrack", split, item)
            used = {"speech": [], "music": [clip.origin], "sfx": []}
            chunk = np.zeros((CHANNELS, length), np.float32)
            piece = music[:, k * length:(k + 1) * length]
            chunk[:, :piece.shape[1]] = piece
            stems = {
                "speech": speech_track(rng, pools["speech"][split], length, used["speech"],
                                       writer.failures),
                "music": chunk * np.float32(10 ** ((_level(rng, "music") + 24) / 20)),
                "sfx": sfx_track(rng, pools["beds"][split], pools["events"][split], length,
                                 used["sfx"], writer.failures),
            }
            for stem, p in ABSENT.items():
                if rng.random() < p:
                    stems[stem][:] = 0
                    used[stem] = []
            writer.write(split, item, quantize_stems(stems),
                         {**used, "mixture": [o for v in used.values() for o in v]})
    writer.failures[:] = list(dict.fromkeys(writer.failures))
    return writer.finish({"item_seconds": ITEM_SECONDS, "levels_lufs": LEVELS})
