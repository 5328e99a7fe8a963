"""config.json parsing: families, defaults, and errors that name the key."""

from __future__ import annotations

import pytest

from calc import ConfigError, parse_config
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
