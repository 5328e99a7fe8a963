"""What would fit: the longest context, the best weight format, the number of these GPUs.

Each answer re-runs the estimate with one input changed, so it is exactly what the estimator
would say for that input. Weight layouts are memoised by the caller, which keeps a search to a
few dozen cheap estimates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from calc._errors import CalcError
from calc.api import loadable_formats, resolve, resolve_architecture, run_finetune
from calc.breakdown import Estimate
from calc.catalogue import Catalogue
from calc.estimate import LayoutMemo, estimate_inference, layout_for
from calc.finetune import FinetuneRequest
from calc.plan import MAX_CONTEXT, MAX_GPUS, Plan
from calc.records import record, replace
from calc.requests import InferenceRequest

# Weight formats tried for "the best format that fits", from most to least faithful.
# GGUF files for llama.cpp and Ollama; checkpoint formats for vLLM and transformers.
# MLX's conversions sit beside the GGUF types of the same bits.
FORMAT_LADDER = (
    "fp16",
    "bf16",
    "fp8_e4m3",
    "q8_0",
    "mlx_q8",
    "int8",
    "q6_k",
    "mlx_q6",
    "q5_k_m",
    "mlx_q5",
    "q4_k_m",
    "mlx_q4",
    "awq_4bit_g128",
    "gptq_4bit_g128",
    "nvfp4",
    "mxfp4",
    "nf4",
    "iq4_xs",
    "q3_k_m",
    "mlx_q3",
    "q2_k",
    "mlx_q2",
    "iq2_xxs",
)


@record
class FitHint:
    """Answers for a setup whose GPU memory is known; None where nothing fits."""

    fits: bool
    max_context: int | None  # longest context per sequence that fits, same everything else
    best_weights: str | None  # the most faithful format in FORMAT_LADDER that fits
    gpus_needed: int | None  # how many of these GPUs the setup needs (when it does not fit)
    # fewer GPUs with the layers split into pipeline stages too: (tensor parallel, stages)
    pipeline: tuple[int, int] | None = None

    def to_json(self) -> dict[str, object]:
        pipeline = None
        if self.pipeline is not None:
            tp, pp = self.pipeline
            pipeline = {"gpus": tp * pp, "tensor_parallel": tp, "pipeline_parallel": pp}
        return {
            "fits": self.fits,
            "max_context": self.max_context,
            "best_weights": self.best_weights,
            "gpus_needed": self.gpus_needed,
            "pipeline": pipeline,
        }


def _headroom(plan: Plan, layouts: LayoutMemo) -> int | None:
    """The smallest headroom over the GPUs (negative: short by that much); None if invalid."""
    try:
        return least_headroom(estimate_inference(plan, layouts=layouts, speed=False))
    except CalcError:
        return None


def least_headroom(estimate: Estimate) -> int:
    """The fullest GPU's headroom (negative: short by that much)."""
    return min(d.headroom_bytes or 0 for d in estimate.devices)


def _fits(plan: Plan, layouts: LayoutMemo) -> bool:
    headroom = _headroom(plan, layouts)
    return headroom is not None and headroom >= 0


def longest_context(
    plan: Plan, layouts: LayoutMemo, *, limit: int, room: int | None = None
) -> int | None:
    """The largest context per sequence that fits, up to ``limit``; None if none does.

    Memory never shrinks as the context grows, and the engine allocates the cache in steps
    (``kv_step``), so the answer is a whole number of steps (or the limit). The search
    runs over steps by false position (Illinois variant): headroom falls almost linearly with
    the context, so a handful of estimates pin the boundary exactly. ``room``, the plan's own
    headroom where the caller has its estimate, bounds the search from one side for free.
    """
    step = plan.engine.kv_step(plan)

    def headroom(units: int) -> float:
        context = min(units * step, limit)
        value = _headroom(replace(plan, context=context), layouts)
        return -1.0 if value is None else float(value)

    known = None
    if room is not None and plan.context <= limit:
        # fitting at the plan's context, the whole steps below it fit; short, the steps above
        at = plan.context // step if room >= 0 else -(-plan.context // step)
        known = (at, float(room))
    units = largest_fitting(headroom, -(-limit // step), known=known)
    return None if units is None else min(units * step, limit)


def largest_fitting(
    headroom: Callable[[int], float], limit: int, *, known: tuple[int, float] | None = None
) -> int | None:
    """The largest n in 1..limit whose headroom is >= 0, for a headroom that never grows with
    n; None if n = 1 does not fit. It runs by false position (Illinois variant): headroom falls
    almost linearly, so a handful of evaluations pin the boundary exactly. ``known`` is one
    point already measured, (n, headroom at n or less), which replaces an end's evaluation."""
    (low, low_room), (high, high_room) = _ends(headroom, limit, known)
    if low_room < 0:
        return None
    if high_room >= 0:
        return high
    kept = 0  # which end stayed put last time: +1 low, -1 high
    while high - low > 1:
        guess = low + int((high - low) * low_room / (low_room - high_room))
        guess = min(max(guess, low + 1), high - 1)
        room = headroom(guess)
        if room >= 0:
            low, low_room = guess, room
            if kept == -1:
                high_room /= 2
            kept = -1
        else:
            high, high_room = guess, room
            if kept == 1:
                low_room /= 2
            kept = 1
    return low


def _ends(
    headroom: Callable[[int], float], limit: int, known: tuple[int, float] | None
) -> tuple[tuple[int, float], tuple[int, float]]:
    """The search's two ends, (n, headroom): 1 and ``limit``, or the known point for one."""
    if known is not None and 1 <= known[0] <= limit:
        if known[1] >= 0:
            return known, (limit, headroom(limit))
        return (1, headroom(1)), known
    return (1, headroom(1)), (limit, headroom(limit))


def fewest_gpus(plan: Plan, layouts: LayoutMemo) -> int | None:
    """How many of these GPUs the setup needs: only counts the engine can run the model on;
    None for a GPU that shares a machine's memory (a Mac is not extended by another)."""
    device = plan.devices[0]
    if device.unified_memory:
        return None

    def fits_on(count: int) -> bool:
        if plan.engine.parallel_problem(plan.arch, count) is not None:
            return False
        return _fits(replace(plan, devices=(device,) * count), layouts)

    runnable = [
        n
        for n in range(len(plan.devices) + 1, MAX_GPUS + 1)
        if plan.engine.parallel_problem(plan.arch, n) is None
    ]
    if len(runnable) < MAX_GPUS - len(plan.devices):
        return next((n for n in runnable if fits_on(n)), None)
    return fewest(fits_on, len(plan.devices))


def fewest(fits_on: Callable[[int], bool], start: int) -> int | None:
    """The smallest count above ``start`` (which does not fit) that fits, for a setup where
    more GPUs never make a GPU fuller; None beyond MAX_GPUS. Doubling first, then bisecting,
    keeps the estimates few: most setups need a handful of GPUs."""
    low = start
    high = low * 2
    while not fits_on(min(high, MAX_GPUS)):
        if high >= MAX_GPUS:
            return None
        low, high = high, high * 2
    high = min(high, MAX_GPUS)
    while high - low > 1:
        middle = (low + high) // 2
        if fits_on(middle):
            high = middle
        else:
            low = middle
    return high


def fit_hint(
    catalogue: Catalogue, plan: Plan, layouts: LayoutMemo, estimate: Estimate | None = None
) -> FitHint | None:
    """None when the GPU memory is unknown; ``estimate``, the plan's own if the caller has it."""
    if any(d.capacity_bytes is None for d in plan.devices):
        return None
    room = _headroom(plan, layouts) if estimate is None else least_headroom(estimate)
    fits = room is not None and room >= 0
    limit = min(plan.arch.max_position_embeddings or MAX_CONTEXT, MAX_CONTEXT)
    max_context = None
    if not plan.engine.weights_only:
        max_context = longest_context(plan, layouts, limit=limit, room=room)
    best = None
    gpus_needed = None
    pipeline = None
    if not fits:
        accepted = {f.id: f for f in loadable_formats(catalogue, plan.engine)}
        for format_id in FORMAT_LADDER:
            if format_id in accepted and _fits(replace(plan, weights=accepted[format_id]), layouts):
                best = format_id
                break
        gpus_needed = fewest_gpus(plan, layouts)
        pipeline = plan.engine.pipeline_split(
            plan, layout_for(plan, layouts), gpus_needed or MAX_GPUS + 1
        )
    return FitHint(
        fits=fits,
        max_context=max_context,
        best_weights=best,
        gpus_needed=gpus_needed,
        pipeline=pipeline,
    )


def verified(catalogue: Catalogue, request: InferenceRequest, hint: FitHint) -> FitHint:
    """The hint with each suggestion run again as the reader would run it: the request with
    that one input changed, resolved afresh (an engine's defaults for more GPUs included). A
    GPU count that does not hold gives way to the next that does; a context or a format that
    does not hold is dropped rather than shown."""
    first_gpu = request.gpu.split(",")[0] if request.gpu else None

    def holds(**change: Any) -> bool:
        try:
            plan = resolve(catalogue, replace(request, **change))
            return bool(estimate_inference(plan, layouts=catalogue.layouts, speed=False).fits)
        except CalcError:
            return False

    gpus = hint.gpus_needed
    if gpus is not None and not holds(gpus=gpus, gpu=first_gpu):
        later = range(gpus + 1, MAX_GPUS + 1)
        gpus = next((n for n in later if holds(gpus=n, gpu=first_gpu)), None)
    context = hint.max_context
    if context is not None and context != request.context and not holds(context=context):
        context = None
    weights = hint.best_weights
    if weights is not None and not holds(weights=weights):
        weights = None
    return replace(hint, gpus_needed=gpus, max_context=context, best_weights=weights)


# Fine-tuning: the same questions, asked of the training estimate.
FINETUNE_SEQ_LIMIT = 1_048_576
# Tools that scale RoPE past a model's context by themselves, so that the longest sequence is
# bounded by memory alone: Unsloth ("We auto support RoPE Scaling internally!", its notebooks'
# max_seq_length comment; it trained Llama 3.1 8B on 342,733 tokens, past its 131,072).
ROPE_SCALING_TRAINERS = ("unsloth",)


@record
class FinetuneHint:
    fits: bool
    max_seq_len: int | None  # longest sequence per sample that fits, same everything else
    gpus_needed: int | None  # how many of these GPUs, sharded at `zero`, the setup needs
    zero: int  # the sharding gpus_needed assumes: the request's, or ZeRO-3 if it had none
    # adapters on a base loaded in fp32 that does not fit: would it, loaded in bf16? (None:
    # the question does not arise)
    fits_with_bf16_base: bool | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "fits": self.fits,
            "max_seq_len": self.max_seq_len,
            "gpus_needed": self.gpus_needed,
            "zero": self.zero,
            "fits_with_bf16_base": self.fits_with_bf16_base,
        }


def finetune_hint(
    catalogue: Catalogue, request: FinetuneRequest, where: Mapping[str, Any]
) -> FinetuneHint | None:
    """None when the GPU memory is unknown. More GPUs only help when something is sharded, so
    a request without ZeRO is answered for ZeRO-3."""

    def headroom(changed: FinetuneRequest) -> float:
        try:
            estimate = run_finetune(catalogue, changed, **where)
        except CalcError:
            return -1.0
        rooms = [d.headroom_bytes for d in estimate.devices]
        if any(room is None for room in rooms):
            return float("nan")
        return float(min(room or 0 for room in rooms))

    first = headroom(request)
    if math.isnan(first):  # no GPU memory to compare with
        return None
    fits = first >= 0
    _, arch = resolve_architecture(
        catalogue, InferenceRequest(model=where.get("model"), config=where.get("config"))
    )
    limit = min(arch.max_position_embeddings or FINETUNE_SEQ_LIMIT, FINETUNE_SEQ_LIMIT)
    if request.trainer in ROPE_SCALING_TRAINERS:
        limit = FINETUNE_SEQ_LIMIT
    max_seq = largest_fitting(lambda n: headroom(replace(request, seq_len=n)), limit)
    zero = request.zero or 3

    def fits_on(count: int) -> bool:
        return headroom(replace(request, gpus=count, zero=zero)) >= 0

    gpus_needed = bf16_base = None
    if not fits:
        gpus_needed = 1 if fits_on(1) else fewest(fits_on, 1)
        if request.weights_dtype == "fp32" and request.trains in ("lora", "qlora"):
            bf16_base = headroom(replace(request, weights_dtype="bf16")) >= 0
    return FinetuneHint(
        fits=fits,
        max_seq_len=max_seq,
        gpus_needed=gpus_needed,
        zero=zero,
        fits_with_bf16_base=bf16_base,
    )
