"""calc.bridge: JSON in, JSON out, errors as data that name the field."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from calc.bridge import Session
from calc.cli import main


@pytest.fixture(scope="module")
def session(catalogue):
    return Session(catalogue)


def ask(session, body) -> dict:
    return json.loads(session.handle(json.dumps(body)))


def test_options_list_the_catalogue(session, catalogue):
    options = ask(session, {"action": "options"})["options"]
    assert len(options["models"]) == len(catalogue.models)
    engines = {e["id"]: e for e in options["engines"]}
    assert {"theory", "llama.cpp", "ollama", "vllm", "transformers", "mlx"} == set(engines)
    llama_cpp = {w["id"] for w in engines["llama.cpp"]["weights"]}
    assert "q4_k_m" in llama_cpp and "awq_4bit_g128" not in llama_cpp and "mlx_q4" not in llama_cpp
    mlx = {w["id"] for w in engines["mlx"]["weights"]}
    assert {"mlx_q4", "mlx_q8", "bf16"} <= mlx and "q4_k_m" not in mlx


def test_estimate_equals_the_cli_json(session):
    body = ask(
        session,
        {
            "action": "estimate",
            "inputs": {
                "model": "qwen3-32b",
                "engine": "vllm",
                "weights": "fp8_e4m3",
                "gpus": 2,
                "gpu": "l40s",
                "context": 16000,
                "batch": 4,
            },
        },
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(
            [
                "inference",
                "--model",
                "qwen3-32b",
                "--engine",
                "vllm",
                "--weights",
                "fp8",
                "--gpus",
                "2",
                "--gpu",
                "l40s",
                "--context",
                "16000",
                "--batch",
                "4",
                "--json",
            ]
        )
    assert body["ok"] and body["result"] == json.loads(out.getvalue())
    assert body["hint"]["fits"] is body["result"]["fits"]


@pytest.mark.parametrize(
    ("inputs", "field", "message"),
    [
        ({"model": "llama-3.1-8"}, "model", "unknown model"),
        ({"model": "llama-3.1-8b", "context": "big"}, "context", "whole number"),
        ({"model": "llama-3.1-8b", "context": 0}, "context", "at least 1"),
        ({"model": "llama-3.1-8b", "gpus": 2.5}, "gpus", "whole number"),
        ({"model": "llama-3.1-8b", "gpu": "RTX 9090"}, "gpu", "unknown GPU"),
        ({"model": "llama-3.1-8b", "gpu_memory_gib": -3}, "gpu_memory_gib", "positive"),
        ({"config": "{nope"}, "config", "not valid JSON at line 1"),
        ({"config": "[]"}, "config", "must be a JSON object"),
        ({"config": '{"model_type": "llama"}'}, "config", "missing key 'hidden_size'"),
        ({"model": "llama-3.1-8b", "colour": "red"}, "colour", "unknown input"),
        ({"model": "llama-3.1-8b", "weights": "awq", "engine": "ollama"}, "", "cannot load"),
    ],
)
def test_errors_come_back_as_data(session, inputs, field, message):
    body = ask(session, {"action": "estimate", "inputs": inputs})
    assert body["ok"] is False
    assert message in body["error"]["message"]
    assert body["error"]["field"] == field


@pytest.mark.parametrize("raw", ["", "null", "[1]", '{"action": "launch"}', "{"])
def test_malformed_requests_never_raise(session, raw):
    body = json.loads(session.handle(raw))
    assert body["ok"] is False and body["error"]["message"]
