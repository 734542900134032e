"""Small tensor helpers shared by the models: padding to a valid length and cropping back."""

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
