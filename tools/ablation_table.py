"""Markdown table of validation scores across training runs (for ablations).

Usage: python tools/ablation_table.py runs/ablate_* [--keys si_sdr/speech sdr/speech]
Reads each run's metrics.jsonl (the mixture baseline and every validation) and its config.yaml.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--keys", nargs="+", default=["si_sdr/speech", "sdr/speech"])
    args = ap.parse_args()
    print("| run | input | predict | steps | " + " | ".join(
        f"{k} (mixture)" for k in args.keys) + " |")
    print("|---" * (4 + len(args.keys)) + "|")
    for run in args.runs:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        base = next((r for r in rows if r["kind"] == "baseline"), {})
        valid = [r for r in rows if r["kind"] == "valid"]
        if not valid:
            continue
        kw = yaml.safe_load((run / "config.yaml").read_text())["model"]["kwargs"]
        last = valid[-1]
        cells = [f"{last[k]:.2f} ({base[k]:.2f})" if k in base else f"{last[k]:.2f}"
                 for k in args.keys]
        print(f"| {run.name} | {kw.get('input', '-')} | {kw.get('predict', '-')} | "
              f"{last['step']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
