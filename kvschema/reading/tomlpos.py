"""Where each key of a TOML document stands, so that TOML errors carry a line as YAML's do.

``tomllib`` gives values, not positions.  This reads the lines once more, after ``tomllib``
accepted them, and records the 1-based (line, column) of every table header (``[a.b]``,
``[[a]]``, an array of tables counted as ``tomllib`` counts it) and every ``key = value``,
dotted keys included.  Values inside one line (inline tables, arrays) are not entered: their
errors point at the key that holds them, as :meth:`Document.position` falls back to a parent.

>>> toml_positions('a = 1\\n[[g]]\\nx = 2\\n[[g]]\\n[g.spec]\\nkind = "m"\\n')[("g", 1, "spec", "kind")]
(6, 1)
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["toml_positions"]

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_BASIC = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
_LITERAL = re.compile(r"'([^'\n]*)'")
_TOKEN = re.compile(r'"""|\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#|[\[\]{}]')
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)")


def _unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] in "uU" and len(code) > 1:
            value = int(code[1:], 16)
            return chr(value) if value < 0x110000 else code
        return _ESCAPES.get(code, code)

    return _ESCAPE.sub(one, text)


def _keys(line: str, start: int) -> tuple[list[str] | None, int]:
    """The dotted key at ``line[start:]`` and where it ends (None when there is none)."""
    keys: list[str] = []
    i = start
    while True:
        while i < len(line) and line[i] in " \t":
            i += 1
        if line.startswith('"', i):
            found = _BASIC.match(line, i)
            if found is None:
                return None, i
            keys.append(_unescape(found.group(1)))
        elif line.startswith("'", i):
            found = _LITERAL.match(line, i)
            if found is None:
                return None, i
            keys.append(found.group(1))
        else:
            found = _BARE.match(line, i)
            if found is None:
                return None, i
            keys.append(found.group(0))
        i = found.end()
        while i < len(line) and line[i] in " \t":
            i += 1
        if not line.startswith(".", i):
            return keys, i
        i += 1


class _Scan:
    """Open brackets and an open multi-line string, carried from line to line."""

    def __init__(self) -> None:
        self.depth = 0
        self.string: str | None = None  # the closing delimiter of an open multi-line string

    def close_string(self, line: str, start: int) -> int | None:
        """Where the open multi-line string ends on ``line`` (None: it goes on)."""
        delimiter = self.string or '"""'
        i = start
        while True:
            found = line.find(delimiter, i)
            if found < 0:
                return None
            slashes = len(line[:found]) - len(line[:found].rstrip("\\"))
            if delimiter == "'''" or slashes % 2 == 0:
                self.string = None
                end = found + 3
                while line.startswith(delimiter[0], end):  # up to two quotes belong inside
                    end += 1
                return end
            i = found + 1

    def value(self, line: str, start: int) -> None:
        """Read a value's text from ``start``: strings, comments and brackets."""
        i = start
        while True:
            if self.string is not None:
                end = self.close_string(line, i)
                if end is None:
                    return
                i = end
            token = _TOKEN.search(line, i)
            if token is None:
                return
            text = token.group(0)
            i = token.end()
            if text in ('"""', "'''"):
                self.string = text
            elif text == "#":
                return
            elif text in "[{":
                self.depth += 1
            elif text in "]}":
                self.depth = max(0, self.depth - 1)


def toml_positions(text: str) -> dict[tuple[Any, ...], tuple[int, int]]:
    """1-based (line, column) of each table and key of a TOML document ``tomllib`` accepted."""
    positions: dict[tuple[Any, ...], tuple[int, int]] = {}
    arrays: dict[tuple[Any, ...], int] = {}  # an array of tables -> the tables seen so far
    table: tuple[Any, ...] = ()
    scan = _Scan()

    def resolve(keys: list[str]) -> tuple[Any, ...]:
        path: tuple[Any, ...] = ()
        for key in keys:
            path = (*path, key)
            if path in arrays:  # a key through an array of tables names its latest table
                path = (*path, arrays[path] - 1)
        return path

    for number, line in enumerate(text.split("\n"), 1):
        if scan.string is not None or scan.depth:
            scan.value(line, 0)
            continue
        column = len(line) - len(line.lstrip(" \t"))
        if line.startswith("#", column) or column == len(line.rstrip("\r")):
            continue
        where = (number, column + 1)
        positions.setdefault((), where)
        if line.startswith("[[", column):
            keys, end = _keys(line, column + 2)
            if keys is None:
                continue
            array = (*resolve(keys[:-1]), keys[-1])
            count = arrays.get(array, 0)
            arrays[array] = count + 1
            positions.setdefault(array, where)
            table = (*array, count)
            positions[table] = where
            continue
        if line.startswith("[", column):
            keys, end = _keys(line, column + 1)
            if keys is None:
                continue
            table = resolve(keys)
            for size in range(1, len(table) + 1):
                positions.setdefault(table[:size], where)
            continue
        keys, end = _keys(line, column)
        if keys is None or not line.startswith("=", end):
            continue
        path = (*table, *keys)
        for size in range(len(table) + 1, len(path)):
            positions.setdefault(path[:size], where)
        positions[path] = where
        scan.value(line, end + 1)
    return positions
