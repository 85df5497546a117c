"""``mattekit model``: fetch, locate and verify the RVM model file."""

from __future__ import annotations

import click

from .params import Group
from .report import FAILED, exit_on_errors

__all__ = ["model"]


@click.group(cls=Group, no_args_is_help=True)
def model() -> None:
    """Manage the RVM model file (fetch, path, verify)."""


@model.command("fetch")
@click.option("--force", is_flag=True, help="Download again even if cached.")
def model_fetch(force: bool) -> None:
    """Download the RVM model into the cache (if missing or corrupt) and verify it."""
    from .. import models

    with exit_on_errors(FAILED):
        if force:
            path, digest = models.fetch(force=True)
            click.echo(f"{path} (sha256 {digest})")
        else:
            click.echo(models.describe(models.locate()))


@model.command("path")
def model_path() -> None:
    """Print where the model is (fetching nothing)."""
    from .. import models

    with exit_on_errors(FAILED):
        click.echo(models.locate(fetch_missing=False).path)


@model.command("verify")
def model_verify() -> None:
    """Check the model file's SHA-256."""
    from .. import models

    with exit_on_errors(FAILED):
        info = models.locate(fetch_missing=False)
        click.echo(f"ok: {models.describe(info)}")
