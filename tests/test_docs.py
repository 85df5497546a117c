"""The docs' examples are run: every ``python`` block with ``>>>`` in README.md and docs/*.md is a
doctest, executed in a folder that holds the sample photo the examples name (``astronaut.png``),
so an example that drifts from the code fails here instead of misleading a reader.
"""

from __future__ import annotations

import doctest
import re
import shutil
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
