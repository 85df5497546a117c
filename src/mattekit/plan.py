"""Which image files a list of arguments names, and where each one's result goes.

The rules ``mattekit remove`` follows (a library concern, so any face can reuse them): folders
are searched recursively and keep their relative paths under the output folder; globs expand;
``-`` is stdin/stdout; an input is never overwritten by its own result or another's, two inputs
never write the same file, and a result never replaces a link, device or pipe.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidOption
from .files import same_file
from .formats import FORMAT_EXTENSIONS, IMAGE_SUFFIXES, extension, format_of_name

CUTOUT_SUFFIX = "-cutout"  # NAME-cutout.png beside NAME.jpg when no -o is given


@dataclass
class PlannedFile:
    """One input and where its result goes."""

    source: str | bytes  # a path, "-" for stdin, or stdin's bytes once read
    target: str  # a path, or "-" for stdout
    display: str


def _is_image_file(p: Path) -> bool:
    # Hidden files include our own half-written temp results (see mattekit.files).
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def expand_inputs(inputs: Sequence[str], output: str | None) -> Iterator[tuple[str, Path | None, Path]]:
    """(input, base folder or None, file) for every image the arguments name.

    A folder never yields our own results again: files under the output folder are left out,
    and without ``-o`` so are the ``*-cutout.*`` files a previous run wrote beside its inputs.
    """
    out_dir = Path(output).resolve() if output not in (None, "-") else None
    for arg in inputs:
        if arg == "-":
            yield arg, None, Path("-")
            continue
        path = Path(arg)
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if _is_image_file(p)):
                if out_dir is not None and out_dir in f.resolve().parents:
                    continue
                if output is None and f.stem.endswith(CUTOUT_SUFFIX):
                    continue
                yield arg, path, f
        elif path.exists():
            yield arg, None, path
        elif glob.has_magic(arg):
            files = sorted(Path(m) for m in glob.glob(arg, recursive=True) if _is_image_file(Path(m)))
            if not files:
                raise InvalidOption(f"no images match {arg!r}")
            for f in files:
                yield arg, None, f
        else:
            raise InvalidOption(f"no such file or folder: {arg}")


def _names_a_file(output: str | None) -> bool:
    return output not in (None, "-") and not output.endswith(("/", os.sep)) and not Path(output).is_dir()


def output_format(output: str | None, fmt: str | None) -> str | None:
    """The format to write when the result goes to ``output``, given the format asked for (or None).

    A file name's extension decides when no format is asked for, so ``out.jpg`` holds JPEG bytes,
    never PNG under a JPEG name. None means "the default": no output, stdout, a folder, or a name
    whose suffix names no format (``result``). A name that asks for an image format we do not
    write (``out.bmp``), or one that contradicts the format asked for, is refused: either way the
    file's name would lie about its bytes.
    """
    if output is None or not _names_a_file(output):
        return fmt
    suffix = Path(output).suffix.lower()
    named = format_of_name(output)
    if named is None:
        if suffix in IMAGE_SUFFIXES:
            raise InvalidOption(
                f"{output}: results are written as {', '.join(FORMAT_EXTENSIONS)}, not {suffix}; "
                f"name the file {Path(output).stem}.png (or .webp, .jpg)"
            )
        return fmt
    asked = None if fmt is None else ("jpg" if fmt.lower() == "jpeg" else fmt.lower())
    if asked is not None and asked != named:
        raise InvalidOption(
            f"the format {fmt} contradicts the name {output} ({named}): "
            f"name the file {Path(output).stem}{extension(asked)} or leave the format out"
        )
    return named


def plan_files(inputs: Sequence[str], output: str | None, fmt: str) -> list[PlannedFile]:
    """Where each input's result goes. Folders keep their relative paths under ``output``."""
    found = list(expand_inputs(inputs, output))
    if not found:
        raise InvalidOption(f"no images found in {', '.join(inputs)} ({', '.join(sorted(IMAGE_SUFFIXES))})")
    ext = extension(fmt)
    many = len(found) > 1 or any(base is not None for _, base, _ in found)
    if any(str(f) == "-" for _, _, f in found) and len(found) > 1:
        raise InvalidOption("'-' (stdin) cannot be combined with other inputs")
    if many and output not in (None, "-") and not Path(output).is_dir() and Path(output).suffix.lower() in IMAGE_SUFFIXES:
        raise InvalidOption(f"{len(found)} inputs need a folder for -o, not the file name {output!r}")
    jobs: list[PlannedFile] = []
    for _arg, base, f in found:
        if str(f) == "-":
            jobs.append(PlannedFile("-", output or "-", "<stdin>"))
            continue
        if output is None:
            target = f.with_name(f"{f.stem}{CUTOUT_SUFFIX}{ext}")
        elif output == "-":
            if many:
                raise InvalidOption("'-o -' (stdout) takes a single input")
            jobs.append(PlannedFile(str(f), "-", str(f)))
            continue
        elif many or Path(output).is_dir() or output.endswith(("/", os.sep)):
            rel = f.relative_to(base) if base is not None else Path(f.name)
            target = Path(output) / rel.with_suffix(ext)
        else:
            target = Path(output)
        if same_file(target, f):  # the input exists: by any name, the same file
            raise InvalidOption(f"{f} would be overwritten by its own result; choose another -o")
        if target.is_symlink() or (target.exists() and not target.is_file()):
            # A link (-o /dev/stdout), a device or a pipe: the atomic write (a temporary file renamed
            # over the target) would replace the link or the device node, not write through it.
            raise InvalidOption(
                f"{target} is not a regular file (a link, device or pipe); use -o - to write to stdout, or the real file's path"
            )
        jobs.append(PlannedFile(str(f), str(target), str(f)))
    _refuse_collisions(jobs)
    return jobs


def _refuse_collisions(jobs: Sequence[PlannedFile]) -> None:
    """Two results into one file, or a result over another input (``a.png`` and ``a-cutout.png``
    given together): either would lose a file without a word."""
    writes: dict[str, PlannedFile] = {}
    for job in jobs:
        if job.target == "-":
            continue
        key = str(Path(job.target).resolve())
        if key in writes:
            raise InvalidOption(
                f"{writes[key].display} and {job.display} would both write {job.target}: give their folder "
                "instead (folders keep their relative paths under -o), or run them apart"
            )
        writes[key] = job
    # A result lands on an input if they are one path, or one file by another name (a hard link).
    by_inode = {_inode(Path(job.target)): job for job in jobs if job.target != "-" and Path(job.target).exists()}
    for job in jobs:
        if not isinstance(job.source, str) or job.source == "-":
            continue
        other = writes.get(str(Path(job.source).resolve())) or by_inode.get(_inode(Path(job.source)))
        if other is not None and other is not job:
            raise InvalidOption(
                f"the result of {other.display} would overwrite the input {job.display}; "
                "choose another -o, or leave the earlier result out of the inputs"
            )


def _inode(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino
