"""Video: read any clip PyAV decodes, matte each frame carrying RVM's recurrent state, write.

>>> from mattekit.video import process_video, VideoOptions   # doctest: +SKIP
>>> process_video("talk.mp4", "talk.webm", video=VideoOptions(end=10))  # doctest: +SKIP

One file per part:

- :mod:`.outputs`: the table of output types (``OUTPUTS``), ``VideoOptions``, choosing a type;
- :mod:`.reader`: probing and decoding (PyAV, and Pillow for animated WebP);
- :mod:`.writers`: the writers, behind the small ``Writer`` interface;
- :mod:`.backgrounds`: what goes behind a composite, and composing a frame;
- :mod:`.pipeline`: ``process_video`` (three threads) and ``write_frames``;
- :mod:`.stability`: ``alpha_sequence`` and ``flicker`` (how steady a matte is over time);
- :mod:`.chunks`: ``process_chunked``, a long clip in chunks on Ray, joined without re-encoding.

The names below load their module on first use, so ``import mattekit.video.outputs`` (the CLI's
help text) does not pull in numpy or PyAV.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_LAZY = {
    "VideoOptions": "outputs",
    "OUTPUT_TYPES": "outputs",
    "OUTPUTS": "outputs",
    "OutputSpec": "outputs",
    "OutputType": "outputs",
    "register_output": "outputs",
    "infer_output": "outputs",
    "resolve_output": "outputs",
    "VP9_OPTIONS": "outputs",
    "PRORES_OPTIONS": "outputs",
    "X264_OPTIONS": "outputs",
    "VideoInfo": "reader",
    "probe": "reader",
    "read_frames": "reader",
    "upright": "reader",
    "Writer": "writers",
    "compose_frame": "backgrounds",
    "process_video": "pipeline",
    "write_frames": "pipeline",
    "Progress": "pipeline",
    "VideoResult": "pipeline",
    "QUEUE_FRAMES": "pipeline",
    "alpha_sequence": "stability",
    "flicker": "stability",
    "process_chunked": "chunks",
    "VIDEO_SUFFIXES": "..formats",
}  # beyond __all__: names the single-module video.py had, kept importable

if TYPE_CHECKING:  # pragma: no cover
    from .backgrounds import compose_frame
    from .outputs import (
        OUTPUT_TYPES,
        OUTPUTS,
        OutputSpec,
        OutputType,
        VideoOptions,
        infer_output,
        register_output,
        resolve_output,
    )
    from .pipeline import Progress, VideoResult, process_video, write_frames
    from .reader import VideoInfo, probe, read_frames, upright
    from .stability import alpha_sequence, flicker
    from .writers import Writer


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = _LAZY[name]
        value = getattr(importlib.import_module(module if module.startswith("..") else f".{module}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mattekit.video' has no attribute {name!r}")


__all__ = [
    "OUTPUTS",
    "OUTPUT_TYPES",
    "OutputSpec",
    "OutputType",
    "Progress",
    "VideoInfo",
    "VideoOptions",
    "VideoResult",
    "Writer",
    "alpha_sequence",
    "compose_frame",
    "flicker",
    "infer_output",
    "probe",
    "process_video",
    "read_frames",
    "register_output",
    "resolve_output",
    "upright",
    "write_frames",
]
