"""Relational properties of the estimate, and the article's three measured setups."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from calc import CalcError, InferenceRequest, run_inference
from calc.data_files import load_measurements
from calc.engines import engine_by_name
from calc.measurements import compare
from calc.placement import split_layers

MODELS = [
    "llama-3.1-8b",
    "qwen3-30b-a3b",
    "gemma-3-27b",
    "deepseek-r1",
    "gpt-oss-20b",
    "mixtral-8x7b",
    "phi-4",
    "qwen2.5-0.5b",
]
ENGINES = ["llama.cpp", "ollama", "vllm", "transformers"]
common = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def estimate(catalogue, **kwargs):
    return run_inference(catalogue, InferenceRequest(**kwargs))


@common
@given(
    model=st.sampled_from(MODELS),
    engine=st.sampled_from(ENGINES),
    context=st.integers(1, 200_000),
    extra=st.integers(1, 50_000),
)
def test_more_context_never_needs_less_memory(catalogue, model, engine, context, extra):
    short = estimate(catalogue, model=model, engine=engine, context=context)
    long = estimate(catalogue, model=model, engine=engine, context=context + extra)
    assert long.total_bytes >= short.total_bytes
    assert long.components.kv_cache >= short.components.kv_cache


@common
@given(model=st.sampled_from(MODELS), engine=st.sampled_from(["llama.cpp", "vllm"]))
def test_four_bits_need_less_than_sixteen(catalogue, model, engine):
    four = "q4_k_m" if engine == "llama.cpp" else "awq"
    small = estimate(catalogue, model=model, engine=engine, weights=four)
    large = estimate(catalogue, model=model, engine=engine, weights="bf16")
    assert small.components.weights < large.components.weights / 2


@common
@given(
    model=st.sampled_from(MODELS),
    engine=st.sampled_from(ENGINES),
    gpus=st.integers(1, 8),
    batch=st.integers(1, 16),
)
def test_devices_add_up_to_the_total(catalogue, model, engine, gpus, batch):
    assume(engine_by_name(engine).parallel_problem(catalogue.model(model).arch, gpus) is None)
    result = estimate(catalogue, model=model, engine=engine, gpus=gpus, batch=batch)
    assert len(result.devices) == gpus
    assert sum(d.total_bytes for d in result.devices) == result.total_bytes
    assert result.components.total == result.total_bytes
    for key, value in result.components.as_dict().items():
        assert value == sum(d.components.as_dict()[key] for d in result.devices)


@common
@given(model=st.sampled_from(MODELS), engine=st.sampled_from(["llama.cpp", "ollama"]))
def test_splitting_adds_per_gpu_overhead_but_shrinks_each_gpu(catalogue, model, engine):
    one = estimate(catalogue, model=model, engine=engine, gpus=1)
    two = estimate(catalogue, model=model, engine=engine, gpus=2)
    assert two.total_bytes > one.total_bytes  # a second CUDA context and compute buffer
    assert max(d.total_bytes for d in two.devices) < one.total_bytes


@common
@given(model=st.sampled_from(MODELS))
def test_theory_is_parameters_times_bytes(catalogue, model):
    result = estimate(catalogue, model=model, engine="theory", weights="fp16")
    assert result.total_bytes == 2 * result.parameters.total
    assert result.components.kv_cache == result.components.runtime == 0


def test_real_engines_need_more_than_theory(catalogue):
    for model in MODELS:
        theory = estimate(catalogue, model=model, engine="theory", weights="q4_k_m")
        real = estimate(catalogue, model=model, engine="llama.cpp", weights="q4_k_m")
        assert real.total_bytes + real.host_bytes > theory.total_bytes, model


def test_layer_split_follows_memory():
    from calc import Device

    devices = [Device("a", 48), Device("b", 24)]
    layers = list(range(80))
    assert [len(r) for r in split_layers(layers, devices)] == [53, 27]
    assert [len(r) for r in split_layers(layers, [Device(), Device(), Device()])] == [27, 27, 26]
    assert [len(r) for r in split_layers(layers, devices, (1.0, 3.0))] == [20, 60]
    assert split_layers(layers, devices)[1][0] == 53  # contiguous, in order


def test_tensor_parallel_shards_weights(catalogue):
    one = estimate(catalogue, model="llama-3.1-70b", engine="vllm", weights="awq", gpus=1)
    two = estimate(catalogue, model="llama-3.1-70b", engine="vllm", weights="awq", gpus=2)
    per_gpu = two.devices[0].components.weights
    assert per_gpu == pytest.approx(one.components.weights / 2, rel=0.01)


def test_fit_and_headroom_use_the_gpu(catalogue):
    result = estimate(catalogue, model="llama-3.1-8b", weights="q4_k_m", gpu="RTX 4090")
    device = result.devices[0]
    assert device.fits is True
    assert device.headroom_bytes == 24564 * 2**20 - device.total_bytes  # nvidia-smi: 24564MiB
    too_big = estimate(
        catalogue, model="llama-3.1-70b", weights="q8_0", gpu="RTX 4090", engine_version="b6325"
    )
    assert too_big.fits is False


def test_fit_moves_what_the_gpu_cannot_hold_to_cpu_ram(catalogue):
    """From b7437 llama.cpp's --fit shrinks a default context to 4096, then keeps layers in
    CPU RAM until each GPU has 1024 MiB free."""
    fitted = estimate(catalogue, model="llama-3.1-70b", weights="q8_0", gpu="RTX 4090")
    device = fitted.devices[0]
    assert fitted.fits is True
    assert fitted.context == 4096
    assert device.headroom_bytes >= 1024 * 2**20  # the margin
    assert fitted.host.weights > 40 * 2**30  # most of the 70 GiB stays in CPU RAM
    assert any("--fit puts" in note for note in fitted.notes)
    # one more layer on the GPU would leave less than the margin
    layers = len(device.layers)
    more = estimate(
        catalogue, model="llama-3.1-70b", weights="q8_0", gpu="RTX 4090", context=4096,
        gpu_layers=layers + 1,
    )  # fmt: skip
    assert more.devices[0].headroom_bytes < 1024 * 2**20


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"context": 0}, "context must be at least 1, got 0"),
        ({"context": 10**9}, "context must be at most 100,000,000"),
        ({"batch": -2}, "batch must be at least 1, got -2"),
        ({"gpus": 0}, "gpus must be at least 1, got 0"),
        ({"gpus": 1000}, "gpus must be at most 64"),
        ({"weights": "int4"}, "INT4 is a number format, not a checkpoint"),
        ({"weights": "awq", "engine": "llama.cpp"}, "llama.cpp cannot load AWQ"),
        ({"gpu": "RTX 4090", "gpu_memory_bytes": 10}, "a GPU name or a memory size, not both"),
        ({"engine": "tgi"}, "unknown engine 'tgi'"),
    ],
)
def test_bad_requests_are_rejected(catalogue, kwargs, message):
    with pytest.raises(CalcError, match=message):
        estimate(catalogue, **{"model": "llama-3.1-8b", **kwargs})


def test_the_articles_setups_are_within_three_percent(catalogue):
    # Seed article: 21.1 (one RTX 4090D), 44.6 (two) and 45.3 (three), read as GiB, with Ollama
    # 0.5.x defaults that the estimator applies itself (num_ctx 2048, 4 parallel slots).
    article = [compare(catalogue, m) for m in load_measurements() if m.id.startswith("article-")]
    assert len(article) == 3
    for comparison in article:
        assert abs(comparison.error) < 0.03, comparison.measurement.id
    two, three = (c for c in article if c.measurement.gpus > 1)
    assert three.estimated_bytes > two.estimated_bytes


def test_ollama_057_picks_the_articles_defaults(catalogue):
    result = estimate(
        catalogue,
        model="deepseek-r1-distill-qwen-32b",
        engine="ollama",
        engine_version="0.5.7",
        gpu="RTX 4090D",
    )
    assert (result.context, result.batch) == (2048, 4)
    small = estimate(
        catalogue,
        model="deepseek-r1-distill-qwen-32b",
        engine="ollama",
        engine_version="0.5.7",
        gpu="RTX 3060 12GB",
    )
    assert small.batch == 1  # four slots do not fit, so Ollama falls back to one
    # 0.6.7 tried two slots first ("the new 2x4k limit"); 0.10.0 serves one sequence
    paired = estimate(catalogue, model="qwen3-8b", engine="ollama", engine_version="0.9.6")
    assert (paired.context, paired.batch) == (4096, 2)
    newer = estimate(catalogue, model="qwen3-8b", engine="ollama", engine_version="0.10.0")
    assert (newer.context, newer.batch) == (4096, 1)


def test_ollama_0155_sizes_the_context_by_vram(catalogue):
    def context(gpu, model="llama-3.1-8b"):
        return estimate(catalogue, model=model, engine="ollama", gpu=gpu).context

    assert context("rtx-4060-ti-16gb") == 4096
    assert context("rtx-4090") == 32768  # 24564 MiB clears the 23 GiB threshold
    assert context("rtx-5090") == 32768
    assert context("h200-sxm-141gb") == 131072  # 262144, cut to Llama 3.1's trained length
    assert context("h100-sxm-80gb", model="qwen3-8b") == 40960


def test_flash_attention_shrinks_llama_cpp_compute_buffers(catalogue):
    off = estimate(catalogue, model="llama-3.1-8b", context=32768, flash_attention=False)
    on = estimate(catalogue, model="llama-3.1-8b", context=32768, flash_attention=True)
    assert on.components.activations < off.components.activations / 4


def test_quantised_kv_needs_flash_attention(catalogue):
    with pytest.raises(CalcError, match="needs flash attention"):
        estimate(catalogue, model="llama-3.1-8b", kv_cache="q8_0", flash_attention=False)
    # from b6325 flash attention is on by default (-fa auto), so the quantised cache loads
    assert estimate(catalogue, model="llama-3.1-8b", kv_cache="q8_0").kv_format == "ggml_q8_0"
    with pytest.raises(CalcError, match="needs flash attention"):
        estimate(catalogue, model="llama-3.1-8b", kv_cache="q8_0", engine_version="b6324")
    ollama = estimate(
        catalogue, model="llama-3.1-8b", engine="ollama", kv_cache="q8_0", engine_version="0.12.0"
    )
    assert ollama.kv_format == "fp16"
    assert any("ignores" in note for note in ollama.notes)


def test_partial_offload_moves_layers_and_their_cache_to_the_host(catalogue):
    full = estimate(catalogue, model="llama-3.1-70b", context=8192)
    half = estimate(catalogue, model="llama-3.1-70b", context=8192, gpu_layers=40)
    assert half.components.weights < full.components.weights * 0.55
    assert half.host.weights > full.host.weights
    assert half.host.kv_cache == full.components.kv_cache // 2
    moe = estimate(catalogue, model="qwen3-30b-a3b", cpu_moe_layers=48)
    assert moe.components.weights < 0.2 * moe.host.weights


def test_mismatched_gpus_and_tensor_split(catalogue):
    mixed = estimate(  # before --fit (b7437) llama.cpp splits the layers by memory
        catalogue, model="llama-3.1-70b", gpu="rtx 4090, rtx 3060 12gb", engine_version="b6325"
    )
    assert [d.device.name for d in mixed.devices] == ["GeForce RTX 4090", "GeForce RTX 3060 12GB"]
    assert len(mixed.devices[0].layers) == 2 * len(mixed.devices[1].layers) - 1
    split = estimate(catalogue, model="llama-3.1-70b", gpus=2, tensor_split=(1.0, 3.0))
    assert [len(d.layers) for d in split.devices] == [20, 60]


def test_ollama_before_mla_support_caches_full_heads(catalogue):
    old = estimate(
        catalogue,
        model="deepseek-r1",
        engine="ollama",
        engine_version="0.5.7",
        context=2048,
        batch=1,
    )
    # Ollama 0.5.x's own estimate: memory.required.kv="9.5 GiB" (ollama issue 8447)
    assert old.components.kv_cache / 2**30 == pytest.approx(9.5, rel=0.01)
    new = estimate(catalogue, model="deepseek-r1", engine="ollama", context=2048, batch=1)
    assert new.components.kv_cache < old.components.kv_cache / 50


def test_vllm_reports_its_reserve(catalogue):
    result = estimate(catalogue, model="llama-3.1-8b", engine="vllm", gpu="a100-80gb-sxm")
    details = result.to_json()["engine_details"]
    assert details["gpu_memory_utilization"] == 0.92  # from 0.20
    assert details["reserved_bytes"][0] == int(81920 * 2**20 * 0.92)
    assert details["kv_cache_capacity_bytes"][0] > 50 * 2**30
    # nvidia-smi shows the share, the KV cache vLLM fills included, and the CUDA context
    device = result.devices[0]
    assert device.components.kv_cache == details["kv_cache_capacity_bytes"][0]
    assert device.total_bytes == details["reserved_bytes"][0] + 287_047_680
    # 8 KV heads x 128 x K and V x bf16 x 32 layers per token, in blocks of 16
    per_token = 8 * 128 * 2 * 2 * 32
    blocks = details["kv_cache_capacity_bytes"][0] // (16 * per_token)
    assert details["kv_cache_tokens"] == int(blocks / (131072 // 16) * 131072)
    assert details["max_concurrency"] == round(blocks / (131072 // 16), 2)


def test_gpu_memory_utilization_moves_the_kv_capacity(catalogue):
    def capacity(utilization):
        result = estimate(
            catalogue,
            model="llama-3.1-8b",
            engine="vllm",
            gpu="a100-80gb-sxm",
            gpu_memory_utilization=utilization,
        )
        details = result.to_json()["engine_details"]
        assert details["reserved_bytes"][0] == int(81920 * 2**20 * utilization)
        return details["kv_cache_capacity_bytes"][0]

    # The model's own needs do not change, so every 0.1 of the GPU is 8 GiB more KV cache.
    assert capacity(0.95) - capacity(0.85) == pytest.approx(0.1 * 81920 * 2**20, abs=2)


@pytest.mark.parametrize("value", [0, 1.5, -0.2])
def test_gpu_memory_utilization_must_be_a_fraction(catalogue, value):
    with pytest.raises(CalcError, match="gpu_memory_utilization must be a fraction"):
        estimate(catalogue, model="llama-3.1-8b", engine="vllm", gpu_memory_utilization=value)


def test_gpu_memory_utilization_is_vllm_only(catalogue):
    with pytest.raises(CalcError, match="is a vLLM setting"):
        estimate(catalogue, model="llama-3.1-8b", engine="ollama", gpu_memory_utilization=0.8)


def test_vllm_v0_samples_on_the_driver_only(catalogue):
    # V0's profiling run sorts max_num_seqs x vocabulary logits on TP rank 0 alone: 8 fp32
    # copies of 256 x 128,256 plus the hidden states, larger than Llama 3.1 8B's MLP scratch.
    result = estimate(
        catalogue, model="llama-3.1-8b", engine="vllm", engine_version="0.6.4", gpus=2, context=8192
    )
    driver, worker = (d.components.activations for d in result.devices)
    assert driver == 8 * 256 * 128_256 * 4 + 8192 * 4096 * 2
    assert worker == 8192 * (3 * 14336 // 2 + 4 * 4096) * 2  # the forward pass alone


@pytest.mark.parametrize("version", ["0.1", "b12"])
def test_versions_older_than_modelled_are_refused(catalogue, version):
    engine = "ollama" if version == "0.1" else "llama.cpp"
    with pytest.raises(CalcError, match="older than the oldest release modelled"):
        estimate(catalogue, model="llama-3.1-8b", engine=engine, engine_version=version)


def test_vllm_v1_samples_on_every_rank(catalogue):
    # V1 gathers the logits on every rank, and its dummy sampler run takes the sort path
    # (top_k vocab - 1, top_p 0.9) over max_num_seqs rows: 2048 tokens and 256 sequences are
    # `vllm serve`'s defaults on a GPU under 70 GiB.
    result = estimate(
        catalogue, model="llama-3.1-8b", engine="vllm", engine_version="0.10.0", gpus=2
    )
    ranks = {d.components.activations for d in result.devices}
    assert ranks == {8 * 256 * 128_256 * 4 + 2048 * 4096 * 2}


@pytest.mark.parametrize(
    ("gpu", "version", "tokens", "seqs"),
    [
        ("h100-sxm-80gb", "0.10.0", 8192, 1024),  # 70 GiB or more, not an A100
        ("a100-80gb-sxm", "0.10.0", 2048, 256),  # excluded: "reduces throughput" on an A100
        ("rtx-4090", "0.10.0", 2048, 256),
        ("h100-sxm-80gb", "0.8.5", 2048, 256),  # before the per-GPU defaults
    ],
)
def test_vllm_v1_scheduler_defaults_follow_the_gpu(catalogue, gpu, version, tokens, seqs):
    result = estimate(
        catalogue, model="llama-3.1-8b", engine="vllm", engine_version=version, gpu=gpu
    )
    assert f"max_num_batched_tokens {tokens}, max_num_seqs {seqs}" in result.notes[0]
    sampler = 8 * seqs * 128_256 * 4 + tokens * 4096 * 2
    forward = tokens * (3 * 14336 + 4 * 4096) * 2
    assert result.components.activations == max(sampler, forward)


def test_vllm_batch_settings_override_the_defaults(catalogue):
    asked = estimate(
        catalogue,
        model="llama-3.1-8b",
        engine="vllm",
        engine_version="0.10.0",
        gpu="h100-sxm-80gb",
        max_num_batched_tokens=1024,
        max_num_seqs=4096,
    )
    # max_num_seqs is capped by the tokens a step holds
    assert asked.components.activations == 8 * 1024 * 128_256 * 4 + 1024 * 4096 * 2
    with pytest.raises(CalcError, match="max_num_seqs is a vLLM setting"):
        estimate(catalogue, model="llama-3.1-8b", engine="llama.cpp", max_num_seqs=8)
    with pytest.raises(CalcError, match="max_num_batched_tokens must be at least 1, got 0"):
        estimate(catalogue, model="llama-3.1-8b", engine="vllm", max_num_batched_tokens=0)


def test_vllm_pads_mxfp4_experts_for_marlin(catalogue):
    # gpt-oss-20b: 24 layers x 32 experts, hidden and intermediate 2880. vLLM's Marlin MoE
    # kernel needs n % 256 and k % 128, so the intermediate size becomes 2944 and the hidden
    # size 3072 (quantization/mxfp4.py), for weights, scales and biases alike.
    vllm = estimate(catalogue, model="gpt-oss-20b", engine="vllm", weights="mxfp4", context=4096)
    plain = estimate(
        catalogue, model="gpt-oss-20b", engine="transformers", weights="mxfp4", context=4096
    )
    mx = 4.25 / 8  # bytes per MXFP4 value: 4 bits and an 8-bit scale per 32
    weights = 24 * 32 * 3 * (2944 * 3072 - 2880 * 2880) * mx
    biases = 24 * 32 * (2 * (2944 - 2880) + (3072 - 2880)) * 2
    grown = vllm.components.weights - plain.components.weights
    assert grown == pytest.approx(weights + biases, rel=1e-6)
    assert any("pads each routed expert" in note for note in vllm.notes)


def test_vllm_moe_profiling_holds_the_fused_kernels_buffers(catalogue):
    # Qwen3-30B-A3B: 8 of 128 experts of 768, hidden 2048, no shared expert. vLLM's fused MoE
    # keeps M x topk x max(2N, K) and M x topk x N 16-bit values (N: the expert's share of 768
    # per GPU, K: the whole hidden size). V0's second GPU runs the forward pass alone.
    result = estimate(
        catalogue,
        model="qwen3-30b-a3b",
        engine="vllm",
        engine_version="0.6.4",
        gpus=2,
        context=8192,
    )
    worker = result.devices[1].components.activations
    assert worker == 8192 * (8 * (max(2 * 384, 2048) + 384) + 4 * 2048) * 2


def test_vllm_refuses_tensor_parallel_sizes_that_split_heads_unevenly(catalogue):
    divide = r"64 attention heads .* 3 does not divide.* 1, 2, 4, 8, 16, 32, 64 GPUs"
    with pytest.raises(CalcError, match=divide):
        estimate(catalogue, model="qwen3-32b", engine="vllm", gpus=3)
    assert len(estimate(catalogue, model="qwen3-32b", engine="vllm", gpus=4).devices) == 4
    # llama.cpp splits whole layers, so any count runs
    assert len(estimate(catalogue, model="qwen3-32b", engine="llama.cpp", gpus=3).devices) == 3


def test_ram_given_decides_whether_the_host_part_fits(catalogue):
    kwargs = {"model": "llama-3.1-70b", "weights": "q8_0", "gpu": "RTX 4090"}
    short = estimate(catalogue, ram_bytes=32 * 2**30, **kwargs)
    assert short.host_bytes > 32 * 2**30
    assert short.host_fits is False and short.fits is False
    assert any("does not fit the 32.0 GiB of RAM given" in n for n in short.notes)
    roomy = estimate(catalogue, ram_bytes=128 * 2**30, **kwargs)
    assert roomy.host_fits is True and roomy.fits is True
    assert estimate(catalogue, **kwargs).host_fits is None
    with pytest.raises(CalcError, match=r"ram_gib is a llama\.cpp/Ollama setting"):
        estimate(catalogue, model="llama-3.1-8b", engine="vllm", ram_bytes=2**30)


def test_llama_cpp_version_tags_take_the_build_behind_them(catalogue):
    def release(version):
        return estimate(catalogue, model="llama-3.1-8b", engine_version=version).notes[0]

    assert "v0.3.0 defaults (as from release b10621)" in release("v0.3.0")
    assert "v0.8.0 defaults (as from release b10621)" in release("v0.8.0")
    assert "v0.1.2 defaults (as from release b7437)" in release("v0.1.2")
    with pytest.raises(CalcError, match=r"version tags start at v0\.1\.0"):
        release("v0.0.9")


@pytest.mark.parametrize(
    ("engine", "version", "kv", "takes"),
    [
        ("vllm", None, "q8_0", "BF16, FP16, FP8 E4M3"),
        ("llama.cpp", None, "fp8", "FP32, FP16, BF16, Q8_0, Q4_0, Q4_1, IQ4_NL, Q5_0, Q5_1"),
        ("ollama", "0.12.0", "q5_1", "FP16, Q8_0, Q4_0"),
        ("transformers", None, "q4_0", "FP32, FP16, BF16"),
    ],
)
def test_each_engine_takes_only_its_kv_cache_types(catalogue, engine, version, kv, takes):
    with pytest.raises(CalcError, match=rf"cannot keep its KV cache in .*; it takes {takes}"):
        estimate(
            catalogue, model="llama-3.1-8b", engine=engine, engine_version=version, kv_cache=kv
        )
    # Ollama 0.30 hands the type to llama-server, which takes q5_1
    assert estimate(
        catalogue, model="llama-3.1-8b", engine="ollama", kv_cache="q5_1"
    ).kv_format == ("ggml_q5_1")


def test_ollamas_own_engine_by_release(catalogue):
    def run(version, model="gpt-oss-20b", **kwargs):
        return estimate(
            catalogue, model=model, engine="ollama", engine_version=version,
            weights="mxfp4" if model.startswith("gpt-oss") else None, **kwargs,
        )  # fmt: skip

    # 0.11: gpt-oss at least 8192 tokens; 0.15.5 drops the minimum (tiers instead)
    assert run("0.11.10").context == 8192
    assert run("0.15.5").context == 4096  # no GPU memory given: the lowest tier
    # 0.11.8 turns flash attention on for gpt-oss only; 0.12.6 adds gemma3; llama stays off
    assert "flash attention off" in run("0.11.0").notes[0]
    assert "flash attention on" in run("0.11.8").notes[0]
    assert "flash attention on" in run("0.12.6", model="gemma-3-4b").notes[0]
    assert "flash attention off" in run("0.12.6", model="llama-3.1-8b").notes[0]
    assert "flash attention on" in run("0.13.4", model="llama-3.1-8b").notes[0]  # auto
    # gpt-oss's sliding layers keep 4096 + 512 cells on 0.12.3, even for a 4096-token context
    # (ollama issue 12470: 9437184 bytes a sliding layer, 8388608 a full one)
    cells = run("0.12.3", context=4096).components.kv_cache // (12 * 8 * 64 * 2 * 2)
    assert cells == 4096 + 4608
    # from 0.30 llama-server's cache: the window and one micro-batch, padded to 256
    new = run(None, context=4096).components.kv_cache // (12 * 8 * 64 * 2 * 2)
    assert new == 4096 + 768


def test_transformers_defaults_by_release(catalogue):
    def run(version, model="llama-3.1-8b", **kwargs):
        return estimate(
            catalogue, model=model, engine="transformers", engine_version=version, **kwargs
        )

    assert run("4.57.0").weights_format == "fp32"  # float32 unless told, before 5.0
    assert run("5.0.0").weights_format == "bf16"  # dtype="auto"
    eager = run("4.45.0", model="gemma-2-9b", weights="bf16", context=4096)
    sdpa = run("4.48.0", model="gemma-2-9b", weights="bf16", context=4096)
    assert eager.components.activations > sdpa.components.activations
    assert run(
        "5.21.0", model="gemma-2-9b", weights="bf16", context=4096
    ).components.activations == (eager.components.activations)
    # 4.56 keeps only the window of a sliding layer
    old = run("4.55.0", model="gemma-3-4b", weights="bf16", context=32768).components.kv_cache
    new = run("4.56.0", model="gemma-3-4b", weights="bf16", context=32768).components.kv_cache
    assert new < old / 3
