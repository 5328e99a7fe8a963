"""Names people type: Ollama tags and Hugging Face ids stand for catalogue models (data/names.yaml),
in the command line and the page alike."""

from __future__ import annotations

import json

import pytest

from calc import CatalogueError, InferenceRequest, catalogue_problems, run_inference
from calc.api import resolve
from calc.bridge import Session


def plan(catalogue, **request):
    return resolve(catalogue, InferenceRequest(**request))


@pytest.mark.parametrize(
    ("name", "model_id"),
    [
        ("deepseek-r1:1.5b", "deepseek-r1-distill-qwen-1.5b"),
        ("deepseek-r1:32b", "deepseek-r1-distill-qwen-32b"),
        ("deepseek-r1:70b", "deepseek-r1-distill-llama-70b"),
        ("deepseek-r1:latest", "deepseek-r1-0528-qwen3-8b"),  # :latest is the 8b tag
        ("deepseek-r1", "deepseek-r1"),  # the catalogue's id for R1 itself wins
        ("qwen3:30b-a3b", "qwen3-30b-a3b"),
        ("QWEN3:30B", "qwen3-30b-a3b"),
        ("gpt-oss:20b", "gpt-oss-20b"),
        ("Qwen/Qwen3-8B", "qwen3-8b"),
        ("https://huggingface.co/Qwen/Qwen3-8B", "qwen3-8b"),
        ("hf.co/deepseek-ai/DeepSeek-R1", "deepseek-r1"),
    ],
)
def test_names_resolve_to_catalogue_models(catalogue, name, model_id):
    assert catalogue.model(name).id == model_id


def test_an_ollama_tag_pulls_its_own_file_format_on_ollama(catalogue):
    assert plan(catalogue, model="gpt-oss:20b", engine="ollama").weights.id == "mxfp4"
    assert plan(catalogue, model="deepseek-r1:32b", engine="ollama").weights.id == "q4_k_m"
    # vLLM reads the Hugging Face checkpoint whatever the model was called
    assert plan(catalogue, model="gpt-oss:20b", engine="vllm").weights.id == "mxfp4"
    assert plan(catalogue, model="deepseek-r1:32b", engine="vllm").weights.id == "bf16"
    # a format the reader names wins
    assert plan(catalogue, model="deepseek-r1:32b", engine="ollama", weights="q8_0").weights.id == (
        "q8_0"
    )


def test_a_distill_tag_says_it_is_not_r1(catalogue):
    notes = plan(catalogue, model="deepseek-r1:7b", engine="ollama").notes
    assert any(
        n.startswith("deepseek-r1:7b is DeepSeek-R1-Distill-Qwen-7B in Q4_K_M")
        and "not R1 itself" in n
        for n in notes
    )


def test_r1_itself_ships_in_fp8(catalogue):
    """DeepSeek-V3's README_WEIGHTS.md: "DeepSeek-V3 natively supports FP8 weight format with
    128x128 block scaling"; R1's config carries the same quantization_config."""
    assert plan(catalogue, model="deepseek-r1", engine="vllm").weights.id == "fp8_e4m3"
    assert plan(catalogue, model="deepseek-r1:671b", engine="vllm").weights.id == "fp8_e4m3"
    assert plan(catalogue, model="deepseek-r1:latest", engine="vllm").weights.id == "bf16"


def test_unknown_names_suggest_close_ones(catalogue):
    with pytest.raises(Exception, match=r"unknown model 'deepseek-r1:33b'; did you mean"):
        catalogue.model("deepseek-r1:33b")


def test_the_page_offers_and_takes_tags(catalogue):
    session = Session(catalogue)
    options = json.loads(session.handle(json.dumps({"action": "options"})))["options"]
    assert {"name": "deepseek-r1:32b", "model": "DeepSeek-R1-Distill-Qwen-32B"} in options["names"]
    request = {"action": "estimate", "inputs": {"model": "deepseek-r1:32b", "engine": "ollama"}}
    response = json.loads(session.handle(json.dumps(request)))
    cli = run_inference(catalogue, InferenceRequest(model="deepseek-r1:32b", engine="ollama"))
    assert response["ok"] and response["result"] == cli.to_json()


def test_a_name_for_an_unknown_model_is_reported_with_its_line(data_copy):
    names = data_copy / "names.yaml"
    text = names.read_text().replace(
        "model: deepseek-r1-distill-qwen-32b", "model: deepseek-r1-distill-qwen-33b", 1
    )
    names.write_text(text)
    problems = catalogue_problems(data_copy)
    assert problems
    line = text.splitlines().index("  model: deepseek-r1-distill-qwen-33b") + 1
    assert isinstance(problems[0], CatalogueError)
    assert str(problems[0]).startswith(f"data/names.yaml:{line}: entry 'deepseek-r1:32b': model")
    assert "unknown model 'deepseek-r1-distill-qwen-33b'" in str(problems[0])


def test_one_spelling_cannot_name_two_models(data_copy):
    names = data_copy / "names.yaml"
    names.write_text(
        names.read_text() + '\n- name: "qwen3:8b"\n  model: qwen3-14b\n  source: a test\n'
    )
    assert any(
        "'qwen3:8b' already names 'qwen3-8b'" in str(p) for p in catalogue_problems(data_copy)
    )
