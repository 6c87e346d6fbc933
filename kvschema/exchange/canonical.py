"""Exchanging layouts between services: canonical JSON, fingerprints, and schema versions.

The canonical form is one byte string per value: keys sorted (by UTF-16 code units, as
RFC 8785 sorts them), no insignificant whitespace, UTF-8, canonical dtype names, derived values
included, and **fields at their defaults left out** — so an optional field added in a later
version, at its default, leaves every existing fingerprint unchanged.  ``schema_version`` is
always written, as the oldest version that reads the layout
(:attr:`~kvschema.CacheGroupsConfig.content_version`), not the version of the writer: a layout
that uses no field of version 2 keeps the bytes and the fingerprint version 1 gave it.

>>> from kvschema import FullAttentionSpec
>>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
>>> to_canonical_json(spec)[:60]
b'{"dtype":"bfloat16","head_size":128,"kind":"full_attention",'
>>> fingerprint(spec)[:7]
'sha256:'
"""

import hashlib
import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from kvschema._reading import load_json
from kvschema.errors import InvalidArgumentError, KVSchemaError
from kvschema.layout.config import SCHEMA_VERSION, CacheGroupsConfig, CacheGroupSpec
from kvschema.spec.union import SPEC_TYPES

__all__ = [
    "MIGRATIONS",
    "UnsupportedVersionError",
    "fingerprint",
    "layout_fingerprint",
    "migrate",
    "read_config",
    "to_canonical_json",
]

_ALWAYS = frozenset({"schema_version", "kind"})


class UnsupportedVersionError(KVSchemaError):
    """A document whose ``schema_version`` this kvschema cannot read."""

    error_type = "schema_version_unsupported"


def _v1_to_v2(document: dict[str, Any]) -> dict[str, Any]:
    """Version 2 only added optional fields (``head_size_v``, ``cache_dtype_str``,
    ``kv_sharing``): a version-1 document reads as version 2 unchanged."""
    return document


#: ``MIGRATIONS[n]`` turns a version-``n`` document (a dict) into a version ``n + 1`` one.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}


def _plain(value: Any) -> Any:
    """JSON-ready data: fields at their defaults left out, derived values in, keys sorted."""
    if isinstance(value, BaseModel):
        model = type(value)
        data: dict[str, Any] = {}
        for name, field in model.model_fields.items():
            item = getattr(value, name)
            if name in _ALWAYS or field.is_required() or item != field.default:
                data[name] = _plain(item)
        for name in model.model_computed_fields:
            data[name] = _plain(getattr(value, name))
        return _sorted(data)
    if isinstance(value, dict):
        return _sorted({key: _plain(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _sorted(data: dict[str, Any]) -> dict[str, Any]:
    """The same mapping, keys in canonical order (its values are already canonical)."""
    return {key: data[key] for key in sorted(data, key=_utf16)}


def _utf16(key: str) -> bytes:
    return key.encode("utf-16-be")


def to_canonical_json(obj: Any) -> bytes:
    """The canonical bytes of a spec, a group or a ``CacheGroupsConfig``.

    A config's ``schema_version`` is written as its ``content_version``: 1 for a layout a
    version-1 reader reads, whichever version the document said.

    >>> from kvschema import MambaSpec
    >>> to_canonical_json(MambaSpec(page_size=1, shapes=[[4]], dtype="fp32"))
    b'{"dtype":"float32","kind":"mamba","page_size":1,"page_size_bytes":16,"shapes":[[4]],"type_id":"mamba_((4,),)_float32"}'
    """
    if not isinstance(obj, (*SPEC_TYPES, CacheGroupSpec, CacheGroupsConfig)):
        raise InvalidArgumentError(
            f"to_canonical_json takes a spec, a CacheGroupSpec or a CacheGroupsConfig, "
            f"got {type(obj).__name__}"
        )
    data = _plain(obj)
    if isinstance(obj, CacheGroupsConfig):
        data["schema_version"] = obj.content_version
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def fingerprint(obj: Any) -> str:
    """``sha256:`` and the hex digest of :func:`to_canonical_json`.

    >>> from kvschema import parse_spec
    >>> a = parse_spec({"kind": "mamba", "page_size": 1, "shapes": [[4]], "dtype": "fp32"})
    >>> b = parse_spec('{"dtype": "float32", "shapes": [[4]], "page_size": 1, "kind": "mamba"}')
    >>> fingerprint(a) == fingerprint(b)
    True
    """
    return "sha256:" + hashlib.sha256(to_canonical_json(obj)).hexdigest()


def layout_fingerprint(config: CacheGroupsConfig) -> str:
    """The fingerprint of what must match for pages to move between peers: specs and layer
    placement, without ``num_pages`` (and ``schema_version``), which peers may differ in.

    >>> from kvschema import CacheGroupSpec, MambaSpec
    >>> group = CacheGroupSpec(kv_cache_spec=MambaSpec(page_size=1, shapes=[[4]], dtype="fp32"))
    >>> a = CacheGroupsConfig(num_pages=10, kv_cache_groups=[group])
    >>> layout_fingerprint(a) == layout_fingerprint(a.model_copy(update={"num_pages": 99}))
    True
    """
    if not isinstance(config, CacheGroupsConfig):
        raise InvalidArgumentError(
            f"layout_fingerprint takes a CacheGroupsConfig, got {type(config).__name__}"
        )
    groups = [_plain(group) for group in config.kv_cache_groups]
    text = json.dumps({"kv_cache_groups": groups}, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def migrate(document: dict[str, Any]) -> dict[str, Any]:
    """Bring a ``CacheGroupsConfig`` document (a dict) to the current schema version.

    An older document is migrated step by step through :data:`MIGRATIONS`; a newer one is
    refused, naming both versions.  A document without ``schema_version`` is version 1.
    """
    if not isinstance(document, dict):
        raise InvalidArgumentError(
            f"document must be a mapping (a CacheGroupsConfig), got {type(document).__name__}"
        )
    version = document.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UnsupportedVersionError(
            f"schema_version must be an int >= 1, got {version!r}", version=version
        )
    if version > SCHEMA_VERSION:
        raise UnsupportedVersionError(
            f"the document has schema_version {version}; this kvschema reads up to "
            f"{SCHEMA_VERSION}: upgrade kvschema to read it",
            version=version,
            supported=SCHEMA_VERSION,
        )
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise UnsupportedVersionError(
                f"no migration from schema_version {version} to {version + 1}", version=version
            )
        document = {**step(dict(document)), "schema_version": version + 1}
        version += 1
    return document


def _read_text_once(text: str | bytes | bytearray) -> CacheGroupsConfig | None:
    """What :func:`read_config` returns for JSON ``text``, from one parse; None where that
    path must decide (the text fails validation, or its version's migration is not one this
    module knows leaves the fields alone).

    ``CacheGroupsConfig.model_validate_json`` refuses what the dict path refuses for a valid
    layout: a key twice, a field newer than the version the document says.  A document
    without ``schema_version`` is version 1 to a reader and the current version to the
    model, so its newer fields are checked here.  Migrating a version-1 document changes
    only ``schema_version`` (``_v1_to_v2``): the result says the current version, as a
    migrated document validates to.
    """
    try:
        config = CacheGroupsConfig.model_validate_json(text)
    except ValidationError:
        return None  # the dict path gives its own errors (and the JSON ones)
    if "schema_version" in config.model_fields_set:
        version = config.schema_version
    else:
        version = 1
        if config.fields_newer_than(1):
            return None
    if version == SCHEMA_VERSION:
        return config
    if any(MIGRATIONS.get(step) is not _v1_to_v2 for step in range(version, SCHEMA_VERSION)):
        return None  # pragma: no cover - a later version's migration
    return config.model_copy(update={"schema_version": SCHEMA_VERSION})


def read_config(document: dict[str, Any] | str | bytes) -> CacheGroupsConfig:
    """A ``CacheGroupsConfig`` from a peer's document (a dict or JSON), migrated if older.

    An older document that sets a field its version does not have is refused, as model
    validation refuses it (a reader of that version would have).

    >>> read_config('{"num_pages": 4, "kv_cache_groups": [{"kv_cache_spec": {"kind": "mamba",'
    ...             ' "page_size": 1, "shapes": [[4]], "dtype": "fp32"}}]}').num_pages
    4
    """
    if isinstance(document, (str, bytes, bytearray)):
        config = _read_text_once(document)
        if config is not None:
            return config
        try:
            document, twice = load_json(document)
        except (ValueError, RecursionError) as err:
            raise InvalidArgumentError(f"not a JSON document: {err}") from None
        if twice:  # as the command line does: the later value would silently win
            raise InvalidArgumentError(f"duplicate key {twice[0][:60]!r} in one JSON object")
    config = CacheGroupsConfig.model_validate(migrate(document))  # type: ignore[arg-type]
    version = document.get("schema_version", 1)  # type: ignore[union-attr]  # migrate checked it
    newer = config.fields_newer_than(version)
    if newer:  # what model validation refuses in a document that says the older version
        raise UnsupportedVersionError(
            f"the document says schema_version {version} but sets {', '.join(newer)}, added in "
            f"schema_version {config.content_version}; write schema_version "
            f"{config.content_version}",
            version=version,
            fields=newer,
        )
    return config
