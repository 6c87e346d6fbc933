"""YAML 1.2 documents from libyaml's event stream: plain data only, limits, duplicate keys.

PyYAML's loaders resolve scalars by YAML 1.1 (``yes`` is true, ``017`` is octal) and build
objects from tags; here libyaml's events (through PyYAML's C parser) become plain data by the
YAML 1.2 core schema, with alias expansion counted against the value limit as it happens, so
an alias bomb ends before anything walks it.  ``kvschema.reading.loaders`` is the entry point.

>>> from kvschema.reading.loaders import Limits
>>> [d.data for d in yaml_documents("a: yes\\nb: 017\\n---\\n[1, .5, null]\\n", Limits())]
[{'a': 'yes', 'b': 17}, [1, 0.5, None]]
"""

from __future__ import annotations

import math
import re
from typing import Any

from kvschema.reading.document import Document, Limits, LoadError, Path_, Problem

__all__ = ["yaml_documents", "yaml_message"]


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


def yaml_documents(text: str, limits: Limits, track: bool = False) -> list[Document]:
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
        raise LoadError(yaml_message(err)) from None
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


def yaml_message(err: Exception) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: {problem}"
    return f"YAML syntax error: {problem}"
