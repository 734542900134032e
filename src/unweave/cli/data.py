"""``unweave data``: build training corpora from Debian packages, and check corpora.

    unweave data build TASK --out DIR [--limit MINUTES] [--cache DIR]
    unweave data check DIR [--json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

from ..errors import UnweaveError

TASKS = {
    "music4": "build_music4",
    "vocals": "build_vocals",
    "soundtrack": "build_soundtrack",
    "denoise": "build_denoise",
}


def add_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    build = sub.add_parser("build", help="build a training corpus from Debian packages",
                           description="Fetch packages with apt-get download, extract their "
                           "audio and write DIR/{train,valid}/..., manifest.csv/json and "
                           "dataset.json. Finished files are skipped on a re-run.")
    build.add_argument("task", choices=sorted(TASKS), help="which corpus to build")
    build.add_argument("--out", required=True, help="output folder")
    build.add_argument("--limit", type=float, default=None, metavar="MINUTES",
                       help="cap the audio written (minutes, about 80%% train / 20%% valid)")
    build.add_argument("--cache", default=None, metavar="DIR",
                       help="where .deb files are downloaded and unpacked "
                       "(default ~/.cache/unweave)")
    build.add_argument("--no-progress", action="store_true", help="hide progress bars")
    check = sub.add_parser("check", help="check a corpus for silent, clipped, mismatched stems",
                           description="Report silent stems, length/rate/channel mismatches, "
                           "clipping and stems that do not sum to the mixture; exit 1 when "
                           "problems are found.")
    check.add_argument("dir", help="corpus folder (as written by 'unweave data build')")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--tolerance", type=float, default=None,
                       help="largest allowed |sum(stems) - mixture| (default 2e-4)")
    parser.set_defaults(_data_parser=parser)


def run(args: argparse.Namespace) -> int:
    if args.data_command == "build":
        if args.limit is not None and args.limit <= 0:
            raise UnweaveError(f"--limit must be positive minutes, got {args.limit}")
        module = importlib.import_module(f"..data.{TASKS[args.task]}", __package__)
        start = time.time()
        info = module.build(args.out, cache=args.cache, limit_minutes=args.limit,
                            progress=not args.no_progress)
        minutes = info.get("minutes", {})
        print(f"{args.task}: {info['counts']} items, minutes {minutes}, "
              f"{time.time() - start:.0f} s -> {args.out}")
        return 0
    if args.data_command == "check":
        from ..data.check import check_corpus, format_report

        kwargs = {} if args.tolerance is None else {"tolerance": args.tolerance}
        report = check_corpus(args.dir, **kwargs)
        if args.json:
            json.dump(report, sys.stdout, indent=2)
            print()
        else:
            print(format_report(report))
        return 1 if report["problems"] else 0
    args._data_parser.print_help()
    return 2
