"""Reading deploy files: YAML 1.2 (safe, through libyaml), JSON and TOML, with positions and limits.

YAML is read event by event from libyaml and built under the YAML 1.2 core schema (in
``kvschema.reading.yaml12``): ``yes``/``no`` stay strings, ``017`` is seventeen, no tag constructs an
object.  Duplicate
keys are reported with both lines, in YAML and JSON alike.  Limits on bytes, nesting depth
and the number of values (aliases counted as expanded) end hostile files early.

>>> (doc,) = load_text("kv:\\n  page_size: 017\\n  flag: yes\\n", "yaml")
>>> doc.data, doc.position(("kv", "flag"))
({'kv': {'page_size': 17, 'flag': 'yes'}}, (3, 3))
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any, BinaryIO

from kvschema._reading import FileReadError, read_capped, read_stream_capped
from kvschema.reading.document import (
    MAX_INT_DIGITS,
    Document,
    Format,
    Limits,
    LoadError,
    Path_,
    Problem,
    check_int,
    quote,
)
from kvschema.reading.tomlpos import toml_positions
from kvschema.reading.yaml12 import depth_advice, yaml_documents

__all__ = [
    "FORMATS",
    "Document",
    "Limits",
    "LoadError",
    "Problem",
    "format_for",
    "load_bytes",
    "load_file",
    "load_text",
    "preload",
]

#: File formats by extension.
FORMATS: dict[str, Format] = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml"}


_GENEROUS = Limits(max_bytes=sys.maxsize, max_depth=sys.maxsize, max_values=sys.maxsize)
_INT_TOO_LONG = f"an integer of more than {MAX_INT_DIGITS} digits"


class _Stream:
    """The positions of every document of one text, read once, when first asked for.

    Reading keeps no positions (most files are valid and need none); the first document that
    needs a line reads the whole stream once more with them, for all its documents at once.
    """

    def __init__(self, text: str, fmt: Format) -> None:
        self.text = text
        self.fmt = fmt
        self.documents: list[Document] | None = None

    def _read(self) -> list[Document]:
        if self.documents is None:
            if self.fmt == "toml":
                self.documents = [Document(None, 0, _positions=toml_positions(self.text))]
            else:  # JSON is read as YAML's flow style for its positions
                try:  # the limits held on the first reading, so they hold here
                    self.documents = yaml_documents(self.text, _GENEROUS, track=True)
                except LoadError:
                    self.documents = []
            self.text = ""
        return self.documents

    def positions(self, index: int) -> dict[Path_, tuple[int, int]]:
        documents = self._read()
        found = documents[index]._positions if index < len(documents) else None
        return found or {}

    def problems(self, index: int) -> list[Problem]:
        documents = self._read()
        return documents[index].problems if index < len(documents) else []


# -- JSON and TOML -------------------------------------------------------------------------


def _json_document(text: str, limits: Limits) -> Document:
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as err:
        raise LoadError(
            f"line {err.lineno}, column {err.colno}: JSON syntax error: {err.msg}",
            line=err.lineno,
            column=err.colno,
        ) from None
    except RecursionError:
        raise LoadError(_TOO_DEEP_FOR_PARSER.format(fmt="JSON")) from None
    except ValueError:  # an integer with more digits than Python converts
        raise LoadError(f"JSON value out of range: {_INT_TOO_LONG}") from None
    _check_shape(data, limits)
    stream = _Stream(text, "json")
    document = Document(data, 0, _locate=partial(stream.positions, 0))
    if duplicates:
        document.problems = stream.problems(0) or [
            Problem((), f"duplicate key {quote(key)}", "duplicate_key") for key in duplicates
        ]
    return document


#: A parser that recurses ran out of stack: no --max-depth reads the file.
_TOO_DEEP_FOR_PARSER = (
    "nesting deeper than Python's {fmt} reader handles (its recursion limit); "
    "no --max-depth reads this file"
)
_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*\Z")


def _toml_document(text: str, limits: Limits) -> Document:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        where = _TOML_WHERE.search(message)
        if where is None:
            raise LoadError(f"TOML syntax error: {message}") from None
        line, column = int(where.group(1)), int(where.group(2))
        raise LoadError(
            f"line {line}, column {column}: TOML syntax error: {message[: where.start()]}",
            line=line,
            column=column,
        ) from None
    except RecursionError:
        raise LoadError(_TOO_DEEP_FOR_PARSER.format(fmt="TOML")) from None
    except ValueError:  # an integer with more digits than Python converts
        raise LoadError(f"TOML value out of range: {_INT_TOO_LONG}") from None
    _check_shape(data, limits)
    return Document(data, 0, _locate=partial(_Stream(text, "toml").positions, 0))


def _deepest(data: Any) -> int:
    """Levels of nested collections in parsed data (walked without recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        kind = type(node)
        if kind is dict or kind is list:
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((child, depth) for child in (node.values() if kind is dict else node))
    return deepest


def _check_shape(data: Any, limits: Limits) -> None:
    """Depth, value-count and integer-size limits for data parsed without the event builder."""
    count = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > limits.max_values:
            raise LoadError(f"more than {limits.max_values} values; raise --max-values if intended")
        kind = type(node)
        if kind is dict or kind is list:
            if depth > limits.max_depth:
                advice = depth_advice(_deepest(data), limits.max_depth)
                raise LoadError(f"nesting deeper than {limits.max_depth} levels{advice}")
            children = node.values() if kind is dict else node
            stack.extend((child, depth + 1) for child in children)
        elif kind is int and not check_int(node):
            raise LoadError(f"value out of range: {_INT_TOO_LONG}")


# -- entry points --------------------------------------------------------------------------


def format_for(name: str) -> Format:
    """The format a file name's extension names.

    >>> format_for("deploy/prod.yml")
    'yaml'
    """
    suffix = os.path.splitext(name)[1].lower()
    found = FORMATS.get(suffix)
    if found is None:
        raise LoadError(
            f"unknown extension {suffix or '(none)'!r}; use .yaml, .yml, .json or .toml, "
            "or name the format with --format",
            file=name,
        )
    return found


def preload(names: Sequence[str], fmt: Format | None = None) -> None:
    """Import the parsers that reading ``names`` will need (before forking workers)."""
    formats = {fmt} if fmt else {FORMATS.get(os.path.splitext(n)[1].lower()) for n in names}
    if "yaml" in formats:
        import yaml._yaml  # noqa: F401
    if "toml" in formats:
        import tomllib  # noqa: F401


def load_text(text: str, fmt: Format, limits: Limits | None = None) -> list[Document]:
    """Parse ``text`` as ``fmt`` into its documents (YAML streams may hold several)."""
    limits = limits or Limits()
    if fmt == "json":
        return [_json_document(text, limits)]
    if fmt == "toml":
        return [_toml_document(text, limits)]
    documents = yaml_documents(text, limits)
    stream = _Stream(text, "yaml")  # positions: one more reading of the stream, if any is asked
    for document in documents:
        document._locate = partial(stream.positions, document.index)
        if document.problems:  # describe the duplicate keys with their lines
            document.problems = stream.problems(document.index)
    return documents


def load_bytes(raw: bytes, fmt: Format | None, limits: Limits | None = None) -> list[Document]:
    """Decode UTF-8 (a BOM allowed) and parse; without a format, JSON if it starts with { or [."""
    limits = limits or Limits()
    if len(raw) > limits.max_bytes:
        raise LoadError(
            f"larger than {limits.max_bytes} bytes; raise --max-bytes if this is intended"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise LoadError(
            f"not UTF-8 text: byte 0x{raw[err.start]:02x} at offset {err.start}"
        ) from None
    if "\x00" in text:
        raise LoadError(f"binary data: NUL byte at offset {text.index(chr(0))}")
    if fmt is None:
        fmt = "json" if text.lstrip()[:1] in ("{", "[") else "yaml"
    return load_text(text, fmt, limits)


def _read_bounded(stream: BinaryIO, limit: int, expected: int = 0) -> bytes:
    """At most ``limit`` bytes of ``stream``, read in pieces (one piece when ``expected`` is the size)."""
    try:
        return read_stream_capped(stream, limit, expected)
    except FileReadError:
        raise LoadError(_too_large(limit)) from None


def _too_large(limit: int, size: int | None = None) -> str:
    said = (
        f"{size} bytes, larger than {limit}" if size is not None else f"larger than {limit} bytes"
    )
    return f"{said}; raise --max-bytes if this is intended"


def _stdin(stdin: BinaryIO | None, limit: int) -> bytes:
    source = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
    if source is None:
        raise LoadError("standard input is closed: nothing to read for '-'")
    try:
        return _read_bounded(source, limit)
    except OSError as err:
        raise LoadError(f"cannot read standard input: {err.strerror or err}") from None


def load_file(
    name: str,
    fmt: Format | None = None,
    limits: Limits | None = None,
    stdin: BinaryIO | None = None,
) -> list[Document]:
    """Read and parse one file (``-`` is standard input); every failure is a :class:`LoadError`.

    Regular files and pipes are read, up to ``limits.max_bytes``; directories, devices and
    sockets are refused by their type, so ``/dev/zero`` or a named pipe never hangs a run.
    """
    limits = limits or Limits()
    if name == "-":
        return load_bytes(_stdin(stdin, limits.max_bytes), fmt, limits)
    try:
        raw = read_capped(name, limits.max_bytes)
    except FileReadError as err:
        if err.fields.get("reason") != "too_large":
            raise LoadError(err.message) from None
        size = err.fields.get("size")
        raise LoadError(_too_large(limits.max_bytes, size)) from None
    return load_bytes(raw, fmt or format_for(name), limits)
