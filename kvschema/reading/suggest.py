""" "Did you mean": the known field closest to a misspelt one (pydantic's ``extra_forbidden``).

The fields a mapping may hold are told by the mapping itself: ``kind`` names a spec kind,
``kv_cache_spec`` makes it a group, ``kv_cache_groups`` a config; under ``parallelism`` it is
a :class:`~kvschema.Parallelism`.  Otherwise every field of every document model is a candidate.

>>> field_suggestion({"kind": "sliding_window", "window": 4096}, ("window",))
"; did you mean 'sliding_window'?"
>>> field_suggestion({"kv_cache_spec": {}, "layer_name": ["a"]}, ("layer_name",))
"; did you mean 'layer_names'?"
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel

from kvschema._args import did_you_mean
from kvschema.layout.config import CacheGroupsConfig, CacheGroupSpec
from kvschema.layout.layer_map import LayerMap
from kvschema.layout.parallel import Parallelism
from kvschema.spec.union import SPEC_TYPES

__all__ = ["field_suggestion"]


def _names(model: type[BaseModel]) -> frozenset[str]:
    """The keys a document of ``model`` may hold (input aliases such as ``type_id`` included)."""
    names = set()
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        names.add(alias if isinstance(alias, str) else name)
    return frozenset(names)


@cache
def _by_kind() -> dict[str, frozenset[str]]:
    kinds = {}
    for model in SPEC_TYPES:
        kind = model.model_fields["kind"].default
        kinds[str(kind)] = _names(model)
    return kinds


@cache
def _every_field() -> frozenset[str]:
    models: list[type[BaseModel]] = [CacheGroupsConfig, CacheGroupSpec, Parallelism, LayerMap]
    return frozenset().union(*map(_names, models), *_by_kind().values())


#: The model of a document's top level, by the kind it was read as.
_ROOTS: dict[str, type[BaseModel]] = {
    "config": CacheGroupsConfig,
    "group": CacheGroupSpec,
    "layers": LayerMap,
}


def _fields_of(parent: Any, key_above: Any, root: type[BaseModel] | None) -> frozenset[str]:
    """The keys ``parent`` (a mapping of a document) may hold, as well as it tells."""
    kind = parent.get("kind")
    if isinstance(kind, str) and kind in _by_kind():
        return _by_kind()[kind]
    if "kv_cache_spec" in parent:
        return _names(CacheGroupSpec)
    if "kv_cache_groups" in parent:
        return _names(CacheGroupsConfig)
    if key_above == "parallelism":
        return _names(Parallelism)
    return _every_field() if root is None else _names(root)


def field_suggestion(parent: Any, path: tuple[Any, ...], kind: str | None = None) -> str:
    """``"; did you mean 'x'?"`` for the unknown key at the end of ``path`` in ``parent``, or "".

    ``parent`` is the mapping that holds the key, in a document read as ``kind`` (``config``,
    ``group``, ...); the known fields it already has are not suggested (a document that has
    ``sliding_window`` did not misspell it as ``window``).

    >>> field_suggestion({"num_pages": 3, "kv_cache_group": []}, ("kv_cache_group",), "config")
    "; did you mean 'kv_cache_groups'?"
    """
    if not path or not isinstance(parent, dict):
        return ""
    word = path[-1]
    key_above = path[-2] if len(path) > 1 else None
    root = _ROOTS.get(kind or "") if len(path) == 1 else None
    candidates = _fields_of(parent, key_above, root) - parent.keys()
    return did_you_mean(word, sorted(candidates))
