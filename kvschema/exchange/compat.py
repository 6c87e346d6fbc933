"""Can one peer's KV pages move to another's?  The prefill/decode transfer rules, before deploy.

Documents hold per-rank specs (what one rank of that peer allocates, as the planner publishes
them).  ``a`` sends pages, ``b`` receives them.

>>> from kvschema import CacheGroupsConfig, CacheGroupSpec, FullAttentionSpec
>>> def layout(heads, page_size=16, pages=1000):
...     spec = FullAttentionSpec(page_size=page_size, num_kv_heads=heads, head_size=128,
...                              dtype="bf16")
...     return CacheGroupsConfig(num_pages=pages, kv_cache_groups=[
...         CacheGroupSpec(kv_cache_spec=spec, layer_names=["layer.0", "layer.1"])])
>>> check_compatible(layout(8), layout(4), tp_a=1, tp_b=2).compatible  # 8 heads either way
True
>>> [d.reason for d in check_compatible(layout(8), layout(8, page_size=8)).differences]
['layer.0: the receiving page (8 tokens) is not a multiple of the sending page (16 tokens)', 'layer.1: the receiving page (8 tokens) is not a multiple of the sending page (16 tokens)']
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kvschema._args import positive_int_arg
from kvschema.errors import InvalidArgumentError
from kvschema.layout.config import CacheGroupsConfig
from kvschema.spec.union import MambaSpec, UniformTypeSpec

__all__ = ["CompatibilityReport", "Difference", "check_compatible"]

Rule = Literal[
    "layer_names",
    "kind",
    "window",
    "head_size",
    "dtype",
    "mla",
    "kv_heads",
    "state_shapes",
    "tensor_parallel",
    "page_size",
    "kv_sharing",
    "num_pages",
]


class Difference(BaseModel):
    """One way the two layouts differ: where, both values, which rule, and why it matters."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    rule: Rule
    layer: str | None = Field(default=None, description="The layer it concerns, if one.")
    path: str = Field(description="JSON path in document a (in b when a has no such place).")
    a: Any
    b: Any
    reason: str


class CompatibilityReport(BaseModel):
    """The verdict: ``compatible``, every difference that forbids a transfer, and information.

    >>> from kvschema import CacheGroupsConfig, CacheGroupSpec, MambaSpec
    >>> state = MambaSpec(page_size=1, shapes=[[4]], dtype="fp32")
    >>> a = CacheGroupsConfig(num_pages=5, kv_cache_groups=[
    ...     CacheGroupSpec(kv_cache_spec=state, layer_names=["m"])])
    >>> report = check_compatible(a, a.model_copy(update={"num_pages": 9}))
    >>> report.compatible, [d.rule for d in report.info]
    (True, ['num_pages'])
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    compatible: bool
    differences: list[Difference]
    info: list[Difference] = Field(description="Differences that do not forbid a transfer.")
    tp_a: int
    tp_b: int


#: The key of a lone group's "every layer" (``layer_names`` null): no layer is named "" (a
#: layer named ``*`` is a layer like any other).
_EVERY = ""


def _placement(config: CacheGroupsConfig) -> dict[str, tuple[str, Any]]:
    """Layer → (its spec's path in the document, its per-layer spec)."""
    out: dict[str, tuple[str, Any]] = {}
    for index, group in enumerate(config.kv_cache_groups):
        spec = group.kv_cache_spec
        base = f"$.kv_cache_groups[{index}].kv_cache_spec"
        names = group.layer_names
        if names is None:
            names = list(spec.kv_cache_specs) if isinstance(spec, UniformTypeSpec) else [_EVERY]
        for name in names:
            if isinstance(spec, UniformTypeSpec):
                out[name] = (f"{base}.kv_cache_specs['{name}']", spec.kv_cache_specs[name])
            else:
                out[name] = (base, spec)
    return out


def _sharing(config: CacheGroupsConfig) -> dict[str, tuple[str, str]]:
    """Sharing layer → (its place in the document, the layer whose KV cache it reads)."""
    return {
        name: (f"$.kv_cache_groups[{index}].kv_sharing['{name}']", target)
        for index, group in enumerate(config.kv_cache_groups)
        for name, target in (group.kv_sharing or {}).items()
    }


def _compare_sharing(
    a: CacheGroupsConfig, b: CacheGroupsConfig, holding: dict[str, dict[str, Any]]
) -> list[Difference]:
    """Layers that read another layer's cache in one peer and not (or another's) in the other.

    A sharing layer has no pages of its own (vLLM allocates it none), so there is nothing to
    send it, or to fill it with, unless both peers share it from the same layer.
    """
    shared_a, shared_b = _sharing(a), _sharing(b)
    out = []
    for name in [*shared_a, *(n for n in shared_b if n not in shared_a)]:
        path_a, target_a = shared_a.get(name, (None, None))
        path_b, target_b = shared_b.get(name, (None, None))
        in_a = target_a is not None or name in holding["a"]
        in_b = target_b is not None or name in holding["b"]
        if target_a == target_b or not (in_a and in_b):
            continue  # the same target, or a layer one side lacks (the layer_names rule's)

        def says(target: str | None) -> str:
            return "keeps its own" if target is None else f"reads {target}'s"

        out.append(
            Difference(
                rule="kv_sharing",
                layer=name,
                path=path_a or path_b or "$",
                a=target_a,
                b=target_b,
                reason=f"{name} {says(target_a)} KV cache in a and {says(target_b)} in b",
            )
        )
    return out


def _window(spec: Any) -> int | None:
    return getattr(spec, "sliding_window", None) or getattr(spec, "attention_chunk_size", None)


def _totals_agree(heads_a: int, tp_a: int, heads_b: int, tp_b: int) -> bool:
    """Whether ranks of ``heads_a`` heads at ``tp_a`` and ``heads_b`` at ``tp_b`` may hold one model.

    A rank of ``h`` heads at ``tp`` stands for ``h * tp`` heads in all, except one head per rank
    at ``tp > 1``: then the model's heads may also be fewer than the ranks and replicated, so
    the total is any divisor of ``tp`` (vLLM's ``num_kv_heads // tp`` rounded up to 1, with
    ``tp % num_kv_heads == 0`` required).  Decided by arithmetic, never by listing the
    divisors: O(1) in the tensor-parallel sizes.

    >>> _totals_agree(8, 1, 1, 16), _totals_agree(8, 1, 1, 12), _totals_agree(1, 10**6, 1, 7)
    (True, False, True)
    """
    replicated_a, replicated_b = heads_a == 1 and tp_a > 1, heads_b == 1 and tp_b > 1
    if replicated_a and replicated_b:
        return True  # one head in all fits either
    if replicated_a:
        return tp_a % (heads_b * tp_b) == 0
    if replicated_b:
        return tp_b % (heads_a * tp_a) == 0
    return heads_a * tp_a == heads_b * tp_b


def _compare_layer(
    name: str, path: str, a: Any, b: Any, tp_a: int, tp_b: int, out: list[Difference]
) -> None:
    def diff(rule: Rule, field: str, va: Any, vb: Any, reason: str) -> None:
        out.append(
            Difference(rule=rule, layer=name, path=f"{path}.{field}", a=va, b=vb, reason=reason)
        )

    if a.kind != b.kind:
        diff("kind", "kind", a.kind, b.kind, f"{name} is {a.kind} in a and {b.kind} in b")
        return
    dtypes_a, dtypes_b = (
        getattr(a, "dtypes", None) or a.dtype,
        getattr(b, "dtypes", None) or b.dtype,
    )
    if dtypes_a != dtypes_b:
        field = "dtypes" if getattr(a, "dtypes", None) else "dtype"
        diff(
            "dtype", field, dtypes_a, dtypes_b, f"{name} caches {dtypes_a} in a and {dtypes_b} in b"
        )
    if isinstance(a, MambaSpec):
        if tp_a != tp_b:
            diff(
                "state_shapes",
                "shapes",
                tp_a,
                tp_b,
                f"{name} is recurrent state, which moves only between equal tensor-parallel sizes",
            )
        elif a.shapes != b.shapes:
            diff(
                "state_shapes",
                "shapes",
                [list(s) for s in a.shapes],
                [list(s) for s in b.shapes],
                f"{name} has state shapes {a.shapes} in a and {b.shapes} in b",
            )
        return
    if _window(a) != _window(b):
        field = "sliding_window" if hasattr(a, "sliding_window") else "attention_chunk_size"
        diff(
            "window",
            field,
            _window(a),
            _window(b),
            f"{name} keeps a window of {_window(a)} tokens in a and {_window(b)} in b",
        )
    if a.head_size != b.head_size:
        diff(
            "head_size",
            "head_size",
            a.head_size,
            b.head_size,
            f"{name} has heads of {a.head_size} in a and {b.head_size} in b",
        )
    v_a, v_b = a.head_size_v or a.head_size, b.head_size_v or b.head_size
    if v_a != v_b and (a.head_size_v, b.head_size_v) != (None, None):
        diff(
            "head_size",
            "head_size_v",
            a.head_size_v,
            b.head_size_v,
            f"{name} has V heads of {v_a} in a and {v_b} in b",
        )
    if a.cache_dtype_str != b.cache_dtype_str:
        diff(
            "dtype",
            "cache_dtype_str",
            a.cache_dtype_str,
            b.cache_dtype_str,
            f"{name} stores MLA pages as {a.cache_dtype_str or 'plain ' + a.dtype} in a and "
            f"{b.cache_dtype_str or 'plain ' + b.dtype} in b",
        )
    if a.use_mla != b.use_mla:
        diff("mla", "use_mla", a.use_mla, b.use_mla, f"{name} is MLA in one peer only")
    elif a.use_mla:
        if a.num_kv_heads != b.num_kv_heads:
            diff(
                "kv_heads",
                "num_kv_heads",
                a.num_kv_heads,
                b.num_kv_heads,
                f"{name}: an MLA latent is never sharded, so it must match per rank",
            )
    elif not _totals_agree(a.num_kv_heads, tp_a, b.num_kv_heads, tp_b):
        diff(
            "kv_heads",
            "num_kv_heads",
            a.num_kv_heads,
            b.num_kv_heads,
            f"{name} has {a.num_kv_heads} KV heads per rank x tp {tp_a} in a and "
            f"{b.num_kv_heads} x tp {tp_b} in b: the totals differ",
        )
    if b.page_size % a.page_size:
        diff(
            "page_size",
            "page_size",
            a.page_size,
            b.page_size,
            f"{name}: the receiving page ({b.page_size} tokens) is not a multiple of the "
            f"sending page ({a.page_size} tokens)",
        )


def check_compatible(
    a: CacheGroupsConfig, b: CacheGroupsConfig, *, tp_a: int = 1, tp_b: int = 1
) -> CompatibilityReport:
    """Whether ``a`` (sending, at tensor-parallel size ``tp_a``) can move pages to ``b``.

    The rules vLLM's prefill/decode transfer enforces at run time: the same layer names (group
    placement may differ); per layer the same kind, window or chunk size, K and V head sizes and
    cache dtype (an MLA cache format included); the same total KV heads (per-rank heads x tp;
    an MLA latent, or heads replicated because tp exceeds them, must match per rank);
    tensor-parallel sizes that divide one another; a layer that reads another layer's KV cache
    (``kv_sharing``) reads the same one in both; a receiving page size (tokens) that is a
    multiple of the sender's.  Only that last rule depends on which side sends.  ``num_pages``
    differences are reported as information.

    >>> from kvschema import CacheGroupSpec, FullAttentionSpec
    >>> def peer(heads, tokens):
    ...     spec = FullAttentionSpec(page_size=tokens, num_kv_heads=heads, head_size=128,
    ...                              dtype="bf16")
    ...     return CacheGroupsConfig(num_pages=64, kv_cache_groups=[
    ...         CacheGroupSpec(kv_cache_spec=spec, layer_names=["layer.0"])])
    >>> check_compatible(peer(8, 16), peer(2, 32), tp_a=1, tp_b=4).compatible
    True
    >>> [d.rule for d in check_compatible(peer(2, 32), peer(8, 16), tp_a=4).differences]
    ['page_size']
    """
    for name, config in (("a", a), ("b", b)):
        if not isinstance(config, CacheGroupsConfig):
            raise InvalidArgumentError(
                f"{name} must be a CacheGroupsConfig, got {type(config).__name__}"
            )
    tp_a = positive_int_arg("tp_a", tp_a)
    tp_b = positive_int_arg("tp_b", tp_b)
    differences: list[Difference] = []
    info: list[Difference] = []
    if a.num_pages != b.num_pages:
        info.append(
            Difference(
                rule="num_pages",
                path="$.num_pages",
                a=a.num_pages,
                b=b.num_pages,
                reason="the peers hold different page counts; each allocates its own",
            )
        )
    if tp_a % tp_b and tp_b % tp_a:
        differences.append(
            Difference(
                rule="tensor_parallel",
                path="$",
                a=tp_a,
                b=tp_b,
                reason=f"tensor-parallel sizes {tp_a} and {tp_b} do not divide one another",
            )
        )
    layers_a, layers_b = _placement(a), _placement(b)
    # every layer of a peer: those with a cache of their own, and those sharing another's
    named_a = {**layers_a, **{n: (path, None) for n, (path, _) in _sharing(a).items()}}
    named_b = {**layers_b, **{n: (path, None) for n, (path, _) in _sharing(b).items()}}
    only_a = [n for n in named_a if n not in named_b]
    only_b = [n for n in named_b if n not in named_a]
    for side, names, placement in (("a", only_a, named_a), ("b", only_b, named_b)):
        for name in names:
            reason = (
                f"{side} names no layers (layer_names is null: every layer)"
                if name == _EVERY
                else f"{name} is in {side} only"
            )
            shown = "*" if name == _EVERY else name  # layer is None for the marker
            differences.append(
                Difference(
                    rule="layer_names",
                    layer=None if name == _EVERY else name,
                    path=placement[name][0],
                    a=shown if side == "a" else None,
                    b=shown if side == "b" else None,
                    reason=reason,
                )
            )
    differences.extend(_compare_sharing(a, b, {"a": layers_a, "b": layers_b}))
    for name, (path, spec_a) in layers_a.items():
        if name in layers_b:
            _compare_layer(name, path, spec_a, layers_b[name][1], tp_a, tp_b, differences)
    return CompatibilityReport(
        compatible=not differences, differences=differences, info=info, tp_a=tp_a, tp_b=tp_b
    )
