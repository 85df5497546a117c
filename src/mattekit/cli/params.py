"""Flag definitions shared by the commands, and the click classes the commands are built on.

An option that means the same in two commands is declared once here, so its name, default and
help cannot drift apart between ``remove``, ``batch`` and ``video``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class State:
    """What the root flags decide for every command of one run."""

    device: str | None = None  # auto | cpu | cuda; None: the engine's default (MATTEKIT_DEVICE, else auto)
    backend: str | None = None  # auto | a name in mattekit.core.backends.BACKENDS; None: MATTEKIT_BACKEND, else auto


def _state() -> State | None:
    ctx = click.get_current_context(silent=True)
    return ctx.find_object(State) if ctx is not None else None


def current_device() -> str | None:
    """The ``--device`` given before the command, for the engines the command creates."""
    state = _state()
    return state.device if state is not None else None


def current_backend() -> str | None:
    """The ``--backend`` given before the command, for the engines the command creates."""
    state = _state()
    return state.backend if state is not None else None


class Argument(click.Argument):
    """A positional argument with a help text (click has that itself only from 8.5)."""

    def __init__(self, *args: Any, help: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = help


class Command(click.Command):
    """A command whose ``--help`` lists its arguments with their help, before the options."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if not hasattr(click.Command, "format_arguments"):  # click >= 8.5 lists them itself
            rows = [(p.human_readable_name, p.help or "") for p in self.get_params(ctx) if isinstance(p, Argument)]
            if rows:
                with formatter.section("Positional arguments"):
                    formatter.write_dl(rows)
        super().format_options(ctx, formatter)


class Group(click.Group):
    """Commands listed in the order they were added, each with its docstring's first paragraph."""

    command_class = Command
    group_class = type  # subgroups are Groups too

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [
            (name, cmd.short_help or (cmd.help or "").split("\n\n")[0].replace("\n", " ").strip())
            for name, cmd in self.commands.items()
            if not cmd.hidden
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


# -- the still-image flags: `remove` and `batch` take them all, `video` the ones a clip has ------
@dataclass(frozen=True)
class Flag:
    decls: tuple[str, ...]  # click's declarations; the last one is the Options field it fills
    help: str
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.decls[-1]

    def option(self, help: str | None = None) -> Callable[[F], F]:
        return click.option(*self.decls, help=help or self.help, **self.attrs)


def _default(value: Any, kind: Any = str) -> dict[str, Any]:
    return {"default": value, "type": kind, "show_default": True}


STILL_FLAGS: dict[str, Flag] = {
    f.name: f
    for f in (
        # No default here: None lets `remove -o out.jpg` take the format from the name (else png).
        Flag(
            ("--format", "-f", "format"),
            "png | webp | jpg (jpg needs --bg). Default: from -o FILE's extension, else png.",
            {"default": None},
        ),
        Flag(("--preset", "-p", "preset"), "fast | balanced | best.", _default("balanced")),
        Flag(("--mask", "mask"), "Write the alpha matte alone (greyscale).", {"is_flag": True, "default": False}),
        Flag(("--bg", "bg"), "Background: a colour (white, '#00ff00'), blur[:RADIUS], or an image file.", {"default": None}),
        Flag(("--bg-fit", "bg_fit"), "How a background image fits: fill (crop) | fit (letterbox).", _default("fill")),
        Flag(("--crop", "crop"), "Crop to the subject.", {"is_flag": True, "default": False}),
        Flag(("--margin", "margin"), "Crop margin: pixels ('16') or percent ('5%').", _default("0")),
        Flag(
            ("--subject", "subject"),
            "auto | person | general: which model (auto: RVM, or the general model when no person is found; "
            "general needs `mattekit model fetch general`).",
            _default("auto"),
        ),
        Flag(("--ratio", "ratio"), "RVM downsample ratio: auto or (0, 1]; 0.25 = the original demo.", _default("auto")),
        Flag(("--max-size", "max_size"), "Shrink inputs so the longer side is at most this.", {"default": None, "type": int}),
        Flag(("--quality", "quality"), "JPEG/WebP quality (WebP 100 = lossless).", _default(90, int)),
        Flag(
            ("--decontaminate/--no-decontaminate", "decontaminate"),
            "Clean edge colours with RVM's foreground (default: preset's choice).",
            {"default": None},
        ),
    )
}


def still_flags(*names: str, help: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Add the still-image flags ``names`` (default: all) to a command, in that order.

    The command receives them as one ``stills`` dict keyed by :class:`~mattekit.options.Options`
    field, ready for ``Options.from_fields``. ``help`` rewords a flag for a command where it means
    a little more (``video``'s ``--bg`` also takes a clip).
    """
    chosen = [STILL_FLAGS[n] for n in (names or STILL_FLAGS)]
    texts = dict(help or {})

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> Any:
            stills = {f.name: kwargs.pop(f.name) for f in chosen}
            return fn(*args, stills=stills, **kwargs)

        for flag in reversed(chosen):  # click lists options in decorator order, top first
            command = flag.option(texts.get(flag.name))(command)
        return command  # type: ignore[return-value]

    return decorate
