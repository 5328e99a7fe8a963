"""Memory and speed against context: the curve follows the estimate, the SVG is well formed and
escapes what it is given, and a server's capacity matches its engine's own arithmetic."""

from __future__ import annotations

import contextlib
import io
import xml.etree.ElementTree as ET
from itertools import pairwise

import pytest

from calc import InferenceRequest, run_inference
from calc.charts import context_curve, svg_chart
from calc.cli import main as cli_main

SVG = "{http://www.w3.org/2000/svg}"


def test_the_curve_doubles_the_context_up_to_the_trained_length(catalogue):
    request = InferenceRequest(
        model="llama-3.1-8b", weights="f16", engine="llama.cpp", gpu="rtx-4090", gpu_layers=99
    )
    points = context_curve(catalogue, request)
    contexts = [p.context for p in points]
    assert contexts[0] == 1024
    assert all(b == 2 * a for a, b in pairwise(contexts[:-1]))
    assert contexts[-1] == catalogue.model("llama-3.1-8b").config["max_position_embeddings"]
    for point in (points[0], points[-1]):
        alone = run_inference(
            catalogue, InferenceRequest(**{**vars(request), "context": point.context})
        )
        assert point.total_bytes == alone.total_bytes
        assert point.decode_tokens_per_s == alone.speed["decode_tokens_per_s"]
    totals = [p.total_bytes for p in points]
    assert totals == sorted(totals)  # every layer stays on the GPU (-ngl 99): the KV cache grows
    assert points[-1].fits is False and points[0].fits is True


def test_the_chart_is_svg_with_one_point_per_context_and_escaped_text(catalogue):
    request = InferenceRequest(model="llama-3.1-8b", engine="llama.cpp", gpu="rtx-4090")
    points = context_curve(catalogue, request)
    text = svg_chart('<script>alert("x")</script> & co', points, "memory")
    root = ET.fromstring(text)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    assert "<script>" not in text
    assert root.find(f"{SVG}title").text.startswith('<script>alert("x")</script> & co')
    circles = root.findall(f"{SVG}circle")
    assert len(circles) == len(points)
    assert [c.get("data-fits") for c in circles] == [
        "no" if p.fits is False else "yes" for p in points
    ]
    assert any("GPU memory" in (t.text or "") for t in root.iter(f"{SVG}text"))
    with pytest.raises(ValueError, match="memory, decode, prefill"):
        svg_chart("x", points, "power")


def test_offloaded_layers_show_as_cpu_ram_and_slow_generation(catalogue):
    request = InferenceRequest(
        model="llama-3.1-70b", engine="ollama", gpu="rtx-4090d", ram_bytes=128 * 2**30
    )
    points = context_curve(catalogue, request)
    assert points[-1].host_bytes > points[0].host_bytes
    assert points[-1].decode_tokens_per_s < points[0].decode_tokens_per_s
    assert "CPU RAM" in svg_chart("Llama", points, "memory")


def test_the_cli_draws_the_chart(capsys):
    assert cli_main(["chart", "--model", "qwen3-8b", "--gpu", "rtx-4090", "--what", "decode"]) == 0
    root = ET.fromstring(capsys.readouterr().out)
    assert "generation speed" in root.find(f"{SVG}title").text


def serving(catalogue, **request):
    return run_inference(catalogue, InferenceRequest(**request))


def test_vllm_serves_as_many_full_contexts_as_its_reserve_holds(catalogue):
    estimate = serving(catalogue, model="llama-3.1-8b", engine="vllm", gpu="rtx-4090", context=8192)
    capacity = estimate.serving
    assert capacity["kv_cache_tokens"] == estimate.details["kv_cache_tokens"]
    assert capacity["sequences"] == int(estimate.details["max_concurrency"])
    assert capacity["tokens_per_sequence"] == 8192
    single = estimate.speed["decode_tokens_per_s"]
    assert single < capacity["aggregate_decode_tokens_per_s"] < capacity["sequences"] * single


def test_llama_server_slots_share_one_cache(catalogue):
    estimate = serving(
        catalogue, model="llama-3.1-8b", engine="llama.cpp", gpu="rtx-4090", context=8192
    )
    assert estimate.serving["kv_cache_tokens"] == 8192
    assert estimate.serving["sequences"] == 4  # llama-server's automatic unified slots
    assert estimate.serving["tokens_per_sequence"] == 2048


def test_a_program_that_is_not_a_server_has_no_capacity(catalogue):
    estimate = serving(catalogue, model="llama-3.1-8b", engine="transformers", gpu="h100-sxm-80gb")
    assert estimate.serving is None


def test_a_bad_option_gets_one_line_without_a_traceback():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        cli_main(["fits", "--gpu", "rtx-4090", "--ram", "64"])
    assert exit_.value.code == 2
    assert err.getvalue().count("\n") == 1
    assert "is not a memory size" in err.getvalue() and "vram-calc fits --help" in err.getvalue()
