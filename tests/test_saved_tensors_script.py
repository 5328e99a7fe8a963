"""scripts/saved_tensors.py builds what it compares from the catalogue; without PyTorch it says
what it needs."""

from __future__ import annotations

import contextlib
import importlib.util
import io

import pytest

from calc import FinetuneRequest, layer_token_bytes, parse_config
from scripts import saved_tensors as script


def test_the_small_model_keeps_the_layer_and_drops_what_a_longer_one_needs(catalogue):
    config = dict(catalogue.model("gemma-3-4b").config)  # a vision-language config
    small = script.small_config(config, 2)
    assert small["model_type"] == "gemma3_text"
    assert small["num_hidden_layers"] == 2 and small["vocab_size"] == script.VOCAB
    assert "layer_types" not in small and small["pad_token_id"] is None
    # the layer the estimator reads from it is the full model's layer
    full, cut = parse_config(config), parse_config(small)
    assert (cut.hidden_size, cut.intermediate_size, cut.head_dim, cut.norms_per_layer) == (
        full.hidden_size,
        full.intermediate_size,
        full.head_dim,
        full.norms_per_layer,
    )


def test_the_estimate_it_prints_is_the_estimators_for_the_run_it_makes(catalogue):
    arch = parse_config(script.small_config(dict(catalogue.model("qwen3-4b").config), 2))
    lora = script.request("lora", ("q_proj", "v_proj"))
    assert lora == FinetuneRequest(
        method="lora", lora_targets=("q_proj", "v_proj"), adapter_precision="fp32"
    )
    layer = script.Layer("qwen3-4b", arch.hidden_size, 131_656.0, layer_token_bytes(arch, lora))
    assert layer.estimated == 130_048
    assert round(layer.error * 100, 1) == -1.2
    assert script.request("full", ()).method == "full"


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed")
def test_without_pytorch_it_says_what_it_needs():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert script.main(["--model", "llama-3.1-8b"]) == 2
    assert "needs PyTorch, transformers and PEFT" in err.getvalue()
