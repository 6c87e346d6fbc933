"""Checking loaded documents: recognise what a document is, validate it, and say where it is wrong.

>>> from kvschema.reading.loaders import load_text
>>> (doc,) = load_text("kind: full_attention\\npage_size: 0\\nnum_kv_heads: 8\\n"
...                    "head_size: 128\\ndtype: bf16\\n", "yaml")
>>> kind, issues = check_document(doc)
>>> kind, [(i.line, i.path, i.error_type) for i in issues]
('spec', [(2, '$.page_size', 'greater_than_equal')])
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from kvschema.errors import KVSchemaError
from kvschema.layout.config import CacheGroupsConfig, CacheGroupSpec
from kvschema.layout.layer_map import LayerMap, is_wrapped_layer_map
from kvschema.reading.document import Document, quote
from kvschema.reading.suggest import field_suggestion
from kvschema.spec.union import spec_adapter

__all__ = [
    "DOCUMENT_KINDS",
    "DocumentKind",
    "Issue",
    "PointerError",
    "check_document",
    "NAMED_KINDS",
    "format_path",
    "read_document",
    "recognise",
    "resolve_pointer",
]

DocumentKind = Literal["spec", "group", "config", "layers", "groups"]
#: What ``--kind`` takes, and the model each names.
DOCUMENT_KINDS: dict[str, str] = {
    "spec": "a cache spec (a mapping with kind)",
    "group": "a CacheGroupSpec (a mapping with kv_cache_spec)",
    "config": "a CacheGroupsConfig (a mapping with kv_cache_groups)",
}
#: Document types that are never recognised, only named with ``--kind``.
NAMED_KINDS: dict[str, str] = {
    "layers": "a layer map (layer name -> spec, in model order; or under layers: with parallelism:)",
    "groups": "a list of CacheGroupSpec",
}
_SPEC_KINDS = frozenset(
    {"full_attention", "sliding_window", "local_attention", "mamba", "uniform_type"}
)
_TYPES: dict[str, Any] = {
    "groups": list[CacheGroupSpec],
}


@cache
def _validator(kind: str) -> Any:
    """The validate function of a document kind, built on first use."""
    if kind == "spec":
        return spec_adapter().validate_python
    if kind == "group":
        return CacheGroupSpec.model_validate
    if kind == "config":
        return CacheGroupsConfig.model_validate
    if kind == "layers":
        return LayerMap.model_validate
    return TypeAdapter(_TYPES[kind]).validate_python


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INDEX = re.compile(r"(0|[1-9][0-9]{0,17})\Z")  # RFC 6901: ASCII digits, no leading zero


class PointerError(KVSchemaError):
    """A ``--path`` JSON pointer that names no section of the document."""

    error_type = "path_not_found"


@dataclass(frozen=True)
class Issue:
    """One thing wrong with a document, where it is, and the rule's stable id."""

    document: int
    path: str
    message: str
    error_type: str
    line: int | None = None
    column: int | None = None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_path(path: tuple[Any, ...]) -> str:
    """A JSONPath-style rendering of a location: ``$.groups[1].spec``.

    >>> format_path(("kv_cache_groups", 1, "kv_cache_spec", "a key"))
    "$.kv_cache_groups[1].kv_cache_spec['a key']"
    """
    out = ["$"]
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out.append(f"[{part}]")
        elif isinstance(part, str) and _IDENT.match(part):
            out.append(f".{part}")
        else:
            out.append(f"[{quote(part, 80)}]")
    return "".join(out)


def recognise(data: Any) -> str | None:
    """What a document is, from its keys: ``config``, ``group``, ``spec``, or None."""
    if not isinstance(data, dict):
        return None
    if "kv_cache_groups" in data:
        return "config"
    if "kv_cache_spec" in data:
        return "group"
    if "kind" in data:
        return "spec"
    return None


def resolve_pointer(data: Any, pointer: str) -> tuple[Any, tuple[Any, ...]]:
    """The section an RFC 6901 JSON pointer names, and its path.

    >>> resolve_pointer({"serving": {"kv_cache": {"a": 1}}}, "/serving/kv_cache")
    ({'a': 1}, ('serving', 'kv_cache'))
    """
    if pointer in ("", "/"):
        return data, ()
    if not pointer.startswith("/"):
        raise PointerError(f"--path {pointer!r} must be a JSON pointer starting with '/'")
    node: Any = data
    path: tuple[Any, ...] = ()
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            key: Any = token
        elif isinstance(node, list) and _INDEX.match(token) and int(token) < len(node):
            key = int(token)
        else:
            where = format_path(path)
            raise PointerError(
                f"section {quote(pointer, 200)[1:-1]} not found: {where} has no {quote(token)}",
                path=where,
            )
        node, path = node[key], (*path, key)
    return node, path


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """A pydantic location with union tags left out, following the data."""
    out: list[Any] = []
    node = data
    parts = list(loc)
    i = 0
    while i < len(parts):
        part = parts[i]
        if isinstance(node, dict) and node.get("kind") == part and part in _SPEC_KINDS:
            i += 1  # the discriminated union's tag, not a key of the data
            if i == len(parts):
                break
            part = parts[i]
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
        i += 1
    return tuple(out)


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    """The mapping or list that holds the value at ``path`` in ``data`` (None when none does)."""
    node = data
    for part in path[:-1]:
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_list or (isinstance(node, dict) and part in node)):
            return None
        node = node[part]
    return node


def _message(error: Any) -> str:
    message: str = error["msg"]
    value = error.get("input")
    if isinstance(value, float) and not math.isfinite(value):
        shown = "NaN" if math.isnan(value) else ("-Infinity" if value < 0 else "Infinity")
        return f"{message}, got {shown}"
    if value is None or isinstance(value, (dict, list)) or error["type"] == "missing":
        return message
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return message if shown in message or str(value) in message else f"{message}, got {shown}"


def check_document(
    document: Document, kind: str | None = None, pointer: str | None = None
) -> tuple[str | None, list[Issue]]:
    """Validate one loaded document; return what it was taken for and every issue found.

    ``kind`` forces the document type (see :data:`DOCUMENT_KINDS` and :data:`NAMED_KINDS`);
    otherwise it is recognised from its keys.  ``pointer`` selects a section (paths and lines
    stay the whole file's).
    """
    found, _, issues = read_document(document, kind, pointer)
    return found, issues


def read_document(
    document: Document, kind: str | None = None, pointer: str | None = None
) -> tuple[str | None, Any, list[Issue]]:
    """Like :func:`check_document`, and also the validated value (None when there are issues)."""
    index = document.index
    # a duplicate key is reported with the rest: the document is read as a parser that lets
    # the later value win would read it, and every other fault is found too
    issues = [
        Issue(index, format_path(p.path), p.message, p.error_type, p.line, p.column)
        for p in document.problems
    ]
    data, base = document.data, ()
    if pointer is not None:
        try:
            data, base = resolve_pointer(data, pointer)
        except PointerError as err:
            line = document.position(())
            issue = Issue(index, "$", err.message, err.error_type, *(line or (None, None)))
            return kind, None, [*issues, issue]
    found = kind or recognise(data)
    if found is None:
        expected = "; ".join(DOCUMENT_KINDS.values())
        what = "an empty document" if data is None else f"a {type(data).__name__}"
        if isinstance(data, dict):
            keys = [_clip(str(key), 40) for key in itertools.islice(data, 7)]
            more = ", ..." if len(keys) > 6 else ""
            what = f"a mapping with keys {', '.join(keys[:6])}{more}"
        position = document.position(base)
        return (
            None,
            None,
            [
                *issues,
                Issue(
                    index,
                    format_path(base),
                    f"unrecognised document: found {what}; expected {expected} (or name it with --kind)",
                    "unrecognised_document",
                    *(position or (None, None)),
                ),
            ],
        )
    try:
        value = _validator(found)(data)
    except ValidationError as err:
        flat = found == "layers" and not is_wrapped_layer_map(data)
        for error in err.errors():
            loc = tuple(error["loc"])
            if flat and loc[:1] == ("layers",):  # a flat map is read as {"layers": map}
                loc = loc[1:]
            inner = _data_path(data, loc)
            path = (*base, *inner)
            position = document.position(path)
            message = _message(error)
            if error["type"] == "extra_forbidden":  # a misspelt field: name the closest known
                message += field_suggestion(_parent(data, inner), inner, found)
            issues.append(
                Issue(
                    index,
                    format_path(path),
                    message,
                    error["type"],
                    *(position or (None, None)),
                )
            )
        return found, None, issues
    return found, (None if issues else value), issues
