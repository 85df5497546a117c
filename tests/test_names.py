"""One meaning per name: no two classes share a name, a public constant's name means one value,
every error lives in one of two files and answers with a code no other error uses.

Read from the source with ``ast`` where that is enough (names); the error tree is read from the
imported classes, since a subclass of a subclass counts too.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections import defaultdict
from pathlib import Path

import pytest

import mattekit
from mattekit.errors import MattekitError

pytestmark = pytest.mark.unit  # make unit: in-process and fast

SRC = Path(mattekit.__file__).parent

# Packages that are tables of parts: each part's module defines the same names (a model's
# MODEL_FILE, LICENCE, STORE, ...) because that is the interface the table reads.
REGISTRIES = ("core/models", "core/backends")

ERROR_FILES = ("errors.py", "service/errors.py")


def _sources() -> dict[str, ast.Module]:
    return {p.relative_to(SRC).as_posix(): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(SRC.rglob("*.py"))}


SOURCES = _sources()


def test_no_two_classes_share_a_name() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for path, tree in SOURCES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                where[node.name].append(path)
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level public constants (UPPER_CASE), each as the source text of its value."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = [t.id for t in node.targets if isinstance(t, ast.Name)], node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            targets, value = [node.target.id], node.value
        else:
            continue
        for name in targets:
            if name.isupper() and not name.startswith("_"):
                found[name] = ast.unparse(value)
    return found


def _siblings_in_a_registry(a: str, b: str) -> bool:
    return any(a.startswith(r + "/") and b.startswith(r + "/") for r in REGISTRIES)


def test_a_constant_name_holds_one_value() -> None:
    values: dict[str, dict[str, str]] = defaultdict(dict)
    for path, tree in SOURCES.items():
        for name, value in _constants(tree).items():
            values[name][path] = value
    clashes = {}
    for name, by_path in values.items():
        paths = sorted(by_path)
        differ = [
            (a, b)
            for i, a in enumerate(paths)
            for b in paths[i + 1 :]
            if by_path[a] != by_path[b] and not _siblings_in_a_registry(a, b)
        ]
        if differ:
            clashes[name] = {p: by_path[p] for p in sorted({p for pair in differ for p in pair})}
    assert clashes == {}


def test_the_checks_see_what_they_look_for() -> None:
    """The two checks above read every module, and a registry's parts really share names."""
    assert "matter.py" in SOURCES and "video/outputs.py" in SOURCES
    models = [p for p in SOURCES if p.startswith("core/models/") and not p.endswith("__init__.py")]
    assert len(models) >= 2 and all("MODEL_FILE" in _constants(SOURCES[p]) for p in models)


def _every_error() -> list[type[MattekitError]]:
    for info in pkgutil.walk_packages(mattekit.__path__, "mattekit."):
        if info.name != "mattekit.__main__":
            importlib.import_module(info.name)
    found: list[type[MattekitError]] = []
    todo: list[type[MattekitError]] = [MattekitError]
    while todo:
        cls = todo.pop()
        if cls.__module__.partition(".")[0] == "mattekit":  # not a test's own (tests/samples.py has one)
            found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_lives_in_errors_py_or_service_errors_py() -> None:
    """Library errors in ``mattekit/errors.py``, HTTP-only ones in ``mattekit/service/errors.py``."""
    homes = {".".join(("mattekit", *Path(f).with_suffix("").parts)) for f in ERROR_FILES}
    errors = _every_error()
    assert len(errors) > 10
    assert {cls.__qualname__: cls.__module__ for cls in errors if cls.__module__ not in homes} == {}


def test_error_codes_are_unique() -> None:
    """A client tells errors apart by ``code``: each class that sets one sets its own (a subclass
    that sets none answers as its parent, on purpose)."""
    by_code: dict[str, list[str]] = defaultdict(list)
    for cls in _every_error():
        if "code" in cls.__dict__:
            by_code[cls.__dict__["code"]].append(f"{cls.__module__}.{cls.__qualname__}")
    assert {code: names for code, names in by_code.items() if len(names) > 1} == {}
