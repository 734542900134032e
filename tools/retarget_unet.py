"""Start a spectrogram U-Net for new sources from a trained one, each new source a copy of an old.

    python tools/retarget_unet.py src/unweave/pretrained/weights/vocals.pt \
        runs/st_unet/init.pt --sources speech=vocals music=accompaniment sfx=accompaniment

A U-Net that separates singing from accompaniment already knows much of what separating speech
from a film's music and effects needs; starting from it, a new task trains in a fraction of the
steps. Everything but the output layer is kept; the output layer's filters for each new source
are those of the old source it names (so ``speech=vocals`` starts as the vocals mask). With
sigmoid masks every new source then computes exactly its old source's estimate, which is
checked on a random input before writing; softmax masks are refused (copies would share a bin
and change every mask). Only ``predict="sources"`` models are supported.
"""

from __future__ import annotations

import sys

import torch
from growth import load_old, parser, refuse_existing

from unweave.models.spec_unet import SpecUNet
from unweave.pretrained.catalog import count_parameters
from unweave.pretrained.checkpoint import model_kwargs, save_checkpoint
from unweave.registry import build_model

TOLERANCE = 1e-5


def parse_mapping(items: list[str], old_sources: tuple[str, ...]) -> dict[str, str]:
    """``["new=old", ...]`` -> {new: old}, every old name one of ``old_sources``."""
    mapping: dict[str, str] = {}
    for item in items:
        new, sep, old = item.partition("=")
        if not sep or not new or not old:
            raise ValueError(f"{item!r}: expected NEW=OLD")
        if old not in old_sources:
            raise ValueError(f"{item!r}: the model has no source {old!r} (its sources: "
                             f"{', '.join(old_sources)})")
        if new in mapping:
            raise ValueError(f"{item!r}: source {new!r} named twice")
        mapping[new] = old
    return mapping


def retarget(old: SpecUNet, mapping: dict[str, str]) -> SpecUNet:
    """The same U-Net with sources ``mapping``'s keys, each starting as its old source."""
    kwargs = model_kwargs(old)
    if kwargs.get("predict", "sources") != "sources":
        raise ValueError("only predict='sources' U-Nets can be retargeted")
    if kwargs.get("mask", "sigmoid") == "softmax":
        raise ValueError("softmax masks share each bin among the sources: copying a source's "
                         "filters would change every mask")
    new = build_model("spec_unet", **{**kwargs, "sources": list(mapping)})
    state = {k: v for k, v in old.state_dict().items() if not k.startswith("up.0.")}
    new.load_state_dict(state, strict=False)
    maps = old.audio_channels * (2 if old.input_mode == "complex" else 1)
    old_conv, new_conv = old.up[0].net[0], new.up[0].net[0]
    with torch.no_grad():
        for i, source in enumerate(mapping.values()):
            j = list(old.sources).index(source)
            dst, src = slice(i * maps, (i + 1) * maps), slice(j * maps, (j + 1) * maps)
            new_conv.weight[:, dst] = old_conv.weight[:, src]
            new_conv.bias[dst] = old_conv.bias[src]
    return new


def max_difference(old: SpecUNet, new: SpecUNet, mapping: dict[str, str]) -> float:
    """Largest difference between each new source and its old one on 2 s of noise (of the peak)."""
    x = 0.1 * torch.randn(1, int(old.audio_channels), int(old.sample_rate) * 2,
                          generator=torch.Generator().manual_seed(1))
    old.eval()
    new.eval()
    with torch.no_grad():
        a, b = old(x), new(x)
    want = a[:, [list(old.sources).index(s) for s in mapping.values()]]
    return float((want - b).abs().max() / want.abs().max().clamp_min(1e-12))


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--sources", nargs="+", required=True, metavar="NEW=OLD",
                    help="the new sources in output order, each with the old one it starts as")
    args = ap.parse_args(argv)
    old = load_old(args.checkpoint, SpecUNet, "spec_unet")
    if old is None:
        return 1
    if refuse_existing(args.out):
        return 1
    try:
        mapping = parse_mapping(args.sources, tuple(old.sources))
        new = retarget(old, mapping)
    except ValueError as exc:
        print(f"error: {args.checkpoint}: {exc}", file=sys.stderr)
        return 1
    err = max_difference(old, new, mapping)
    change = ", ".join(f"{k} <- {v}" for k, v in mapping.items())
    print(f"{args.checkpoint} -> {args.out}: sources {change}; {count_parameters(old) / 1e6:.3f} M "
          f"-> {count_parameters(new) / 1e6:.3f} M parameters; max output difference {err:.1e} "
          "of the peak")
    if err > TOLERANCE:
        print("error: the new sources do not start as their old ones", file=sys.stderr)
        return 1
    save_checkpoint(new, args.out, arch="spec_unet",
                    meta={"retargeted_from": str(args.checkpoint), "sources_from": mapping})
    return 0


if __name__ == "__main__":
    sys.exit(main())
