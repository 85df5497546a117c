"""``mattekit model``: fetch, locate and verify the model files (:data:`mattekit.core.models.MODELS`)."""

from __future__ import annotations

from collections.abc import Sequence

import click

from .params import Group
from .report import FAILED, exit_on_errors

_NAMES = click.Choice(["person", "general"])  # mattekit.core.models.MODELS' keys (kept in step by a test)


@click.group(cls=Group, no_args_is_help=True)
def model() -> None:
    """Manage the model files (fetch, path, verify): person (RVM) and general (ISNet)."""


@model.command("fetch")
@click.argument("names", nargs=-1, type=_NAMES)
@click.option("--force", is_flag=True, help="Download again even if cached.")
def model_fetch(names: Sequence[str], force: bool) -> None:
    """Download models into the cache (if missing or corrupt) and verify them.

    NAMES: person (RVM, GPL-3.0; the default) and/or general (IMG.LY ISNet, AGPL-3.0, for
    photos without a person; needs npm). The general model is fetched only when named here.
    """
    from ..core import models

    with exit_on_errors(FAILED):
        for name in names or ("person",):
            store = models.store(name)
            if name == "general":
                click.echo("general: IMG.LY ISNet, licence AGPL-3.0 (see docs/model.md)", err=True)
            if force:
                path, digest = store.fetch(force=True)
                click.echo(f"{path} (sha256 {digest})")
            else:
                click.echo(store.describe(store.locate(fetch_missing=True)))


@model.command("path")
@click.argument("name", required=False, default="person", type=_NAMES)
def model_path(name: str) -> None:
    """Print where a model is (fetching nothing); NAME: person (default) or general."""
    from ..core import models

    with exit_on_errors(FAILED):
        click.echo(models.store(name).locate(fetch_missing=False).path)


@model.command("verify")
@click.argument("name", required=False, default="person", type=_NAMES)
def model_verify(name: str) -> None:
    """Check a model file's SHA-256; NAME: person (default) or general."""
    from ..core import models

    with exit_on_errors(FAILED):
        store = models.store(name)
        info = store.locate(fetch_missing=False)
        click.echo(f"ok: {store.describe(info)}")
