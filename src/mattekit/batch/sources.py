"""What a batch reads and plans: where files are (:class:`Location`, any pyarrow/fsspec
filesystem), what each file becomes (:class:`Spec`, :class:`VideoSettings`), and which are still
to do (:func:`plan`: what DST already has is skipped).
"""

from __future__ import annotations

import logging
import os
import posixpath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput, InvalidOption
from ..files import is_temp_name
from ..formats import CLIP_SUFFIXES, IMAGE_SUFFIXES
from ..options import Options

if TYPE_CHECKING:  # pragma: no cover
    from ..video.outputs import VideoOptions

log = logging.getLogger("mattekit.batch")

MANIFEST = "_mattekit_manifest.jsonl"
_INSTALL_HINT = "batch runs on Ray, an optional extra: pip install 'mattekit[cluster]'"


def require_ray() -> None:
    from ..cluster import require_ray as require

    require(_INSTALL_HINT, data=True)


@dataclass(frozen=True)
class VideoSettings:
    """How videos found in a batch are written (see :class:`mattekit.video.VideoOptions`)."""

    output: str | None = None  # None: webm (transparent), composite mp4 with a background, matte mp4 with mask
    start: float = 0.0
    end: float | None = None
    max_frames: int | None = None
    max_duration: float | None = None
    audio: bool = True
    # Clips longer than twice this are cut into chunks of this many seconds, spread over the
    # cluster like files and joined when their last chunk is done (video/chunks/).
    chunk_seconds: float | None = None

    def kind(self, options: Options) -> str:
        from ..video.outputs import default_output

        return self.output or default_output(options)

    def video_options(self, options: Options) -> VideoOptions:
        """The library's :class:`~mattekit.video.VideoOptions` (validates the values)."""
        from ..video import VideoOptions

        return VideoOptions(
            output=self.kind(options),
            start=self.start,
            end=self.end,
            max_frames=self.max_frames,
            max_duration=self.max_duration,
            audio=self.audio,
        )

    def suffix(self, options: Options) -> str:
        from ..video.outputs import OUTPUTS

        kind = self.kind(options)
        suffixes = {name: spec.extension for name, spec in OUTPUTS.items() if spec.batch}  # one file per video
        if kind not in suffixes:
            raise InvalidOption(f"batch writes videos as {', '.join(suffixes)}, not {kind!r}")
        return suffixes[kind]


# -- where files are ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Location:
    """A folder on a filesystem pyarrow can reach (local, S3, GCS, HDFS, or any fsspec one)."""

    fs: Any  # pyarrow.fs.FileSystem (picklable, so it travels to Ray workers)
    path: str  # the folder inside ``fs``, '/'-separated, no trailing slash
    scheme: str = ""  # '' for local paths

    @property
    def local(self) -> bool:
        return bool(self.fs.type_name == "local")

    def join(self, rel: str) -> str:
        """``rel`` under this folder, never outside it: an object key may hold an empty segment
        (``in//abs/x.jpg``, which a plain join makes absolute) or ``..``."""
        parts = _segments(rel)
        if not parts or ".." in parts:
            raise InvalidInput(f"{rel!r} would be written outside {self.display(self.path)}")
        return posixpath.join(self.path, *parts) if self.path else "/".join(parts)

    def display(self, path: str) -> str:
        return f"{self.scheme}://{path}" if self.scheme else path


def resolve(uri: str) -> Location:
    """A :class:`Location` for a local path or a URI (``s3://bucket/prefix``, ``gs://…``, …)."""
    import pyarrow.fs as pafs

    if "://" not in uri:
        path = os.path.abspath(os.path.expanduser(uri))
        return Location(pafs.LocalFileSystem(), path.rstrip("/") or "/")
    scheme = uri.split("://", 1)[0].lower()
    if scheme == "file":
        return resolve(uri[len("file://") :])
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except Exception as native_error:  # pyarrow knows s3/gs/hdfs; fsspec knows many more
        try:
            import fsspec.core

            ffs, path = fsspec.core.url_to_fs(uri)
        except Exception as exc:
            raise InvalidOption(f"cannot open {uri}: {native_error}; fsspec: {exc}") from None
        fs = pafs.PyFileSystem(pafs.FSSpecHandler(ffs))
    return Location(fs, path.rstrip("/"), scheme)


# -- what to do ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    kind: str  # "image" | "video"
    source: str  # path inside the source filesystem
    target: str  # path inside the destination filesystem
    rel: str  # source path relative to SRC (what the manifest and messages show)


@dataclass(frozen=True)
class Spec:
    """Everything a worker needs: travels to each actor/task once."""

    src: Location
    dst: Location
    options: Options
    video: VideoSettings = field(default_factory=VideoSettings)
    device: str | None = None  # auto | cpu | cuda for every worker's engine; None: MATTEKIT_DEVICE, else auto
    backend: str | None = None  # every worker's engine backend; None: MATTEKIT_BACKEND, else auto


def image_suffixes() -> frozenset[str]:
    return IMAGE_SUFFIXES


def video_suffixes() -> frozenset[str]:
    # A .gif/.webp is a still for `remove` too; batch follows remove.
    return CLIP_SUFFIXES


def target_for(rel: str, kind: str, spec: Spec) -> str:
    """Where ``rel`` (relative to SRC) goes under DST: same relative path, the output's suffix."""
    stem, _ = posixpath.splitext(rel)
    suffix = spec.video.suffix(spec.options) if kind == "video" else f".{spec.options.format}"
    return spec.dst.join(stem + suffix)


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


def list_files(loc: Location) -> list[str]:
    """Every file under ``loc`` (recursive), as paths inside its filesystem, sorted."""
    import pyarrow.fs as pafs

    infos = loc.fs.get_file_info(pafs.FileSelector(loc.path, recursive=True, allow_not_found=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File)


def _segments(rel: str) -> list[str]:
    return [part for part in rel.split("/") if part not in ("", ".")]


def relative(path: str, base: str) -> str:
    """``path`` relative to ``base``, without empty or ``.`` segments (``in//a.jpg`` → ``a.jpg``)."""
    prefix = base.rstrip("/") + "/"
    rel = path[len(prefix) :] if path.startswith(prefix) else posixpath.basename(path)
    return "/".join(_segments(rel))


@dataclass
class Plan:
    todo: list[Item]
    done: list[Item]  # outputs already there: skipped (resume)
    clashes: list[Item]  # a second input that would write an output another input writes
    ignored: int  # files that are neither images nor videos (or are hidden)
    stale: list[str] = field(default_factory=list)  # temp files a killed run left in DST


def plan(spec: Spec, *, overwrite: bool = False) -> Plan:
    """Which inputs still need doing. Inputs under DST (when DST lies inside SRC) are ignored."""
    import pyarrow.fs as pafs

    src, dst = spec.src, spec.dst
    info = src.fs.get_file_info(src.path)
    if info.type != pafs.FileType.Directory:
        raise InvalidOption(f"not a folder: {src.display(src.path)} (batch takes folders; `mattekit remove` takes files)")
    base = src.path
    same_fs = src.fs.type_name == dst.fs.type_name
    if same_fs and dst.path == src.path:
        # Every input would be skipped as "under DST", and the run would report 0 done as a success.
        raise InvalidOption(
            f"the output folder is the input folder ({src.display(src.path)}): give another DST "
            "(a folder inside SRC is fine: it is left out of the inputs)"
        )
    images, videos = image_suffixes(), video_suffixes()
    in_dst = list_files(dst)
    existing = set(in_dst) if not overwrite else set()
    stale = [p for p in in_dst if is_temp_name(posixpath.basename(p))]
    todo: list[Item] = []
    done: list[Item] = []
    clashes: list[Item] = []
    seen: set[str] = set()
    ignored = 0
    for path in list_files(src):
        if same_fs and (path == dst.path or path.startswith(dst.path.rstrip("/") + "/")):
            continue
        rel = relative(path, base)
        suffix = posixpath.splitext(rel)[1].lower()
        kind = "image" if suffix in images else "video" if suffix in videos else None
        if kind is None or _hidden(rel):  # hidden: also any ``..`` segment of an object key
            ignored += 1
            continue
        item = Item(kind, path, target_for(rel, kind, spec), rel)
        if item.target in seen:
            clashes.append(item)
            continue
        seen.add(item.target)
        (done if item.target in existing else todo).append(item)
    if not (todo or done or clashes):
        raise InvalidOption(
            f"no photos or videos found in {src.display(src.path)}"
            + (f" ({ignored} other files left out: hidden, or not a photo or video we read)" if ignored else "")
        )
    return Plan(todo, done, clashes, ignored, stale)
