"""What would fit: the longest context, the best weight format, the number of these GPUs.

Each answer re-runs the estimate with one input changed, so it is exactly what the estimator
would say for that input. Weight layouts are memoised by the caller, which keeps a search to a
few dozen cheap estimates.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from calc._errors import CalcError
from calc.api import LayoutMemo, Resolved, estimate_resolved, loadable_formats
from calc.catalogue import Catalogue
from calc.estimate import MAX_CONTEXT, MAX_GPUS

# Weight formats tried for "the best format that fits", from most to least faithful.
# GGUF files for llama.cpp and Ollama; checkpoint formats for vLLM and transformers.
FORMAT_LADDER = (
    "fp16",
    "bf16",
    "fp8_e4m3",
    "q8_0",
    "int8",
    "q6_k",
    "q5_k_m",
    "q4_k_m",
    "awq_4bit_g128",
    "gptq_4bit_g128",
    "nvfp4",
    "mxfp4",
    "nf4",
    "iq4_xs",
    "q3_k_m",
    "q2_k",
    "iq2_xxs",
)


@dataclass(frozen=True)
class FitHint:
    """Answers for a setup whose GPU memory is known; None where nothing fits."""

    fits: bool
    max_context: int | None  # longest context per sequence that fits, same everything else
    best_weights: str | None  # the most faithful format in FORMAT_LADDER that fits
    gpus_needed: int | None  # how many of these GPUs the setup needs (when it does not fit)

    def to_json(self) -> dict[str, object]:
        return {
            "fits": self.fits,
            "max_context": self.max_context,
            "best_weights": self.best_weights,
            "gpus_needed": self.gpus_needed,
        }


def _fits(catalogue: Catalogue, resolved: Resolved, layouts: LayoutMemo) -> bool:
    try:
        return bool(estimate_resolved(catalogue, resolved, layouts=layouts).fits)
    except CalcError:
        return False


def longest_context(
    catalogue: Catalogue, resolved: Resolved, layouts: LayoutMemo, *, limit: int
) -> int | None:
    """Binary search: memory never shrinks as the context grows."""
    if not _fits(catalogue, replace(resolved, context=1), layouts):
        return None
    low, high = 1, limit
    if _fits(catalogue, replace(resolved, context=high), layouts):
        return high
    while high - low > 1:
        middle = (low + high) // 2
        if _fits(catalogue, replace(resolved, context=middle), layouts):
            low = middle
        else:
            high = middle
    return low


def fit_hint(catalogue: Catalogue, resolved: Resolved, layouts: LayoutMemo) -> FitHint | None:
    """None when the GPU memory is unknown."""
    if any(d.capacity_bytes is None for d in resolved.devices):
        return None
    fits = _fits(catalogue, resolved, layouts)
    limit = min(resolved.arch.max_position_embeddings or MAX_CONTEXT, MAX_CONTEXT)
    max_context = None
    if not resolved.engine.weights_only:
        max_context = longest_context(catalogue, resolved, layouts, limit=limit)
    best = None
    gpus_needed = None
    if not fits:
        accepted = {f.id: f for f in loadable_formats(catalogue, resolved.engine)}
        for format_id in FORMAT_LADDER:
            if format_id in accepted and _fits(
                catalogue, replace(resolved, weights=accepted[format_id]), layouts
            ):
                best = format_id
                break
        device = resolved.devices[0]
        for count in range(len(resolved.devices) + 1, MAX_GPUS + 1):
            if _fits(catalogue, replace(resolved, devices=(device,) * count), layouts):
                gpus_needed = count
                break
    return FitHint(fits=fits, max_context=max_context, best_weights=best, gpus_needed=gpus_needed)
