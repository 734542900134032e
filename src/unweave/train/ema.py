"""Exponential moving average of model weights (the weights that get exported).

``ema = EMA(model, decay=0.999)``; call ``ema.update(model)`` after each optimizer step;
``ema.state_dict()`` holds float32 copies of every parameter and buffer (buffers are copied,
not averaged). The effective decay warms up as ``min(decay, (1 + n) / (10 + n))`` so that early
averages are not dominated by the random initialisation.
"""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """Float32 shadow copy of a model's state, updated as ``s = d * s + (1 - d) * w``."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {k: v.detach().clone().float() if v.is_floating_point()
                       else v.detach().clone() for k, v in _unwrap(model).state_dict().items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        self.updates += 1
        params = dict(_unwrap(model).named_parameters())
        for key, value in _unwrap(model).state_dict().items():
            shadow = self.shadow[key]
            if key in params and value.is_floating_point():
                shadow.mul_(decay).add_(value.detach().float(), alpha=1 - decay)
            else:
                shadow.copy_(value.detach())

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        for key, value in state["shadow"].items():
            self.shadow[key].copy_(value)

    def model_state(self, like: nn.Module) -> dict[str, torch.Tensor]:
        """The averaged weights cast to the dtypes of ``like``'s state dict (for export)."""
        ref = _unwrap(like).state_dict()
        return {k: self.shadow[k].to(dtype=ref[k].dtype).cpu() for k in ref}


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)
