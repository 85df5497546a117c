"""Temp-file names and atomic writes: a result path never holds a half-written file.

One naming rule for every writer (CLI, video, batch): ``.NAME.TOKEN.part.EXT`` beside the target
``NAME.EXT`` — hidden, so folder scans skip it; ending in the target's own extension, so a
muxer that picks its container by suffix (PyAV) picks the right one; and a random ``TOKEN``, so
two writers of the same target never share a temp file. :func:`is_temp_name` is the one parser.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path, PurePosixPath

_TOKEN_HEX = 8
# The current rule, plus the names mattekit 0.1.0 used (".NAME.PID.part" from the CLI,
# ".NAME.PID.TID.part.EXT" from video), so a batch still finds what an older run left behind.
_TEMP = re.compile(rf"^\..+\.(?:[0-9a-f]{{{_TOKEN_HEX}}}|\d+(?:\.\d+)?)\.part(?:\.[A-Za-z0-9]+)?$")


def temp_name(name: str) -> str:
    """The hidden temp name a result called ``name`` is written under before it is renamed."""
    token = secrets.token_hex(_TOKEN_HEX // 2)
    return f".{name}.{token}.part{PurePosixPath(name).suffix}"


def temp_path(target: Path) -> Path:
    return target.with_name(temp_name(target.name))


def is_temp_name(name: str) -> bool:
    """Whether a file's base name is one of our temp names (a writer's, or one a killed run left)."""
    return bool(_TEMP.match(name))


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one existing file, by whatever name (a symlink, a hard link): a
    result written to ``a`` would replace ``b``. False when either does not exist (yet)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def write_atomic(target: Path, data: bytes, *, parents: bool = True) -> None:
    """Write via a temp file in the same folder, then rename: readers see the old file or the new
    one, never half of it. ``parents``: create the folder first (False: a folder deleted meanwhile
    stays deleted, and the write fails with ``FileNotFoundError``)."""
    if parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def delete_path(path: Path) -> None:
    """Delete a temp result, a file or a folder (PNG frames), quietly if it is already gone."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def move_into_place(tmp: Path, target: Path) -> None:
    """Publish a result a writer finished under ``tmp`` (a file, or a folder of frames) as
    ``target``, in one rename. A folder replaces an older folder of the same name (a rename alone
    cannot); a file never replaces a folder (that fails, as the rename does)."""
    if tmp.is_dir() and target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    os.replace(tmp, target)
