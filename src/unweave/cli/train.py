"""``unweave train``: train a model from a recipe, or build a training pack.

    unweave train RECIPE.yaml [key=value ...] [--resume] [--out DIR] [--print-config]
    unweave train pack CORPUS OUT.pack [--max-mb 60] [--sample-rate HZ] [--channels N]

Overrides use dotted keys checked against the recipe schema (``unweave.train.config``), e.g.
``optim.lr=3e-4 data.batch_size=16 model.kwargs.depth=4 data.root=corpora/music4``.
``--resume`` continues from ``OUT/state.pt`` (model, optimizer, EMA, step, RNG, best score).
Multi-GPU: ``torchrun --nproc_per_node=N -m unweave train RECIPE.yaml ...``.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import UnweaveError


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true",
                   help="continue from the training state in the output folder")
    p.add_argument("--out", metavar="DIR", help="output folder (overrides out_dir)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config and exit")
    pack = p.add_argument_group("pack options")
    pack.add_argument("--max-mb", type=float, default=60.0, help="pack size budget in MiB")
    pack.add_argument("--sample-rate", type=int, help="pack sample rate (default: corpus rate)")
    pack.add_argument("--channels", type=int, help="pack channels (default: corpus channels)")
    pack.add_argument("--seconds-per-track", type=float,
                      help="excerpt length per track (default: budget spread over tracks)")
    pack.add_argument("--seed", type=int, default=0, help="track order / excerpt seed")


def add_parser(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = __doc__
    p.add_argument("recipe", metavar="RECIPE.yaml|pack",
                   help="training recipe (YAML), or 'pack' to build a training pack")
    # Options may follow the overrides (``RECIPE k=v --resume k=v``): everything after the
    # recipe is collected here and parsed again, intermixed, in ``run``.
    p.add_argument("overrides", nargs=argparse.REMAINDER, metavar="key=value",
                   help="recipe overrides (dotted keys); for 'pack': CORPUS OUT.pack")
    _add_options(p)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one-line error through the CLI's UnweaveError path
        raise UnweaveError(f"unweave train: {message}")


def _reparse(args: argparse.Namespace) -> argparse.Namespace:
    """Parse options that came after the recipe together with the overrides."""
    inner = _Parser(prog="unweave train", add_help=False)
    inner.add_argument("overrides", nargs="*")
    _add_options(inner)
    defaults = {a.dest: a.default for a in inner._actions if a.dest != "overrides"}
    rest = inner.parse_intermixed_args(args.overrides)
    for key, default in defaults.items():  # options before the recipe are kept unless repeated
        value = getattr(rest, key)
        if value != default:
            setattr(args, key, value)
    args.overrides = rest.overrides
    return args


def _run_pack(args: argparse.Namespace) -> int:
    if len(args.overrides) != 2:
        raise UnweaveError("usage: unweave train pack CORPUS OUT.pack [--max-mb 60]")
    from ..train.pack import write_pack

    corpus, out = args.overrides
    summary = write_pack(corpus, out, max_mb=args.max_mb, sample_rate=args.sample_rate,
                         channels=args.channels, seconds_per_track=args.seconds_per_track,
                         seed=args.seed)
    print(f"{summary['path']}: {summary['bytes'] / 2**20:.1f} MiB, "
          f"{summary['sample_rate']} Hz, {summary['channels']} ch, "
          f"train {summary['train_items']}/{summary['train_total']} items "
          f"({summary['train_minutes']} min), "
          f"valid {summary['valid_items']}/{summary['valid_total']} items "
          f"({summary['valid_minutes']} min)")
    return 0


def run(args: argparse.Namespace) -> int:
    args = _reparse(args)
    if args.recipe == "pack":
        return _run_pack(args)
    from ..train.config import dump_config, load_config

    overrides = list(args.overrides)
    if args.out:
        overrides.append(f"out_dir={args.out}")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise UnweaveError(f"override {bad[0]!r}: expected key=value")
    config = load_config(args.recipe, overrides)
    if args.print_config:
        sys.stdout.write(dump_config(config))
        return 0
    from ..train.trainer import Trainer

    result = Trainer(config, resume=args.resume).run()
    return 143 if result["stopped"] else 0  # stopped by SIGTERM: checkpointed, not finished
