"""Every code block in the docs runs: Python blocks execute, CLI blocks print what is shown."""

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from kvschema.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(page.read_text()) if lang == language]


def run_cli(command: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        contextlib.suppress(SystemExit),
    ):
        main(shlex.split(command)[1:])
    return out.getvalue() + err.getvalue()


def console_cases() -> list[tuple[str, str, str]]:
    cases = []
    for page in PAGES:
        for body in blocks(page, "console"):
            for chunk in re.split(r"^(?=\$ )", body, flags=re.M):
                if not chunk.startswith("$ kvschema "):
                    continue
                command, _, shown = chunk.partition("\n")
                cases.append((page.name, command[2:], shown))
    return cases


@pytest.mark.parametrize(("page", "command", "shown"), console_cases())
def test_cli_examples_print_what_the_docs_show(
    monkeypatch: pytest.MonkeyPatch, page: str, command: str, shown: str
) -> None:
    monkeypatch.chdir(ROOT)
    assert run_cli(command) == shown, f"{page}: {command}"


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "python")], ids=lambda p: p.name)
def test_python_examples_run(monkeypatch: pytest.MonkeyPatch, page: Path) -> None:
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for body in blocks(page, "python"):
        exec(compile(body, str(page), "exec"), namespace)


def test_docs_have_runnable_examples() -> None:
    assert console_cases()
