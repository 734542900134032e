"""Doom MUS music -> standard MIDI file (type 0).

MUS (little-endian header): ``"MUS\\x1a"``, uint16 score length, uint16 score start, uint16
channels, uint16 secondary channels, uint16 instrument count, uint16 reserved, instruments.
Events: a descriptor byte ``last(1) | type(3) | channel(4)``; types 0 release note, 1 play
note (bit 7 of the note byte: a volume byte follows), 2 pitch wheel (one byte, 128 = centre),
3 system event, 4 controller (number, value; controller 0 = program change), 5 end of measure,
6 end of score. When ``last`` is set a variable-length delay in 1/140 s ticks follows.
MUS channel 15 is percussion (MIDI channel 10, index 9).
"""

from __future__ import annotations

import io
import struct

from ...errors import UnweaveError

MUS_MAGIC = b"MUS\x1a"
_CONTROLLERS = {1: 0, 2: 1, 3: 7, 4: 10, 5: 11, 6: 91, 7: 93, 8: 64, 9: 67}
_SYSTEM = {10: 120, 11: 123, 12: 126, 13: 127, 14: 121}
TICKS_PER_SECOND = 140


def _midi_channel(mus_channel: int) -> int:
    if mus_channel == 15:
        return 9
    return mus_channel + 1 if mus_channel >= 9 else mus_channel


def mus_to_midi(data: bytes, *, name: str = "<mus>") -> bytes:
    """Convert MUS bytes to MIDI bytes (70 ticks per beat at 120 bpm = 140 ticks/s)."""
    import mido

    if data[:4] != MUS_MAGIC or len(data) < 16:
        raise UnweaveError(f"{name}: not a MUS file")
    score_length, score_start = struct.unpack("<HH", data[4:8])
    pos, end = score_start, min(len(data), score_start + score_length)
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    volumes = [127] * 16
    delay = 0
    try:
        while pos < end:
            descriptor = data[pos]
            pos += 1
            kind, channel = descriptor >> 4 & 7, _midi_channel(descriptor & 15)
            msg = None
            if kind == 0:
                msg = mido.Message("note_off", channel=channel, note=data[pos] & 127)
                pos += 1
            elif kind == 1:
                note = data[pos]
                pos += 1
                if note & 128:
                    volumes[channel] = data[pos] & 127
                    pos += 1
                msg = mido.Message("note_on", channel=channel, note=note & 127,
                                   velocity=volumes[channel])
            elif kind == 2:
                msg = mido.Message("pitchwheel", channel=channel, pitch=data[pos] * 64 - 8192)
                pos += 1
            elif kind == 3:
                number = data[pos]
                pos += 1
                if number in _SYSTEM:
                    msg = mido.Message("control_change", channel=channel,
                                       control=_SYSTEM[number], value=0)
            elif kind == 4:
                number, value = data[pos], min(data[pos + 1], 127)
                pos += 2
                if number == 0:
                    msg = mido.Message("program_change", channel=channel, program=value)
                elif number in _CONTROLLERS:
                    msg = mido.Message("control_change", channel=channel,
                                       control=_CONTROLLERS[number], value=value)
            elif kind == 6:
                break
            if msg is not None:
                track.append(msg.copy(time=delay))
                delay = 0
            if descriptor & 128:
                ticks = 0
                while True:
                    byte = data[pos]
                    pos += 1
                    ticks = ticks << 7 | byte & 127
                    if not byte & 128:
                        break
                delay += ticks
    except IndexError:
        raise UnweaveError(f"{name}: MUS score is truncated") from None
    track.append(mido.MetaMessage("end_of_track", time=delay))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_SECOND // 2)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()
