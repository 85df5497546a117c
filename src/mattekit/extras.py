"""The optional parts of the package and what each needs: the command line (``mattekit[cli]``)
and the web service (``mattekit[server]``), as httpx and rembg ship theirs. The library alone
(``pip install mattekit``) needs neither; a face whose extra is missing says which to install
instead of failing on an import deep inside.
"""

from __future__ import annotations

import importlib.util
import sys

from .errors import MissingExtra

# extra → the modules it installs (import names), as pyproject.toml's optional-dependencies list them
EXTRAS: dict[str, tuple[str, ...]] = {
    "cli": ("click", "rich"),
    "server": ("fastapi", "uvicorn", "python_multipart", "prometheus_client"),
}


def _installed(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None  # None: an import of it is known to fail
    try:
        return importlib.util.find_spec(name) is not None  # found without importing it (rich is ~40 ms)
    except (ImportError, ValueError):
        return False


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    return [name for name in EXTRAS[extra] if not _installed(name)]


def require(extra: str, what: str) -> None:
    """:class:`~mattekit.errors.MissingExtra` naming the pip command when ``extra`` is not installed."""
    absent = missing(extra)
    if absent:
        raise MissingExtra(
            f"{what} needs the optional extra mattekit[{extra}] ({', '.join(absent)} not installed): "
            f"pip install 'mattekit[{extra}]'"
        )
