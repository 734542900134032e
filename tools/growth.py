"""What the model-growing tools share: their arguments, loading the old checkpoint (a clear error
for a bad file or the wrong architecture), and checking that the grown model computes what the
old one did before writing it (never over an existing file).

Used by ``widen_mrx.py`` and ``deepen_tasnet.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from unweave.errors import UnweaveError
from unweave.pretrained.catalog import count_parameters
from unweave.pretrained.checkpoint import load_checkpoint, save_checkpoint

#: largest output difference (relative to the old output's peak) a grown model may show
TOLERANCE = 1e-2


def parser(doc: str) -> argparse.ArgumentParser:
    """The arguments every growing tool takes: the checkpoint, the output and ``--seed``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    return ap


def load_old(path: Path, cls: type, arch: str) -> nn.Module | None:
    """The checkpoint's model if it is a ``cls``; else None (after printing why)."""
    try:
        old = load_checkpoint(path)
    except UnweaveError as exc:  # missing, unreadable or mismatched file: says which and why
        print(f"error: {exc}", file=sys.stderr)
        return None
    if not isinstance(old, cls):
        print(f"error: {path}: {type(old).__name__}, not {arch}", file=sys.stderr)
        return None
    return old


def refuse_existing(path: Path) -> bool:
    """True (after printing why) when ``path`` exists: the tools never overwrite."""
    if path.exists():
        print(f"error: {path}: exists (not overwritten)", file=sys.stderr)
        return True
    return False


def check_and_save(old: nn.Module, new: nn.Module, src: Path, out: Path, *, arch: str,
                   change: str, meta: dict) -> int:
    """Compare both models on 2 s of noise; write ``new`` to ``out`` if they agree.

    Returns the exit code: 0 written, 1 refused (the grown model does not reproduce the old).
    """
    x = 0.1 * torch.randn(1, int(old.audio_channels), int(old.sample_rate) * 2,
                          generator=torch.Generator().manual_seed(1))
    old.eval()
    new.eval()
    with torch.no_grad():
        a, b = old(x), new(x)
    err = float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))
    print(f"{src} -> {out}: {change}, {count_parameters(old) / 1e6:.2f} M -> "
          f"{count_parameters(new) / 1e6:.2f} M parameters; max output difference {err:.1e} "
          "of the peak")
    if err > TOLERANCE:
        print("error: the grown model does not reproduce the old one", file=sys.stderr)
        return 1
    save_checkpoint(new, out, arch=arch, meta={"grown_from": str(src), **meta})
    return 0
