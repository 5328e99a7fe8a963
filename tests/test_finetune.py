"""Fine-tuning memory: golden values with their sources, relations, and bad combinations."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calc import CalcError
from calc.api import run_finetune
from calc.cli import main
from calc.finetune import FinetuneRequest, layer_token_bytes
from tests.conftest import ROOT


def ft(catalogue, model="llama-3.1-8b", **kwargs):
    """Full fine-tuning without checkpointing unless asked: the baseline the formulas pin."""
    request = FinetuneRequest(**{"method": "full", "grad_checkpointing": False, **kwargs})
    return run_finetune(catalogue, request, model=model)


def test_mixed_precision_adamw_is_16_bytes_per_parameter(catalogue):
    # ZeRO paper, section 3.1: 2 (fp16 weights) + 2 (gradients) + 12 (fp32 master, m, v).
    result = ft(catalogue, precision="amp", optimizer="adamw")
    c, params = result.components, result.total_parameters
    assert c.weights + c.gradients + c.optimizer == pytest.approx(16 * params, rel=0.001)


def test_pure_bf16_adamw_is_8_bytes_per_parameter(catalogue):
    result = ft(catalogue, precision="bf16", optimizer="adamw")
    c, params = result.components, result.total_parameters
    assert c.weights + c.gradients + c.optimizer == pytest.approx(8 * params, rel=0.001)


def test_lora_rank_16_on_every_projection_of_llama_8b(catalogue):
    # r x (in + out) per matrix: 41,943,040 trainable parameters for Llama 3.1 8B at r=16 on
    # q, k, v, o, gate, up, down (the figure PEFT's print_trainable_parameters reports).
    result = ft(catalogue, method="lora", lora_rank=16)
    assert result.trainable_parameters == 41_943_040


def test_qlora_stores_the_base_in_nf4(catalogue):
    lora = ft(catalogue, method="lora")
    qlora = ft(catalogue, method="qlora")
    assert qlora.components.weights < lora.components.weights / 2.5


def test_eight_bit_adam_quarters_the_state(catalogue):
    adam = ft(catalogue, precision="bf16", optimizer="adamw").components.optimizer
    eight = ft(catalogue, precision="bf16", optimizer="adamw_8bit").components.optimizer
    assert eight == pytest.approx(adam / 2, rel=0.01)  # bf16 states are 2 bytes, 8-bit 1


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["full", "freeze", "lora", "qlora"]),
    seq=st.integers(1, 16384),
    extra=st.integers(1, 8192),
    checkpointing=st.booleans(),
)
def test_longer_sequences_never_need_less(catalogue, method, seq, extra, checkpointing):
    short = ft(catalogue, method=method, seq_len=seq, grad_checkpointing=checkpointing)
    long = ft(catalogue, method=method, seq_len=seq + extra, grad_checkpointing=checkpointing)
    assert long.total_bytes >= short.total_bytes
    if short.components.activations:  # the peak holds activations: more tokens, more memory
        assert long.total_bytes > short.total_bytes


def test_one_gpu_peaks_at_one_end_of_the_backward_pass(catalogue):
    # Full fine-tuning of Llama 3.1 8B on one GPU: short sequences peak with every gradient and
    # no activation; long ones with every activation and only the output layer's gradient
    # (128,256 x 4,096 in bf16).
    short = ft(catalogue, method="full", seq_len=128)
    long = ft(catalogue, method="full", seq_len=16384)
    assert short.components.activations == 0
    assert short.components.gradients == 2 * 8_030_261_248
    assert long.components.gradients == 2 * 128_256 * 4_096
    assert long.components.activations > short.components.gradients
    two = ft(catalogue, method="full", seq_len=128, gpus=2)  # DDP keeps its buckets: the sum
    first = two.devices[0].components
    assert first.gradients == 2 * 8_030_261_248 and first.activations > 0


def test_methods_order_and_training_needs_more_than_inference(catalogue):
    from calc import InferenceRequest, run_inference

    totals = {m: ft(catalogue, method=m).total_bytes for m in ("full", "freeze", "lora", "qlora")}
    assert totals["full"] > totals["freeze"] > totals["lora"] > totals["qlora"]
    serving = run_inference(
        catalogue, InferenceRequest(model="llama-3.1-8b", engine="transformers", context=1024)
    )
    assert totals["lora"] > serving.components.weights
    assert totals["full"] > serving.total_bytes


def test_checkpointing_and_sharding_cut_memory(catalogue):
    long = {"seq_len": 8192}
    assert (
        ft(catalogue, grad_checkpointing=True, **long).total_bytes
        < ft(catalogue, **long).total_bytes
    )
    # At 1,024 tokens full fine-tuning on one GPU peaks with every gradient and no activation,
    # so checkpointing cannot lower that peak.
    assert ft(catalogue, grad_checkpointing=True).total_bytes == ft(catalogue).total_bytes
    one = ft(catalogue, gpus=1).devices[0].total_bytes
    zero3 = run_finetune(
        catalogue,
        FinetuneRequest(method="full", gpus=4, zero=3),
        model="llama-3.1-8b",
        gpu="a100-80gb-sxm",
    )
    assert len(zero3.devices) == 4
    assert zero3.devices[0].total_bytes < one / 3
    offloaded = run_finetune(
        catalogue,
        FinetuneRequest(method="full", gpus=4, zero=2, offload="optimizer"),
        model="llama-3.1-8b",
    )
    assert offloaded.devices[0].components.optimizer == 0
    assert offloaded.host.optimizer > 0


def test_moe_training_holds_every_expert(catalogue):
    result = ft(catalogue, model="qwen3-30b-a3b", method="lora")
    assert result.components.weights > 2 * 30e9 * 0.95  # all 30.5B parameters in bf16


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "qlora", "gpus": 2, "zero": 3, "offload": "all"}, "QLoRA's 4-bit base"),
        ({"method": "lora", "lora_rank": 5000}, "larger than the smallest adapted projection"),
        ({"seq_len": 0}, "seq_len must be at least 1, got 0"),
        ({"offload": "optimizer"}, "offload needs ZeRO"),
        ({"zero": 2, "offload": "all", "gpus": 2}, "needs ZeRO-3"),
        ({"method": "freeze", "freeze_trainable_layers": 99}, "N must be 1 to 32"),
        ({"method": "lora", "lora_targets": ("qkv",)}, "unknown LoRA target qkv"),
        ({"optimizer": "lion"}, "optimizer must be one of"),
    ],
)
def test_nonsense_combinations_name_their_inputs(catalogue, kwargs, message):
    with pytest.raises(CalcError, match=message):
        ft(catalogue, **kwargs)


def test_cli_json_has_the_inference_shape():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["finetune", "--model", "qwen2.5-7b", "--method", "lora", "--json"]) == 0
    data = json.loads(out.getvalue())
    assert {"total_bytes", "components", "devices", "host_bytes", "notes"} <= set(data)
    assert {"weights", "gradients", "optimizer", "activations", "runtime"} <= set(
        data["components"]
    )
    assert data["total_bytes"] == sum(d["total_bytes"] for d in data["devices"])


def test_cli_lora_dropout_and_fused_qkv_reach_the_estimate():
    def activations(*flags):
        out = io.StringIO()
        args = ["finetune", "--model", "llama-3.1-8b", "--method", "lora", "--json", *flags]
        with contextlib.redirect_stdout(out):
            assert main(args) == 0
        return json.loads(out.getvalue())["components"]["activations"]

    plain = activations()
    dropped = activations("--lora-dropout", "0.05")
    fused = activations("--lora-dropout", "0.05", "--fused-qkv", "on")
    assert plain < fused < dropped


def test_bridge_reads_lora_dropout_as_a_number_or_text(catalogue):
    from calc.bridge import parse_finetune_inputs

    request, _ = parse_finetune_inputs({"model": "llama-3.1-8b", "lora_dropout": "0.05"})
    assert request.lora_dropout == 0.05
    request, _ = parse_finetune_inputs({"model": "llama-3.1-8b", "fused_qkv": "on"})
    assert request.fused_qkv is True
    with pytest.raises(CalcError, match=r"lora_dropout must be a fraction like 0\.05"):
        parse_finetune_inputs({"model": "llama-3.1-8b", "lora_dropout": "a lot"})


def test_cli_bad_input_exits_2():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "calc",
            "finetune",
            "--model",
            "llama-3.1-8b",
            "--method",
            "qlora",
            "--zero",
            "3",
            "--offload",
            "all",
            "--gpus",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert "QLoRA's 4-bit base weights cannot be offloaded" in result.stderr
    assert "Traceback" not in result.stderr


def test_bf16_adapters_take_half_of_fp32_ones(catalogue):
    fp32 = ft(catalogue, method="lora", lora_rank=64).components
    bf16 = ft(catalogue, method="lora", lora_rank=64, adapter_precision="bf16").components
    per_layer = 64 * ((4096 + 4096) * 2 + (4096 + 1024) * 2 + 3 * (4096 + 14336))
    adapters = 32 * per_layer  # q, o, k, v, gate, up, down at rank 64: 167,772,160
    assert adapters == 167_772_160
    # The weights take 4 bytes or 2; AdamW's two states 8 or 4. (At the peak, the start of the
    # backward pass, no adapter gradient exists yet.)
    assert fp32.weights - bf16.weights == 2 * adapters
    assert fp32.optimizer - bf16.optimizer == 4 * adapters
    with pytest.raises(CalcError, match="adapter_precision must be one of fp32, bf16"):
        ft(catalogue, method="lora", adapter_precision="fp16")


def test_compile_drops_the_fp32_norm_copies(catalogue):
    # 8192 tokens, so that a full fine-tune peaks with its activations, not its gradients
    def activations(method, compiled):
        result = ft(catalogue, method=method, seq_len=8192, compiled=compiled)
        return result.components.activations

    # Trained norms: eager keeps each norm's fp32 copy on top of what compiled code keeps.
    full = activations("full", False) - activations("full", True)
    assert full == 32 * 8192 * 2 * 4096 * 4  # layers x tokens x two norms x h x fp32
    # Frozen norms (LoRA): eager keeps the fp32 copy (4 bytes), compiled code the 16-bit input.
    lora = activations("lora", False) - activations("lora", True)
    assert lora == 32 * 8192 * 2 * 4096 * (4 - 2)


def lora_activations(catalogue, **kwargs):
    request = {"method": "lora", "seq_len": 1024, "adapter_precision": "bf16", **kwargs}
    return ft(catalogue, **request).components.activations


def test_a_frozen_projection_keeps_no_input(catalogue):
    # Llama 3.1 8B: 32 layers, h 4096, MLP 14336; 1024 tokens. Autograd saves a frozen
    # projection's input only for an adapter that reads it.
    tokens_layers = 32 * 1024
    q = lora_activations(catalogue, lora_targets=("q_proj",))
    # v reads the same normalised input as q: nothing more is kept
    assert lora_activations(catalogue, lora_targets=("q_proj", "v_proj")) == q
    # o reads the attention output, down the MLP product: one 16-bit copy each
    with_o = lora_activations(catalogue, lora_targets=("q_proj", "o_proj"))
    assert with_o - q == tokens_layers * 4096 * 2
    with_down = lora_activations(catalogue, lora_targets=("q_proj", "down_proj"))
    assert with_down - q == tokens_layers * 14336 * 2
    # fp32 adapters (PEFT) cast the input per adapter: q and v keep one 16-bit copy each
    fp32 = lora_activations(catalogue, lora_targets=("q_proj", "v_proj"), adapter_precision="fp32")
    assert fp32 - q == tokens_layers * 4096 * 2


def test_lora_dropout_keeps_a_copy_and_a_mask_per_adapted_projection(catalogue):
    tokens_layers = 32 * 1024
    qkv = ("q_proj", "k_proj", "v_proj")
    plain = lora_activations(catalogue, lora_targets=qkv)
    dropped = lora_activations(catalogue, lora_targets=qkv, lora_dropout=0.05)
    # three copies (16-bit) and three masks (one byte) replace the one shared input
    assert dropped - plain == tokens_layers * 4096 * (3 * (2 + 1) - 2)
    # LitGPT's fused QKV projection has one dropout for q, k and v together
    fused = lora_activations(catalogue, lora_targets=qkv, lora_dropout=0.05, fused_qkv=True)
    repeated = 2 * (4096 - 1024) * 2  # and LitGPT repeats k and v to every query head
    assert fused - plain == tokens_layers * (4096 * (2 + 1 - 2) + repeated)
    # the output layer's adapter: one copy and mask of the final norm's output
    head = lora_activations(catalogue, lora_targets=(*qkv, "lm_head"), lora_dropout=0.05)
    assert head - dropped == 1024 * 4096 * (2 + 1)


def test_litgpt_fused_qkv_keeps_its_padded_update_and_repeated_k_and_v(catalogue):
    # Llama 3.1 8B: q is 32 heads x 128, k and v 8 x 128; 32 layers, 1,024 tokens
    tokens_layers = 32 * 1024
    qkv = ("q_proj", "k_proj", "v_proj")
    repeated = 2 * (4096 - 1024) * 2  # k and v repeated to 32 heads before attention
    fused_all = lora_activations(catalogue, lora_targets=qkv, fused_qkv=True)
    assert fused_all - lora_activations(catalogue, lora_targets=qkv) == tokens_layers * repeated
    # LitGPT's zero_pad index_copy keeps its source: the 16-bit update of q and v
    unfused = lora_activations(catalogue, lora_targets=("q_proj", "v_proj"))
    fused_qv = lora_activations(catalogue, lora_targets=("q_proj", "v_proj"), fused_qkv=True)
    assert fused_qv - unfused == tokens_layers * ((4096 + 1024) * 2 + repeated)


def test_norms_in_16_bits_keep_their_16_bit_input(catalogue):
    arch = catalogue.model("llama-3.1-8b").arch
    # frozen weights: two norms a layer, each keeps its input in 2 bytes a value instead of 4;
    # trained ones keep the 16-bit input and normalised input (2 + 2) instead of 4 + 2
    for method, fewer in (("lora", 2), ("full", 2)):
        fp32 = layer_token_bytes(arch, FinetuneRequest(method=method))
        bf16 = layer_token_bytes(arch, FinetuneRequest(method=method, norms_fp32=False))
        assert fp32 - bf16 == 2 * 4096 * fewer
    # torch.compile's fused norm keeps its 16-bit input whichever way the eager norm computes
    assert lora_activations(catalogue, compiled=True) == lora_activations(
        catalogue, compiled=True, norms_fp32=False
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "full", "lora_dropout": 0.1}, "lora_dropout applies to LoRA and QLoRA"),
        (
            {"method": "lora", "lora_dropout": 1.0},
            "lora_dropout must be a fraction from 0 and below 1",
        ),
        (
            {"method": "lora", "lora_dropout": -0.1},
            "lora_dropout must be a fraction from 0 and below 1",
        ),
        (
            {"method": "lora", "lora_dropout": True},
            "lora_dropout must be a fraction from 0 and below 1",
        ),
    ],
)
def test_bad_lora_dropout_is_named(catalogue, kwargs, message):
    with pytest.raises(CalcError, match=message):
        ft(catalogue, **kwargs)


def test_a_compiled_chunked_loss_keeps_16_bit_logits_and_one_16_bit_gradient_chunk(catalogue):
    """Compiled, the chunked cross-entropy never writes an fp32 copy: the 16-bit logits and,
    at the peak, one chunk of their 16-bit gradient (of 8)."""

    def logits_part(**kwargs):
        base = ft(catalogue, method="lora", seq_len=4096, compiled=True, **kwargs)
        return base.components.activations

    full = logits_part()
    chunked = logits_part(chunked_loss=True)
    tokens_x_vocab = 4096 * 128_256
    assert full - chunked == tokens_x_vocab * 3 * 4 - (tokens_x_vocab * 2 + tokens_x_vocab * 2 // 8)


def test_a_fused_loss_holds_one_chunk_of_logits_and_a_copy_of_the_hidden_states(catalogue):
    """Liger's fused linear cross-entropy and TRL's chunked_nll: 256 tokens' logits (16-bit, an
    fp32 upcast and the log-softmax) at a time, never the whole; it wins over the 8 chunks."""

    def logits_part(**kwargs):
        return ft(catalogue, method="lora", seq_len=4096, **kwargs).components.activations

    full = logits_part()
    fused = logits_part(fused_loss=True)
    assert full - fused == 4096 * 128_256 * 3 * 4 - (256 * 128_256 * (2 + 4 + 4) + 4096 * 4096 * 2)
    assert logits_part(fused_loss=True, chunked_loss=True) == fused
    # shorter than a chunk: the sequence's own tokens
    short = ft(catalogue, method="lora", seq_len=100, fused_loss=True)
    unfused = ft(catalogue, method="lora", seq_len=100)
    # (the whole loss's 12 bytes a logit against one chunk's 10, plus the hidden states)
    assert unfused.components.activations - short.components.activations == (
        100 * 128_256 * 2 - 100 * 4096 * 2
    )


def test_offloaded_activations_peak_at_one_layer_or_the_loss(catalogue):
    on = ft(catalogue, method="lora", seq_len=4096, activation_offloading=True)
    tokens_x_vocab = 4096 * 128_256
    assert on.components.activations == tokens_x_vocab * 12  # the loss outweighs one layer here
    assert on.host.activations > 0


def test_the_training_state_reads_only_its_memo_key(catalogue):
    """estimate_finetune memoises the training state under STATE_INPUTS: changing any other
    field of the request (what the hints vary, and the rest) must leave the state alone."""
    from dataclasses import fields, replace

    from calc.finetune import STATE_INPUTS, _training_state
    from calc.tensors import model_tensors

    others = {
        "seq_len": 4096,
        "micro_batch": 4,
        "grad_checkpointing": True,
        "flash_attention": False,
        "gpus": 4,
        "offload": "optimizer",
        "chunked_loss": True,
        "fused_loss": True,
        "loss_chunk_gib": 4.0,
        "activation_offloading": True,
        "compiled": True,
        "lora_dropout": 0.1,
        "fused_qkv": True,
        "norms_fp32": False,
        "precompute_ref": True,
        "kl_beta": 0.5,
        "completion_len": 77,
        "colocate_vllm": 0.4,
        "bnb_version": "0.42.0",
        "double_quant": False,  # a format of its own: the memo key holds the format's id
        "fp16_quant_state": True,
        "keeps_graph": True,
        "trainer": "trl",
        "trainer_version": "0.22.0",
        "sequence_parallel": 2,
        "tensor_parallel": 2,
        "grad_accumulation": 8,
        "accumulate_unsharded": True,
        "flat_parameters": True,
        "selective_logprobs": True,
        "reference_grad_buffer": True,
        "vllm_sleep": True,
        "temperature_in_place": True,
        "loss_upcast": False,
        "fused_tiles": True,
        "foreach_step": True,
    }
    assert set(others) == {f.name for f in fields(FinetuneRequest)} - set(STATE_INPUTS)
    for model in ("llama-3.1-8b", "qwen3-30b-a3b"):
        arch = catalogue.model(model).arch
        for method in ("full", "freeze", "lora", "qlora"):
            base = FinetuneRequest(method=method, optimizer_in_backward=method == "full")
            fmt = catalogue.weight_format("nf4" if method == "qlora" else "bf16")

            def state(request, arch=arch, fmt=fmt):
                return _training_state(
                    arch,
                    request,
                    model_tensors(arch),
                    storage_types=catalogue.storage_types,
                    base_format=fmt,
                )

            for name, value in others.items():
                assert state(replace(base, **{name: value})) == state(base), (model, name)


def test_deepspeed_keeps_fp32_master_weights_and_gradients_that_fsdp_does_not(catalogue):
    """DeepSpeed's ZeRO optimizer makes an fp32 master partition and fp32 Adam state even for a
    bf16 model, and ZeRO-3 accumulates gradients in fp32; FSDP shards the bf16 state as it is."""

    def per_gpu(sharding, zero=3):
        request = FinetuneRequest(
            method="full", precision="bf16", gpus=4, zero=zero, sharding=sharding
        )
        estimate = run_finetune(catalogue, request, model="qwen3-8b")
        return estimate.total_parameters, estimate.devices[0].components

    params, fsdp = per_gpu("fsdp")
    _, deepspeed = per_gpu("deepspeed")
    # bf16 AdamW: two bf16 states; DeepSpeed: fp32 master + two fp32 states, each over 4 GPUs
    assert fsdp.optimizer == pytest.approx(params * 2 * 2 / 4, rel=1e-3)
    assert deepspeed.optimizer == pytest.approx(params * 3 * 4 / 4, rel=1e-3)
    # fp32 gradient partitions against bf16 ones; FSDP also holds one whole block's bf16
    # gradients, and two whole blocks' weights (the one computing and the one prefetched)
    # DeepSpeed also gathers the output layer (and its whole gradient) and the block computing
    arch = catalogue.model("qwen3-8b").arch
    output = arch.vocab_size * arch.hidden_size
    block = (params - 2 * output) // arch.num_layers
    assert deepspeed.gradients == pytest.approx(params * 4 / 4 + 2 * output, rel=1e-3)
    assert fsdp.gradients == pytest.approx(params * 2 / 4 + 2 * block, rel=1e-3)
    assert fsdp.weights - deepspeed.weights == pytest.approx(2 * block - 2 * output, rel=1e-3)
    # without ZeRO the library does not matter
    assert per_gpu("fsdp", zero=0) == per_gpu("deepspeed", zero=0)


def test_fsdp_accumulating_unsharded_keeps_every_trained_gradient_whole(catalogue):
    """A loop that skips FSDP's reduce-scatter between micro-batches (no_sync) keeps each
    trained weight's gradient whole on every GPU until the step (PyTorch PR #126166); with one
    micro-batch a step, or under DeepSpeed, nothing changes."""

    def gpu(**kwargs):
        request = FinetuneRequest(
            **{"method": "full", "precision": "bf16", "gpus": 4, "zero": 3, **kwargs}
        )
        estimate = run_finetune(catalogue, request, model="qwen3-8b")
        return estimate.total_parameters, estimate.devices[0].components, estimate.notes

    params, sharded, _ = gpu(sharding="fsdp", grad_accumulation=8)
    _, whole, notes = gpu(sharding="fsdp", grad_accumulation=8, accumulate_unsharded=True)
    assert whole.gradients == 2 * params  # every bf16 gradient, none divided, none in flight
    assert whole.weights == sharded.weights and whole.optimizer == sharded.optimizer
    assert "ZeRO-3 over 4 GPUs: optimizer, weights divided" in notes
    assert gpu(sharding="fsdp", grad_accumulation=1, accumulate_unsharded=True)[1] == sharded
    assert gpu(sharding="fsdp", accumulate_unsharded=False, grad_accumulation=8)[1] == sharded
    deepspeed = gpu(sharding="deepspeed", grad_accumulation=8)[1]
    assert gpu(sharding="deepspeed", grad_accumulation=8, accumulate_unsharded=True)[1] == (
        deepspeed
    )


def test_fsdp1_flat_parameters_give_lora_blocks_a_gradient_for_their_frozen_weights(catalogue):
    """FSDP1 with use_orig_params flattens a block's frozen and LoRA weights into one
    FlatParameter with one gradient: "equivalent to not freezing those parameters" (PyTorch's
    FSDP docs). Sharded between micro-batches it is divided; kept whole under no_sync."""
    arch = catalogue.model("llama-3.1-8b").arch

    def gpu(**kwargs):
        request = FinetuneRequest(
            **{"method": "lora", "gpus": 2, "zero": 3, "sharding": "fsdp", **kwargs}
        )
        estimate = run_finetune(catalogue, request, model="llama-3.1-8b")
        return estimate.devices[0].components, estimate.notes

    per_gpu, _ = gpu()
    flat, notes = gpu(flat_parameters=True)
    params = ft(catalogue).total_parameters
    block = (params - 2 * arch.vocab_size * arch.hidden_size) // arch.num_layers
    frozen_blocks = 2 * block * arch.num_layers  # bf16 gradients, embeddings and head outside
    assert flat.gradients - per_gpu.gradients == pytest.approx(frozen_blocks / 2 + 2 * block, 0.01)
    assert any(note.startswith("FSDP1 flat parameters") for note in notes)
    whole, _ = gpu(flat_parameters=True, grad_accumulation=4, accumulate_unsharded=True)
    adapters = 2 * per_gpu.gradients  # the LoRA weights' fp32 gradients, halved by sharding
    assert whole.gradients == pytest.approx(frozen_blocks + adapters, rel=0.001)


def test_offloading_the_optimizer_takes_its_gradients_along(catalogue):
    """ZeRO-Offload keeps the gradient partition with the optimizer on the CPU (DeepSpeed's
    grad_partitions_flat_buffer on the optimizer's device; FSDP's CPUOffloadPolicy moves
    gradients too): the GPU keeps only the gradient in flight."""

    def run(offload):
        request = FinetuneRequest(method="full", precision="bf16", gpus=2, zero=2, offload=offload)
        return run_finetune(catalogue, request, model="llama-3.1-8b")

    kept, offloaded = run("none"), run("optimizer")
    arch = catalogue.model("llama-3.1-8b").arch
    embedding = 2 * arch.vocab_size * arch.hidden_size  # the largest tensor's bf16 gradient
    assert kept.devices[0].components.gradients > embedding
    assert offloaded.devices[0].components.gradients == embedding
    assert offloaded.devices[0].components.optimizer == 0
    assert offloaded.host.gradients == 2 * kept.devices[0].components.gradients
    assert "optimizer state and gradients offloaded to CPU RAM" in offloaded.notes


def test_peft_kbit_preparation_holds_the_unquantised_weights_and_residual_stream_in_fp32(catalogue):
    """prepare_model_for_kbit_training casts every non-4-bit weight to fp32; the fp32 embedding
    makes the checkpointed layer inputs fp32, and autocast keeps a 16-bit output layer copy."""

    def run(upcast):
        request = FinetuneRequest(method="qlora", seq_len=2048, kbit_upcast=upcast)
        return run_finetune(catalogue, request, model="llama-3.1-8b").components

    plain, upcast = run(False), run(True)
    arch = catalogue.model("llama-3.1-8b").arch
    vocab_x_h = arch.vocab_size * arch.hidden_size
    norms = (2 * arch.num_layers + 1) * arch.hidden_size  # two per layer and the final one
    assert upcast.weights - plain.weights == 2 * (2 * vocab_x_h + norms)  # bf16 -> fp32
    checkpoints = arch.num_layers * 2048 * arch.hidden_size * 2  # fp32 instead of bf16
    # the layer being recomputed: gate, up and activation in fp32 (Linear4bit returns its fp32
    # input's dtype)
    mlp = 2048 * 3 * arch.intermediate_size * 2
    assert upcast.activations - plain.activations == checkpoints + 2 * vocab_x_h + mlp
    # LoRA on a 16-bit base is not prepared for k-bit training
    from calc.inputs import finetune_request

    with pytest.raises(CalcError, match="kbit_upcast applies to qlora only"):
        finetune_request({"model": "llama-3.1-8b", "method": "lora", "kbit_upcast": True})


def test_lightning_qlora_quantises_the_output_layer_from_fp16_without_double_quant(catalogue):
    """LitGPT's bnb.nf4: every nn.Linear (lm_head too) in NF4 without double quantisation
    (4.5 bits), quantised from fp16, so the output layer's dequantisation holds an fp16 copy and
    its bf16 cast at the peak; HF's QLoRA leaves lm_head 16-bit and dequantises one projection."""
    from calc.tensors import model_tensors

    arch = catalogue.model("llama-3.1-8b").arch
    v_h = arch.vocab_size * arch.hidden_size

    def run(**kw):
        request = FinetuneRequest(method="qlora", seq_len=512, **kw)
        return run_finetune(catalogue, request, model="llama-3.1-8b")

    hf = run()
    largest = max(  # the largest projection, dequantised to bf16 while it computes
        t.numel for t in model_tensors(arch) if t.layer is not None and len(t.shape) == 2
    )
    assert any(f"({largest:,} values) dequantised to 16 bits" in n for n in hf.notes)
    nodq = run(double_quant=False)
    quantised = sum(
        t.numel for t in model_tensors(arch) if t.layer is not None and len(t.shape) == 2
    )
    extra = nodq.components.weights - hf.components.weights
    assert extra == pytest.approx(quantised * (4.5 - 4.127) / 8, rel=0.01)
    lit = run(double_quant=False, quantize_output=True, fp16_quant_state=True)
    # lm_head: 16-bit -> 4.5-bit, plus its fp16 and bf16 copies while it computes
    output_saved = v_h * 2 - v_h * 4.5 / 8
    transient = 2 * 2 * v_h - 2 * largest
    assert lit.components.weights - nodq.components.weights == pytest.approx(
        transient - output_saved, rel=0.001
    )


def test_a_loop_that_keeps_its_outputs_keeps_old_bitsandbytes_inputs_a_step_longer(catalogue):
    """bitsandbytes before 0.43.2 stores the 4-bit layers' inputs on the autograd ctx; a loop
    that keeps the last step's logits (LitGPT) keeps them through the next forward pass."""
    arch = catalogue.model("llama-3.1-8b").arch

    def activations(**kw):
        request = FinetuneRequest(
            method="qlora", seq_len=512, grad_checkpointing=False, bnb_version="0.42.0", **kw
        )
        return run_finetune(catalogue, request, model="llama-3.1-8b").components.activations

    width = 2 * arch.hidden_size + arch.num_attention_heads * arch.head_dim + 14_336
    assert activations(keeps_graph=True) - activations() == arch.num_layers * 512 * 2 * width
    fixed = FinetuneRequest(method="qlora", seq_len=512, grad_checkpointing=False, keeps_graph=True)
    plain = FinetuneRequest(method="qlora", seq_len=512, grad_checkpointing=False)
    assert (
        run_finetune(catalogue, fixed, model="llama-3.1-8b").total_bytes
        == run_finetune(catalogue, plain, model="llama-3.1-8b").total_bytes
    )  # fixed in 0.43.2: nothing kept


def test_a_base_loaded_in_fp32_doubles_the_frozen_weights_and_keeps_bf16_casts(catalogue):
    """TRL from 0.27 loads a named model in fp32: the frozen weights take 4 bytes, the residual
    stream is fp32, and autocast's bf16 cast of each frozen projection stays for the backward
    pass: every layer's without checkpointing, one layer's with it."""
    from calc.tensors import model_tensors

    arch = catalogue.model("llama-3.1-8b").arch
    layer = sum(t.numel for t in model_tensors(arch) if t.layer == 0 and len(t.shape) == 2)
    v_h = arch.vocab_size * arch.hidden_size

    def parts(dtype, checkpointing):
        request = FinetuneRequest(
            method="lora", seq_len=512, weights_dtype=dtype, grad_checkpointing=checkpointing
        )
        return run_finetune(catalogue, request, model="llama-3.1-8b").components

    for checkpointing, layers in ((True, 1), (False, arch.num_layers)):
        bf16, fp32 = parts("bf16", checkpointing), parts("fp32", checkpointing)
        assert fp32.weights - bf16.weights == bf16.weights - lora_bytes(catalogue)
        extra = fp32.activations - bf16.activations
        residual = arch.num_layers * 512 * arch.hidden_size * 2 if checkpointing else 0
        assert extra == layers * layer * 2 + v_h * 2 + residual


def lora_bytes(catalogue):
    """The default LoRA adapters' fp32 weights on Llama 3.1 8B (rank 16 on every projection)."""
    estimate = run_finetune(catalogue, FinetuneRequest(method="lora"), model="llama-3.1-8b")
    return 4 * estimate.trainable_parameters


def test_a_chunk_budget_needs_the_fused_loss(catalogue):
    from calc.inputs import finetune_request

    request, _ = finetune_request({"model": "qwen3-8b", "loss_chunk_gib": 4.0})
    with pytest.raises(CalcError, match="loss_chunk_gib sizes the fused loss's chunks"):
        run_finetune(catalogue, request, model="qwen3-8b")
    fused, _ = finetune_request(
        {"model": "qwen3-8b", "fused_loss": True, "loss_chunk_gib": 4.0, "seq_len": 2048}
    )
    estimate = run_finetune(catalogue, fused, model="qwen3-8b")
    assert any("chunks of at most 4 GiB of fp32 logits" in note for note in estimate.notes)


def test_a_reward_model_scores_pairs_without_vocabulary_logits(catalogue):
    """TRL's RewardTrainer: AutoModelForSequenceClassification(num_labels=1), chosen and
    rejected concatenated into one batch: no output layer, no logits, two sequences a pair."""
    arch = catalogue.model("qwen3-8b").arch

    def parts(method, **kw):
        request = FinetuneRequest(method=method, seq_len=1024, grad_checkpointing=False, **kw)
        return run_finetune(catalogue, request, model="qwen3-8b")

    reward, orpo = parts("reward"), parts("orpo")  # ORPO: the same pairs, with the LM head
    output = 2 * arch.vocab_size * arch.hidden_size
    head = 4 * arch.hidden_size  # the fp32 score head
    assert orpo.components.weights - reward.components.weights == output - head
    # two sequences: under Accelerate's autocast fp32 logits read row by row, whose backward
    # pass holds three fp32 tensors their size, and ORPO's NLL log-softmax over the chosen one
    logits = 2 * 1024 * arch.vocab_size * 3 * 4 + 1024 * arch.vocab_size * 4
    assert orpo.components.activations - reward.components.activations == logits
    assert reward.total_parameters == orpo.total_parameters - output // 2 + arch.hidden_size
    assert any("one-output score head" in note for note in reward.notes)


def test_megatron_tensor_parallel_divides_everything_and_keeps_fp32_gradients(catalogue):
    """Megatron TP with sequence parallelism splits weights, gradients, optimizer state and
    activations over its GPUs; the distributed optimizer shards the rest over data parallel;
    bf16 training keeps fp32 main weights and fp32 main gradients."""

    def parts(tp, **kw):
        request = FinetuneRequest(
            method="full",
            precision="bf16",
            gpus=4,
            zero=1,
            sharding="megatron",
            tensor_parallel=tp,
            seq_len=4096,
            **kw,
        )
        return run_finetune(catalogue, request, model="qwen2.5-7b")

    one, two = parts(1), parts(2)
    params = one.total_parameters
    assert one.devices[0].components.gradients == pytest.approx(4 * params, rel=1e-3)
    assert two.devices[0].components.gradients == pytest.approx(4 * params / 2, rel=1e-3)
    # fp32 weights + two fp32 Adam states over tensor x data parallel: always the 4 GPUs
    assert one.devices[0].components.optimizer == pytest.approx(12 * params / 4, rel=1e-3)
    assert two.devices[0].components.optimizer == pytest.approx(12 * params / 4, rel=1e-3)
    assert two.devices[0].components.weights == pytest.approx(2 * params / 2, rel=1e-3)
    assert two.devices[0].components.activations == pytest.approx(
        one.devices[0].components.activations / 2, abs=1
    )
    assert any("tensor parallel over 2 GPUs" in note for note in two.notes)
    with pytest.raises(CalcError, match="tensor_parallel 3 x sequence_parallel 1 must divide"):
        parts(3)


def test_only_norms_that_multiply_their_weight_in_fp32_are_marked_so(catalogue):
    # Gemma's ``output * (1.0 + self.weight.float())`` and Qwen3-Next's: fp32; LFM2 and Llama
    # multiply by ``hidden_states.to(input_dtype)``: 16 bits
    fp32 = {"gemma-3-4b", "qwen3-next-80b-a3b-instruct", "olmo-2-1124-7b", "gpt-oss-20b"}
    for model in (*fp32, "lfm2-350m", "llama-3.1-8b", "qwen3-8b"):
        assert catalogue.model(model).arch.norm_weight_fp32 is (model in fp32), model
