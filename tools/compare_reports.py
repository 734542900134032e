"""Compare `unweave evaluate` reports item by item, on the items a bag's weights were chosen on
and on the rest.

    python tools/compare_reports.py corpora/soundtrack mrx=reports/st_v14 bag=reports/st_bag \
        [--split valid] [--first 40] [--metric si_sdr] [--out docs/results/heldout.txt] \
        [--plot docs/results/heldout.png]

Each ``NAME=DIR`` is a report folder (``DIR/items/*.json``, as `unweave evaluate --out DIR`
writes). Items are taken in the corpus's order (the order `unweave evaluate` and
``tools/bag_weights.py --max-items N`` use), so ``--first N`` splits them into the N the weights
were chosen on and the held-out rest. For each group and source: the median score of every
report (items where a report has no score are left out of its median), the IRM oracle's median
(from the first report that has one) with each report's ratio to it, and every report against the
first: on how many items it is better and its mean difference. ``--plot`` draws the same item by
item: one panel per source, a bar per report and item, the oracle as a black tick.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from unweave.evaluate import find_items, safe_name
from unweave.fileio import write_text_atomic


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


def per_item(report: dict[str, dict], names: list[str], source: str, metric: str,
             condition: str = "estimate") -> dict[str, float]:
    """{item: score} of ``report`` for the items of ``names`` that have one."""
    out = {}
    for name in names:
        got = report.get(name, {}).get(source, {}).get(metric, {}).get(condition)
        if got is not None:
            out[name] = float(got)
    return out


def oracle_per_item(reports: dict[str, dict[str, dict]], names: list[str], source: str,
                    metric: str) -> dict[str, float]:
    """{item: IRM oracle score}, each item's from the first report that has one."""
    oracle: dict[str, float] = {}
    for report in reports.values():
        oracle = {**per_item(report, names, source, metric, "oracle_irm"), **oracle}
    return oracle


def compare(reports: dict[str, dict[str, dict]], names: list[str], sources: list[str],
            metric: str) -> list[str]:
    """Lines of text for the items ``names``: medians, oracle ratios, wins against the first."""
    lines = []
    for source in sources:
        oracle = oracle_per_item(reports, names, source, metric)
        oracle_median = float(np.median(list(oracle.values()))) if oracle else None
        scores = {label: per_item(r, names, source, metric) for label, r in reports.items()}
        parts = []
        for label, got in scores.items():
            if got:
                median = float(np.median(list(got.values())))
                ratio = f" ({median / oracle_median:.0%})" if oracle_median else ""
                parts.append(f"{label} {median:.2f}{ratio}")
        head = f"  {source}: median {metric} " + ", ".join(parts)
        if oracle_median is not None:
            head += f"; oracle {oracle_median:.2f}"
        lines.append(head)
        base_label, base = next(iter(scores.items()))
        for label, got in list(scores.items())[1:]:
            diff = np.array([got[n] - base[n] for n in names if n in got and n in base])
            if diff.size:
                lines.append(f"    {label} vs {base_label}: better on {(diff > 0).sum()}/"
                             f"{len(diff)} items, mean {diff.mean():+.2f} dB, median "
                             f"{np.median(diff):+.2f} dB")
    return lines


def plot(reports: dict[str, dict[str, dict]], names: list[str], sources: list[str], metric: str,
         path: Path) -> None:
    """One panel per source: each report's score per item as bars, the IRM oracle as ticks."""
    from unweave.metrics.report import _figure, _save

    fig = _figure(1.5 + 0.9 * len(names), 2.2 * len(sources) + 0.6)
    width = 0.8 / len(reports)
    x = np.arange(len(names))
    for row, source in enumerate(sources):
        ax = fig.add_subplot(len(sources), 1, row + 1)
        oracle = oracle_per_item(reports, names, source, metric)
        for k, (label, report) in enumerate(reports.items()):
            got = per_item(report, names, source, metric)
            ax.bar([x[i] + (k - (len(reports) - 1) / 2) * width for i, n in enumerate(names)
                    if n in got], [got[n] for n in names if n in got], width, label=label)
        ax.plot([x[i] for i, n in enumerate(names) if n in oracle],
                [oracle[n] for n in names if n in oracle], "_", color="k", ms=22, mew=2,
                label="IRM oracle")
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.set_ylabel(f"{source}\n{metric} (dB)")
        ax.set_xticks(x, [n if row == len(sources) - 1 else "" for n in names],
                      rotation=20, ha="right", fontsize="small")
        ax.grid(axis="y", alpha=0.3)
        if row == 0:
            ax.legend(fontsize="small", ncol=len(reports) + 1, loc="upper left")
    _save(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus")
    parser.add_argument("reports", nargs="+", metavar="NAME=DIR")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--first", type=int, help="report the first N items and the rest apart")
    parser.add_argument("--metric", default="si_sdr")
    parser.add_argument("--out", type=Path, help="also write the text here")
    parser.add_argument("--plot", type=Path, help="draw every item's scores in this PNG")
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
    if args.plot:
        plot(reports, names, sources, args.metric, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
