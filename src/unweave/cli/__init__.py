"""``unweave`` command line: one module per subcommand, each with ``add_parser`` and ``run``.

Subcommand modules are imported lazily so that ``unweave separate`` never loads the training
stack or the web server.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import UnweaveError

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "separate": ("separate", "separate audio/video files into stems"),
    "models": ("models", "list models, their weights, data, licenses and scores"),
    "data": ("data", "build and check training corpora"),
    "train": ("train", "train a model from a recipe"),
    "evaluate": ("evaluate", "score a model on a dataset"),
    "serve": ("serve", "start the web app and HTTP API"),
}


def _load(name: str):
    return importlib.import_module(f"{__name__}.{SUBCOMMANDS[name][0]}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unweave", description=__doc__.splitlines()[0])
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"unweave {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text)
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        _load(name).add_parser(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    parser = build_parser(only=command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        code = int(_load(args.command).run(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe is reported here, not at exit
        return code
    except UnweaveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `unweave models | head`: the reader left; no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail
        return 141
