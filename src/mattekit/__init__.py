"""mattekit: remove the background from photos (RVM for people, ISNet for anything else) and videos, on a CPU.

>>> import mattekit
>>> cutout = mattekit.remove("portrait.jpg")          # doctest: +SKIP
>>> cutout.save("portrait.png")                       # doctest: +SKIP
>>> mattekit.remove("portrait.jpg", background="white", crop=True, margin="5%")  # doctest: +SKIP

The public API:

- :func:`remove` (source → PIL image) and :class:`Matter` (one engine, default options;
  ``remove``, ``remove_bytes``, ``process`` → :class:`Result` with stage timings);
- :class:`Options` with :class:`Color`, :class:`Blur`, :class:`BackgroundImage`, :class:`Margin`
  and :func:`parse_background`;
- :class:`Engine` / :func:`get_engine` for frames and streams (video);
- :func:`process_video` with :class:`VideoOptions` → :class:`VideoResult`, and :func:`probe`
  (what a clip holds); the rest of the video API is in :mod:`mattekit.video`;
- the errors, all :class:`MattekitError` subclasses with a user-facing message, a stable
  ``code`` and an ``http_status``.

Heavy modules (onnxruntime, PyAV, Ray) load on first use, so importing mattekit is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    Busy,
    Cancelled,
    DeadlineExceeded,
    EmptyResult,
    InternalError,
    InvalidInput,
    InvalidOption,
    MattekitError,
    ModelUnavailable,
    TooLarge,
    UploadTooLarge,
)

#: The package version (also ``mattekit --version``).
__version__ = "0.1.0"

_LAZY = {
    "remove": ("matter", "remove"),
    "Matter": ("matter", "Matter"),
    "Result": ("matter", "Result"),
    "Options": ("options", "Options"),
    "Color": ("options", "Color"),
    "Blur": ("options", "Blur"),
    "BackgroundImage": ("options", "BackgroundImage"),
    "Margin": ("options", "Margin"),
    "parse_background": ("options", "parse_background"),
    "Engine": ("core.engine", "Engine"),
    "get_engine": ("core.engine", "get_engine"),
    "Deadline": ("deadline", "Deadline"),
    "process_video": ("video", "process_video"),
    "VideoOptions": ("video", "VideoOptions"),
    "VideoResult": ("video", "VideoResult"),
    "probe": ("video", "probe"),
}

if TYPE_CHECKING:  # pragma: no cover
    from .core.engine import Engine, get_engine
    from .deadline import Deadline
    from .matter import Matter, Result, remove
    from .options import BackgroundImage, Blur, Color, Margin, Options, parse_background
    from .video import VideoOptions, VideoResult, probe, process_video


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mattekit' has no attribute {name!r}")


__all__ = [
    "BackgroundImage",
    "Blur",
    "Busy",
    "Cancelled",
    "Color",
    "Deadline",
    "DeadlineExceeded",
    "EmptyResult",
    "Engine",
    "InternalError",
    "InvalidInput",
    "InvalidOption",
    "Margin",
    "MattekitError",
    "Matter",
    "ModelUnavailable",
    "Options",
    "Result",
    "TooLarge",
    "UploadTooLarge",
    "VideoOptions",
    "VideoResult",
    "__version__",
    "get_engine",
    "parse_background",
    "probe",
    "process_video",
    "remove",
]
