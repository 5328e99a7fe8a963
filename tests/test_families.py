"""2025-26 architectures: hybrid recurrent models and Qwen's vision-language wrappers give their
published parameter counts, and their recurrent state and KV cache the sizes llama.cpp logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calc import count_parameters, parse_config
from calc.architecture import NONE

PUBLISHED = json.loads(
    (Path(__file__).parent / "data" / "published_counts_2026.json").read_text(encoding="utf-8")
)["models"]


@pytest.mark.parametrize("entry", PUBLISHED, ids=[e["id"] for e in PUBLISHED])
def test_published_parameter_counts(entry):
    """Each figure is an exact total read from the model's safetensors index or the Hub API
    (the entry's "source"); Qwen3-Next's and Qwen3.5's include the MTP layer their files ship."""
    counted = count_parameters(parse_config(entry["config"]))
    total = counted.checkpoint_total if entry["counts"] == "checkpoint" else counted.total
    assert total == entry["published"]


def config_of(model_id: str) -> dict:
    return next(e["config"] for e in PUBLISHED if e["id"] == model_id)


def memory(catalogue, model_id: str, **request) -> dict:
    """Bytes by part, GPUs and host RAM together."""
    from calc import InferenceRequest, run_inference

    estimate = run_inference(catalogue, InferenceRequest(config=config_of(model_id), **request))
    return {
        key: value + estimate.host.as_dict()[key]
        for key, value in estimate.components.as_dict().items()
    } | {"details": estimate.details}


MIB = 2**20


def test_llama_cpp_keeps_qwen35_state_per_slot_and_kv_only_for_attention_layers(catalogue):
    """llama-server -hf unsloth/Qwen3.5-2B-GGUF:Q8_0 -c 0, -np auto (b9140):
    "llama_kv_cache: size = 3072.00 MiB (262144 cells, 6 layers, 4/1 seqs)" and
    "llama_memory_recurrent: size = 77.06 MiB (4 cells, 24 layers, 4 seqs), R (f32): 5.06 MiB,
    S (f32): 72.00 MiB" (a log the search index holds; the research notes give its id)."""
    got = memory(catalogue, "qwen3.5-2b", engine="llama.cpp", weights="q8_0")
    assert got["kv_cache"] == 3072 * MIB
    assert round(got["recurrent_state"] / MIB, 2) == 77.06
    # 18 linear-attention layers x 4 cells x (R: 3 x 6144 + S: 128 x 128 x 16) f32 values
    assert got["recurrent_state"] == 18 * 4 * (3 * 6144 + 128 * 128 * 16) * 4


def test_one_sequence_keeps_one_state(catalogue):
    """llama-cpp-python on a 32-layer Qwen3.5 (9B): "llama_memory_recurrent: size = 50.25 MiB
    (1 cells, 32 layers, 1 seqs), R (f32): 2.25 MiB, S (f32): 48.00 MiB"
    (https://github.com/JamePeng/llama-cpp-python/issues/78)."""
    got = memory(catalogue, "qwen3.5-9b", engine="llama.cpp", batch=1, context=4096)
    assert got["recurrent_state"] == round(50.25 * MIB)


def test_the_state_does_not_grow_with_the_context(catalogue):
    short = memory(catalogue, "qwen3.5-9b", engine="llama.cpp", batch=1, context=4096)
    long = memory(catalogue, "qwen3.5-9b", engine="llama.cpp", batch=1, context=65536)
    assert short["recurrent_state"] == long["recurrent_state"]
    assert long["kv_cache"] == 16 * short["kv_cache"]


def test_vllm_sizes_attention_blocks_to_hold_a_state_page(catalogue):
    """vLLM on Qwen3.5-9B, tensor parallel 2: "Setting attention block size to 528 tokens to
    ensure that attention page size is >= mamba page size"
    (https://github.com/vllm-project/vllm/pull/37467)."""
    got = memory(catalogue, "qwen3.5-9b", engine="vllm", gpus=2, gpu="h100", context=2048)
    assert got["details"]["attention_block_tokens"] == 528


def test_nemotron_h_caches_only_its_attention_layers(catalogue):
    """Nemotron Nano 9B v2: 4 attention layers of 8 KV heads x 128 (16 KiB a token in f16) and
    27 Mamba-2 layers of (3 x 12288 + 128 x 10240) f32 values a sequence."""
    got = memory(catalogue, "nvidia-nemotron-nano-9b-v2", engine="llama.cpp", batch=1, context=4096)
    assert got["kv_cache"] == 4096 * 16 * 1024
    assert got["recurrent_state"] == 27 * (3 * 12288 + 128 * 10240) * 4


def test_pure_attention_models_keep_no_recurrent_state(catalogue):
    from calc import InferenceRequest, run_inference

    estimate = run_inference(catalogue, InferenceRequest(model="llama-3.1-8b"))
    assert estimate.components.recurrent_state == 0


def test_nemotron_blocks_follow_the_pattern():
    arch = parse_config(config_of("nvidia-nemotron-nano-9b-v2"))
    pattern = config_of("nvidia-nemotron-nano-9b-v2")["hybrid_override_pattern"]
    assert [arch.is_recurrent(i) for i in range(arch.num_layers)] == [c == "M" for c in pattern]
    assert [k != NONE for k in arch.layer_kinds] == [c == "*" for c in pattern]
    assert [arch.ffn_kind(i) for i in range(arch.num_layers)] == [
        "dense" if c == "-" else "none" for c in pattern
    ]


def test_falcon_h1_layers_keep_both_caches():
    config = {
        "model_type": "falcon_h1", "hidden_size": 1024, "num_hidden_layers": 36,
        "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 64,
        "intermediate_size": 2048, "mamba_d_ssm": 1536, "mamba_n_heads": 24,
        "mamba_d_head": 64, "mamba_d_state": 128, "mamba_n_groups": 1, "mamba_d_conv": 4,
        "vocab_size": 32784,
    }  # fmt: skip
    arch = parse_config(config)
    assert all(kind != NONE for kind in arch.layer_kinds)
    assert all(arch.recurrent_layers)
    # llama.cpp n_embd_r, n_embd_s: (4 - 1) x (1536 + 2 x 128) and 128 x 1536
    assert (arch.recurrent.conv_values, arch.recurrent.state_values) == (3 * 1792, 128 * 1536)


def test_an_unknown_decoder_is_estimated_with_a_note_naming_what_was_assumed(catalogue):
    from calc import InferenceRequest, run_inference

    config = {
        "model_type": "brand_new_lm", "hidden_size": 2048, "num_hidden_layers": 16,
        "num_attention_heads": 16, "num_key_value_heads": 4, "intermediate_size": 8192,
        "vocab_size": 64000,
    }  # fmt: skip
    estimate = run_inference(catalogue, InferenceRequest(config=config, engine="vllm"))
    assert any(
        "'brand_new_lm' is not modelled: read as a standard decoder" in n for n in estimate.notes
    )
    llama = parse_config({**config, "model_type": "llama"})
    assert count_parameters(parse_config(config)) == count_parameters(llama)


def test_an_unreadable_unknown_config_names_the_missing_keys():
    from calc import ConfigError

    with pytest.raises(ConfigError, match=r"not a standard decoder: missing 'num_hidden_layers'"):
        parse_config({"model_type": "mystery", "hidden_size": 8, "num_attention_heads": 2,
                      "intermediate_size": 16, "vocab_size": 10})  # fmt: skip


def vision_layout(catalogue, **request):
    from calc import InferenceRequest
    from calc.api import resolve
    from calc.layout import weight_layout

    plan = resolve(catalogue, InferenceRequest(**request))
    return weight_layout(plan.arch, plan.weights, catalogue.storage_types)


@pytest.mark.parametrize(
    ("model_id", "logged_mib"),
    [
        # "load_hparams: model size: 1291.40 MiB" (Qwen2.5-VL-7B mmproj F16, llama.cpp 2026)
        ("qwen2.5-vl-7b-instruct", 1291.40),
        # "load_hparams: model size: 1033.29 MiB" (Qwen3-VL-30B-A3B mmproj-F16, ik_llama.cpp)
        ("qwen3-vl-30b-a3b-instruct", 1033.29),
    ],
)
def test_mmproj_files_have_the_logged_size(catalogue, model_id, logged_mib):
    layout = vision_layout(catalogue, config=config_of(model_id), engine="llama.cpp", vision=True)
    assert round(layout.vision_bytes / MIB, 2) == logged_mib


def test_the_vision_tower_is_its_own_part_and_loads_where_the_engine_loads_it(catalogue):
    from calc import InferenceRequest, run_inference

    def vision(**request):
        estimate = run_inference(
            catalogue, InferenceRequest(model="gemma-3-4b", context=4096, **request)
        )
        return estimate.components.vision

    assert vision(engine="llama.cpp") == 0  # only with --mmproj
    # Gemma 3 4B's SigLIP tower: "alloc_compute_meta: CUDA0 compute buffer size = 121.25 MiB"
    buffer = 4096 * (4304 + 3 * 1152) * 4
    assert buffer == 121.25 * MIB
    tower = vision_layout(catalogue, model="gemma-3-4b", engine="llama.cpp").vision_bytes
    assert vision(engine="llama.cpp", vision=True) == tower + buffer
    assert vision(engine="ollama") > 0 and vision(engine="ollama", vision=False) == 0
    # vLLM shards the encoder like the model: two GPUs hold half each
    assert vision(engine="vllm", gpus=2) == pytest.approx(vision(engine="vllm"), abs=2)


def test_text_only_models_have_no_vision_part(catalogue):
    from calc import InferenceRequest, run_inference

    estimate = run_inference(catalogue, InferenceRequest(model="qwen3-8b", vision=True))
    assert estimate.components.vision == 0


@pytest.mark.parametrize("entry", PUBLISHED, ids=[e["id"] for e in PUBLISHED])
def test_the_catalogue_keeps_every_key_the_readers_read(entry):
    """scripts/add_model.py stores only MEMORY_KEYS; they must describe the same model."""
    from calc.architecture import memory_keys

    assert parse_config(memory_keys(entry["config"])) == parse_config(entry["config"])


def test_gemma_3n_shares_the_kv_cache_of_its_last_layers(catalogue):
    """llama.cpp src/models/gemma3n.cpp: "hparams.n_layer_kv_from_start = 20" for E2B (30
    layers, 10 shared) and E4B; only the first 20 layers keep a cache."""
    arch = catalogue.model("gemma-3n-e2b").arch
    assert [arch.keeps_kv(i) for i in range(arch.num_layers)] == [i < 20 for i in range(30)]
    estimate = run(catalogue, model="gemma-3n-e2b", engine="transformers", context=1000, batch=1)
    # K and V of 2 heads x 256 in bf16 (2,048 bytes a token) for the first 20 layers: 4 global
    # layers keep all 1,000 tokens, 16 sliding ones transformers' 512-token window
    assert estimate.components.kv_cache == (4 * 1000 + 16 * 512) * 2048


def test_gemma_3n_keeps_its_per_layer_embeddings_in_host_ram_on_llama_cpp(catalogue):
    """llama.cpp keeps input-layer tensors, per_layer_token_embd among them, on the CPU."""
    gpu = run(catalogue, model="gemma-3n-e2b", engine="llama.cpp", context=4096)
    vllm = run(catalogue, model="gemma-3n-e2b", engine="vllm", context=4096)
    assert gpu.host.weights > 2 * 2**30 * 0.6  # the 1.9B-value table, quantised
    assert vllm.host.weights == 0


def test_gemma_4_global_layers_have_their_own_head_size_and_share_k_as_v(catalogue):
    arch = catalogue.model("gemma-4-31b").arch
    from calc.architecture import FULL
    from calc.tensors import model_tensors

    full = [i for i, kind in enumerate(arch.layer_kinds) if kind == FULL]
    assert arch.attention_shape(full[0]) == (4, 512)
    assert arch.attention_shape(0) == (16, 256)
    names = {t.name for t in model_tensors(arch)}
    assert f"blk.{full[0]}.attn_v.weight" not in names and "blk.0.attn_v.weight" in names
    # llama.cpp logs "model params = 30.70 B" for the language model (the vision encoder is its
    # own mmproj file)
    counted = count_parameters(arch)
    assert round((counted.total - counted.vision) / 1e9, 2) == 30.70


def run(catalogue, **request):
    from calc import InferenceRequest, run_inference

    return run_inference(catalogue, InferenceRequest(**request))


def test_an_unknown_multimodal_wrapper_is_read_through_its_language_model(catalogue):
    """Qwen3-Omni-style nesting: the text model sits in thinker_config.text_config."""
    text = {**config_of("qwen3-vl-8b-instruct")["text_config"], "model_type": "qwen3"}
    config = {"model_type": "qwen3_omni_moe", "thinker_config": {"text_config": text}}
    estimate = run(catalogue, config=config, engine="vllm")
    note = next(n for n in estimate.notes if "qwen3_omni_moe" in n)
    assert "thinker_config.text_config" in note and "not counted" in note
    assert estimate.parameters.total == count_parameters(parse_config(text)).total
