"""How much the models' 22.05 kHz rate costs: SDR with the band above their Nyquist filled in.

    python tools/band_headroom.py tasnet corpora/music4/manifest.csv [--max-items N] [--out F]

The shipped models run at 22.05 kHz, so their stems hold nothing above ~11 kHz while the
references (44.1 kHz) do. For each validation item this scores, with the evaluator's SDR:

* ``model``: the model's stems without band extension (``--no-band-extension``; refinement
  as in the catalog);
* ``ideal_band``: the same plus each reference's own high band (an 8th-order Butterworth
  high-pass at 95 % of the model's Nyquist): the most any band extension could add;
* ``extended``: the stems as ``unweave evaluate`` and ``unweave separate`` give them by default,
  with :mod:`unweave.dsp.bandext` sharing out the mixture's band above the model's.

It also prints each reference's share of energy in that high band (median over items).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.signal import butter, sosfiltfilt

from unweave import metrics as M
from unweave.audio import convert
from unweave.dsp.bandext import band_seen, extend_stems
from unweave.evaluate import find_items, load_item, silent_sources
from unweave.fileio import write_text_atomic
from unweave.inference.separator import Separator

CONDITIONS = ("model", "ideal_band", "extended")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="catalog name or checkpoint")
    parser.add_argument("dataset", help="what `unweave evaluate` takes")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--max-items", type=int)
    parser.add_argument("--out", help="per-item results (JSON)")
    args = parser.parse_args(argv)
    separator = Separator(args.model, jobs=2, band_extension=False)
    sources, model_rate = separator.sources, separator.sample_rate
    items, _ = find_items(args.dataset, args.split)
    results: dict[str, dict] = {}
    for item in items[: args.max_items]:
        loaded = load_item(item, sources, int(separator.model.audio_channels))
        rate, refs = loaded.sample_rate, loaded.references.float()
        with torch.inference_mode():
            stems = separator.separate_tensor(loaded.mixture, rate)
        est = torch.stack([stems[s] for s in sources]).float()
        # the extension as Separator applies it, on the same stems (no second separation)
        band = band_seen(convert.resample(loaded.mixture, rate, model_rate), model_rate, rate,
                         est.shape[-1])
        extended = extend_stems(est, loaded.mixture.float(), band, model_rate, rate)
        refs_np = refs.double().numpy()  # the filter and every condition's SDR read it
        sos = butter(8, 0.95 * model_rate / 2, "highpass", fs=rate, output="sos")
        high = torch.from_numpy(sosfiltfilt(sos, refs_np, axis=-1).copy()).float()
        sets = {"model": est, "ideal_band": est + high,
                "extended": extended}
        silent = silent_sources(refs)
        row: dict[str, list] = {
            "band_share": [None if silent[i] else float(high[i].square().sum()
                                                        / refs[i].square().sum())
                           for i in range(len(sources))]}
        for name, stems_set in sets.items():
            sdr = M.sdr_museval(refs_np, stems_set.double().numpy(), rate)
            row[name] = [None if silent[i] or not np.isfinite(sdr[i]) else float(sdr[i])
                         for i in range(len(sources))]
        results[item.name] = row
        print(item.name, json.dumps(row), file=sys.stderr)
    print("source       " + " ".join(f"{s:>8}" for s in sources))
    for name in ("band_share", *CONDITIONS):
        medians = []
        for i in range(len(sources)):
            values = [r[name][i] for r in results.values() if r[name][i] is not None]
            medians.append(float(np.median(values)) if values else float("nan"))
        print(f"{name:<12} " + " ".join(f"{m:8.3f}" for m in medians))
    if args.out:
        write_text_atomic(Path(args.out), json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
