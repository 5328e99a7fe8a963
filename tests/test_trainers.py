"""Trainer profiles: a tool's defaults, by release, fill what the reader leaves unset."""

from __future__ import annotations

import pytest

from calc import CalcError, load_catalogue
from calc.api import run_finetune
from calc.bridge import parse_finetune_inputs
from calc.finetune import METHODS, OBJECTIVES, TUNINGS
from calc.trainers import TRAINERS, trainer

MODEL = "llama-3.1-8b"


def request(**inputs):
    return parse_finetune_inputs({"model": MODEL, **inputs})[0]


def test_a_release_takes_every_change_up_to_it():
    trl = trainer("trl")
    assert trl.defaults("0.21.0", "lora", "lora")["grad_checkpointing"] is False
    assert trl.defaults("0.22.0", "lora", "lora")["grad_checkpointing"] is True
    assert trl.defaults("", "lora", "lora")["grad_checkpointing"] is True  # the newest
    # TRL casts the adapters of a quantized base to bf16 from 0.26.0, leaves LoRA's in fp32
    assert trl.defaults("0.26.0", "qlora", "qlora")["adapter_precision"] == "bf16"
    assert trl.defaults("0.26.0", "lora", "lora")["adapter_precision"] == "fp32"
    assert trl.defaults("0.25.0", "qlora", "qlora")["adapter_precision"] == "fp32"
    # the fused chunked loss (chunked_nll) is SFT's: not DPO's
    assert trl.defaults("1.7.0", "lora", "lora")["fused_loss"] is True
    assert "fused_loss" not in trl.defaults("1.6.0", "lora", "lora")
    assert "fused_loss" not in trl.defaults("1.7.0", "dpo", "lora")
    # PEFT's prepare_model_for_kbit_training, dropped by SFT in 0.26.0 and by DPO in 0.29.0
    assert trl.defaults("0.25.0", "qlora", "qlora")["kbit_upcast"] is True
    assert trl.defaults("0.26.0", "qlora", "qlora")["kbit_upcast"] is False
    assert trl.defaults("0.26.0", "dpo", "qlora")["kbit_upcast"] is True
    assert trl.defaults("0.29.0", "dpo", "qlora")["kbit_upcast"] is False
    assert trl.defaults("0.19.0", "grpo", "qlora")["kbit_upcast"] is False
    assert trl.defaults("0.22.0", "grpo", "qlora")["kbit_upcast"] is True
    # a model named by a string loads in float32 from 0.27.0 (PR #4778)
    assert "weights_dtype" not in trl.defaults("0.26.0", "lora", "lora")
    assert trl.defaults("0.27.0", "lora", "lora")["weights_dtype"] == "fp32"
    # GRPO divides its logits by the temperature in place from 1.0.0 (PR #5254) until 1.10.0
    # (PR #6554); PPO always did
    assert "temperature_in_place" not in trl.defaults("0.29.0", "grpo", "lora")
    assert trl.defaults("1.0.0", "grpo", "lora")["temperature_in_place"] is True
    assert trl.defaults("1.9.0", "grpo", "lora")["temperature_in_place"] is True
    assert trl.defaults("1.10.0", "grpo", "lora")["temperature_in_place"] is False
    assert trl.defaults("0.19.0", "ppo", "lora")["temperature_in_place"] is True
    # from 1.15.0 every trainer's log-probabilities come from a fused LM head
    for method in ("lora", "dpo", "kto", "grpo"):
        assert "fused_loss" not in trl.defaults("1.14.0", method, "lora") or method == "lora"
        assert trl.defaults("1.15.0", method, "lora")["fused_loss"] is True
        assert trl.defaults("1.15.0", method, "lora")["fused_tiles"] is True
    assert "fused_loss" not in trl.defaults("", "ppo", "lora")
    # its ModelConfig leaves bitsandbytes' nested (double) quantisation off
    assert trl.defaults("", "qlora", "qlora")["double_quant"] is False
    with pytest.raises(CalcError, match=r"older than the oldest release modelled \(0\.19\.0\)"):
        trl.release("0.10.0")


def test_a_profile_fills_only_what_the_reader_left_unset():
    plain = request(method="lora", trainer="unsloth")
    assert (plain.lora_rank, plain.optimizer, plain.activation_offloading) == (
        16,
        "adamw_8bit",
        True,
    )
    mine = request(method="lora", trainer="unsloth", lora_rank=64, activation_offloading=False)
    assert (mine.lora_rank, mine.activation_offloading) == (64, False)


def test_unsloth_offloads_checkpoints_from_512_tokens_only():
    assert request(method="lora", trainer="unsloth", seq_len=511).activation_offloading is False
    assert request(method="lora", trainer="unsloth", seq_len=512).activation_offloading is True


def test_a_profile_sets_only_what_the_method_uses():
    full = request(method="full", trainer="ms-swift")
    assert full.lora_dropout == 0.0  # ms-swift's 0.05 is the adapters'
    tt = request(method="full", trainer="torchtune")
    assert (tt.optimizer, tt.optimizer_in_backward, tt.precision) == (
        "paged_adamw_8bit",
        True,
        "bf16",
    )
    assert request(method="lora", trainer="torchtune").optimizer == "adamw"


def test_trainer_loops_that_skip_fsdps_reduce_scatter_between_micro_batches_say_so():
    # Hugging Face's Trainer (TRL, LLaMA-Factory, Axolotl, ms-swift) and LitGPT's loops run
    # every micro-batch but the last under no_sync; torchtune's reduce-scatter each one
    for name in ("trl", "llama-factory", "axolotl", "ms-swift", "litgpt"):
        assert request(method="lora", trainer=name).accumulate_unsharded is True, name
    assert request(method="lora", trainer="torchtune").accumulate_unsharded is False


def test_trl_and_ms_swift_read_log_probabilities_without_an_fp32_copy():
    # TRL's preference and RL trainers call selective_log_softmax; ms-swift's DPO from 3.5.0
    # (PR #4232); LLaMA-Factory casts the logits to fp32 first
    # (the estimator's own default is TRL's)
    for method in ("dpo", "kto", "orpo", "grpo", "ppo"):
        assert request(method=method, trainer="trl").selective_logprobs is True, method
        assert request(method=method).selective_logprobs is True, method
    assert request(method="dpo", trainer="ms-swift").selective_logprobs is True
    assert request(method="dpo", trainer="ms-swift", trainer_version="3.5.0").selective_logprobs
    assert not request(method="dpo", trainer="ms-swift", trainer_version="3.4.0").selective_logprobs
    for method in ("dpo", "orpo", "kto"):
        assert request(method=method, trainer="llama-factory").selective_logprobs is False
    assert request(method="grpo", trainer="llama-factory").selective_logprobs is True
    assert request(method="dpo", trainer="torchtune").selective_logprobs is False


def test_unsloth_fuses_the_loss_for_sft_and_grpo_but_not_for_trls_pair_losses():
    assert request(method="lora", trainer="unsloth").fused_loss is True
    assert request(method="grpo", trainer="unsloth").fused_loss is True
    for method in ("dpo", "orpo", "kto"):
        assert request(method=method, trainer="unsloth").fused_loss is False, method


def test_litgpt_steps_adamw_by_pytorchs_default_foreach_implementation():
    assert request(method="full", trainer="litgpt").foreach_step is True
    assert request(method="full", trainer="torchtune").foreach_step is False


def test_profiles_change_the_estimate_and_say_so(catalogue):
    from calc.api import run_finetune

    totals = {}
    for name in ("none", *TRAINERS):
        req = request(method="lora", trainer=name, seq_len=4096)
        estimate = run_finetune(catalogue, req, model=MODEL, gpu="h100-sxm-80gb")
        totals[name] = estimate.total_bytes
        if name != "none":
            assert estimate.notes[0].startswith(TRAINERS[name].name)
    # Unsloth's offloaded checkpoints and 8-bit Adam beat Axolotl's no checkpointing at 4k
    assert totals["unsloth"] < totals["none"] < totals["axolotl"]


def test_an_unknown_trainer_or_version_is_named():
    with pytest.raises(CalcError, match="trainer must be one of none, trl"):
        request(trainer="deepspeed-chat")
    with pytest.raises(CalcError, match=r"bnb_version must be a release such as 0\.43\.2"):
        request(method="qlora", bnb_version="latest")


def test_the_tools_table_lists_what_each_profile_sets_for_lora_and_qlora():
    from scripts.tables.finetune import TRAINER_FIELDS, trainer_rows

    rows = {(r.tool, r.release): r for r in trainer_rows()}
    assert len(rows) == sum(len(t.releases) for t in TRAINERS.values())
    column = {name: i for i, (name, _) in enumerate(TRAINER_FIELDS)}
    litgpt = rows["LitGPT", TRAINERS["litgpt"].newest.version]
    assert litgpt.cells[column["sharding"]] == "PyTorch FSDP / FSDP2"
    assert litgpt.qlora == [
        "adapters in bf16",
        "no double quantisation",
        "output layer in 4 bits",
        "quantised from fp16",
        "keeps the last step's outputs",
        "paged AdamW",  # an optimizer for QLoRA alone
    ]
    trl = "Hugging Face TRL (with PEFT)"
    assert "PEFT's fp32 upcast" in rows[trl, "0.22.0"].qlora
    assert "PEFT's fp32 upcast" not in rows[trl, "0.26.0"].qlora
    assert rows[trl, "0.26.0"].cells[column["weights_dtype"]] == ""
    assert rows[trl, "0.27.0"].cells[column["weights_dtype"]] == "fp32"
    assert rows[trl, "1.7.0"].cells[column["fused_loss"]] == "on"


@pytest.mark.parametrize("name", [*TRAINERS, "none"])
def test_every_profile_estimates_every_method_it_can_be_asked_for(name):
    # a profile's defaults must make a valid request for every method and every way of
    # training the weights: Unsloth's fused-loss chunk size once refused DPO, ORPO and KTO
    catalogue = load_catalogue()
    for method in METHODS:
        for tuning in TUNINGS if method in OBJECTIVES else ("",):
            for seq_len in (256, 2048):
                given = {"method": method, "trainer": name, "seq_len": seq_len}
                if tuning:
                    given["tuning"] = tuning
                estimate = run_finetune(catalogue, request(**given), model=MODEL)
                assert estimate.total_bytes > 0, (method, tuning, seq_len)
