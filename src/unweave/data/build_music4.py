"""``music4`` corpus: freedoom MIDI songs rendered stem by stem (drums, bass, other, vocals).

Each song (reserved tracks excluded) is rendered in several randomised variants: drum kit,
presets (within the GM family), tempo +-10 %, transposition +-3 semitones, reverb, and stem
balance +-3 dB. The vocals are pseudo-singing: real speech re-pitched with WORLD to follow the
song's lead melody (see ``build_vocals`` and ``singing``; a proxy, there is no real singing
here), mixed at about the accompaniment's loudness as in produced songs. The mixture is the
exact sum of the written stems. Train/valid split by song, and speech by speaker.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import UnweaveError
from . import midi_stems
from .common import CorpusWriter, quantize_stems, rng_for, split_for, write_text_atomic
from .render import DRUM_BANK, DRUM_CHANNEL, FluidRenderer

SAMPLE_RATE, CHANNELS = 44100, 2
# The sung vocals' speech (see build_vocals): Asterisk prompts and game voice acting.
SPEECH_PACKAGES = tuple(f"asterisk-core-sounds-{lang}-g722" for lang in ("en", "es", "it", "ru"))
PACKAGES = ("freedoom", "musescore-general-soundfont", "flight-of-the-amazon-queen",
            "beneath-a-steel-sky", *SPEECH_PACKAGES)
VARIANTS = {"train": 2, "valid": 1}
OPTIONS_FILE = "build_options.json"  # the options a corpus folder was started with
VALID_FRACTION = 0.12
# Loudness (LUFS, centre and +- spread) of the sung vocals and of the whole accompaniment
# (music4 and vocals alike).
LEVELS = {"vocals": (-18.0, 3.0), "accompaniment": (-20.0, 3.0)}
# Drum kits of MuseScore General used for rendering (metronome and marching kits left out).
KITS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 24, 25, 32, 33,
        34, 35, 36, 40, 41, 42, 48)
SINGING_PROGRAMS = (52, 53, 54, 85)


def soundfont_path(package) -> Path:
    found = sorted(package.root.rglob("*.sf3")) + sorted(package.root.rglob("*.sf2"))
    if not found:
        from ..errors import UnweaveError
        raise UnweaveError(f"{package.name}: no soundfont (.sf3/.sf2) in the package")
    return found[0]


def choose_programs(score, stems: dict[str, list], rng, available: set[int]) -> dict[int, int]:
    """Random preset per original program (same GM family; voices stay voices)."""
    lead_channels = {n.channel for n in stems["vocals"]
                     if n.program not in midi_stems.VOICE_PROGRAMS}
    mapping: dict[int, int] = {}
    for channel, programs in score.programs.items():
        if channel == DRUM_CHANNEL:
            continue
        for program in programs:
            if program in mapping:
                continue
            if program in midi_stems.VOICE_PROGRAMS or channel in lead_channels and rng.random() < 0.5:
                options = [p for p in SINGING_PROGRAMS if p in available]
            else:
                family = range(program // 8 * 8, program // 8 * 8 + 8)
                options = [p for p in family if p in available
                           and p not in midi_stems.VOICE_PROGRAMS] or [program]
            mapping[program] = program if rng.random() < 0.4 else int(rng.choice(options))
    return mapping


def render_song(renderer: FluidRenderer, midi: bytes, rng, *, name: str,
                skip: tuple[str, ...] = (), low_lines_to_bass: bool = False
                ) -> tuple[dict[str, np.ndarray], list, float]:
    """One randomised rendering -> ({stem: (2, T)}, melody [(start, end, key)], duration).

    Stems named in ``skip`` are not rendered (their notes still define the melody);
    ``low_lines_to_bass``: see ``midi_stems.assign_stems``.
    """
    tempo = float(rng.uniform(0.9, 1.1))
    transpose = int(rng.integers(-3, 4))
    score = midi_stems.parse_midi(midi, tempo_factor=tempo, transpose=transpose, name=name)
    stems = midi_stems.assign_stems(score, low_lines_to_bass=low_lines_to_bass)
    mapping = choose_programs(score, stems, rng, set(renderer.presets(0)))
    kits = [k for k in KITS if k in set(renderer.presets(DRUM_BANK))] or [0]
    programs = {DRUM_CHANNEL: (DRUM_BANK, int(rng.choice(kits)))}
    reverb = (float(rng.uniform(0.1, 0.8)), float(rng.uniform(0.1, 0.6)),
              float(rng.uniform(0.3, 1.0)), float(rng.uniform(0.2, 0.8)))
    audio = {}
    for stem, notes in stems.items():
        if stem in skip:
            continue
        events = midi_stems.events_for(score, notes)
        audio[stem] = renderer.render(events, score.duration, programs=programs, reverb=reverb,
                                      program_map=lambda ch, p: (0, mapping.get(p, p)))
    return audio, midi_stems.melody(stems["vocals"]), score.duration


def pending_songs(writer: CorpusWriter, tracks, sf_package, task: str, sample_rate: int,
                  progress: bool, variants: int | None = None):
    """Yield (split, item, track, renderer, rng) for every song variant the build still needs
    (``variants`` renderings of each training song, one of each validation song).

    Songs already written are reused (resumable builds), full splits are skipped, and the
    soundfont (seconds to load) is loaded only when a song has to be rendered.
    """
    renderer = None
    for split, track, variant in tqdm(song_splits(tracks, variants), **writer.progress_args(task),
                                      disable=not progress):
        if writer.all_full():
            break
        item = f"{track.name}_v{variant}"
        if not writer.mine(item):
            continue
        if writer.done(split, item):
            writer.reuse(split, item)
            continue
        if writer.full(split):
            continue
        if renderer is None:
            renderer = FluidRenderer(soundfont_path(sf_package), sample_rate)
        yield split, item, track, renderer, rng_for(task, item)


def variant_counts(variants: int | None = None) -> dict[str, int]:
    """Renderings per song of each split: ``variants`` for training songs (None: the default),
    one for validation songs."""
    if variants is None:
        return dict(VARIANTS)
    if variants < 1:
        raise UnweaveError(f"variants must be at least 1, got {variants}")
    return {**VARIANTS, "train": variants}


def song_splits(tracks, variants: int | None = None) -> list[tuple[str, object, int]]:
    """(split, track, variant) jobs, ordered so that both splits fill early; ``variants``
    renderings of a training song (each item draws from its own generator, so variant k is the
    same whatever the count: a build with more variants adds items to an existing folder)."""
    counts = variant_counts(variants)
    jobs = []
    for track in tracks:
        if track.split is not None:  # extra training songs (chorales): one rendering each
            jobs.append((track.split, track, 0))
            continue
        split = split_for(f"freedoom:{track.sha256}", VALID_FRACTION)
        jobs += [(split, track, v) for v in range(counts[split])]
    order = rng_for("music4-order").permutation(len(jobs))
    return [jobs[i] for i in order]


def bass_rule(low_lines_to_bass: bool) -> str:
    """How the corpus decides which notes are bass (recorded in dataset.json)."""
    rule = "GM bass presets (programs 32-39)"
    if low_lines_to_bass:
        rule += (" and mostly monophonic lines with a median note at or below E2 (MIDI "
                 f"{midi_stems.BASS_LINE_MAX_KEY}) on other pitched presets")
    return rule


def check_options(out: Path, options: dict) -> None:
    """Refuse to add items to a corpus folder written with other build options (its finished
    items would be reused as they are); record the options of a new folder."""
    path = out / OPTIONS_FILE
    if path.is_file():
        before = json.loads(path.read_text())
    elif any((out / split).is_dir() for split in ("train", "valid")):
        before = {key: False for key in options}  # written before options were recorded
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(options))
        return
    if before != options:
        raise UnweaveError(f"{out}: this corpus was built with options {before}, not {options}; "
                           "build into a new folder")


def build(out: str | Path, *, cache=None, limit_minutes: float | None = None,
          progress: bool = True, shard: tuple[int, int] | None = None,
          low_lines_to_bass: bool = False, variants: int | None = None,
          chorales: int = 0) -> dict:
    """Build the music4 corpus in ``out`` -> dataset.json content (``shard``: see CorpusWriter;
    ``low_lines_to_bass``: see ``midi_stems.assign_stems``; ``variants``: renderings of each
    training song; ``chorales``: Bach chorales added to the training songs, see ``chorales``)."""
    from .build_vocals import level_gain, sung_corpus  # that module imports this one

    check_options(Path(out), {"low_lines_to_bass": low_lines_to_bass})
    writer, excluded, songs = sung_corpus("music4", out, midi_stems.STEMS, cache=cache,
                                          limit_minutes=limit_minutes, progress=progress,
                                          shard=shard, low_lines_to_bass=low_lines_to_bass,
                                          variants=variants, chorales=chorales)
    for split, item, rng, stems, vocals, origins in songs:
        stems = {k: v * np.float32(10 ** (rng.uniform(-3, 3) / 20)) for k, v in stems.items()}
        gain = level_gain(sum(stems.values()), *LEVELS["accompaniment"], rng)
        stems = {k: v * gain for k, v in stems.items()}
        stems["vocals"] = vocals * level_gain(vocals, *LEVELS["vocals"], rng)
        written = quantize_stems(stems)
        by_stem = {s: origins["accompaniment"] for s in written if s != "vocals"}
        by_stem["vocals"] = origins["vocals"]
        by_stem["mixture"] = origins["vocals"] + origins["accompaniment"]
        writer.write(split, item, written, by_stem)
    return writer.finish({"excluded_reserved": excluded,
                          "variants": variant_counts(variants),
                          "chorales": chorales,
                          "bass": bass_rule(low_lines_to_bass),
                          "vocals": "pseudo-singing: speech re-pitched with WORLD to the MIDI "
                                    "lead melody (proxy, not real singing)"})
