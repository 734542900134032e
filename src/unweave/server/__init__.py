"""unweave web app and HTTP API: ``create_app(Settings(...))`` (see ``unweave serve``)."""

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
