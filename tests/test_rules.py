"""Every rule the methodology page states, pinned with values worked out by hand.

Each test names the functions it pins (``@pins``); the docs tests check that every function the
methodology page links to is pinned here. The models are small made-up configs, so that every
expected value can be written out from the formula with the numbers in place: change one token
of a documented formula or constant and a test here fails.

The tiny Llama: h = 64, I = 128, L = 4, H = 4 heads, K = 2 KV heads of d = 16, V = 1000.
"""

from __future__ import annotations

from collections.abc import Callable
from math import ceil
from typing import Any, TypeVar

import pytest

from calc import (
    ENGINES,
    CalcError,
    Device,
    FinetuneRequest,
    InferenceRequest,
    estimate_inference,
    parse_config,
    resolve,
    run_finetune,
    weight_layout,
)
from calc.engines.llama_cpp import graph_bytes
from calc.engines.ollama import engine_graph_bytes
from calc.engines.transformers import prefill_bytes
from calc.engines.vllm import profile_batch, profile_peak, splits_heads
from calc.finetune import (
    activation_bytes,
    fused_qkv_bytes,
    layer_token_bytes,
    lora_parameters,
    loss_logit_bytes,
    norm_bytes,
    optimizer_state_bytes,
    qlora_base,
    routed_bytes,
)
from calc.formats import tensor_bytes, tensor_storage
from calc.kv_cache import cached_tokens, kv_cache_bytes, kv_row_values
from calc.layout import ExpertPadding, pad_expert
from calc.placement import kv_heads_share, split_layers
from calc.records import replace
from calc.tensors import WEIGHT, Tensor, count_parameters, model_tensors

GIB, MIB = 2**30, 2**20
CUDA_CONTEXT = 287_047_680  # PyTorch PR 86509: "287,047,680 bytes"
PINNED: set[str] = set()
F = TypeVar("F", bound=Callable[..., Any])


def pins(*names: str) -> Callable[[F], F]:
    """Record that the test pins these functions (dotted names as the methodology links)."""
    PINNED.update(names)
    return lambda test: test


LLAMA = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1000,
    "max_position_embeddings": 65536,
}
QWEN3 = {**LLAMA, "model_type": "qwen3", "head_dim": 16}
MOE = {
    **QWEN3,
    "model_type": "qwen3_moe",
    "moe_intermediate_size": 32,
    "num_experts": 8,
    "num_experts_per_tok": 2,
}
MLA = {
    "model_type": "deepseek_v3",
    "hidden_size": 64,
    "intermediate_size": 128,
    "moe_intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 1000,
    "q_lora_rank": 48,
    "kv_lora_rank": 32,
    "qk_nope_head_dim": 16,
    "qk_rope_head_dim": 8,
    "v_head_dim": 16,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "n_shared_experts": 1,
    "first_k_dense_replace": 1,
}
SLIDING = {**LLAMA, "model_type": "mistral", "sliding_window": 32}


def plan(catalogue, config=LLAMA, **kwargs):
    return resolve(catalogue, InferenceRequest(config=config, **kwargs))


def estimate(catalogue, config=LLAMA, **kwargs):
    return estimate_inference(plan(catalogue, config, **kwargs))


# -- parameters and weights -------------------------------------------------------------------


@pins("calc.tensors.model_tensors", "calc.tensors.count_parameters")
def test_the_tiny_llama_has_the_parameters_of_its_shapes():
    arch = parse_config(LLAMA)
    shapes = {t.role: t.shape for t in model_tensors(arch) if t.layer == 0}
    assert shapes["attn_q"] == (64, 64) and shapes["attn_k"] == (64, 32)
    assert shapes["ffn_gate"] == (64, 128) and shapes["ffn_down"] == (128, 64)
    # embeddings and output 2 x 64 x 1000; per layer q 4096, k 2048, v 2048, o 4096, gate, up
    # and down 8192 each, two norms 64 each; the final norm 64
    layer = 4096 + 2048 + 2048 + 4096 + 3 * 8192 + 2 * 64
    assert count_parameters(arch).total == 2 * 64_000 + 4 * layer + 64 == 276_032


@pins("calc.tensors.count_parameters")
def test_active_parameters_count_the_routed_experts_per_token():
    arch = parse_config(MOE)
    counted = count_parameters(arch)
    # each of 4 layers: 8 experts of gate, up (64 x 32) and down (32 x 64), 2 of them per token
    expert = 3 * 64 * 32
    assert counted.total - counted.active == 4 * (8 - 2) * expert


@pins("calc.formats.tensor_bytes", "calc.formats.StorageType.row_bytes")
def test_rows_are_stored_in_whole_blocks(catalogue):
    q8 = catalogue.storage_types["ggml_q8_0"]  # 32 values in 34 bytes
    assert q8.row_bytes(4096) == 4096 // 32 * 34 == 4352
    assert q8.row_bytes(33) == 2 * 34  # a block never straddles rows
    bf16 = catalogue.storage_types["bf16"]
    assert bf16.row_bytes(4096) == 8192
    tensor = Tensor("attn_q", WEIGHT, (4096, 1024), 0)
    assert tensor_bytes(tensor, q8) == 1024 * 4352


@pins("calc.formats.tensor_storage")
def test_awq_quantises_the_decoder_blocks_linear_layers_only(catalogue):
    arch = parse_config(LLAMA)
    awq = catalogue.weight_format("awq_4bit_g128")
    by_role = {t.role: t for t in model_tensors(arch) if t.layer in (0, None)}
    storage = catalogue.storage_types
    assert tensor_storage(by_role["attn_q"], awq, arch, storage) == awq.storage
    # the rest stays in the checkpoint's 16-bit type: fp16 for AWQ (precisions.yaml)
    assert tensor_storage(by_role["token_embd"], awq, arch, storage).id == "fp16"
    assert tensor_storage(by_role["attn_norm"], awq, arch, storage).id == "fp16"
    gguf = catalogue.weight_format("q4_k_m")
    # 1-D tensors are F32 in a GGUF file (convert_hf_to_gguf.py)
    assert tensor_storage(by_role["attn_norm"], gguf, arch, storage).id == "ggml_f32"


@pins("calc.layout.pad_expert", "calc.engines.vllm.Vllm.expert_padding")
def test_vllm_pads_mxfp4_experts_to_128_and_256():
    padding = ENGINES["vllm"].expert_padding("mxfp4", 2)
    assert padding == ExpertPadding(128, 256, ranks=2)
    assert ENGINES["vllm"].expert_padding("bf16", 2) is None
    gate = Tensor("ffn_gate_exps", WEIGHT, (2880, 2880, 32), 0, routed=True)
    # hidden 2880 -> 3072 (256s); each of 2 ranks' 1440 -> 1536 (128s), so 3072 in all
    assert pad_expert(gate, padding).shape == (3072, 3072, 32)
    down = Tensor("ffn_down_exps", WEIGHT, (2880, 2880, 32), 0, routed=True)
    assert pad_expert(down, ExpertPadding(128, 256)).shape == (2944, 3072, 32)


@pins("calc.engines.theory.Theory.estimate")
def test_the_theory_is_parameters_times_bits(catalogue):
    result = estimate(catalogue, engine="theory", weights="int4", gpus=2)
    assert result.total_bytes == ceil(276_032 * 4 / 8) == 138_016
    assert [d.total_bytes for d in result.devices] == [69_008, 69_008]
    assert result.components.kv_cache == result.components.runtime == 0


# -- KV cache -----------------------------------------------------------------------------------


@pins("calc.kv_cache.kv_row_values")
def test_a_token_stores_k_and_v_or_mlas_latent():
    assert kv_row_values(parse_config(LLAMA)) == (2 * 16, 2 * 16)  # K x d each
    mla = parse_config(MLA)
    assert kv_row_values(mla) == (32 + 8,)  # kv_lora_rank + qk_rope_head_dim
    assert kv_row_values(mla, "latent_kv") == (40, 32)
    assert kv_row_values(mla, "full") == (4 * (16 + 8), 4 * 16)  # per head K and V


@pins("calc.kv_cache.cached_tokens", "calc.engines.llama_cpp.LlamaCppFamily.sliding_cells")
def test_a_sliding_layer_keeps_its_window_and_one_micro_batch(catalogue):
    arch = parse_config(SLIDING)  # window 32
    assert cached_tokens(arch, 0, context=4096, sliding_window_cache=True, swa_extra=512) == 544
    assert cached_tokens(arch, 0, context=100, sliding_window_cache=True, swa_extra=512) == 100
    assert cached_tokens(arch, 0, context=4096, sliding_window_cache=False) == 4096
    llama_cpp = ENGINES["llama.cpp"]

    def cells(**kwargs):
        return llama_cpp.sliding_cells(plan(catalogue, SLIDING, context=4096, **kwargs))

    # GGML_PAD(min(n_ctx, n_swa * (unified ? n_seq_max : 1) + n_ubatch), 256) per stream:
    assert cells() == 768  # llama-server's 4 slots share one cache: 4 x 32 + 512 -> 768
    assert cells(batch=1) == 768  # -np 1: 32 + 512 -> 768
    assert cells(batch=3) == 3 * 768  # -np 3: a stream per sequence
    assert cells(batch=1, engine_version="b7079") == 768  # even -np 1 got 4 slots then
    assert cells(engine_version="b5900") == 768  # one slot: 32 + 512
    # a short context: the whole (padded) cache, 300 -> 512 cells
    assert llama_cpp.sliding_cells(plan(catalogue, SLIDING, context=300)) == 512


@pins("calc.kv_cache.kv_cache_bytes", "calc.kv_cache.cached_tokens")
def test_kv_cache_is_rows_times_tokens_times_sequences(catalogue):
    arch = parse_config(LLAMA)
    f16 = catalogue.storage_types["ggml_f16"]
    # per token and layer 2 rows of 32 values, 2 bytes each; 100 tokens, 4 layers, 2 sequences
    assert kv_cache_bytes(arch, context=100, sequences=2, storage=f16) == 128 * 100 * 4 * 2
    # llama.cpp's sliding cache: 32 + 512 tokens a layer at most
    sliding = kv_cache_bytes(parse_config(SLIDING), context=4096, sequences=1, storage=f16,
                             swa_extra=512)  # fmt: skip
    assert sliding == 128 * 544 * 4
    # transformers kept every token of a sliding layer until 4.56
    assert estimate(
        catalogue, SLIDING, engine="transformers", context=4096, engine_version="4.55.0",
        weights="bf16",
    ).components.kv_cache == (
        4 * 2 * 32 * 2 * 4096  # layers x (K and V) x 32 values x bf16 x tokens
    )  # fmt: skip
    assert (
        estimate(catalogue, SLIDING, engine="transformers", context=4096).components.kv_cache
        == 4 * 2 * 32 * 2 * 32
    )  # DynamicSlidingWindowLayer: the window


@pins("calc.engines.base.Engine.padded_context", "calc.engines.llama_cpp.LlamaCppFamily.kv_step")
def test_the_cache_is_padded_to_the_engines_steps(catalogue):
    def padded(engine, context, **kwargs):
        resolved = plan(catalogue, LLAMA, engine=engine, context=context, **kwargs)
        return resolved.engine.padded_context(resolved)

    assert padded("llama.cpp", 1000) == 1024  # 256 cells
    assert padded("llama.cpp", 1000, engine_version="b6870") == 1000  # PR 16812: no padding
    assert padded("llama.cpp", 1000, engine_version="b5000", flash_attention=False) == 1024
    assert padded("llama.cpp", 1001, engine_version="b5000", flash_attention=False) == 1024
    assert padded("llama.cpp", 1025, engine_version="b5000", flash_attention=False) == 1056
    assert padded("ollama", 257) == 512
    assert padded("vllm", 1000) == 1008  # 16-token blocks
    assert padded("transformers", 1000) == 1000


# -- compute buffers ----------------------------------------------------------------------------


@pins("calc.engines.llama_cpp.graph_bytes", "calc.engines.llama_cpp.llama_graph")
def test_llama_cpps_graph_by_ollamas_formula():
    arch = parse_config(LLAMA)  # h 64, H 4, K 2, d 16, V 1000
    # b = min(2000, 512) = 512; full = max(4b(1 + 4h + c(1 + H)), 4b(h + V))
    full = max(4 * 512 * (1 + 256 + 2000 * 5), 4 * 512 * (64 + 1000))
    assert graph_bytes(arch, context_tokens=2000, partial=False, flash_attention=False) == full
    # flash attention: the context terms drop out
    flash = max(4 * 512 * 257, 4 * 512 * 1064)
    assert graph_bytes(arch, context_tokens=2000, partial=False, flash_attention=True) == flash
    # partial = 4bh + max(4b(1 + h + max(c, h)) + h²·9/16 + 4c(bH + dK), 4b(h + V) + hV·105/128)
    part = 4 * 512 * 64 + max(
        4 * 512 * (1 + 64 + 2000) + 64 * 64 * 9 // 16 + 4 * 2000 * (512 * 4 + 16 * 2),
        4 * 512 * 1064 + 64 * 1000 * 105 // 128,
    )
    assert graph_bytes(arch, context_tokens=2000, partial=True, flash_attention=False) == part


@pins("calc.engines.llama_cpp.graph_bytes", "calc.engines.llama_cpp.LlamaCppFamily.sliding_cells")
def test_a_larger_micro_batch_widens_the_graph_and_the_sliding_cache(catalogue):
    # -ub 2048: b = min(4096, 2048); full = max(4b(1 + 4h + c(1 + H)), 4b(h + V))
    wide = estimate(catalogue, context=4096, flash_attention=False, ubatch_size=2048)
    assert wide.components.activations == max(
        4 * 2048 * (1 + 256 + 4096 * 5), 4 * 2048 * (64 + 1000)
    )
    sliding = estimate(catalogue, SLIDING, context=4096, ubatch_size=2048, batch=1)
    # the window and one batch, padded to 256: 32 + 2048 -> 2304 cells
    assert sliding.components.kv_cache == 128 * 2304 * 4
    with pytest.raises(ValueError, match=r"ubatch_size is a llama\.cpp/Ollama setting"):
        estimate(catalogue, engine="vllm", ubatch_size=2048)


@pins("calc.engines.llama_cpp.qwen_graph", "calc.engines.llama_cpp.mla_graph")
def test_the_qwen_and_mla_branches_of_the_graph():
    qwen = parse_config(QWEN3)
    # qwen2 branch: full = max(4b(h + V), 4b(1 + 2h + c + cH))
    assert graph_bytes(qwen, context_tokens=2000, partial=False, flash_attention=False) == max(
        4 * 512 * 1064, 4 * 512 * (1 + 128 + 2000 + 2000 * 4)
    )
    # partial = max(4b(h + V) + hV·105/128, 4(b(1 + 2h + c(1 + H)) + h(1 + c)))
    assert graph_bytes(qwen, context_tokens=2000, partial=True, flash_attention=False) == max(
        4 * 512 * 1064 + 64_000 * 105 // 128, 4 * (512 * (1 + 128 + 2000 * 5) + 64 * 2001)
    )
    mla = parse_config(MLA)  # heads 4, key = 16 + 8
    # deepseek2: full = max(4b(3h + V), 4b(3h + 2 + c(1 + H) + 2kH))
    assert graph_bytes(mla, context_tokens=2000, partial=False, flash_attention=False) == max(
        4 * 512 * (192 + 1000), 4 * 512 * (192 + 2 + 2000 * 5 + 2 * 24 * 4)
    )
    # partial = max(4b(3h + V) + hV·105/128,
    #               4b(2h + 1 + 2kH + c + cH) + 4kcH + hkH·9/16)
    part = max(
        4 * 512 * (192 + 1000) + 64_000 * 105 // 128,
        4 * 512 * (128 + 1 + 2 * 24 * 4 + 2000 + 2000 * 4)
        + 4 * 24 * 2000 * 4
        + 64 * 24 * 4 * 9 // 16,
    )
    assert graph_bytes(mla, context_tokens=2000, partial=True, flash_attention=False) == part


@pins(
    "calc.engines.ollama.Ollama.partial_graph",
    "calc.engines.llama_cpp.LlamaCppFamily.partial_graph",
)
def test_ollama_charges_every_gpu_the_partial_graph(catalogue):
    def activations(engine, **kwargs):
        setup = {"context": 2048, "batch": 1, "flash_attention": False, **kwargs}
        return estimate(catalogue, engine=engine, **setup).devices[0]

    arch = parse_config(LLAMA)
    full = graph_bytes(arch, context_tokens=2048, partial=False, flash_attention=False)
    partial = graph_bytes(arch, context_tokens=2048, partial=True, flash_attention=False)
    assert activations("llama.cpp").components.activations == full
    assert activations("llama.cpp", gpus=2).components.activations == full
    assert activations("ollama", gpus=2, engine_version="0.24.0").components.activations == partial
    # from 0.30 Ollama runs llama-server, which builds the full graph when every layer is on
    assert activations("ollama", gpus=2).components.activations == full
    assert activations("llama.cpp", gpu_layers=2).components.activations == partial


@pins("calc.engines.vllm.profile_peak")
def test_vllms_profiling_peak():
    arch = parse_config(LLAMA)
    forward = 2048 * (3 * 128 + 4 * 64) * 2  # t x (3I + 4h) x bf16
    sampler = 256 * 1000 * 4 * 8 + 2048 * 64 * 2  # 8 fp32 copies of s x V, and t x h
    assert profile_peak(arch, tokens=2048, seqs=256, tensor_parallel=1, samples=True) == max(
        forward, sampler
    )
    assert profile_peak(arch, tokens=2048, seqs=256, tensor_parallel=2, samples=False) == (
        2048 * (3 * 64 + 4 * 64) * 2  # the MLP split over 2 GPUs
    )
    moe = parse_config(MOE)  # 2 of 8 experts of 32, no shared expert, dense I unused
    # the fused kernel: t x topk x (max(2N, h) + N) + 4h, N = 32 / 2 GPUs
    assert profile_peak(moe, tokens=2048, seqs=1, tensor_parallel=2, samples=False) == max(
        2048 * (3 * (2 * 32) // 2 + 4 * 64) * 2, 2048 * (2 * (max(2 * 16, 64) + 16) + 4 * 64) * 2
    )


@pins("calc.engines.vllm.Vllm.activation_bytes")
def test_vllm_v0_samples_on_gpu_0_and_v1_on_every_gpu(catalogue):
    arch = parse_config(LLAMA)

    def peak(samples):
        return profile_peak(arch, tokens=2048, seqs=256, tensor_parallel=2, samples=samples)

    v0 = estimate(catalogue, engine="vllm", engine_version="0.6.4", context=2048, gpus=2)
    assert [d.components.activations for d in v0.devices] == [peak(True), peak(False)]
    v1 = estimate(catalogue, engine="vllm", engine_version="0.10.0", context=2048, gpus=2)
    assert [d.components.activations for d in v1.devices] == [peak(True), peak(True)]


@pins("calc.engines.vllm.profile_batch")
def test_vllms_scheduler_defaults():
    v0, v1_8, v1_9 = (ENGINES["vllm"].release(v) for v in ("0.6.4", "0.8.5", "0.10.0"))
    small, h100 = Device("RTX 4090", 24 * GIB), Device("H100 SXM", 80 * GIB)
    a100 = Device("A100 80GB", 80 * GIB)
    assert profile_batch(v0, max_model_len=1000, gpu=small) == (2048, 256)
    assert profile_batch(v0, max_model_len=20000, gpu=small) == (20000, 256)
    assert profile_batch(v0, max_model_len=40000, gpu=small) == (2048, 256)  # chunked above 32k
    assert profile_batch(v1_8, max_model_len=40000, gpu=h100) == (2048, 256)
    assert profile_batch(v1_9, max_model_len=40000, gpu=h100) == (8192, 1024)
    assert profile_batch(v1_9, max_model_len=40000, gpu=a100) == (2048, 256)
    assert profile_batch(v1_9, max_model_len=40000, gpu=Device("L40S", 70 * GIB - 1)) == (2048, 256)
    asked = profile_batch(v1_9, max_model_len=1, gpu=h100, max_num_batched_tokens=512)
    assert asked == (512, 512)  # sequences never outnumber the tokens a step holds


@pins("calc.engines.transformers.prefill_bytes")
def test_transformers_prefill_and_eager_softmax():
    arch = parse_config(LLAMA)
    mlp = 100 * (3 * 128 + 4 * 64) * 2  # context x (3I + 4h) x bf16
    logits = 1 * 1000 * 4  # the last token's fp32 logits
    sdpa = prefill_bytes(
        arch, context_tokens=100, batch=1, flash_attention=True, prompt_logits=False
    )
    assert sdpa == mlp + logits
    eager = prefill_bytes(
        arch, context_tokens=100, batch=1, flash_attention=False, prompt_logits=False
    )
    assert eager - sdpa == 1 * 4 * 100 * 100 * (2 + 4)  # bf16 scores and their fp32 softmax
    old = prefill_bytes(arch, context_tokens=100, batch=1, flash_attention=True, prompt_logits=True)
    assert old - sdpa == 100 * 1000 * (4 + 2) - logits  # every prompt token's logits, twice


# -- releases and defaults ------------------------------------------------------------------


@pins("calc.engines.history.History.at")
def test_a_version_takes_the_newest_release_not_after_it():
    ollama = ENGINES["ollama"].history
    assert ollama.at("0.1.40").version == "0.1.33"
    assert ollama.at("0.6.6").version == "0.2.0"
    assert ollama.at("0.6.7").default_context == 4096
    assert ollama.at("0.5.7").parallel_tries == (4, 1)
    assert ollama.at("0.9.6").parallel_tries == (2, 1)
    assert ollama.at("0.10.0").parallel_tries == ()
    assert ollama.at(None) is ollama.newest
    with pytest.raises(ValueError, match="older than the oldest release modelled"):
        ollama.at("0.1.0")
    llama_cpp = ENGINES["llama.cpp"].history
    # -fa auto from b6325 (llama.cpp PR 15434)
    assert not llama_cpp.at("b6324").flash_attention and llama_cpp.at("b6325").flash_attention


@pins("calc.engines.ollama.Ollama.default_context")
def test_ollamas_context_follows_the_gpus_memory():
    ollama = ENGINES["ollama"]
    arch = parse_config(LLAMA)
    newest, old = ollama.history.newest, ollama.release("0.6.7")

    def context(release, *gib):
        return ollama.default_context(release, arch, [Device("GPU", int(g * GIB)) for g in gib])

    assert context(newest, 16) == 4096
    assert context(newest, 22.9) == 4096
    assert context(newest, 23) == 32768  # "slightly lower thresholds (47/23 GiB vs. 48/24 GiB)"
    # the GPUs' memory together: 262144, but never above the trained length (65536)
    assert context(newest, 24, 24) == 65536
    assert context(newest, 46.9) == 32768
    assert ollama.default_context(newest, arch, [Device()]) == 4096  # memory unknown
    assert context(old, 80) == 4096
    assert context(ollama.release("0.5.7"), 80) == 2048


@pins("calc.engines.ollama.Ollama.predicts_fit", "calc.engines.ollama.Ollama.choose_batch")
def test_ollamas_fit_rule_keeps_457_mib_and_a_layer_spare(catalogue):
    ollama = ENGINES["ollama"]
    four = plan(catalogue, engine="ollama", engine_version="0.5.7", batch=4, gpu="rtx-4090")
    layout = weight_layout(four.arch, four.weights, catalogue.storage_types)
    device = estimate_inference(four).devices[0].components
    need = device.weights + device.kv_cache + device.activations
    boundary = need + 457 * MIB + max(layout.layer_bytes)

    def fits(capacity):
        sized = four.__class__(**{**four.__dict__, "devices": (Device("GPU", capacity),)})
        return ollama.predicts_fit(sized, layout)

    assert fits(boundary) and not fits(boundary - 1)
    chosen = plan(catalogue, engine="ollama", engine_version="0.5.7", gpu_memory_bytes=boundary)
    assert chosen.batch == 4
    short = plan(catalogue, engine="ollama", engine_version="0.5.7", gpu_memory_bytes=boundary - 1)
    assert short.batch == 1


# -- placement ----------------------------------------------------------------------------------


@pins("calc.placement.place_layers")
def test_gpu_layers_keep_the_first_layers_and_the_output_on_the_cpu(catalogue):
    arch = parse_config(LLAMA)
    layout = weight_layout(arch, catalogue.weight_format("fp16"), catalogue.storage_types)
    half = estimate(catalogue, weights="fp16", gpu_layers=2, context=256)
    assert half.devices[0].layers == (2, 3)
    # the host: layers 0 and 1, the embeddings (always) and the output (-ngl <= layers)
    assert half.host.weights == (
        layout.layer_bytes[0] + layout.layer_bytes[1] + layout.embedding_bytes + layout.output_bytes
    )
    assert half.host.kv_cache == 2 * 128 * 256  # two layers' cache on the CPU
    everything = estimate(catalogue, weights="fp16", gpu_layers=5, context=256)
    assert everything.host.weights == layout.embedding_bytes


@pins("calc.placement.split_layers")
def test_layers_split_by_memory_or_tensor_split():
    devices = [Device("a", 48), Device("b", 24)]
    assert [len(r) for r in split_layers(list(range(80)), devices)] == [53, 27]
    assert [len(r) for r in split_layers(list(range(80)), devices, (1.0, 3.0))] == [20, 60]
    assert [len(r) for r in split_layers(list(range(80)), [Device()] * 3)] == [27, 27, 26]


@pins("calc.placement.place_tensor_parallel", "calc.placement.kv_heads_share")
def test_tensor_parallel_splits_matrices_and_kv_heads(catalogue):
    arch = parse_config(LLAMA)
    layout = weight_layout(arch, catalogue.weight_format("bf16"), catalogue.storage_types)
    two = estimate(catalogue, engine="vllm", weights="bf16", context=256, gpus=2)
    vectors = layout.total_bytes - layout.matrix_bytes
    assert two.devices[0].components.weights == ceil(layout.matrix_bytes / 2) + vectors
    assert two.devices[0].components.kv_cache == 4 * 2 * 16 * 2 * 256  # one of the 2 KV heads
    assert kv_heads_share(parse_config({**LLAMA, "num_key_value_heads": 4}), 3) == 2 / 4
    assert kv_heads_share(arch, 4) == 1 / 2  # fewer heads than GPUs: replicated
    assert kv_heads_share(parse_config(MLA), 8) == 1.0


@pins("calc.engines.vllm.budget")
def test_vllms_reserve_and_the_kv_cache_it_leaves(catalogue):
    def reserve(version, utilization=None):
        result = estimate(
            catalogue, engine="vllm", weights="bf16", gpu_memory_bytes=10 * GIB, context=256,
            engine_version=version, gpu_memory_utilization=utilization,
        )  # fmt: skip
        return result, result.devices[0]

    # 0.9.0: the reserve pays for the weights, the profiling peak and the runtime
    old, device = reserve("0.9.0", 0.9)
    c = device.components
    pool = int(10 * GIB * 0.9) - (c.weights + c.activations + c.runtime)
    assert old.details["kv_cache_capacity_bytes"] == [pool]
    assert c.kv_cache == pool  # the estimate's KV cache is the reserve vLLM fills
    assert device.total_bytes == int(10 * GIB * 0.9)  # what nvidia-smi shows
    # 0.9.1 counts from after the CUDA context: the runtime is outside the share
    new, device = reserve("0.9.1", 0.9)
    c = device.components
    assert new.details["kv_cache_capacity_bytes"] == [
        int(10 * GIB * 0.9) - c.weights - c.activations
    ]
    assert device.total_bytes == int(10 * GIB * 0.9) + c.runtime
    # 0.20: 0.92 by default, and the CUDA graphs' estimate comes out of the share
    newest, device = reserve(None)
    c = device.components
    assert newest.details["gpu_memory_utilization"] == 0.92
    graphs = c.runtime - CUDA_CONTEXT
    assert newest.details["kv_cache_capacity_bytes"] == [
        int(10 * GIB * 0.92) - c.weights - c.activations - graphs
    ]
    assert device.headroom_bytes == c.kv_cache - 4 * 2 * 32 * 2 * 256  # the reserve less the need


@pins("calc.engines.base.Engine.runtime_bytes", "calc.engines.vllm.Vllm.runtime_bytes")
def test_the_runtime_is_a_cuda_context_and_vllms_graphs(catalogue):
    assert estimate(catalogue).components.runtime == CUDA_CONTEXT
    assert estimate(catalogue, gpus=3).components.runtime == 3 * CUDA_CONTEXT
    # "Graph capturing finished in 14 secs, took 0.21 GiB" (vLLM PR 11349)
    vllm = estimate(catalogue, engine="vllm", context=256)
    assert vllm.components.runtime == CUDA_CONTEXT + int(0.21 * GIB)
    assert estimate(catalogue, engine="transformers").components.runtime == CUDA_CONTEXT


# -- fine-tuning --------------------------------------------------------------------------------


@pins("calc.finetune.lora_parameters")
def test_an_adapter_is_r_times_in_plus_out():
    assert lora_parameters(Tensor("attn_q", WEIGHT, (64, 32), 0), 8) == 8 * (64 + 32)
    experts = Tensor("ffn_up_exps", WEIGHT, (64, 32, 8), 0, routed=True)
    assert lora_parameters(experts, 4) == 4 * (64 + 32) * 8


@pins("calc.finetune.optimizer_state_bytes")
def test_optimizer_state_per_trained_value():
    assert optimizer_state_bytes("adamw", 1000, (1000,), 4) == 8000  # m and v in fp32
    assert optimizer_state_bytes("adamw", 1000, (1000,), 2) == 4000
    assert optimizer_state_bytes("adamw_8bit", 4096, (4096,), 4) == 2 * (4096 + 2 * 4)
    assert optimizer_state_bytes("sgd_momentum", 1000, (1000,), 4) == 4000
    assert optimizer_state_bytes("adafactor", 64 * 32, (64, 32), 4) == 4 * (64 + 32)
    assert optimizer_state_bytes("sgd", 1000, (1000,), 4) == 0


@pins("calc.finetune.layer_token_bytes")
def test_what_a_token_keeps_in_a_layer():
    arch = parse_config(LLAMA)  # h 64, KV width 2 x 2 x 16 = 64, MLP 128
    full = FinetuneRequest(method="full")
    # trained: 2 bytes x (6h + KV + 4 MLP) + the two norms' fp32 copies, 4 x 2h
    assert layer_token_bytes(arch, full) == 2 * (6 * 64 + 64 + 4 * 128) + 4 * 2 * 64
    compiled = FinetuneRequest(method="full", compiled=True)
    assert layer_token_bytes(arch, compiled) == 2 * (6 * 64 + 64 + 4 * 128)
    # frozen: norms' fp32 inputs 2 x 4h, 2 x (2h + KV + 3 MLP); bf16 adapters on q and v read
    # the one normalised input, 2h bytes
    lora = FinetuneRequest(method="lora", lora_targets=("q_proj", "v_proj"),
                           adapter_precision="bf16")  # fmt: skip
    frozen = 2 * 4 * 64 + 2 * (2 * 64 + 64 + 3 * 128)
    assert layer_token_bytes(arch, lora) == frozen + 2 * 64
    # fp32 adapters: a 16-bit copy each; dropout: a copy and a mask each
    fp32 = FinetuneRequest(method="lora", lora_targets=("q_proj", "v_proj"))
    assert layer_token_bytes(arch, fp32) == frozen + 2 * 2 * 64
    dropped = FinetuneRequest(method="lora", lora_targets=("q_proj", "v_proj"), lora_dropout=0.1)
    assert layer_token_bytes(arch, dropped) == frozen + 2 * (2 + 1) * 64
    # norms in 16 bits keep their 16-bit input: 2 x 2h instead of 2 x 4h
    sixteen = FinetuneRequest(method="lora", lora_targets=("q_proj", "v_proj"),
                              adapter_precision="bf16", norms_fp32=False)  # fmt: skip
    assert layer_token_bytes(arch, sixteen) == frozen - 2 * 2 * 64 + 2 * 64


@pins("calc.finetune.norm_bytes")
def test_what_the_norms_keep():
    llama = parse_config(LLAMA)  # h 64: two norms a layer
    lora, full = FinetuneRequest(method="lora"), FinetuneRequest(method="full")
    # frozen weights: each norm's fp32 input copy; trained: and the 16-bit normalised input
    assert norm_bytes(llama, lora) == 2 * 64 * 4
    assert norm_bytes(llama, full) == 2 * 64 * (4 + 2)
    # compiled: the 16-bit input only; computed in 16 bits: the input, and normalised if trained
    assert norm_bytes(llama, FinetuneRequest(method="full", compiled=True)) == 2 * 64 * 2
    assert norm_bytes(llama, FinetuneRequest(method="full", norms_fp32=False)) == 2 * 64 * 4
    # Qwen3: q (4 heads x 16) and k (2 x 16) normalised per head too
    qwen3 = parse_config(QWEN3)
    assert norm_bytes(qwen3, lora) == (2 * 64 + 64 + 32) * 4
    # Gemma 3: four norms a layer and q/k norms, the weight multiplied in fp32
    gemma3 = parse_config({**QWEN3, "model_type": "gemma3_text"})
    assert norm_bytes(gemma3, lora) == (4 * 64 + 64 + 32) * 4
    assert norm_bytes(gemma3, full) == (4 * 64 + 64 + 32) * (4 + 4)
    # OLMo 2: two norms and q/k norms over the whole projections, also fp32
    olmo2 = parse_config({**LLAMA, "model_type": "olmo2"})
    assert norm_bytes(olmo2, full) == (2 * 64 + 64 + 32) * (4 + 4)


@pins("calc.finetune.routed_bytes")
def test_a_routed_layer_keeps_each_chosen_experts_output():
    moe = parse_config(MLA)  # 4 experts, 2 a token, h 64
    # the router's fp32 softmax, and each chosen expert's 16-bit output for its routing weight
    assert routed_bytes(moe, FinetuneRequest(method="lora")) == 4 * 4 + 2 * 2 * 64
    # trained experts also keep their gathered inputs
    assert routed_bytes(moe, FinetuneRequest(method="full")) == 4 * 4 + 2 * 2 * 2 * 64
    assert routed_bytes(parse_config(LLAMA), FinetuneRequest(method="full")) == 0


@pins("calc.finetune.fused_qkv_bytes")
def test_a_fused_qkv_projection_keeps_its_padded_update_and_wider_attention_inputs():
    arch = parse_config(LLAMA)  # q 4 heads x 16 = 64, k and v 2 heads x 16 = 32 each

    def fused(*targets: str) -> FinetuneRequest:
        return FinetuneRequest(method="lora", lora_targets=targets, fused_qkv=True)

    # grouped-query attention: k and v repeated to q's 64 values each, 2 x (64 - 32) more
    repeated = 2 * (64 - 32)
    # q and v adapted: index_copy's 16-bit source is q's and v's width
    assert fused_qkv_bytes(arch, fused("q_proj", "v_proj")) == 2 * (64 + 32 + repeated)
    assert fused_qkv_bytes(arch, fused("k_proj")) == 2 * (32 + repeated)
    # all three or none adapted: nothing is padded
    assert fused_qkv_bytes(arch, fused("q_proj", "k_proj", "v_proj")) == 2 * repeated
    assert fused_qkv_bytes(arch, fused("o_proj")) == 2 * repeated
    # as many k and v heads as q heads: v is a view of the whole q, k, v output
    mha = parse_config({**LLAMA, "num_key_value_heads": 4})
    assert fused_qkv_bytes(mha, fused("q_proj", "k_proj", "v_proj")) == 2 * (64 + 64)
    # projections kept apart (PEFT, torchtune): none of it
    apart = FinetuneRequest(method="lora", lora_targets=("q_proj", "v_proj"))
    assert fused_qkv_bytes(arch, apart) == 0
    # transformers' Phi-3 slices q, k and v out of one projection and passes v on as a view
    phi3 = parse_config({**LLAMA, "model_type": "phi3"})
    assert fused_qkv_bytes(phi3, apart) == 2 * (64 + 32)


@pins("calc.finetune.activation_bytes")
def test_activations_over_the_model_and_the_loss():
    arch = parse_config(LLAMA)
    per_token = 2 * (6 * 64 + 64 + 4 * 128) + 4 * 2 * 64
    # the fp32 log-softmax, then the NLL's and the log-softmax's fp32 gradients
    loss = 100 * 1000 * 3 * 4
    plain = FinetuneRequest(grad_checkpointing=False, method="full", seq_len=100)
    assert activation_bytes(arch, plain) == 4 * 100 * per_token + loss
    eager = FinetuneRequest(
        grad_checkpointing=False, method="full", seq_len=100, flash_attention=False
    )
    assert activation_bytes(arch, eager) - activation_bytes(arch, plain) == 4 * 4 * 100 * 100 * 4
    checkpointed = FinetuneRequest(method="full", seq_len=100, grad_checkpointing=True)
    assert activation_bytes(arch, checkpointed) == 4 * 100 * 64 * 2 + 100 * per_token + loss
    chunked = FinetuneRequest(
        grad_checkpointing=False, method="full", seq_len=100, compiled=True, chunked_loss=True
    )
    compiled = 2 * (6 * 64 + 64 + 4 * 128)
    # compiled: the 16-bit logits and one chunk's 16-bit gradient (of 8), no fp32 copy
    assert activation_bytes(arch, chunked) == 4 * 100 * compiled + 100 * 1000 * 2 + 100_000 * 2 // 8


@pins("calc.finetune.backward_peak")
def test_one_gpu_peaks_at_one_end_of_the_backward_pass(catalogue):
    short = run_finetune(
        catalogue, FinetuneRequest(grad_checkpointing=False, method="full", seq_len=1), config=LLAMA
    )
    assert short.components.activations == 0  # every gradient, no activation
    assert short.components.gradients == 2 * 276_032
    long = run_finetune(
        catalogue,
        FinetuneRequest(grad_checkpointing=False, method="full", seq_len=4096),
        config=LLAMA,
    )
    assert long.components.gradients == 2 * 64 * 1000  # only the output layer's
    arch = parse_config(LLAMA)
    assert long.components.activations == activation_bytes(arch, long.request)


@pins("calc.finetune.sharded")
def test_zero_divides_and_offload_moves(catalogue):
    def parts(**kwargs):
        request = FinetuneRequest(method="full", seq_len=1, gpus=4, **kwargs)
        return run_finetune(catalogue, request, config=LLAMA)

    plain, zero2 = parts(), parts(zero=2)
    assert zero2.devices[0].components.optimizer == ceil(plain.devices[0].components.optimizer / 4)
    assert zero2.devices[0].components.gradients == ceil(plain.devices[0].components.gradients / 4)
    assert zero2.devices[0].components.weights == plain.devices[0].components.weights
    offloaded = parts(zero=3, offload="all")
    assert offloaded.devices[0].components.optimizer == 0
    assert offloaded.host.optimizer == plain.devices[0].components.optimizer
    assert offloaded.devices[0].components.weights == plain.devices[0].components.weights // 4


# -- the edges of each rule: the other side of each max, remainders, boundaries -------------

SMALL_VOCAB = {**LLAMA, "vocab_size": 100}


@pins(
    "calc.engines.llama_cpp.graph_bytes",
    "calc.engines.llama_cpp.llama_graph",
    "calc.engines.llama_cpp.qwen_graph",
    "calc.engines.llama_cpp.mla_graph",
)
def test_at_a_short_context_the_output_layer_sizes_the_graph():
    def graph(config, partial):
        arch = parse_config(config)
        return graph_bytes(arch, context_tokens=8, partial=partial, flash_attention=False)

    # b = c = 8: the logits, 4b(h + V), outweigh the attention terms
    assert graph(LLAMA, False) == 4 * 8 * (64 + 1000)
    assert graph(LLAMA, True) == 4 * 8 * 64 + 4 * 8 * (64 + 1000) + 64 * 1000 * 105 // 128
    assert graph(QWEN3, False) == 4 * 8 * (64 + 1000)
    assert graph(QWEN3, True) == 4 * 8 * (64 + 1000) + 64 * 1000 * 105 // 128
    assert graph(MLA, False) == 4 * 8 * (3 * 64 + 1000)
    assert graph(MLA, True) == 4 * 8 * (3 * 64 + 1000) + 64 * 1000 * 105 // 128
    # with flash attention and a small vocabulary, 4b(1 + 4h) with no context term
    small = parse_config(SMALL_VOCAB)
    assert graph_bytes(small, context_tokens=2000, partial=False, flash_attention=True) == (
        4 * 512 * (1 + 4 * 64)
    )


@pins("calc.engines.ollama.Ollama.partial_graph")
def test_ollama_on_one_gpu_with_every_layer_builds_the_full_graph(catalogue):
    one = estimate(catalogue, engine="ollama", context=2048, batch=1, flash_attention=False)
    arch = parse_config(LLAMA)
    full = graph_bytes(arch, context_tokens=2048, partial=False, flash_attention=False)
    assert one.components.activations == full


@pins("calc.engines.theory.Theory.estimate")
def test_the_theory_gives_the_first_gpus_the_remainder(catalogue):
    result = estimate(catalogue, engine="theory", weights="int4", gpus=3)
    assert [d.total_bytes for d in result.devices] == [46_006, 46_005, 46_005]  # 138,016 / 3


@pins("calc.engines.ollama.Ollama.choose_batch")
def test_ollama_picks_4_slots_without_a_gpu_and_1_when_nothing_fits(catalogue):
    assert plan(catalogue, engine="ollama", engine_version="0.5.7").batch == 4
    tiny = plan(catalogue, engine="ollama", engine_version="0.5.7", gpu_memory_bytes=100 * MIB)
    assert tiny.batch == 1  # not even one slot passes the fit rule: Ollama still takes one


@pins("calc.engines.transformers.prefill_bytes")
def test_eager_attention_scores_are_per_sequence():
    arch = parse_config(LLAMA)
    two = prefill_bytes(
        arch, context_tokens=200, batch=2, flash_attention=False, prompt_logits=False
    )
    # 2 sequences of 100: the MLP over 200 tokens, scores 2 x H x 100², logits for 2 rows
    assert two == 200 * (3 * 128 + 4 * 64) * 2 + 2 * 4 * 100 * 100 * (2 + 4) + 2 * 1000 * 4


@pins("calc.engines.vllm.budget")
def test_a_model_larger_than_vllms_share_leaves_no_kv_cache(catalogue):
    result = estimate(catalogue, engine="vllm", weights="bf16", gpu_memory_bytes=MIB, context=16)
    details = result.to_json()["engine_details"]
    assert details["kv_cache_capacity_bytes"][0] < 0  # as vLLM prints it, and stops
    assert (details["kv_cache_tokens"], details["max_concurrency"]) == (0, 0.0)
    assert result.fits is False


@pins("calc.engines.vllm.kv_capacity")
def test_vllms_kv_tokens_and_concurrency(catalogue):
    """Blocks of 16 tokens; the sliding-window group needs the window and one step's tokens."""
    result = estimate(
        catalogue, engine="vllm", weights="bf16", gpu_memory_bytes=10 * GIB, context=4096
    )
    pool = result.details["kv_cache_capacity_bytes"][0]
    per_token = 4 * 2 * 32 * 2  # 4 layers x K and V x 32 values x bf16
    blocks = pool // (16 * per_token)
    assert result.details["kv_cache_tokens"] == int(blocks / (4096 // 16) * 4096)
    assert result.details["max_concurrency"] == round(blocks / (4096 // 16), 2)
    # SLIDING: every layer slides (window 32): one group, and a request needs the window and
    # one step of max_num_batched_tokens (2048), not its 4096 tokens
    sliding = estimate(
        catalogue, SLIDING, engine="vllm", weights="bf16", gpu_memory_bytes=10 * GIB,
        context=4096, engine_version="0.23.0",
    )  # fmt: skip
    pool = sliding.details["kv_cache_capacity_bytes"][0]
    blocks = pool // (16 * per_token)
    need = -(-(32 - 1 + 2048) // 16) + 1
    assert sliding.details["max_concurrency"] == round(blocks / need, 2)
    assert sliding.details["kv_cache_tokens"] == blocks * 16  # 0.23: blocks x 16


@pins("calc.engines.vllm.splits_heads")
def test_vllm_tensor_parallel_divides_the_heads():
    arch = parse_config(LLAMA)  # 4 heads, 2 KV heads
    assert [n for n in range(1, 9) if splits_heads(arch, n)] == [1, 2, 4]
    wide = parse_config({**LLAMA, "num_attention_heads": 8, "num_key_value_heads": 8})
    assert splits_heads(wide, 8) and not splits_heads(wide, 6)


@pins("calc.engines.vllm.profile_batch")
def test_vllms_defaults_at_their_boundaries():
    v0, v1 = ENGINES["vllm"].release("0.6.4"), ENGINES["vllm"].release("0.10.0")
    small = Device("RTX 4090", 24 * GIB)
    assert profile_batch(v0, max_model_len=32768, gpu=small) == (32768, 256)  # above, not at
    assert profile_batch(v1, max_model_len=1, gpu=Device("L40", 70 * GIB)) == (8192, 1024)


@pins("calc.engines.vllm.profile_peak")
def test_vllms_fused_moe_buffers_include_the_shared_expert():
    mla = parse_config(MLA)  # 2 of 4 experts of 32, one shared expert of 32, dense MLP 128
    dense = 2048 * (3 * 128 // 2 + 4 * 64) * 2
    fused = 2048 * (2 * (max(2 * 16, 64) + 16) + 3 * 32 // 2 + 4 * 64) * 2
    assert profile_peak(mla, tokens=2048, seqs=1, tensor_parallel=2, samples=False) == max(
        dense, fused
    )
    assert fused > dense


@pins("calc.finetune.layer_token_bytes")
def test_mla_keeps_its_latent_for_the_backward_pass():
    mla = parse_config(MLA)  # latent 32 + rope 8; widest MLP max(128, 2 x 32 + 32)
    full = FinetuneRequest(method="full")
    # and its router's softmax over 4 experts, each of 2 chosen experts' input and output
    routed = 4 * 4 + 2 * 2 * 2 * 64
    assert layer_token_bytes(mla, full) == 2 * (6 * 64 + 40 + 4 * 128) + 4 * 2 * 64 + routed


@pins("calc.finetune.foreach_workspace")
def test_a_foreach_adamw_step_writes_one_state_sized_temporary(catalogue):
    """At the end of the backward pass every gradient exists; the foreach step then writes
    exp_avg_sq's square root for every trained value: 2 bytes each for bf16 weights."""

    def parts(**kwargs):
        request = FinetuneRequest(method="full", precision="bf16", seq_len=1, **kwargs)
        return run_finetune(catalogue, request, config=LLAMA)

    fused, foreach = parts(), parts(foreach_step=True)
    trained = fused.trainable_parameters
    assert foreach.components.optimizer - fused.components.optimizer == 2 * trained
    assert foreach.components.gradients == fused.components.gradients == 2 * trained
    assert any("foreach AdamW step" in note for note in foreach.notes)
    # 8-bit Adam steps in place; mixed precision's fp32 weights make it 4 bytes a value
    assert parts(optimizer="adamw_8bit", foreach_step=True).components == (
        parts(optimizer="adamw_8bit").components
    )
    amp = dict(method="full", precision="amp", seq_len=1)
    with_step = run_finetune(catalogue, FinetuneRequest(**amp, foreach_step=True), config=LLAMA)
    without = run_finetune(catalogue, FinetuneRequest(**amp), config=LLAMA)
    assert with_step.components.optimizer - without.components.optimizer == 4 * trained
    # at the backward's start (long sequences) the step has not come yet
    long = dict(method="full", precision="bf16", seq_len=4096)
    assert (
        run_finetune(catalogue, FinetuneRequest(**long, foreach_step=True), config=LLAMA).components
        == run_finetune(catalogue, FinetuneRequest(**long), config=LLAMA).components
    )


@pins("calc.finetune.qlora_base")
def test_qlora_keeps_what_a_bitsandbytes_checkpoint_leaves_unquantised(catalogue):
    nf4 = catalogue.weight_format("nf4")
    bnb = {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}
    assert qlora_base(parse_config(LLAMA), nf4) == nf4
    assert qlora_base(parse_config({**LLAMA, "quantization_config": bnb}), nf4) == nf4
    skip = {**bnb, "llm_int8_skip_modules": ["model.layers.2.mlp.down_proj"]}
    base = qlora_base(parse_config({**LLAMA, "quantization_config": skip}), nf4)
    kept = [
        t.name
        for t in model_tensors(parse_config(LLAMA))
        if t.kind == WEIGHT
        and tensor_storage(t, base, parse_config(LLAMA), catalogue.storage_types).bits_per_weight
        == 16
        and t.layer is not None
        and len(t.shape) >= 2
    ]
    assert kept == ["blk.2.ffn_down.weight"]


@pins("calc.finetune.loss_logit_bytes", "calc.finetune.outputs_fp32", "calc.finetune.fp32_loss")
def test_the_loss_holds_twelve_bytes_a_logit_or_four_reading_log_probabilities(catalogue):
    arch = parse_config(LLAMA)  # vocabulary 1,000
    # transformers' loss upcasts the logits: its fp32 log-softmax, then at the backward's start
    # the NLL's gradient and the log-softmax's, all fp32 (scripts/logit_peak.py: 12.0)
    sft = FinetuneRequest(method="full", seq_len=100)
    assert loss_logit_bytes(arch, sft) == 100 * 1000 * 3 * 4
    # a cross-entropy on 16-bit logits (LitGPT in bf16-true) and Megatron's fused one keep the
    # count from before any trace: 16-bit logits, an fp32 copy and its log-softmax
    litgpt = replace(sft, loss_upcast=False, precision="bf16")
    assert loss_logit_bytes(arch, litgpt) == 100 * 1000 * (2 + 4 + 4)
    assert loss_logit_bytes(arch, replace(litgpt, precision="amp")) == 100 * 1000 * 12  # autocast
    megatron = replace(sft, sharding="megatron", zero=1)
    assert loss_logit_bytes(arch, megatron) == 100 * 1000 * (2 + 4 + 4)
    # a DPO pair, two sequences of 100 tokens, read row by row: under Accelerate's autocast the
    # logits come back fp32 and the backward pass holds them, the stacked logsumexp gradients
    # and the gather's gradient; 16-bit logits (DeepSpeed, pure bf16) keep logits and log-softmax
    dpo = FinetuneRequest(method="dpo", seq_len=100)  # TRL's selective_log_softmax by default
    assert loss_logit_bytes(arch, dpo) == 2 * 100 * 1000 * 3 * 4
    bf16 = replace(dpo, precision="bf16")
    assert loss_logit_bytes(arch, bf16) == 2 * 100 * 1000 * (2 + 2)
    deepspeed = replace(dpo, zero=2)
    assert loss_logit_bytes(arch, deepspeed) == loss_logit_bytes(arch, bf16)
    orpo = replace(bf16, method="orpo")
    assert loss_logit_bytes(arch, orpo) == 2 * 100 * 1000 * (2 + 2) + 100 * 1000 * 2
    amp_orpo = replace(dpo, method="orpo")
    assert loss_logit_bytes(arch, amp_orpo) == 2 * 100 * 1000 * 12 + 100 * 1000 * 4
    assert loss_logit_bytes(arch, replace(dpo, selective_logprobs=False)) == 2 * 100 * 1000 * 12
    # GRPO's temperature divided in place on a view (TRL 1.0 to 1.9) adds the gradient's clone
    # and quotient: four tensors the size of the logits; DPO has no temperature
    grpo = FinetuneRequest(method="grpo", seq_len=100, completion_len=50)
    assert loss_logit_bytes(arch, grpo) == 50 * 1000 * 3 * 4
    in_place = replace(grpo, temperature_in_place=True)
    assert loss_logit_bytes(arch, in_place) == 50 * 1000 * 4 * 4
    assert loss_logit_bytes(arch, replace(in_place, precision="bf16")) == 50 * 1000 * 4 * 2
    assert loss_logit_bytes(arch, replace(dpo, temperature_in_place=True)) == loss_logit_bytes(
        arch, dpo
    )
    # TRL's fused LM head (1.15.0 on): one 4,096 x 32,768 tile, the hidden states scored, their
    # fp32 gradient and its 16-bit cast (hidden size 64); the tile shrinks to the tokens and the
    # vocabulary when they are fewer
    tiled = replace(sft, fused_loss=True, fused_tiles=True)
    assert loss_logit_bytes(arch, tiled) == 100 * 1000 * 2 + 100 * 64 * (2 + 4 + 2)
    big = replace(arch, vocab_size=151_936)
    long = replace(tiled, seq_len=10_000)
    assert loss_logit_bytes(big, long) == 4096 * 32768 * 2 + 10_000 * 64 * 8
    with pytest.raises(CalcError, match="fused_tiles is how the fused loss cuts the logits"):
        run_finetune(catalogue, replace(sft, fused_tiles=True), config=LLAMA)
    # an SFT loss ignores the switch; the fused loss wins over it
    assert loss_logit_bytes(arch, replace(sft, selective_logprobs=True)) == 100 * 1000 * 12
    fused = replace(dpo, fused_loss=True)
    assert loss_logit_bytes(arch, fused) == loss_logit_bytes(
        arch, replace(fused, selective_logprobs=False)
    )


@pins("calc.finetune.activation_bytes")
def test_activations_per_sample_the_head_adapter_and_the_offloaded_peak():
    arch = parse_config(LLAMA)
    per_token = 2 * (6 * 64 + 64 + 4 * 128) + 4 * 2 * 64
    loss = 2 * 100 * 1000 * 12
    eager = FinetuneRequest(
        grad_checkpointing=False, method="full", seq_len=100, micro_batch=2, flash_attention=False
    )
    assert activation_bytes(arch, eager) == 4 * (200 * per_token + 2 * 4 * 100 * 100 * 4) + loss
    checkpointed = FinetuneRequest(
        method="full", seq_len=100, micro_batch=2, grad_checkpointing=True
    )
    assert activation_bytes(arch, checkpointed) == 4 * 200 * 64 * 2 + 200 * per_token + loss
    # the output layer's adapter keeps the final norm's output, and with dropout a mask
    targets = ("q_proj", "lm_head")
    base = FinetuneRequest(
        grad_checkpointing=False, method="lora", seq_len=100, lora_targets=("q_proj",)
    )
    head = FinetuneRequest(
        grad_checkpointing=False, method="lora", seq_len=100, lora_targets=targets, lora_dropout=0.1
    )
    plain = FinetuneRequest(
        grad_checkpointing=False,
        method="lora",
        seq_len=100,
        lora_targets=("q_proj",),
        lora_dropout=0.1,
    )
    assert activation_bytes(arch, head) - activation_bytes(arch, plain) == 100 * 64 * (2 + 1)
    assert activation_bytes(arch, base) < activation_bytes(arch, plain)
    # an eager chunked loss keeps every chunk's log-softmax, one fp32 upcast at a time
    chunked = FinetuneRequest(
        grad_checkpointing=False, method="full", seq_len=100, chunked_loss=True
    )
    assert activation_bytes(arch, chunked) == 4 * 100 * per_token + 100 * 1000 * (2 + 4) + (
        100 * 1000 * 4 // 8
    )
    # offloaded: one layer's or the loss's, the larger; here one layer of 4,096 tokens
    offloaded = FinetuneRequest(
        grad_checkpointing=False,
        method="full",
        seq_len=4096,
        activation_offloading=True,
        flash_attention=False,
    )
    layer = 4096 * per_token + 4 * 4096 * 4096 * 4
    assert activation_bytes(arch, offloaded) == max(layer, 4096 * 1000 * 12) == layer


@pins("calc.finetune.backward_peak")
def test_the_output_layers_gradient_decides_a_close_peak(catalogue):
    # 22 tokens: 478,016 bytes of activations, less than every gradient (552,064) but not
    # less than them without the output layer's (128,000): the peak is the backward's start
    close = run_finetune(
        catalogue,
        FinetuneRequest(grad_checkpointing=False, method="full", seq_len=22),
        config=LLAMA,
    )
    assert close.components.activations == 22 * (4 * 2432 + 1000 * 12) == 478_016
    assert close.components.gradients == 2 * 64 * 1000


@pins("calc.formats.StorageType.row_bytes")
def test_a_format_without_whole_blocks_rounds_a_row_up_to_a_byte(catalogue):
    nf4 = catalogue.storage_types["nf4"]  # 4.127 bits per value with double quantisation
    assert nf4.block_bytes is None
    assert nf4.row_bytes(4096) == ceil(4096 * 4.127 / 8) == 2114


@pins("calc.finetune.optimizer_state_bytes")
def test_eight_bit_adam_keeps_a_scale_per_2048_values():
    # 4,097 values: two 8-bit states and 3 fp32 scales each (bitsandbytes' blocks of 2,048)
    assert optimizer_state_bytes("adamw_8bit", 4097, (4097,), 4) == 2 * (4097 + 3 * 4)
    assert optimizer_state_bytes("adafactor", 100, (100,), 4) == 4 * 100  # a vector: no factors


@pins("calc.engines.vllm.profile_batch")
def test_vllm_v0_turns_chunked_prefill_on_above_32k():
    v0 = ENGINES["vllm"].release("0.6.4")
    assert profile_batch(v0, max_model_len=32769, gpu=Device("GPU", GIB)) == (2048, 256)


@pins("calc.engines.history.History.at")
def test_the_first_releases_defaults():
    first = ENGINES["llama.cpp"].release("b1000")
    assert (first.default_context, first.all_layers, first.flash_attention) == (512, False, False)
    ollama = ENGINES["ollama"].release("0.1.33")
    assert (ollama.default_context, ollama.default_batch, ollama.parallel_tries) == (2048, 1, ())


@pins("calc.finetune.sharded")
def test_each_zero_stage_divides_one_more_part(catalogue):
    def per_gpu(**kwargs):
        request = FinetuneRequest(method="full", seq_len=1, gpus=4, **kwargs)
        return run_finetune(catalogue, request, config=LLAMA).devices[0].components

    plain, one, three = per_gpu(), per_gpu(zero=1), per_gpu(zero=3)
    assert one.optimizer == ceil(plain.optimizer / 4) and one.gradients == plain.gradients
    # ZeRO-3 under DeepSpeed also holds what it has gathered (_with_gathered_modules)
    arch = parse_config(LLAMA)
    block = sum(t.numel for t in model_tensors(arch) if t.layer == 0)
    gathered = 2 * (arch.vocab_size * arch.hidden_size + block)
    assert three.weights == ceil(plain.weights / 4) + gathered
    assert per_gpu(zero=1, offload="optimizer").optimizer == 0


@pins("calc.placement.place_layers")
def test_gpu_layers_equal_to_the_layers_leave_the_output_on_the_cpu(catalogue):
    arch = parse_config(LLAMA)
    layout = weight_layout(arch, catalogue.weight_format("fp16"), catalogue.storage_types)
    four = estimate(catalogue, weights="fp16", gpu_layers=4, context=256)
    assert four.host.weights == layout.embedding_bytes + layout.output_bytes


@pins("calc.tensors.model_tensors")
def test_gemma_normalises_each_sublayers_output_too():
    gemma = parse_config({**LLAMA, "model_type": "gemma2", "head_dim": 16})
    norms = [t.role for t in model_tensors(gemma) if t.layer == 0 and t.role.endswith("norm")]
    assert len(norms) == 4


@pins("calc.finetune.layer_token_bytes")
def test_a_fused_qkv_projection_has_one_dropout(catalogue):
    arch = parse_config(LLAMA)
    qkv = ("q_proj", "k_proj", "v_proj")
    fused = FinetuneRequest(method="lora", lora_targets=qkv, lora_dropout=0.1, fused_qkv=True)
    apart = FinetuneRequest(method="lora", lora_targets=qkv, lora_dropout=0.1)
    # two dropouts fewer, though LitGPT's attention keeps k and v repeated to q's width
    repeated = fused_qkv_bytes(arch, fused)
    assert layer_token_bytes(arch, apart) - layer_token_bytes(arch, fused) + repeated == (
        2 * (2 + 1) * 64
    )


# -- --fit ---------------------------------------------------------------------------------------

BIG = {**LLAMA, "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 8,
       "num_attention_heads": 8, "num_key_value_heads": 8, "vocab_size": 32000}  # fmt: skip
MIB_1024 = 1024 * MIB


def _fit_estimate(catalogue, config, gib, **kwargs):
    return estimate(catalogue, config, weights="fp16", gpu_memory_bytes=int(gib * GIB), **kwargs)


@pins("calc.engines.fit.fit_context")
def test_fit_shrinks_a_default_context_to_what_fits(catalogue):
    """BIG: 8 layers of fp16 (~0.5 GiB weights), 16 KiB of KV cache per token (65536 trained)."""
    result = _fit_estimate(catalogue, BIG, 2.5)
    device = result.devices[0]
    assert 4096 <= result.context < 65536 and result.context % 256 == 0
    assert device.headroom_bytes >= MIB_1024  # the margin is kept
    # 256 more, every layer still on the GPU, would not keep it
    wider = _fit_estimate(catalogue, BIG, 2.5, context=result.context + 256, gpu_layers=9)
    assert wider.devices[0].headroom_bytes < MIB_1024
    assert any("shrank the context from 65536" in n for n in result.notes)
    # a context the reader gives is never shrunk
    assert _fit_estimate(catalogue, BIG, 2.5, context=65536).context == 65536


@pins("calc.engines.fit.fit_layers")
def test_fit_keeps_whole_layers_in_cpu_ram_until_the_rest_fits(catalogue):
    result = _fit_estimate(catalogue, BIG, 1.7, context=4096)
    device = result.devices[0]
    on_gpu = len(device.layers)
    assert 0 < on_gpu < 8 and device.headroom_bytes >= MIB_1024
    one_more = _fit_estimate(catalogue, BIG, 1.7, context=4096, gpu_layers=on_gpu + 1)
    assert one_more.devices[0].headroom_bytes < MIB_1024
    assert result.host.weights > 0 and result.host.kv_cache > 0


@pins("calc.engines.fit.run_fit")
def test_fit_leaves_the_layers_to_a_reader_who_set_them(catalogue):
    mine = _fit_estimate(catalogue, BIG, 0.75, context=4096, gpu_layers=9)
    assert len(mine.devices[0].layers) == 8  # as asked, though it does not fit
    assert mine.fits is False
    assert any("leaves the layers alone: -ngl is set" in n for n in mine.notes)
    # before b7437 there is no --fit: every layer goes to the GPU (from b6325)
    old = _fit_estimate(catalogue, BIG, 0.75, context=4096, engine_version="b6325")
    assert len(old.devices[0].layers) == 8 and old.fits is False
    # and before b6325 none does unless -ngl says
    older = _fit_estimate(catalogue, BIG, 0.75, context=4096, engine_version="b6000")
    assert older.devices[0].layers == () and older.host.weights > 0


BIG_MOE = {**MOE, "hidden_size": 1024, "moe_intermediate_size": 1024, "num_experts": 64,
           "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 8,
           "vocab_size": 32000, "head_dim": 128}  # fmt: skip


@pins("calc.engines.fit.fit_layers")
def test_fit_gives_moe_layers_their_experts_back_front_to_back(catalogue):
    """8 MoE layers of 64 experts (~0.75 GiB of experts each in fp16): on one GPU of 4 GiB the
    attention goes on for every layer, and the first layers take their experts back."""
    one = _fit_estimate(catalogue, BIG_MOE, 4, context=4096)
    device = one.devices[0]
    assert len(device.layers) == 8 and device.headroom_bytes >= MIB_1024
    kept = [n for n in one.notes if "routed experts of the last" in n]
    assert kept and 0 < int(kept[0].split("last ")[1].split()[0]) < 8
    # two such GPUs: both take layers with their experts, GPU 0 first
    two = _fit_estimate(catalogue, BIG_MOE, 4, context=4096, gpus=2)
    assert all(d.layers and d.headroom_bytes >= MIB_1024 for d in two.devices)
    assert two.host.weights < one.host.weights  # the second GPU holds more experts


@pins("calc.engines.ollama.engine_graph_bytes")
def test_ollamas_own_engine_keeps_logits_for_one_row_per_sequence():
    moe = parse_config(MOE)  # h 64, 2 of 8 experts of 32, V 1000
    b = 512
    width = 2 * (3 * 32 + 64)
    assert engine_graph_bytes(
        moe, context_tokens=4096, sequences=1, flash_attention=True, ubatch=b
    ) == 4 * (b * (1 + 4 * 64 + width) + 1 * (64 + 1000))
    dense = parse_config(LLAMA)
    off = engine_graph_bytes(
        dense, context_tokens=600, sequences=2, flash_attention=False, ubatch=b
    )
    assert off == 4 * (b * (1 + 4 * 64 + 3 * 128) + b * 600 * (1 + 4) + 2 * (64 + 1000))


@pins("calc.finetune._with_unsharded_blocks")
def test_fsdp_holds_two_whole_blocks_and_one_blocks_gradients(catalogue):
    def parts(sharding):
        request = FinetuneRequest(
            method="full", precision="bf16", seq_len=1, gpus=4, zero=3, sharding=sharding
        )
        return run_finetune(catalogue, request, config=LLAMA).devices[0].components

    arch = parse_config(LLAMA)
    block = sum(t.numel for t in model_tensors(arch) if t.layer == 0)
    output = arch.vocab_size * arch.hidden_size
    fsdp, deepspeed = parts("fsdp"), parts("deepspeed")
    # FSDP's two whole blocks against DeepSpeed's output layer and one block, gathered
    assert fsdp.weights - deepspeed.weights == 2 * (2 * block) - 2 * (output + block)
    # DeepSpeed's fp32 gradient partition and the output layer's whole bf16 gradient, against
    # FSDP's bf16 partition plus a whole block's
    total = sum(t.numel for t in model_tensors(arch))
    assert deepspeed.gradients == ceil(4 * total / 4) + 2 * output
    assert fsdp.gradients == ceil(2 * total / 4) + 2 * block


@pins("calc.finetune._with_gathered_modules")
def test_deepspeed_zero3_keeps_the_output_layer_gathered_through_the_loss(catalogue):
    def parts(method, zero=3):
        request = FinetuneRequest(method=method, seq_len=1, gpus=4, zero=zero)
        return run_finetune(catalogue, request, config=LLAMA).devices[0].components

    arch = parse_config(LLAMA)
    output = 2 * arch.vocab_size * arch.hidden_size
    # LoRA: the frozen output layer gathered, no gradient of its own; one GPU gathers nothing
    two, three = parts("lora", zero=2), parts("lora")
    block = sum(t.numel for t in model_tensors(arch) if t.layer == 0)
    assert three.weights - ceil(two.weights / 4) == output + 2 * block
    assert three.gradients == two.gradients
    one = run_finetune(catalogue, FinetuneRequest(method="lora", seq_len=1, zero=3), config=LLAMA)
    assert not any("gathered" in note for note in one.notes)


@pins("calc.finetune._fsdp_gradients")
def test_fsdp_gradients_accumulated_unsharded_or_flat_are_held_whole(catalogue):
    def gradients(**kwargs):
        request = FinetuneRequest(seq_len=1, gpus=4, zero=3, sharding="fsdp", **kwargs)
        return run_finetune(catalogue, request, config=LLAMA).devices[0].components.gradients

    total = sum(t.numel for t in model_tensors(parse_config(LLAMA)))
    full = {"method": "full", "precision": "bf16", "grad_accumulation": 2}
    assert gradients(**full, accumulate_unsharded=True) == 2 * total  # nothing divided
    blocks = sum(t.numel for t in model_tensors(parse_config(LLAMA)) if t.layer is not None)
    lora = {"method": "lora", "adapter_precision": "bf16", "grad_accumulation": 2}
    adapters = gradients(**lora, accumulate_unsharded=True)  # FSDP2: the adapters' alone
    assert gradients(**lora, accumulate_unsharded=True, flat_parameters=True) == (
        adapters + 2 * blocks
    )


@pins("calc.finetune.dequantised_bytes")
def test_qlora_counts_its_largest_4_bit_weight_dequantised(catalogue):
    def weights(**kwargs):
        request = FinetuneRequest(method="qlora", seq_len=1, **kwargs)
        return run_finetune(catalogue, request, config=LLAMA).components.weights

    largest = max(
        t.numel
        for t in model_tensors(parse_config(LLAMA))
        if t.layer is not None and len(t.shape) == 2
    )
    # quantised from fp16: the fp16 copy and its bf16 cast, not one 16-bit copy
    assert weights(fp16_quant_state=True) - weights() == 2 * largest
    lora = run_finetune(catalogue, FinetuneRequest(method="lora", seq_len=1), config=LLAMA)
    assert not any("dequantised" in note for note in lora.notes)


@pins("calc.finetune.residual_width")
def test_peft_kbit_preparation_makes_the_residual_stream_fp32(catalogue):
    def activations(upcast):
        request = FinetuneRequest(method="qlora", seq_len=100, kbit_upcast=upcast)
        return run_finetune(catalogue, request, config=LLAMA).components.activations

    arch = parse_config(LLAMA)
    # the checkpointed layer inputs at 4 bytes instead of 2, the output layer's bf16 copy, and
    # the layer being recomputed keeps its MLP's gate, up and activation in fp32 (4-bit layers
    # return their fp32 input's dtype)
    expected = arch.num_layers * 100 * arch.hidden_size * 2 + arch.vocab_size * arch.hidden_size * 2
    expected += 100 * 3 * arch.intermediate_size * 2
    assert activations(True) - activations(False) == expected


@pins("calc.finetune.fused_chunk_tokens")
def test_a_fused_loss_splits_by_tokens_or_by_a_memory_budget():
    from calc.finetune import fused_chunk_tokens

    assert fused_chunk_tokens(100, 1000, 0) == 100  # shorter than one 256-token chunk
    assert fused_chunk_tokens(4096, 1000, 0) == 256
    # Unsloth: one chunk while the fp32 logits fit the budget, else a multiple of four chunks
    fits = 2**30 // (1000 * 4)  # the most tokens whose fp32 logits fit 1 GiB
    assert fused_chunk_tokens(fits, 1000, 1.0) == fits
    assert fused_chunk_tokens(fits + 1, 1000, 1.0) == ceil((fits + 1) / 4)
    assert fused_chunk_tokens(5 * fits, 1000, 1.0) == ceil(5 * fits / 8)
