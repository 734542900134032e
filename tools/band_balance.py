"""Where each stem's energy goes, band by band: a model's estimates against the references.

    python tools/band_balance.py MODEL corpora/music4/manifest.csv [--split valid]
        [--max-items N] [--seconds S] [--out F.json] [--plot F.png]

For every item and stem it takes the power of the reference and of the estimate in octave-ish
bands (mono sum of the channels, Hann STFT of ~93 ms, as the refinement's) and the power of the
error (estimate minus reference) there. It prints, per stem and band, medians over the items that hold the stem:

* ``level``: estimate minus reference power, dB (negative: the model leaves that band's energy
  to other stems, e.g. a bass stem whose 60-250 Hz went to "other");
* ``band SDR``: reference over error power, dB (which band holds a stem's score down).

``--seconds S`` takes the centre S seconds of each item (cheaper, and the model sees the same
excerpt for every item). ``--refine / --no-refine / --refine-mode`` as for ``unweave evaluate``
(a checkpoint file has no catalog setting: give ``--refine-mode spatial`` to score it as its
shipped entry runs). The plot shows both tables as heat maps.
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch

from unweave.cli import add_refine_arguments, refine_request
from unweave.dsp.postfilter import fft_size
from unweave.dsp.stft import stft
from unweave.errors import UnweaveError
from unweave.evaluate import find_items, load_item, silent_sources
from unweave.fileio import write_text_atomic
from unweave.inference.separator import Separator
from unweave.metrics.report import _figure, _save

# band edges in Hz: sub-bass, bass, low-mid, mid, upper-mid, presence, air
EDGES = (0.0, 60.0, 120.0, 250.0, 500.0, 1000.0, 4000.0, 11025.0)
TINY = 1e-12


def band_power(audio: torch.Tensor, sample_rate: int, edges=EDGES) -> np.ndarray:
    """Mean power per band of ``audio`` (C, T) or (S, C, T) (channels summed) -> (..., bands).

    Bands are ``[lo, hi)``, the last one with its top edge (Nyquist at 22.05 kHz); bins above
    the last edge are left out."""
    n_fft = fft_size(sample_rate)
    power = stft(audio.float().sum(dim=-2), n_fft, n_fft // 4).abs().square().sum(dim=-1)
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    band = torch.bucketize(freqs, torch.tensor(edges[1:-1]), right=True)
    band[freqs > edges[-1]] = len(edges) - 1  # a spare slot, dropped below
    out = torch.zeros(*power.shape[:-1], len(edges)).index_add_(-1, band, power)
    return out[..., :-1].double().numpy()


def item_balance(estimates: torch.Tensor, references: torch.Tensor, sample_rate: int,
                 edges=EDGES) -> dict[str, np.ndarray]:
    """(S, C, T) estimates and references -> {"level", "band_sdr"}: (S, bands) in dB."""
    ref = band_power(references, sample_rate, edges)
    est = band_power(estimates, sample_rate, edges)
    err = band_power(estimates - references, sample_rate, edges)
    return {"level": 10 * np.log10((est + TINY) / (ref + TINY)),
            "band_sdr": 10 * np.log10((ref + TINY) / (err + TINY))}


def medians(rows: list[dict], key: str, n_sources: int, n_bands: int) -> np.ndarray:
    """Median over items of ``key`` (S, bands), skipping the items where a stem is silent."""
    out = np.full((n_sources, n_bands), np.nan)
    for s in range(n_sources):
        values = [r[key][s] for r in rows if r["present"][s]]
        if values:
            out[s] = np.median(np.array(values), axis=0)
    return out


def band_labels(edges=EDGES) -> list[str]:
    return [f"{lo:g}-{hi:g}" for lo, hi in pairwise(edges)]


def plot(path: Path, tables: dict[str, np.ndarray], sources, title: str) -> None:
    labels = band_labels()
    fig = _figure(6 * len(tables), 0.7 * len(sources) + 1.8)
    for ax, (name, table) in zip(fig.subplots(1, len(tables), squeeze=False)[0], tables.items()):
        limit = np.nanmax(np.abs(table)) if name == "level" else None
        image = ax.imshow(table, cmap="RdBu" if name == "level" else "viridis", aspect="auto",
                          vmin=-limit if limit else None, vmax=limit)
        ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right")
        ax.set_yticks(range(len(sources)), sources)
        ax.set_xlabel("band (Hz)")
        ax.set_title({"level": "estimate - reference power (dB)",
                      "band_sdr": "band SDR (dB)"}[name])
        for (s, b), v in np.ndenumerate(table):
            if np.isfinite(v):
                ax.text(b, s, f"{v:.1f}", ha="center", va="center", fontsize=8)
        fig.colorbar(image, ax=ax)
    fig.suptitle(title)
    _save(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="catalog name or checkpoint")
    parser.add_argument("dataset", help="what `unweave evaluate` takes")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--max-items", type=int)
    parser.add_argument("--seconds", type=float, help="the centre S seconds of each item")
    parser.add_argument("--jobs", type=int, default=2)
    add_refine_arguments(parser)  # as `unweave evaluate`: a raw checkpoint needs --refine-mode
    parser.add_argument("--out", help="per-item results and the medians (JSON)")
    parser.add_argument("--plot", help="heat maps of the medians (PNG)")
    args = parser.parse_args(argv)
    try:
        separator = Separator(args.model, jobs=args.jobs, refine=refine_request(args))
        items, _ = find_items(args.dataset, args.split)
    except UnweaveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sources = list(separator.sources)
    rows = []
    for item in items[: args.max_items]:
        loaded = load_item(item, sources, int(separator.model.audio_channels))
        rate, mix, refs = loaded.sample_rate, loaded.mixture, loaded.references.float()
        if args.seconds:
            n = min(mix.shape[-1], int(args.seconds * rate))
            start = (mix.shape[-1] - n) // 2
            mix, refs = mix[..., start:start + n], refs[..., start:start + n]
        with torch.inference_mode():
            stems = separator.separate_tensor(mix, rate)
        est = torch.stack([stems[s] for s in sources]).float()
        row = item_balance(est, refs, rate)
        row["present"] = [not silent for silent in silent_sources(refs)]
        rows.append({"item": item.name, **row})
        print(item.name, file=sys.stderr)
    tables = {key: medians(rows, key, len(sources), len(EDGES) - 1)
              for key in ("level", "band_sdr")}
    labels = band_labels()
    for key, table in tables.items():
        print(f"\n{key} (dB, median over items holding the stem)")
        print(f"{'':8}" + "".join(f"{b:>11}" for b in labels))
        for s, name in enumerate(sources):
            print(f"{name:8}" + "".join(f"{v:11.1f}" for v in table[s]))
    if args.out:
        payload = {"model": args.model, "dataset": args.dataset, "split": args.split,
                   "seconds": args.seconds, "bands": labels, "sources": sources,
                   "medians": {k: t.tolist() for k, t in tables.items()},
                   "items": [{k: (v.tolist() if isinstance(v, np.ndarray) else v)
                              for k, v in r.items()} for r in rows]}
        write_text_atomic(Path(args.out), json.dumps(payload, indent=1) + "\n")
    if args.plot:
        plot(Path(args.plot), tables, sources, f"{args.model} on {len(rows)} {args.split} items")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
