"""Memory and speed against context: the curve of one setup, and an SVG line chart of it.

The curve re-runs the estimate at contexts doubling from 1,024 tokens to the model's trained
length; the chart draws it on a log-2 context axis, with the GPUs' memory as a dashed line.
Text in the SVG is escaped here; nothing else reaches it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from math import floor, log2, log10

from calc.api import resolve
from calc.catalogue import Catalogue
from calc.estimate import LayoutMemo, estimate_inference
from calc.plan import MAX_CONTEXT
from calc.records import record, replace
from calc.requests import InferenceRequest

GIB = 2**30
FIRST_CONTEXT = 1024
WHATS = ("memory", "decode", "prefill")


@record
class Point:
    context: int
    total_bytes: int
    host_bytes: int  # what the engine keeps in CPU RAM (layers or experts it did not place)
    capacity_bytes: int | None  # the GPUs' memory together; None for a memory size alone
    decode_tokens_per_s: float | None
    prefill_tokens_per_s: float | None
    fits: bool | None


def context_curve(
    catalogue: Catalogue, request: InferenceRequest, *, layouts: LayoutMemo | None = None
) -> list[Point]:
    """The setup's figures at each context from 1,024 tokens, doubling, to
    the trained length (at most the estimator's MAX_CONTEXT)."""
    layouts = {} if layouts is None else layouts
    first = resolve(catalogue, request, layouts=layouts)
    longest = min(first.arch.max_position_embeddings or MAX_CONTEXT, MAX_CONTEXT)
    contexts = [FIRST_CONTEXT]
    while contexts[-1] * 2 <= longest:
        contexts.append(contexts[-1] * 2)
    if contexts[-1] < longest:
        contexts.append(longest)
    points = []
    for context in contexts:
        plan = resolve(catalogue, replace(request, context=context), layouts=layouts)
        estimate = estimate_inference(plan, layouts=layouts)
        capacities = [d.device.capacity_bytes for d in estimate.devices]
        speed = estimate.speed or {}
        points.append(
            Point(
                context=context,
                total_bytes=estimate.total_bytes,
                host_bytes=estimate.host_bytes,
                capacity_bytes=None if None in capacities else sum(c or 0 for c in capacities),
                decode_tokens_per_s=speed.get("decode_tokens_per_s"),
                prefill_tokens_per_s=speed.get("prefill_tokens_per_s"),
                fits=estimate.fits,
            )
        )
    return points


# The drawing: a 640 x 300 canvas, the plot inside these margins.
WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 20, 34, 44


def svg_chart(name: str, points: Sequence[Point], what: str) -> str:
    """One line chart of ``what`` (memory, decode or prefill) against context, as SVG text."""
    if what not in WHATS:
        raise ValueError(f"what must be one of {', '.join(WHATS)}")
    values = [_value(p, what) for p in points]
    shown = [(p, v) for p, v in zip(points, values, strict=True) if v is not None]
    unit = "GiB" if what == "memory" else "tokens/s"
    titles = {
        "memory": "GPU memory against context",
        "decode": "generation speed against context (one sequence)",
        "prefill": "prompt speed against context (a prompt of that length)",
    }
    title = f"{name}: {titles[what]}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="vram-chart" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="18" class="vram-chart__title">{escape(title)}</text>',
    ]
    if not shown:
        parts.append(f'<text x="{LEFT}" y="{HEIGHT // 2}">no figures for this setup</text></svg>')
        return "".join(parts)
    capacity = (
        points[0].capacity_bytes / GIB if what == "memory" and points[0].capacity_bytes else 0
    )
    host_top = max(p.host_bytes for p in points) / GIB if what == "memory" else 0.0
    top = _nice(max(max(v for _, v in shown), capacity, host_top) * 1.1)
    x_of = _x_scale([p.context for p in points])

    def y_of(value: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)

    parts += _axes(points, x_of, y_of, top, unit)
    if what == "memory":
        parts += _memory_lines(points, capacity, x_of, y_of)
    parts += _curve(shown, what, x_of, y_of)
    parts.append("</svg>")
    return "".join(parts)


def _memory_lines(points: Sequence[Point], capacity: float, x_of: Scale, y_of: Scale) -> list[str]:
    """The GPUs' memory as a dashed line, and CPU RAM dotted where the engine keeps some."""
    out = []
    if capacity:
        y = y_of(capacity)
        out.append(
            f'<line class="vram-chart__limit" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" '
            f'y2="{y:.1f}" stroke="currentColor" stroke-dasharray="6 4" opacity="0.6"/>'
            f'<text x="{WIDTH - RIGHT}" y="{y - 4:.1f}" text-anchor="end" font-size="11">'
            f"GPU memory {capacity:.1f} GiB</text>"
        )
    if any(p.host_bytes for p in points):
        host = " ".join(f"{x_of(p.context):.1f},{y_of(p.host_bytes / GIB):.1f}" for p in points)
        last = points[-1]
        out.append(
            f'<polyline class="vram-chart__host" fill="none" stroke="currentColor" '
            f'stroke-width="1.5" stroke-dasharray="2 3" points="{host}"/>'
            f'<text x="{x_of(last.context) - 4:.1f}" y="{y_of(last.host_bytes / GIB) - 6:.1f}" '
            f'text-anchor="end" font-size="11">CPU RAM</text>'
        )
    return out


def _curve(shown: Sequence[tuple[Point, float]], what: str, x_of: Scale, y_of: Scale) -> list[str]:
    """The line, and a point per context (hollow where the setup does not fit)."""
    path = " ".join(f"{x_of(p.context):.1f},{y_of(v):.1f}" for p, v in shown)
    out = [
        f'<polyline class="vram-chart__line" fill="none" stroke="currentColor" '
        f'stroke-width="2" points="{path}"/>'
    ]
    for p, v in shown:
        state = "no" if p.fits is False else "yes"
        out.append(
            f'<circle class="vram-chart__point" data-fits="{state}" cx="{x_of(p.context):.1f}" '
            f'cy="{y_of(v):.1f}" r="3.5" fill="{"none" if p.fits is False else "currentColor"}" '
            f'stroke="currentColor"><title>{p.context:,} tokens: {_label(v, what)}'
            f"{' (does not fit)' if p.fits is False else ''}</title></circle>"
        )
    return out


def _value(point: Point, what: str) -> float | None:
    if what == "memory":
        return point.total_bytes / GIB
    return point.decode_tokens_per_s if what == "decode" else point.prefill_tokens_per_s


def _label(value: float, what: str) -> str:
    if what == "memory":
        return f"{value:.1f} GiB ({value * GIB / 1e9:.1f} GB)"
    return f"{value:,.1f} tokens/s"


Scale = Callable[[float], float]


def _x_scale(contexts: Sequence[int]) -> Scale:
    low, high = log2(contexts[0]), log2(contexts[-1])
    span = (high - low) or 1.0

    def x_of(context: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * (log2(context) - low) / span

    return x_of


def _nice(value: float) -> float:
    """The smallest round number (1, 1.5, 2 ... 8 x 10^n) at or above ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** floor(log10(value))
    return float(next(m * power for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * power >= value))


def _axes(points: Sequence[Point], x_of: Scale, y_of: Scale, top: float, unit: str) -> list[str]:
    bottom = HEIGHT - BOTTOM
    out = [
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom}" y2="{bottom}" '
        f'stroke="currentColor" opacity="0.5"/>',
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{bottom}" stroke="currentColor" '
        f'opacity="0.5"/>',
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle" '
        f'font-size="12">context (tokens)</text>',
        f'<text x="14" y="{(TOP + bottom) / 2:.0f}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 14 {(TOP + bottom) / 2:.0f})">{unit}</text>',
    ]
    for p in points:
        x = x_of(p.context)
        label = f"{p.context // 1024}K" if p.context % 1024 == 0 else f"{p.context:,}"
        out.append(
            f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" font-size="11">'
            f"{label}</text>"
        )
    for i in range(6):
        value = top * i / 5
        y = y_of(value)
        text = f"{value:,.0f}" if top >= 10 else f"{value:.1f}"
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="currentColor" opacity="0.1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{text}</text>'
        )
    return out
