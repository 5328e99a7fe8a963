"""The speed model: relational properties, and its error on the published llama-bench figures."""

from __future__ import annotations

import statistics

import pytest

from calc import ENGINES, InferenceRequest, compare, load_measurements, run_inference
from calc.measurements import SPEEDS


def speed(catalogue, **request):
    estimate = run_inference(catalogue, InferenceRequest(**request))
    return estimate.speed


def test_a_mixture_of_experts_decodes_at_the_speed_of_its_active_parameters(catalogue):
    """Qwen3-30B-A3B reads about 3B parameters a token, Qwen3-32B all 32B."""
    moe = speed(catalogue, model="qwen3-30b-a3b", gpu="rtx-4090", context=4096)
    dense = speed(catalogue, model="qwen3-32b", gpu="rtx-4090", context=4096)
    assert moe["decode_tokens_per_s"] > 3 * dense["decode_tokens_per_s"]


def test_more_bandwidth_decodes_faster_and_more_compute_prefills_faster(catalogue):
    slow = speed(catalogue, model="llama-3.1-8b", gpu="rtx-3060-12gb", context=4096)
    fast = speed(catalogue, model="llama-3.1-8b", gpu="rtx-4090", context=4096)
    assert fast["decode_tokens_per_s"] > 2 * slow["decode_tokens_per_s"]
    assert fast["prefill_tokens_per_s"] > 2 * slow["prefill_tokens_per_s"]


def test_a_longer_context_decodes_slower(catalogue):
    short = speed(catalogue, model="llama-2-7b", gpu="rtx-4090", context=512)
    long = speed(catalogue, model="llama-2-7b", gpu="rtx-4090", context=4096)
    assert long["decode_tokens_per_s"] < short["decode_tokens_per_s"]


def test_layers_in_host_ram_slow_decoding_down(catalogue):
    request = {"model": "llama-3.1-70b", "gpu": "rtx-4090", "context": 2048, "batch": 1}
    partial = speed(catalogue, gpu_layers=40, **request)
    assert partial["limited_by"] == "host RAM"
    assert partial["decode_tokens_per_s"] < 5


def test_several_sequences_share_each_weight_read(catalogue):
    one = speed(catalogue, model="llama-3.1-8b", engine="vllm", gpu="h100-sxm-80gb", context=2048)
    many = speed(
        catalogue, model="llama-3.1-8b", engine="vllm", gpu="h100-sxm-80gb", context=2048, batch=16
    )
    assert one["aggregate_decode_tokens_per_s"] is None
    assert many["aggregate_decode_tokens_per_s"] > 4 * one["decode_tokens_per_s"]


def test_tensor_parallel_ranks_read_their_shares_together(catalogue):
    request = {"model": "llama-3.1-70b", "engine": "vllm", "gpu": "h100-sxm-80gb", "context": 2048}
    two = speed(catalogue, gpus=2, **request)
    four = speed(catalogue, gpus=4, **request)
    assert four["decode_tokens_per_s"] > 1.5 * two["decode_tokens_per_s"]


def test_a_gpu_given_only_by_its_memory_has_no_speed(catalogue):
    assert speed(catalogue, model="llama-3.1-8b", gpu_memory_bytes=24 * 2**30) is None


def test_the_backend_can_be_named(catalogue):
    cuda = speed(catalogue, model="llama-2-7b", weights="q4_0", gpu="rtx-4090", context=512)
    vulkan = speed(
        catalogue, model="llama-2-7b", weights="q4_0", gpu="rtx-4090", context=512, backend="vulkan"
    )
    assert (cuda["backend"], vulkan["backend"]) == ("CUDA", "Vulkan")
    assert cuda["prefill_tokens_per_s"] != vulkan["prefill_tokens_per_s"]


def test_a_serving_engine_adds_its_host_time_per_token(catalogue):
    """llama-bench times the bare GPU step; Ollama samples and streams each token besides."""
    request = {"model": "llama-3.2-3b", "weights": "q4_k_m", "gpu": "rtx-4090", "context": 512}
    bench = speed(catalogue, engine="llama.cpp", batch=1, **request)
    served = speed(catalogue, engine="ollama", batch=1, **request)
    gap = 1 / served["decode_tokens_per_s"] - 1 / bench["decode_tokens_per_s"]
    assert gap == pytest.approx(ENGINES["ollama"].token_seconds, rel=0.05)
    assert ENGINES["llama.cpp"].token_seconds == 0


@pytest.mark.parametrize("engine", ["llama.cpp", "ollama"])
@pytest.mark.parametrize(("what", "target"), [(SPEEDS[0], 0.15), (SPEEDS[1], 0.25)])
def test_each_engines_published_figures_are_met(catalogue, engine, what, target):
    errors = [
        abs(compare(catalogue, m).error)
        for m in load_measurements()
        if m.estimate_of == what and not m.not_modelled and m.inputs.get("engine") == engine
    ]
    if not errors:  # Ollama's prompt rates are not published with their prompt's length
        assert (engine, what) == ("ollama", SPEEDS[1])
        return
    assert statistics.median(errors) <= target


@pytest.mark.parametrize(("what", "target"), [(SPEEDS[0], 0.15), (SPEEDS[1], 0.25)])
def test_the_published_figures_are_met_within_the_issue_targets(catalogue, what, target):
    """Decode within 15% and prompts within 25% (median |error|) of the llama-bench figures in
    data/measurements.yaml, to which the backends' shares are fitted."""
    errors = [
        abs(compare(catalogue, m).error)
        for m in load_measurements()
        if m.estimate_of == what and not m.not_modelled
    ]
    assert len(errors) >= 60
    assert statistics.median(errors) <= target
