"""The input table: one description per input, from which the CLI, the bridge, the measurement
schema and the calculator form are made, and which the request types agree with."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import get_args

import pytest

import calc.finetune as finetune
from calc import ENGINES, INPUTS, CalcError, FinetuneRequest, InferenceRequest, page_table
from calc.bridge import Session
from calc.cli import build_parser
from calc.inputs import BY_NAME, WHERE, check_applies, for_mode, measurement_schema, parse
from calc.measurements import DESCRIPTION_FIELDS
from tests.conftest import ROOT


def test_every_input_is_a_request_field_and_every_field_an_input():
    inference = {f.name for f in fields(InferenceRequest)}
    training = {f.name for f in fields(FinetuneRequest)}
    assert {i.field_name for i in for_mode("inference")} == inference
    assert {i.field_name for i in for_mode("finetune") if i.name not in WHERE} == training


@pytest.mark.parametrize(
    ("name", "literal"),
    [
        ("method", finetune.Method),
        ("precision", finetune.Precision),
        ("optimizer", finetune.Optimizer),
        ("zero", finetune.Zero),
        ("offload", finetune.OffloadTarget),
        ("adapter_precision", finetune.AdapterPrecision),
    ],
)
def test_closed_sets_are_the_estimators_literal_types(name, literal):
    assert set(BY_NAME[name].values) == set(get_args(literal))


def test_the_engine_choices_are_the_registry():
    assert BY_NAME["engine"].values == tuple(ENGINES)


def test_defaults_come_from_the_request_types():
    # The fine-tuning precision default was amp in the CLI and bf16 in the measurement parser.
    assert BY_NAME["precision"].default("finetune") == FinetuneRequest().precision == "amp"
    assert BY_NAME["context"].default("inference") is None  # resolved by the plan
    assert BY_NAME["engine"].default("inference") == InferenceRequest().engine
    assert BY_NAME["flash_attention"].default("finetune") is True


@pytest.mark.parametrize("mode", ["inference", "finetune"])
def test_the_command_line_has_one_option_per_input(mode):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[mode]
    options = {o for action in sub._actions for o in action.option_strings}
    for item in for_mode(mode):
        assert item.option in options, item.name
    assert options - {i.option for i in for_mode(mode)} == {"-h", "--help", "--json"}


def test_the_measurement_schema_is_the_table_plus_the_description_fields():
    static = json.loads((ROOT / "data" / "schema" / "measurements.schema.json").read_text())
    described = set(static["items"]["properties"])
    assert described == DESCRIPTION_FIELDS
    generated = measurement_schema()
    assert not described & set(generated)
    assert set(generated) == {i.name for i in INPUTS if i.measured}
    assert generated["method"]["enum"][:-1] == list(BY_NAME["method"].values)


def test_the_page_gets_the_whole_table_as_json():
    table = json.loads(json.dumps(page_table()))
    assert [row["name"] for row in table] == [i.name for i in INPUTS]
    rank = next(row for row in table if row["name"] == "lora_rank")
    assert rank["defaults"] == {"finetune": 16} and rank["methods"] == ["lora", "qlora"]
    targets = next(row for row in table if row["name"] == "lora_targets")
    assert targets["defaults"] == {"finetune": "all"}


@pytest.mark.parametrize(
    ("mode", "raw", "field", "message"),
    [
        ("inference", {"context": "4k"}, "context", "whole number"),
        ("inference", {"gpu_memory_utilization": "most"}, "gpu_memory_utilization", "like 0.9"),
        ("inference", {"flash_attention": "yes"}, "flash_attention", "on or off"),
        ("inference", {"tensor_split": "3;1"}, "tensor_split", "numbers like 3,1"),
        ("finetune", {"grad_checkpointing": "on"}, "grad_checkpointing", "full or off"),
        ("finetune", {"zero": 4}, "zero", "one of 0, 1, 2, 3"),
        ("finetune", {"gpu_memory_gib": -1}, "gpu_memory_gib", "positive"),
        ("finetune", {"context": 4096}, "context", "unknown input"),
    ],
)
def test_bad_values_name_their_input(mode, raw, field, message):
    with pytest.raises(CalcError, match=message) as caught:
        parse(mode, raw)
    assert caught.value.field == field


def test_values_arrive_typed_from_json_and_yaml():
    values = parse(
        "finetune",
        {"lora_dropout": "0.05", "grad_checkpointing": True, "lora_targets": "attention"},
    )
    assert values == {
        "lora_dropout": 0.05,
        "grad_checkpointing": True,
        "lora_targets": ("q_proj", "k_proj", "v_proj", "o_proj"),
    }
    assert parse("inference", {"tensor_split": [3, 1], "batch": None}) == {
        "tensor_split": (3.0, 1.0)
    }


def test_an_input_the_engine_or_method_does_not_use_is_refused():
    with pytest.raises(CalcError, match=r"max_num_seqs is a vLLM setting, not llama\.cpp's"):
        check_applies("inference", {"max_num_seqs": 8}, engine="llama.cpp")
    with pytest.raises(CalcError, match="lora_rank applies to lora and qlora only, not full"):
        check_applies("finetune", {"lora_rank": 8}, method="full")
    check_applies("finetune", {"lora_rank": 16}, method="full")  # the default changes nothing
    # torchtune steps the optimizer in the backward pass in its full fine-tuning recipes only
    with pytest.raises(CalcError, match="optimizer_in_backward applies to full and freeze only"):
        check_applies("finetune", {"optimizer_in_backward": True}, method="lora")


def test_zero_on_one_gpu_says_it_saves_nothing(catalogue):
    from calc.api import run_finetune
    from calc.finetune import FinetuneRequest

    where = {"model": "llama-3.1-8b", "gpu": "rtx-4090"}
    plain = run_finetune(catalogue, FinetuneRequest(), **where)
    sharded = run_finetune(catalogue, FinetuneRequest(zero=3, sharding="fsdp"), **where)
    assert sharded.total_bytes == plain.total_bytes
    # DeepSpeed's gradient partition is allocated once and kept, so it costs, not saves
    deepspeed = run_finetune(catalogue, FinetuneRequest(zero=3), **where)
    assert deepspeed.total_bytes > plain.total_bytes
    assert any("ZeRO-3 on one GPU: nothing to shard" in note for note in sharded.notes)
    two = run_finetune(catalogue, FinetuneRequest(zero=3, gpus=2), **where)
    assert not any("nothing to shard" in note for note in two.notes)


@pytest.mark.parametrize("engine", list(ENGINES))
def test_the_placeholders_are_the_defaults_the_estimate_used(catalogue, engine):
    # The page said "default 4096" for vLLM, which sizes the context to the model's maximum.
    session = Session(catalogue)
    body = json.loads(
        session.handle(
            json.dumps(
                {
                    "action": "estimate",
                    "inputs": {"model": "llama-3.1-8b", "engine": engine, "gpu": "h100"},
                }
            )
        )
    )
    assert body["ok"], body
    defaults, result = body["defaults"], body["result"]
    assert defaults["context"] == result["context"]
    assert defaults["batch"] == result["batch"]
    assert defaults["weights"] == result["weights"]
    assert defaults["engine_version"] == ENGINES[engine].history.newest.version
