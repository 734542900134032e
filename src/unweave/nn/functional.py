"""Small tensor helpers shared by the models: padding to a valid length and cropping back, and
the mask nonlinearities of the masking separators."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_center(x: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad the last axis to ``length``, half on each side (the extra sample on the right).

    Shape:
        x: (..., T) -> (..., length), ``length >= T``.
    """
    delta = int(length) - x.shape[-1]
    if delta < 0:
        raise ValueError(f"cannot pad length {x.shape[-1]} to shorter length {length}")
    return F.pad(x, (delta // 2, delta - delta // 2)) if delta else x


def crop_center(x: torch.Tensor, length: int) -> torch.Tensor:
    """Crop the last axis to ``length`` around its centre (inverse of :func:`pad_center`).

    Shape:
        x: (..., T) -> (..., length), ``length <= T``.
    """
    delta = x.shape[-1] - int(length)
    if delta < 0:
        raise ValueError(f"cannot crop length {x.shape[-1]} to longer length {length}")
    start = delta // 2
    return x[..., start : start + int(length)]


MASK_KINDS = ("relu", "sigmoid", "softmax")


def check_mask(kind: str, allowed: tuple[str, ...] = MASK_KINDS) -> str:
    """``kind`` if it is one of ``allowed`` mask nonlinearities, else a ValueError."""
    if kind not in allowed:
        raise ValueError(f"mask must be one of {allowed}, got {kind!r}")
    return kind


def apply_mask_nonlinearity(logits: torch.Tensor, kind: str, source_dim: int = 1) -> torch.Tensor:
    """Masks from ``logits``: "relu", "sigmoid" (each source on its own) or "softmax" over the
    sources (axis ``source_dim``: the masks share each bin and sum to 1)."""
    if kind == "relu":
        return F.relu(logits)
    if kind == "sigmoid":
        return torch.sigmoid(logits)
    if kind == "softmax":
        return logits.softmax(dim=source_dim)
    raise ValueError(f"mask must be one of {MASK_KINDS}, got {kind!r}")
