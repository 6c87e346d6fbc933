"""The package's surface: exports, import cost, console entry points."""

import subprocess
import sys
from pathlib import Path

import kvschema
from kvschema import _WHERE  # type: ignore[attr-defined]


def test_all_is_sorted_and_complete() -> None:
    assert kvschema.__all__ == sorted(kvschema.__all__)
    assert set(kvschema.__all__) == {*_WHERE, "__version__"}
    for name in kvschema.__all__:
        assert getattr(kvschema, name) is not None


def test_import_pulls_in_neither_jax_nor_numpy_nor_yaml() -> None:
    code = (
        "import sys, kvschema\n"
        "kvschema.CacheGroupsConfig.model_validate_json("
        '\'{"num_pages": 1, "kv_cache_groups": [{"kv_cache_spec": {"kind": "mamba",'
        ' "page_size": 1, "shapes": [[4]], "dtype": "fp32"}}]}\')\n'
        "print(sorted(m for m in ('jax', 'numpy', 'yaml', 'jaxlib', 'fastapi', 'uvicorn',"
        " 'starlette') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_command_line_imports_no_web_framework() -> None:
    """``kvschema serve`` is an optional extra: the CLI's parser (every subcommand, serve's
    included) and its other commands never import FastAPI, Starlette or uvicorn."""
    code = (
        "import sys, contextlib, io\n"
        "from kvschema.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "    for argv in (['serve', '--help'], ['fit', '--help'], ['--help']):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "    main(['validate', 'examples/valid/spec-mla.yaml'])\n"
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "[]"


def test_version_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from kvschema.cli import main\n"
        "try:\n"
        "    main(['--version'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('pydantic', 'jax', 'numpy', 'yaml') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]")
    assert out.stdout.startswith(f"kvschema {kvschema.__version__}")


def test_python_dash_m_and_console_script() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kvschema", "--help"], capture_output=True, text=True, check=True
    )
    assert "validate" in out.stdout
    assert "schema" in out.stdout


def test_every_public_callable_has_a_runnable_example() -> None:
    """Doctests run the examples; this checks that every public class and function has one."""
    import inspect

    missing = []
    for name in kvschema.__all__:
        obj = getattr(kvschema, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # constants, the version, the CacheSpec alias
        if ">>>" not in (inspect.getdoc(obj) or ""):
            missing.append(name)
    assert not missing
