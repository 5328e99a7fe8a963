"""What to run on given hardware: the offload plan llama.cpp's --fit (or Ollama's scheduler)
would choose and the fastest one that fits, and every catalogue model ranked for a set of GPUs.

Each candidate is the estimator run again with one setting changed (-ngl, --n-cpu-moe, the
weight format, the context), so the planner never disagrees with the estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from calc._errors import CalcError
from calc.api import resolve
from calc.breakdown import Estimate
from calc.catalogue import Catalogue
from calc.engines import engine_by_name
from calc.engines.fit import largest_true
from calc.estimate import LayoutMemo, estimate_inference
from calc.hints import FORMAT_LADDER, longest_context
from calc.records import record, replace
from calc.requests import InferenceRequest
from calc.tensors import count_parameters


@record
class Choice:
    """One way to run the model: where its layers and experts go, and what that gives."""

    label: str
    gpu_layers: int | None  # layers on the GPUs (None: all and the output layer)
    cpu_moe_layers: int  # the first N layers' routed experts in host RAM
    context: int
    fits: bool | None
    gpu_bytes: int
    host_bytes: int
    decode_tokens_per_s: float | None
    prefill_tokens_per_s: float | None

    def flags(self, option: str) -> str:
        """The settings that give this placement, with the engine's layer option ("-ngl" for
        llama.cpp, "num_gpu" for Ollama, "" for engines that do not move layers)."""
        if option != "-ngl":
            layers = "" if self.gpu_layers is None else f"{option} {self.gpu_layers}"
            return layers if option else ""
        words = [f"-c {self.context}"]
        words.append("-ngl 999" if self.gpu_layers is None else f"-ngl {self.gpu_layers}")
        if self.cpu_moe_layers:
            words.append(f"--n-cpu-moe {self.cpu_moe_layers}")
        return " ".join(words)

    def to_json(self, option: str) -> dict[str, Any]:
        return {
            "label": self.label,
            "gpu_layers": self.gpu_layers,
            "cpu_moe_layers": self.cpu_moe_layers,
            "context": self.context,
            "fits": self.fits,
            "gpu_bytes": self.gpu_bytes,
            "host_bytes": self.host_bytes,
            "decode_tokens_per_s": self.decode_tokens_per_s,
            "prefill_tokens_per_s": self.prefill_tokens_per_s,
            "flags": self.flags(option),
        }


def _choice(label: str, request: InferenceRequest, estimate: Estimate, layers: int) -> Choice:
    """A placement as the estimate made it (llama.cpp's --fit may have moved layers)."""
    speed = estimate.speed or {}
    on_gpus = sum(len(d.layers) for d in estimate.devices)
    gpu_layers = request.gpu_layers
    if gpu_layers is None and on_gpus < layers:
        gpu_layers = on_gpus
    return Choice(
        label=label,
        gpu_layers=None if gpu_layers is not None and gpu_layers > layers else gpu_layers,
        cpu_moe_layers=request.cpu_moe_layers or 0,
        context=estimate.context,
        fits=estimate.fits,
        gpu_bytes=estimate.total_bytes,
        host_bytes=estimate.host_bytes,
        decode_tokens_per_s=speed.get("decode_tokens_per_s"),
        prefill_tokens_per_s=speed.get("prefill_tokens_per_s"),
    )


def plan_offload(
    catalogue: Catalogue, request: InferenceRequest, *, layouts: LayoutMemo | None = None
) -> list[Choice]:
    """The engine's own placement, then, for llama.cpp and Ollama, the fastest of: every layer
    on the GPUs with the fewest layers' experts in host RAM (MoE), and the most layers on the
    GPUs; both at the context the engine settled on."""
    layouts = {} if layouts is None else layouts
    plan = resolve(catalogue, request, layouts=layouts)
    own = estimate_inference(plan, layouts=layouts)
    label = plan.engine.own_placement
    layers = plan.arch.num_layers
    choices = [_choice(label, replace(request, context=plan.context), own, layers)]
    if not plan.engine.layers_option or own.fits is None:
        return choices
    fixed = replace(request, context=plan.context)

    def run(**changes: Any) -> tuple[InferenceRequest, Estimate]:
        asked = replace(fixed, **changes)
        estimate = estimate_inference(resolve(catalogue, asked, layouts=layouts), layouts=layouts)
        return asked, estimate

    candidates: list[Choice] = []
    if plan.arch.moe is not None:
        n = _smallest(lambda k: bool(run(gpu_layers=layers + 1, cpu_moe_layers=k)[1].fits), layers)
        if n is not None:
            asked, estimate = run(gpu_layers=layers + 1, cpu_moe_layers=n)
            words = "all layers on the GPUs, the first layers' experts in RAM"
            candidates.append(_choice(words, asked, estimate, layers))
    most = _largest(lambda k: bool(run(gpu_layers=k)[1].fits), layers + 1)
    if most is not None:
        asked, estimate = run(gpu_layers=most)
        words = "the most layers that fit on the GPUs"
        candidates.append(_choice(words, asked, estimate, layers))
    fitting = [c for c in (choices[0], *candidates) if c.fits]
    if fitting:
        best = max(fitting, key=lambda c: c.decode_tokens_per_s or 0.0)
        if best is not choices[0]:
            choices.append(replace(best, label="fastest that fits: " + best.label))
    return choices


def _smallest(fits: Callable[[int], bool], top: int) -> int | None:
    """The smallest k in 0..top for which fits(k) holds (fits grows with k)."""
    if not fits(top):
        return None
    return 0 if fits(0) else largest_true(lambda k: not fits(k), top) + 1


def _largest(fits: Callable[[int], bool], top: int) -> int | None:
    """The largest k in 0..top for which fits(k) holds (fits shrinks as k grows)."""
    return largest_true(fits, top) if fits(0) else None


@record
class ModelFit:
    """One catalogue model on the reader's hardware."""

    model: str
    name: str
    parameters: int
    weights: str | None  # the most faithful format that fits; None: none does
    max_context: int | None
    decode_tokens_per_s: float | None
    prefill_tokens_per_s: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def rank_models(
    catalogue: Catalogue,
    base: InferenceRequest,
    *,
    models: Sequence[str] | None = None,
    layouts: LayoutMemo | None = None,
) -> list[ModelFit]:
    """Every catalogue model (or those named) with the most faithful weight format that fits
    ``base``'s GPUs entirely at its context, the longest context in that format, and its speed;
    models that fit come first, the largest first."""
    layouts = {} if layouts is None else layouts
    base = with_ranking_context(base)
    idents = list(models or catalogue.models)
    if idents:  # the GPUs, engine and settings themselves: a bad one is an error, not a miss
        resolve(catalogue, replace(base, model=idents[0], weights=None), layouts=layouts)
    found = []
    for ident in idents:
        model = catalogue.models[ident]
        found.append(_fit_one(catalogue, replace(base, model=ident), model.name, layouts))
    return sorted(found, key=lambda f: (f.weights is None, -f.parameters, f.model))


def with_ranking_context(request: InferenceRequest) -> InferenceRequest:
    """The rankings compare setups at one context: the asked one, else RANKING_CONTEXT."""
    return request if request.context is not None else replace(request, context=RANKING_CONTEXT)


def all_on_gpus(request: InferenceRequest) -> InferenceRequest:
    """The request with every layer on the GPUs, for an engine that moves layers (-ngl 999)."""
    if request.gpu_layers is not None or not engine_by_name(request.engine).layers_option:
        return request
    return replace(request, gpu_layers=999)


def _fit_one(
    catalogue: Catalogue, request: InferenceRequest, name: str, layouts: LayoutMemo
) -> ModelFit:
    formats = [f for f in FORMAT_LADDER if f in catalogue.weight_formats]
    for weights in formats:
        asked = replace(all_on_gpus(request), weights=weights)
        try:
            plan = resolve(catalogue, asked, layouts=layouts)
        except CalcError:
            continue  # a format this engine does not load
        estimate = estimate_inference(plan, layouts=layouts)
        if not estimate.fits:
            continue
        limit = plan.arch.max_position_embeddings or plan.context
        context = longest_context(plan, layouts, limit=limit)
        speed = estimate.speed or {}
        return ModelFit(
            model=request.model or "",
            name=name,
            parameters=estimate.parameters.total,
            weights=weights,
            max_context=context,
            decode_tokens_per_s=speed.get("decode_tokens_per_s"),
            prefill_tokens_per_s=speed.get("prefill_tokens_per_s"),
        )
    arch = catalogue.models[request.model or ""].arch
    return ModelFit(
        model=request.model or "",
        name=name,
        parameters=count_parameters(arch).total,
        weights=None,
        max_context=None,
        decode_tokens_per_s=None,
        prefill_tokens_per_s=None,
    )


# The context the rankings use where none is asked: long enough for a real conversation.
RANKING_CONTEXT = 8192
GPU_COUNTS = (1, 2, 4, 8)  # the setups a buyer compares: one card, a pair, a box of 4 or 8


@record
class GpuFit:
    """The fewest of one catalogue GPU that hold the model entirely, and how fast it runs."""

    gpu: str
    name: str
    count: int | None  # None: not even 8 hold it (or a unified-memory GPU, which comes alone)
    memory_bytes: int  # usable memory of all of them together
    total_bytes: int | None  # what the model needs on them
    decode_tokens_per_s: float | None
    prefill_tokens_per_s: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def rank_gpus(
    catalogue: Catalogue, base: InferenceRequest, *, layouts: LayoutMemo | None = None
) -> list[GpuFit]:
    """Every catalogue GPU with the fewest of it (1, 2, 4 or 8; a unified-memory GPU alone)
    that hold ``base``'s model, format and context with every layer on the GPUs, and the speed
    that gives: the fewest GPUs first, then the fastest generation."""
    layouts = {} if layouts is None else layouts
    request = all_on_gpus(replace(with_ranking_context(base), gpu_memory_bytes=None))
    # the model, format and settings themselves: a bad one is an error, not "too small"
    resolve(catalogue, replace(request, gpu=None, gpus=1), layouts=layouts)
    found = [_gpu_fit(catalogue, request, gpu.id, layouts) for gpu in catalogue.gpus.values()]
    return sorted(
        found,
        key=lambda f: (f.count is None, f.count or 0, -(f.decode_tokens_per_s or 0.0), f.gpu),
    )


def _gpu_fit(
    catalogue: Catalogue, request: InferenceRequest, ident: str, layouts: LayoutMemo
) -> GpuFit:
    gpu = catalogue.gpus[ident]
    counts = (1,) if gpu.unified_memory else GPU_COUNTS
    for count in counts:
        try:
            plan = resolve(catalogue, replace(request, gpu=ident, gpus=count), layouts=layouts)
        except CalcError:
            continue  # e.g. heads that do not split over this many GPUs
        estimate = estimate_inference(plan, layouts=layouts)
        if estimate.fits:
            speed = estimate.speed or {}
            return GpuFit(
                gpu=ident,
                name=gpu.name,
                count=count,
                memory_bytes=gpu.usable_bytes * count,
                total_bytes=estimate.total_bytes,
                decode_tokens_per_s=speed.get("decode_tokens_per_s"),
                prefill_tokens_per_s=speed.get("prefill_tokens_per_s"),
            )
    return GpuFit(ident, gpu.name, None, gpu.usable_bytes * counts[-1], None, None, None)
