"""Pseudo-singing: real speech re-pitched (and slowed) to follow a melody line with WORLD.

No singing voice is available here; the proxy keeps a real voice's timbre, consonants and
breath while its voiced frames follow the notes (with vibrato), phrase by phrase. Needs
``pyworld`` (PyPI: ``pyworld-prebuilt`` or ``pyworld``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ..errors import UnweaveError

FRAME_MS = 5.0


def _world():
    try:
        import pyworld
    except ImportError as exc:
        raise UnweaveError(f"pseudo-singing needs pyworld (pip install pyworld-prebuilt): {exc}"
                           ) from None
    return pyworld


def phrases(line: list[tuple[float, float, int]], max_gap: float = 0.25,
            max_seconds: float = 12.0) -> list[list[tuple[float, float, int]]]:
    """Group a monophonic line [(start, end, key)] into phrases split at rests > max_gap."""
    groups: list[list] = []
    for note in line:
        if groups and note[0] - groups[-1][-1][1] <= max_gap \
                and note[1] - groups[-1][0][0] <= max_seconds:
            groups[-1].append(note)
        else:
            groups.append([note])
    return groups


def midi_to_hz(key: float) -> float:
    return 440.0 * 2 ** ((key - 69) / 12)


def _target_f0(phrase, n_frames: int, start: float, shift: int, rng) -> np.ndarray:
    """Note pitch (Hz) for each output frame, notes held through short rests, with vibrato."""
    times = start + np.arange(n_frames) * FRAME_MS / 1000
    keys = np.full(n_frames, np.nan)
    for note_start, _, key in phrase:
        keys[times >= note_start] = key + shift  # later notes overwrite: held until next
    keys[np.isnan(keys)] = phrase[0][2] + shift
    rate, depth = rng.uniform(4.5, 6.5), rng.uniform(0.1, 0.35)  # vibrato Hz, semitones
    keys = keys + depth * np.sin(2 * np.pi * rate * times + rng.uniform(0, 2 * np.pi))
    return 440.0 * 2 ** ((keys - 69) / 12)


def sing_phrase(speech: np.ndarray, sample_rate: int, phrase, shift: int, rng,
                stretch: float) -> np.ndarray:
    """Re-sing ``speech`` (T,) float over one phrase -> (T',) float, T' ~ phrase length."""
    pw = _world()
    x = speech.astype(np.float64)
    f0, t = pw.dio(x, sample_rate, frame_period=FRAME_MS)
    f0 = pw.stonemask(x, f0, t, sample_rate)
    sp = pw.cheaptrick(x, f0, t, sample_rate)
    ap = pw.d4c(x, f0, t, sample_rate)
    start, end = phrase[0][0], phrase[-1][1]
    n_out = max(1, round((end - start) * 1000 / FRAME_MS))
    idx = np.minimum((np.arange(n_out) / stretch).astype(int), len(f0) - 1)
    voiced = f0[idx] > 0
    new_f0 = np.where(voiced, _target_f0(phrase, n_out, start, shift, rng), 0.0)
    y = pw.synthesize(new_f0, np.ascontiguousarray(sp[idx]), np.ascontiguousarray(ap[idx]),
                      sample_rate, FRAME_MS)
    fade = min(len(y) // 4, int(0.02 * sample_rate))
    if fade > 0:
        ramp = np.linspace(0, 1, fade)
        y[:fade] *= ramp
        y[-fade:] *= ramp[::-1]
    return y.astype(np.float32)


def median_key(speech: np.ndarray, sample_rate: int) -> float | None:
    """Median pitch (MIDI key) of the voiced frames, None if unvoiced."""
    pw = _world()
    f0, _ = pw.harvest(speech.astype(np.float64), sample_rate, f0_floor=70.0, f0_ceil=600.0,
                       frame_period=10.0)
    voiced = f0[f0 > 0]
    if not voiced.size:
        return None
    return float(np.clip(69 + 12 * np.log2(np.median(voiced) / 440), 43, 72))


def sing(line: list[tuple[float, float, int]], duration: float,
         speech_stream: Iterator[np.ndarray], sample_rate: int, rng) -> np.ndarray:
    """Pseudo-sung vocal for a melody line -> (T,) float32, T = duration * sample_rate.

    ``speech_stream`` yields trimmed mono speech clips at ``sample_rate`` (one speaker).
    """
    out = np.zeros(round(duration * sample_rate) + 1, np.float32)
    if not line:
        return out
    buffer = np.zeros(0, np.float32)
    speaker_key = None
    line_key = float(np.median([k for _, _, k in line]))
    for phrase in phrases(line):
        length = phrase[-1][1] - phrase[0][0]
        stretch = float(rng.uniform(1.2, 1.8))
        need = int(length / stretch * sample_rate) + sample_rate // 10
        while buffer.size < need:
            buffer = np.concatenate([buffer, next(speech_stream)])
        segment, buffer = buffer[:need], buffer[need:]
        if speaker_key is None:
            speaker_key = median_key(segment, sample_rate) or 60.0
        shift = int(12 * round((speaker_key + 4 - line_key) / 12))
        y = sing_phrase(segment, sample_rate, phrase, shift, rng, stretch)
        start = round(phrase[0][0] * sample_rate)
        stop = min(out.size, start + y.size)
        out[start:stop] += y[:stop - start]
    return out


def clip_stream(load_next: Callable[[], np.ndarray | None]) -> Iterator[np.ndarray]:
    """Endless iterator over non-empty clips from ``load_next`` (None = skip)."""
    misses = 0
    while True:
        clip = load_next()
        if clip is None or clip.size == 0:
            misses += 1
            if misses > 200:
                raise UnweaveError("no decodable speech clips for pseudo-singing")
            continue
        misses = 0
        yield clip
