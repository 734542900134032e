"""The training-state file (``state.pt``) that ``--resume`` reads.

Plain tensors and containers only, so ``torch.load(weights_only=True)`` reads it; written
atomically (temp file + rename) so that a kill during the write leaves the previous state.
The exported model itself goes through ``unweave.pretrained.checkpoint.save_checkpoint``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import UnweaveError
from ..pretrained.checkpoint import atomic_torch_save

STATE_FORMAT = "unweave-train-state"
STATE_VERSION = 1


def _plain(obj: Any) -> Any:
    """Tensors moved to the CPU; tuples kept (weights_only reads them)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


def save_state(path: str | Path, state: dict) -> Path:
    """Atomically write ``state`` (plus format tags) to ``path``."""
    payload = {"format": STATE_FORMAT, "version": STATE_VERSION, **_plain(state)}
    return atomic_torch_save(payload, path)


def load_state(path: str | Path) -> dict:
    """Read a training state written by ``save_state``; ``UnweaveError`` if absent or foreign."""
    path = Path(path)
    if not path.is_file():
        raise UnweaveError(f"{path}: no training state to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UnweaveError(f"{path}: not a readable training state ({exc.__class__.__name__})") \
            from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise UnweaveError(f"{path}: not an unweave training state")
    return state
