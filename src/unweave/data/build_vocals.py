"""``vocals`` corpus: pseudo-sung vocals over rendered MIDI accompaniment.

Vocals: real speech (Asterisk en/es/it/ru studio prompts, Flight of the Amazon Queen, Beneath a
Steel Sky) slowed and re-pitched with WORLD to follow the song's lead melody (see
``singing``); one speaker source per song. Accompaniment: the same song's drums, bass and
other stems rendered with FluidSynth (randomised as in ``music4``), melody removed. A vocals
model trained on this is a proxy: there is no real singing here. Split by song, and speech
by speaker/dialogue group (the Russian Asterisk speaker only in valid).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import debs, sources
from .build_music4 import (
    LEVELS,
    PACKAGES,
    SPEECH_PACKAGES,
    VALID_FRACTION,
    pending_songs,
    render_song,
    soundfont_path,
)
from .chorales import chorale_tracks
from .common import (
    CorpusWriter,
    convert,
    loudness,
    quantize_stems,
    split_for,
    trim_silence,
)
from .singing import clip_stream, sing

SAMPLE_RATE, CHANNELS = 44100, 2
SING_RATE = 16000
VALID_SPEAKERS = frozenset({"ru_RU_f_IvrvoiceRU"})


def speech_pools(packages) -> dict[str, dict[str, list]]:
    """{split: {singer: [clips]}}: each Asterisk speaker, Queen and Sky are singers."""
    pools: dict[str, dict[str, list]] = {"train": {}, "valid": {}}
    for name in SPEECH_PACKAGES:
        for clip in sources.asterisk_clips(packages[name]):
            split = "valid" if clip.group in VALID_SPEAKERS else "train"
            pools[split].setdefault(clip.group, []).append(clip)
    for name, clips in (("queen", sources.queen_clips(packages["flight-of-the-amazon-queen"])),
                        ("sky", sources.sky_clips(packages["beneath-a-steel-sky"]))):
        for clip in clips:
            pools[split_for(clip.group, VALID_FRACTION)].setdefault(name, []).append(clip)
    return pools


def _loader(clips, rng, used: list, failures: list):
    def load_next():
        clip = clips[rng.integers(len(clips))]
        loaded = clip.try_load(failures)
        if loaded is None:
            return None
        audio = trim_silence(convert(loaded[0], loaded[1], SING_RATE, 1), SING_RATE)
        if audio.shape[1] < SING_RATE // 4:
            return None
        audio /= max(float(np.abs(audio).max()), 1e-6)
        used.append(clip.origin)
        return audio[0]
    return load_next


def sung_corpus(task: str, out: str | Path, stems: tuple[str, ...], *, cache,
                limit_minutes: float | None, progress: bool, shard: tuple[int, int] | None,
                low_lines_to_bass: bool = False, variants: int | None = None,
                chorales: int = 0):
    """Writer and songs still to write for a corpus of songs with sung lead melodies.

    -> (writer, excluded reserved tracks, iterator of (split, item, rng, accompaniment
    {drums, bass, other: (2, T) float}, vocals (2, T) float, origins {"vocals": speech used,
    "accompaniment": MIDI and soundfont})). Songs with under 8 melody notes are left out.
    ``low_lines_to_bass``: see ``midi_stems.assign_stems``; ``variants``: renderings of each
    training song; ``chorales``: that many Bach chorales join the training songs.
    """
    packages = debs.fetch(list(PACKAGES), cache)
    writer = CorpusWriter(Path(out), task, SAMPLE_RATE, CHANNELS, stems, limit_minutes,
                          shard=shard)
    tracks, excluded = sources.freedoom_tracks(packages["freedoom"])
    tracks += chorale_tracks(chorales)
    pools = speech_pools(packages)
    sf_package = packages["musescore-general-soundfont"]
    sf_origin = sources.origin_of(sf_package, soundfont_path(sf_package).name)

    def songs():
        for song in pending_songs(writer, tracks, sf_package, task, SAMPLE_RATE, progress,
                                  variants):
            split, item, track, renderer, rng = song
            rendered, line, duration = render_song(renderer, track.midi, rng, name=track.name,
                                                   skip=("vocals",),
                                                   low_lines_to_bass=low_lines_to_bass)
            if len(line) < 8:
                continue
            singers = pools[split]
            names = sorted(singers)
            singer = names[rng.integers(len(names))]
            used: list = []
            stream = clip_stream(_loader(singers[singer], rng, used, writer.failures))
            voice = sing(line, duration, stream, SING_RATE, rng)
            length = next(iter(rendered.values())).shape[1]
            vocals = np.zeros((CHANNELS, length), np.float32)
            voice = convert(voice[None], SING_RATE, SAMPLE_RATE, CHANNELS)[:, :length]
            vocals[:, :voice.shape[1]] = voice
            origins = {"vocals": list(dict.fromkeys(used)),
                       "accompaniment": [track.origin, sf_origin]}
            yield split, item, rng, rendered, vocals, origins

    return writer, excluded, songs()


def level_gain(audio: np.ndarray, centre: float, spread: float, rng) -> np.float32:
    """Gain that brings ``audio`` to a loudness drawn from centre +- spread LUFS (1 on silence)."""
    target = centre + rng.uniform(-spread, spread)
    level = loudness(audio, SAMPLE_RATE)
    return np.float32(10 ** ((target - level) / 20)) if level > -70 else np.float32(1)


def set_level(audio: np.ndarray, centre: float, spread: float, rng) -> np.ndarray:
    return audio * level_gain(audio, centre, spread, rng)


def build(out: str | Path, *, cache=None, limit_minutes: float | None = None,
          progress: bool = True, shard: tuple[int, int] | None = None) -> dict:
    """Build the vocals corpus in ``out`` -> dataset.json content (``shard``: see CorpusWriter)."""
    writer, excluded, songs = sung_corpus("vocals", out, ("vocals", "accompaniment"),
                                          cache=cache, limit_minutes=limit_minutes,
                                          progress=progress, shard=shard)
    for split, item, rng, accompaniment, vocals, origins in songs:
        mix = {"vocals": set_level(vocals, *LEVELS["vocals"], rng),
               "accompaniment": set_level(sum(accompaniment.values()),
                                          *LEVELS["accompaniment"], rng)}
        origins["mixture"] = origins["vocals"] + origins["accompaniment"]
        writer.write(split, item, quantize_stems(mix), origins)
    return writer.finish({"excluded_reserved": excluded, "singing": "speech re-pitched with "
                          "WORLD to the MIDI lead melody (proxy, not real singing)"})
