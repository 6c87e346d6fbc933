"""Reading deploy files: YAML 1.2 (safe, through libyaml), JSON and TOML, with positions and limits.

YAML is read event by event from libyaml and built here under the YAML 1.2 core schema:
``yes``/``no`` stay strings, ``017`` is seventeen, no tag constructs an object.  Duplicate
keys are reported with both lines, in YAML and JSON alike.  Limits on bytes, nesting depth
and the number of values (aliases counted as expanded) end hostile files early.

>>> (doc,) = load_text("kv:\\n  page_size: 017\\n  flag: yes\\n", "yaml")
>>> doc.data, doc.position(("kv", "flag"))
({'kv': {'page_size': 17, 'flag': 'yes'}}, (3, 3))
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

from kvschema.errors import KVSchemaError

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
]

Format = Literal["yaml", "json", "toml"]
#: File formats by extension.
FORMATS: dict[str, Format] = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml"}
Path_ = tuple[str | int, ...]


class LoadError(KVSchemaError):
    """A file that cannot be read, decoded, parsed, or kept within the limits (exit code 2)."""

    error_type = "load"


@dataclass(frozen=True)
class Limits:
    """Bounds that end hostile input early; each has a CLI flag.

    >>> Limits().max_bytes
    16777216
    """

    max_bytes: int = 16 * 1024 * 1024
    max_depth: int = 64
    max_values: int = 1_000_000


@dataclass(frozen=True)
class Problem:
    """A fault found while reading a document (a duplicate key): the document is wrong."""

    path: Path_
    message: str
    error_type: str
    line: int | None = None
    column: int | None = None


@dataclass
class Document:
    """One document of a file: its data, where each value stands, and faults found on reading."""

    data: Any
    index: int = 0
    problems: list[Problem] = field(default_factory=list)
    _positions: dict[Path_, tuple[int, int]] | None = None
    _source: str | None = None

    def position(self, path: Path_) -> tuple[int, int] | None:
        """1-based (line, column) of the value (or its key) at ``path``, or of its nearest parent."""
        if self._positions is None:
            self._positions = _tracked(self._source, self.index)._positions or {}
        while True:
            found = self._positions.get(path)
            if found is not None or not path:
                return found
            path = path[:-1]


# -- YAML 1.2 core schema ------------------------------------------------------------------

_INT10 = re.compile(r"[-+]?[0-9]+\Z")
_INT8 = re.compile(r"0o[0-7]+\Z")
_INT16 = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)\Z")
_NAN = re.compile(r"\.(nan|NaN|NAN)\Z")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_TAG = "tag:yaml.org,2002:"


def _to_int(text: str) -> int:
    try:
        if _INT8.match(text):
            return int(text[2:], 8)
        if _INT16.match(text):
            return int(text[2:], 16)
        return int(text, 10)
    except ValueError:  # more digits than Python converts
        raise LoadError(f"integer of {len(text)} digits is too long", value=text[:40]) from None


def _to_float(text: str) -> float:
    if _INF.match(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.match(text):
        return math.nan
    return float(text)


def _plain(text: str) -> Any:
    if text in _NULLS:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    first = text[0]
    if first.isdigit() or first in "+-.":
        if _INT10.match(text) or _INT8.match(text) or _INT16.match(text):
            return _to_int(text)
        if _FLOAT.match(text) or _INF.match(text) or _NAN.match(text):
            return _to_float(text)
    return text


def _tagged(tag: str, text: str) -> Any:
    name = tag.removeprefix(_TAG)
    if name == "str":
        return text
    value = _plain(text)
    if name == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if name == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if name == "bool" and isinstance(value, bool):
        return value
    if name == "null" and value is None:
        return None
    if name in ("int", "float", "bool", "null"):
        raise LoadError(f"{text!r} is not a valid !!{name}", tag=tag)
    raise LoadError(f"unsupported tag {tag!r}: kvschema reads plain data only", tag=tag)


class _Frame:
    __slots__ = ("anchor", "container", "count_at_start", "is_list", "key", "key_lines", "path")

    def __init__(self, container: Any, path: Path_, anchor: str | None, count: int) -> None:
        self.container = container
        self.is_list = type(container) is list
        self.path = path
        self.anchor = anchor
        self.count_at_start = count
        self.key: Any = _NO_KEY
        self.key_lines: dict[Any, int] = {}


_NO_KEY = object()


def _yaml_documents(text: str, limits: Limits, track: bool = False) -> list[Document]:
    """Build every document of a YAML stream from libyaml's events.

    Without ``track`` this is the fast path: values, limits and a duplicate-key flag only.
    With it, every value's position is kept and duplicate keys are described with both lines;
    :func:`load_text` runs it only for documents that need it.

    The innermost open collection lives in locals (``frame``, ``container``, ``is_list``,
    ``key``); ``stack`` holds the frames around it, each with its pending key saved.
    """
    from yaml import events
    from yaml._yaml import CParser

    scalar_t, alias_t = events.ScalarEvent, events.AliasEvent
    map_t, seq_t = events.MappingStartEvent, events.SequenceStartEvent
    map_end_t, seq_end_t = events.MappingEndEvent, events.SequenceEndEvent
    doc_start_t, doc_end_t = events.DocumentStartEvent, events.DocumentEndEvent
    stream_end_t = events.StreamEndEvent
    max_values, max_depth = limits.max_values, limits.max_depth

    parser = CParser(text)
    get_event = parser.get_event
    documents: list[Document] = []
    stack: list[_Frame] = []
    frame: _Frame | None = None  # the innermost open collection (None at the top level)
    container: Any = None
    is_list = False
    key: Any = _NO_KEY
    anchors: dict[str, tuple[Any, int]] = {}
    positions: dict[Path_, tuple[int, int]] = {}
    problems: list[Problem] = []
    count = 0
    root: Any = None
    start: tuple[int, int] = (0, 0)
    try:
        while True:
            event: Any = get_event()
            kind = type(event)
            if kind is scalar_t:
                count += 1
                tag = event.tag
                if tag is None:
                    value = _plain(event.value) if event.implicit[0] else event.value
                elif tag == "!":
                    value = event.value
                else:
                    value = _tagged(tag, event.value)
                if event.anchor is not None:
                    anchors[event.anchor] = (value, 1)
            elif kind is map_end_t or kind is seq_end_t:
                value = container
                if frame.anchor is not None:  # type: ignore[union-attr]
                    anchors[frame.anchor] = (value, count - frame.count_at_start)  # type: ignore[union-attr]
                if not stack:
                    root, frame, container = value, None, None
                    continue
                frame = stack.pop()
                container, is_list, key = frame.container, frame.is_list, frame.key
                if is_list:
                    container.append(value)
                else:
                    container[key] = value
                    key = _NO_KEY
                continue
            elif kind is map_t or kind is seq_t:
                count += 1
                if track:
                    start = (event.start_mark.line + 1, event.start_mark.column + 1)
                depth = len(stack) + (frame is not None)
                _check_open(event, depth, max_depth, count, max_values)
                path: Path_ = ()
                if frame is not None:
                    if not is_list and key is _NO_KEY:
                        raise LoadError(
                            f"line {event.start_mark.line + 1}: a mapping key must be a scalar"
                        )
                    if track:
                        path = (*frame.path, len(container) if is_list else key)
                    frame.key = key
                    stack.append(frame)
                if track and (frame is None or is_list):
                    positions[path] = start
                container = {} if kind is map_t else []
                is_list, key = kind is seq_t, _NO_KEY
                frame = _Frame(container, path, event.anchor, count)
                continue
            elif kind is alias_t:
                found = anchors.get(event.anchor)
                if found is None:
                    line = event.start_mark.line + 1
                    raise LoadError(f"line {line}: alias *{event.anchor} names no complete anchor")
                value, expanded = found
                count += expanded
            elif kind is doc_start_t:
                stack, anchors, positions, problems, count, root = [], {}, {}, [], 0, None
                frame, container, key = None, None, _NO_KEY
                continue
            elif kind is doc_end_t:
                documents.append(
                    Document(root, len(documents), problems, positions if track else None)
                )
                continue
            elif kind is stream_end_t or event is None:
                break
            else:
                continue
            # a scalar or an alias: limits, then attach to its collection
            if count > max_values:
                raise LoadError(
                    f"line {event.start_mark.line + 1}: more than {max_values} values (aliases "
                    "counted as expanded); raise --max-values if this is intended"
                )
            if track:
                start = (event.start_mark.line + 1, event.start_mark.column + 1)
            if frame is None:
                root = value
                if track:
                    positions[()] = start
            elif is_list:
                if track:
                    positions[(*frame.path, len(container))] = start
                container.append(value)
            elif key is not _NO_KEY:
                container[key] = value
                key = _NO_KEY
            else:
                if type(value) is dict or type(value) is list:
                    raise LoadError(
                        f"line {event.start_mark.line + 1}: a mapping key must be a scalar"
                    )
                if value in container:
                    problems.append(_duplicate(frame, value, start if track else None))
                elif track:
                    frame.key_lines[value] = start[0]
                if track:
                    positions[(*frame.path, value)] = start
                key = value
    except LoadError:
        raise
    except Exception as err:  # libyaml's scanner / parser errors
        raise LoadError(_yaml_message(err)) from None
    finally:
        parser.dispose()
    return documents


def _check_open(event: Any, depth: int, max_depth: int, count: int, max_values: int) -> None:
    line = event.start_mark.line + 1
    tag = event.tag
    if tag is not None and tag not in (_TAG + "map", _TAG + "seq", "!"):
        raise LoadError(f"line {line}: unsupported tag {tag!r}: kvschema reads plain data only")
    if depth >= max_depth:
        raise LoadError(
            f"line {line}: nesting deeper than {max_depth} levels; "
            "raise --max-depth if this is intended"
        )
    if count > max_values:
        raise LoadError(
            f"line {line}: more than {max_values} values (aliases counted as expanded); "
            "raise --max-values if this is intended"
        )


def _duplicate(parent: _Frame, key: Any, start: tuple[int, int] | None) -> Problem:
    if start is None:  # fast path: load_text re-reads the document with positions
        return Problem((), "", "duplicate_key")
    first = parent.key_lines.get(key, "?")
    return Problem(
        (*parent.path, key),
        f"duplicate key {key!r} (first on line {first}, again on line {start[0]}); "
        "the later value would silently win",
        "duplicate_key",
        start[0],
        start[1],
    )


def _yaml_message(err: Exception) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: {problem}"
    return f"YAML syntax error: {problem}"


# -- JSON ----------------------------------------------------------------------------------


def _tracked(text: str | None, index: int) -> Document:
    """Document ``index`` of ``text`` read again with positions (JSON read as YAML flow style)."""
    if text:
        generous = Limits(max_bytes=sys.maxsize, max_depth=10_000, max_values=sys.maxsize)
        try:
            docs = _yaml_documents(text, generous, track=True)
        except LoadError:
            docs = []
        if index < len(docs):
            return docs[index]
    return Document(None, index, _positions={})


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
    document = Document(data, 0, _source=text)
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
    documents = _yaml_documents(text, limits)
    for document in documents:
        document._source = text
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
