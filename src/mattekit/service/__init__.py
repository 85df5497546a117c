"""The web app and HTTP API (FastAPI): ``create_app()`` builds one; see :mod:`.factory`.

Needs the ``server`` extra (``pip install 'mattekit[server]'``): importing this package without
it raises :class:`~mattekit.errors.MissingExtra` saying so.
"""

from __future__ import annotations

from ..extras import require

require("server", "the web service (mattekit.service)")

from .factory import create_app  # noqa: E402  (after the check: these import FastAPI)
from .settings import Settings  # noqa: E402

__all__ = ["Settings", "create_app"]
