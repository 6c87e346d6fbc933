"""Per-layer attention mask details (EasyDeL's ``get_mask_details()``) → cache groups.

>>> groups = groups_from_mask_details(
...     {0: {"mask_type": "sliding", "size": 4096}, 1: {"mask_type": "full"},
...      2: {"mask_type": "sliding", "size": 4096}},
...     page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
>>> [(g.kv_cache_spec.type_id, g.layer_names) for g in groups]
[('sliding_window_4096_16_65536', ['layer.0', 'layer.2']), ('full_attention_16_65536', ['layer.1'])]
"""

from collections.abc import Mapping
from enum import Enum, StrEnum
from typing import Annotated, Any, TypeAlias

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter
from pydantic_core import PydanticCustomError

from kvschema._args import positive_int_arg, shown_value
from kvschema.errors import MaskDetailsError
from kvschema.layout.group import MAX_LAYERS, CacheGroupSpec
from kvschema.spec.union import (
    CacheSpec,
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    PositiveInt,
    SlidingWindowSpec,
)

__all__ = [
    "AttnMaskType",
    "MaskDetail",
    "MaskDetailsInput",
    "create_kv_cache_specs_from_config",
    "groups_from_mask_details",
]


class AttnMaskType(StrEnum):
    """The attention mask of one layer, with EasyDeL's values.

    >>> AttnMaskType("ATTN_MASK_SLIDING") is AttnMaskType.SLIDING
    True
    """

    FULL = "ATTN_MASK_FULL"
    SLIDING = "ATTN_MASK_SLIDING"
    CHUNK = "ATTN_MASK_CHUNK"


_MASK_NAMES: dict[str, AttnMaskType] = {
    "attn_mask_full": AttnMaskType.FULL,
    "full": AttnMaskType.FULL,
    "full_attention": AttnMaskType.FULL,
    "attn_mask_sliding": AttnMaskType.SLIDING,
    "sliding": AttnMaskType.SLIDING,
    "sliding_attention": AttnMaskType.SLIDING,
    "attn_mask_chunk": AttnMaskType.CHUNK,
    "chunk": AttnMaskType.CHUNK,
    "chunked_attention": AttnMaskType.CHUNK,
}
# Layers with recurrent state rather than a KV cache: mask details cannot describe them.
_STATE_NAMES = frozenset({"linear_attention", "mamba", "mamba2", "ssm", "recurrent", "conv"})


def _parse_mask_type(value: Any) -> AttnMaskType:
    if isinstance(value, AttnMaskType):
        return value
    if isinstance(value, Enum):  # another library's enum with the same names / values
        candidates = [value.name, value.value]
    elif isinstance(value, str):
        candidates = [value]
    else:
        raise PydanticCustomError(
            "mask_type",
            "mask_type must be a string or AttnMaskType, got {value}",
            {"value": repr(value)},
        )
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.casefold() in _MASK_NAMES:
            return _MASK_NAMES[candidate.casefold()]
    shown = repr(value.value if isinstance(value, Enum) else value)
    if any(isinstance(c, str) and c.casefold() in _STATE_NAMES for c in candidates):
        raise PydanticCustomError(
            "mask_type_state_layer",
            "mask_type {value} is a recurrent-state layer, which mask details cannot describe; "
            "build its MambaSpec directly or use layers_from_hf_config",
            {"value": shown},
        )
    raise PydanticCustomError(
        "mask_type",
        "unknown mask_type {value}; expected one of {valid} (any case)",
        {"value": shown, "valid": ", ".join(sorted(_MASK_NAMES))},
    )


class MaskDetail(BaseModel):
    """One layer's mask: its type, and the window (``size``) or chunk size (``chunks``) it uses.

    ``mask_type`` takes, in any case, the enum, its value, its name, or a Hugging Face
    ``layer_types`` string.  Full layers ignore ``size`` and ``chunks``.

    >>> MaskDetail(mask_type="sliding_attention", size=4096).mask_type
    <AttnMaskType.SLIDING: 'ATTN_MASK_SLIDING'>
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    mask_type: Annotated[AttnMaskType, BeforeValidator(_parse_mask_type)]
    size: PositiveInt | None = Field(default=None, description="Sliding window in tokens.")
    chunks: PositiveInt | None = Field(default=None, description="Chunk size in tokens.")


#: What the converter takes: layer index (int or numeric string) → a detail in any form.
MaskDetailsInput: TypeAlias = Mapping[Any, Any]

_DETAILS_ADAPTER: TypeAdapter[dict[int, MaskDetail]] = TypeAdapter(
    dict[int, MaskDetail], config=ConfigDict(title="mask_details")
)
_SHOWN = 20


def _listed(items: list[Any]) -> str:
    shown = ", ".join(str(item) for item in items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def _layer_index(key: Any) -> int | None:
    if isinstance(key, int) and not isinstance(key, bool):
        return key if key >= 0 else None
    if isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 18:
        return int(key)  # longer digit strings are no index (at most MAX_LAYERS)
    return None


def _detail_input(detail: Any) -> Any:
    if isinstance(detail, (MaskDetail, Mapping)):
        return detail
    if hasattr(detail, "mask_type"):
        return {
            "mask_type": detail.mask_type,
            "size": getattr(detail, "size", None),
            "chunks": getattr(detail, "chunks", None),
        }
    return detail  # let validation name what it is


def _parse_details(mask_details: MaskDetailsInput) -> dict[int, MaskDetail]:
    if not isinstance(mask_details, Mapping):
        raise MaskDetailsError(
            f"mask_details must map layer index to detail, got {type(mask_details).__name__}"
        )
    raw: dict[int, Any] = {}
    bad_keys: list[str] = []
    repeated: list[int] = []
    for key, detail in mask_details.items():
        index = _layer_index(key)
        if index is None:
            bad_keys.append(shown_value(key, 40))
        elif index in raw:
            repeated.append(index)
        else:
            raw[index] = _detail_input(detail)
    beyond = sorted(index for index in raw if index >= MAX_LAYERS)
    if beyond:
        raise MaskDetailsError(
            f"layer index {shown_value(beyond[0])} is beyond the {MAX_LAYERS} layers a config "
            "lists (indices run 0..n-1)",
            layers=beyond[:_SHOWN],
        )
    if bad_keys:
        raise MaskDetailsError(
            f"mask_details keys must be layer indices >= 0 (int or digits), got {_listed(bad_keys)}",
            keys=bad_keys,
        )
    if repeated:
        raise MaskDetailsError(
            f"layer indices given twice (as int and string): {_listed(repeated)}", layers=repeated
        )
    return _DETAILS_ADAPTER.validate_python(raw)


def _check_indices(indices: list[int], num_layers: int | None) -> None:
    count = num_layers if num_layers is not None else indices[-1] + 1
    present = set(indices)
    missing = [i for i in range(count) if i not in present]
    beyond = [i for i in indices if i >= count]
    problems = []
    if missing:
        problems.append(f"no detail for layer(s) {_listed(missing)}")
    if beyond:
        problems.append(f"layer(s) {_listed(beyond)} beyond num_layers={num_layers}")
    if problems:
        given = "" if num_layers is None else f" (num_layers={num_layers})"
        raise MaskDetailsError(
            f"mask details must cover layers 0..{count - 1}{given} exactly once: "
            f"{'; '.join(problems)}",
            missing=missing,
            beyond=beyond,
        )


def groups_from_mask_details(
    mask_details: MaskDetailsInput | None,
    *,
    page_size: int,
    num_kv_heads: int,
    head_size: int,
    dtype: Any,
    use_mla: bool = False,
    num_layers: int | None = None,
) -> list[CacheGroupSpec]:
    """Group layers by their spec's ``type_id``, in order of first appearance.

    Layers are named ``layer.{index}``; each sliding window and chunk size gets its own group.
    Indices must run 0..n-1 without gaps (``n = num_layers`` when given).  No details at all
    give one full-attention group: of every layer (``layer_names=None``), or of the
    ``num_layers`` layers named.

    >>> [g.layer_names for g in groups_from_mask_details(
    ...     {}, page_size=16, num_kv_heads=8, head_size=128, dtype="bf16", num_layers=2)]
    [['layer.0', 'layer.1']]
    """
    if num_layers is not None:
        positive_int_arg("num_layers", num_layers, MAX_LAYERS, "the most layers a config lists")
    full = FullAttentionSpec(
        page_size=page_size,
        num_kv_heads=num_kv_heads,
        head_size=head_size,
        dtype=dtype,
        use_mla=use_mla,
    )
    details = _parse_details(mask_details) if mask_details is not None else {}
    if not details:
        names = None if num_layers is None else [f"layer.{i}" for i in range(num_layers)]
        return [CacheGroupSpec(kv_cache_spec=full, layer_names=names)]
    indices = sorted(details)
    _check_indices(indices, num_layers)

    specs: dict[tuple[AttnMaskType, int | None], CacheSpec] = {(AttnMaskType.FULL, None): full}
    no_window: list[int] = []
    no_chunk: list[int] = []
    mla_sliding: list[int] = []
    groups: dict[str, tuple[CacheSpec, list[str]]] = {}
    common = {
        "page_size": page_size,
        "num_kv_heads": num_kv_heads,
        "head_size": head_size,
        "dtype": full.dtype,
    }
    for index in indices:
        detail = details[index]
        if detail.mask_type is AttnMaskType.FULL:
            key: tuple[AttnMaskType, int | None] = (AttnMaskType.FULL, None)
        elif detail.mask_type is AttnMaskType.SLIDING:
            if detail.size is None:
                no_window.append(index)
                continue
            if use_mla:
                mla_sliding.append(index)
                continue
            key = (AttnMaskType.SLIDING, detail.size)
            if key not in specs:
                specs[key] = SlidingWindowSpec(**common, sliding_window=detail.size)
        else:
            if detail.chunks is None:
                no_chunk.append(index)
                continue
            key = (AttnMaskType.CHUNK, detail.chunks)
            if key not in specs:
                specs[key] = ChunkedLocalAttentionSpec(
                    **common, use_mla=use_mla, attention_chunk_size=detail.chunks
                )
        spec = specs[key]
        groups.setdefault(spec.type_id, (spec, []))[1].append(f"layer.{index}")

    problems = []
    if no_window:
        problems.append(f"sliding layer(s) {_listed(no_window)} have no window (size)")
    if no_chunk:
        problems.append(f"chunked layer(s) {_listed(no_chunk)} have no chunk size (chunks)")
    if mla_sliding:
        problems.append(
            f"sliding layer(s) {_listed(mla_sliding)} cannot use MLA (use_mla=True); "
            "MLA has no sliding-window cache"
        )
    if problems:
        raise MaskDetailsError(
            "; ".join(problems), no_window=no_window, no_chunk=no_chunk, mla_sliding=mla_sliding
        )
    return [
        CacheGroupSpec(kv_cache_spec=spec, layer_names=names) for spec, names in groups.values()
    ]


def create_kv_cache_specs_from_config(
    config: Any,
    page_size: int,
    num_kv_heads: int,
    head_size: int,
    dtype: Any,
    use_mla: bool = False,
) -> list[CacheGroupSpec]:
    """The reference's entry point: groups from ``config.get_mask_details()`` when it has one.

    When the config has an int ``num_hidden_layers``, every layer must have a detail and a
    model without details gets its layers named (kvschema never loses the layer count).

    >>> class Config:
    ...     num_hidden_layers = 2
    ...     def get_mask_details(self):
    ...         return {0: {"mask_type": "chunk", "chunks": 8192}, 1: {"mask_type": "full"}}
    >>> [g.kv_cache_spec.kind for g in create_kv_cache_specs_from_config(Config(), 16, 8, 128, "bf16")]
    ['local_attention', 'full_attention']
    """
    getter = getattr(config, "get_mask_details", None)
    details = getter() if callable(getter) else None
    layers = getattr(config, "num_hidden_layers", None)
    num_layers = (
        layers if isinstance(layers, int) and not isinstance(layers, bool) and layers > 0 else None
    )
    return groups_from_mask_details(
        details,
        page_size=page_size,
        num_kv_heads=num_kv_heads,
        head_size=head_size,
        dtype=dtype,
        use_mla=use_mla,
        num_layers=num_layers,
    )
