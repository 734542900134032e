"""Split a MIDI file into stems (drums, bass, other, vocals) as timed synthesizer events.

Stem of a note: MIDI channel 10 (index 9) -> drums; GM programs 32-39 -> bass; voice/choir
programs (52-54 choir/voice, 85 voice lead) -> vocals; everything else -> other. When voice
programs sound for less than a quarter of the file, its lead melody line (the most melodic,
mostly monophonic, high and busy non-drum, non-bass channel) becomes the vocals stem.
Optionally (``low_lines_to_bass``) a bass line played on another preset (a sawtooth lead or a
cello down at E1-E2, common in the freedoom songs) goes to bass too: see ``low_lines``.

Times are seconds after a tempo factor (> 1 plays faster); pitches are transposed (except
drums). Events are ``(time_seconds, kind, args)`` with kinds ``on (ch, key, vel)``,
``off (ch, key)``, ``cc (ch, control, value)``, ``bend (ch, value -8192..8191)``,
``program (ch, program)``.
"""

from __future__ import annotations

import io
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from ..errors import UnweaveError

STEMS = ("drums", "bass", "other", "vocals")
DRUM_CHANNEL = 9
BASS_PROGRAMS = range(32, 40)
VOICE_PROGRAMS = frozenset({52, 53, 54, 85})
PITCHED_PROGRAMS = range(112)  # 112-127: percussive and sound-effect presets
BASS_LINE_MAX_KEY = 40  # E2: a line whose median note is at or below it plays the bass part
MIN_LINE_NOTES = 16  # fewer notes are not a line (lead or bass)
MONOPHONIC = 1.3  # polyphony below this: mostly one note at a time


@dataclass(frozen=True)
class Note:
    start: float
    end: float
    channel: int
    key: int
    velocity: int
    program: int


@dataclass
class Score:
    """A parsed MIDI file: notes plus per-channel control events, times in seconds."""

    notes: list[Note]
    controls: list[tuple[float, str, tuple]]  # cc / bend / program events, all channels
    duration: float
    programs: dict[int, set[int]] = field(default_factory=dict)  # channel -> programs used


def parse_midi(data: bytes, *, tempo_factor: float = 1.0, transpose: int = 0,
               name: str = "<midi>") -> Score:
    """MIDI bytes -> Score, with times divided by ``tempo_factor`` and keys shifted."""
    import mido

    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - mido raises many types on corrupt files
        raise UnweaveError(f"{name}: cannot parse MIDI ({exc})") from None
    now = 0.0
    program = defaultdict(int)
    active: dict[tuple[int, int], list[tuple[float, int, int]]] = defaultdict(list)
    notes, controls = [], []
    programs: dict[int, set[int]] = defaultdict(set)

    def close(channel, key, when):
        if active[(channel, key)]:
            start, velocity, prog = active[(channel, key)].pop(0)
            notes.append(Note(start, max(when, start + 0.01), channel, key, velocity, prog))

    for msg in midi:  # merged tracks, msg.time = delta seconds (tempo map applied)
        now += msg.time / tempo_factor
        if msg.is_meta or not hasattr(msg, "channel"):
            continue
        ch = msg.channel
        key_shift = 0 if ch == DRUM_CHANNEL else transpose
        if msg.type == "note_on" and msg.velocity > 0:
            key = min(127, max(0, msg.note + key_shift))
            active[(ch, key)].append((now, msg.velocity, program[ch]))
            programs[ch].add(program[ch])
        elif msg.type in ("note_off", "note_on"):
            close(ch, min(127, max(0, msg.note + key_shift)), now)
        elif msg.type == "program_change":
            program[ch] = msg.program
            controls.append((now, "program", (ch, msg.program)))
        elif msg.type == "control_change":
            controls.append((now, "cc", (ch, msg.control, msg.value)))
        elif msg.type == "pitchwheel":
            controls.append((now, "bend", (ch, msg.pitch)))
    for (ch, key), pending in list(active.items()):
        while pending:
            close(ch, key, now)
    notes.sort(key=lambda n: (n.start, n.channel, n.key))
    return Score(notes, controls, now, dict(programs))


def _union_length(spans: list[tuple[float, float]]) -> float:
    total, cur_start, cur_end = 0.0, None, None
    for start, end in sorted(spans):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    return total + (cur_end - cur_start if cur_end is not None else 0.0)


def _spread(notes: list[Note]) -> tuple[float, float]:
    """(seconds during which ``notes`` sound, polyphony: their summed lengths over that time)."""
    spans = [(n.start, n.end) for n in notes]
    covered = _union_length(spans)
    return covered, sum(e - s for s, e in spans) / max(covered, 1e-6)


def lead_channel(score: Score) -> int | None:
    """The channel that carries the melody (None if no channel qualifies)."""
    by_channel: dict[int, list[Note]] = defaultdict(list)
    for note in score.notes:
        if note.channel != DRUM_CHANNEL and note.program not in BASS_PROGRAMS:
            by_channel[note.channel].append(note)
    best, best_score = None, 0.0
    for channel, notes in by_channel.items():
        if len(notes) < MIN_LINE_NOTES:
            continue
        covered, polyphony = _spread(notes)
        coverage = covered / max(score.duration, 1e-6)
        mean_key = sum(n.key for n in notes) / len(notes)
        value = coverage * (1.0 if polyphony < MONOPHONIC else 0.35) * (mean_key / 60.0) ** 2
        if coverage > 0.15 and value > best_score:
            best, best_score = channel, value
    return best


def low_lines(score: Score) -> set[tuple[int, int]]:
    """(channel, program) pairs outside the GM bass presets that play a bass line: 16 notes or
    more, mostly one at a time (as ``lead_channel`` measures it), median note at or below E2.

    Pitched presets only (not percussion or sound effects), and not voices.
    """
    groups: dict[tuple[int, int], list[Note]] = defaultdict(list)
    for note in score.notes:
        if (note.channel != DRUM_CHANNEL and note.program in PITCHED_PROGRAMS
                and note.program not in BASS_PROGRAMS and note.program not in VOICE_PROGRAMS):
            groups[(note.channel, note.program)].append(note)
    return {key for key, notes in groups.items()
            if len(notes) >= MIN_LINE_NOTES and _spread(notes)[1] < MONOPHONIC
            and statistics.median(n.key for n in notes) <= BASS_LINE_MAX_KEY}


def assign_stems(score: Score, *, low_lines_to_bass: bool = False) -> dict[str, list[Note]]:
    """Notes per stem (every stem key present, possibly empty); with ``low_lines_to_bass`` the
    ``low_lines`` go to bass instead of other."""
    voice_spans = [(n.start, n.end) for n in score.notes
                   if n.program in VOICE_PROGRAMS and n.channel != DRUM_CHANNEL]
    voice_coverage = _union_length(voice_spans) / max(score.duration, 1e-6)
    lead = None if voice_coverage > 0.25 else lead_channel(score)
    bass_lines = low_lines(score) if low_lines_to_bass else set()
    stems: dict[str, list[Note]] = {s: [] for s in STEMS}
    for note in score.notes:
        if note.channel == DRUM_CHANNEL:
            stems["drums"].append(note)
        elif note.program in BASS_PROGRAMS:
            stems["bass"].append(note)
        elif note.program in VOICE_PROGRAMS or note.channel == lead:
            stems["vocals"].append(note)
        elif (note.channel, note.program) in bass_lines:
            stems["bass"].append(note)
        else:
            stems["other"].append(note)
    return stems


def melody(notes: list[Note]) -> list[tuple[float, float, int]]:
    """Monophonic line (highest sounding note wins) -> [(start, end, key)] without overlaps."""
    line: list[list] = []
    for note in sorted(notes, key=lambda n: (n.start, -n.key)):
        if line and note.start < line[-1][1]:
            if note.key <= line[-1][2] or note.start - line[-1][0] < 0.03:
                continue
            line[-1][1] = note.start  # a higher note cuts the previous one
        line.append([note.start, note.end, note.key])
    return [tuple(x) for x in line if x[1] - x[0] > 0.02]


def events_for(score: Score, notes: list[Note]) -> list[tuple[float, str, tuple]]:
    """Synth events rendering only ``notes`` (with the control events of their channels)."""
    channels = {n.channel for n in notes}
    events = [e for e in score.controls if e[2][0] in channels]
    for n in notes:
        events.append((n.start, "on", (n.channel, n.key, n.velocity)))
        events.append((n.end, "off", (n.channel, n.key)))
    order = {"program": 0, "cc": 1, "bend": 2, "off": 3, "on": 4}
    events.sort(key=lambda e: (e[0], order[e[1]]))
    return events
