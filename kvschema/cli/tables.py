"""Plain-text tables of plans, for people (the CLI prints them; nothing here prints).

>>> from kvschema import FullAttentionSpec, plan_cache
>>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
>>> plan = plan_cache({f"layer.{i}": spec for i in range(4)}, available_bytes=2**30,
...                   max_model_len=4096, max_num_batched_tokens=1024)
>>> for line in plan_table(plan).splitlines()[-4:-2]:
...     print(line)
budget       1.00 GiB per rank (1073741824 bytes)
pages        4096 of 256.00 KiB per page index (one is the null page)
"""

from __future__ import annotations

from collections.abc import Sequence

from kvschema.models.hf import HFLayers
from kvschema.planning.plan import CachePlan
from kvschema.reading.text import NAME_LIMIT, printable
from kvschema.render.units import human_bytes
from kvschema.spec.union import MambaSpec

__all__ = ["layers_table", "plan_table", "render_table"]


def render_table(rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Columns padded to their widest cell; indices in ``right`` right-aligned.

    Cells are input (layer names): each is escaped and cut (see ``kvschema.cli.output``).

    >>> render_table([["name", "n"], ["a\\nb", "1"]], right=(1,))
    'name  n\\na\\\\nb  1'
    """
    rows = [[printable(cell, NAME_LIMIT) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def plan_table(plan: CachePlan) -> str:
    """The plan as people read it: a row per group, then pages, concurrency and tokens.

    "per request" is what one request of ``max_model_len`` holds through a group, and "share"
    that group's part of the request's memory.
    """
    inputs = plan.inputs
    layers = sum(group.layers for group in plan.groups)
    strategy: str = inputs.strategy
    if inputs.disable_hybrid_kv_cache_manager:
        strategy += " (hybrid KV cache manager disabled)"
    batches = f"{inputs.max_concurrent_batches} x {inputs.max_num_batched_tokens}"
    head = (
        f"{layers} layers, {strategy}, tp={inputs.tensor_parallel_size} "
        f"pp={inputs.pipeline_parallel_size}, max_model_len={inputs.max_model_len}, "
        f"{inputs.tokens_in_flight} tokens in flight "
        f"({batches}{', async' if inputs.async_scheduling else ''})"
    )
    if not plan.has_kv_cache:
        return (
            f"{head}\n\n{_budget_line(inputs.available_bytes)}\nno KV cache: no layer keeps "
            "one (an attention-free model); vLLM plans one page (the null page) and no groups"
        )
    total = sum(group.request_bytes for group in plan.groups)
    rows = [
        ["group", "kind", "layers", "page", "group page", "pages/request", "per request", "share"]
    ]
    for index, group in enumerate(plan.groups):
        rows.append(
            [
                str(index),
                group.kind,
                str(group.layers),
                human_bytes(group.page_size_bytes),
                human_bytes(group.group_page_bytes),
                str(group.pages_per_request),
                human_bytes(group.request_bytes),
                f"{100 * group.request_bytes / total:.1f}%",
            ]
        )
    lines = [head, "", render_table(rows, right=(0, 2, 3, 4, 5, 6, 7)), ""]
    if inputs.pipeline_parallel_size > 1:
        stage_rows = [["stage", "layers", "budget", "page index", "pages"]]
        for stage in plan.stages:
            stage_rows.append(
                [
                    str(stage.stage),
                    f"{stage.first_layer}..{stage.last_layer} ({stage.layers})",
                    human_bytes(stage.available_bytes),
                    human_bytes(stage.bytes_per_page),
                    str(stage.num_pages),
                ]
            )
        lines += [render_table(stage_rows, right=(0, 2, 3, 4)), ""]
    lines.append(_budget_line(inputs.available_bytes))
    lines.append(
        f"pages        {plan.num_pages} of {human_bytes(plan.bytes_per_page)} per page index "
        "(one is the null page)"
    )
    lines.append(
        f"concurrency  {plan.max_concurrency:.2f} requests of {inputs.max_model_len} tokens"
    )
    tokens = f"tokens       {plan.kv_cache_size_tokens}"
    if plan.padding_layers:
        tokens += (
            f"; padding: {plan.padding_layers} empty layer slot(s), "
            f"{human_bytes(plan.padding_bytes)} of each request"
        )
    lines.append(tokens)
    return "\n".join(lines)


def _budget_line(budgets: Sequence[int]) -> str:
    """The memory the plan is for: per rank, one figure or one per pipeline stage.

    >>> _budget_line([20 * 1024**3])
    'budget       20.00 GiB per rank (21474836480 bytes)'
    >>> _budget_line([2**30, 2**29])
    'budget       1.00 GiB, 512.00 MiB per rank, one per pipeline stage'
    """
    if len(set(budgets)) == 1:
        return f"budget       {human_bytes(budgets[0])} per rank ({budgets[0]} bytes)"
    shown = ", ".join(human_bytes(budget) for budget in budgets)
    return f"budget       {shown} per rank, one per pipeline stage"


def _describe(spec: object) -> str:
    if isinstance(spec, MambaSpec):
        shapes = " + ".join("x".join(map(str, shape)) for shape in spec.shapes)
        dtypes = ", ".join(spec.dtypes) if spec.dtypes else spec.dtype
        return f"state {shapes} ({dtypes})"
    heads = "1 latent" if getattr(spec, "use_mla", False) else f"{spec.num_kv_heads} KV heads"  # type: ignore[attr-defined]
    text = f"{heads} x {spec.head_size} {spec.dtype}"  # type: ignore[attr-defined]
    window = getattr(spec, "sliding_window", None)
    chunk = getattr(spec, "attention_chunk_size", None)
    if window:
        text += f", window {window}"
    if chunk:
        text += f", chunk {chunk}"
    return text


def layers_table(layers: HFLayers, tensor_parallel_size: int = 1) -> str:
    """A model's layers as people read them: one row per layer, then the per-token totals."""
    rows = [["layer", "kind", "spec (one rank)", "page", "bytes/token"]]
    no_cache = set(layers.no_cache)
    sharing = getattr(layers, "kv_sharing", {})
    count = len({name.split(".")[1] for name in layers.layer_names})  # decoder layers
    for name in layers.layer_names:
        if name in no_cache:
            rows.append([name, "none", "no cache (MLP / MoE block)", "", ""])
            continue
        if name in sharing:
            rows.append([name, "shared", f"reads {sharing[name]}'s KV cache", "", "0"])
            continue
        spec = layers[name]
        per_token = (
            "" if isinstance(spec, MambaSpec) else str(spec.page_size_bytes // spec.page_size)
        )
        rows.append(
            [name, spec.kind, _describe(spec), human_bytes(spec.page_size_bytes), per_token]
        )
    lines = [
        f"{printable(layers.model_type, NAME_LIMIT)}: {count} layers, cache dtype {layers.dtype}, "
        f"tp={tensor_parallel_size}",
        "",
        render_table(rows, right=(3, 4)),
        "",
        f"KV bytes per token   {layers.kv_bytes_per_token()} ({human_bytes(layers.kv_bytes_per_token())})",
    ]
    if layers.state_bytes_per_request():
        state = layers.state_bytes_per_request()
        lines.append(f"state per request    {state} ({human_bytes(state)})")
    if no_cache:
        lines.append(f"without a cache      {len(no_cache)} layer(s)")
    if sharing:
        lines.append(f"sharing a KV cache   {len(sharing)} layer(s)")
    for note in getattr(layers, "notes", ()):
        lines.append(f"note: {note}")
    return "\n".join(lines)
