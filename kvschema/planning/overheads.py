"""The non-KV terms of vLLM's memory budget per rank, as intervals: activation peak, non-torch
memory, CUDA graphs (and, outside the budget, what the CUDA context and NCCL take at start).

vLLM 0.33 sizes the KV cache as ``total x utilization - (consumed + transient peak) - CUDA-graph
estimate`` (``Worker.determine_available_memory``).  kvschema cannot run the profile, so each
term comes from a small parametric model whose coefficients, and the published measurements it
is checked against, live in ``data/overheads.json`` (which also says how to add a measurement).
Every term is an :class:`~kvschema.models.interval.Interval`: the point is the best guess, the
bounds what the measurements allow.

>>> inputs = overhead_inputs({"model_type": "qwen3", "hidden_size": 4096, "head_dim": 128,
...     "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
...     "num_key_value_heads": 8, "vocab_size": 151936}, max_num_batched_tokens=2048,
...     max_num_seqs=256)
>>> terms = estimate_overheads(inputs)
>>> terms.cuda_graphs.gib()  # Qwen3-8B on a 24 GB card measured 0.52 GiB (LMCache #3430)
(0.21, 0.52, 1.57)
"""

import json
import math
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kvschema._args import positive_int_arg
from kvschema.errors import InvalidArgumentError
from kvschema.models.interval import GIB, Interval

__all__ = [
    "OverheadInputs",
    "Overheads",
    "cudagraph_capture_sizes",
    "estimate_overheads",
    "overhead_inputs",
]

MIB = 1 << 20


class OverheadInputs(BaseModel):
    """What the overhead model reads: the model's shape on one rank and vLLM's settings."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    hidden_size: int = Field(ge=1)
    #: The dense MLP's intermediate size (0: none, an all-MoE model).
    intermediate_size: int = Field(default=0, ge=0)
    moe_intermediate_size: int = Field(default=0, ge=0)
    experts_per_token: int = Field(default=0, ge=0)
    #: Query and key/value projection widths (heads x head_dim), whole model.
    q_size: int = Field(ge=0)
    kv_size: int = Field(ge=0)
    vocab_size: int = Field(ge=1)
    #: Layers on the pipeline stage (all of them without PP).
    num_layers: int = Field(ge=1)
    dtype_bytes: int = Field(default=2, ge=1)
    tensor_parallel_size: int = Field(default=1, ge=1)
    expert_parallel: bool = False
    #: Mamba / gated-delta layers present (their CUDA-graph estimate is less certain).
    hybrid: bool = False
    #: The last pipeline stage runs the sampler.
    last_stage: bool = True
    max_num_batched_tokens: int = Field(ge=1)
    max_num_seqs: int = Field(ge=1)
    enforce_eager: bool = False
    #: Data-centre Blackwell (capture sizes up to 1024 instead of 512).
    blackwell: bool = False
    #: vLLM's version as (major, minor): the CUDA-graph estimate is applied from 0.21.
    vllm_version: tuple[int, int] = (0, 33)

    def forward_bytes_per_token(self) -> int:
        """Transient bytes one token costs in a forward pass (the model's formula).

        >>> OverheadInputs(hidden_size=4096, intermediate_size=14336, q_size=4096,
        ...     kv_size=1024, vocab_size=128256, num_layers=32, max_num_batched_tokens=8192,
        ...     max_num_seqs=256).forward_bytes_per_token()
        131072
        """
        tp = self.tensor_parallel_size
        experts_tp = 1 if self.expert_parallel else tp
        moe = self.experts_per_token * (
            3 * self.moe_intermediate_size / experts_tp + self.hidden_size
        )
        width = (
            4 * self.hidden_size
            + 3 * self.intermediate_size / tp
            + moe
            + (self.q_size + 2 * self.kv_size) / tp
        )
        return math.ceil(self.dtype_bytes * width)


class Overheads(BaseModel):
    """The non-KV terms on one rank; ``budget`` is what vLLM subtracts from the KV memory.

    >>> zero = Interval.exact(0)
    >>> Overheads(activation=zero, non_torch=zero, cuda_graphs=Interval.exact(5),
    ...           startup=zero).budget.point
    5
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    #: The transient peak of the profile run (torch's peak minus what stays allocated).
    activation: Interval
    #: Memory kept after the baseline snapshot besides the weights (buffers, workspaces).
    non_torch: Interval
    #: vLLM's CUDA-graph estimate (0 with enforce_eager or before vLLM 0.21).
    cuda_graphs: Interval
    #: CUDA context, NCCL and cuBLAS before the snapshot: outside the budget, but it must fit
    #: beside ``total x utilization`` for vLLM to start.
    startup: Interval
    # a lambda, not `list`: pydantic reads a builtin's signature from its text with
    # tokenize's large regex, compiled once per process (~3 ms of a command's start-up)
    notes: list[str] = Field(default_factory=lambda: [])

    @property
    def budget(self) -> Interval:
        """activation + non-torch + CUDA graphs: what vLLM takes from the KV memory."""
        return self.activation + self.non_torch + self.cuda_graphs


@cache
def _coefficients() -> dict[str, Any]:
    # read beside this file (importlib.resources would import tempfile and zipfile, a tenth of
    # fit's start-up, for a package that is never zipped: pydantic-core cannot load from a zip)
    text = Path(__file__).with_name("data").joinpath("overheads.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _gib(bounds: Mapping[str, float]) -> Interval:
    return Interval(
        low=round(bounds["low"] * GIB),
        point=round(bounds["point"] * GIB),
        high=round(bounds["high"] * GIB),
    )


def cudagraph_capture_sizes(
    max_num_seqs: int, max_num_batched_tokens: int, *, blackwell: bool = False
) -> tuple[list[int], list[int]]:
    """vLLM 0.33's default capture sizes: (PIECEWISE, FULL decode), as ``_set_cudagraph_sizes``.

    >>> pw, full = cudagraph_capture_sizes(256, 2048)
    >>> len(pw), max(pw), len(full), max(full)  # vLLM logs PIECEWISE=51 (512), FULL=35 (256)
    (51, 512, 35, 256)
    """
    seqs = positive_int_arg("max_num_seqs", max_num_seqs)
    tokens = positive_int_arg("max_num_batched_tokens", max_num_batched_tokens)
    ceiling = min(2 * seqs, 1024 if blackwell else 512)
    sizes = {1, 2, 4, *range(8, 256, 8), *range(256, ceiling + 1, 16)}
    if seqs <= ceiling:
        sizes.add(seqs)
    largest = min(tokens, ceiling)
    piecewise = sorted(s for s in sizes if s <= largest)
    return piecewise, [s for s in piecewise if s <= seqs]


def estimate_overheads(inputs: OverheadInputs) -> Overheads:
    """The activation, non-torch, CUDA-graph and startup terms of one rank, as intervals."""
    coef = _coefficients()["coefficients"]
    notes: list[str] = []
    per_token = inputs.forward_bytes_per_token()
    act = coef["activation"]
    forward = inputs.max_num_batched_tokens * per_token
    rows = min(inputs.max_num_batched_tokens, inputs.max_num_seqs) if inputs.last_stage else 0
    logits = rows * inputs.vocab_size
    bounds = {}
    for key in ("low", "point", "high"):
        peak = max(
            forward * act["forward_factor"][key], logits * act["sampler_bytes_per_logit"][key]
        )
        bounds[key] = math.ceil(peak + act["base_mib"][key] * MIB)
    activation = Interval(**bounds)
    tp_key = "tp1_gib" if inputs.tensor_parallel_size == 1 else "tp_gt1_gib"
    non_torch = _gib(coef["non_torch"][tp_key])
    startup = _gib(coef["startup"][tp_key])
    if inputs.tensor_parallel_size > 1:  # NCCL and all-reduce buffers grow with the peers
        grow = coef["startup"]["tp_gt1_high_by_ranks"]
        ranks = grow["base_gib"] + grow["per_rank_gib"] * inputs.tensor_parallel_size
        high = min(startup.high, max(round(ranks * GIB), startup.point))
        startup = Interval(low=startup.low, point=startup.point, high=high)
    graphs = _cuda_graphs(inputs, per_token, coef["cuda_graphs"], notes)
    return Overheads(
        activation=activation, non_torch=non_torch, cuda_graphs=graphs, startup=startup, notes=notes
    )


def _cuda_graphs(
    inputs: OverheadInputs, per_token: int, coef: dict[str, Any], notes: list[str]
) -> Interval:
    if inputs.enforce_eager:
        return Interval.exact(0)
    if inputs.vllm_version < (0, 21):
        notes.append(
            "before vLLM 0.21 the CUDA-graph memory is not taken from the KV budget; "
            "the graphs still need it after start-up"
        )
        return Interval.exact(0)
    piecewise, full = cudagraph_capture_sizes(
        inputs.max_num_seqs, inputs.max_num_batched_tokens, blackwell=inputs.blackwell
    )
    per_graph = (1 + coef["per_layer_mib"] * inputs.num_layers) * MIB
    first = max(piecewise) * per_token
    point = first + per_graph * (len(piecewise) - 1 + max(len(full) - 1, 0))
    high = point * coef["factor"]["high"]
    if inputs.hybrid:
        high += inputs.max_num_batched_tokens * per_token
        notes.append(
            "a Mamba / gated-delta hybrid: vLLM's CUDA-graph estimate may include a "
            "profiling transient linear in max_num_batched_tokens (vLLM #50780)"
        )
    if inputs.expert_parallel:
        high *= coef["expert_parallel_high_factor"]
        notes.append(
            "MoE with expert parallelism: vLLM's CUDA-graph estimate has been reported "
            "far above the real pool (vLLM #45178, #53013)"
        )
    return Interval(
        low=math.floor(point * coef["factor"]["low"]), point=math.ceil(point), high=math.ceil(high)
    )


def _field(config: Mapping[str, Any], *names: str, default: int | None = None) -> int:
    for name in names:
        value = config.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    if default is None:
        raise InvalidArgumentError(
            f"the overhead model needs {' or '.join(names)} from the config", field=names[0]
        )
    return default


def overhead_inputs(
    config: Mapping[str, Any],
    *,
    max_num_batched_tokens: int,
    max_num_seqs: int,
    tensor_parallel_size: int = 1,
    num_layers: int | None = None,
    last_stage: bool = True,
    **settings: Any,
) -> OverheadInputs:
    """The model's shape from a Hugging Face config (its ``text_config`` when multimodal).

    ``num_layers`` is the stage's share under PP; ``settings`` are the remaining
    :class:`OverheadInputs` fields (``enforce_eager``, ``expert_parallel``, ``vllm_version`` …).

    >>> overhead_inputs({"hidden_size": 8}, max_num_batched_tokens=8, max_num_seqs=1)
    Traceback (most recent call last):
    ...
    kvschema.errors.InvalidArgumentError: the overhead model needs num_attention_heads from the config
    """
    text = config.get("text_config")
    cfg = {**config, **text} if isinstance(text, Mapping) else dict(config)
    h = _field(cfg, "hidden_size")
    heads = _field(cfg, "num_attention_heads")
    head_dim = _field(cfg, "head_dim", default=h // max(heads, 1))
    kv_heads = _field(cfg, "num_key_value_heads", default=heads)
    experts = _field(cfg, "num_experts", "n_routed_experts", "num_local_experts", default=0)
    topk = _field(cfg, "num_experts_per_tok", "experts_per_token", "moe_topk", default=0)
    hybrid = any(k in cfg for k in ("mamba_d_state", "ssm_state_size", "linear_num_value_heads"))
    return OverheadInputs(
        hidden_size=h,
        intermediate_size=_field(cfg, "intermediate_size", default=0) if not experts else 0,
        moe_intermediate_size=_field(cfg, "moe_intermediate_size", "intermediate_size", default=0)
        if experts
        else 0,
        experts_per_token=(topk or 1) if experts else 0,
        q_size=heads * head_dim,
        kv_size=kv_heads * head_dim,
        vocab_size=_field(cfg, "vocab_size"),
        num_layers=num_layers or _field(cfg, "num_hidden_layers"),
        tensor_parallel_size=tensor_parallel_size,
        hybrid=hybrid,
        last_stage=last_stage,
        max_num_batched_tokens=max_num_batched_tokens,
        max_num_seqs=max_num_seqs,
        **settings,
    )
