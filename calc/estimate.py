"""Inference memory from a resolved plan: the engine places the weights and KV cache and adds
its buffers; this module supplies the weight layout (memoised) and the defaults note.

parse (architecture) -> tensors -> layout -> plan (``calc.api.resolve``) -> engine ->
:class:`Estimate`.
Nothing here formats bytes or reads a file.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from calc.breakdown import Estimate
from calc.layout import ExpertPadding, WeightLayout, weight_layout
from calc.plan import Plan
from calc.records import replace
from calc.speed import estimate_serving, estimate_speed

# Weight layouts already computed, by (model key, format id, padding); a caller that estimates
# the same model many times (the browser, the site build, the hints) passes one in.
LayoutMemo = MutableMapping[tuple[str, str, ExpertPadding | None], WeightLayout]


def layout_for(plan: Plan, layouts: LayoutMemo | None = None) -> WeightLayout:
    """The plan's weight layout, as its engine pads it for these GPUs."""
    padding = plan.engine.expert_padding(plan.weights.id, len(plan.devices))
    key = (plan.model_key, plan.weights.id, padding)
    layout = layouts.get(key) if layouts is not None else None
    if layout is None:
        layout = weight_layout(plan.arch, plan.weights, plan.storage_types, padding)
        if layouts is not None:
            layouts[key] = layout
    return layout


def estimate_inference(
    plan: Plan, *, layouts: LayoutMemo | None = None, speed: bool = True
) -> Estimate:
    """Memory to serve ``plan.batch`` sequences of ``plan.context`` tokens with the plan's
    engine on its GPUs; the first note names the defaults the plan applied. Without ``speed``
    the speed and the serving capacity are left out (the hints' searches ask for memory only).
    """
    layout = layout_for(plan, layouts)
    estimate = plan.engine.estimate(plan, layout)
    if speed and not plan.engine.weights_only:
        rates = estimate_speed(plan, layout, estimate, backend=plan.backend)
        if rates is not None:
            estimate = replace(estimate, speed=rates.to_json())
        serving = estimate_serving(plan, layout, estimate, backend=plan.backend)
        if serving is not None:
            estimate = replace(estimate, serving=serving.to_json())
    notes = list(plan.notes)
    if plan.ram_bytes is not None:
        estimate = replace(estimate, ram_bytes=plan.ram_bytes)
        if estimate.host_fits is False:
            notes.append(
                f"what stays in CPU RAM ({estimate.host_bytes / 2**30:.1f} GiB) does not fit the "
                f"{plan.ram_bytes / 2**30:.1f} GiB of RAM given"
            )
    first = plan.defaults_note()
    if first is not None:
        notes.insert(0, first)
    return replace(estimate, notes=(*notes, *estimate.notes)) if notes else estimate
