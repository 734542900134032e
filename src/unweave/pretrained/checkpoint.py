"""Plain-data checkpoints: ``{"format_version", "arch", "kwargs", "state_dict", "meta"}``.

Loadable with ``torch.load(weights_only=True)``; no pickled classes. Writes are atomic.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from ..fileio import atomic_path
from ..registry import build_model

FORMAT_VERSION = 1


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def model_kwargs(model: nn.Module) -> dict[str, Any]:
    kwargs = getattr(model, "init_kwargs", None)
    if kwargs is None:
        raise ModelError(f"{type(model).__name__} does not record its init_kwargs")
    return dict(kwargs)


def atomic_torch_save(payload: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temp file beside ``path``, then rename (never a half-written file)."""
    path = Path(path)
    with atomic_path(path) as tmp:  # 0644: checkpoints are ordinary shareable files
        torch.save(payload, tmp)
    return path


def save_checkpoint(
    model: nn.Module, path: str | os.PathLike, *, arch: str, meta: dict | None = None,
    state_dict: dict | None = None,
) -> Path:
    """Write ``model`` as a plain-data checkpoint at ``path`` atomically; returns the path."""
    payload = {
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "kwargs": model_kwargs(model),
        "state_dict": {k: v.detach().cpu() for k, v in (state_dict or model.state_dict()).items()},
        "meta": dict(meta or {}),
    }
    return atomic_torch_save(payload, path)


def read_checkpoint(path: str | os.PathLike, *, sha256: str | None = None) -> dict[str, Any]:
    """Read a checkpoint's plain data, verifying ``sha256`` when given."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256:
            raise ModelError(f"{path}: sha256 mismatch (expected {sha256[:12]}…, got {got[:12]}…)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable checkpoint ({exc.__class__.__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: not an unweave checkpoint (format_version missing or unknown)")
    return payload


def load_checkpoint(path: str | os.PathLike, *, sha256: str | None = None) -> nn.Module:
    """Build the model a checkpoint describes and load its weights (eval mode)."""
    payload = read_checkpoint(path, sha256=sha256)
    try:
        model = build_model(payload["arch"], **payload["kwargs"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ModelError(f"{path}: checkpoint does not match its architecture ({exc})") from exc
    model.checkpoint_meta = payload.get("meta", {})
    return model.eval()
