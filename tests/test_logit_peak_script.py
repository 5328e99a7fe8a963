"""scripts/logit_peak.py describes each way of reading log-probabilities to calc as the setting
it measures; without PyTorch it says what it needs."""

from __future__ import annotations

import contextlib
import importlib.util
import io

import pytest

from calc import logit_tokens, loss_logit_bytes, parse_config
from scripts import logit_peak as script

ARCH = parse_config(
    {
        "model_type": "llama",
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "vocab_size": 1000,
    }
)


def per_logit(case: script.Case) -> float:
    request = case.request(rows=8, tokens=96)
    assert logit_tokens(request) == 8 * 96  # every row reads as many logits as it measures
    return loss_logit_bytes(ARCH, request) / (logit_tokens(request) * 1000)


def test_each_case_is_the_setting_it_measures():
    assert {c.name: per_logit(c) for c in script.CASES} == {
        "sft, transformers' loss": 12,
        "sft, 16-bit cross-entropy": 10,
        "dpo, fp32 logits": 12,
        "dpo, 16-bit logits": 4,
        "grpo in place, fp32 logits": 16,
        "grpo plain, fp32 logits": 12,
        "grpo in place, 16-bit logits": 8,
        "grpo plain, 16-bit logits": 4,
    }
    dpo = script.Case("dpo", True).request(rows=8, tokens=96)
    assert (dpo.micro_batch, dpo.sequences) == (4, 8)  # four pairs, chosen and rejected


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed")
def test_without_pytorch_it_says_what_it_needs():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert script.main([]) == 2
    assert "needs PyTorch and TRL" in err.getvalue()
