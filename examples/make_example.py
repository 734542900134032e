"""Rebuild examples/example.flac: an 8.5 s, 44.1 kHz stereo song made only of CC0 material.

Drums, bass and piano chords are one-shot samples from Debian's ``sonic-pi-samples`` package
(each file used is CC0 per the package's copyright file; see examples/MANIFEST.md). The
"vocal" is a formant-filtered sawtooth melody synthesised here (this script's own work, CC0).

Usage (on Debian/Ubuntu; fetches the .deb with ``apt-get download``, needs ``dpkg-deb``):

    python examples/make_example.py                      # writes examples/example.flac
    python examples/make_example.py --stems-dir /tmp/st  # also the 4 ground-truth stems

or, with the package already extracted somewhere:

    python examples/make_example.py --samples-dir /tmp/sonicpi/usr/share/sonic-pi/samples

The source files are checked against the sha256 values below; the output is deterministic for
a given libsndfile/soxr build (the expected sha256 is in MANIFEST.md). The stems are never
committed (only the mixture, to keep the repository small).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

SR = 44100
BPM = 120.0
BEAT = 60.0 / BPM  # seconds
BARS = 4
DURATION = BARS * 4 * BEAT + 0.5  # 8.5 s: four bars and a short ring-out
PACKAGE, VERSION = "sonic-pi-samples", "3.2.2~repack-8"
SAMPLES_IN_DEB = "usr/share/sonic-pi/samples"
# name -> sha256 of usr/share/sonic-pi/samples/<name>.flac in sonic-pi-samples 3.2.2~repack-8
SOURCES = {
    "bd_haus": "b9aa2aa81a8ccabc1a93763e689587447860497a661ed03ba3f9bd6c06e99346",
    "sn_dolf": "88d04c0cf427f1af163479edb9d6477b95d0db0a790633cb87bbd3f3430207c7",
    "drum_cymbal_closed": "f3b9d6bb14f75ba06ef633baf58b1f75f0e2ea5e07edd491f0a22aedb2480d62",
    "drum_cymbal_open": "3a9cf6aacab05003fe3edaa9a9150841e080ecd3b7e6383571bc3570c23c7118",
    "drum_splash_soft": "30339472b3c399c68b6ca4971f8fddb2d0529468c5f4320fd77149c5e5c909fc",
    "bass_woodsy_c": "24526511b9996f394c1101dc8099cc29acc775782d1b5bd3e2afb406d0bd205c",
    "ambi_piano": "e6cd0efe8bd02f67beb76e2a930c9ff70c27712fa8829f03c2ae71362f88fe77",
}
# Progression (one chord per bar) in C minor: Cm, Ab, Eb, Bb. MIDI note numbers.
CHORDS = [(60, 63, 67), (56, 60, 63), (55, 58, 63), (58, 62, 65)]
BASS_ROOTS = [36, 32, 39, 34]  # C2, Ab1, Eb2, Bb1
# Vocal line: (midi, start beat, length in beats, vowel), 16 beats.
MELODY = [
    (67, 0.0, 1.5, "a"), (63, 1.5, 0.5, "o"), (65, 2.0, 1.0, "e"), (67, 3.0, 0.9, "a"),
    (68, 4.0, 1.5, "o"), (67, 5.5, 0.5, "a"), (65, 6.0, 0.5, "e"), (63, 6.5, 1.4, "a"),
    (70, 8.0, 1.0, "a"), (67, 9.0, 0.5, "i"), (70, 9.5, 0.5, "o"), (72, 10.0, 1.9, "a"),
    (70, 12.0, 1.0, "o"), (68, 13.0, 0.5, "e"), (67, 13.5, 0.5, "a"), (65, 14.0, 2.0, "u"),
]
# Vowel formants: (centre Hz, bandwidth Hz, gain) x 3, rough values for a female voice.
VOWELS = {
    "a": [(850, 90, 1.0), (1220, 110, 0.55), (2810, 170, 0.25)],
    "e": [(480, 70, 1.0), (2090, 120, 0.45), (2750, 160, 0.30)],
    "i": [(330, 60, 1.0), (2600, 130, 0.35), (3200, 180, 0.25)],
    "o": [(520, 80, 1.0), (860, 90, 0.60), (2700, 170, 0.15)],
    "u": [(370, 60, 1.0), (760, 80, 0.40), (2650, 170, 0.10)],
}


# ------------------------------------------------------------------------------- sources
def fetch_samples(workdir: Path) -> Path:
    """``apt-get download`` the package into ``workdir`` and extract it; returns samples dir."""
    for spec in (f"{PACKAGE}={VERSION}", PACKAGE):
        if subprocess.run(["apt-get", "download", spec], cwd=workdir, check=False).returncode == 0:
            break
    else:
        sys.exit(f"could not download {PACKAGE} (try: apt-get update)")
    deb = next(workdir.glob(f"{PACKAGE}_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(workdir / "root")], check=True)
    return workdir / "root" / SAMPLES_IN_DEB


def load_sources(folder: Path, verify: bool = True) -> dict[str, np.ndarray]:
    """Each source as float32 (T, 2) at 44.1 kHz (mono duplicated)."""
    out = {}
    for name, digest in SOURCES.items():
        path = folder / f"{name}.flac"
        if verify and hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            sys.exit(f"{path}: sha256 differs from {VERSION}; rerun with --no-verify to accept")
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        if rate != SR:
            data = soxr.resample(data, rate, SR, quality="HQ")
        out[name] = np.repeat(data, 2, axis=1) if data.shape[1] == 1 else data[:, :2]
    return out


# ------------------------------------------------------------------------------- helpers
def at(beat: float) -> int:
    return round(beat * BEAT * SR)


def place(track: np.ndarray, clip: np.ndarray, start: int, gain: float = 1.0, pan: float = 0.0):
    """Add ``clip (t, 2)`` into ``track (T, 2)`` at sample ``start``; pan in [-1, 1]."""
    end = min(len(track), start + len(clip))
    if end <= start:
        return
    angle = (pan + 1.0) * np.pi / 4.0  # constant-power pan law
    lr = np.array([np.cos(angle), np.sin(angle)]) * np.sqrt(2.0)
    track[start:end] += gain * clip[: end - start] * lr


def repitch(clip: np.ndarray, semitones: float) -> np.ndarray:
    """Varispeed: play ``clip`` faster/slower so it sounds ``semitones`` higher/lower."""
    ratio = 2.0 ** (semitones / 12.0)
    return soxr.resample(clip, SR * ratio, SR, quality="HQ").astype(np.float32)


def gate(clip: np.ndarray, seconds: float, release: float = 0.06) -> np.ndarray:
    """Cut ``clip`` to ``seconds`` with a linear release to silence."""
    n, r = int(seconds * SR), int(release * SR)
    out = clip[: n + r].copy()
    ramp = np.ones(len(out), np.float32)
    tail = ramp[n:]
    tail[:] = np.linspace(1.0, 0.0, len(tail), dtype=np.float32)
    return out * ramp[:, None]


def reverb(track: np.ndarray, seconds: float, wet: float, seed: int) -> np.ndarray:
    """Add a synthetic stereo room: decaying noise impulse responses, decorrelated L/R."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    decay = np.exp(-6.9 * t / seconds)  # -60 dB at ``seconds``
    out = track.copy()
    for ch in range(2):
        ir = rng.standard_normal(len(t)) * decay
        ir = signal.lfilter([0.3], [1.0, -0.7], ir)  # darker tail
        ir /= np.sqrt(np.sum(ir**2))
        out[:, ch] += wet * signal.fftconvolve(track[:, ch], ir)[: len(track)]
    return out


def normalise(track: np.ndarray, rms_db: float) -> np.ndarray:
    rms = np.sqrt(np.mean(track**2))
    return track * (10 ** (rms_db / 20) / max(rms, 1e-9))


# ------------------------------------------------------------------------------- parts
def drums(src: dict[str, np.ndarray], length: int) -> np.ndarray:
    track = np.zeros((length, 2), np.float32)
    for bar in range(BARS):
        b = 4 * bar
        for beat in (0, 1.5, 2, 2.75 if bar % 2 else 2.5):
            place(track, src["bd_haus"], at(b + beat), 1.0)
        for beat in (1, 3):
            place(track, src["sn_dolf"], at(b + beat), 0.8, pan=0.1)
        for k in range(8):
            accent = 0.45 if k % 2 == 0 else 0.3
            if bar == BARS - 1 and k == 7:
                place(track, src["drum_cymbal_open"], at(b + k / 2), 0.35, pan=-0.35)
            else:
                place(track, src["drum_cymbal_closed"], at(b + k / 2), accent, pan=-0.35)
    place(track, src["drum_splash_soft"], 0, 0.35, pan=0.4)
    return track


def bass(src: dict[str, np.ndarray], length: int) -> np.ndarray:
    track = np.zeros((length, 2), np.float32)
    pattern = [(0.0, 1.2), (1.5, 0.4), (2.0, 0.9), (3.0, 0.4), (3.5, 0.4)]  # (beat, beats)
    for bar, root in enumerate(BASS_ROOTS):
        note = repitch(src["bass_woodsy_c"], root - 36)  # the sample is a C2
        for beat, beats in pattern:
            octave = 12 if beat == 3.5 else 0
            clip = note if not octave else repitch(src["bass_woodsy_c"], root - 36 + octave)
            place(track, gate(clip, beats * BEAT), at(4 * bar + beat), 0.9)
    return track


def piano(src: dict[str, np.ndarray], length: int) -> np.ndarray:
    track = np.zeros((length, 2), np.float32)
    base = 67 - 0.23  # ambi_piano sounds a slightly flat G4
    for bar, chord in enumerate(CHORDS):
        for hit, beat in enumerate((0.0, 2.5)):
            for k, midi in enumerate(chord):
                note = repitch(src["ambi_piano"], midi - base)
                if hit == 0 and bar < BARS - 1:
                    note = gate(note, 2.4 * BEAT, release=0.3)
                place(track, note, at(4 * bar + beat), 0.5 if hit else 0.6, pan=(k - 1) * 0.6)
    return reverb(track, 1.2, 0.25, seed=2)


def vocal(length: int, seed: int = 7) -> np.ndarray:
    """Formant-filtered band-limited sawtooth with vibrato, glides and breath noise."""
    rng = np.random.default_rng(seed)
    n = np.arange(length)
    midi = np.full(length, np.nan)
    amp = np.zeros(length)
    weights = {v: np.zeros(length) for v in VOWELS}
    start_offset = 0.5  # the voice enters after half a beat of drums
    for note, start, beats, vowel in MELODY:
        s, e = at(start + start_offset), at(start + start_offset + beats)
        midi[s:e] = note
        env = np.ones(e - s)
        a, r = int(0.04 * SR), int(0.09 * SR)
        env[:a] = np.linspace(0, 1, a)
        env[-r:] = np.minimum(env[-r:], np.linspace(1, 0, r))
        amp[s:e] = np.maximum(amp[s:e], env)
        weights[vowel][s:e] = 1.0
    # Pitch: hold the last note through gaps, glide 40 ms between notes, vibrato after onset.
    valid = ~np.isnan(midi)
    midi = np.interp(n, n[valid], midi[valid])
    midi = _smooth(midi, 0.04)
    vib_depth = 0.25 * np.clip(_smooth(amp, 0.3), 0, 1)
    midi = midi + vib_depth * np.sin(2 * np.pi * 5.4 * n / SR + 0.3)
    f0 = 440.0 * 2 ** ((midi - 69) / 12) * (1 + 0.002 * _smooth(rng.standard_normal(length), 0.05))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    source = np.zeros(length)
    for k in range(1, int(18000 / f0.max()) + 1):  # band-limited sawtooth (no aliasing)
        source += np.sin(k * phase) / k
    source += 0.03 * rng.standard_normal(length)  # breath
    voiced = np.zeros(length)
    total_w = sum(_smooth(w, 0.03) for w in weights.values()) + 1e-9
    for vowel, formants in VOWELS.items():
        w = _smooth(weights[vowel], 0.03) / total_w  # cross-fade between vowel filters
        if not w.any():
            continue
        shaped = np.zeros(length)
        for centre, bandwidth, gain in formants:
            b, a = signal.iirpeak(centre, centre / bandwidth, fs=SR)
            shaped += gain * signal.lfilter(b, a, source)
        voiced += w * shaped
    voiced *= _smooth(amp, 0.01)
    voiced = signal.lfilter(*signal.butter(2, 120, "highpass", fs=SR), voiced)
    track = np.stack([voiced, voiced], axis=1).astype(np.float32)
    return reverb(track, 1.0, 0.2, seed=3)


def _smooth(x: np.ndarray, seconds: float) -> np.ndarray:
    """Zero-phase one-pole smoothing with time constant ``seconds``."""
    alpha = 1.0 - np.exp(-1.0 / (seconds * SR))
    return signal.filtfilt([alpha], [1.0, alpha - 1.0], x)


# ------------------------------------------------------------------------------- main
def build(src: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """-> (mixture (T, 2), stems) with stems summing to the mixture."""
    length = int(DURATION * SR)
    stems = {
        "drums": normalise(drums(src, length), -19.0),
        "bass": normalise(bass(src, length), -21.0),
        "other": normalise(piano(src, length), -22.0),
        "vocals": normalise(vocal(length), -19.0),
    }
    fade = int(0.4 * SR)  # gentle fade-out over the last 0.4 s
    for stem in stems.values():
        stem[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)[:, None]
    mix = sum(stems.values())
    peak = np.abs(mix).max()
    gain = min(1.0, 0.89 / peak)  # peak at most -1 dBFS
    stems = {k: (v * gain).astype(np.float32) for k, v in stems.items()}
    return sum(stems.values()).astype(np.float32), stems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples-dir", type=Path, help="extracted .../sonic-pi/samples")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("example.flac"))
    parser.add_argument("--stems-dir", type=Path, help="also write the stems (not committed)")
    parser.add_argument("--no-verify", action="store_true", help="skip source sha256 checks")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.samples_dir or fetch_samples(Path(tmp))
        src = load_sources(folder, verify=not args.no_verify)
    mix, stems = build(src)
    sf.write(args.out, mix, SR, subtype="PCM_16", format="FLAC")
    print(f"{args.out}: {len(mix) / SR:.2f} s, {args.out.stat().st_size} bytes, sha256 "
          f"{hashlib.sha256(args.out.read_bytes()).hexdigest()}")
    if args.stems_dir:
        args.stems_dir.mkdir(parents=True, exist_ok=True)
        for name, stem in stems.items():
            sf.write(args.stems_dir / f"{name}.flac", stem, SR, subtype="PCM_16", format="FLAC")
    return 0


if __name__ == "__main__":
    sys.exit(main())
