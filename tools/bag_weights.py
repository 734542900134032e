"""Choose a bag's per-source weights on whole validation songs.

    python tools/bag_weights.py corpora/music4 tasnet demucs unet4 vocals \
        [--split valid] [--cache /tmp/bag_cache] [--grid 0,0.5,1,2] [--out reports/bag_weights]

Each member (catalog name or checkpoint) separates every song once, unrefined, at its own rate;
its raw estimates are cached (float16) so later runs reuse them. A bag's stems are then the
weighted per-source average of the members' estimates, refined by soft masks as the ``Bag`` +
``Refined`` pipeline does (here over the whole song rather than per chunk), brought to the songs'
rate with band extension (as ``Separator`` does by default; ``--no-band-extension``: without),
and scored with the evaluator's SDR (``--metric si_sdr``: SI-SDR). The search is one pass of
coordinate descent: for each source, each member's weight is tried at every grid value while the
others stay, and a trial is kept when it raises the objective by more than 0.01 dB:
``--objective stem`` (default) that source's median over songs; ``joint`` the sum over sources of
their medians (a weight also moves the other stems, which share each bin's refinement filter);
``joint-mean`` the sum of their means (steadier than medians over few songs).
Members may estimate only some of the first member's
sources (a vocals/accompaniment model contributes its vocals). Writes ``weights.json`` (the
chosen rows, ready for a catalog ``bag`` entry) and ``search.csv`` (every trial).

The weights are chosen on the songs they are scored on: report the bag's scores as such.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from unweave.audio import convert
from unweave.dsp.bandext import band_seen, extend_stems
from unweave.dsp.postfilter import fft_size, soft_mask_refine
from unweave.evaluate import find_items, load_item, safe_name, score_item
from unweave.fileio import write_text_atomic
from unweave.inference.separator import Separator
from unweave.metrics.report import stats


def weights_fingerprint(model: torch.nn.Module) -> str:
    """12 hex digits of the sha256 of the model's parameters and buffers, in state-dict order."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def member_estimates(member: str, sep: Separator, mixtures: dict[str, torch.Tensor],
                     cache: Path) -> tuple[tuple[str, ...], dict[str, torch.Tensor]]:
    """(sources, {item: (S_member, C, T)}): ``sep``'s raw estimates of ``mixtures`` (at its
    rate), cached under ``cache`` by member name and a fingerprint of its weights (retrained
    weights under the same name are separated afresh)."""
    folder = cache / f"{safe_name(member)}-{weights_fingerprint(sep.model)}"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, mix in mixtures.items():
        path = folder / f"{name}.pt"
        if path.is_file():
            out[name] = torch.load(path).float()
            continue
        stems = sep.separate_tensor(mix, sep.sample_rate)
        out[name] = torch.stack([stems[s] for s in sep.sources])
        torch.save(out[name].half(), path)
        print(f"  {member}: {name}", file=sys.stderr)
    return tuple(sep.sources), out


Summary = dict[str, dict[str, float]]  # {"median"|"mean": {source: score}}
OBJECTIVES = ("stem", "joint", "joint-mean")


def summarise(per_source: dict[str, list[float | None]]) -> Summary:
    """Median and mean over songs of each source's scores (``metrics.report.stats``; None
    scores left out, NaN where a source has none)."""
    got = {s: stats(v) for s, v in per_source.items()}
    return {k: {s: float("nan") if g[k] is None else g[k] for s, g in got.items()}
            for k in ("median", "mean")}


def objective(name: str, sources: list[str]) -> Callable[[Summary, int], float]:
    """The value a trial that changed source ``i``'s weights must raise (see the module doc)."""
    if name == "stem":
        return lambda got, i: got["median"][sources[i]]
    stat = "mean" if name == "joint-mean" else "median"
    return lambda got, i: sum(got[stat][s] for s in sources)


def coordinate_descent(weights: np.ndarray, tunable: np.ndarray, grid: list[float],
                       score: Callable[[np.ndarray], Summary],
                       value: Callable[[Summary, int], float], sources: list[str],
                       members: list[str]) -> tuple[np.ndarray, list]:
    """One pass over the sources and, within each, the members whose weight ``tunable[k, i]``
    allows: every grid value is tried and kept when ``value`` rises by more than 0.01 dB (a
    source's weights never all 0). Returns the weights and the trials ``(label, rows, summary)``,
    the start first."""
    best = score(weights)
    trials = [("start", weights.tolist(), best)]
    print(f"start {best['median']}", file=sys.stderr)
    for i, s in enumerate(sources):
        for k, member in enumerate(members):
            if not tunable[k, i]:
                continue
            for g in grid:
                if g == weights[k, i]:
                    continue
                trial = weights.copy()
                trial[k, i] = g
                if trial[:, i].sum() == 0:
                    continue
                got = score(trial)
                trials.append((f"{s}:{member}={g}", trial.tolist(), got))
                print(f"{s} {member}={g}: {value(got, i):.2f} (best {value(best, i):.2f})",
                      file=sys.stderr)
                if value(got, i) > value(best, i) + 0.01:
                    weights, best = trial, got
    return weights, trials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus")
    parser.add_argument("members", nargs="+", help="catalog names or checkpoints; the first "
                        "member's sources are the bag's")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--max-items", type=int, help="choose on the first N items only (then "
                        "`unweave evaluate` the bag on all of them: the others show whether the "
                        "weights carry over)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/unweave_bag_cache"))
    parser.add_argument("--grid", default="0,0.5,1,2")
    parser.add_argument("--init", help="JSON rows of starting weights (default: 1 where a "
                        "member has the source)")
    parser.add_argument("--tune", help="comma-separated members whose weights are searched "
                        "(default: all)")
    parser.add_argument("--spatial", action="store_true", help="refine with per-source spatial "
                        "covariances (soft_mask_refine(spatial=True)), as a catalog entry with "
                        "\"refine\": \"spatial\" does")
    parser.add_argument("--sources", help="comma-separated sources whose weights are searched "
                        "(default: all)")
    parser.add_argument("--band-extension", action=argparse.BooleanOptionalAction, default=True,
                        help="extend the stems above the model's band, as the separator does "
                        "by default")
    parser.add_argument("--metric", choices=("sdr", "si_sdr"), default="sdr",
                        help="the score the weights are chosen by (SDR for music, SI-SDR for "
                        "soundtracks)")
    parser.add_argument("--objective", choices=OBJECTIVES, default="stem",
                        help="what a trial must raise: its source's median (stem), the sum of "
                        "every source's median (joint) or of every source's mean (joint-mean)")
    parser.add_argument("--out", type=Path, default=Path("reports/bag_weights"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    grid = [float(g) for g in args.grid.split(",")]
    tune = set(args.tune.split(",")) if args.tune else set(args.members)
    if tune - set(args.members):
        raise SystemExit(f"--tune: not a member: {', '.join(sorted(tune - set(args.members)))}")

    separators = [Separator(m, refine=False, jobs=1) for m in args.members]
    first = separators[0]
    sources, rate_model, channels = first.sources, first.sample_rate, first.model.audio_channels
    for m, sep in zip(args.members, separators, strict=True):
        if sep.sample_rate != rate_model:
            raise SystemExit(f"{m}: sample rate {sep.sample_rate}, the bag's is {rate_model}")
    searched = set(args.sources.split(",")) if args.sources else set(sources)
    if searched - set(sources):
        raise SystemExit(f"--sources: not a source: {', '.join(sorted(searched - set(sources)))}")
    items, _ = find_items(args.corpus, args.split)
    items = items[:args.max_items] if args.max_items else items
    loaded = {it.name: load_item(it, sources, channels) for it in items}
    rate = next(iter(loaded.values())).sample_rate
    n_fft = fft_size(rate_model)
    mix_model = {n: convert.resample(x.mixture, rate, rate_model) for n, x in loaded.items()}
    # the band the model saw, at the songs' rate (for the band extension; once per song)
    mix_band = {n: band_seen(m, rate_model, rate, loaded[n].mixture.shape[-1])
                for n, m in mix_model.items()} if args.band_extension else {}
    members = [member_estimates(m, sep, mix_model, args.cache)
               for m, sep in zip(args.members, separators, strict=True)]
    has = np.array([[s in ms for s in sources] for ms, _ in members], dtype=float)
    weights = has.copy() if not args.init else np.array(json.loads(args.init), dtype=float)

    def score(w: np.ndarray) -> dict[str, float]:
        """Median score per source. Every source is scored together: the evaluator (museval)
        skips the frames where any reference is silent, so one source alone scores
        differently."""
        per_source: dict[str, list[float | None]] = {s: [] for s in sources}
        share = w / w.sum(axis=0)  # each source's weights sum to 1, as in Bag
        for name, x in loaded.items():
            acc = torch.zeros((len(sources),) + tuple(mix_model[name].shape))
            for k, (m_sources, est) in enumerate(members):
                for i, s in enumerate(sources):
                    if share[k, i] > 0:
                        acc[i] += float(share[k, i]) * est[name][m_sources.index(s)]
            refined = soft_mask_refine(mix_model[name], acc, n_fft, spatial=args.spatial)
            back = convert.resample(refined, rate_model, rate)[..., : x.mixture.shape[-1]]
            if args.band_extension:
                back = extend_stems(back, x.mixture, mix_band[name], rate_model, rate)
            scores = score_item(x, back, sources, (args.metric,), oracle=False)["scores"]
            for s in sources:
                per_source[s].append(scores[s][args.metric]["estimate"])
        return summarise(per_source)

    tunable = [[bool(has[k, i]) and args.members[k] in tune and s in searched
                for i, s in enumerate(sources)] for k in range(len(members))]
    weights, trials = coordinate_descent(weights, np.array(tunable), grid, score,
                                         objective(args.objective, sources), sources,
                                         args.members)
    final = next(got for _, rows, got in reversed(trials) if rows == weights.tolist())
    args.out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["trial", "weights", *sources, *(f"{s}_mean" for s in sources)])
    for label, w, got in trials:
        writer.writerow([label, json.dumps(w), *(f"{got['median'][s]:.3f}" for s in sources),
                         *(f"{got['mean'][s]:.3f}" for s in sources)])
    write_text_atomic(args.out / "search.csv", buf.getvalue())
    result = {"corpus": args.corpus, "split": args.split, "items": len(items),
              "members": args.members, "objective": args.objective,
              "weights": weights.tolist(), f"{args.metric}_median": final["median"],
              f"{args.metric}_mean": final["mean"],
              "spatial": args.spatial, "band_extension": args.band_extension,
              "note": "whole-song refinement; weights chosen on these songs"}
    write_text_atomic(args.out / "weights.json", json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
