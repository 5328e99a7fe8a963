"""The fit hints: each answer is the exact boundary the estimator itself draws."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from calc import InferenceRequest
from calc.api import resolve, run_finetune
from calc.engines import engine_by_name
from calc.estimate import estimate_inference, layout_for
from calc.finetune import FinetuneRequest
from calc.hints import (
    _fits,
    fewest_gpus,
    finetune_hint,
    fit_hint,
    least_headroom,
    longest_context,
)

MODELS = [
    "llama-3.1-8b",
    "qwen2.5-32b",
    "gemma-2-27b",
    "mixtral-8x7b",
    "deepseek-r1",
    "qwen3-30b-a3b",
    "gpt-oss-20b",
    "llama-3.3-70b",
]
GPUS = ["rtx-3060-12gb", "rtx-4090", "l40s", "a100-80gb-sxm", "h200-sxm-141gb"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(MODELS),
    engine=st.sampled_from(["llama.cpp", "ollama", "vllm", "transformers"]),
    gpu=st.sampled_from(GPUS),
    gpus=st.integers(1, 4),
    batch=st.integers(1, 8),
)
def test_longest_context_is_the_exact_boundary(catalogue, model, engine, gpu, gpus, batch):
    assume(engine_by_name(engine).parallel_problem(catalogue.model(model).arch, gpus) is None)
    resolved = resolve(
        catalogue, InferenceRequest(model=model, engine=engine, gpu=gpu, gpus=gpus, batch=batch)
    )
    memo: dict = {}
    limit = 200_000
    found = longest_context(resolved, memo, limit=limit)
    # the plan's own headroom as a known point (what the page's estimate passes) changes nothing
    room = least_headroom(estimate_inference(resolved, layouts=memo))
    assert longest_context(resolved, memo, limit=limit, room=room) == found
    if found is None:
        assert not _fits(replace(resolved, context=1), memo)
        return
    assert _fits(replace(resolved, context=found), memo)
    if found < limit:
        assert not _fits(replace(resolved, context=found + 1), memo)


def test_fewest_gpus_is_the_exact_count(catalogue):
    resolved = resolve(
        catalogue,
        InferenceRequest(
            model="llama-3.1-405b", weights="q4_k_m", gpu="rtx-4090", engine_version="b6325"
        ),
    )
    memo: dict = {}
    count = fewest_gpus(resolved, memo)
    assert count is not None
    device = resolved.devices[0]
    assert _fits(replace(resolved, devices=(device,) * count), memo)
    assert not _fits(replace(resolved, devices=(device,) * (count - 1)), memo)


def test_gpu_counts_are_only_those_the_engine_runs(catalogue):
    """DeepSeek-R1's 128 heads: 12 GPUs would hold the FP8 weights, but vLLM needs a count
    that divides the heads, so the first it can run is 16."""
    resolved = resolve(
        catalogue,
        InferenceRequest(
            model="deepseek-r1", engine="vllm", weights="fp8_e4m3", gpu="h100-sxm-80gb"
        ),
    )
    memo: dict = {}
    count = fewest_gpus(resolved, memo)
    assert count is not None
    assert resolved.engine.parallel_problem(resolved.arch, count) is None
    device = resolved.devices[0]
    assert _fits(replace(resolved, devices=(device,) * count), memo)
    smaller = [
        n for n in range(1, count) if resolved.engine.parallel_problem(resolved.arch, n) is None
    ]
    assert smaller and not any(
        _fits(replace(resolved, devices=(device,) * n), memo) for n in smaller
    )
    assert count == 16
    # fewer GPUs would do with the layers split into pipeline stages as well
    hint = fit_hint(catalogue, resolved, memo)
    assert hint is not None and hint.gpus_needed == 16
    tp, pp = hint.pipeline
    assert tp * pp < 16 and resolved.engine.parallel_problem(resolved.arch, tp) is None
    assert hint.to_json()["pipeline"] == {
        "gpus": tp * pp,
        "tensor_parallel": tp,
        "pipeline_parallel": pp,
    }
    # and none below it: the same search, one GPU short, finds nothing
    layout = layout_for(resolved, memo)
    assert resolved.engine.pipeline_split(resolved, layout, tp * pp) is None
    # llama.cpp splits layers anyway: no pipeline answer
    llama = resolve(
        catalogue,
        InferenceRequest(
            model="llama-3.1-405b", weights="q4_k_m", gpu="rtx-4090", engine_version="b6325"
        ),
    )
    assert fit_hint(catalogue, llama, {}).pipeline is None


def test_a_setup_that_does_not_fit_gets_all_three_answers(catalogue):
    resolved = resolve(
        catalogue,  # before --fit: llama.cpp puts every layer on the GPU
        InferenceRequest(
            model="llama-3.1-70b", weights="q8_0", gpu="rtx-4090", engine_version="b6325"
        ),
    )
    hint = fit_hint(catalogue, resolved, {})
    assert hint is not None and not hint.fits
    assert hint.max_context is None  # the weights alone do not fit
    assert hint.best_weights == "iq2_xxs"
    assert hint.gpus_needed is not None and hint.gpus_needed > 1


def test_no_gpu_no_hint(catalogue):
    resolved = resolve(catalogue, InferenceRequest(model="llama-3.1-8b"))
    assert fit_hint(catalogue, resolved, {}) is None


TRAIN_MODEL = "llama-3.1-8b"


def _train_room(catalogue, request, gpu):
    estimate = run_finetune(catalogue, request, model=TRAIN_MODEL, gpu=gpu)
    return min(d.headroom_bytes for d in estimate.devices)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["full", "lora", "qlora"]),
    gpu=st.sampled_from(GPUS),
    checkpointing=st.booleans(),
    micro_batch=st.integers(1, 8),
)
def test_longest_training_sequence_is_the_exact_boundary(
    catalogue, method, gpu, checkpointing, micro_batch
):
    request = FinetuneRequest(
        method=method, grad_checkpointing=checkpointing, micro_batch=micro_batch
    )
    hint = finetune_hint(catalogue, request, {"model": TRAIN_MODEL, "gpu": gpu})
    assert hint is not None
    found = hint.max_seq_len
    if found is None:
        assert _train_room(catalogue, replace(request, seq_len=1), gpu) < 0
        return
    assert _train_room(catalogue, replace(request, seq_len=found), gpu) >= 0
    if found < 131_072:  # Llama 3.1's context
        assert _train_room(catalogue, replace(request, seq_len=found + 1), gpu) < 0


def test_unsloth_scales_rope_so_only_memory_bounds_its_longest_sequence(catalogue):
    """Unsloth trains past a model's context (Llama 3.1 8B on 342,733 tokens of an 80 GB
    card, its benchmarks say): its longest sequence is not capped at 131,072."""
    where = {"model": TRAIN_MODEL, "gpu": "h100-sxm-80gb"}
    request = FinetuneRequest(
        method="qlora", trainer="unsloth", activation_offloading=True, fused_loss=True
    )
    unsloth = finetune_hint(catalogue, request, where)
    plain = finetune_hint(catalogue, replace(request, trainer="none"), where)
    assert unsloth is not None and plain is not None
    assert plain.max_seq_len == 131_072
    assert unsloth.max_seq_len is not None and unsloth.max_seq_len > 131_072


def test_a_training_setup_that_does_not_fit_gets_a_gpu_count_with_zero_3(catalogue):
    request = FinetuneRequest(method="full", seq_len=2048, grad_checkpointing=True)
    hint = finetune_hint(catalogue, request, {"model": TRAIN_MODEL, "gpu": "rtx-4090"})
    assert hint is not None and not hint.fits and hint.zero == 3
    count = hint.gpus_needed
    assert count is not None

    def room(n):
        return _train_room(catalogue, replace(request, gpus=n, zero=3), "rtx-4090")

    assert room(count) >= 0 and room(count - 1) < 0
    assert finetune_hint(catalogue, request, {"model": TRAIN_MODEL}) is None  # no GPU


def test_lora_on_an_fp32_load_is_told_whether_a_bf16_load_fits(catalogue):
    """TRL from 0.27 loads a named model in fp32: when that does not fit, the hint says
    whether the same run with the base loaded in bf16 would, and the CLI says how."""
    from calc.cli import finetune_hint_line

    where = {"model": TRAIN_MODEL, "gpu": "rtx-4090"}
    fp32 = FinetuneRequest(method="lora", seq_len=2048, weights_dtype="fp32")
    hint = finetune_hint(catalogue, fp32, where)
    assert hint is not None and not hint.fits
    assert hint.fits_with_bf16_base is (
        _train_room(catalogue, replace(fp32, weights_dtype="bf16"), "rtx-4090") >= 0
    )
    assert hint.fits_with_bf16_base  # an 8B LoRA fits a 24 GB card loaded in bf16
    assert "the base model loaded in bf16 (--weights-dtype bf16)" in finetune_hint_line(hint)
    bf16 = finetune_hint(catalogue, replace(fp32, weights_dtype="bf16"), where)
    assert bf16 is not None and bf16.fits_with_bf16_base is None  # the question does not arise


def test_a_suggestion_that_does_not_hold_is_corrected_or_dropped(catalogue):
    """verified() reruns each suggestion as the reader would: a GPU count too small gives way
    to the first that fits, a format or a context that does not fit is not shown."""
    from calc.hints import FitHint, verified

    request = InferenceRequest(model="llama-3.1-70b", engine="vllm", weights="bf16", gpu="l40s")
    plan = resolve(catalogue, request)
    true = fit_hint(catalogue, plan, {})
    assert true is not None and true.gpus_needed and true.gpus_needed > 2
    wrong = FitHint(
        fits=False, max_context=10_000_000, best_weights="fp16", gpus_needed=true.gpus_needed - 1
    )
    fixed = verified(catalogue, request, wrong)
    assert fixed.gpus_needed == true.gpus_needed
    assert fixed.best_weights is None and fixed.max_context is None
    assert verified(catalogue, request, true) == true  # right answers stand


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(MODELS),
    engine=st.sampled_from(["llama.cpp", "ollama", "vllm", "transformers"]),
    gpu=st.sampled_from(GPUS),
    context=st.sampled_from([None, 8192, 65536]),
)
def test_every_suggestion_holds_when_run(catalogue, model, engine, gpu, context):
    from calc.hints import verified

    request = InferenceRequest(model=model, engine=engine, gpu=gpu, context=context)
    plan = resolve(catalogue, request)
    hint = fit_hint(catalogue, plan, {})
    assume(hint is not None)
    hint = verified(catalogue, request, hint)
    for change in (
        {"gpus": hint.gpus_needed},
        {"weights": hint.best_weights},
        {"context": hint.max_context},
    ):
        if None not in change.values():
            assert estimate_inference(resolve(catalogue, replace(request, **change))).fits
