"""The public API is explicit: ``mattekit.__all__`` names exactly what docs/api.md documents,
every name resolves, and importing the package loads nothing heavy."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import mattekit

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def documented() -> list[str]:
    return re.findall(r"^\| `([A-Za-z_]+)` \|", DOC.read_text(), flags=re.M)


def test_exported_names_are_exactly_the_documented_ones():
    names = documented()
    assert len(names) == len(set(names)), "a name is documented twice"
    assert sorted(mattekit.__all__) == sorted(names)


def test_every_exported_name_resolves():
    for name in mattekit.__all__:
        assert getattr(mattekit, name) is not None, name


def test_importing_mattekit_loads_nothing_heavy():
    code = ("import sys, mattekit; heavy = [m for m in ('numpy', 'onnxruntime', 'av', 'ray', 'PIL', 'cv2', "
            "'fastapi', 'click') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import mattekit loaded {out}"
