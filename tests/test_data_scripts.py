"""scripts/add_model.py and scripts/check_data.py: the contributor's path into the catalogue."""

from __future__ import annotations

import contextlib
import io
import json

import yaml

from calc.data_files import load_catalogue
from scripts import add_model, check_data

SOURCE = "https://huggingface.co/Qwen/Qwen3-4B-Instruct-2507/blob/main/config.json"
CONFIG = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "max_position_embeddings": 262144,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "rope_theta": 5000000,
    "bos_token_id": 151643,
}


def run(main, *args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def add(data, config_path, *extra):
    return run(
        add_model.main,
        str(config_path),
        "--id",
        "qwen3-4b-2507",
        "--source",
        SOURCE,
        "--data",
        str(data),
        *extra,
    )


def test_add_model_appends_a_canonical_entry_once(data_copy, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    code, _, err = add(
        data_copy, path, "--params-published", "4022468096", "--params-source", "card: 4.0B"
    )
    assert code == 0, err
    entry = load_catalogue(data_copy).model("qwen3-4b-2507")
    assert entry.hf_repo == "Qwen/Qwen3-4B-Instruct-2507"
    assert "rope_theta" not in entry.config and entry.config["head_dim"] == 128
    after_first = (data_copy / "models.yaml").read_text()
    code, _, err = add(data_copy, path)
    assert code == 2 and "already there; nothing changed" in err
    assert (data_copy / "models.yaml").read_text() == after_first
    # The appended block is what format_entry gives: the canonical form.
    block = after_first[after_first.index("- id: qwen3-4b-2507") :]
    parsed = yaml.safe_load(block)[0]
    assert block == add_model.format_entry(parsed)


def test_add_model_warns_about_a_published_count_off_by_more_than_1_percent(data_copy, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    code, _, err = add(data_copy, path, "--params-published", "5000000000", "--params-source", "x")
    assert code == 0
    assert "warning: the config gives 4,022,468,096 parameters, -19.6% from the published" in err


def test_add_model_refuses_a_broken_config_and_writes_nothing(data_copy, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**CONFIG, "num_hidden_layers": "many"}))
    before = (data_copy / "models.yaml").read_text()
    code, _, err = add(data_copy, path)
    assert code == 2
    assert "'num_hidden_layers' must be an integer" in err
    assert (data_copy / "models.yaml").read_text() == before


def test_check_data_prints_every_problem_with_its_place(data_copy, monkeypatch):
    models = data_copy / "models.yaml"
    text = models.read_text()
    text = text.replace("    vocab_size: 128256\n", "    vocab_size: lots\n", 1)
    text = text.replace("  family: Qwen2.5\n", "  famly: Qwen2.5\n", 1)
    models.write_text(text)
    monkeypatch.setenv("VRAM_GUIDE_DATA", str(data_copy))
    code, out, _ = run(check_data.main)
    assert code == 1
    lines = [line for line in out.splitlines() if line.startswith("data/")]
    assert len(lines) >= 2
    assert any("'famly'" in line and "qwen2.5-0.5b" in line for line in lines)
    assert any("'vocab_size' must be an integer, got 'lots'" in line for line in lines)
    assert all(line.split(":")[1].isdigit() for line in lines)


def test_check_data_passes_on_the_catalogue():
    code, out, _ = run(check_data.main)
    assert code == 0 and "data files OK (0 warning(s))" in out


def test_every_data_file_names_its_schema_for_editors():
    from tests.conftest import ROOT

    for path in (ROOT / "data").glob("*.yaml"):
        first = path.read_text().splitlines()[0]
        schema = first.removeprefix("# yaml-language-server: $schema=")
        assert schema != first, path
        assert (path.parent / schema).is_file(), path


def test_workflows_run_the_readme_test_command_and_the_data_check():
    from tests.conftest import ROOT

    test = yaml.safe_load((ROOT / ".github" / "workflows" / "test.yml").read_text())
    steps = [step.get("run", "") for step in test["jobs"]["test"]["steps"]]
    assert "./dev test" in steps
    assert any("scripts/check_data.py" in step for step in steps)
    deploy = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    assert "deploy" in deploy["jobs"]
    readme = (ROOT / "README.md").read_text()
    assert "./dev test" in readme.split("```")[1]
