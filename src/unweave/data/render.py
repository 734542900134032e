"""Offline MIDI rendering with FluidSynth (pyfluidsynth + Debian's libfluidsynth3).

One synthesizer stays loaded (loading the MuseScore General sf3 takes 8-15 s); each stem is
rendered separately from a clean reset, so stems of one song share presets and timing and
sum to the mixture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UnweaveError

DRUM_CHANNEL = 9
DRUM_BANK = 128
BLOCK = 64  # FluidSynth's internal block: events take effect on block boundaries


def libfluidsynth_version() -> str | None:
    """The C library's version (through pyfluidsynth's ctypes handle), or None without it."""
    try:
        import ctypes

        import fluidsynth

        version_str = fluidsynth._fl.fluid_version_str
    except (ImportError, OSError, AttributeError):
        return None
    version_str.restype = ctypes.c_char_p
    return version_str().decode()


class FluidRenderer:
    """Render event lists to stereo float32 audio.

    Args:
        soundfont: path of an .sf2/.sf3 file.
        sample_rate: output rate in Hz.
        gain: FluidSynth master gain (low values leave headroom for dense parts).
    """

    def __init__(self, soundfont: str | Path, sample_rate: int = 44100, gain: float = 0.3):
        try:
            import fluidsynth
        except (ImportError, OSError) as exc:
            raise UnweaveError("MIDI rendering needs pyfluidsynth and libfluidsynth "
                               f"(pip install pyfluidsynth; apt-get install fluidsynth): {exc}"
                               ) from None
        self.sample_rate = int(sample_rate)
        self.synth = fluidsynth.Synth(gain=gain, samplerate=float(sample_rate))
        self.sfid = self.synth.sfload(str(soundfont))
        self._rendered = 0  # samples pulled from the synth so far (for block alignment)
        if self.sfid < 0:
            raise UnweaveError(f"{soundfont}: FluidSynth cannot load this soundfont")

    def presets(self, bank: int) -> list[int]:
        """Programs that exist in ``bank`` of the loaded soundfont."""
        return [p for p in range(128) if self.synth.sfpreset_name(self.sfid, bank, p)]

    def _pull(self, n: int) -> np.ndarray:
        self._rendered += n
        return self.synth.get_samples(n)

    def _reset(self, programs: dict[int, tuple[int, int]], reverb: tuple | None) -> None:
        for channel in range(16):
            self.synth.all_sounds_off(channel)
        self.synth.system_reset()
        # flush reverb/chorus tails (~0.5 s) and end on a block boundary
        flush = BLOCK * (self.sample_rate // 2 // BLOCK) + (-self._rendered) % BLOCK
        self._pull(flush)
        for channel, (bank, program) in programs.items():
            self.synth.program_select(channel, self.sfid, bank, program)
        if reverb is not None:
            self.synth.set_reverb(*reverb)

    def render(self, events: list[tuple[float, str, tuple]], duration: float, *,
               programs: dict[int, tuple[int, int]] | None = None,
               program_map=None, reverb: tuple | None = None,
               tail_seconds: float = 2.0) -> np.ndarray:
        """Render events (see ``midi_stems``) -> (2, T) float32, T = (duration + tail) * rate.

        ``programs`` {channel: (bank, program)} is selected before the first event;
        ``program_map(channel, program) -> (bank, program)`` translates program changes.
        """
        programs = dict(programs or {})
        self._reset(programs, reverb)
        total = round((duration + tail_seconds) * self.sample_rate)
        out = np.zeros(2 * total, np.int16)
        pos = 0
        synth = self.synth
        for time, kind, args in events:
            target = min(total, round(time * self.sample_rate))
            if target > pos:
                out[2 * pos:2 * target] = self._pull(target - pos)
                pos = target
            if kind == "on":
                synth.noteon(*args)
            elif kind == "off":
                synth.noteoff(*args)
            elif kind == "cc":
                synth.cc(*args)
            elif kind == "bend":
                synth.pitch_bend(args[0], args[1])
            elif kind == "program":
                channel, program = args
                if channel == DRUM_CHANNEL:
                    continue  # the drum kit is chosen once, in ``programs``
                bank, program = program_map(channel, program) if program_map else (0, program)
                synth.program_select(channel, self.sfid, bank, program)
        if total > pos:
            out[2 * pos:] = self._pull(total - pos)
        for channel in range(16):
            synth.all_sounds_off(channel)
        return (out.reshape(-1, 2).T.astype(np.float32) / 32768.0).copy()
