"""The shape of the package: imports only go down, and the command line starts light.

The import graph is read from the source with ``ast`` (no module is imported), counting imports
inside functions too: a lazy import is still a dependency, it only runs later. So is a module named
in a string and imported by name later (``"mattekit.video.writers:AvWriter"`` in a table,
uvicorn's ``"module:app"``, ``importlib.import_module("mattekit.x")``).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, except those under ``if TYPE_CHECKING:`` (never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


# A module named in a string that is imported by name later: "mattekit.video.writers:AvWriter"
# in a table, uvicorn's "module:app". (A logger's name, "mattekit.video", is no import.)
_NAMED = re.compile(r"(mattekit(?:\.\w+)*):\w+")


def _named_in_strings(tree: ast.AST) -> set[str]:
    """Modules named as ``"module:attr"`` or passed to ``importlib.import_module("...")``."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _NAMED.fullmatch(node.value)
            if match and match[1] in MODULES:
                found.add(match[1])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in MODULES
        ):
            found.add(node.args[0].value)
    return found


def _deps(name: str, path: Path) -> set[str]:
    """The mattekit modules ``name`` imports (``from . import x`` counts as ``x``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    deps = _named_in_strings(tree)
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            deps.update(a.name for a in node.names if a.name in MODULES)
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        submodules = {f"{target}.{a.name}" for a in node.names} & MODULES.keys()
        deps |= submodules
        if target in MODULES and len(submodules) < len(node.names):
            deps.add(target)  # names defined in the module itself
    deps.discard(name)
    return deps


GRAPH = {name: _deps(name, path) for name, path in MODULES.items()}


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_graph_sees_lazy_imports() -> None:
    assert "mattekit.video" in GRAPH["mattekit.cli.video"]  # imported inside the command function
    assert "mattekit.core.engine" in GRAPH["mattekit.matter"]
    assert "mattekit.video.writers" in GRAPH["mattekit.video.outputs"]  # "module:Class" in the table
    assert "mattekit.service.factory" in GRAPH["mattekit.cli.serve"]  # uvicorn.run("module:app")


# The floors of DESIGN.md. A module on one floor imports only its own floor or lower ones.
GROUND = {
    "errors",
    "extras",
    "deadline",
    "options",
    "formats",
    "files",
    "decode",
    "compose",
    "encode",
    "core",
    "metrics",
    "cluster",
}
LIBRARY = {"", "matter", "pipeline", "presets", "video", "plan"}  # "" is mattekit/__init__.py
FACES = {"cli", "service", "batch", "__main__"}


def _floor(module: str) -> int:
    top = module.removeprefix("mattekit").lstrip(".").partition(".")[0]
    for level, floor in enumerate((GROUND, LIBRARY, FACES)):
        if top in floor:
            return level
    raise AssertionError(f"{module} is on no floor: add it to GROUND, LIBRARY or FACES in {__file__}")


def test_imports_only_go_down() -> None:
    upward = {m: sorted(d for d in deps if _floor(d) > _floor(m)) for m, deps in GRAPH.items()}
    assert {m: d for m, d in upward.items() if d} == {}


@pytest.mark.parametrize(
    "face,allowed",
    [
        ("mattekit.cli", ()),
        ("mattekit.service", ("mattekit.cli",)),  # `mattekit serve` starts it
        ("mattekit.batch", ("mattekit.cli",)),  # `mattekit batch` runs it
    ],
)
def test_only_the_command_line_uses_another_face(face: str, allowed: tuple[str, ...]) -> None:
    """Library code and the other faces never load the CLI (click) or the service (FastAPI)."""
    outside = [m for m in GRAPH if not _inside(m, face) and not any(_inside(m, a) for a in allowed) and m != "mattekit.__main__"]
    wrong = {m: sorted(d for d in GRAPH[m] if _inside(d, face)) for m in outside}
    assert {m: d for m, d in wrong.items() if d} == {}


def test_route_modules_share_helpers_through_common_not_each_other() -> None:
    routes = {"mattekit.service.api", "mattekit.service.jobs", "mattekit.service.removebg"}
    assert {m: sorted(GRAPH[m] & routes) for m in routes if GRAPH[m] & routes} == {}


# A module past this many lines is a concept with parts, and a concept with parts is a folder
# (batch/, video/chunks/, core/): unless it is one concept, said here.
MAX_LINES = 500
ONE_CONCEPT = {
    "mattekit.service.removebg": "the remove.bg v1.0 API as its clients use it: parameters, JSON/ZIP replies, errors, account",
}


def test_no_module_is_several_concepts() -> None:
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert {m: n for m, n in long.items() if m not in ONE_CONCEPT} == {}


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dep in sorted(GRAPH[node]):
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(dep) :], dep]))
            if dep not in state:
                visit(dep)
        path.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def _loaded_after(code: str) -> list[str]:
    heavy = ("pydantic", "onnxruntime", "numpy", "PIL", "cv2", "av", "ray", "rich", "fastapi", "typer")
    probe = textwrap.dedent(code) + f"\nimport sys\nprint(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded: list[str] = eval(proc.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_cli_is_cheap() -> None:
    """As click tests its own import cost: the command line loads none of the heavy libraries."""
    assert _loaded_after("import mattekit.cli") == []


def test_version_and_help_load_nothing_heavy() -> None:
    for argv in (["--version"], ["--help"], ["remove", "--help"], ["video", "--help"]):
        code = f"""
            import sys
            from mattekit.cli import main
            sys.argv = ["mattekit", *{argv!r}]
            try:
                main()
            except SystemExit as exc:
                assert exc.code == 0, exc.code
        """
        assert _loaded_after(code) == [], argv


def test_stills_go_decode_compose_encode_knowing_nothing_of_the_model() -> None:
    """A still's way is decode -> (model) -> compose -> encode; the three steps never reach into
    the model core or the presets, and each step only uses the ones before it."""
    steps = ("mattekit.decode", "mattekit.compose", "mattekit.encode")
    for step in steps:
        assert not {d for d in GRAPH[step] if _inside(d, "mattekit.core") or d == "mattekit.presets"}, step
    assert "mattekit.decode" in GRAPH["mattekit.compose"]
    assert not GRAPH["mattekit.decode"] & set(steps)
    assert not GRAPH["mattekit.encode"] & set(steps)


def test_the_video_outputs_table_and_the_top_level_video_api_are_light() -> None:
    """The CLI reads the outputs table for its help; ``mattekit.process_video`` loads on use."""
    assert _loaded_after("import mattekit.video.outputs, mattekit.video") == []
    assert _loaded_after("import mattekit; mattekit.__all__.index('process_video')") == []
