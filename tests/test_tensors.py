"""Parameter counts from the tensor inventory."""

from __future__ import annotations

import pytest

from calc import count_parameters, parse_config
from calc.tensors import model_tensors


def test_llama_31_8b_has_8_03b_parameters(catalogue):
    # meta-llama/Llama-3.1-8B model.safetensors.index.json: "total_size": 16060522496 bytes of
    # bf16, i.e. 8,030,261,248 parameters.
    assert count_parameters(catalogue.model("llama-3.1-8b").arch).total == 16060522496 // 2


def test_every_catalogue_model_matches_its_published_count(catalogue):
    off = {}
    for model in catalogue.models.values():
        counted = count_parameters(model.arch)
        # a published figure counts the model alone or its files (with the MTP layers)
        computed = min(
            (counted.total, counted.checkpoint_total),
            key=lambda n: abs(n - model.params_published),
        )
        error = abs(computed - model.params_published) / model.params_published
        if error > 0.01:
            off[model.id] = (computed, model.params_published)
    assert off == {}


def test_deepseek_v3_main_model_is_671b_without_mtp(catalogue):
    # DeepSeek-V3 model card: "671B of the Main Model weights and 14B of the Multi-Token
    # Prediction (MTP) Module weights"; the 37B active figure is rounded.
    params = count_parameters(catalogue.model("deepseek-v3").arch)
    assert params.total == pytest.approx(671e9, rel=0.001)
    assert params.active == pytest.approx(37e9, rel=0.02)


def test_mixtral_active_parameters(catalogue):
    # Mistral AI: Mixtral 8x7B "uses only 12.9B parameters per token".
    params = count_parameters(catalogue.model("mixtral-8x7b").arch)
    assert params.active == pytest.approx(12.9e9, rel=0.01)
    assert params.total > 3 * params.active


def test_tied_embeddings_have_no_output_tensor(catalogue):
    tied = model_tensors(catalogue.model("llama-3.2-1b").arch)
    untied = model_tensors(catalogue.model("llama-3.1-8b").arch)
    assert "output" not in {t.role for t in tied}
    assert "output" in {t.role for t in untied}


def test_gemma3_counts_its_vision_tower(catalogue):
    params = count_parameters(catalogue.model("gemma-3-27b").arch)
    # SigLIP so400m: about 0.4B parameters (Gemma 3 technical report, table 1: 417M).
    assert params.vision == pytest.approx(417e6, rel=0.02)


def test_dense_model_active_equals_total():
    arch = parse_config(
        {
            "model_type": "qwen3",
            "hidden_size": 1024,
            "intermediate_size": 3072,
            "num_hidden_layers": 28,
            "num_attention_heads": 16,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "vocab_size": 151936,
            "tie_word_embeddings": True,
        }
    )
    params = count_parameters(arch)
    # Qwen3-0.6B: 596,049,920 parameters (keras-hub qwen3 presets).
    assert params.total == params.active == 596_049_920
