"""Deepen a trained Conv-TasNet (more temporal blocks) without changing its output.

    python tools/deepen_tasnet.py src/unweave/pretrained/weights/tasnet.pt runs/tasnet_deep/init.pt \
        --blocks 8

More blocks per repeat (dilations up to 2**(X-1) frames) widen the separator's receptive field;
more repeats stack further passes over it. A small model that has stopped improving can then go
on training with more context from where it is, rather than from scratch (the Net2Net
"deeper" growth, Chen, Goodfellow & Shlens 2016). The deeper model computes the same function as
the old one (checked on a random input before writing):

- each old block (repeat r, block x) keeps its weights at the same (r, x) of the new layout;
- every new block is initialised as PyTorch initialises it, except its residual and skip output
  convolutions, which start at zero: it adds nothing until training moves them, and they get
  gradients from the first step;
- the old network's last block had no residual output (it would have gone unused); where it is
  no longer last, its new residual convolution starts at zero too.
"""

from __future__ import annotations

import sys

import torch
from growth import check_and_save, load_old, parser, refuse_existing

from unweave.models.conv_tasnet import ConvTasNet
from unweave.pretrained.checkpoint import model_kwargs
from unweave.registry import build_model


def deepen(old: ConvTasNet, blocks: int, repeats: int, *, seed: int = 0) -> ConvTasNet:
    """The same Conv-TasNet with ``blocks`` x ``repeats`` temporal blocks (each >= the old)."""
    kwargs = model_kwargs(old)
    old_blocks, old_repeats = int(kwargs["blocks"]), int(kwargs["repeats"])
    if blocks < old_blocks or repeats < old_repeats:
        raise ValueError(f"cannot shrink: blocks {old_blocks} -> {blocks}, "
                         f"repeats {old_repeats} -> {repeats}")
    with torch.random.fork_rng():  # the new blocks' init, without touching the caller's RNG
        torch.manual_seed(seed)
        new = build_model("conv_tasnet", **{**kwargs, "blocks": blocks, "repeats": repeats})
    # same kwargs but blocks/repeats: everything outside the temporal blocks has the same layout
    new.load_state_dict({k: v for k, v in old.state_dict().items() if not k.startswith("tcn.")},
                        strict=False)
    with torch.no_grad():
        for block in new.tcn:
            for conv in (block.residual, block.skip):
                if conv is not None:
                    conv.weight.zero_()
                    conv.bias.zero_()
    for r in range(old_repeats):
        for x in range(old_blocks):
            # strict=False: the old last block had no residual conv; its new one stays at zero
            new.tcn[r * blocks + x].load_state_dict(old.tcn[r * old_blocks + x].state_dict(),
                                                    strict=False)
    return new


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--blocks", type=int, help="temporal blocks per repeat (default: as before)")
    ap.add_argument("--repeats", type=int, help="repeats (default: as before)")
    args = ap.parse_args(argv)
    old = load_old(args.checkpoint, ConvTasNet, "conv_tasnet")
    if old is None:
        return 1
    kwargs = model_kwargs(old)
    blocks = args.blocks or int(kwargs["blocks"])
    repeats = args.repeats or int(kwargs["repeats"])
    if (blocks, repeats) == (int(kwargs["blocks"]), int(kwargs["repeats"])):
        print("error: give a larger --blocks or --repeats", file=sys.stderr)
        return 1
    if refuse_existing(args.out):
        return 1
    try:
        deep = deepen(old, blocks, repeats, seed=args.seed)
    except ValueError as exc:
        print(f"error: {args.checkpoint}: {exc}", file=sys.stderr)
        return 1
    change = f"blocks x repeats {kwargs['blocks']} x {kwargs['repeats']} -> {blocks} x {repeats}"
    return check_and_save(old, deep, args.checkpoint, args.out, arch="conv_tasnet", change=change,
                          meta={"old_blocks": int(kwargs["blocks"]),
                                "old_repeats": int(kwargs["repeats"])})


if __name__ == "__main__":
    sys.exit(main())
