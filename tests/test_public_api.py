"""The public API is explicit: ``mattekit.__all__`` names exactly what docs/api.md documents
(and docs/reference.md generates from the docstrings), every name resolves, and importing the
package loads nothing heavy."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import mattekit

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def documented() -> list[str]:
    return re.findall(r"^\| `([A-Za-z_]+)` \|", DOC.read_text(), flags=re.M)


def test_exported_names_are_exactly_the_documented_ones() -> None:
    names = documented()
    assert len(names) == len(set(names)), "a name is documented twice"
    assert sorted(mattekit.__all__) == sorted(names)


def test_the_reference_page_generates_exactly_the_exported_names() -> None:
    """docs/reference.md (Sphinx autodoc, built by make docs) documents each exported name once."""
    page = (DOC.parent / "reference.md").read_text()
    names = re.findall(r"^\.\. auto\w+:: mattekit\.(\w+)$", page, flags=re.M)
    assert len(names) == len(set(names)), "a name is documented twice"
    assert sorted(mattekit.__all__) == sorted(names)


def test_every_exported_name_resolves() -> None:
    for name in mattekit.__all__:
        assert getattr(mattekit, name) is not None, name


def test_importing_mattekit_loads_nothing_heavy() -> None:
    code = (
        "import sys, mattekit; heavy = [m for m in ('numpy', 'onnxruntime', 'av', 'ray', 'PIL', 'cv2', "
        "'fastapi', 'click') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import mattekit loaded {out}"


def test_all_marks_a_public_surface_only() -> None:
    """``__all__`` is a package's front door (``mattekit``, ``mattekit.video``, ``mattekit.batch``...),
    or a ``_``-private module's list for its package to take in, as httpx does: in every other
    module it would only repeat what the code says, and 421 such names no longer told anyone
    what is public. Every name a front door lists exists."""
    import ast
    import importlib

    src = Path(mattekit.__file__).parent
    doors = []
    for path in sorted(src.rglob("*.py")):
        tree = ast.parse(path.read_text())
        lists = any(
            isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets) for n in tree.body
        )
        if not lists:
            continue
        rel = path.relative_to(src)
        assert path.name == "__init__.py" or path.name.startswith("_"), f"{rel} lists __all__ but is no front door"
        doors.append(".".join(("mattekit", *rel.with_suffix("").parts)).removesuffix(".__init__"))
    assert {"mattekit", "mattekit.video", "mattekit.batch"} <= set(doors)
    for module in doors:
        mod = importlib.import_module(module)
        for name in mod.__all__:
            assert hasattr(mod, name), f"{module}.__all__ names {name}, which it does not define"
