"""The catalogue: look-ups by the names readers type, and errors that point into the files."""

from __future__ import annotations

import json
import time

import pytest

from calc import CatalogueError, UnknownNameError
from calc.data_files import catalogue_problems, load_catalogue, load_measurements


@pytest.mark.parametrize(
    "name", ["RTX 4090D", "geforce-rtx-4090d", "GeForce RTX 4090 D", "rtx-4090d", "4090d"]
)
def test_gpu_names_match_without_spaces_dashes_or_vendor(catalogue, name):
    assert catalogue.gpu(name).id == "rtx-4090d"


def test_unknown_gpu_suggests_close_names(catalogue):
    with pytest.raises(UnknownNameError, match="did you mean") as error:
        catalogue.gpu("RTX 4009")
    assert error.value.suggestions


def test_unknown_model_suggests_the_closest_id(catalogue):
    with pytest.raises(UnknownNameError, match=r"did you mean 'llama-3\.1-8b'"):
        catalogue.model("llama-3.1-8")


@pytest.mark.parametrize("name", ["Q4_K_M", "q4-k-m", "q4_k_m", " Q4_K_M "])
def test_formats_are_case_and_dash_insensitive(catalogue, name):
    assert catalogue.weight_format(name).id == "q4_k_m"


def test_the_catalogue_has_what_the_guide_promises(catalogue):
    assert len(catalogue.models) >= 30
    assert len(catalogue.gpus) >= 25
    for needed in [
        "deepseek-r1",
        "deepseek-r1-distill-qwen-1.5b",
        "deepseek-r1-distill-qwen-7b",
        "deepseek-r1-distill-llama-8b",
        "deepseek-r1-distill-qwen-14b",
        "deepseek-r1-distill-qwen-32b",
        "deepseek-r1-distill-llama-70b",
        "deepseek-v3",
        "llama-3.2-1b",
        "llama-3.1-405b",
        "phi-4",
        "gpt-oss-120b",
    ]:
        assert needed in catalogue.models
    for needed in [
        "fp32",
        "tf32",
        "fp16",
        "bf16",
        "fp8_e4m3",
        "fp8_e5m2",
        "fp4_e2m1",
        "mxfp4",
        "nvfp4",
        "int8",
        "int4",
        "nf4",
        "q8_0",
        "q6_k",
        "q5_k_m",
        "q5_0",
        "q4_k_m",
        "q4_0",
        "q3_k_m",
        "q2_k",
        "iq4_xs",
        "iq2_xxs",
    ]:
        assert needed in catalogue.precisions
    for gpu in ["rtx-4090d", "a100-80gb-sxm", "h200-sxm-141gb", "mi300x", "m3-max-128gb"]:
        assert gpu in catalogue.gpus


def test_apple_gpus_offer_a_share_of_unified_memory(catalogue):
    mac = catalogue.gpu("m3-max-128gb")
    assert mac.unified_memory and mac.usable_bytes == int(mac.memory_bytes * 0.75)


def _edit(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_bad_field_is_reported_with_file_line_entry_and_field(data_copy):
    _edit(data_copy / "models.yaml", "    hidden_size: 4096\n", "    hidden_size: many\n")
    problems = catalogue_problems(data_copy)
    assert problems
    first = problems[0]
    assert first.file == "data/models.yaml"
    lines = (data_copy / "models.yaml").read_text().splitlines()
    assert lines[first.line - 1].strip() == "hidden_size: many"
    assert first.field == "config"
    assert "'hidden_size' must be an integer, got 'many'" in str(first)


def test_schema_errors_name_the_field_and_what_is_expected(data_copy):
    _edit(data_copy / "gpus.yaml", "  bandwidth_gb_s: 360\n", "  bandwidth_gb_s: fast\n")
    problem = catalogue_problems(data_copy)[0]
    assert problem.entry == "rtx-3060-12gb"
    assert problem.field == "bandwidth_gb_s"
    assert "expected number, got 'fast'" in str(problem)
    assert str(problem).startswith(f"data/gpus.yaml:{problem.line}: entry 'rtx-3060-12gb'")


def test_all_problems_are_reported_at_once(data_copy):
    text = (data_copy / "models.yaml").read_text()
    (data_copy / "models.yaml").write_text(text.replace("  params_source:", "  params_sauce:", 2))
    assert len(catalogue_problems(data_copy)) >= 4  # two unknown keys, two missing keys


def test_duplicate_ids_are_rejected(data_copy):
    _edit(data_copy / "models.yaml", "- id: deepseek-v3\n", "- id: deepseek-r1\n")
    with pytest.raises(CatalogueError, match="duplicate id 'deepseek-r1'"):
        load_catalogue(data_copy)


def test_broken_yaml_names_the_line(data_copy):
    _edit(data_copy / "gpus.yaml", "- id: rtx-3080-10gb\n", "- id: [rtx-3080\n")
    with pytest.raises(CatalogueError, match=r"data/gpus.yaml:\d+: not valid YAML"):
        load_catalogue(data_copy)


def test_a_mix_naming_an_unknown_type_is_rejected(data_copy):
    _edit(data_copy / "precisions.yaml", "type: ggml_q6_k}", "type: ggml_q7_k}")
    with pytest.raises(CatalogueError, match="mix names unknown type 'ggml_q7_k'"):
        load_catalogue(data_copy)


def test_a_measurement_of_an_unknown_model_is_rejected(data_copy):
    _edit(
        data_copy / "measurements.yaml",
        "model: deepseek-r1-distill-qwen-32b",
        "model: deepseek-r1-distill-qwen-33b",
    )
    with pytest.raises(
        CatalogueError, match=r"measurements\.yaml:\d+: entry 'article-r1-32b.*unknown model"
    ):
        load_measurements(data_copy)
    assert any("unknown model" in str(p) for p in catalogue_problems(data_copy))
    # an estimate does not read the measurements: the catalogue itself is sound
    assert "deepseek-r1-distill-qwen-32b" in load_catalogue(data_copy).models


def test_schemas_are_valid_json_schema():
    from pathlib import Path

    from jsonschema import Draft202012Validator

    for path in Path(__file__).parent.parent.joinpath("data", "schema").glob("*.json"):
        Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_an_alias_bomb_and_duplicate_keys_are_refused_with_their_line(data_copy):
    gpus = data_copy / "gpus.yaml"
    original = gpus.read_text(encoding="utf-8")
    bomb = "".join(  # nine levels of nine references: 387 million nodes once expanded
        f"- &x{i} [" + ", ".join([f"*x{i - 1}"] * 9 if i else ["1"] * 9) + "]\n" for i in range(9)
    )
    gpus.write_text(original.replace("\n- id:", "\n" + bomb + "- id:", 1), encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(CatalogueError, match=r"gpus\.yaml:\d+: YAML aliases"):
        load_catalogue(data_copy)
    assert time.perf_counter() - started < 2
    gpus.write_text(original.replace("  vendor: NVIDIA\n", "  vendor: NVIDIA\n  vendor: AMD\n", 1))
    with pytest.raises(CatalogueError, match=r"gpus\.yaml:\d+: key 'vendor' given twice"):
        load_catalogue(data_copy)


def test_two_gpus_answering_to_one_name_are_refused(data_copy):
    gpus = data_copy / "gpus.yaml"
    text = gpus.read_text(encoding="utf-8")
    gpus.write_text(
        text.replace('aliases: ["3060", rtx 3060,', 'aliases: ["4090", rtx 3060,', 1),
        encoding="utf-8",
    )
    problems = [str(p) for p in catalogue_problems(data_copy)]
    assert any("'4090' also names GPU" in p and "gpus.yaml:" in p for p in problems), problems


def test_a_checked_catalogue_is_cached_and_a_changed_file_is_read_again(
    data_copy, tmp_path, monkeypatch
):
    from calc import data_files

    monkeypatch.setenv("VRAM_GUIDE_CACHE", str(tmp_path / "cache"))
    first = load_catalogue(data_copy)
    assert len(list((tmp_path / "cache").glob("catalogue-*.json"))) == 1

    def no_yaml(*args, **kwargs):
        raise AssertionError("the cached catalogue should not read YAML")

    monkeypatch.setattr(data_files, "read_document", no_yaml)
    again = load_catalogue(data_copy)
    assert again.models.keys() == first.models.keys() and again.gpus == first.gpus
    monkeypatch.undo()
    monkeypatch.setenv("VRAM_GUIDE_CACHE", str(tmp_path / "cache"))
    _edit(data_copy / "gpus.yaml", "bandwidth_gb_s: 360", "bandwidth_gb_s: 361")
    assert load_catalogue(data_copy).gpu("rtx-3060-12gb").bandwidth_gb_s == 361
