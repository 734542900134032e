"""``unweave evaluate MODEL DATASET``: score a model on a folder of tracks with reference stems.

Writes ``items/<track>.json``, ``summary.json``, ``summary.md`` and ``plots/`` to ``--out`` and
prints the summary table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UnweaveError
from . import add_chunking_arguments, positive_int, refine_request

EPILOG = """\
DATASET is a folder of tracks, TRACK/<stem>.wav (+ optional TRACK/mixture.wav; otherwise the
mixture is the sum of the stems), a corpus root with split folders, or a manifest.csv (with a
split column, --split picks its rows). --split defaults to test, then valid. Stems are named
after the model's sources.

metrics: sdr (museval v4 framewise median, 1 s), si_sdr, snr, mdx_sdr, isr/sir/sar (BSS Eval v4,
slow), pesq, stoi (need the pesq / pystoi packages: pip install 'unweave[quality]').

example: unweave evaluate default musdb18hq --split test --metrics sdr,si_sdr --out eval/
"""


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("model", help="model name (see `unweave models`) or checkpoint path")
    parser.add_argument("dataset", help="dataset folder or manifest.csv")
    parser.add_argument("--metrics", default="sdr,si_sdr,snr",
                        help="comma-separated metrics (default: %(default)s)")
    parser.add_argument("-o", "--out", default=None,
                        help="output folder (default: evaluation/<model>-<dataset>)")
    parser.add_argument("--split", default=None, help="split subfolder or manifest split value")
    parser.add_argument("--max-items", type=int, default=None, help="score only the first N items")
    parser.add_argument("--no-oracle", action="store_true", help="skip the IRM oracle")
    parser.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    parser.add_argument("--spectrograms", type=int, default=3, metavar="N",
                        help="spectrogram figures for the first N items (default: %(default)s)")
    add_chunking_arguments(parser)
    parser.add_argument("-d", "--device", default="cpu", help="cpu, cuda or mps (default: cpu)")
    parser.add_argument("-j", "--jobs", type=positive_int, default=None,
                        help="CPU threads for the model")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no table")


def _default_out(model: str, dataset: str) -> Path:
    label = Path(model).stem if Path(model).suffix else model
    return Path("evaluation") / f"{label}-{Path(dataset).resolve().name or 'dataset'}"


def run(args: argparse.Namespace) -> int:
    from .. import evaluate as ev

    if args.max_items is not None and args.max_items < 1:
        raise UnweaveError(f"--max-items {args.max_items}: must be at least 1")
    if args.spectrograms < 0:
        raise UnweaveError(f"--spectrograms {args.spectrograms}: must be >= 0")
    metrics = ev.check_metrics(args.metrics.split(","))
    ev.find_items(args.dataset, args.split)  # fail on a bad dataset before loading the model
    out = Path(args.out) if args.out else _default_out(args.model, args.dataset)
    summary = ev.evaluate(
        args.model,
        args.dataset,
        out_dir=out,
        metrics=metrics,
        split=args.split,
        oracle=not args.no_oracle,
        plots=not args.no_plots,
        spectrogram_items=args.spectrograms,
        max_items=args.max_items,
        shifts=args.shifts,
        overlap=args.overlap,
        refine=refine_request(args),
        band_extension=args.band_extension,
        segment=args.segment,
        device=args.device,
        jobs=args.jobs,
        progress=not args.quiet,
    )
    if not args.quiet:
        print((out / "summary.md").read_text(encoding="utf-8"))
    print(f"wrote {out} ({summary['items']} items)")
    return 0
