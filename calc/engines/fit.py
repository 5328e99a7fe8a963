"""Fitting a model to the GPUs as llama.cpp's ``--fit`` does (and Ollama, which runs it).

llama.cpp from build b7437 (https://github.com/ggml-org/llama.cpp/pull/16653, common/fit.cpp)
adjusts the settings the user left alone until every GPU keeps a margin free (1024 MiB by
default, ``--fit-target``):

1. if the projected use already leaves the margin, nothing changes;
2. a context left at its default shrinks, by linear interpolation between the model's trained
   length and ``--fit-ctx`` (4096), rounded down to 256 tokens; on one GPU that is the end if the
   model then fits; with several GPUs the target keeps back (GPUs + 1) x one layer / 2 (dense)
   or / 6 (MoE);
3. if the user set ``-ngl``, ``--tensor-split``, ``-ot``, ``--cpu-moe`` or ``--n-cpu-moe``, it stops
   there ("already set by user, abort");
4. layers fill the GPUs from the last GPU backwards, the output layer first; for a MoE model
   every layer first goes on "dense-only" (its experts in CPU RAM), then layers take their
   experts back, front to back, while they fit.

We measure each candidate with our own estimate where llama.cpp measures a dry-run load. It
also fits part of one more layer (its ffn_up or ffn_gate); we stop at whole layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from calc.breakdown import Estimate
from calc.engines.base import Engine
from calc.layout import WeightLayout
from calc.placement import Offload
from calc.plan import Plan
from calc.records import record, replace
from calc.units import MIB

Estimator = Callable[[Plan], Estimate]

FIT_TARGET_BYTES = 1024 * MIB  # common.h: fit_params_target = 1024 * 1024*1024 per device
FIT_MIN_CONTEXT = 4096  # common.h: fit_params_min_ctx
CONTEXT_ALIGN = 256  # "round down context for CUDA backend"


@record
class FitRules:
    """How one engine fits: the margin kept free per GPU and the smallest context it shrinks a
    default context to (None: it never shrinks the context)."""

    margin: int = FIT_TARGET_BYTES
    min_context: int | None = FIT_MIN_CONTEXT
    experts_first: bool = True  # MoE layers go on without their experts first


def shortfall(estimate: Estimate, margin: int) -> int:
    """Bytes over (capacity - margin) summed over the GPUs that overflow; 0 when all fit."""
    over = 0
    for device in estimate.devices:
        capacity = device.device.capacity_bytes or 0
        over += max(0, device.total_bytes - (capacity - margin))
    return over


def fits(estimate: Estimate, margin: int) -> bool:
    return shortfall(estimate, margin) == 0


def fit_context(
    plan: Plan, run: Estimator, layout: WeightLayout, rules: FitRules
) -> tuple[Plan, bool]:
    """Step 2: the default context shrunk until the model fits; and whether it now fits."""
    low = rules.min_context
    if low is None or plan.context <= low:
        return plan, fits(run(plan), rules.margin)
    high_use = sum(d.total_bytes for d in run(plan).devices)
    small = replace(plan, context=low)
    low_use = sum(d.total_bytes for d in run(small).devices)
    devices = plan.devices
    target = sum((d.capacity_bytes or 0) - rules.margin for d in devices)
    if len(devices) > 1:
        per_layer = max(layout.layer_bytes, default=0)
        target -= (len(devices) + 1) * per_layer // (6 if plan.arch.moe else 2)
    if low_use > target or high_use <= low_use:
        return small, fits(run(small), rules.margin)
    context = low + (plan.context - low) * (target - low_use) // (high_use - low_use)
    context = max(context - context % CONTEXT_ALIGN, low)
    chosen = replace(plan, context=min(context, plan.context))
    return chosen, fits(run(chosen), rules.margin)


def with_offload(plan: Plan, **changes: object) -> Plan:
    options = plan.options
    assert isinstance(options, Offload)
    return replace(plan, options=replace(options, **changes))  # type: ignore[arg-type]


def fit_layers(plan: Plan, run: Estimator, rules: FitRules) -> Plan:
    """Step 4: whole layers per GPU, last GPU first (the output layer with it); MoE layers go
    on without their experts first, then take them back front to back while they fit."""
    layers = plan.arch.num_layers
    moe = plan.arch.moe is not None and rules.experts_first
    base = with_offload(plan, cpu_moe_last=layers if moe else 0)
    counts = _counts_per_gpu(base, run, rules)
    placed = sum(counts)
    output = placed > layers  # the last GPU's first slot is the output layer
    split = tuple(float(c) for c in _decoder_counts(counts, output))
    chosen = with_offload(
        base, gpu_layers=placed, tensor_split=split if len(counts) > 1 and sum(split) > 0 else None
    )
    if not moe or not output or not fits(run(chosen), rules.margin):
        return chosen
    full = largest_true(lambda k: _pack(base, run, rules, k) is not None, layers)
    packed = _pack(base, run, rules, full)
    assert packed is not None  # full = 0 packs: it is the dense-only fit above
    return packed


def _pack(plan: Plan, run: Estimator, rules: FitRules, full: int) -> Plan | None:
    """Every layer on the GPUs, the first ``full`` with their experts: GPUs take runs of layers
    in order, each as many as it holds ("device 0 is filled first"); None if they do not fit."""
    layers = plan.arch.num_layers
    trial = with_offload(plan, gpu_layers=layers + 1, cpu_moe_last=layers - full)
    devices = len(plan.devices)
    if devices == 1:
        return trial if fits(run(trial), rules.margin) else None
    counts = [0] * devices
    start = 0
    for index in range(devices - 1):

        def holds(n: int, index: int = index, start: int = start) -> bool:
            shares = [*counts[:index], n, layers - start - n, *[0] * (devices - index - 2)]
            candidate = with_offload(trial, tensor_split=tuple(float(c) for c in shares))
            device = run(candidate).devices[index]
            return device.total_bytes <= (device.device.capacity_bytes or 0) - rules.margin

        counts[index] = largest_true(holds, layers - start)
        start += counts[index]
    counts[-1] = layers - start
    if counts[-1] == 0:
        counts[-1], counts[-2] = 1, counts[-2] - 1  # the output layer needs a decoder layer there
    packed = with_offload(trial, tensor_split=tuple(float(c) for c in counts))
    return packed if fits(run(packed), rules.margin) else None


def _counts_per_gpu(plan: Plan, run: Estimator, rules: FitRules) -> list[int]:
    """Layer slots (decoder layers plus the output layer) each GPU holds, filled from the last
    GPU backwards, each with as many of the remaining highest slots as fit."""
    slots = plan.arch.num_layers + 1
    counts = [0] * len(plan.devices)
    remaining = slots
    for index in reversed(range(len(plan.devices))):

        def fits_count(n: int, index: int = index, remaining: int = remaining) -> bool:
            trial = list(counts)
            trial[index] = n
            return _device_fits(plan, run, rules, trial, index)

        counts[index] = largest_true(fits_count, remaining)
        remaining -= counts[index]
    return counts


def _device_fits(
    plan: Plan, run: Estimator, rules: FitRules, counts: Sequence[int], index: int
) -> bool:
    placed = sum(counts)
    layers = plan.arch.num_layers
    output = placed > layers
    split = _decoder_counts(counts, output)
    if placed == 0:
        return True
    trial = with_offload(
        plan,
        gpu_layers=placed,
        tensor_split=tuple(float(c) for c in split) if len(counts) > 1 else None,
    )
    if sum(split) == 0 and len(counts) > 1:
        trial = with_offload(trial, tensor_split=None)
    device = run(trial).devices[index]
    return device.total_bytes <= (device.device.capacity_bytes or 0) - rules.margin


def _decoder_counts(counts: Sequence[int], output: bool) -> list[int]:
    """Decoder layers per GPU: the last GPU's first slot is the output layer when it is on."""
    split = list(counts)
    if output and split:
        split[-1] -= 1
    return split


def largest_true(ok: Callable[[int], bool], limit: int) -> int:
    """The largest n in 0..limit with ok(n), for ok true up to some n and false above."""
    if ok(limit):
        return limit
    low, high = 0, limit
    while high - low > 1:
        middle = (low + high) // 2
        if ok(middle):
            low = middle
        else:
            high = middle
    return low


def run_fit(
    engine: Engine[Any, Any],
    plan: Plan,
    asked: Any,
    layout: WeightLayout,
    rules: FitRules,
    *,
    who: str = "llama.cpp's --fit",
) -> tuple[Plan, tuple[str, ...]]:
    """llama.cpp's --fit (calc.engines.fit) on ``plan``, with the notes that say what it did."""

    def run(candidate: Plan) -> Estimate:
        return engine.estimate(candidate, layout)

    if fits(run(plan), rules.margin):
        return plan, ()
    notes = []
    before = plan.context
    if asked.context is None and rules.min_context is not None:
        plan, done = fit_context(plan, run, layout, rules)
        if plan.context != before:
            notes.append(f"{who} shrank the context from {before} to {plan.context}")
        if done and len(plan.devices) == 1:
            return plan, tuple(notes)
    set_by_user = [
        flag
        for flag, value in (
            ("-ngl", asked.gpu_layers),
            ("--tensor-split", asked.tensor_split),
            ("--n-cpu-moe", asked.cpu_moe_layers),
        )
        if value
    ]
    if set_by_user:
        notes.append(f"{who} leaves the layers alone: {set_by_user[0]} is set")
        return plan, tuple(notes)
    plan = fit_layers(plan, run, rules)
    options = engine.options_of(plan)
    layers = plan.arch.num_layers
    placed = min(options.gpu_layers or 0, layers + 1)
    notes.append(
        f"{who} puts {placed} of {layers + 1} layers (the output layer counted) on the GPUs, "
        f"keeping {rules.margin // MIB} MiB free on each"
    )
    return plan, tuple(notes)
