"""Parity: calc.bridge in Pyodide (under Node, from the npm package the site ships) answers
500 generated estimate requests and 100 fine-tuning ones with exactly the JSON that CPython
gives."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from calc import catalogue_documents
from calc.api import loadable_formats
from calc.bridge import Session
from calc.engines import ENGINES
from scripts.site_assets import build_wheel, catalogue_json

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = 500


def generated_requests(catalogue, count: int, seed: int = 20261129) -> list[str]:
    """Mostly valid inputs across models, engines, formats and GPUs, and some broken ones."""
    rng = random.Random(seed)
    models = sorted(catalogue.models)
    gpus = sorted(catalogue.gpus)
    kv = [None, *sorted(k for k, p in catalogue.precisions.items() if p.kv_cache)]
    formats = sorted(catalogue.weight_formats)
    requests = []
    for i in range(count):
        engine = rng.choice(sorted(ENGINES))
        accepted = [f.id for f in loadable_formats(catalogue, ENGINES[engine])]
        # mostly the KV types the engine stores (all of them for engines that take any)
        stored = ENGINES[engine].kv_types(ENGINES[engine].release(None))
        kv_ok = [k for k in kv if k is None or not stored or k in stored]
        inputs: dict[str, object] = {
            "engine": engine,
            "weights": rng.choice([None, *accepted] if rng.random() < 0.9 else formats),
            "context": rng.choice([None, 1, 512, 2048, 4096, 32768, rng.randint(1, 300_000)]),
            "batch": rng.choice([None, 1, 2, 4, rng.randint(1, 64)]),
            "kv_cache": rng.choice(kv_ok if rng.random() < 0.9 else kv),
            "gpus": rng.randint(1, 8),
        }
        if engine == "vllm" and rng.random() < 0.5:
            inputs["gpu_memory_utilization"] = rng.choice([0.5, 0.85, 0.95, "0.9", 1.2])
            inputs["max_num_seqs"] = rng.choice([None, 1, 256, 1024])
            inputs["max_num_batched_tokens"] = rng.choice([None, 512, 8192, 0])
        if rng.random() < 0.15:
            inputs["gpu_memory_gib"] = round(rng.uniform(4, 200), 2)
        else:
            inputs["gpu"] = rng.choice([None, *gpus])
        model = rng.choice(models)
        if rng.random() < 0.1:
            inputs["config"] = json.dumps(dict(catalogue.models[model].config))
        else:
            inputs["model"] = model
        if i % 25 == 0:  # broken on purpose: errors must match too
            inputs[rng.choice(["context", "model", "config", "gpus"])] = rng.choice(
                [-1, "x", "{not json", 0, "llama"]
            )
        requests.append(json.dumps({"action": "estimate", "inputs": inputs}))
    on_off = ["on", "off", None]
    for _ in range(count // 5):  # the fine-tuning mode through the same bridge
        inputs = {
            "model": rng.choice(models),
            "method": rng.choice(["full", "freeze", "lora", "qlora"]),
            "precision": rng.choice(["amp", "bf16", None]),
            "optimizer": rng.choice(["adamw", "adamw_8bit", "sgd", "adafactor", None]),
            "lora_rank": rng.choice([None, 8, 64, rng.randint(1, 512)]),
            "seq_len": rng.choice([None, 512, 4096, rng.randint(1, 65_536)]),
            "micro_batch": rng.choice([None, 1, 4]),
            "grad_checkpointing": rng.choice(["off", "full", None]),
            "gpus": rng.choice([1, 2, 8]),
            "zero": rng.choice([0, 1, 2, 3, None]),
            "offload": rng.choice(["none", "optimizer", "all", None]),
            "gpu": rng.choice([None, *gpus]),
            "compile": rng.choice(on_off),
            "chunked_loss": rng.choice(on_off),
            "fused_loss": rng.choice(on_off),
            "loss_chunk_gib": rng.choice([None, 0, 4, "2.5"]),
            "tensor_parallel": rng.choice([None, 1, 2]),
            "kbit_upcast": rng.choice(on_off),
            "double_quant": rng.choice(on_off),
            "weights_dtype": rng.choice(["bf16", "fp32", None]),
            "quantize_output": rng.choice(on_off),
            "fp16_quant_state": rng.choice(on_off),
            "keeps_graph": rng.choice(on_off),
            "sharding": rng.choice(["deepspeed", "fsdp", None]),
            "optimizer_in_backward": rng.choice(on_off),
            "activation_offloading": rng.choice(on_off),
            "adapter_precision": rng.choice(["fp32", "bf16", None]),
            "lora_dropout": rng.choice([None, 0.05, "0.1", 0]),
            "fused_qkv": rng.choice(on_off),
        }
        requests.append(json.dumps({"action": "finetune", "inputs": inputs}))
    requests.append(json.dumps({"action": "options"}))
    return requests


def test_pyodide_and_cpython_give_identical_json(catalogue, tmp_path):
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "pyodide").is_dir():
        pytest.fail("parity needs Node and 'npm ci' (./dev test sets both up)")
    wheel = tmp_path / "calc.whl"
    wheel.write_bytes(build_wheel(ROOT))
    cat = tmp_path / "catalogue.json"
    cat.write_bytes(catalogue_json(catalogue_documents(ROOT / "data")))
    requests = generated_requests(catalogue, REQUESTS)
    (tmp_path / "requests.json").write_text(json.dumps(requests))
    run = subprocess.run(
        [
            node,
            str(ROOT / "tests" / "parity.mjs"),
            str(wheel),
            str(cat),
            str(tmp_path / "requests.json"),
            str(tmp_path / "responses.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    pyodide = json.loads((tmp_path / "responses.json").read_text())
    assert pyodide["python"].startswith("3.")
    session = Session.from_json(cat.read_text())
    cpython = [session.handle(request) for request in requests]
    assert len(pyodide["responses"]) == len(cpython) == REQUESTS + REQUESTS // 5 + 1
    mismatches = [
        (request, a, b)
        for request, a, b in zip(requests, cpython, pyodide["responses"], strict=True)
        if a != b
    ]
    assert mismatches == []
    answered = [json.loads(r) for r in cpython]
    assert sum(r["ok"] for r in answered) > REQUESTS * 0.6  # mostly real estimates
    assert sum(not r["ok"] for r in answered) >= REQUESTS // 25  # and the broken ones


def test_the_wheel_is_reproducible():
    assert build_wheel(ROOT) == build_wheel(ROOT)
    import io
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(build_wheel(ROOT))).namelist()
    assert "calc/bridge.py" in names and "calc/cli.py" not in names
    assert names == sorted(names[:-3]) + names[-3:]  # sources sorted, then dist-info
