"""``unweave data``: build training corpora from Debian packages, and check corpora.

    unweave data build TASK --out DIR [--limit MINUTES] [--cache DIR] [--jobs N] [--bass-lines]
                       [--variants N]
    unweave data check DIR [--json]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import time
from pathlib import Path

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
    build.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                       help="worker processes (music4, vocals, soundtrack; default 1): each "
                       "writes its share of the items, then one pass writes the manifest; "
                       "needs a full build (no --limit)")
    build.add_argument("--bass-lines", action="store_true",
                       help="music4 only: also file as bass the mostly monophonic lines at or "
                       "below E2 that the MIDI plays on other presets (a sawtooth lead or a "
                       "cello as the bass part); needs a new output folder")
    build.add_argument("--variants", type=int, default=None, metavar="N",
                       help="music4 only: renderings of each training song (kit, presets, "
                       "tempo, key, reverb, balance and singer drawn anew; default 2); a build "
                       "with more variants adds them to an existing folder")
    build.add_argument("--chorales", type=int, default=None, metavar="N",
                       help="music4 only: add N Bach chorales from music21's corpus to the "
                       "training songs (soprano sung, alto and tenor as other, the bass on a "
                       "bass preset; needs music21); adds them to an existing folder")
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


def _build_shard(job: tuple[str, str, dict]) -> tuple[int, dict]:
    """One shard of a parallel build, in a worker process: (module name, out, kwargs) ->
    (shard index, its result)."""
    name, out, kwargs = job
    return kwargs["shard"][0], importlib.import_module(name).build(out, **kwargs)


def build_corpus(module, out: str, *, cache, limit_minutes: float | None, progress: bool,
                 jobs: int = 1, **options) -> dict:
    """Run ``module.build``; with jobs > 1, in that many processes, each writing its share.

    Every item draws from its own seeded generator, so a parallel build writes the same items
    as a serial one (with the same content, up to FluidSynth's renders, which depend slightly on
    what the synthesizer rendered before: a resumed serial build differs the same way). A last
    serial pass then finds every item done, records it and writes the manifest and
    dataset.json. ``options`` go to ``module.build`` as they are.
    """
    if jobs > 1 and "shard" not in inspect.signature(module.build).parameters:
        print(f"{module.__name__.rsplit('.', 1)[-1]}: builds in one process (--jobs ignored)",
              file=sys.stderr)
        jobs = 1
    if jobs == 1:
        return module.build(out, cache=cache, limit_minutes=limit_minutes, progress=progress,
                            **options)
    if limit_minutes is not None:
        raise UnweaveError("a parallel build (--jobs > 1) needs a full build: drop --limit or "
                           "use --jobs 1")
    from multiprocessing import get_context

    from ..data import debs
    from ..fileio import write_text_atomic

    start = time.time()
    debs.fetch(list(module.PACKAGES), cache)  # download and unpack once, before the workers
    shards = [(module.__name__, out, dict(cache=cache, progress=progress, shard=(k, jobs),
                                          **options)) for k in range(jobs)]
    # in the order the shards finish: the first one to fail raises here at once, and leaving
    # the block terminates the others (their finished items are kept; a rerun resumes)
    with get_context("spawn").Pool(jobs) as pool:
        results = [r for _, r in sorted(pool.imap_unordered(_build_shard, shards),
                                        key=lambda done: done[0])]
    info = module.build(out, cache=cache, limit_minutes=None, progress=False, **options)
    info["skipped_sources"] = list(dict.fromkeys(
        [s for r in results for s in r["skipped_sources"]] + info.get("skipped_sources", [])))
    info["build_seconds"] = round(time.time() - start, 1)
    info["jobs"] = jobs
    write_text_atomic(Path(out) / "dataset.json", json.dumps(info, indent=2))
    return info


def music4_options(args: argparse.Namespace) -> dict:
    """The music4-only build options given -> ``build`` keyword arguments (an error for any
    other task, or for a count out of range)."""
    given = {"--bass-lines": ("low_lines_to_bass", True if args.bass_lines else None, None),
             "--variants": ("variants", args.variants, 1),
             "--chorales": ("chorales", args.chorales, 0)}
    options = {}
    for flag, (key, value, least) in given.items():
        if value is None:
            continue
        if args.task != "music4":
            raise UnweaveError(f"{flag} is a music4 option, not one of {args.task}")
        if least is not None and value < least:
            raise UnweaveError(f"{flag} must be at least {least}, got {value}")
        options[key] = value
    return options


def run(args: argparse.Namespace) -> int:
    if args.data_command == "build":
        if args.limit is not None and args.limit <= 0:
            raise UnweaveError(f"--limit must be positive minutes, got {args.limit}")
        if args.jobs < 1:
            raise UnweaveError(f"--jobs must be at least 1, got {args.jobs}")
        options = music4_options(args)
        if Path(args.out).exists() and not Path(args.out).is_dir():
            raise UnweaveError(f"--out {args.out}: not a folder (a file is there)")
        module = importlib.import_module(f"..data.{TASKS[args.task]}", __package__)
        start = time.time()
        info = build_corpus(module, args.out, cache=args.cache, limit_minutes=args.limit,
                            progress=not args.no_progress, jobs=args.jobs, **options)
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
