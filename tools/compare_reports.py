"""Compare `unweave evaluate` reports item by item, on the items a bag's weights were chosen on
and on the rest.

    python tools/compare_reports.py corpora/soundtrack mrx=reports/st_v14 bag=reports/st_bag \
        [--split valid] [--first 40] [--metric si_sdr] [--out docs/results/heldout.txt]

Each ``NAME=DIR`` is a report folder (``DIR/items/*.json``, as `unweave evaluate --out DIR`
writes). Items are taken in the corpus's order (the order `unweave evaluate` and
``tools/bag_weights.py --max-items N`` use), so ``--first N`` splits them into the N the weights
were chosen on and the held-out rest. For each group and source: the median score of every
report (items where a report has no score are left out of its median), the IRM oracle's median
(from the first report that has one) with each report's ratio to it, and every report against the
first: on how many items it is better and its mean difference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from unweave.data.common import write_text_atomic
from unweave.evaluate import find_items, safe_name


def load_report(folder: Path, names: list[str]) -> dict[str, dict]:
    """{item: per-source scores} for the items of ``names`` found under ``folder/items``."""
    items = folder / "items"
    if not items.is_dir():
        raise SystemExit(f"{folder}: no items/ folder (not an `unweave evaluate --out` report)")
    found = {}
    for name in names:
        path = items / f"{safe_name(name)}.json"
        if path.is_file():
            found[name] = json.loads(path.read_text())["scores"]
    if not found:
        raise SystemExit(f"{folder}: none of the corpus's items were scored")
    return found


def value(scores: dict, source: str, metric: str, condition: str) -> float | None:
    got = scores.get(source, {}).get(metric, {}).get(condition)
    return None if got is None else float(got)


def compare(reports: dict[str, dict[str, dict]], names: list[str], sources: list[str],
            metric: str) -> list[str]:
    """Lines of text for the items ``names``: medians, oracle ratios, wins against the first."""
    lines = []
    base = next(iter(reports))
    for source in sources:
        oracle = []
        for n in names:
            found = [v for r in reports.values() if n in r
                     for v in [value(r[n], source, metric, "oracle_irm")] if v is not None]
            oracle += found[:1]
        oracle_median = float(np.median(oracle)) if oracle else None
        parts = []
        for label, report in reports.items():
            got = [v for n in names if n in report
                   for v in [value(report[n], source, metric, "estimate")] if v is not None]
            if not got:
                continue
            median = float(np.median(got))
            ratio = f" ({median / oracle_median:.0%})" if oracle_median else ""
            parts.append(f"{label} {median:.2f}{ratio}")
        head = f"  {source}: median {metric} " + ", ".join(parts)
        if oracle_median is not None:
            head += f"; oracle {oracle_median:.2f}"
        lines.append(head)
        for label, report in list(reports.items())[1:]:
            pairs = [(a, b) for n in names if n in report and n in reports[base]
                     for a, b in [(value(reports[base][n], source, metric, "estimate"),
                                   value(report[n], source, metric, "estimate"))]
                     if a is not None and b is not None]
            if pairs:
                diff = np.array([b - a for a, b in pairs])
                lines.append(f"    {label} vs {base}: better on {(diff > 0).sum()}/{len(diff)} "
                             f"items, mean {diff.mean():+.2f} dB, median {np.median(diff):+.2f} dB")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus")
    parser.add_argument("reports", nargs="+", metavar="NAME=DIR")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--first", type=int, help="report the first N items and the rest apart")
    parser.add_argument("--metric", default="si_sdr")
    parser.add_argument("--out", type=Path, help="also write the text here")
    args = parser.parse_args(argv)
    labelled = {}
    for spec in args.reports:
        label, sep, folder = spec.partition("=")
        if not sep or not label or not folder:
            raise SystemExit(f"{spec!r}: expected NAME=DIR")
        labelled[label] = Path(folder)
    items, _ = find_items(args.corpus, args.split)
    names = [it.name for it in items]
    reports = {label: load_report(folder, names) for label, folder in labelled.items()}
    sources = list(next(iter(next(iter(reports.values())).values())))
    groups = [(f"all {len(names)} items", names)]
    if args.first:
        groups += [(f"first {args.first} (chosen on)", names[:args.first]),
                   (f"the other {len(names[args.first:])} (held out)", names[args.first:])]
    lines = []
    for title, group in groups:
        lines.append(title)
        lines += compare(reports, group, sources, args.metric)
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out:
        write_text_atomic(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
