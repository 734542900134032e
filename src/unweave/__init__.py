"""unweave: separate any recording into its sources.

Public API: ``Separator``, ``load_model``, ``list_models``, ``__version__``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Separator", "__version__", "list_models", "load_model"]


def __getattr__(name: str):
    # Lazy: importing ``unweave`` stays cheap (no torch import for ``--version``).
    if name == "Separator":
        from .inference.separator import Separator

        return Separator
    if name in ("load_model", "list_models"):
        from .pretrained import catalog

        return getattr(catalog, name)
    raise AttributeError(name)
