"""The ``mattekit`` command: a thin face over the library, one module per command.

``remove`` (stills), ``video`` (one clip), ``batch`` (folders and buckets on Ray), ``serve``
(the web service) and ``model`` (the model file). Flags shared by several commands live in
:mod:`.params`; error exits and progress in :mod:`.report`.
"""

from __future__ import annotations

from .main import app, main

__all__ = ["app", "main"]
