"""YAML 1.2 documents from libyaml's event stream: plain data only, limits, duplicate keys.

PyYAML's loaders resolve scalars by YAML 1.1 (``yes`` is true, ``017`` is octal) and build
objects from tags; here libyaml's events (through PyYAML's C parser) become plain data by the
YAML 1.2 core schema, with alias expansion counted against the value and depth limits as it
happens (an alias of an empty collection counts one value), so an alias bomb ends before
anything walks it.  A document that declares another version (``%YAML 1.1``) is refused.
Keys are equal as YAML nodes are: ``1``, ``true`` and ``1.0`` are three keys (``true`` and
``1.0`` are kept as :class:`TypedKey`, as Python would take them for ``1``).
``kvschema.reading.loaders`` is the entry point.

>>> from kvschema.reading.loaders import Limits
>>> [d.data for d in yaml_documents("a: yes\\nb: 017\\n---\\n[1, .5, null]\\n", Limits())]
[{'a': 'yes', 'b': 17}, [1, 0.5, None]]
"""

from __future__ import annotations

import math
import re
from typing import Any

from kvschema.reading.document import (
    Document,
    Limits,
    LoadError,
    Path_,
    Problem,
    check_int,
    quote,
)

__all__ = ["TypedKey", "depth_advice", "nesting_depth", "yaml_documents", "yaml_message"]


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
            value = int(text[2:], 8)
        elif _INT16.match(text):
            value = int(text[2:], 16)
        else:
            value = int(text, 10)
    except ValueError:  # more digits than Python converts
        value = None
    if value is None or not check_int(value):
        raise LoadError(f"integer of {len(text)} digits is too long", value=text[:40])
    return value


class TypedKey:
    """A ``true`` / ``false`` or float mapping key, kept apart from the int key Python equates.

    >>> TypedKey(True) == TypedKey(True), TypedKey(True) == 1, TypedKey(1.0)
    (True, False, 1.0)
    """

    __slots__ = ("value",)

    def __init__(self, value: bool | float) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        if type(other) is not TypedKey:
            return NotImplemented
        return type(self.value) is type(other.value) and self.value == other.value

    def __hash__(self) -> int:
        return hash((type(self.value), self.value))

    def __repr__(self) -> str:
        return repr(self.value)


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
        raise LoadError(f"{quote(text)} is not a valid !!{name}", tag=tag)
    raise LoadError(f"unsupported tag {quote(tag)}: kvschema reads plain data only", tag=tag)


class _Frame:
    __slots__ = (
        "anchor",
        "container",
        "count_at_start",
        "height",
        "is_list",
        "key",
        "key_lines",
        "path",
    )

    def __init__(self, container: Any, path: Path_, anchor: str | None, count: int) -> None:
        self.container = container
        self.is_list = type(container) is list
        self.path = path
        self.anchor = anchor
        self.count_at_start = count  # the values counted before this collection
        self.height = 0  # levels of collections below this one
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
    event: Any = None
    documents: list[Document] = []
    stack: list[_Frame] = []
    frame: _Frame | None = None  # the innermost open collection (None at the top level)
    container: Any = None
    is_list = False
    key: Any = _NO_KEY
    anchors: dict[str, tuple[Any, int, int]] = {}  # name -> value, values, collection levels
    positions: dict[Path_, tuple[int, int]] = {}
    problems: list[Problem] = []
    count = 0
    root: Any = None
    start: tuple[int, int] = (0, 0)
    try:
        while True:
            event = get_event()
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
                    anchors[event.anchor] = (value, 1, 0)
            elif kind is map_end_t or kind is seq_end_t:
                value = container
                done: Any = frame
                height = done.height + 1
                if done.anchor is not None:  # the collection itself counts, empty or not
                    anchors[done.anchor] = (value, count - done.count_at_start, height)
                if not stack:
                    root, frame, container = value, None, None
                    continue
                frame = stack.pop()
                if height > frame.height:
                    frame.height = height
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
                        raise LoadError("a mapping key must be a scalar")
                    if track:
                        path = (*frame.path, len(container) if is_list else key)
                    frame.key = key
                    stack.append(frame)
                if track and (frame is None or is_list):
                    positions[path] = start
                container = {} if kind is map_t else []
                is_list, key = kind is seq_t, _NO_KEY
                frame = _Frame(container, path, event.anchor, count - 1)
                continue
            elif kind is alias_t:
                found = anchors.get(event.anchor)
                if found is None:
                    raise LoadError(f"alias *{event.anchor[:60]} names no complete anchor")
                value, expanded, height = found
                count += expanded
                if height:  # a collection: its levels nest here, below the open ones
                    _check_alias_depth(event, len(stack) + (frame is not None), height, max_depth)
                    if frame is not None and height > frame.height:
                        frame.height = height
            elif kind is doc_start_t:
                _check_version(event)
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
                    f"more than {max_values} values (aliases counted as expanded); "
                    "raise --max-values if this is intended"
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
                key_type = type(value)
                if key_type is dict or key_type is list:
                    raise LoadError("a mapping key must be a scalar")
                if key_type is bool or key_type is float:  # not the int key Python takes it for
                    value = TypedKey(value)
                if value in container:
                    problems.append(_duplicate(frame, value, start if track else None))
                elif track:
                    frame.key_lines[value] = start[0]
                if track:
                    positions[(*frame.path, value)] = start
                key = value
    except LoadError as err:  # said where: the event being read
        if "line" in err.fields or event is None:
            raise
        line, column = event.start_mark.line + 1, event.start_mark.column + 1
        message = err.message
        if "too_deep" in err.fields:  # advise what reads the file, if anything does
            message += depth_advice(nesting_depth(text), err.fields["too_deep"])
        raise LoadError(
            f"line {line}, column {column}: {message}",
            **{**err.fields, "line": line, "column": column},
        ) from None
    except Exception as err:  # libyaml's scanner / parser errors
        mark = getattr(err, "problem_mark", None)
        where = {"line": mark.line + 1, "column": mark.column + 1} if mark is not None else {}
        position = getattr(err, "position", None)  # a character the reader refuses
        if not where and isinstance(position, int) and 0 <= position <= len(text):
            begin = text.rfind("\n", 0, position) + 1
            where = {"line": text.count("\n", 0, position) + 1, "column": position - begin + 1}
            reason = f"character U+{getattr(err, 'character', 0):04X} is not allowed in YAML"
            message = f"line {where['line']}, column {where['column']}: YAML syntax error: {reason}"
            raise LoadError(message, **where) from None
        raise LoadError(yaml_message(err), **where) from None
    finally:
        parser.dispose()
    return documents


def nesting_depth(text: str) -> int | None:
    r"""The deepest nesting of a YAML stream, aliases expanded; None when libyaml cannot nest so deep.

    Run only when a document is deeper than ``--max-depth``, to say what would read it.

    >>> nesting_depth("a: &a [[1]]\nb: [*a]\n"), nesting_depth("[" * 5000)
    (4, None)
    """
    from yaml import events
    from yaml._yaml import CParser

    opening = (events.MappingStartEvent, events.SequenceStartEvent)
    closing = (events.MappingEndEvent, events.SequenceEndEvent)
    parser = CParser(text)
    heights: dict[Any, int] = {}  # anchor -> collection levels it stands for
    stack: list[list[Any]] = []  # open collections: [anchor, levels below]
    deepest = 0
    try:
        while True:
            event = parser.get_event()
            if isinstance(event, opening):
                stack.append([event.anchor, 0])
                deepest = max(deepest, len(stack))
                continue
            if isinstance(event, closing):
                anchor, below = stack.pop()
                height = below + 1
                if anchor is not None:
                    heights[anchor] = height
            elif isinstance(event, events.AliasEvent):
                height = heights.get(event.anchor, 0)
                deepest = max(deepest, len(stack) + height)
            elif isinstance(event, events.StreamEndEvent):
                break
            else:
                continue
            if stack and height > stack[-1][1]:
                stack[-1][1] = height
    except Exception as err:  # libyaml's own limit, or an error later in the stream
        if "nesting depth" in str(getattr(err, "problem", "") or err):
            return None
    finally:
        parser.dispose()
    return deepest


def depth_advice(deepest: int | None, max_depth: int) -> str:
    """What to say after "nesting deeper than ``max_depth`` levels": a limit that reads it, or none.

    >>> depth_advice(100, 64), depth_advice(None, 64)
    ('; it nests 100 levels: --max-depth 100 reads it, if this is intended', '; it nests deeper than the reader handles: no --max-depth reads it')
    """
    if deepest is None:
        return "; it nests deeper than the reader handles: no --max-depth reads it"
    if deepest <= max_depth:  # pragma: no cover - the reader stopped at a deeper level
        return ""
    return f"; it nests {deepest} levels: --max-depth {deepest} reads it, if this is intended"


def _check_version(event: Any) -> None:
    version = event.version
    if version is not None and tuple(version) != (1, 2):
        shown = ".".join(map(str, version))
        raise LoadError(
            f"the document declares %YAML {shown}; kvschema reads YAML 1.2 only (where yes/no "
            "are strings and 017 is seventeen): remove the directive, or write %YAML 1.2 once "
            "the file means YAML 1.2",
            version=shown,
        )


def _check_alias_depth(event: Any, open_levels: int, height: int, max_depth: int) -> None:
    if open_levels + height > max_depth:
        raise LoadError(
            f"nesting deeper than {max_depth} levels (alias *{event.anchor[:60]} expanded)",
            too_deep=max_depth,
        )


def _check_open(event: Any, depth: int, max_depth: int, count: int, max_values: int) -> None:
    tag = event.tag
    if tag is not None and tag not in (_TAG + "map", _TAG + "seq", "!"):
        raise LoadError(f"unsupported tag {quote(tag)}: kvschema reads plain data only", tag=tag)
    if depth >= max_depth:
        raise LoadError(f"nesting deeper than {max_depth} levels", too_deep=max_depth)
    if count > max_values:
        raise LoadError(
            f"more than {max_values} values (aliases counted as expanded); "
            "raise --max-values if this is intended"
        )


def _duplicate(parent: _Frame, key: Any, start: tuple[int, int] | None) -> Problem:
    if start is None:  # fast path: load_text re-reads the document with positions
        return Problem((), "", "duplicate_key")
    first = parent.key_lines.get(key, "?")
    return Problem(
        (*parent.path, key),
        f"duplicate key {quote(key)} (first on line {first}, again on line {start[0]}); "
        "the later value would silently win",
        "duplicate_key",
        start[0],
        start[1],
    )


def yaml_message(err: Exception) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or " ".join(str(err).split())
    if "maximum nesting depth" in problem:  # libyaml's own limit, whatever --max-depth says
        problem += " (the YAML reader's limit: no --max-depth reads it)"
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: {problem}"
    return f"YAML syntax error: {problem}"
