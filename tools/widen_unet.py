"""Widen a trained spectrogram U-Net (``channels`` c -> 2c) without changing its output.

    python tools/widen_unet.py src/unweave/pretrained/weights/soundtrack_unet.pt \
        runs/st_wide_unet_init.pt

The U-Net that has stopped improving can then go on training with four times the parameters
from where it is (Net2Net, Chen, Goodfellow & Shlens 2016; ``widen_mrx.py`` does the same for the
MRX). Every hidden level's feature maps are duplicated, with the same BatchNorm statistics, so
each copy computes what its original did; the layer that reads them gives each copy half the old
weight, so the sum is unchanged. The input maps and the output layer (the masks) keep their
sizes. A little noise on the copies' filters lets them drift apart in training (identical copies
would receive identical gradients forever). Checked on a random input before writing.

Only plain U-Nets (no dense blocks) are supported.
"""

from __future__ import annotations

import sys

import torch
from growth import check_and_save, load_old, parser, refuse_existing

from unweave.models.spec_unet import SpecUNet
from unweave.pretrained.checkpoint import model_kwargs
from unweave.registry import build_model


def _grow(value: torch.Tensor, dim: int, groups: list[int]) -> torch.Tensor:
    """Follow each block of channels along ``dim`` (``groups``: the blocks' sizes, in order) by a
    copy of itself: blocks [a, b] become [a, a, b, b]. An empty list leaves the axis alone."""
    if not groups:
        return value
    parts = torch.split(value, groups, dim=dim)
    return torch.cat([p for part in parts for p in (part, part)], dim=dim)


def widen(old: SpecUNet, *, noise: float = 1e-3, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of the same U-Net with twice the ``channels``."""
    gen = torch.Generator().manual_seed(seed)
    depth = old.depth
    widths = [old.down[level].net[0].out_channels for level in range(depth)]
    # hidden channel blocks (old sizes) of each layer's input and output, in their concat order
    ins: dict[str, list[int]] = {}
    outs: dict[str, list[int]] = {}
    for level in range(depth):
        ins[f"down.{level}"] = [] if level == 0 else [widths[level - 1]]
        outs[f"down.{level}"] = [widths[level]]
        ins[f"up.{level}"] = [widths[level]] * (1 if level == depth - 1 else 2)  # [x, skip]
        outs[f"up.{level}"] = [] if level == 0 else [widths[level - 1]]
    out: dict[str, torch.Tensor] = {}
    for key, value in old.state_dict().items():
        layer, _, rest = key.partition(".net.")
        index, _, name = rest.partition(".")
        if value.dim() == 0:  # BatchNorm's num_batches_tracked
            out[key] = value.clone()
        elif index == "0" and name == "weight":  # a (transposed) convolution's filters
            transposed = layer.startswith("up.")
            in_dim, out_dim = (0, 1) if transposed else (1, 0)
            grown = _grow(value, in_dim, ins[layer])
            if ins[layer]:
                grown = grown / 2  # each copy of an input map carries half its old weight
            grown = _grow(grown, out_dim, outs[layer])
            if outs[layer]:  # jitter the copies (the second of each pair) only
                jitter = noise * value.abs().mean() * torch.randn(grown.shape, generator=gen)
                mask = torch.cat([torch.zeros(g) if i % 2 == 0 else torch.ones(g)
                                  for g in outs[layer] for i in range(2)])
                shape = [1] * grown.dim()
                shape[out_dim] = -1
                grown = grown + jitter * mask.reshape(shape)
            out[key] = grown
        else:  # conv bias and BatchNorm weight / bias / running statistics: one per output map
            out[key] = _grow(value, 0, outs[layer])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    args = ap.parse_args(argv)
    old = load_old(args.checkpoint, SpecUNet, "spec_unet")
    if old is None:
        return 1
    kwargs = model_kwargs(old)
    if kwargs.get("dense"):
        print(f"error: {args.checkpoint}: dense blocks are not supported", file=sys.stderr)
        return 1
    if refuse_existing(args.out):
        return 1
    c = int(kwargs.get("channels", 16))
    wide = build_model("spec_unet", **{**kwargs, "channels": 2 * c})
    wide.load_state_dict(widen(old, seed=args.seed))
    return check_and_save(old, wide, args.checkpoint, args.out, arch="spec_unet",
                          change=f"channels {c} -> {2 * c}", meta={"old_channels": c})


if __name__ == "__main__":
    sys.exit(main())
