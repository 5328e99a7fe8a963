"""config.json parsing: families, defaults, and errors that name the key."""

from __future__ import annotations

import pytest

from calc import ConfigError, count_parameters, parse_config
from calc.architecture import FULL, SLIDING

LLAMA_8B = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
}


def test_head_dim_defaults_to_hidden_over_heads():
    assert parse_config(LLAMA_8B).head_dim == 128


def test_kv_heads_default_to_attention_heads():
    arch = parse_config({k: v for k, v in LLAMA_8B.items() if k != "num_key_value_heads"})
    assert arch.num_kv_heads == 32


def test_qwen2_always_has_qkv_bias_and_llama_does_not():
    assert parse_config({**LLAMA_8B, "model_type": "qwen2"}).qkv_bias
    assert not parse_config(LLAMA_8B).qkv_bias


def test_gemma2_alternates_sliding_and_global_layers():
    arch = parse_config({**LLAMA_8B, "model_type": "gemma2", "sliding_window": 4096})
    assert arch.layer_kinds[:4] == (SLIDING, FULL, SLIDING, FULL)


def test_gemma3_is_global_every_sixth_layer():
    arch = parse_config({**LLAMA_8B, "model_type": "gemma3_text", "sliding_window": 512})
    assert [i for i, kind in enumerate(arch.layer_kinds) if kind == FULL] == [5, 11, 17, 23, 29]


def test_explicit_layer_types_win():
    kinds = ["sliding_attention", "full_attention"] * 16
    arch = parse_config({**LLAMA_8B, "layer_types": kinds, "sliding_window": 128})
    assert arch.layer_kinds.count(SLIDING) == 16


def test_deepseek_dense_first_layers_and_mla():
    config = {
        "model_type": "deepseek_v3",
        "hidden_size": 7168,
        "intermediate_size": 18432,
        "num_hidden_layers": 61,
        "num_attention_heads": 128,
        "vocab_size": 129280,
        "q_lora_rank": 1536,
        "kv_lora_rank": 512,
        "qk_nope_head_dim": 128,
        "qk_rope_head_dim": 64,
        "v_head_dim": 128,
        "n_routed_experts": 256,
        "n_shared_experts": 1,
        "moe_intermediate_size": 2048,
        "first_k_dense_replace": 3,
        "num_experts_per_tok": 8,
    }
    arch = parse_config(config)
    assert arch.moe is not None and arch.mla is not None
    assert arch.moe.moe_layers[:4] == (False, False, False, True)
    assert arch.moe.shared_intermediate_size == 2048


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "missing key 'model_type'"),
        ({"model_type": "mamba"}, "unsupported model_type 'mamba'"),
        ({**LLAMA_8B, "hidden_size": None}, "missing key 'hidden_size'"),
        ({**LLAMA_8B, "num_hidden_layers": "32"}, "'num_hidden_layers' must be an integer"),
        ({**LLAMA_8B, "vocab_size": 0}, "'vocab_size' must be at least 1, got 0"),
        ({**LLAMA_8B, "num_key_value_heads": 7}, "must be a multiple of num_key_value_heads"),
        ({**LLAMA_8B, "layer_types": ["full_attention"]}, "one entry per layer"),
        ({"model_type": "gemma3"}, "needs a 'text_config' object"),
    ],
)
def test_bad_configs_name_the_key(config, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(config)


def test_non_object_is_rejected():
    with pytest.raises(ConfigError, match="expected a JSON object, got list"):
        parse_config([1, 2])  # type: ignore[arg-type]


# Published parameter counts of 2025-26 standard decoders: the safetensors totals the Hugging
# Face API reports for each repository (as copied in third-party model lists, e.g. SmolLM3's
# "total_parameters=3075098624"); the configs are the models' config.json, memory keys only.
SEED_OSS_36B = {  # https://huggingface.co/ByteDance-Seed/Seed-OSS-36B-Instruct/blob/main/config.json
    "model_type": "seed_oss", "hidden_size": 5120, "intermediate_size": 27648,
    "num_hidden_layers": 64, "num_attention_heads": 80, "num_key_value_heads": 8,
    "head_dim": 128, "vocab_size": 155136, "max_position_embeddings": 524288,
    "tie_word_embeddings": False, "attention_bias": True, "attention_out_bias": False,
}  # fmt: skip
OLMO2_32B = {  # https://huggingface.co/allenai/OLMo-2-0325-32B/blob/main/config.json
    "model_type": "olmo2", "hidden_size": 5120, "intermediate_size": 27648,
    "num_hidden_layers": 64, "num_attention_heads": 40, "num_key_value_heads": 8,
    "vocab_size": 100352, "max_position_embeddings": 4096, "tie_word_embeddings": False,
    "attention_bias": False,
}  # fmt: skip
OLMO3_7B = {  # https://huggingface.co/allenai/Olmo-3-1025-7B/blob/main/config.json
    "model_type": "olmo3", "hidden_size": 4096, "intermediate_size": 11008,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
    "vocab_size": 100278, "max_position_embeddings": 65536, "tie_word_embeddings": False,
    "attention_bias": False, "sliding_window": 4096,
    "layer_types": ["sliding_attention"] * 3 + ["full_attention"],
}  # fmt: skip
OLMO3_7B["layer_types"] = OLMO3_7B["layer_types"] * 8
SMOLLM3_3B = {  # https://huggingface.co/HuggingFaceTB/SmolLM3-3B/raw/main/config.json
    "model_type": "smollm3", "hidden_size": 2048, "intermediate_size": 11008,
    "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 4,
    "vocab_size": 128256, "max_position_embeddings": 65536, "tie_word_embeddings": True,
    "use_sliding_window": False, "sliding_window": None,
}  # fmt: skip


@pytest.mark.parametrize(
    ("config", "published"),
    [
        (SEED_OSS_36B, 36_151_104_512),
        (OLMO2_32B, 32_234_279_936),
        (OLMO3_7B, 7_298_011_136),
        (SMOLLM3_3B, 3_075_098_624),
    ],
    ids=["seed-oss-36b", "olmo-2-32b", "olmo-3-7b", "smollm3-3b"],
)
def test_2025_decoders_have_their_published_parameter_counts(config, published):
    assert count_parameters(parse_config(config)).total == published


def test_olmo3_slides_three_layers_in_four_and_normalises_whole_projections():
    arch = parse_config(OLMO3_7B)
    assert arch.layer_kinds[:4] == (SLIDING, SLIDING, SLIDING, FULL)
    assert arch.sliding_window == 4096 and arch.qk_norm_whole
    seed = parse_config(SEED_OSS_36B)
    assert (seed.qkv_bias, seed.o_bias, seed.head_dim) == (True, False, 128)
