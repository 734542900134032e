"""Widen a trained MRX checkpoint's BLSTM (``hidden_size`` h -> H) without changing its output.

    python tools/widen_mrx.py runs/st_smx_seg4b/best.pt runs/st_wide/init.pt --hidden 64

A small model that has stopped improving can then go on training with more capacity from where
it is, rather than from scratch (Net2Net, Chen, Goodfellow & Shlens 2016). The widened model
computes the same function as the old one (checked on a random input before writing):

- encoders: each of the D = 2h output features is duplicated (D' = 2H = 2D when H = 2h, so the
  LayerNorm's mean and variance over the features are unchanged), with a little noise on the
  copies so that they can drift apart;
- LSTM: the old units keep their weights; from the duplicated input features each copy gets half
  the old weight; the new units are initialised as PyTorch initialises an LSTM, and their
  outgoing weights (into the old units, the next layer and the decoders) start at zero;
- decoders: the old columns as before, zero columns for the new units.

Only ``H = 2h`` is supported (the duplication keeps the LayerNorm exact).
"""

from __future__ import annotations

import math
import sys

import torch
from growth import check_and_save, load_old, parser, refuse_existing

from unweave.models.mrx import MRX
from unweave.pretrained.checkpoint import model_kwargs
from unweave.registry import build_model


def _old_unit_rows(h: int, big: int) -> torch.Tensor:
    """Rows of the h old units in each of the four gates of a (4 * big)-row LSTM weight."""
    return torch.cat([torch.arange(g * big, g * big + h) for g in range(4)])


def widen(state: dict[str, torch.Tensor], h: int, *, noise: float = 1e-3,
          seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of the same MRX with ``hidden_size`` 2h instead of h."""
    gen = torch.Generator().manual_seed(seed)
    big, d = 2 * h, 2 * h  # new hidden size; old feature size D = 2h
    bound = 1.0 / math.sqrt(big)

    def uniform(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=gen) * 2 - 1) * bound

    out: dict[str, torch.Tensor] = {}
    old_rows = _old_unit_rows(h, big)
    # old features of the LSTM outputs (fwd, bwd) inside the widened (fwd 2h, bwd 2h) layout
    lstm_cols = torch.cat([torch.arange(h), torch.arange(big, big + h)])
    for key, value in state.items():
        if key.startswith("encoders.") and key.endswith(("0.weight", "0.bias")):
            copy = value + noise * value.abs().mean() * torch.randn(value.shape, generator=gen)
            out[key] = torch.cat([value, copy])
        elif key.startswith("encoders."):  # the LayerNorm's weight and bias
            out[key] = torch.cat([value, value])
        elif key.startswith("lstm.lstm."):
            name = key.rsplit(".", 1)[-1]
            layer = int(name.split("_l")[1].split("_")[0])
            if name.startswith("weight_ih"):
                new = uniform(4 * big, value.shape[1] * 2)
                if layer == 0:  # input: the duplicated encoder features [e, e]
                    new[old_rows] = torch.cat([value / 2, value / 2], dim=1)
                else:  # input: the previous layer's (fwd, bwd) outputs
                    new[old_rows] = 0.0
                    new[old_rows[:, None], lstm_cols[None, :]] = value
            elif name.startswith("weight_hh"):
                new = uniform(4 * big, big)
                new[old_rows] = 0.0  # the new units do not feed the old ones
                new[old_rows, :h] = value
            else:  # bias_ih / bias_hh
                new = uniform(4 * big)
                new[old_rows] = value
            out[key] = new
        elif key.startswith("decoders.") and key.endswith("weight"):
            new = value.new_zeros(value.shape[0], 2 * d)
            new[:, lstm_cols] = value
            out[key] = new
        else:
            out[key] = value.clone()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--hidden", type=int, required=True, help="new hidden_size (twice the old)")
    args = ap.parse_args(argv)
    old = load_old(args.checkpoint, MRX, "mrx")
    if old is None:
        return 1
    kwargs = model_kwargs(old)
    h = int(kwargs["hidden_size"])
    if args.hidden != 2 * h:
        print(f"error: --hidden {args.hidden}: only twice the old hidden_size ({2 * h}) keeps "
              "the function exactly", file=sys.stderr)
        return 1
    if refuse_existing(args.out):
        return 1
    wide = build_model("mrx", **{**kwargs, "hidden_size": args.hidden})
    wide.load_state_dict(widen(old.state_dict(), h, seed=args.seed))
    return check_and_save(old, wide, args.checkpoint, args.out, arch="mrx",
                          change=f"hidden_size {h} -> {args.hidden}",
                          meta={"old_hidden_size": h})


if __name__ == "__main__":
    sys.exit(main())
