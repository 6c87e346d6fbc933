"""A plan as a picture: plain SVG, no plotting library.

Left: one request of ``max_model_len`` tokens as two stacked bars — its memory by group and its
pages by group.  Right: the capacity curve — how many requests the planned pages hold at once
for each ``max_model_len`` (both axes logarithmic), with the planned length marked.

>>> from kvschema import FullAttentionSpec, plan_cache
>>> spec = FullAttentionSpec(page_size=16, num_kv_heads=8, head_size=128, dtype="bf16")
>>> plan = plan_cache({"layer.0": spec}, available_bytes=2**30, max_model_len=8192,
...                   max_num_batched_tokens=2048)
>>> svg = plan_chart(plan, title="one layer")
>>> svg.startswith("<svg") and "max concurrency" in svg
True
"""

from __future__ import annotations

import math
from html import escape

from kvschema.planning.plan import CachePlan
from kvschema.reading.text import printable
from kvschema.render.units import human_bytes

__all__ = ["plan_chart"]

_WIDTH, _HEIGHT = 960, 420
_COLOURS = {
    "sliding_window": ["#1f77b4", "#4a90c8", "#7aaedb", "#a6c8e8", "#2c5f8a", "#5b8fb9"],
    "full_attention": ["#e6761b", "#f0a05a", "#b85c12"],
    "local_attention": ["#2ca02c", "#62c462", "#1e7a1e"],
    "mamba": ["#8e5cc4", "#a97fd6", "#6e3fa3", "#c2a3e6", "#5a2f8a", "#9b71cf", "#7c4fb3"],
    "uniform_type": ["#7f7f7f"],
}
_FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'


def _text(
    x: float, y: float, text: str, size: int = 12, anchor: str = "start", **extra: str
) -> str:
    attrs = "".join(f' {key.replace("_", "-")}="{value}"' for key, value in extra.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" {_FONT}{attrs}>'
        f"{escape(text)}</text>"
    )


def _colour(kind: str, seen: dict[str, int]) -> str:
    palette = _COLOURS.get(kind, ["#999999"])
    index = seen.get(kind, 0)
    seen[kind] = index + 1
    return palette[index % len(palette)]


def _tokens(value: int) -> str:
    if value >= 1024 and value % 1024 == 0:
        return f"{value // 1024}k"
    return f"{value:,}"


def plan_chart(plan: CachePlan, *, title: str | None = None) -> str:
    """The SVG text of a plan's chart (see the module docstring)."""
    inputs = plan.inputs
    heading = printable(title or f"{sum(g.layers for g in plan.groups)} layers", 200)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img">',
        f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="white"/>',
        _text(20, 28, heading, 16, font_weight="bold"),
        _text(
            20,
            48,
            f"{inputs.strategy} layout, tp={inputs.tensor_parallel_size} "
            f"pp={inputs.pipeline_parallel_size}; {plan.num_pages:,} pages of "
            f"{human_bytes(plan.bytes_per_page)} in {human_bytes(sum(inputs.available_bytes) // len(inputs.available_bytes))} "
            f"per rank; max_model_len {inputs.max_model_len:,}",
            12,
            fill="#444444",
        ),
    ]
    if not plan.has_kv_cache:
        parts += [
            _text(20, 90, "no KV cache: no layer keeps one (an attention-free model)"),
            "</svg>",
        ]
        return "\n".join(parts) + "\n"
    parts += _bars(plan)
    parts += _curve(plan)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _bars(plan: CachePlan) -> list[str]:
    left, top, width, height = 30, 112, 380, 34
    seen: dict[str, int] = {}
    colours = [_colour(group.kind, seen) for group in plan.groups]
    total_bytes = sum(group.request_bytes for group in plan.groups)
    total_pages = sum(plan.pages_per_request)
    out = [
        _text(
            left,
            72,
            f"One request of {plan.inputs.max_model_len:,} tokens",
            13,
            font_weight="bold",
        )
    ]
    rows = [
        (
            "memory by group",
            [g.request_bytes for g in plan.groups],
            total_bytes,
            human_bytes(total_bytes),
        ),
        ("pages by group", plan.pages_per_request, total_pages, f"{total_pages:,} pages"),
    ]
    for row, (label, values, total, shown) in enumerate(rows):
        y = top + row * (height + 38)
        out.append(_text(left, y - 5, f"{label}: {shown}", 12))
        x = float(left)
        for value, colour in zip(values, colours, strict=True):
            span = width * value / total if total else 0
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{span:.1f}" height="{height}" '
                f'fill="{colour}" stroke="white" stroke-width="1"/>'
            )
            x += span
        out.append(
            f'<rect x="{left}" y="{y:.1f}" width="{width}" height="{height}" fill="none" '
            'stroke="#333333" stroke-width="1"/>'
        )
    legend_top = top + 2 * (height + 38) + 6
    out.append(
        _text(left, legend_top, "groups (layers, pages per request, share)", 12, font_weight="bold")
    )
    per_column = 6
    for index, (group, colour) in enumerate(zip(plan.groups, colours, strict=True)):
        column, line = divmod(index, per_column)
        if column > 2:
            out.append(
                _text(
                    left,
                    legend_top + 18 * (per_column + 1),
                    f"... and {len(plan.groups) - index} more",
                    11,
                )
            )
            break
        x = left + column * 130
        y = legend_top + 16 + line * 18
        share = 100 * group.request_bytes / total_bytes if total_bytes else 0
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
        out.append(
            _text(
                x + 17,
                y,
                f"{index} {group.kind.split('_')[0]} {group.layers}L {group.pages_per_request}p {share:.0f}%",
                10,
            )
        )
    return out


def _curve(plan: CachePlan) -> list[str]:
    left, top, width, height = 530, 90, 390, 250
    planned = plan.inputs.max_model_len
    low = 256
    high = max(planned * 4, 4096)
    steps = 48
    lengths = sorted(
        {round(low * (high / low) ** (i / steps)) for i in range(steps + 1)} | {planned}
    )
    points = [(length, plan.concurrency_at(length)) for length in lengths]
    values = [value for _, value in points if value > 0]
    y_low = 10 ** math.floor(math.log10(min(values))) if values else 0.1
    y_high = 10 ** math.ceil(math.log10(max(values))) if values else 10
    if y_high <= y_low:
        y_high = y_low * 10

    def px(length: int) -> float:
        return left + width * math.log(length / low) / math.log(high / low)

    def py(value: float) -> float:
        value = max(value, y_low)
        return top + height - height * math.log(value / y_low) / math.log(y_high / y_low)

    out = [
        _text(left, 72, "Capacity for this budget", 13, font_weight="bold"),
        f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#333333"/>',
    ]
    decade = y_low
    while decade <= y_high * 1.0001:
        for step in (1, 2, 5):
            value = decade * step
            if value > y_high * 1.0001:
                break
            y = py(value)
            shade = "#cccccc" if step == 1 else "#eeeeee"
            out.append(
                f'<line x1="{left}" y1="{y:.1f}" x2="{left + width}" y2="{y:.1f}" stroke="{shade}"/>'
            )
            out.append(_text(left - 6, y + 4, f"{value:g}", 10, "end"))
        decade *= 10
    length = low
    while length <= high:
        x = px(length)
        out.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + height}" stroke="#eeeeee"/>'
        )
        out.append(_text(x, top + height + 16, _tokens(length), 10, "middle"))
        length *= 4
    path = " ".join(
        f"{'M' if i == 0 else 'L'}{px(n):.1f},{py(v):.1f}" for i, (n, v) in enumerate(points)
    )
    out.append(f'<path d="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    here = plan.concurrency_at(planned)
    out.append(f'<circle cx="{px(planned):.1f}" cy="{py(here):.1f}" r="5" fill="#e6761b"/>')
    near_right = px(planned) > left + width * 0.55
    out.append(
        _text(
            px(planned) + (-8 if near_right else 8),
            py(here) - 10,
            f"{here:.2f} requests at {planned:,} tokens",
            11,
            "end" if near_right else "start",
            fill="#b85c12",
        )
    )
    out.append(
        _text(
            left + width / 2, top + height + 36, "max_model_len (tokens, log scale)", 12, "middle"
        )
    )
    out.append(
        f'<text x="{left - 40}" y="{top + height / 2:.1f}" font-size="12" text-anchor="middle" {_FONT} '
        f'transform="rotate(-90 {left - 40} {top + height / 2:.1f})">max concurrency (requests, log scale)</text>'
    )
    return out
