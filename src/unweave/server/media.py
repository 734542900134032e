"""Audio work the server does beside separation: probing uploads, waveform peaks, remixes
and zips. Everything streams in blocks through ``unweave.audio.io`` so that hour-long jobs
stay within a few blocks of memory. All functions are blocking: call them from a thread.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import torch

from ..audio import io
from ..errors import AudioReadError
from ..fileio import atomic_path
from .files import atomic_write_bytes

BLOCK_SECONDS = 10.0


def probe(path: Path) -> float:
    """Duration in seconds of a decodable recording; raises ``AudioReadError`` otherwise.

    Reads the header, then decodes a first block, so that files whose header looks fine but
    whose content the decoder rejects are refused before they are queued. Containers that state
    no duration are decoded to the end to measure it (in blocks).
    """
    meta = io.info(path)
    duration = meta.duration_seconds
    if duration is None and meta.frames:
        duration = meta.frames / meta.sample_rate
    blocks = io.iter_blocks(path, 1.0)
    try:
        first = next(blocks, None)
        if first is None or first.shape[-1] == 0:
            raise AudioReadError(f"{path}: no audio samples could be decoded")
        if duration is None:
            duration = (first.shape[-1] + sum(b.shape[-1] for b in blocks)) / meta.sample_rate
    finally:
        blocks.close()
    return float(duration)


def compute_peaks(stems: dict[str, Path], bins: int) -> dict:
    """Waveform overview: per stem, the peak |x| over all channels in ``bins`` equal spans.

    Returns ``{"bins", "sample_rate", "duration_seconds", "stems": {name: [float] * bins}}``.
    """
    out: dict = {"bins": bins, "sample_rate": 0, "duration_seconds": 0.0, "stems": {}}
    for name, path in stems.items():
        meta = io.info(path)
        frames = meta.frames or round((meta.duration_seconds or 0.0) * meta.sample_rate)
        frames = max(1, int(frames))
        n_bins = max(1, min(bins, frames))
        peaks = torch.zeros(n_bins)
        offset = 0
        for block in io.iter_blocks(path, BLOCK_SECONDS):  # (C, t)
            level = block.abs().amax(0)  # (t,)
            index = (torch.arange(offset, offset + level.shape[0]) * n_bins) // frames
            peaks.scatter_reduce_(0, index.clamp_(max=n_bins - 1), level, "amax")
            offset += level.shape[0]
        out["stems"][name] = [round(float(v), 4) for v in peaks]
        out["sample_rate"] = int(meta.sample_rate)
        out["duration_seconds"] = frames / meta.sample_rate
    return out


def write_peaks(stems: dict[str, Path], bins: int, dest: Path) -> None:
    data = json.dumps(compute_peaks(stems, bins), separators=(",", ":")).encode()
    atomic_write_bytes(dest, data)


def render_remix(stems: dict[str, Path], gains: dict[str, float], dest: Path) -> Path:
    """Write ``sum_s gains[s] * stem_s`` as a float32 WAV at ``dest`` (no clipping, so the
    samples are exactly the weighted sum). Stems share one rate and length (one separation)."""
    names = list(stems)
    meta = io.info(stems[names[0]])
    readers = [iter(io.iter_blocks(stems[n], BLOCK_SECONDS)) for n in names]
    weights = [float(gains.get(n, 1.0)) for n in names]
    with io.open_writer(dest, int(meta.sample_rate), int(meta.channels), fmt="wav",
                        subtype="FLOAT") as writer:  # fmt: skip
        while True:
            blocks = [next(r, None) for r in readers]
            present = [(w, b) for w, b in zip(weights, blocks) if b is not None]
            if not present:
                break
            length = max(b.shape[-1] for _, b in present)
            mix = torch.zeros(present[0][1].shape[0], length)
            for weight, block in present:
                if weight:
                    mix[:, : block.shape[-1]] += weight * block
            writer.write(mix)
        writer.commit()
    return dest


def build_zip(stems: dict[str, Path], folder: str, dest: Path) -> Path:
    """Zip the stems (stored, audio does not compress) under ``folder/``, atomically."""
    if dest.is_file():
        return dest
    with atomic_path(dest, mode=0o600) as tmp, zipfile.ZipFile(
            tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path in stems.values():
            zf.write(path, arcname=f"{folder}/{path.name}")
    return dest
