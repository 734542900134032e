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


# unweave.inference.refine.REFINE_MODES, spelt out so that building the parser imports no torch
REFINE_CHOICES = ("soft", "spatial")


def _number(convert, check, what: str):
    """An argparse ``type`` that converts with ``convert`` and accepts what ``check`` allows,
    so that a bad value is argparse's one-line error (exit 2) instead of a traceback later."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


#: argparse types of the chunking options shared by ``separate`` and ``evaluate``
overlap_fraction = _number(float, lambda v: 0.0 <= v < 1.0, "a fraction in [0, 1)")
count = _number(int, lambda v: v >= 0, "a whole number >= 0")
positive_int = _number(int, lambda v: v > 0, "a whole number > 0")
seconds = _number(float, lambda v: v > 0 and v != float("inf"), "a positive number of seconds")


def add_refine_arguments(p: argparse.ArgumentParser) -> None:
    """``--refine / --no-refine`` and ``--refine-mode``, shared by ``separate`` and
    ``evaluate``; :func:`refine_request` turns them into ``Separator``'s ``refine``."""
    p.add_argument("--refine", action=argparse.BooleanOptionalAction, default=None,
                   help="share the mixture out among the stems by soft masks from their "
                        "spectrograms (default: the model's setting, see `unweave models`)")
    p.add_argument("--refine-mode", choices=REFINE_CHOICES, default=None,
                   help="'spatial' (the default) also uses where each source sits in the "
                        "stereo field (a multichannel Wiener filter); 'soft' does not; implies "
                        "--refine")


def add_band_extension_argument(p: argparse.ArgumentParser) -> None:
    """``--band-extension / --no-band-extension``, shared by ``separate`` and ``evaluate``."""
    p.add_argument("--band-extension", action=argparse.BooleanOptionalAction, default=True,
                   help="when the file's sample rate is above the model's, share the mixture's "
                        "content above the model's band among the stems (default: on; off "
                        "leaves the stems empty above the model's Nyquist frequency)")


def add_chunking_arguments(p: argparse.ArgumentParser) -> None:
    """How a model runs over a file, shared by ``separate`` and ``evaluate``: ``--shifts``,
    ``--overlap``, the refinement and band-extension options and ``--segment``."""
    p.add_argument("--shifts", type=count, default=0,
                   help="average over N random time shifts (slower, slightly better; default: 0)")
    p.add_argument("--overlap", type=overlap_fraction, default=None,
                   help="overlap between chunks (0-1; default: the model's, else 0.25)")
    add_refine_arguments(p)
    add_band_extension_argument(p)
    p.add_argument("--segment", type=seconds, default=None, help="chunk length in seconds")


def refine_request(args: argparse.Namespace) -> bool | str | None:
    """None (the model's setting), False, True (the model's mode) or a mode name."""
    if args.refine_mode is not None:
        if args.refine is False:
            raise UnweaveError("--refine-mode and --no-refine contradict each other")
        return args.refine_mode
    return args.refine


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
