"""The web app and HTTP API (FastAPI): ``create_app()`` builds one; see :mod:`.factory`."""

from __future__ import annotations

from .factory import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
