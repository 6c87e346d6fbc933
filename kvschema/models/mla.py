"""MLA families: one latent per token, the sparse-attention indexer, Kimi-Linear's KDA beside it.

An MLA layer keeps ``kv_lora_rank + qk_rope_head_dim`` elements per token (vLLM's convertor
``get_head_size``), one "head", never split over tensor parallelism (``max_tp_shards=1``); the
configs' ``head_dim`` (the rope part) and ``num_key_value_heads`` are not the cache's.

>>> from kvschema.models.fields import Fields
>>> layers = deepseek()(Fields({"num_hidden_layers": 1, "kv_lora_rank": 512,
...     "qk_rope_head_dim": 64}, "deepseek_v3"))
>>> layers[0].caches[0][1].head_size
576
"""

from __future__ import annotations

from typing import Any, Literal

from kvschema.models.fields import Fields
from kvschema.models.layers import Attention, Layer, State, one

__all__ = ["deepseek", "indexer_layers", "kimi_linear", "longcat"]


def _latent(fields: Fields) -> int:
    """``kv_lora_rank + qk_rope_head_dim``: what one MLA token holds (vLLM's convertor
    ``get_head_size``); the configs' ``head_dim`` (the rope part) is not the cache width."""
    return fields.int("kv_lora_rank") + fields.int("qk_rope_head_dim")


def indexer_layers(fields: Fields, count: int) -> list[bool]:
    """Which layers build a DeepSeek sparse-attention indexer (``deepseek_v2.py``,
    ``DeepseekV2MLAAttention``): all but the ``"S"`` entries of ``index_topk_pattern``, else
    those where ``max(i - index_skip_topk_offset + 1, 0) % index_topk_freq == 0`` (1 and 2 by
    default: every layer).

    >>> indexer_layers(Fields({"index_topk_freq": 2, "index_skip_topk_offset": 0}, "glm_moe_dsa"), 4)
    [False, True, False, True]
    """
    pattern = fields.get("index_topk_pattern")
    if pattern is not None:
        if not isinstance(pattern, str):
            raise fields.error(
                f"index_topk_pattern must be a string of F / S, got {pattern!r:.40}",
                field="index_topk_pattern",
            )
        return [i >= len(pattern) or pattern[i] != "S" for i in range(count)]
    freq = fields.int("index_topk_freq", default=1)
    offset = fields.int("index_skip_topk_offset", default=2, minimum=0)
    return [max(i - offset + 1, 0) % freq == 0 for i in range(count)]


def deepseek(*, dsa: Literal["if_set", "required", "always"] = "if_set") -> Any:
    """DeepSeek-V2/V3 and the MLA families built on them (``deepseek_v2.py``,
    ``vllm/models/deepseek_v32``): one latent of ``kv_lora_rank + qk_rope_head_dim`` per token
    and layer, never split over tp; MTP layers (``num_nextn_predict_layers``) are not counted.

    With DeepSeek sparse attention (``index_topk`` in the config: ``dsa="if_set"``, as
    ``hasattr(config, "index_topk")``; ``"required"`` for DeepSeek-V3.2, whose vLLM hook
    asserts it; ``"always"`` for GLM-5, whose config class sets it) each indexing layer also
    keeps an indexer key cache: ``index_head_dim`` fp8 values and one fp32 scale per 128, as
    uint8 — 132 bytes a token for the usual 128 (``DeepseekV32IndexerCache``).

    >>> layers = deepseek()(Fields({"num_hidden_layers": 1, "kv_lora_rank": 512,
    ...     "qk_rope_head_dim": 64, "index_topk": 2048, "index_head_dim": 128}, "deepseek_v3"))
    >>> [(name, c.head_size, c.dtype) for name, c in layers[0].caches]
    [('.attn', 576, None), ('.indexer', 132, 'uint8')]
    """

    def read(fields: Fields) -> list[Layer]:
        count = fields.layers()
        if fields.get("qk_rope_head_dim") == 0 and fields.get("qk_nope_head_dim") == 0:
            raise fields.error(
                "qk_nope_head_dim and qk_rope_head_dim are 0: vLLM runs this as plain "
                "multi-head attention, which kvschema does not read for this family",
                field="qk_rope_head_dim",
            )
        sparse = dsa == "always" or "index_topk" in fields
        if dsa == "required" and not sparse:
            raise fields.error(
                "index_topk missing: vLLM 0.33 serves DeepSeek-V3.2 only with its sparse-"
                "attention indexer (DeepseekV32ForCausalLM asserts it)",
                field="index_topk",
            )
        latent = Attention(
            "mla", kv_heads=1, head_size=_latent(fields), sharded=False, sparse_mla=sparse
        )
        if not sparse:
            return [one(latent)] * count
        index_dim = fields.int("index_head_dim")
        indexer = Attention(
            "mla",
            kv_heads=1,
            head_size=index_dim + index_dim // 128 * 4,
            sharded=False,
            dtype="uint8",
        )
        both = Layer(((".attn", latent), (".indexer", indexer)))
        alone = Layer(((".attn", latent),))
        return [both if has else alone for has in indexer_layers(fields, count)]

    return read


def longcat(fields: Fields) -> list[Layer]:
    """LongCat-Flash (``longcat_flash.py``): ``num_layers`` decoder layers of two MLA attention
    sublayers each (``num_hidden_layers`` is twice that in its config class).

    >>> len(longcat(Fields({"num_layers": 2, "kv_lora_rank": 512,
    ...     "qk_rope_head_dim": 64}, "longcat_flash"))[0].caches)
    2
    """
    count = fields.layers("num_layers") if "num_layers" in fields else fields.layers() // 2
    if count < 1 or "index_topk" in fields:
        raise fields.error(
            "a LongCat config needs num_layers >= 1 and no sparse-attention indexer "
            "(kvschema does not read one here)",
            field="num_layers",
        )
    latent = Attention("mla", kv_heads=1, head_size=_latent(fields), sharded=False)
    return [Layer(((".attn0", latent), (".attn1", latent)))] * count


def kimi_linear(fields: Fields) -> list[Layer]:
    """Kimi-Linear (``vllm/models/kimi_k3``): Kimi delta attention where ``(i + 1)`` is in
    ``linear_attn_config.kda_layers`` (1-based), MLA elsewhere.  KDA state:
    ``kda_state(num_heads, head_dim, short_conv_kernel_size)`` of ``linear_attn_config``.

    >>> layers = kimi_linear(Fields({"num_hidden_layers": 2, "kv_lora_rank": 512,
    ...     "qk_rope_head_dim": 64, "mla_use_nope": True, "linear_attn_config": {
    ...     "kda_layers": [1], "full_attn_layers": [2], "num_heads": 32, "head_dim": 128, "short_conv_kernel_size": 4}}, "kimi_linear"))
    >>> [c.mixer if hasattr(c, "mixer") else c.kind for layer in layers for _, c in layer.caches]
    ['kda', 'mla']
    """
    count = fields.layers()
    config = fields.get("linear_attn_config")
    kda: set[int] = set()
    state = None
    if config is not None:
        linear = fields.sub("linear_attn_config")
        # vLLM's KimiLinearConfig asserts both lists (transformers_utils/configs/kimi_linear.py)
        kda = set(linear.ints("kda_layers", minimum=1))
        linear.ints("full_attn_layers", minimum=1)
        state = State(
            "kda",
            (
                ("num_heads", linear.int("num_heads")),
                ("head_dim", linear.int("head_dim")),
                ("conv_kernel", linear.int("short_conv_kernel_size")),
            ),
        )
    if any(i + 1 not in kda for i in range(count)) and not fields.flag("mla_use_nope", False):
        # the MLA branch asserts mla_use_nope (vllm/models/kimi_k3/nvidia/model.py)
        raise fields.error(
            "mla_use_nope is not true: vLLM 0.33's Kimi-Linear MLA layers are NoPE-only and "
            "assert it",
            field="mla_use_nope",
        )
    latent = Attention("mla", kv_heads=1, head_size=_latent(fields), sharded=False)
    return [one(state) if state is not None and i + 1 in kda else one(latent) for i in range(count)]
