"""Preference and RL training (DPO, ORPO, KTO, GRPO, PPO): what each adds to the tuning it
runs on, worked out from TRL's trainers (see calc/finetune.py for the sources)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from calc import CalcError
from calc.api import run_finetune
from calc.bridge import parse_finetune_inputs
from calc.cli import main
from calc.finetune import BF16, FinetuneRequest
from calc.tensors import parameters_of

MODEL = "llama-3.1-8b"


def run(catalogue, gpu="h100-sxm-80gb", **kwargs):
    return run_finetune(catalogue, FinetuneRequest(**kwargs), model=MODEL, gpu=gpu)


def parts(estimate):
    return estimate.devices[0].components


def test_dpo_and_orpo_train_on_both_completions_of_a_pair(catalogue):
    """Chosen and rejected go through the model as one batch of twice the micro-batch: the same
    activations as the tuning alone at micro-batch 2 (ORPO, which reads no reference)."""
    # (the loss reading the logits as SFT's does: see the selective log-softmax test below)
    orpo = parts(run(catalogue, method="orpo", micro_batch=1, selective_logprobs=False))
    lora = parts(run(catalogue, method="lora", micro_batch=2))
    assert orpo.activations == lora.activations
    assert orpo.weights == lora.weights and orpo.reference == 0


def test_dpo_reads_a_reference_after_the_policy_forward(catalogue):
    """The reference's logits over the pair's 2 x 1024 tokens meet what the policy's forward
    pass ended with; they raise the peak by what that moment needs beyond the policy's backward
    pass. 16-bit logits read row by row: the policy's logits and log-softmax (4 bytes a logit)
    and the reference's (4) against a backward pass of 4: 4 more. Under Accelerate's autocast:
    the policy's fp32 logits (4) and the reference's 16-bit logits with their fp32 copy (6)
    stay below the policy's fp32 backward pass (12): nothing more. Cast to fp32 first: the
    policy's fp32 logits and log-softmax (8) and the reference's (8) against a backward pass of
    12: 4 more."""
    arch = catalogue.models[MODEL].arch
    tokens_x_vocab = 2 * 1024 * arch.vocab_size
    for settings, kept in (
        (dict(precision="bf16"), 4),
        (dict(precision="amp"), 0),
        (dict(precision="amp", gpus=2, zero=2), 4),  # DeepSpeed: no Accelerate autocast
        (dict(selective_logprobs=False), 4),
    ):
        lengths = dict(tuning="lora", seq_len=1024, **settings)
        dpo = parts(run(catalogue, method="dpo", **lengths))
        precomputed = parts(run(catalogue, method="dpo", precompute_ref=True, **lengths))
        assert dpo.activations - precomputed.activations == tokens_x_vocab * kept, settings
    # with adapters the reference is the base with them disabled: no copy
    assert dpo.reference == 0
    # Liger's fused DPO loss takes the reference's last hidden states, not its logits
    fused = dict(tuning="lora", seq_len=1024, fused_loss=True)
    dpo = parts(run(catalogue, method="dpo", **fused))
    precomputed = parts(run(catalogue, method="dpo", precompute_ref=True, **fused))
    assert dpo.activations - precomputed.activations == 2 * 1024 * arch.hidden_size * BF16


def test_full_dpo_holds_a_frozen_16_bit_reference(catalogue):
    arch = catalogue.models[MODEL].arch
    full = parts(run(catalogue, method="dpo", tuning="full", precision="bf16"))
    assert full.reference == BF16 * parameters_of(arch).total
    sharded = parts(run(catalogue, method="dpo", tuning="full", gpus=4, zero=3))
    assert sharded.reference == -(-BF16 * parameters_of(arch).total // 4)
    assert parts(run(catalogue, method="dpo", tuning="full", precompute_ref=True)).reference == 0


def test_megatron_swift_reads_its_reference_before_the_policy_and_once_gave_it_gradients(catalogue):
    """Megatron-SWIFT computes the reference's log-probabilities for the whole step first, so
    its logits never meet the policy's activations; before 3.8.3 the reference sat in Megatron's
    DDP, whose fp32 gradient buffer covered its parameters too (PR #6027)."""
    arch = catalogue.models[MODEL].arch
    total = parameters_of(arch).total
    megatron = dict(tuning="full", gpus=4, zero=1, sharding="megatron", tensor_parallel=4)
    megatron["selective_logprobs"] = False  # Megatron's own loss reads the log-probabilities
    dpo = run(catalogue, method="dpo", **megatron)
    orpo = parts(run(catalogue, method="orpo", **megatron))
    assert parts(dpo).activations == orpo.activations
    assert parts(dpo).reference == -(-BF16 * total // 4)
    assert any("runs before the policy's" in n for n in dpo.notes)
    old = run(catalogue, method="dpo", reference_grad_buffer=True, **megatron)
    assert parts(old).reference - parts(dpo).reference == -(-4 * total // 4)
    assert any("Megatron's DDP" in n for n in old.notes)
    # DeepSpeed runs the reference after the policy's forward pass; the switch is Megatron's
    deepspeed = dict(tuning="full", gpus=4, zero=3, selective_logprobs=False)
    plain = parts(run(catalogue, method="dpo", **deepspeed))
    assert plain.activations > parts(run(catalogue, method="orpo", **deepspeed)).activations
    assert plain == parts(run(catalogue, method="dpo", reference_grad_buffer=True, **deepspeed))


def test_grpo_needs_a_reference_only_with_a_kl_term(catalogue):
    assert parts(run(catalogue, method="grpo", tuning="full")).reference == 0
    with_kl = parts(run(catalogue, method="grpo", tuning="full", kl_beta=0.04))
    assert with_kl.reference == BF16 * parameters_of(catalogue.models[MODEL].arch).total


def test_grpo_keeps_logits_for_the_completion_only(catalogue):
    arch = catalogue.models[MODEL].arch
    short = parts(run(catalogue, method="grpo", seq_len=2048, completion_len=256))
    long = parts(run(catalogue, method="grpo", seq_len=2048, completion_len=1024))
    # under Accelerate's autocast the logits are fp32 and the backward pass holds three fp32
    # tensors their size per kept token; a temperature divided in place adds a fourth
    assert long.activations - short.activations == 768 * arch.vocab_size * 3 * 4
    lengths = dict(method="grpo", seq_len=2048, temperature_in_place=True)
    short = parts(run(catalogue, **lengths, completion_len=256))
    long = parts(run(catalogue, **lengths, completion_len=1024))
    assert long.activations - short.activations == 768 * arch.vocab_size * 4 * 4


def test_selective_log_softmax_reads_the_logits_as_the_model_returns_them(catalogue):
    """TRL's selective_log_softmax reads each row from the logits as returned: 16-bit logits
    (DeepSpeed, pure bf16) keep themselves and their 16-bit log-softmax (4 bytes a value)
    instead of the fp32 log-softmax and the two fp32 gradients of the upcast path (12); under
    Accelerate's autocast the logits come back fp32 and its backward pass holds three fp32
    tensors their size (12). ORPO's NLL term adds a log-softmax over the chosen half. A reward
    model has no logits to read."""
    arch = catalogue.models[MODEL].arch
    for precision, value in (("bf16", 2), ("amp", 4)):
        per_row = 2 + 2 if precision == "bf16" else 3 * 4
        for method in ("dpo", "kto", "grpo", "ppo", "orpo"):
            kept = per_row + (value / 2 if method == "orpo" else 0)
            # (the reference's own pass left out: precomputed)
            lengths = dict(
                method=method,
                seq_len=1024,
                completion_len=1024,
                precompute_ref=True,
                precision=precision,
            )
            upcast = parts(run(catalogue, **lengths, selective_logprobs=False))
            selective = run(catalogue, **lengths)  # TRL's way, the default
            sequences = 2 if method in ("dpo", "orpo", "ppo") else 1  # a pair, or one sequence
            tokens_x_vocab = sequences * 1024 * arch.vocab_size
            saved = tokens_x_vocab * (12 - kept)
            assert upcast.activations - parts(selective).activations == saved, method
            assert any("selective_log_softmax" in n for n in selective.notes)
    reward = parts(run(catalogue, method="reward", seq_len=1024))
    assert reward == parts(run(catalogue, method="reward", seq_len=1024, selective_logprobs=False))
    # a fused loss holds one chunk whatever the log-probabilities are read with
    fused = dict(method="dpo", seq_len=1024, fused_loss=True)
    upcast = parts(run(catalogue, **fused, selective_logprobs=False))
    assert parts(run(catalogue, **fused)) == upcast


def test_a_colocated_vllm_keeps_its_share_of_each_gpu(catalogue):
    estimate = run(
        catalogue, method="grpo", colocate_vllm=0.3, gpus=2, gpu="h100-sxm-80gb,rtx-4090"
    )
    for device in estimate.devices:
        assert device.components.generation == -(-3 * device.device.capacity_bytes // 10)
    assert any("30% of each GPU" in note for note in estimate.notes)


def test_a_sleeping_vllm_meets_only_the_weights_and_optimizer_state(catalogue):
    """TRL's vllm_enable_sleep_mode drops the engine's weights and cache after each generation:
    it no longer meets the step's activations and gradients, so only its share beyond them
    raises the peak."""
    grpo = dict(method="grpo", tuning="full", seq_len=4096, completion_len=2048, micro_batch=4)
    awake = run(catalogue, colocate_vllm=0.3, **grpo)
    asleep = run(catalogue, colocate_vllm=0.3, vllm_sleep=True, **grpo)
    share = parts(awake).generation
    step = parts(asleep).activations + parts(asleep).gradients
    assert parts(asleep).generation == max(0, share - step)
    assert asleep.devices[0].total_bytes < awake.devices[0].total_bytes
    assert any("sleeps through the training step" in note for note in asleep.notes)
    # a small share hides entirely behind the step
    tiny = parts(run(catalogue, colocate_vllm=0.01, vllm_sleep=True, **grpo))
    assert tiny.generation == 0


def test_generation_without_vllm_counts_only_the_cache_beyond_the_step(catalogue):
    """The trainer's own generation holds a KV cache when no activation or gradient exists:
    only the part of the cache beyond them raises the peak."""
    small = parts(run(catalogue, method="grpo", micro_batch=1, seq_len=1024))
    assert small.generation == 0  # 128 KiB a token x 1024 tokens < the step's activations
    # Llama 2 7B's cache (no grouped-query attention) is larger than one layer's activations,
    # which is all that stays on the GPU with activations offloaded
    request = FinetuneRequest(
        method="grpo", micro_batch=8, seq_len=4096, completion_len=64, activation_offloading=True
    )
    c = run_finetune(catalogue, request, model="llama-2-7b", gpu="h100-sxm-80gb").devices[0]
    arch = catalogue.models["llama-2-7b"].arch
    kv = 8 * 4096 * arch.num_layers * 2 * arch.num_kv_heads * arch.head_dim * BF16
    parts_ = c.components
    assert parts_.generation == kv - parts_.activations - parts_.gradients > 0


def test_ppo_trains_a_value_model_and_holds_a_reward_model(catalogue):
    lora = parts(run(catalogue, method="lora"))
    ppo = parts(run(catalogue, method="ppo", tuning="lora"))
    assert ppo.weights == 2 * lora.weights and ppo.optimizer == 2 * lora.optimizer
    assert ppo.reference == BF16 * parameters_of(catalogue.models[MODEL].arch).total  # reward


def test_inputs_apply_to_the_method_or_to_how_it_trains(catalogue):
    request, _ = parse_finetune_inputs({"model": MODEL, "method": "dpo", "lora_rank": 64})
    assert request.trains == "lora" and request.lora_rank == 64
    with pytest.raises(CalcError, match="lora_rank applies to lora and qlora only, not dpo"):
        parse_finetune_inputs({"model": MODEL, "method": "dpo", "tuning": "full", "lora_rank": 64})
    with pytest.raises(CalcError, match="tuning applies to dpo and orpo and kto and grpo and ppo"):
        parse_finetune_inputs({"model": MODEL, "method": "lora", "tuning": "full"})
    with pytest.raises(CalcError, match="kl_beta applies to grpo only"):
        parse_finetune_inputs({"model": MODEL, "method": "dpo", "kl_beta": 0.1})


def test_cli_runs_every_method():
    totals = {}
    for method in ("lora", "dpo", "orpo", "kto", "grpo", "ppo"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["finetune", "--model", MODEL, "--method", method, "--json"]) == 0
        result = json.loads(out.getvalue())
        totals[method] = result["total_bytes"]
        assert {"reference", "generation"} <= set(result["components"])
    # ORPO's NLL term over the chosen half; DPO's reference adds no logits beyond the backward
    # pass under autocast (see test_dpo_reads_a_reference_after_the_policy_forward)
    assert totals["orpo"] > totals["dpo"] > totals["lora"]
    assert totals["ppo"] > totals["dpo"]


def test_sequence_parallelism_divides_the_activations(catalogue):
    arch = catalogue.models[MODEL].arch
    whole = run(catalogue, method="lora", seq_len=32768, gpus=8, gpu="h100-sxm-80gb")
    split = run(catalogue, method="lora", seq_len=32768, gpus=8, sequence_parallel=8)
    one, eighth = parts(whole).activations, parts(split).activations
    assert eighth < one / 6 and parts(split).weights == parts(whole).weights
    # the logits term alone: 32,768 / 8 tokens per GPU, 16-bit, fp32 copy and log-softmax
    assert eighth >= 4096 * arch.vocab_size * (2 + 4 + 4)
    with pytest.raises(CalcError, match="sequence_parallel 3 must divide the 8 GPUs"):
        run(catalogue, method="lora", gpus=8, sequence_parallel=3)
