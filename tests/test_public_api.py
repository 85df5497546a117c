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
    code = (
        "import sys, mattekit; heavy = [m for m in ('numpy', 'onnxruntime', 'av', 'ray', 'PIL', 'cv2', "
        "'fastapi', 'click') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import mattekit loaded {out}"


def test_every_module_says_what_it_exports():
    """Each module's ``__all__`` is its interface to the rest of the package; ``mattekit``'s own
    is the public API above. Every listed name exists."""
    import ast
    import importlib

    src = Path(mattekit.__file__).parent
    for path in sorted(src.rglob("*.py")):
        if path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text())
        listed = [
            n
            for n in tree.body
            if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)
        ]
        assert listed, f"{path.relative_to(src)} has no __all__"
        module = ".".join(("mattekit", *path.relative_to(src).with_suffix("").parts)).removesuffix(".__init__")
        mod = importlib.import_module(module)
        for name in mod.__all__:
            assert hasattr(mod, name), f"{module}.__all__ names {name}, which it does not define"
