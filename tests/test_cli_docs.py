"""docs/cli.md's synopsis and each command's ``--help`` agree with the parser (issue 17).

The synopsis is written for people, so it is checked rather than generated: every option the
parser takes is in it, every option it names is the parser's, and every ``a|b|c`` list of
values is the option's choices.  Each ``--help`` ends with two or three examples, each of which
the parser takes, naming files that exist.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from kvschema.cli.app import build_parser
from kvschema.cli.helptext import EXAMPLES

ROOT = Path(__file__).resolve().parent.parent
CLI_DOC = ROOT / "docs" / "cli.md"


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def _synopsis() -> dict[str, str]:
    """Each command's synopsis text, from the first ```text block of docs/cli.md."""
    block = re.search(r"^```text\n(.*?)^```$", CLI_DOC.read_text(), re.S | re.M)
    assert block is not None
    commands: dict[str, str] = {}
    current = None
    for line in block.group(1).splitlines():
        match = re.match(r"kvschema (\w+)", line)
        if match and not line.startswith("kvschema --"):
            current = match.group(1)
            commands[current] = line
        elif current is not None and line.startswith(" "):
            commands[current] += " " + line.strip()
    return commands


def _options(text: str) -> set[str]:
    """The options a synopsis names; ``--[no-]x`` names ``--x`` and ``--no-x``."""
    found: set[str] = set()
    for prefix, no, name in re.findall(r"(?<![\w-])(--?)(\[no-\])?([a-zA-Z][\w-]*)", text):
        if prefix == "-" and len(name) > 1:
            continue  # not a short option (a range such as 40GiB-80GiB)
        found.add(prefix + name)
        if no:
            found.add(f"--no-{name}")
    return found


def _parser_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        option: action
        for action in parser._actions
        for option in action.option_strings
        if option not in ("-h", "--help")
    }


SUBPARSERS = _subparsers()


def test_the_synopsis_names_every_command() -> None:
    assert set(_synopsis()) == set(SUBPARSERS)


@pytest.mark.parametrize("command", sorted(SUBPARSERS))
def test_the_synopsis_names_the_options_the_parser_takes(command: str) -> None:
    text = _synopsis()[command]
    named = _options(text)
    options = _parser_options(SUBPARSERS[command])
    assert named - set(options) == set(), f"docs/cli.md names options {command} does not take"
    for action in {id(a): a for a in options.values()}.values():
        assert set(action.option_strings) & named, (
            f"docs/cli.md's synopsis of {command} misses {action.option_strings}"
        )


@pytest.mark.parametrize("command", sorted(SUBPARSERS))
def test_the_synopsis_lists_each_options_choices(command: str) -> None:
    options = _parser_options(SUBPARSERS[command])
    for option, values in re.findall(r"(--?[\w-]+) ([\w]+(?:\|[\w]+)+)", _synopsis()[command]):
        choices = options[option].choices
        assert choices is not None and set(values.split("|")) == set(choices), option


@pytest.mark.parametrize("command", sorted(SUBPARSERS))
def test_help_ends_with_two_or_three_examples(command: str) -> None:
    text = SUBPARSERS[command].format_help()
    tail = text[text.rindex("examples:") :].splitlines()
    lines = [line for line in tail[1:] if line.strip()]
    assert 2 <= len(lines) <= 3, text
    assert all(line.startswith("  kvschema ") for line in lines)


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_every_example_parses_and_names_files_that_exist(command: str) -> None:
    parser = build_parser()
    for line in EXAMPLES[command].splitlines()[1:]:
        words = shlex.split(line.split("#")[0].split(">")[0], posix=True)
        assert words[:2] == ["kvschema", command]
        args = parser.parse_args(words[1:])  # exits (and fails the test) on a usage error
        assert build_parser(deferred=True).parse_args(words[1:]) == args  # as main() parses
        for word in words:
            if word.endswith((".yaml", ".json", ".toml")) and word != "plan.json":
                assert (ROOT / word).is_file(), word


@pytest.mark.parametrize("command", sorted(SUBPARSERS))
def test_a_run_builds_only_its_commands_options_and_they_are_the_full_parsers(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """main()'s parser adds a command's options when the command is chosen: its help (and so
    its options) are the full parser's, the other commands are left without theirs."""
    parser = build_parser(deferred=True)
    assert parser.format_help() == build_parser().format_help()
    with pytest.raises(SystemExit) as stop:
        parser.parse_args([command, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == SUBPARSERS[command].format_help()
    chosen = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, other in chosen.choices.items():
        assert (len(other._actions) > 1) is (name == command)  # -h alone, or all of them


# -- install docs that work on a fresh machine -----------------------------------------------

INSTALL_PAGES = [ROOT / "README.md", ROOT / "docs" / "index.md"]


def _shell_blocks(page: Path) -> list[str]:
    return re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```$", page.read_text(), re.S | re.M)


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
def test_no_page_installs_from_pypi(page: Path) -> None:
    """kvschema is not published: every install names a clone (``.``) or a built wheel."""
    text = page.read_text()
    for match in re.finditer(r"pip install\s+(?:-\S+\s+)*(['\"]?)([^\s'\"`]+)", text):
        target = match.group(2)
        before = text[max(0, match.start() - 40) : match.start()]
        if "not published" in before or "finds nothing" in text[match.end() : match.end() + 20]:
            continue  # the sentence that says pip install kvschema does not work
        assert target.startswith((".", "dist/", "kvschema-")), f"{page.name}: {match.group(0)}"


@pytest.mark.parametrize("page", INSTALL_PAGES, ids=lambda p: p.name)
def test_install_docs_say_the_python_floor_and_how(page: Path) -> None:
    floor = re.search(r'requires-python = ">=(\d+\.\d+)"', (ROOT / "pyproject.toml").read_text())
    assert floor is not None
    text = page.read_text()
    assert f"Python {floor.group(1)} or newer" in text
    assert "pip wheel . --no-deps -w dist" in text
    assert "npm ci --prefix tests/js" in text
    assert "not published on PyPI" in text


def test_the_pre_commit_rev_is_honest_and_the_version_is_the_changelogs() -> None:
    from kvschema import __version__

    rev = re.search(r"^\s+rev: (\S+)", CLI_DOC.read_text(), re.M)
    assert rev is not None
    # a commit sha placeholder (40 hex digits) or the tag of this version, never another
    assert re.fullmatch(r"[0-9a-f]{40}", rev.group(1)) or rev.group(1) == f"v{__version__}"
    assert f"v{__version__}" in CLI_DOC.read_text()  # the tag it will be, named
    first = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert first is not None and first.group(1) == __version__
