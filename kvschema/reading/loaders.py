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
import stat
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any, BinaryIO

from kvschema.reading.document import Document, Format, Limits, LoadError, Path_, Problem
from kvschema.reading.yaml12 import yaml_documents

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


# -- JSON ----------------------------------------------------------------------------------


def _tracked(text: str | None, index: int) -> Document:
    """Document ``index`` of ``text`` read again with positions (JSON read as YAML flow style)."""
    if text:
        generous = Limits(max_bytes=sys.maxsize, max_depth=10_000, max_values=sys.maxsize)
        try:
            docs = yaml_documents(text, generous, track=True)
        except LoadError:
            docs = []
        if index < len(docs):
            return docs[index]
    return Document(None, index, _positions={})


def _positions_of(text: str, index: int) -> dict[Path_, tuple[int, int]]:
    return _tracked(text, index)._positions or {}


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
        raise LoadError(
            f"nesting deeper than {limits.max_depth} levels; raise --max-depth if intended"
        ) from None
    except ValueError as err:  # an integer with more digits than Python converts
        raise LoadError(f"JSON value out of range: {err}") from None
    _check_shape(data, limits)
    document = Document(data, 0, _locate=partial(_positions_of, text, 0))
    if duplicates:
        document.problems = _tracked(text, 0).problems
        if not document.problems:
            document.problems = [
                Problem((), f"duplicate key {key!r}", "duplicate_key") for key in duplicates
            ]
    return document


def _check_shape(data: Any, limits: Limits) -> None:
    """Depth and value-count limits for data parsed without the event builder."""
    count = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > limits.max_values:
            raise LoadError(f"more than {limits.max_values} values; raise --max-values if intended")
        if isinstance(node, (dict, list)):
            if depth > limits.max_depth:
                raise LoadError(
                    f"nesting deeper than {limits.max_depth} levels; raise --max-depth if intended"
                )
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)


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
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise LoadError(f"TOML syntax error: {err}") from None
        _check_shape(data, limits)
        return [Document(data)]
    documents = yaml_documents(text, limits)
    for document in documents:
        document._locate = partial(_positions_of, text, document.index)
        if document.problems:  # describe the duplicate keys with their lines
            document.problems = _tracked(text, document.index).problems
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
    """At most ``limit`` bytes, read in pieces (one piece when ``expected`` is the size)."""
    pieces: list[bytes] = []
    total = 0
    piece = max(expected + 1, 1 << 16)  # no limit-sized buffer for a small file
    while True:
        raw = stream.read(min(piece, limit + 1 - total))
        if not raw:
            return b"".join(pieces)
        pieces.append(raw)
        total += len(raw)
        if total > limit:
            raise LoadError(f"larger than {limit} bytes; raise --max-bytes if this is intended")


def load_file(
    name: str,
    fmt: Format | None = None,
    limits: Limits | None = None,
    stdin: BinaryIO | None = None,
) -> list[Document]:
    """Read and parse one file (``-`` is standard input); every failure is a :class:`LoadError`."""
    limits = limits or Limits()
    if name == "-":
        source = stdin if stdin is not None else sys.stdin.buffer
        return load_bytes(_read_bounded(source, limits.max_bytes), fmt, limits)
    try:
        status = os.stat(name)
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError(name)
        fmt = fmt or format_for(name)
        size = status.st_size
        if size > limits.max_bytes:
            raise LoadError(
                f"{size} bytes, larger than {limits.max_bytes}; raise --max-bytes if this is intended"
            )
        with open(name, "rb") as handle:
            raw = _read_bounded(handle, limits.max_bytes, size)
    except FileNotFoundError:
        raise LoadError("no such file") from None
    except IsADirectoryError:
        raise LoadError("is a directory") from None
    except PermissionError:
        raise LoadError("permission denied") from None
    except OSError as err:
        raise LoadError(f"cannot read: {err.strerror or err}") from None
    return load_bytes(raw, fmt, limits)
