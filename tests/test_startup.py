"""What the console script imports for a plain command, and pydantic's plugin discovery.

Each command runs as users run it (``kvschema.cli.run``, its own process); an ``atexit``
handler (run() calls them before it ends the process) writes the modules it imported.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The console script, with the modules it imported written to standard error at exit.
CONSOLE = (
    "import atexit, json, os, sys\n"
    "atexit.register(lambda: os.write(2, ('\\nMODULES ' + json.dumps(sorted(sys.modules)))"
    ".encode()))\n"
    "sys.argv = ['kvschema', *sys.argv[1:]]\n"
    "from kvschema.cli import run\n"
    "run()\n"
)

FIT = ["fit", "--hf-config", "examples/fit/qwen3-14b.json", "--gpu", "H100"]
PLAN = ["plan", "--hf-config", "tests/fixtures/hf/gemma3-27b.json", "--memory", "40GiB"]
VALIDATE = ["validate", "examples/valid/gemma3-sliding-hybrid.yaml"]

#: Modules no plain command needs: pydantic's plugin discovery (importlib.metadata and what it
#: pulls in), readers of package data and archives, and kvschema's modules for other options.
NEVER = {
    "importlib.metadata",
    "importlib.resources",
    "email",
    "csv",
    "zipfile",
    "tempfile",
    "pickle",
    "difflib",
    "kvschema.planning.solvers",  # --solve, --sweep
    "kvschema.models.safetensors",  # a checkpoint folder
    "kvschema.models.tensors",
    "kvschema.layout.masks",  # mask details
    "kvschema.exchange.compat",  # diff
}


def _modules(argv: list[str], **env: str) -> tuple[int, set[str]]:
    environ = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    done = subprocess.run(
        [sys.executable, "-c", CONSOLE, *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**environ, **env},
    )
    line = done.stderr.rpartition("\nMODULES ")[2]
    return done.returncode, set(json.loads(line))


#: fit's options: a run adds the options of its own command alone (kvschema.cli.arguments).
FIT_OPTIONS = "kvschema.cli.fit_cli"


@pytest.mark.parametrize(
    ("argv", "also_never"),
    [
        (FIT, {"yaml", "kvschema.reading.loaders"}),
        (PLAN, {"yaml", "kvschema.planning.fitmodel", "kvschema.models.weights", FIT_OPTIONS}),
        (VALIDATE, {"kvschema.planning.planner", "kvschema.models.hf", FIT_OPTIONS}),
    ],
    ids=["fit", "plan", "validate"],
)
def test_a_plain_command_imports_only_what_it_uses(argv: list[str], also_never: set[str]) -> None:
    code, modules = _modules(argv)
    assert code == 0
    assert "kvschema.cli.plugins" in modules  # the run went through the console script
    assert not (NEVER | also_never) & modules


def test_a_users_pydantic_disable_plugins_is_left_to_pydantic() -> None:
    """Set to any value, even empty (pydantic then loads every plugin), the variable is the
    user's: the console script leaves the discovery to pydantic, which reads it."""
    for value in ("", "some_plugin", "__all__"):
        code, modules = _modules(FIT, PYDANTIC_DISABLE_PLUGINS=value)
        assert code == 0
        assert "pydantic.plugin._loader" in modules
        assert "importlib.metadata" in modules  # pydantic's own loader, imported


def test_the_stand_in_answers_no_plugins_and_lends_the_rest() -> None:
    code = (
        "import sys\n"
        "from kvschema.cli.plugins import LOADER, skip_plugin_discovery\n"
        "assert skip_plugin_discovery()\n"
        "assert not skip_plugin_discovery()  # once per process\n"
        "from pydantic.plugin._loader import get_plugins\n"
        "print(list(get_plugins()), 'importlib.metadata' in sys.modules)\n"
        "from pydantic.plugin._loader import PYDANTIC_ENTRY_POINT_GROUP\n"  # a name it lends
        "print(PYDANTIC_ENTRY_POINT_GROUP, sys.modules[LOADER].get_plugins is get_plugins)\n"
        "from pydantic import BaseModel\n"
        "class M(BaseModel):\n"
        "    n: int\n"
        "print(M(n=1).n)\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, check=True
    )
    assert done.stdout.split("\n")[:3] == ["[] False", "pydantic True", "1"]


def test_main_leaves_the_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the console script skips the discovery; main() (a library call) changes nothing."""
    from kvschema.cli import main

    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    assert main(["models"]) == 0
    assert "PYDANTIC_DISABLE_PLUGINS" not in os.environ


def _defines_models(tree: ast.Module, bases: set[str]) -> bool:
    return any(
        isinstance(node, ast.ClassDef)
        and any(isinstance(b, ast.Name) and b.id in bases for b in node.bases)
        for node in tree.body
    )


def test_modules_of_pydantic_models_give_pydantic_annotations_not_strings() -> None:
    """Under ``from __future__ import annotations`` pydantic compiles each field's annotation
    from its text (a ``compile`` per field, ~20 M instructions of a fit): modules that define
    models leave it out, and quote the few forward references in their functions instead."""
    trees = {
        path: ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted((ROOT / "kvschema").rglob("*.py"))
    }
    bases = {"BaseModel"}
    for _ in range(3):  # the models' own bases (_SpecBase, _Frozen, ...), defined in turn
        for tree in trees.values():
            bases |= {
                node.name
                for node in tree.body
                if isinstance(node, ast.ClassDef)
                and any(isinstance(b, ast.Name) and b.id in bases for b in node.bases)
            }
    with_models = [path for path, tree in trees.items() if _defines_models(tree, bases)]
    assert len(with_models) >= 20  # the walk found them
    future = [
        path.relative_to(ROOT).as_posix()
        for path in with_models
        if any(
            isinstance(node, ast.ImportFrom) and node.module == "__future__"
            for node in trees[path].body
        )
    ]
    assert future == []


def test_a_fit_builds_no_validator_for_the_shipped_gpu_catalogue() -> None:
    """The catalogue is read without validation (tests/test_gpus.py validates it instead)."""
    code = CONSOLE.replace(
        "json.dumps(sorted(sys.modules))",
        "json.dumps([m.__name__ for m in (sys.modules['kvschema.planning.gpus'].GPU, "
        "sys.modules['kvschema.planning.gpus'].GPUSource) if m.__pydantic_complete__])",
    )
    environ = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    done = subprocess.run(
        [sys.executable, "-c", code, *FIT], capture_output=True, text=True, cwd=ROOT, env=environ
    )
    assert done.returncode == 0
    assert json.loads(done.stderr.rpartition("\nMODULES ")[2]) == []
