"""Bach chorales from music21's bundled corpus as extra music4 training songs.

The chorales add varied bass lines and inner voices to the 48 freedoom training songs: each
four-part chorale becomes a MIDI file in which the soprano is a voice (sung by the music4
builder's pseudo-singing, like a song's lead melody), alto and tenor play two random pitched
presets ("other") and the bass plays a GM bass preset an octave down ("bass"). There are no
drums: the trainer's remixing draws them from other songs. Chorales only ever join the
training split, so a corpus built with them keeps the same validation songs.

music21 (BSD-3-Clause) ships the encodings; its corpus licence (``music21/corpus/license.txt``)
says the pieces are out of copyright or licensed for use, some encodings with restrictions on
commercial use. Every chorale's manifest row records that licence.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from ..errors import UnweaveError
from .common import Origin, rng_for
from .sources import MidiTrack

PACKAGE = "music21"
LICENSE = ("BSD-3-Clause (music21); the corpus encodings as music21/corpus/license.txt states "
           "(out of copyright or licensed for use, some restricted to non-commercial use)")
VOICE = 52  # choir aahs: the music4 builder sings this part
# Presets for alto and tenor (piano, organ, guitar, strings, brass, reed, pipe, pad families)
INNER = (0, 1, 4, 6, 16, 19, 21, 24, 25, 26, 40, 41, 42, 48, 49, 56, 57, 60, 61, 64, 65, 68, 70,
         71, 73, 88, 89, 91)
BASS = tuple(range(32, 40))
TICKS = 480  # per quarter note


def chorale_paths() -> list[Path]:
    """The Bach files of music21's corpus, sorted (needs ``pip install music21``)."""
    try:
        from music21 import corpus
    except ImportError:
        raise UnweaveError("--chorales needs music21 (pip install music21==10.5.1)") from None
    return sorted(Path(p) for p in corpus.getComposer("bach"))


def parts_notes(path: Path) -> list[list[tuple[float, float, int]]] | None:
    """[(start, length, key) in quarter notes] per part, top to bottom, or None when the file
    is not a four-part chorale."""
    from music21 import converter

    try:
        score = converter.parse(str(path))
    except Exception as exc:  # noqa: BLE001 - music21 raises many types on bad files
        raise UnweaveError(f"{path}: cannot parse ({exc})") from None
    parts = list(score.parts)
    if len(parts) != 4:
        return None
    voices = []
    for part in parts:
        notes = []
        for element in part.stripTies().flatten().notes:
            for pitch in element.pitches:
                notes.append((float(element.offset), float(element.quarterLength),
                              int(pitch.midi)))
        if len(notes) < 8:
            return None
        voices.append(notes)
    return voices


def chorale_midi(voices: list[list[tuple[float, float, int]]], rng) -> bytes:
    """Four voices -> type-0 MIDI bytes: soprano on a voice preset, alto and tenor on random
    pitched presets, the bass on a GM bass preset an octave down; tempo 60-110 per quarter."""
    import mido

    programs = [VOICE, int(rng.choice(INNER)), int(rng.choice(INNER)), int(rng.choice(BASS))]
    shifts = [0, 0, 0, -12]
    tempo = mido.bpm2tempo(float(rng.uniform(60, 110)))
    events = []  # (tick, order, message); note-offs before note-ons at the same tick
    for channel, (notes, program, shift) in enumerate(zip(voices, programs, shifts)):
        for start, length, key in notes:
            key = min(127, max(0, key + shift))
            on, off = round(start * TICKS), round((start + length) * TICKS)
            if off <= on:
                continue
            velocity = int(rng.integers(70, 100))
            events.append((on, 1, mido.Message("note_on", channel=channel, note=key,
                                               velocity=velocity)))
            events.append((off, 0, mido.Message("note_off", channel=channel, note=key)))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo, time=0)])
    track += [mido.Message("program_change", channel=c, program=p, time=0)
              for c, p in enumerate(programs)]
    now = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def chorale_tracks(count: int) -> list[MidiTrack]:
    """The first ``count`` four-part chorales (in a fixed pseudo-random order) as MIDI tracks
    that join the training split; duplicates (the same notes) are kept once."""
    if count < 0:
        raise UnweaveError(f"--chorales must be 0 or more, got {count}")
    if count == 0:
        return []
    paths = chorale_paths()  # a clear error when music21 is missing
    from music21 import __version__ as version

    order = rng_for("chorales-order").permutation(len(paths))
    tracks, seen = [], set()
    for index in order:
        if len(tracks) == count:
            break
        path = paths[index]
        voices = parts_notes(path)
        if voices is None:
            continue
        notes_digest = hashlib.sha256(repr(voices).encode()).hexdigest()
        if notes_digest in seen:
            continue
        seen.add(notes_digest)
        midi = chorale_midi(voices, rng_for("chorale", path.stem))
        rel = path.as_posix().split("/music21/", 1)[-1]
        origin = Origin(PACKAGE, version, LICENSE, f"music21/{rel}")
        tracks.append(MidiTrack(f"bach_{path.stem}", midi, hashlib.sha256(midi).hexdigest(),
                                origin, split="train"))
    if len(tracks) < count:
        raise UnweaveError(f"--chorales {count}: music21's corpus holds only {len(tracks)} "
                           "four-part chorales")
    return tracks
