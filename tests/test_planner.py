"""The offload planner and the "what fits my hardware" ranking."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace

from calc import InferenceRequest, resolve, run_inference
from calc.bridge import Session
from calc.bridge import parse_inputs as bridge_request
from calc.cli import main
from calc.hints import FORMAT_LADDER
from calc.planner import RANKING_CONTEXT, plan_offload, rank_gpus, rank_models


def test_the_first_choice_is_what_llama_cpp_fit_does(catalogue):
    """The article's 70B distill on one RTX 4090D: --fit keeps the context (4096 here) and moves
    layers to host RAM from the first; the plan reports the layers it left on the GPU."""
    request = InferenceRequest(
        model="deepseek-r1-distill-llama-70b", gpu="RTX 4090D", engine="llama.cpp", context=4096
    )
    fit = run_inference(catalogue, request)
    on_gpu = sum(len(d.layers) for d in fit.devices)
    choices = plan_offload(catalogue, request)
    assert choices[0].gpu_layers == on_gpu < 80
    assert choices[0].fits
    assert choices[0].flags("-ngl") == f"-c 4096 -ngl {on_gpu}"


def test_the_fastest_plan_fits_and_is_no_slower(catalogue):
    request = InferenceRequest(
        model="gpt-oss-120b", gpu="RTX 4090", engine="llama.cpp", context=8192
    )
    choices = plan_offload(catalogue, request)
    assert all(c.fits for c in choices)
    assert choices[-1].decode_tokens_per_s >= choices[0].decode_tokens_per_s


def test_a_moe_model_gets_an_experts_in_ram_candidate(catalogue):
    from calc.planner import _smallest

    assert _smallest(lambda k: k >= 7, 36) == 7
    request = InferenceRequest(
        model="qwen3-30b-a3b", gpu="rtx-3060-12gb", engine="llama.cpp", context=4096
    )
    plan = resolve(catalogue, request)
    assert plan.arch.moe is not None
    labels = [c.label for c in plan_offload(catalogue, request)]
    assert labels[0] == "what llama.cpp's --fit chooses"


def test_models_that_fit_come_first_largest_first(catalogue):
    models = ["llama-3.1-8b", "llama-3.1-70b", "qwen3-0.6b", "llama-3.1-405b"]
    base = InferenceRequest(gpu="rtx-4090", engine="llama.cpp", context=8192)
    ranked = rank_models(catalogue, base, models=models)
    fitting = [r for r in ranked if r.weights is not None]
    assert [r.model for r in ranked][-1] == "llama-3.1-405b"  # nothing fits
    assert [r.parameters for r in fitting] == sorted((r.parameters for r in fitting), reverse=True)
    small = next(r for r in ranked if r.model == "qwen3-0.6b")
    assert small.weights == FORMAT_LADDER[0]  # the most faithful format fits
    assert small.max_context >= 8192 and small.decode_tokens_per_s > 0


def run_cli(*args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(args)) == 0
    return out.getvalue()


def test_the_command_line_plans_and_ranks(catalogue):
    plans = json.loads(run_cli("plan", "--model", "llama-3.1-70b", "--gpu", "rtx-4090", "--json"))
    assert plans[0]["flags"].startswith("-c ")
    text = run_cli("fits", "--gpu", "rtx-4090", "--context", "4096")
    assert "Llama 3.1 8B" in text and "does not fit" in text


def test_a_serving_engine_ranks_models_in_its_own_formats(catalogue):
    """vLLM does not move layers: the ranking must not ask it for -ngl (it used to refuse
    every model that way)."""
    ranked = rank_models(
        catalogue,
        InferenceRequest(engine="vllm", gpu="h100-sxm-80gb", context=8192),
        models=["llama-3.1-8b", "llama-3.1-70b"],
    )
    small = next(r for r in ranked if r.model == "llama-3.1-8b")
    assert small.weights == FORMAT_LADDER[0] or small.weights in ("bf16", "fp16")
    assert small.decode_tokens_per_s is not None


def test_the_gpu_ranking_finds_the_fewest_gpus_that_hold_the_model(catalogue):
    request = InferenceRequest(
        model="llama-3.1-70b", weights="q4_k_m", engine="llama.cpp", context=8192
    )
    ranked = {g.gpu: g for g in rank_gpus(catalogue, request)}
    one, two = ranked["rtx-4090"], ranked["h100-sxm-80gb"]
    assert (one.count, two.count) == (2, 1)
    # two 4090s are what it takes: one does not hold every layer, two do
    alone = run_inference(catalogue, replace(request, gpu="rtx-4090", gpu_layers=999))
    pair = run_inference(catalogue, replace(request, gpu="rtx-4090", gpus=2, gpu_layers=999))
    assert alone.fits is False and pair.fits is True
    assert one.total_bytes == pair.total_bytes
    order = [g.count or 99 for g in ranked.values()]
    assert order == sorted(order)
    assert all(g.count == 1 or g.count is None for g in ranked.values() if "Apple" in g.name)


def test_the_page_bridge_answers_the_three_rankings(catalogue):
    session = Session(catalogue)
    inputs = {"model": "llama-3.1-70b", "engine": "llama.cpp", "gpu": "rtx-4090d", "ram_gib": 64}
    plan = json.loads(session.handle(json.dumps({"action": "plan", "inputs": inputs})))
    assert plan["ok"] and plan["plan"][0]["flags"].startswith("-c ")
    expected = plan_offload(catalogue, bridge_request(inputs))
    assert [c["gpu_layers"] for c in plan["plan"]] == [c.gpu_layers for c in expected]
    gpus = json.loads(session.handle(json.dumps({"action": "gpus", "inputs": inputs})))
    assert (
        gpus["ok"]
        and gpus["context"] == RANKING_CONTEXT
        and len(gpus["gpus"]) == len(catalogue.gpus)
    )
    bad = json.loads(session.handle(json.dumps({"action": "fits", "inputs": {"gpu": "nope"}})))
    assert not bad["ok"] and bad["error"]["field"] == "gpu"


def test_the_command_line_ranks_gpus():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["gpus", "--model", "qwen3-8b", "--json"]) == 0
    rows = json.loads(out.getvalue())
    assert rows[0]["count"] == 1 and rows[0]["decode_tokens_per_s"] > 0
