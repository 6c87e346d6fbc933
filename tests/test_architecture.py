"""The house: rooms by concern, imports flowing one way, no cycles, small modules.

The import graph is read with ``ast`` from every file of the package, counting imports anywhere
in a file (inside functions too); only ``if TYPE_CHECKING:`` blocks are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kvschema"

#: Each room and the rooms below it that it may import.  A room never imports one above it.
ROOMS: dict[str, set[str]] = {
    "_version": set(),
    "errors": set(),
    "_args": {"errors"},
    "_reading": {"errors"},
    "spec": {"errors", "_args", "_reading"},
    "layout": {"errors", "_args", "_reading", "spec"},
    "models": {"errors", "_args", "_reading", "spec", "layout"},
    "planning": {"errors", "_args", "spec", "layout", "models"},
    "exchange": {"errors", "_args", "_reading", "spec", "layout"},
    # reading deploy documents (YAML, JSON, TOML with limits) and the text every line prints:
    # shared by the command line and the web app
    "reading": {"errors", "_args", "_reading", "spec", "layout"},
    # drawing plans and sizes
    "render": {"errors", "_args", "spec", "layout", "models", "planning", "reading"},
    # the web app (the serve extra): everything below, never the command line
    "serve": {
        "errors",
        "_args",
        "_reading",
        "_version",
        "spec",
        "layout",
        "models",
        "planning",
        "exchange",
        "reading",
        "render",
    },
    "cli": {
        "errors",
        "_args",
        "_reading",
        "_version",
        "spec",
        "layout",
        "models",
        "planning",
        "exchange",
        "reading",
        "render",
        "serve",
    },
    # optional extras and the names kept for users: they read the rooms below
    "jax": {"errors", "spec", "layout"},
    "strategies": {"spec", "layout"},
    "hf": {"models"},
    "planner": {"planning"},
    "__main__": {"cli"},
    "__init__": {"_version"},  # everything else loads lazily, on first use
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return skipped


def _imports(path: Path, modules: set[str], source: str | None = None) -> set[str]:
    """The package's modules that ``path`` imports (a package's ``__init__`` when named)."""
    name = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    skipped = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: the package it names, a submodule of it when given
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [base])])
            targets = [f"{base}.{alias.name}" for alias in node.names]
            if node.module:  # ``from . import x`` runs no package of its own
                targets.append(base)
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports."""
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(path) for path in paths}
    return {_module_name(path): _imports(path, modules) for path in paths}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), or a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _room(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle() -> None:
    assert _cycles(import_graph()) == []


def test_imports_flow_down_the_rooms() -> None:
    graph = import_graph()
    wrong = []
    for module, targets in graph.items():
        room = _room(module)
        assert room in ROOMS, f"{module} is in no room of this test: add it to ROOMS"
        for target in targets:
            if _room(target) != room and _room(target) not in ROOMS[room]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_a_room_reaches_its_neighbours_modules_not_their_packages() -> None:
    """Importing ``kvschema.spec`` (the package) from inside ``kvschema.spec`` would loop."""
    graph = import_graph()
    packages = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}
    inward = [
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if target in packages and module.startswith(target + ".")
    ]
    assert inward == []


def test_few_modules_at_the_top_and_none_large() -> None:
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= 10, top
    large = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert large == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import kvschema.spec.union as u", {"kvschema.spec.union"}),
        ("from kvschema.spec.union import CacheSpec", {"kvschema.spec.union"}),
        ("def f():\n    from kvschema.layout import config", {"kvschema.layout.config"}),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import kvschema.cli.app", set()),
        ("from . import union", {"kvschema.spec.union"}),
    ],
)
def test_imports_are_read_anywhere_in_a_file(source: str, expected: set[str]) -> None:
    """The reader counts imports inside functions and relative ones, not TYPE_CHECKING blocks."""
    modules = {"kvschema.spec.union", "kvschema.layout.config", "kvschema.cli.app", "kvschema.spec"}
    assert _imports(PACKAGE / "spec" / "probe.py", modules, source) == expected
