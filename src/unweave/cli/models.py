"""``unweave models``: every model with its task, sources, size, weights, data and scores."""

from __future__ import annotations

import argparse
import json


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--all", action="store_true", help="include the tiny test models")
    p.add_argument("--markdown", action="store_true",
                   help="the scores of the trained models as a Markdown table")


def _score_text(scores: dict) -> str:
    parts = []
    for stem, metrics in scores.items():
        if isinstance(metrics, dict):
            parts.append(f"{stem} " + " ".join(f"{k}={v:.2f}" for k, v in metrics.items()
                                               if isinstance(v, (int, float))))
    return "; ".join(parts) or "-"


REFINE_TEXT = {"soft": "soft masks", "spatial": "soft masks with spatial covariances"}
METRIC_NAMES = {"sdr": "SDR", "si_sdr": "SI-SDR", "pesq": "PESQ-WB", "stoi": "STOI"}


def markdown_table(rows: list[dict]) -> str:
    """Per trained model and source: estimate, mixture and IRM-oracle medians of each metric."""
    lines = ["| model | params | source | metric | model | mixture | IRM oracle | model/oracle |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r["trained"]:
            continue
        for stem, metrics in r["scores"].items():
            if not isinstance(metrics, dict):
                continue
            for key, label in METRIC_NAMES.items():
                if key not in metrics:
                    continue
                est, mix = metrics[key], metrics.get(f"{key}_mixture")
                orc = metrics.get(f"{key}_oracle_irm")
                ratio = f"{est / orc:.2f}" if orc and orc > 0 else "-"
                fmt = "{:.2f}".format
                lines.append(f"| {r['name']} | {r['params'] / 1e6:.2f}M | {stem} | {label} | "
                             f"{fmt(est)} | {fmt(mix) if mix is not None else '-'} | "
                             f"{fmt(orc) if orc is not None else '-'} | {ratio} |")
    return "\n".join(lines)


def _weights_text(row: dict) -> str:
    """The weights column: a bag's or cascade's members (a cascade runs them in turn), else the
    sha256 or UNTRAINED."""
    if row.get("members"):
        joint = " > " if row["arch"] == "cascade" else "+"
        return f"{row['arch']}: {joint.join(row['members'])}"
    return f"trained {row['sha256'][:12]}" if row["trained"] else "UNTRAINED"


def run(args: argparse.Namespace) -> int:
    from ..pretrained.catalog import list_models

    rows = list_models(include_tiny=args.all or args.json)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if args.markdown:
        print(markdown_table(rows))
        return 0
    names = [r["name"] + (" *" if r.get("default") else "") for r in rows]
    weights = [_weights_text(r) for r in rows]
    wide, width = max(18, *map(len, names)), max(22, *map(len, weights))
    header = (f"{'name':<{wide}} {'task':<11} {'arch':<12} {'rate':>6} {'params':>8}  "
              f"{'weights':<{width}} sources")
    print(header)
    print("-" * len(header))
    for r, name, text in zip(rows, names, weights, strict=True):
        print(f"{name:<{wide}} {r['task']:<11} {r['arch']:<12} {r['sample_rate']:>6} "
              f"{r['params'] / 1e6:>7.2f}M  {text:<{width}} {','.join(r['sources'])}")
    print("* the default for its task (`unweave separate` without -n uses the music one)\n")
    for r in rows:
        if r["trained"]:
            refine = (f"; stems refined by {REFINE_TEXT[r['refine']]} (--no-refine: raw)"
                      if r["refine"] else "")
            if r["scores"].get("band_extension"):
                refine += f"; scored with band extension above {r['sample_rate'] // 2} Hz"
            print(f"{r['name']}: data: {r['data']}; license: {r['license']}; "
                  f"scores: {_score_text(r['scores'])}{refine}")
        else:
            print(f"{r['name']}: untrained (random weights): no data, no scores")
    return 0
