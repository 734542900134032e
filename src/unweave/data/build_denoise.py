"""``denoise`` corpus: pools of clean speech and of noise, 16 kHz mono, mixed on the fly.

Speech: Asterisk G.722 prompts (en, es, it, ru; studio quality), silence-trimmed, -25 LUFS.
The Russian speaker is held out for validation (en and es are the same speaker).
Noise: 0 A.D. ambiences (rain, wind, water, birds...), Sonic Pi vinyl hiss / drones, and
generated coloured noise (white, pink, brown, blue), -28 LUFS; split by file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import debs, sources
from .common import (
    CorpusWriter,
    Origin,
    convert,
    normalize_loudness,
    rng_for,
    safe_name,
    split_for,
    trim_silence,
)

SAMPLE_RATE = 16000
SPEECH_PACKAGES = tuple(f"asterisk-core-sounds-{lang}-g722" for lang in ("en", "es", "it", "ru"))
NOISE_PACKAGES = ("0ad-data", "sonic-pi-samples")
VALID_SPEAKERS = frozenset({"ru_RU_f_IvrvoiceRU"})
SONIC_PI_NOISE = ("vinyl_hiss", "ambi_drone", "ambi_glass_hum", "ambi_haunted_hum",
                  "ambi_soft_buzz", "ambi_sauna", "loop_3d_printer", "loop_industrial")
SPEECH_LUFS, NOISE_LUFS = -25.0, -28.0
MIN_SPEECH_SECONDS = 0.5
COLOURS = {"white": 0.0, "pink": -1.0, "brown": -2.0, "blue": 1.0}


def coloured_noise(colour: str, length: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectrum ~ f^exponent: -> (1, length) float32."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length)
    freqs[0] = freqs[1]
    spectrum *= freqs ** (COLOURS[colour] / 2)
    out = np.fft.irfft(spectrum, n=length)
    return (out / (np.abs(out).max() + 1e-9) * 0.5).astype(np.float32)[None]


class _Budget:
    def __init__(self, limit_minutes: float | None):
        self.limit = limit_minutes
        self.seconds = {"train": 0.0, "valid": 0.0}

    def full(self, split: str) -> bool:
        if self.limit is None:
            return False
        return self.seconds[split] >= self.limit * 60 * (0.2 if split == "valid" else 0.8)


def _pool_file(writer, split, pool, name, clip_origin, make, budget: _Budget) -> None:
    """Write one pool file unless present (``make() -> (C, T) | None``), recording it."""
    if budget.full(split):
        return
    path = writer.out / split / pool / f"{name}.wav"
    audio = None
    if not path.is_file():
        audio = make()
        if audio is None:
            return
    writer.write(split, pool, {name: audio}, {name: [clip_origin]}, folder=path.parent)
    budget.seconds[split] += writer.rows[-1]["duration"]


def _interleave(clips, key):
    """Order clips so that each split is reached early (matters with --limit)."""
    rng = rng_for("order", key)
    order = rng.permutation(len(clips))
    return [clips[i] for i in order]


def build(out: str | Path, *, cache=None, limit_minutes: float | None = None,
          progress: bool = True) -> dict:
    """Build the denoise corpus in ``out`` -> dataset.json content."""
    packages = debs.fetch([*SPEECH_PACKAGES, *NOISE_PACKAGES], cache)
    writer = CorpusWriter(Path(out), "denoise", SAMPLE_RATE, 1, ("speech", "noise"),
                          limit_minutes)

    speech = [c for p in SPEECH_PACKAGES for c in sources.asterisk_clips(packages[p])]
    budget = _Budget(limit_minutes)
    for clip in tqdm(_interleave(speech, "speech"), desc="denoise speech", disable=not progress):
        split = "valid" if clip.group in VALID_SPEAKERS else "train"

        def make(clip=clip):
            loaded = clip.try_load(writer.failures)
            if loaded is None:
                return None
            audio, sr = loaded
            audio = trim_silence(convert(audio, sr, SAMPLE_RATE, 1), SAMPLE_RATE)
            if audio.shape[1] < MIN_SPEECH_SECONDS * SAMPLE_RATE:
                return None
            return normalize_loudness(audio, SAMPLE_RATE, SPEECH_LUFS)

        name = safe_name(clip.name.replace("/", "__"))
        _pool_file(writer, split, "speech", name, clip.origin, make, budget)

    noise = sources.zero_ad_clips(packages["0ad-data"], "ambient")
    noise += sources.file_clips(packages["sonic-pi-samples"], "*.flac")
    noise = [c for c in noise if c.origin.package != "sonic-pi-samples"
             or c.name.startswith(SONIC_PI_NOISE)]
    budget = _Budget(limit_minutes)
    for clip in tqdm(_interleave(noise, "noise"), desc="denoise noise", disable=not progress):
        split = split_for(clip.group, 0.15)

        def make(clip=clip):
            loaded = clip.try_load(writer.failures)
            if loaded is None:
                return None
            audio, sr = loaded
            audio = convert(audio, sr, SAMPLE_RATE, 1)
            if audio.shape[1] < SAMPLE_RATE:
                return None
            return normalize_loudness(audio, SAMPLE_RATE, NOISE_LUFS)

        prefix = "0ad" if clip.origin.package == "0ad-data" else "sonicpi"
        _pool_file(writer, split, "noise", safe_name(f"{prefix}_{clip.name}"), clip.origin,
                   make, budget)

    synthetic = Origin("synthetic", "1", "generated (no license needed)", "coloured noise")
    for colour in COLOURS:
        for index in range(8):
            split = "valid" if index == 7 else "train"
            name = f"noise_{colour}_{index}"
            _pool_file(writer, split, "noise", name, synthetic,
                       lambda c=colour, i=index: normalize_loudness(
                           coloured_noise(c, 20 * SAMPLE_RATE, rng_for("noise", c, i)),
                           SAMPLE_RATE, NOISE_LUFS), budget)
    pools = {s: {p: sum(1 for r in writer.rows if r["split"] == s and r["item"] == p)
                 for p in ("speech", "noise")} for s in ("train", "valid")}
    pool_minutes = {s: {p: round(sum(r["duration"] for r in writer.rows
                                     if r["split"] == s and r["item"] == p) / 60, 2)
                        for p in ("speech", "noise")} for s in ("train", "valid")}
    return writer.finish({"pools": pools, "pool_minutes": pool_minutes,
                          "valid_speakers": sorted(VALID_SPEAKERS)})
