"""Explicit registry of model architectures (code), separate from released weights (data).

``@register_model("name", tiny={...})`` fills ``ARCHITECTURES``; ``build_model(arch, **kwargs)``
instantiates one. Every architecture declares a ``tiny`` configuration for tests and examples.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass(frozen=True)
class ArchSpec:
    name: str
    cls: type[nn.Module]
    task: str
    tiny: dict[str, Any] = field(default_factory=dict)


ARCHITECTURES: dict[str, ArchSpec] = {}


def register_model(name: str, *, task: str, tiny: dict[str, Any] | None = None) -> Callable:
    """Class decorator: register ``cls`` under ``name``; raises on a duplicate name."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if name in ARCHITECTURES:
            raise ValueError(f"architecture {name!r} is already registered")
        ARCHITECTURES[name] = ArchSpec(name=name, cls=cls, task=task, tiny=dict(tiny or {}))
        original_init = cls.__init__

        @functools.wraps(original_init)
        def __init__(self, **kwargs: Any) -> None:  # keyword-only constructors, recorded
            original_init(self, **kwargs)
            self.init_kwargs = dict(kwargs)
            self.arch_name = name

        cls.__init__ = __init__
        return cls

    return wrap


def _ensure_loaded() -> None:
    # Importing each architecture module registers it (explicit list, no discovery magic).
    import importlib

    from .models import ARCHITECTURE_MODULES

    for module in ARCHITECTURE_MODULES:
        importlib.import_module(f"{__package__}.models.{module}")


def get_arch(name: str) -> ArchSpec:
    _ensure_loaded()
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise KeyError(f"unknown architecture {name!r} (known: {known})") from None


def build_model(arch: str, **kwargs: Any) -> nn.Module:
    """Instantiate architecture ``arch`` with keyword arguments ``kwargs``."""
    return get_arch(arch).cls(**kwargs)


def build_tiny(arch: str, **overrides: Any) -> nn.Module:
    spec = get_arch(arch)
    return spec.cls(**{**spec.tiny, **overrides})


def list_architectures() -> list[str]:
    _ensure_loaded()
    return sorted(ARCHITECTURES)
