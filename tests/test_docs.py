"""The docs' examples are run: every ``python`` block with ``>>>`` in README.md and docs/*.md is a
doctest, executed in a folder that holds the sample photo the examples name (``astronaut.png``,
and ``samples/`` as `make` fills it), and the README's console commands run as written, in one
shell, in a copy of a fresh clone after `make run`, so an example that drifts from the code (or
from the Makefile) fails here instead of misleading a reader.
"""

from __future__ import annotations

import doctest
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from samples import readme_samples, sample_path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def examples() -> list[tuple[str, int, str]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for m in BLOCK.finditer(text):
            if ">>>" in m.group(1):
                line = text.count("\n", 0, m.start()) + 1
                found.append((page.relative_to(ROOT).as_posix(), line, m.group(1)))
    return found


def test_the_docs_have_examples():
    assert any(name == "README.md" for name, _, _ in examples())


@pytest.mark.parametrize("name,line,source", examples(), ids=[f"{n}:{ln}" for n, ln, _ in examples()])
def test_example_runs_as_written(name, line, source, tmp_path, monkeypatch, engine):
    shutil.copy(sample_path("astronaut"), tmp_path / "astronaut.png")  # the docs' examples name it
    readme_samples(tmp_path / "samples")  # the README's, as a clone after `make` has them
    monkeypatch.chdir(tmp_path)
    parser = doctest.DocTestParser()
    test = parser.get_doctest(source, {}, f"{name}:{line}", name, line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures: list[str] = []
    runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)


# -- the README's command lines ------------------------------------------------------------------
CONSOLE = re.compile(r"^```console\n(.*?)^```", re.S | re.M)
# curl needs a running server and batch starts Ray: tests/test_service.py and tests/test_batch.py
# run those paths; here their files are checked to exist.
NOT_RUN = ("curl ", "mattekit batch ")


def readme_commands() -> list[str]:
    """Every ``$ `` line of the README's console blocks, in order, as a shell takes it (the ``#``
    comments stay: the shell skips them)."""
    text = (ROOT / "README.md").read_text()
    lines = [ln for block in CONSOLE.findall(text) for ln in block.splitlines()]
    return [ln[2:] for ln in lines if ln.startswith("$ ")]


def test_the_readme_commands_run_as_written_on_a_fresh_clone(tmp_path):
    """A clone after `make run`: .venv (this one), samples/ as `make` fills it, and no mattekit on
    PATH until the README's first line activates the venv. Every command runs in one shell, as a
    reader would paste them (issue 28: `mattekit` was not on PATH and astronaut.png did not exist)."""
    venv = Path(sys.prefix)
    if venv == Path(sys.base_prefix) or not (venv / "bin" / "activate").is_file():
        pytest.skip("the suite runs outside a virtual environment: the README's `. .venv/bin/activate` needs one")
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / ".venv").symlink_to(venv)
    readme_samples(clone / "samples")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != (venv / "bin").resolve()
    )
    assert subprocess.run(["bash", "-c", "command -v mattekit"], env=env, capture_output=True).returncode != 0

    commands = readme_commands()
    run = [c for c in commands if not c.startswith(NOT_RUN)]
    assert run[0].split("#")[0].strip() == ". .venv/bin/activate" and len(run) >= 7
    proc = subprocess.run(["bash", "-e", "-c", "\n".join(run)], cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]

    def kind(name: str) -> tuple[str, str]:
        with Image.open(clone / "samples" / name) as img:
            return img.format, img.mode

    assert kind("astronaut-cutout.png") == ("PNG", "RGBA") and kind("best.png") == ("PNG", "RGBA")
    assert kind("card.jpg") == ("JPEG", "RGB")
    assert sorted(p.name for p in (clone / "samples" / "cutouts").iterdir()) == ["astronaut.png", "camera.png"]
    assert (clone / "samples" / "carphone-cutout.webm").stat().st_size > 0
    assert (clone / "samples" / "blurred.mp4").stat().st_size > 0
    for command in commands:
        if command.startswith(NOT_RUN):  # not run here: the file each reads first is in the clone
            words = [w.removeprefix("file=@") for w in shlex.split(command, comments=True)]
            assert (clone / next(w for w in words if w.startswith("samples/"))).exists(), command
