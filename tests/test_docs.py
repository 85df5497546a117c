"""The docs' examples are run: every ``python`` block with ``>>>`` in README.md and docs/*.md is a
doctest, executed in a folder that holds the sample photo the examples name (``astronaut.png``),
and the README's ``mattekit remove`` / ``mattekit video`` command lines run as written on sample
files, so an example that drifts from the code fails here instead of misleading a reader.
"""

from __future__ import annotations

import doctest
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from samples import sample_path

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
    shutil.copy(sample_path("astronaut"), tmp_path / "astronaut.png")
    monkeypatch.chdir(tmp_path)
    parser = doctest.DocTestParser()
    test = parser.get_doctest(source, {}, f"{name}:{line}", name, line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures: list[str] = []
    runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)


# -- the README's command lines ------------------------------------------------------------------
CONSOLE = re.compile(r"^```console\n(.*?)^```", re.S | re.M)
MATTEKIT = Path(sys.executable).with_name("mattekit")


def readme_commands() -> list[str]:
    """Every ``$ mattekit remove|video`` line of the README's console blocks, comment dropped.
    (``batch`` starts Ray and ``curl`` needs a server: tests/test_batch.py and test_service.py
    run those paths.)"""
    text = (ROOT / "README.md").read_text()
    lines = [ln for block in CONSOLE.findall(text) for ln in block.splitlines()]
    return [ln[2:].split("  #")[0].strip() for ln in lines if re.match(r"\$ mattekit (remove|video) ", ln)]


def test_the_readme_command_lines_run_as_written(tmp_path):
    commands = readme_commands()
    assert len(commands) >= 5
    shutil.copy(sample_path("astronaut"), tmp_path / "astronaut.png")
    shutil.copy(sample_path("astronaut"), tmp_path / "portrait.jpg")  # a PNG named .jpg: we sniff bytes
    (tmp_path / "photos").mkdir()
    shutil.copy(sample_path("camera"), tmp_path / "photos" / "camera.png")
    shutil.copy(sample_path("rocket"), tmp_path / "beach.jpg")
    shutil.copy(sample_path("carphone"), tmp_path / "talk.mp4")
    for command in commands:
        args = shlex.split(command)
        proc = subprocess.run([str(MATTEKIT), *args[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{command}: {proc.stderr[-800:]}"
    assert (tmp_path / "astronaut-cutout.png").is_file() and (tmp_path / "cutouts" / "camera.png").is_file()
    assert (tmp_path / "talk.webm").is_file() and (tmp_path / "beach.mp4").is_file()
