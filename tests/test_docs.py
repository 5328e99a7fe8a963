"""Every `python -m calc` example in the docs and README runs; every catalogue config gives
the same answer as a config.json as it does by id."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from calc import InferenceRequest, count_parameters, parse_config, run_inference
from calc.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = re.compile(r"^(?:\.venv/bin/)?python -m calc (.+?)$", re.MULTILINE)


def examples() -> list[tuple[str, str]]:
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = page.read_text(encoding="utf-8").replace("\\\n", " ")
        for match in EXAMPLE.finditer(text):
            found.append((page.relative_to(ROOT).as_posix(), match.group(1)))
    return found


@pytest.mark.parametrize(("page", "command"), examples())
def test_documented_commands_run(page, command, capsys, tmp_path, catalogue):
    args = shlex.split(command)
    if ">" in args:  # a shell redirection: the command writes standard output
        args = args[: args.index(">")]
    if "--config" in args:  # the README's example path: give it a real config.json
        config = tmp_path / "config.json"
        config.write_text(json.dumps(dict(catalogue.model("llama-3.1-8b").config)))
        args[args.index("--config") + 1] = str(config)
    if "--gguf" in args:  # the README's example file: give it a small GGUF header
        from tests.gguf_files import tiny_llama, write

        path = write(tmp_path / "model.gguf", *tiny_llama())
        args[args.index("--gguf") + 1] = str(path)
    assert main(args) == 0, f"{page}: {command}"
    assert capsys.readouterr().out


def test_the_docs_have_examples():
    assert len(examples()) >= 5


def test_every_catalogue_config_gives_the_same_answer_as_its_id(catalogue):
    for model in catalogue.models.values():
        config = json.loads(json.dumps(dict(model.config)))  # as a file would give it
        via_config = run_inference(catalogue, InferenceRequest(config=config))
        via_model = run_inference(catalogue, InferenceRequest(model=model.id))
        assert via_config.to_json()["total_bytes"] == via_model.to_json()["total_bytes"], model.id


def test_deepseek_v2_lite_config_parses():
    # deepseek-ai/DeepSeek-V2-Lite config.json: no q_lora_rank (queries are not compressed),
    # 64 routed and 2 shared experts, the first layer dense. Hugging Face lists 15.7B params.
    config = {
        "model_type": "deepseek_v2",
        "hidden_size": 2048,
        "intermediate_size": 10944,
        "num_hidden_layers": 27,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "vocab_size": 102400,
        "q_lora_rank": None,
        "kv_lora_rank": 512,
        "qk_nope_head_dim": 128,
        "qk_rope_head_dim": 64,
        "v_head_dim": 128,
        "n_routed_experts": 64,
        "n_shared_experts": 2,
        "moe_intermediate_size": 1408,
        "first_k_dense_replace": 1,
        "moe_layer_freq": 1,
        "num_experts_per_tok": 6,
    }
    assert count_parameters(parse_config(config)).total == pytest.approx(15.7e9, rel=0.01)


def test_every_rule_the_methodology_links_is_pinned_by_a_test():
    from scripts import code_links
    from tests.test_rules import PINNED

    linked = code_links.linked_names((ROOT / "docs" / "methodology.md").read_text())
    assert len(linked) >= 30
    assert sorted(set(linked) - PINNED) == []
    assert sorted(PINNED - set(linked)) == []  # every pinned rule is on the page too


def test_code_links_resolve_to_the_functions_lines():
    from scripts import code_links

    for page in sorted((ROOT / "docs").rglob("*.md")):
        for name in code_links.linked_names(page.read_text()):
            path, start, end = code_links.location(name)
            lines = (ROOT / path).read_text().splitlines()[start - 1 : end]
            assert any(f"def {name.rsplit('.', 1)[1]}(" in line for line in lines[:3]), name
    expanded = code_links.expand(
        "[x](calc:calc.kv_cache.kv_cache_bytes)", "https://github.com/o/r", revision="abc"
    )
    link = r"\[x\]\(https://github.com/o/r/blob/abc/calc/kv_cache.py#L\d+-L\d+\)"
    assert re.fullmatch(link, expanded)
    with pytest.raises(code_links.UnknownCodeError, match="no 'nothing'"):
        code_links.expand("[x](calc:calc.kv_cache.nothing)", "https://github.com/o/r")
