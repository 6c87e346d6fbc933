"""A model's weights as parts, and each part's bytes on one rank, as vLLM 0.33 places them.

Tensor parallelism (TP) splits column- and row-parallel linears evenly; KV projections split
by heads until each rank holds one head (vLLM replicates KV heads when ``num_kv_heads < tp``,
``QKVParallelLinear``); embeddings and ``lm_head`` split by rows after padding the vocabulary to a
multiple of 64 (``pad_vocab_size`` in ``vocab_parallel_embedding.py``; the padded count must
divide by TP); norms and routers are replicated.  MoE experts split like linears under TP, or
whole experts over ``tp * dp`` ranks under expert parallelism (the first ranks taking one more
when the count does not divide, ``determine_expert_map``).  Pipeline parallelism (PP) gives
each stage a run of layers by ``get_pp_indices`` (``vllm/distributed/utils.py``), the
embeddings to the first stage and the final norm and ``lm_head`` to the last (a tied
``lm_head`` is a second copy there when PP > 1).

>>> parts = [WeightPart(name="embed_tokens", place="embed", split="vocab", nbytes=1000 * 64,
...                     rows=1000),
...          WeightPart(name="layers.0.mlp", place="layer", layer=0, split="column",
...                     nbytes=4096)]
>>> [s.point for s in stage_bytes(parts, num_layers=1, tensor_parallel_size=2)]
[34816]
"""

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kvschema._args import positive_int_arg
from kvschema.errors import InvalidArgumentError
from kvschema.models.interval import Interval

__all__ = [
    "VOCAB_PADDING",
    "Place",
    "Split",
    "WeightPart",
    "pp_layer_ranges",
    "stage_bytes",
]

#: vLLM pads the vocabulary of embeddings and lm_head to a multiple of this (DEFAULT_VOCAB_PADDING_SIZE).
VOCAB_PADDING = 64

Place = Literal["embed", "head", "tied_head", "final", "layer", "all", "other"]
Split = Literal["column", "row", "vocab", "kv", "expert", "replicated", "unknown"]


class WeightPart(BaseModel):
    """A group of weights that vLLM places and splits alike (a module, or a whole layer's norms).

    >>> part = WeightPart(name="layers.0.self_attn.k_proj", place="layer", layer=0, split="kv",
    ...                   nbytes=8 * 1024, heads=8)
    >>> stage_bytes([part], num_layers=1, tensor_parallel_size=16)[0].point  # one head a rank
    1024
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: str
    #: Where it lives: the first stage (embed, other), the last (head, final), its layer's stage
    #: (layer), or every stage (all: buffers each stage builds); ``tied_head`` is an lm_head
    #: tied to the embeddings, a second copy only when PP > 1.
    place: Place
    split: Split
    #: Bytes of the weights (the full tensor, all ranks together).
    nbytes: int = Field(ge=0)
    #: Bytes of scales, zero points and group indices (split with the weight, or replicated).
    meta_bytes: int = Field(default=0, ge=0)
    #: At most this many bytes in memory (kernels that pad or repack); None: ``nbytes``.
    high_nbytes: int | None = None
    layer: int | None = None
    #: KV heads (``split="kv"``; None: unknown).
    heads: int | None = None
    #: Experts stacked in this part (``split="expert"``).
    experts: int | None = None
    #: Vocabulary rows (``split="vocab"``).
    rows: int | None = None


def pp_layer_ranges(num_layers: int, pp: int) -> list[tuple[int, int]]:
    """Each stage's ``[start, end)`` layers, as ``get_pp_indices`` assigns them.

    Layers that do not divide evenly go one each to the stages before the last, counting back
    from the second-to-last (the first and last stages hold the embeddings and ``lm_head``).

    >>> pp_layer_ranges(10, 4)
    [(0, 2), (2, 5), (5, 8), (8, 10)]
    """
    positive_int_arg("num_layers", num_layers)
    positive_int_arg("pipeline_parallel_size", pp)
    if pp > num_layers:
        raise InvalidArgumentError(
            f"pipeline_parallel_size={pp} exceeds the {num_layers} layers: a stage would hold "
            "no layer",
            pipeline_parallel_size=pp,
        )
    sizes = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        sizes[-i] += 1
    starts = [sum(sizes[:s]) for s in range(pp)]
    return [(start, start + size) for start, size in zip(starts, sizes, strict=True)]


def _vocab_rank_bytes(part: WeightPart, tp: int) -> int:
    rows = part.rows
    if rows is None or rows <= 0:
        return math.ceil(part.nbytes / tp)
    padded = -(-rows // VOCAB_PADDING) * VOCAB_PADDING
    if padded % tp:
        raise InvalidArgumentError(
            f"{part.name}: the vocabulary padded to {padded} rows (a multiple of "
            f"{VOCAB_PADDING}) does not divide over tensor_parallel_size={tp}; vLLM's "
            "VocabParallelEmbedding fails to start",
            tensor_parallel_size=tp,
        )
    return math.ceil(part.nbytes / rows * padded / tp)


def _rank_bytes(part: WeightPart, tp: int, ep: int | None) -> tuple[int, int, int]:
    """(low, point, high) bytes of ``part`` on the fullest rank."""
    full = part.nbytes + part.meta_bytes
    high_full = (part.nbytes if part.high_nbytes is None else part.high_nbytes) + part.meta_bytes
    if part.split == "replicated":
        return full, full, high_full
    if part.split == "unknown":  # split over TP at best, replicated at worst
        return math.ceil(full / tp), full, high_full
    if part.split == "vocab":
        share = _vocab_rank_bytes(part, tp)
        meta = math.ceil(part.meta_bytes / tp)
        return share + meta, share + meta, share + part.meta_bytes
    if part.split == "expert" and ep is not None:
        experts = part.experts or 1
        per_rank = -(-experts // ep)
        fraction = per_rank / experts
        return (
            math.ceil(full * fraction),
            math.ceil(full * fraction),
            math.ceil(high_full * fraction),
        )
    shards = tp
    if part.split == "kv":
        if part.heads is None:  # unknown heads: split fully at best, replicated at worst
            return math.ceil(full / tp), math.ceil(full / tp), high_full
        shards = min(tp, part.heads)
    point = math.ceil(part.nbytes / shards) + math.ceil(part.meta_bytes / shards)
    high_weight = part.nbytes if part.high_nbytes is None else part.high_nbytes
    # scales and zero points may stay whole on every rank (g_idx of a column split does)
    return point, point, math.ceil(high_weight / shards) + part.meta_bytes


def stage_bytes(
    parts: list[WeightPart],
    *,
    num_layers: int,
    tensor_parallel_size: int = 1,
    pipeline_parallel_size: int = 1,
    expert_parallel_size: int | None = None,
) -> list[Interval]:
    """Weight bytes on the fullest rank of each pipeline stage, as an interval.

    ``expert_parallel_size`` (None: experts split like linears over TP) is the number of ranks
    whole experts are spread over (vLLM's ``tp * dp`` under ``--enable-expert-parallel``).
    """
    tp = positive_int_arg("tensor_parallel_size", tensor_parallel_size)
    pp = positive_int_arg("pipeline_parallel_size", pipeline_parallel_size)
    ep = None
    if expert_parallel_size is not None:
        ep = positive_int_arg("expert_parallel_size", expert_parallel_size)
    ranges = pp_layer_ranges(num_layers, pp)
    stages = [[0, 0, 0] for _ in range(pp)]
    for part in parts:
        if part.place in ("embed", "other"):
            targets = [0]
        elif part.place in ("head", "final"):
            targets = [pp - 1]
        elif part.place == "tied_head":
            targets = [pp - 1] if pp > 1 else []
        elif part.place == "all":
            targets = list(range(pp))
        else:
            if part.layer is None:
                raise InvalidArgumentError(f"{part.name}: a layer part needs its layer index")
            targets = [s for s, (a, b) in enumerate(ranges) if a <= part.layer < b]
            if not targets:
                raise InvalidArgumentError(
                    f"{part.name}: layer {part.layer} is outside the model's {num_layers} layers"
                )
        low, point, high = _rank_bytes(part, tp, ep)
        for s in targets:
            stages[s][0] += low
            stages[s][1] += point
            stages[s][2] += high
    return [Interval(low=a, point=b, high=c) for a, b, c in stages]
