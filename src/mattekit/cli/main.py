"""The ``mattekit`` group: root flags, the commands, and :func:`main`, the console script.

Kept import-light: the commands import the library only when they run, so ``--version`` and
``--help`` load click and nothing heavy.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from .. import __version__
from ..errors import MattekitError
from .batch import batch
from .model import model
from .params import DEVICES, Group, State
from .remove import remove
from .report import FAILED, error, exit_on_errors, fail
from .serve import serve
from .video import video

INTERRUPTED = 130


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"mattekit {__version__}")
        ctx.exit()


@click.group(
    cls=Group,
    name="mattekit",
    no_args_is_help=True,
    help="Remove the background from photos (people, pets, products) and videos of people, on a CPU.",
)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version, help="Print the version and exit.")
@click.option("--verbose", "-v", is_flag=True, help="Log what happens (model, providers, timings).")
@click.option(
    "--device",
    default=None,
    help="Where the model runs: auto (CUDA when available, else CPU) | cpu | cuda. Default: MATTEKIT_DEVICE, else auto.",
)
@click.option(
    "--backend",
    default=None,
    help="Runtime of the model for video frames on the CPU: auto (chosen for this CPU) | onnxruntime | "
    "openvino-bf16 (stills always run on onnxruntime). Default: MATTEKIT_BACKEND, else auto.",
)
@click.pass_context
def app(ctx: click.Context, verbose: bool, device: str | None, backend: str | None) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if device is not None and device.strip().lower() not in DEVICES:
        fail(f"--device must be auto, cpu or cuda, not {device!r}")
    if backend is not None:
        from ..core.backends import resolve

        with exit_on_errors():
            resolve(backend)  # a name that cannot run here fails now, before any work
    ctx.obj = State(
        device=device.strip().lower() if device is not None else None,
        backend=backend.strip().lower() if backend is not None else None,
    )


for _command in (remove, video, batch, serve, model):
    app.add_command(_command)


def main(args: list[str] | None = None) -> None:
    """Run the command line; every failure is a one-line message and an exit status, never a trace."""
    try:
        status = app.main(args, standalone_mode=False)
    except click.exceptions.Abort as exc:  # click turns Ctrl-C into Abort
        interrupted = isinstance(exc.__cause__, KeyboardInterrupt)
        error("interrupted" if interrupted else "aborted")
        status = INTERRUPTED if interrupted else FAILED
    except click.ClickException as exc:  # bad usage: click's own message (and usage line)
        exc.show()
        status = exc.exit_code
    except KeyboardInterrupt:
        error("interrupted")
        status = INTERRUPTED
    except BrokenPipeError:  # `mattekit remove - -o - | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        status = FAILED
    except MattekitError as exc:
        error(str(exc))
        status = FAILED
    except Exception as exc:  # never a traceback for a user; -v logs it
        logging.getLogger("mattekit.cli").info("internal error", exc_info=True)
        error(
            f"internal error ({type(exc).__name__}: {exc}). Please report it with the command you ran "
            "and the output of the same command with -v."
        )
        status = FAILED
    sys.exit(status if isinstance(status, int) else 0)
