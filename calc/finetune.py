"""Fine-tuning memory: weights, gradients, optimizer state, activations and runtime, per GPU.

One pure function per component, each with its source:

- mixed precision with fp32 master weights: 2 bytes of 16-bit weights, 2 of gradients and 12 of
  optimizer state (fp32 master copy, momentum, variance) per parameter (ZeRO, Rajbhandari et
  al. 2020, section 3.1: "2Ψ + 2Ψ + KΨ" with K = 12 for Adam);
- activations per layer after Korthikanti et al. 2022 ("Reducing Activation Recomputation in
  Large Transformer Models", section 4.1), rewritten for gated MLPs, grouped-query attention and
  no dropout: every tensor a backward pass reads, in 16-bit, plus the attention scores when
  flash attention is off;
- LoRA (Hu et al. 2021): r x (in + out) adapter parameters per adapted matrix, trained in fp32
  (PEFT's default autocast_adapter_dtype=True) over frozen 16-bit weights; QLoRA (Dettmers et
  al. 2023): the frozen weights in NF4 with double quantisation, 4.127 bits per parameter;
- sharding (ZeRO stages, FSDP): stage 1 divides optimizer state over the GPUs, stage 2 also the
  gradients, stage 3 (FSDP full shard) also the weights.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import field
from functools import lru_cache
from math import ceil
from typing import Any, Literal, get_args

from calc._errors import InputError
from calc.architecture import Architecture
from calc.breakdown import ByKind, Device
from calc.engines.history import version_key
from calc.formats import StorageType, WeightFormat, tensor_bytes, tensor_storage
from calc.records import record, replace
from calc.speed import CUDA_CONTEXT_BYTES
from calc.tensors import WEIGHT, Tensor, model_tensors, parameters_of

# What trains (the weights' side) and, for preference and RL training, the objective; a
# preference or RL method trains its weights as ``tuning`` says (LoRA by default).
Tuning = Literal["lora", "qlora", "full", "freeze"]
Objective = Literal["dpo", "orpo", "kto", "grpo", "ppo", "reward"]
Method = Literal["lora", "qlora", "full", "freeze", "dpo", "orpo", "kto", "grpo", "ppo", "reward"]
Precision = Literal["amp", "bf16"]
Optimizer = Literal[
    "adamw",
    "adamw_8bit",
    "paged_adamw_8bit",
    "paged_adamw_32bit",
    "sgd",
    "sgd_momentum",
    "adafactor",
]
Zero = Literal[0, 1, 2, 3]
Sharding = Literal["deepspeed", "fsdp", "megatron"]  # what implements the ZeRO stage
OffloadTarget = Literal["none", "optimizer", "all"]  # what ZeRO moves to CPU RAM
AdapterPrecision = Literal["fp32", "bf16"]
WeightsDtype = Literal["bf16", "fp32"]
METHODS: tuple[Method, ...] = get_args(Method)
TUNINGS: tuple[Tuning, ...] = get_args(Tuning)
OBJECTIVES: tuple[Objective, ...] = get_args(Objective)
# The methods whose loss reads each token's log-probability from the logits (not reward models)
LOGPROB_OBJECTIVES: tuple[Objective, ...] = ("dpo", "orpo", "kto", "grpo", "ppo")
# Sequences a sample puts through the trained forward and backward passes: DPO and ORPO the
# chosen and the rejected completion, concatenated into one batch (TRL's DPOTrainer builds
# ``torch.cat((chosen, rejected))``, trl/trainer/dpo_trainer.py); PPO the policy's and the
# value model's forward over the same rollout; reward modelling the chosen and the rejected
# sequence (TRL's RewardTrainer collator: ``input_ids = chosen_ids + rejected_ids``).
SEQUENCES_PER_SAMPLE: Mapping[str, int] = {"dpo": 2, "orpo": 2, "ppo": 2, "reward": 2}
# Objectives that read a frozen reference model's log-probabilities (GRPO only when its KL
# coefficient is above 0).
REFERENCED: tuple[Objective, ...] = ("dpo", "kto", "grpo", "ppo")
# Their trainers divide the logits by the sampling temperature before the log-softmax
# (see FinetuneRequest.temperature_in_place)
TEMPERATURE_SCALED: tuple[Objective, ...] = ("grpo", "ppo")
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
OPTIMIZERS: tuple[Optimizer, ...] = get_args(Optimizer)
SHARDING: tuple[Zero, ...] = get_args(Zero)
OFFLOAD: tuple[OffloadTarget, ...] = get_args(OffloadTarget)
ADAPTER_PRECISIONS: tuple[AdapterPrecision, ...] = get_args(AdapterPrecision)
ADAPTER_METHODS: tuple[Tuning, ...] = ("lora", "qlora")
# LoRA target names, as PEFT spells the modules of Llama-style models, and llama.cpp's roles.
LORA_MODULES = {
    "q_proj": ("attn_q", "attn_q_b"),
    "k_proj": ("attn_k",),
    "v_proj": ("attn_v",),
    "o_proj": ("attn_output",),
    "gate_proj": ("ffn_gate", "ffn_gate_exps", "ffn_gate_shexp"),
    "up_proj": ("ffn_up", "ffn_up_exps", "ffn_up_shexp"),
    "down_proj": ("ffn_down", "ffn_down_exps", "ffn_down_shexp"),
    "embed_tokens": ("token_embd",),
    "lm_head": ("output",),
}
LORA_GROUPS = {
    "attention": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "mlp": ("gate_proj", "up_proj", "down_proj"),
    "all": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
}


def parse_lora_targets(text: str) -> tuple[str, ...]:
    """'all', 'attention,lm_head' or 'q_proj,v_proj' as module names, groups expanded, once each."""
    names: list[str] = []
    for part in text.split(","):
        part = part.strip()
        names += list(LORA_GROUPS.get(part, (part,)))
    return tuple(dict.fromkeys(names))


BF16 = 2
FP32 = 4
# Optimizer state bytes per trainable parameter, by the dtype of the trained weights.
#   AdamW: momentum and variance (Loshchilov & Hutter 2019); 8-bit AdamW: two 8-bit states with
#   one fp32 scale per block of 2048 (bitsandbytes, Dettmers et al. 2022, "8-bit Optimizers via
#   Block-wise Quantization"); SGD with momentum: one state; Adafactor: factored second moment
#   (Shazeer & Stern 2018), counted per matrix below.
BNB_BLOCK = 2048


def optimizer_state_bytes(
    optimizer: str, tensor_numel: int, shape: Sequence[int], width: int
) -> int:
    """State bytes for one trainable tensor of ``tensor_numel`` values stored ``width`` wide."""
    if optimizer in ("adamw", "paged_adamw_32bit"):
        return 2 * width * tensor_numel
    if optimizer in ("adamw_8bit", "paged_adamw_8bit"):
        return 2 * (tensor_numel + ceil(tensor_numel / BNB_BLOCK) * FP32)
    if optimizer == "sgd_momentum":
        return width * tensor_numel
    if optimizer == "adafactor":
        if len(shape) >= 2:
            rows = tensor_numel // shape[0]
            return FP32 * (shape[0] + rows)  # row and column statistics, no momentum
        return FP32 * tensor_numel
    return 0  # plain SGD


# bitsandbytes' newest release (tag 0.50.1, 2026-08-19), and the first without the QLoRA memory
# bug: before PR #1270 (commit 9e753741, "fix QLoRA mem bug: delete useless buffered
# activation", first in 0.43.2), MatMul4Bit.forward kept its input in ``ctx.tensors = (A, B)``
# until the backward pass, which only needs B (bitsandbytes/autograd/_functions.py).
BNB_NEWEST = "0.50.1"
BNB_FIXED = version_key("0.43.2")


def version_tuple(text: str) -> tuple[int, ...]:
    """A bitsandbytes release, compared as an engine's is (calc.engines.history.version_key);
    anything but dotted numbers is an input error."""
    if not re.fullmatch(r"v?\d+(\.\d+)*", text.strip()):
        raise InputError(
            f"bnb_version must be a release such as 0.43.2, got {text!r}", field="bnb_version"
        )
    return version_key(text.strip(), "bnb_version")


@record
class FinetuneRequest:
    """A fine-tuning setup; the defaults are the calculator's and the CLI's (calc.inputs)."""

    method: Method = "lora"
    precision: Precision = "amp"
    optimizer: Optimizer = "adamw"
    lora_rank: int = 16
    lora_targets: tuple[str, ...] = LORA_GROUPS["all"]
    freeze_trainable_layers: int = 2
    seq_len: int = 1024
    micro_batch: int = 1
    grad_checkpointing: bool = True  # as the guide's tables assume (the page's default too)
    flash_attention: bool = True
    gpus: int = 1
    zero: Zero = 0
    # DeepSpeed's ZeRO optimizer keeps fp32 master weights, fp32 optimizer state and (stage 3)
    # an fp32 gradient partition whatever the precision; PyTorch FSDP/FSDP2 shards what the
    # precision says (see _training_state).
    sharding: Sharding = "deepspeed"
    # Sequence (context) parallelism: each sequence split over this many GPUs (DeepSpeed
    # Ulysses, ring attention); a divisor of gpus.
    sequence_parallel: int = 1
    # Tensor parallelism (Megatron-LM and Megatron-Core, as Megatron-SWIFT runs it, with
    # sequence parallelism): every matrix, the vocabulary too, split over this many GPUs, and
    # with it the activations; ZeRO or the distributed optimizer shards over the data-parallel
    # rest (gpus / tensor_parallel). A divisor of gpus.
    tensor_parallel: int = 1
    offload: OffloadTarget = "none"
    # Framework features that cut memory (torchtune's names): the loss computed over chunks of
    # the output (CEWithChunkedOutputLoss, 8 chunks), the optimizer stepped inside the backward
    # pass so that gradients never exist all at once (optimizer_in_bwd), and activations moved
    # to CPU RAM between the forward and backward passes (enable_activation_offloading).
    chunked_loss: bool = False
    # The output layer and the loss fused over chunks of tokens, so that no chunk's logits
    # outlive it (Liger's fused linear cross-entropy, TRL's loss_type="chunked_nll"): it takes
    # precedence over chunked_loss (see loss_logit_bytes). Unsloth's fuses them too, in chunks
    # sized by memory (loss_chunk_gib).
    fused_loss: bool = False
    # The fused loss's chunks sized to hold at most this many GiB of fp32 logits, as Unsloth
    # sizes them (unsloth_zoo fused_losses/cross_entropy_loss.py: half the free memory, at most
    # 4 GiB since unsloth-zoo PR #857); 0: chunks of FUSED_LOSS_CHUNK tokens (Liger, TRL).
    loss_chunk_gib: float = 0.0
    # The fused loss as TRL's fused LM head (add_fused_lm_head, from TRL 1.15.0): the output
    # layer scored in tiles of FUSED_TILE_TOKENS tokens by FUSED_TILE_VOCAB vocabulary entries in
    # the compute dtype, reusing one tile buffer, with the hidden states it scores kept and their
    # gradient accumulated in fp32 (trl/kernels/chunked_logprob.py ChunkedLogProbFunction).
    fused_tiles: bool = False
    optimizer_in_backward: bool = False
    # torch.optim.AdamW stepped by its default foreach implementation (PyTorch's default;
    # Hugging Face's adamw_torch, the Trainer's default until transformers made adamw_torch_fused
    # the default for PyTorch 2.8 and later, PR #37358): the step runs over every trained tensor
    # at once and writes one temporary as large as exp_avg_sq (``exp_avg_sq_sqrt =
    # torch._foreach_sqrt(device_exp_avg_sqs)`` in torch/optim/adam.py _multi_tensor_adam). The
    # fused step and bitsandbytes' optimizers work in place. Counted where one process's peak
    # is at an end of the backward pass (backward_peak); where DDP's or ZeRO's buffers make
    # every part add up, the activations the step outlives already stand in for it.
    foreach_step: bool = False
    activation_offloading: bool = False
    # Micro-batches per optimizer step. Under FSDP a loop may skip the reduce-scatter between
    # them (FSDP's no_sync, FSDP2's set_requires_gradient_sync(False)): every trained weight's
    # gradient then stays whole, not sharded, until the step. "(1) reduce-scatter ... saves
    # gradient memory (storing the sharded gradients), while (2) avoids the communication but
    # uses more gradient memory (storing the unsharded gradients)" (PyTorch PR #126166).
    # Hugging Face's Trainer does so unless DeepSpeed runs it or Accelerate's sync_each_batch is
    # set (trainer.py: ``functools.partial(self.accelerator.no_sync, model=model) if i !=
    # len(batch_samples) - 1``); LitGPT's loops too (``fabric.no_backward_sync``).
    grad_accumulation: int = 1
    accumulate_unsharded: bool = False
    # FSDP1 with use_orig_params=True flattens a wrapped block's weights into one FlatParameter,
    # frozen and trained alike, and gives it one gradient: "the gradient memory usage will be
    # higher than expected (namely, equivalent to not freezing those parameters)" (PyTorch's
    # FSDP docs). LitGPT's LoRA wrapped whole blocks so until 0.5.8 (PR #1538).
    flat_parameters: bool = False
    # torch.compile: AOTAutograd's min-cut partitioner recomputes cheap pointwise ops in the
    # backward pass instead of saving their outputs (see activation_bytes).
    compiled: bool = False
    # LoRA adapters' dtype: PEFT keeps them in fp32 (autocast_adapter_dtype=True); frameworks
    # that build the whole model in bf16 (torchtune, LitGPT's bf16-true) train them in bf16.
    adapter_precision: AdapterPrecision = "fp32"
    # Dropout on the adapters' input (PEFT's and torchtune's default 0.0, LitGPT's configs 0.05,
    # ms-swift's 0.05): each adapted projection keeps its own dropped-out copy and mask.
    lora_dropout: float = 0.0
    # q, k and v as one projection with one adapter input (LitGPT's LoRAQKVLinear).
    fused_qkv: bool = False
    # Eager RMSNorm casts its input to fp32 first and autograd keeps that copy (transformers,
    # torchtune, LitGPT since PR #606 of October 2023); off: the norm computes in the model's
    # 16 bits and keeps its 16-bit input (lit-gpt before that: lit_gpt/rmsnorm.py at 8641822).
    norms_fp32: bool = True
    # Preference and RL training (TRL 1.9's defaults): what trains, the reference model's
    # log-probabilities computed once before training (DPOConfig/KTOConfig
    # precompute_ref_log_probs=False), GRPO's KL coefficient (GRPOConfig beta=0.0: no reference
    # model), the completion GRPO computes log-probabilities over (max_completion_length=256 in
    # 1.9.0; 512 on main, not released) and the share of each GPU a colocated vLLM takes for
    # generation (0: generation by the trainer itself; TRL's vllm_gpu_memory_utilization=0.3
    # when use_vllm). They follow the trainer and bitsandbytes fields below.
    # The tool whose defaults the request took (calc.trainers; "none": the guide's own), and
    # its release ("": the newest modelled).
    trainer: str = "none"
    trainer_version: str = ""
    # The bitsandbytes release QLoRA's 4-bit layers run on (see layer_token_bytes).
    bnb_version: str = BNB_NEWEST
    # QLoRA prepared by PEFT's prepare_model_for_kbit_training, which casts every weight left
    # unquantised (embeddings, output layer, norms) to fp32 ("cast all non INT8 parameters to
    # fp32", peft/utils/other.py): the residual stream the fp32 embedding starts is fp32 too,
    # and autocast's 16-bit copy of the output layer stays for the backward pass.
    kbit_upcast: bool = False
    # QLoRA's 4-bit base as the tool builds it: bitsandbytes' double quantisation of the
    # block scales (4.127 bits a weight, else 4.5: the nf4 and nf4_nodq formats); the output
    # layer quantised too (LitGPT and Lightning replace every nn.Linear: lightning/fabric/
    # plugins/precision/bitsandbytes.py _ClassReplacementContextManager); weights quantised from
    # fp16 (Lightning: ``weight.contiguous().to(device=device, dtype=torch.half)``), so that each
    # dequantisation makes an fp16 copy and then its bf16 cast (MatMul4Bit ``F.dequantize_4bit(B,
    # quant_state).to(A.dtype)``); and a training loop that keeps the last step's outputs until
    # the next forward pass returns (LitGPT's fit() rebinds ``logits`` only then), which with
    # bitsandbytes before 0.43.2 keeps that step's 4-bit layer inputs (``ctx.tensors = (A, B)``,
    # a ctx attribute the autograd engine does not free) through the next forward.
    double_quant: bool = True
    # LoRA and QLoRA: the dtype the base model is loaded in, its unquantised weights held in.
    # TRL from 0.27.0 loads a model given by name in float32 unless told otherwise
    # (trl/trainer/utils.py ``dtype = kwargs.get("dtype", "float32")``, PR #4778); training
    # still computes in bf16 under autocast, which casts each frozen weight per use and keeps
    # the cast for the backward pass (see activation_bytes).
    weights_dtype: WeightsDtype = "bf16"
    quantize_output: bool = False
    fp16_quant_state: bool = False
    keeps_graph: bool = False
    tuning: Tuning = "lora"
    precompute_ref: bool = False
    # The preference or RL loss takes each token's log-probability by a log-softmax and gather
    # row by row over the logits as the model returns them (TRL's selective_log_softmax, from
    # 0.15, as the other defaults here are TRL's; ms-swift's DPO calls it too): no fp32 copy
    # beside them. Off: the logits cast to fp32 first and their fp32 log-softmax kept
    # (LLaMA-Factory's ``.logits.to(torch.float32)``). No effect on SFT or reward modelling.
    selective_logprobs: bool = True
    # Megatron-SWIFT before 3.8.3 (PR #6027): the full-parameter reference model wrapped in
    # Megatron's DDP, whose buffer gives it an fp32 gradient for every parameter (see
    # with_reference).
    reference_grad_buffer: bool = False
    kl_beta: float = 0.0
    completion_len: int = 256
    colocate_vllm: float = 0.0
    # The colocated vLLM slept between generations (TRL's vllm_enable_sleep_mode, default False:
    # ``self.llm.sleep(level=2)`` after each generation drops its weights and KV cache, and
    # ``wake_up`` maps them again before the next; trl/generation/vllm_generation.py at v1.9.0).
    vllm_sleep: bool = False
    # GRPO and PPO divide the logits by the temperature in place (TRL's GRPOTrainer
    # ``logits.div_(self.temperature)`` from 1.0.0, PR #5254, until 1.10.0 went back to
    # ``logits / self.temperature``, PR #6554; PPOTrainer ``logits /=``): on a view of the
    # logits, whose backward pass clones the gradient and divides it (see _selective_logits).
    temperature_in_place: bool = False
    # The cross-entropy casts 16-bit logits to fp32 before its log-softmax (transformers'
    # ForCausalLMLoss ``logits = logits.float()``, torchtune); off: it runs on them as they are
    # (LitGPT in bf16-true). Under autocast the cross-entropy runs in fp32 either way.
    loss_upcast: bool = True

    @property
    def trains(self) -> Tuning:
        """How the weights train: the method itself, or a preference or RL method's tuning."""
        return self.tuning if self.method in OBJECTIVES else self.method  # type: ignore[return-value]

    @property
    def sequences(self) -> int:
        """Sequences through the trained forward and backward passes per step."""
        return self.micro_batch * SEQUENCES_PER_SAMPLE.get(self.method, 1)

    @property
    def deepspeed(self) -> bool:
        """DeepSpeed's ZeRO optimizer wraps the optimizer (any stage, one GPU too)."""
        return self.zero >= 1 and self.sharding == "deepspeed"

    @property
    def fp32_master(self) -> bool:
        """An optimizer wrapper that keeps fp32 main weights whatever the model's dtype:
        DeepSpeed's ZeRO, or Megatron's (Float16OptimizerWithFloat16Params, and the
        distributed optimizer that shards it over the data-parallel GPUs as ZeRO-1 does)."""
        return self.deepspeed or self.sharding == "megatron"

    @property
    def data_parallel(self) -> int:
        """The GPUs each shard of ZeRO's (or the distributed optimizer's) state spreads over."""
        return self.gpus // self.tensor_parallel

    @property
    def paged_optimizer(self) -> bool:
        """bitsandbytes' paged optimizers keep their state in CUDA unified memory."""
        return self.optimizer.startswith("paged")


# torchtune's CEWithChunkedOutputLoss: "num_output_chunks: int = 8"
LOSS_CHUNKS = 8
# TRL's chunked_nll: "_CHUNKED_LM_HEAD_CHUNK_SIZE = 256" (trl/trainer/sft_trainer.py, v1.9.0)
FUSED_LOSS_CHUNK = 256
# TRL's fused LM head's tile: TOKEN_CHUNK_SIZE tokens (trl/kernels/chunked_logprob.py) by
# _CHUNKED_LOGPROB_CHUNK_SIZE vocabulary entries (trl/trainer/utils.py), at v1.15.0
FUSED_TILE_TOKENS = 4096
FUSED_TILE_VOCAB = 32768


@record
class TrainComponents(ByKind):
    weights: int = 0
    gradients: int = 0
    optimizer: int = 0
    activations: int = 0
    # preference and RL training: frozen reference (and PPO's reward) models, and what
    # generating the completions holds (a colocated vLLM's share, or the KV cache)
    reference: int = 0
    generation: int = 0
    runtime: int = 0


@record
class TrainDevice:
    index: int
    device: Device
    components: TrainComponents

    @property
    def total_bytes(self) -> int:
        return self.components.total

    @property
    def headroom_bytes(self) -> int | None:
        capacity = self.device.capacity_bytes
        return None if capacity is None else capacity - self.total_bytes


@record
class FinetuneEstimate:
    request: FinetuneRequest
    trainable_parameters: int
    total_parameters: int
    devices: tuple[TrainDevice, ...]
    host: TrainComponents
    notes: tuple[str, ...] = field(default=())

    @property
    def components(self) -> TrainComponents:
        return TrainComponents.sum_of(d.components for d in self.devices)

    @property
    def total_bytes(self) -> int:
        return self.components.total

    @property
    def fits(self) -> bool | None:
        rooms = [d.headroom_bytes for d in self.devices]
        return None if None in rooms else all((r or 0) >= 0 for r in rooms)

    def to_json(self) -> dict[str, Any]:
        """The same shape as the inference estimate's JSON."""
        r = self.request
        return {
            "total_bytes": self.total_bytes,
            "components": self.components.as_dict(),
            "devices": [
                {
                    "index": d.index,
                    "name": d.device.name,
                    "capacity_bytes": d.device.capacity_bytes,
                    "total_bytes": d.total_bytes,
                    "components": d.components.as_dict(),
                    "headroom_bytes": d.headroom_bytes,
                    "fits": None if d.headroom_bytes is None else d.headroom_bytes >= 0,
                }
                for d in self.devices
            ],
            "host_bytes": self.host.total,
            "host_components": self.host.as_dict(),
            "fits": self.fits,
            "method": r.method,
            "precision": r.precision,
            "optimizer": r.optimizer,
            "seq_len": r.seq_len,
            "micro_batch": r.micro_batch,
            "parameters": {"total": self.total_parameters, "trainable": self.trainable_parameters},
            "notes": list(self.notes),
        }


def validate(request: FinetuneRequest, arch: Architecture) -> None:
    """Reject combinations that make no sense, naming the inputs involved (``calc.inputs``
    has held each value to its own bounds)."""
    if request.gpus % request.sequence_parallel:
        raise InputError(
            f"sequence_parallel {request.sequence_parallel} must divide the {request.gpus} GPUs",
            field="sequence_parallel",
        )
    _validate_tensor_parallel(request)
    if request.offload != "none" and request.zero == 0:
        raise InputError(
            "offload needs ZeRO (zero 1, 2 or 3) to move state off the GPU", field="offload"
        )
    if request.offload == "all" and request.zero != 3:
        raise InputError("offloading the parameters (offload all) needs ZeRO-3", field="offload")
    if request.lora_dropout and request.trains not in ADAPTER_METHODS:
        raise InputError(
            f"lora_dropout applies to LoRA and QLoRA adapters; method {request.trains} has none",
            field="lora_dropout",
        )
    if request.trains == "qlora" and request.offload == "all":
        raise InputError(
            "QLoRA's 4-bit base weights cannot be offloaded with ZeRO-3 (offload all); use "
            "offload optimizer, or zero 3 without offload (FSDP-QLoRA)",
            field="offload",
        )
    if request.trains in ADAPTER_METHODS:
        _validate_adapters(request, arch)
    if request.trains == "qlora":
        version_tuple(request.bnb_version)
    _validate_loss(request)
    if request.trains == "freeze" and not 1 <= request.freeze_trainable_layers <= arch.num_layers:
        raise InputError(
            f"freeze trains the last N layers: N must be 1 to {arch.num_layers}, got "
            f"{request.freeze_trainable_layers}",
            field="freeze_layers",
        )


def _validate_tensor_parallel(request: FinetuneRequest) -> None:
    if request.gpus % (request.sequence_parallel * request.tensor_parallel):
        raise InputError(
            f"tensor_parallel {request.tensor_parallel} x sequence_parallel "
            f"{request.sequence_parallel} must divide the {request.gpus} GPUs",
            field="tensor_parallel",
        )


def _validate_loss(request: FinetuneRequest) -> None:
    if request.loss_chunk_gib and not request.fused_loss:
        raise InputError(
            "loss_chunk_gib sizes the fused loss's chunks: it needs fused_loss on",
            field="loss_chunk_gib",
        )
    if request.fused_tiles and not request.fused_loss:
        raise InputError(
            "fused_tiles is how the fused loss cuts the logits: it needs fused_loss on",
            field="fused_tiles",
        )


def _validate_adapters(request: FinetuneRequest, arch: Architecture) -> None:
    unknown = [t for t in request.lora_targets if t not in LORA_MODULES]
    if unknown or not request.lora_targets:
        raise InputError(
            f"unknown LoRA target {unknown[0] if unknown else '(none)'}; use attention, "
            f"mlp, all or module names: {', '.join(LORA_MODULES)}",
            field="lora_targets",
        )
    smallest = _smallest_adapted_dimension(arch, request.lora_targets)
    if request.lora_rank > smallest:
        raise InputError(
            f"lora_rank {request.lora_rank} is larger than the smallest adapted projection "
            f"dimension ({smallest}); a rank cannot exceed it",
            field="lora_rank",
        )


def _adapted(tensor: Tensor, targets: Sequence[str]) -> bool:
    return tensor.kind == WEIGHT and any(tensor.role in LORA_MODULES[t] for t in targets)


@lru_cache(maxsize=64)  # a pure function of frozen values; every estimate validates
def _smallest_adapted_dimension(arch: Architecture, targets: tuple[str, ...]) -> int:
    dims = [min(t.shape[0], t.shape[1]) for t in model_tensors(arch) if _adapted(t, targets)]
    return min(dims) if dims else 0


def lora_parameters(tensor: Tensor, rank: int) -> int:
    """A (r x in) and B (out x r) for each matrix; per expert for expert stacks."""
    n_in, n_out = tensor.shape[0], tensor.shape[1]
    experts = tensor.shape[2] if len(tensor.shape) > 2 else 1
    return rank * (n_in + n_out) * experts


def _trainable(tensor: Tensor, request: FinetuneRequest, arch: Architecture) -> bool:
    if request.trains == "full":
        return True
    if request.trains == "freeze":
        first = arch.num_layers - request.freeze_trainable_layers
        return tensor.layer is not None and tensor.layer >= first
    return False  # LoRA/QLoRA: only the adapters train


def _mlp_width(arch: Architecture) -> int:
    """The widest MLP a token passes: routed experts count experts_per_token times."""
    if arch.moe is None:
        return arch.intermediate_size
    routed = arch.moe.experts_per_token * arch.moe.expert_intermediate_size
    return max(arch.intermediate_size, routed + arch.moe.shared_intermediate_size)


def _q_width(arch: Architecture) -> int:
    """Values per token in q and in the attention output (MLA: the hidden size)."""
    if arch.mla is not None:
        return arch.hidden_size
    return arch.num_attention_heads * arch.head_dim


def _k_width(arch: Architecture) -> int:
    """Values per token in k, and in v: the key-value heads' width."""
    return arch.num_kv_heads * arch.head_dim


def norm_bytes(arch: Architecture, request: FinetuneRequest) -> int:
    """Bytes per token and layer the RMSNorms keep: the layer's norms over the hidden size, and
    the q and k norms (Qwen3 and Gemma 3 per head, OLMo 2 and 3 over the whole projection).

    Eager RMSNorm casts its input to fp32 and keeps that copy (4 bytes a value); a trained norm
    weight also keeps the normalised input it multiplies, in 16 bits (Llama's
    ``self.weight * hidden_states.to(input_dtype)``) or in fp32 (``arch.norm_weight_fp32``:
    Gemma, OLMo 2 and 3, gpt-oss). A norm computed in 16 bits keeps its 16-bit input and, when
    its weight trains, the 16-bit normalised input; torch.compile fuses the norm and keeps only
    its 16-bit input. (Listing what autograd saves in one training step of Llama 3.1, Qwen3,
    Gemma 3 and OLMo 2 layers in transformers gives these figures within 2%.)
    """
    widths = arch.norms_per_layer * arch.hidden_size
    if arch.qk_norm:
        widths += _q_width(arch) + _k_width(arch)
    trained = request.trains not in ADAPTER_METHODS
    if request.compiled:
        per_value = BF16
    elif not request.norms_fp32:
        per_value = BF16 + (BF16 if trained else 0)
    else:
        per_value = FP32 + ((FP32 if arch.norm_weight_fp32 else BF16) if trained else 0)
    return widths * per_value


def routed_bytes(arch: Architecture, request: FinetuneRequest) -> int:
    """Bytes per token and layer a mixture-of-experts layer keeps beyond its experts' MLPs.

    The router's fp32 softmax over every expert, and each chosen expert's output: the layer
    multiplies it by the routing weight, whose gradient needs it (the router's input trains
    even when its weight is frozen). When the experts train, each also keeps its own gathered
    copy of the tokens routed to it. (Listing what autograd saves in one training step of a
    Qwen3-30B-A3B layer in transformers gives these figures within 1%.)
    """
    if arch.moe is None:
        return 0
    copies = 1 if request.trains in ADAPTER_METHODS else 2
    return (
        FP32 * arch.moe.num_experts + BF16 * copies * arch.moe.experts_per_token * arch.hidden_size
    )


def _kv_width(arch: Architecture) -> int:
    """Values per token a layer's k and v hold (MLA: the latent and the RoPE key)."""
    if arch.mla is not None:
        return arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim
    return 2 * _k_width(arch)


def fused_qkv_bytes(arch: Architecture, request: FinetuneRequest) -> int:
    """Bytes per token and layer a fused q/k/v projection (LitGPT's, Phi-3's) keeps beyond q, k
    and v at their own widths (checked by listing the tensors autograd saves in a training step
    of LitGPT and of transformers' Phi-3).

    - Adapting only some of q, k and v, LoRAQKVLinear computes their update alone and pads it
      with zeros to the projection's width by ``index_copy`` (``zero_pad``, litgpt/lora.py);
      autograd keeps index_copy's source for its gradient (derivatives.yaml:
      ``grad.index_select(dim, index).expand_as(source)``): the 16-bit update of q and v, its
      default. Adapting all three skips the padding.
    - With grouped-query attention it repeats k and v to every query head before attention
      (``repeat_interleave``, litgpt/model.py), so the attention kernel keeps them at q's width.
    - With as many k and v heads as q heads, v reaches the attention kernel as a view of the
      projection's output (only q and k are copied, by RoPE), so that whole output stays: q's
      and k's widths more. transformers' Phi-3 attention does the same with its fused qkv_proj
      (``arch.fused_qkv_proj``), grouped or not, since it passes v on unrepeated.
    """
    q, kv = _q_width(arch), _k_width(arch)
    if not request.fused_qkv:
        # transformers' Phi-3 slices q, k and v out of one projection: v's view keeps it all
        return BF16 * (q + kv) if arch.fused_qkv_proj else 0
    widths = {"q_proj": q, "k_proj": kv, "v_proj": kv}
    adapted = [width for name, width in widths.items() if name in request.lora_targets]
    padded = sum(adapted) if 0 < len(adapted) < len(widths) else 0
    attention = 2 * (q - kv) if kv < q else q + kv
    return BF16 * (padded + attention)


def layer_token_bytes(arch: Architecture, request: FinetuneRequest) -> int:
    """Bytes one token keeps in one layer for the backward pass.

    Trained weights (full, freeze): the attention's and the MLP's inputs (2h), q and the
    attention output, k and v (the kv width), and the MLP's gate, up, activation and product
    (4 x the MLP width), all 16-bit, with the norms (Korthikanti et al. 2022 rewritten for gated
    MLPs and grouped-query attention).

    Frozen weights (LoRA, QLoRA): autograd saves an input only for the gradient that needs it
    (PyTorch's autograd codegen guards each saved tensor used by one derivative with
    should_compute_output, tools/autograd/gen_variable_type.py ``guard_for``), and a frozen
    projection's input is needed only for its weight's gradient. What stays: the attention
    kernel's q, k, v and output, the MLP's gate, up and activation (their products need them),
    the norms' inputs, and what each adapter's first matrix reads:

    - no dropout, 16-bit adapters: the projection's input itself, once for all the adapters that
      share it (q, k and v read the same normalised input; so do gate and up);
    - fp32 adapters (PEFT): each adapter casts the input to fp32 and autocast casts it back to
      16-bit for the matrix product, so every adapted projection keeps its own 16-bit copy;
    - dropout: every adapted projection keeps its own dropped-out 16-bit copy and a one-byte
      mask (one nn.Dropout per LoRA module in PEFT, torchtune and LitGPT; LitGPT's fused QKV
      projection has one for q, k and v together).

    QLoRA on bitsandbytes before 0.43.2: MatMul4Bit also kept every 4-bit projection's input
    until the backward pass (``ctx.tensors = (A, B)``, removed by PR #1270), one 16-bit tensor
    per input the projections read that the adapters do not already keep.

    The norms (``norm_bytes``): eager RMSNorm upcasts its input to fp32 and autograd keeps
    that copy (transformers LlamaRMSNorm, torchtune RMSNorm and LitGPT RMSNorm all compute
    ``x.float()`` first), plus the normalised tensor when the norm's weight trains;
    torch.compile fuses the norm into one kernel that keeps its 16-bit input only (AOTAutograd's
    min-cut partitioner recomputes pointwise ops: functorch partitioners.py,
    min_cut_rematerialization_partition). q and the attention output are as wide as the query
    heads (Gemma 3 and Qwen3 4B: wider or narrower than the hidden size). A fused q/k/v
    projection (LitGPT's, Phi-3's) keeps more (``fused_qkv_bytes``), and so does a
    mixture-of-experts layer (``routed_bytes``).
    """
    h = arch.hidden_size
    kv_width = _kv_width(arch)
    mlp = _mlp_width(arch)
    q = _q_width(arch)
    beside = norm_bytes(arch, request) + routed_bytes(arch, request)
    if request.trains not in ADAPTER_METHODS:
        # the attention's and the MLP's inputs, q and the attention output, k and v, and the
        # MLP's gate, up, activation and product
        return beside + BF16 * (2 * h + 2 * q + kv_width + 4 * mlp)
    kept = beside + BF16 * (2 * q + kv_width + 3 * mlp) + fused_qkv_bytes(arch, request)
    if request.kbit_upcast and request.trains == "qlora":
        # bitsandbytes' Linear4bit returns its input's dtype (``.to(inp_dtype)``): on the fp32
        # residual stream gate and up come out in fp32, so the MLP keeps them and the
        # activation in fp32
        kept += BF16 * 3 * mlp
    targets = set(request.lora_targets)
    # (bitsandbytes before 0.43.2 also keeps each frozen 4-bit projection's input: below)
    qkv = len(targets & {"q_proj", "k_proj", "v_proj"})
    if request.fused_qkv:
        qkv = min(qkv, 1)
    groups = (
        (qkv, h),
        (int("o_proj" in targets), q),
        (len(targets & {"gate_proj", "up_proj"}), h),
        (int("down_proj" in targets), mlp),
    )
    own_input = request.adapter_precision != "fp32" and not request.lora_dropout
    buggy_bnb = request.trains == "qlora" and version_tuple(request.bnb_version) < BNB_FIXED
    for modules, width in groups:
        # MatMul4Bit keeps each 4-bit projection's input; the adapters' own copy is the same
        # tensor only with 16-bit adapters and no dropout (o_proj's input is the attention
        # output made contiguous; gate and up share theirs, as q, k and v do)
        if buggy_bnb and not (modules and own_input):
            kept += BF16 * width
        if not modules:
            continue
        if request.lora_dropout:
            kept += modules * (BF16 + 1) * width
        elif request.adapter_precision == "fp32":
            kept += modules * BF16 * width
        else:
            kept += BF16 * width
    return kept


def activation_bytes(arch: Architecture, request: FinetuneRequest) -> int:
    """Activations kept for the backward pass of one micro-batch on one GPU.

    Per token and layer, in 16-bit unless said: see ``layer_token_bytes``. Without flash
    attention each layer also keeps the scores and softmax (4 bytes per head per pair of tokens,
    Korthikanti's 5as/h term without its dropout mask). With full gradient checkpointing only
    each layer's input is kept, plus one layer's activations while it is recomputed. The loss
    adds fp32 logits, their 16-bit originals and the fp32 gradient over the vocabulary for every
    token.
    """
    # sequence parallelism: each GPU keeps the activations and logits of its share of tokens
    h, s, b = arch.hidden_size, ceil(request.seq_len / request.sequence_parallel), request.sequences
    per_token_layer = layer_token_bytes(arch, request)
    layer = s * b * per_token_layer
    if not request.flash_attention:
        layer += b * arch.num_attention_heads * s * s * (BF16 + BF16)
    if request.activation_offloading:
        kept = layer  # the layer being computed; the rest wait in CPU RAM
    elif request.grad_checkpointing:
        kept = arch.num_layers * s * b * h * residual_width(request) + layer
    else:
        kept = arch.num_layers * layer
    kept += _previous_step_inputs(arch, request, s * b)
    if request.trains in ADAPTER_METHODS and "lm_head" in request.lora_targets:
        # the output layer's adapter reads the final norm's output (a copy with dropout)
        kept += s * b * h * (BF16 + (1 if request.lora_dropout else 0))
    if upcast(request):
        kept += arch.vocab_size * h * BF16  # autocast's copy of the fp32 output layer
    kept += _autocast_weight_copies(arch, request)
    logits = loss_logit_bytes(arch, request)
    if request.activation_offloading:
        # Each layer's activations leave for CPU RAM as the next layer starts, so the loss runs
        # with none of them on the GPU: the peak is one layer's or the loss's, not both.
        return ceil(max(kept, logits) / request.tensor_parallel)
    # tensor parallelism with sequence parallelism splits every layer's activations and the
    # vocabulary-parallel logits over its GPUs (Korthikanti et al. 2022, table 2)
    return ceil((kept + logits) / request.tensor_parallel)


def loss_logit_bytes(arch: Architecture, request: FinetuneRequest) -> int:
    """What the loss keeps of the logits for the backward pass, on one GPU before tensor
    parallelism divides it."""
    tokens_x_vocab = logit_tokens(request) * arch.vocab_size
    if request.fused_loss and request.fused_tiles:
        return _tiled_logits(arch, request)
    if request.fused_loss:
        # One chunk's 16-bit logits, fp32 upcast and log-softmax at a time, plus the hidden
        # states the chunks are cut from (TRL checkpoints each chunk of
        # _CHUNKED_LM_HEAD_CHUNK_SIZE = 256 tokens; Liger sizes its chunks to the batch's
        # tokens over ceil(vocab / hidden), about 256 too for 4096-8192 tokens).
        tokens = logit_tokens(request)
        chunk = fused_chunk_tokens(tokens, arch.vocab_size, request.loss_chunk_gib)
        return chunk * arch.vocab_size * (BF16 + FP32 + FP32) + tokens * arch.hidden_size * BF16
    if request.selective_logprobs and request.method in LOGPROB_OBJECTIVES:
        return _selective_logits(request, tokens_x_vocab)
    if not request.chunked_loss:
        if fp32_loss(request):
            # the fp32 log-softmax kept for the backward pass, which starts with the NLL's
            # gradient and the log-softmax's, both fp32 too (transformers' ForCausalLMLoss and
            # LLaMA-Factory's log-probabilities traced by scripts/logit_peak.py: 12.0)
            return tokens_x_vocab * 3 * FP32
        # the 16-bit logits, an fp32 copy and log-softmax: a cross-entropy on 16-bit logits
        # (LitGPT in bf16-true; the CPU trace gives 9.4, with the CPU's bf16 kernels' fp32
        # temporaries) and Megatron's fused vocabulary-parallel cross-entropy, not traced
        return tokens_x_vocab * (BF16 + FP32 + FP32)
    if request.compiled:
        # torchtune compiles the loss (training.compile_loss: compute_cross_entropy, which is
        # ``F.cross_entropy(logits.float(), ...)``): the upcast and the cross-entropy fuse into
        # kernels that read the 16-bit chunk and keep it with one log-sum-exp per token, and the
        # backward kernel writes the chunk's gradient straight back in 16 bits, so no fp32 copy
        # is ever written. Each chunk's backward swaps its saved logits for their gradient: the
        # 16-bit logits plus one chunk's gradient at the peak.
        return tokens_x_vocab * BF16 + tokens_x_vocab * BF16 // LOSS_CHUNKS
    # eager: every chunk's fp32 log-softmax is kept; only the upcast is one chunk at a time
    return tokens_x_vocab * (BF16 + FP32) + tokens_x_vocab * FP32 // LOSS_CHUNKS


def _tiled_logits(arch: Architecture, request: FinetuneRequest) -> int:
    """TRL's fused LM head at its backward pass: one tile of logits in the compute dtype
    (16-bit), the hidden states it scores (a copy: ``hidden_states[mask]``), their gradient
    accumulated in fp32 and its 16-bit cast (``grad_hidden.to(hidden.dtype)``). Read from its
    source, not traced: on a GPU its Triton kernels fold each tile in place and PyTorch 2.8 or
    later adds the tile's product into the fp32 gradient directly (``torch.addmm`` with
    ``out_dtype``); the CPU's fallback folds tiles with torch operations and their fp32
    temporaries, so scripts/logit_peak.py cannot check it."""
    tokens = logit_tokens(request)
    tile = min(tokens, FUSED_TILE_TOKENS) * min(arch.vocab_size, FUSED_TILE_VOCAB) * BF16
    return tile + tokens * arch.hidden_size * (BF16 + FP32 + BF16)


def fp32_loss(request: FinetuneRequest) -> bool:
    """The cross-entropy runs on fp32 logits: the loss upcasts them itself (transformers,
    torchtune, LLaMA-Factory) or autocast does; Megatron's fused cross-entropy is its own."""
    if request.sharding == "megatron":
        return False
    return request.loss_upcast or request.precision == "amp"


def outputs_fp32(request: FinetuneRequest) -> bool:
    """The model's outputs come back as fp32: Accelerate wraps the forward of a model trained
    in mixed precision without DeepSpeed in autocast and converts what it returns
    (convert_outputs_to_fp32, huggingface/accelerate#3477), the logits included."""
    return request.precision == "amp" and not request.deepspeed


def _selective_logits(request: FinetuneRequest, tokens_x_vocab: int) -> int:
    """The peak of a row-by-row log-softmax (TRL's selective_log_softmax) over logits as the
    model returns them, read from every allocation of TRL 1.9.0's code on the CPU
    (scripts/logit_peak.py; _forward_logits says what the forward pass ends with):

    - fp32 logits take its gather-and-logsumexp path, which keeps the whole logits; the
      backward pass then holds them with the stacked logsumexp gradients and the gather's
      scattered gradient, three fp32 tensors the size of the logits (about 12 bytes a logit,
      whatever the number of rows);
    - 16-bit logits are read row by row (F.log_softmax, each row's result kept for its
      backward): the logits and the log-softmax, 4 bytes a logit at the end of the forward pass,
      which the backward pass does not exceed;
    - a temperature division in place on a view of the logits (temperature_in_place, GRPO and
      PPO) makes the backward pass clone the gradient and divide it: four tensors the size of
      the logits, 16 bytes a logit in fp32 and 8 in 16 bits.

    ORPO adds the NLL term's log-softmax over the chosen half (nn.CrossEntropyLoss on
    ``all_logits[:len_chosen]``)."""
    value = FP32 if outputs_fp32(request) else BF16
    if _in_place(request):
        logits = tokens_x_vocab * 4 * value
    else:
        logits = tokens_x_vocab * (3 if value == FP32 else 2) * value
    if request.method == "orpo":
        logits += tokens_x_vocab * value // 2
    return logits


def _in_place(request: FinetuneRequest) -> bool:
    """The temperature divided in place on a view of the logits (GRPO and PPO only)."""
    return request.temperature_in_place and request.method in TEMPERATURE_SCALED


def _forward_logits(request: FinetuneRequest) -> int:
    """Bytes per logit the policy's log-probabilities hold when its forward pass ends, before
    the reference model's: read row by row, the fp32 logits alone or the 16-bit logits and each
    row's 16-bit log-softmax; cast to fp32 first (LLaMA-Factory), the fp32 logits, which it
    keeps for its metrics, and their fp32 log-softmax."""
    if not request.selective_logprobs:
        return FP32 + FP32
    return FP32 if outputs_fp32(request) else BF16 + BF16


def _previous_step_inputs(arch: Architecture, request: FinetuneRequest, tokens: int) -> int:
    """bitsandbytes before 0.43.2 keeps each 4-bit layer's input as a ctx attribute, which the
    autograd engine does not free after the backward pass (PyNode::release_variables clears
    saved_variables only); a loop that keeps the last step's outputs (LitGPT) keeps them through
    the next forward pass. Without checkpointing every 4-bit projection's input stays: both
    norms' outputs, the attention output and the MLP product, taken at this step's length."""
    buggy = request.trains == "qlora" and version_tuple(request.bnb_version) < BNB_FIXED
    if not (request.keeps_graph and buggy) or request.grad_checkpointing:
        return 0
    width = 2 * arch.hidden_size + arch.num_attention_heads * arch.head_dim + _mlp_width(arch)
    return arch.num_layers * tokens * BF16 * width


def upcast(request: FinetuneRequest) -> bool:
    """Adapters on a base whose unquantised weights are fp32: loaded so, or QLoRA's cast by
    PEFT's prepare_model_for_kbit_training."""
    if request.trains not in ADAPTER_METHODS:
        return False
    return request.weights_dtype == "fp32" or (request.kbit_upcast and request.trains == "qlora")


def _autocast_weight_copies(arch: Architecture, request: FinetuneRequest) -> int:
    """LoRA on an fp32 base under autocast: each frozen projection's bf16 cast, kept by its
    product for the input's gradient, for every layer (one, being recomputed, under
    checkpointing). Autocast caches only casts of weights that require grad (the cast a
    frozen weight gets per use is not cached), so each use makes its own. A MoE layer casts the
    experts its tokens reach: counted as the routed share of them."""
    if not (request.trains == "lora" and request.weights_dtype == "fp32"):
        return 0
    routed = arch.moe.experts_per_token / arch.moe.num_experts if arch.moe is not None else 1.0
    blocks: dict[int, int] = {}
    for t in model_tensors(arch):
        if t.layer is not None and t.kind == WEIGHT and len(t.shape) >= 2:
            blocks[t.layer] = blocks.get(t.layer, 0) + ceil(t.numel * (routed if t.routed else 1))
    if request.grad_checkpointing or request.activation_offloading:
        return max(blocks.values(), default=0) * BF16
    return sum(blocks.values()) * BF16


def residual_width(request: FinetuneRequest) -> int:
    """The residual stream's bytes per value: fp32 when an fp32 embedding starts it."""
    return FP32 if upcast(request) else BF16


def fused_chunk_tokens(tokens: int, vocab: int, budget_gib: float) -> int:
    """Tokens in one chunk of a fused loss: FUSED_LOSS_CHUNK, or with a budget as Unsloth
    splits: one chunk while the fp32 logits fit it, else a multiple of four chunks each within
    it (get_chunk_size: ``math.ceil(exact / 4 - 1e-9) * 4``)."""
    if budget_gib <= 0:
        return min(tokens, FUSED_LOSS_CHUNK)
    exact = tokens * vocab * FP32 / (budget_gib * 2**30)
    chunks = 1 if exact <= 1 else ceil(exact / 4) * 4
    return ceil(tokens / chunks)


def logit_tokens(request: FinetuneRequest) -> int:
    """Tokens whose logits the loss keeps: every token of every sequence, but for GRPO only the
    completion's (TRL's GRPOTrainer asks the model for ``logits_to_keep`` = the completion
    length), and none for a reward model (one score per token, not a row over the
    vocabulary)."""
    if request.method == "reward":
        return 0
    if request.method == "grpo":
        tokens = min(request.completion_len, request.seq_len)
    else:
        tokens = request.seq_len
    return request.sequences * ceil(tokens / request.sequence_parallel)


@record
class _State:
    """What the model holds for training, summed over its tensors, before any sharding."""

    weights: int
    gradients: int
    optimizer: int  # the optimizer's state, with the fp32 master copy under amp
    trainable: int  # trainable parameters
    largest_gradient: int
    head_gradient: int  # the output layer's (tied: the embedding's), the first backward makes
    layer_weights: int = 0  # the largest block's weights as stored (FSDP unshards a block)
    layer_gradients: int = 0  # and its trainable weights' 16-bit gradients
    # FSDP1 FlatParameters (flat_parameters): a block with any trained weight has a 16-bit
    # gradient for every weight in it, the largest block's and all of them
    layer_flat_gradients: int = 0
    flat_gradients: int = 0
    largest_quantised: int = 0  # values in the largest 4-bit weight (QLoRA dequantises one)


# The request's fields _training_state reads (and _trainable, and optimizer_state_bytes): the
# memo's key. tests/test_finetune.py changes every other field and checks the state stays.
STATE_INPUTS = (
    "method",
    "precision",
    "optimizer",
    "lora_rank",
    "lora_targets",
    "freeze_trainable_layers",
    "adapter_precision",
    "optimizer_in_backward",
    "tuning",
    "zero",
    "sharding",
    "kbit_upcast",
    "quantize_output",
    "weights_dtype",
)
StateMemo = MutableMapping[tuple[Any, ...], "_State"]


def _training_state(
    arch: Architecture,
    request: FinetuneRequest,
    tensors: Sequence[Tensor],
    *,
    storage_types: Mapping[str, StorageType],
    base_format: WeightFormat,
) -> _State:
    amp, train_width, gradient_width = _widths(request)
    weights = gradients = optimizer = master = trainable = largest = head = 0
    for tensor in tensors:
        if request.method == "reward" and tensor.role == "output":
            continue  # a sequence classifier has a one-output score head instead
        weights += _stored_bytes(tensor, request, arch, storage_types, base_format)
        if _trainable(tensor, request, arch):
            trainable += tensor.numel
            gradients += gradient_width * tensor.numel
            largest = max(largest, BF16 * tensor.numel)
            tied = tensor.role == "token_embd" and arch.tie_word_embeddings
            if tensor.role == "output" or tied:
                head = BF16 * tensor.numel
            optimizer += optimizer_state_bytes(
                request.optimizer, tensor.numel, tensor.shape, train_width
            )
            if amp:
                master += FP32 * tensor.numel
        elif request.trains in ADAPTER_METHODS and _adapted(tensor, request.lora_targets):
            adapter = lora_parameters(tensor, request.lora_rank)
            trainable += adapter
            # Weights, gradients and AdamW states all at the adapters' width.
            width = FP32 if request.adapter_precision == "fp32" else BF16
            weights += width * adapter
            gradients += width * adapter
            optimizer += optimizer_state_bytes(request.optimizer, adapter, (adapter,), width)
    if request.optimizer_in_backward and request.trains in ("full", "freeze"):
        gradients = largest  # each gradient is applied and freed as it is produced
    weights += _untied_output_bytes(arch, request, base_format)
    score, score_bytes, score_state = _score_head(arch, request, FP32 if amp else BF16)
    blocks = _blocks(arch, request, tensors, storage_types=storage_types, base_format=base_format)
    return _State(
        weights + score_bytes,
        gradients + score_bytes,
        optimizer + master + score_state,
        trainable + score,
        largest,
        head,
        layer_weights=blocks[0],
        layer_gradients=blocks[1],
        largest_quantised=_largest_quantised(arch, request, tensors, storage_types, base_format),
        layer_flat_gradients=blocks[2],
        flat_gradients=gradients + score_bytes + blocks[3],
    )


def _widths(request: FinetuneRequest) -> tuple[bool, int, int]:
    """Whether an fp32 master copy is kept, and the bytes of the optimizer's values and of the
    trained weights' gradients. DeepSpeed's ZeRO optimizers make the fp32 master partition
    whatever the model's dtype (stage3.py _create_fp32_partitions: ``.clone().float()``; bf16
    master weights only with ZeRO-3 offload to DeepSpeedCPUAdam, base_optimizer.py
    _configure_master_weights), and ZeRO-3 accumulates gradients into a flat fp32 partition
    allocated at start-up (grad_partitions_flat_buffer, gradient_accumulation_dtype=
    torch.float32), since DeepSpeed 0.6.0 (PR #1884). Megatron keeps fp32 main weights and
    accumulates gradients in fp32 main_grad buffers for bf16 training
    (megatron/training/arguments.py: bf16 sets accumulate_allreduce_grads_in_fp32)."""
    amp = request.precision == "amp" or request.fp32_master
    fp32_grads = request.sharding == "megatron" or (request.deepspeed and request.zero == 3)
    return amp, FP32 if amp else BF16, FP32 if fp32_grads else BF16


def _score_head(arch: Architecture, request: FinetuneRequest, width: int) -> tuple[int, int, int]:
    """A reward model's AutoModelForSequenceClassification(num_labels=1) score head, trained
    in full (PEFT's SEQ_CLS task keeps it in modules_to_save): its values, their bytes (and the
    gradients' alike), and the optimizer state."""
    if request.method != "reward":
        return 0, 0, 0
    score = arch.hidden_size
    if request.adapter_precision == "fp32":
        width = FP32
    return score, width * score, optimizer_state_bytes(request.optimizer, score, (score,), width)


def qlora_base(arch: Architecture, nf4: WeightFormat) -> WeightFormat:
    """QLoRA's 4-bit base: NF4 on every linear layer of the blocks, but a checkpoint already
    quantised to 4 bits by bitsandbytes loads as its config says, with the modules its
    ``llm_int8_skip_modules`` names left in 16 bits (transformers skips any module whose name
    contains one of them). Unsloth's dynamic 4-bit repositories ("unsloth-bnb-4bit") are such
    checkpoints: each lists the layers it keeps unquantised."""
    checkpoint = arch.checkpoint
    if checkpoint is None or checkpoint.method != "bitsandbytes" or checkpoint.format_id != "nf4":
        return nf4
    return replace(nf4, keep=checkpoint.keep) if checkpoint.keep else nf4


def _kept_16bit_notes(request: FinetuneRequest, base_format: WeightFormat) -> list[str]:
    if request.trains != "qlora" or not base_format.keep:
        return []
    return [
        "QLoRA on a bitsandbytes 4-bit checkpoint: the modules its llm_int8_skip_modules names ("
        + ", ".join(base_format.keep[:4])
        + (", ..." if len(base_format.keep) > 4 else "")
        + ") stay 16-bit"
    ]


def _untied_output_bytes(
    arch: Architecture, request: FinetuneRequest, base_format: WeightFormat
) -> int:
    """A tied model's output layer quantised apart from its embedding (LitGPT's checkpoints
    copy the embedding into lm_head: convert_hf_checkpoint.py ``state_dict["lm_head.weight"] =
    state_dict["transformer.wte.weight"]``), which stays 16-bit."""
    if not (request.trains == "qlora" and request.quantize_output and arch.tie_word_embeddings):
        return 0
    if request.method == "reward":
        return 0  # no output layer
    return tensor_bytes(
        Tensor("output", WEIGHT, (arch.hidden_size, arch.vocab_size)), base_format.storage
    )


def _largest_quantised(
    arch: Architecture,
    request: FinetuneRequest,
    tensors: Sequence[Tensor],
    storage_types: Mapping[str, StorageType],
    base_format: WeightFormat,
) -> int:
    """Values in the largest weight QLoRA stores in 4 bits."""
    if request.trains != "qlora":
        return 0
    sizes = [
        tensor.numel
        for tensor in tensors
        if tensor.kind == WEIGHT
        and _stored_bytes(tensor, request, arch, storage_types, base_format) < tensor.numel
    ]
    if request.quantize_output and request.method != "reward":
        sizes.append(arch.hidden_size * arch.vocab_size)
    return max(sizes, default=0)


def _stored_bytes(
    tensor: Tensor,
    request: FinetuneRequest,
    arch: Architecture,
    storage_types: Mapping[str, StorageType],
    base_format: WeightFormat,
) -> int:
    """A weight's bytes as training holds it: its format's, or fp32 where PEFT's
    prepare_model_for_kbit_training upcasts what QLoRA left unquantised."""
    storage = tensor_storage(tensor, base_format, arch, storage_types)
    if request.trains == "qlora" and request.quantize_output and tensor.role == "output":
        storage = base_format.storage
    if upcast(request) and storage.bits_per_weight >= 16:
        return FP32 * tensor.numel
    return tensor_bytes(tensor, storage)


def _blocks(
    arch: Architecture,
    request: FinetuneRequest,
    tensors: Sequence[Tensor],
    *,
    storage_types: Mapping[str, StorageType],
    base_format: WeightFormat,
) -> tuple[int, int, int, int]:
    """The repeating blocks as FSDP wraps them: the largest block's stored weights and its
    trainable weights' 16-bit gradients (what FSDP all-gathers, and reduce-scatters, one block
    at a time); and, for FSDP1's FlatParameters, the largest block's 16-bit gradient over every
    weight in it and what the frozen weights of blocks that train at all add to the gradients."""
    weights: dict[int, int] = {}
    gradients: dict[int, int] = {}
    flat: dict[int, int] = {}
    for tensor in tensors:
        if tensor.layer is None:
            continue
        storage = tensor_storage(tensor, base_format, arch, storage_types)
        layer = tensor.layer
        weights[layer] = weights.get(layer, 0) + tensor_bytes(tensor, storage)
        flat[layer] = flat.get(layer, 0) + BF16 * tensor.numel
        if _trainable(tensor, request, arch):
            gradients[layer] = gradients.get(layer, 0) + BF16 * tensor.numel
        elif request.trains in ADAPTER_METHODS and _adapted(tensor, request.lora_targets):
            gradients.setdefault(layer, 0)  # its adapters train
    return (
        max(weights.values(), default=0),
        max(gradients.values(), default=0),
        max((flat[layer] for layer in gradients), default=0),
        sum(flat[layer] - trained for layer, trained in gradients.items()),
    )


def _setup_notes(request: FinetuneRequest) -> list[str]:
    """What the options do, in the order the estimate states them."""
    notes = []
    if request.optimizer_in_backward and request.trains in ("full", "freeze"):
        notes.append("optimizer in the backward pass: one gradient at a time")
    if request.activation_offloading:
        notes.append("activations offloaded to CPU RAM between forward and backward")
    if request.trains in ADAPTER_METHODS:
        notes.append(
            f"LoRA adapters, their gradients and optimizer state in {request.adapter_precision}"
        )
    if request.compiled:
        notes.append("torch.compile: norms fused, their fp32 copies not kept")
    notes += _qlora_notes(request)
    notes += _loss_notes(request)
    notes += _precision_notes(request)
    if request.zero and request.gpus == 1 and request.offload == "none":
        notes.append(
            f"ZeRO-{request.zero} on one GPU: nothing to shard, so no memory saved (it saves "
            "memory with several GPUs, or with offload)"
        )
    if request.sequence_parallel > 1:
        notes.append(
            f"sequence parallel over {request.sequence_parallel} GPUs: each keeps the "
            "activations and logits of its share of every sequence's tokens"
        )
    if request.paged_optimizer:
        notes.append(
            "paged optimizer: its state lives in CUDA unified memory, which can spill to CPU "
            "RAM under memory pressure and which PyTorch's memory counters do not see; "
            "counted on the GPU here"
        )
    return notes


def _qlora_notes(request: FinetuneRequest) -> list[str]:
    """How the tool loads the base model and builds QLoRA's 4-bit base, where that changes
    memory."""
    if request.trains not in ADAPTER_METHODS:
        return []
    notes = []
    if request.weights_dtype == "fp32":
        notes.append(
            "base model loaded in fp32: its unquantised weights and the residual stream in fp32; "
            "autocast's bf16 copies of the frozen weights it multiplies kept for the backward pass"
        )
    if request.trains != "qlora":
        return notes
    if not request.double_quant:
        notes.append("4-bit base without double quantisation: 4.5 bits a weight")
    if request.quantize_output:
        notes.append("the output layer quantised to 4 bits too (every linear layer)")
    if request.kbit_upcast:
        notes.append(
            "PEFT's prepare_model_for_kbit_training: the unquantised weights (embeddings, output "
            "layer, norms) and the residual stream in fp32, a 16-bit copy of the output layer "
            "kept for the backward pass"
        )
    if (
        request.keeps_graph
        and not request.grad_checkpointing
        and (version_tuple(request.bnb_version) < BNB_FIXED)
    ):
        notes.append(
            "the last step's 4-bit layer inputs kept through this step's forward pass (the loop "
            "keeps the last step's outputs; bitsandbytes before 0.43.2 frees them only then)"
        )
    return notes


def _loss_notes(request: FinetuneRequest) -> list[str]:
    """How the loss holds the logits, when not all at once."""
    if request.method == "reward":
        return [
            "reward model: a one-output score head instead of the output layer, so no logits "
            "over the vocabulary; the chosen and the rejected sequence in one batch"
        ]
    if request.fused_loss and request.fused_tiles:
        return [
            "output layer and log-probabilities fused over tiles of tokens and vocabulary "
            "entries (TRL's fused LM head): one tile of logits at a time, the hidden states' "
            "gradient in fp32"
        ]
    if request.fused_loss and request.loss_chunk_gib > 0:
        return [
            f"output layer and loss fused over chunks of at most {request.loss_chunk_gib:g} GiB "
            "of fp32 logits: the logits of one chunk at a time"
        ]
    if request.fused_loss:
        return [
            f"output layer and loss fused over chunks of {FUSED_LOSS_CHUNK} tokens: the "
            "logits of one chunk at a time"
        ]
    if request.selective_logprobs and request.method in LOGPROB_OBJECTIVES:
        return [
            "log-probabilities taken row by row from the logits as the model returns them "
            + (
                "(selective_log_softmax), fp32 under Accelerate's autocast: its backward pass "
                f"holds {'four' if _in_place(request) else 'three'} fp32 tensors the size of the "
                "logits"
                if outputs_fp32(request)
                else "(selective_log_softmax): no fp32 copy of the logits"
            )
        ]
    if request.chunked_loss:
        return [f"loss over {LOSS_CHUNKS} chunks: fp32 logits for one chunk at a time"]
    return []


def _precision_notes(request: FinetuneRequest) -> list[str]:
    """What full or freeze training keeps in fp32: the master copy, and DeepSpeed's extra."""
    if request.trains not in ("full", "freeze"):
        return []
    if request.precision == "amp":
        notes = [
            "mixed precision: 16-bit weights and gradients, an fp32 master copy in "
            "the optimizer state (ZeRO paper: 2 + 2 + 12 bytes per parameter)"
        ]
    elif request.deepspeed:
        notes = [
            "DeepSpeed ZeRO keeps an fp32 master copy and fp32 optimizer state even when "
            "the model is in bf16"
        ]
    else:
        notes = []
    if request.deepspeed and request.zero == 3:
        notes.append("DeepSpeed ZeRO-3 accumulates each GPU's share of the gradients in fp32")
    if request.sharding == "megatron":
        notes.append(
            "Megatron keeps fp32 main weights and accumulates the gradients in fp32 for a bf16 "
            "model; its distributed optimizer (ZeRO 1) divides the fp32 weights and Adam state "
            "over the data-parallel GPUs"
        )
    return notes


def sharded(
    arch: Architecture, request: FinetuneRequest, state: _State, notes: list[str]
) -> tuple[TrainComponents, TrainComponents]:
    """Per GPU and in CPU RAM, after tensor parallelism's split, ZeRO's sharding over the
    data-parallel GPUs, and offload."""
    n, stage, tp = request.data_parallel, request.zero, request.tensor_parallel
    shard = {
        "optimizer": tp * (n if stage >= 1 else 1),
        "gradients": tp * (n if stage >= 2 else 1),
        "weights": tp * (n if stage >= 3 else 1),
    }
    host = TrainComponents()
    optimizer = ceil(state.optimizer / shard["optimizer"])
    weights = ceil(state.weights / shard["weights"])
    gradients = ceil(state.gradients / shard["gradients"])
    if request.offload in ("optimizer", "all"):
        # The gradients go with the optimizer they feed: DeepSpeed keeps the gradient partition
        # on the optimizer's device (stage3.py grad_partitions_flat_buffer on self.device, the
        # CPU with offload_optimizer), FSDP's CPUOffloadPolicy moves "parameters, gradients,
        # and optimizer states" (torchtune training/_distributed.py shard_model). The GPU holds
        # the gradient in flight, one tensor's at most.
        host = replace(host, optimizer=state.optimizer, gradients=state.gradients)
        optimizer, gradients = 0, min(gradients, state.largest_gradient)
        notes.append("optimizer state and gradients offloaded to CPU RAM")
    if request.offload == "all":
        host = replace(host, weights=state.weights)
        # ZeRO-3 offload still gathers one layer's weights at a time onto the GPU.
        weights = max(state.weights // max(arch.num_layers, 1), 0)
        if request.sharding == "fsdp":
            weights = 0  # FSDP's unsharded blocks are added below
        notes.append("parameters offloaded to CPU RAM; one layer is gathered at a time")
    if request.activation_offloading:
        full = activation_bytes(arch, replace(request, activation_offloading=False))
        host = replace(host, activations=full - activation_bytes(arch, request))
    activations = activation_bytes(arch, request)
    # DeepSpeed's and Megatron's gradient buffers are allocated once and kept.
    if request.gpus == 1 and not request.fp32_master and gradients > state.head_gradient:
        step = foreach_workspace(request, state)
        gradients, activations, step = backward_peak(gradients, activations, state, notes, step)
        optimizer += step
    if n > 1:
        weights, gradients = _gathered(arch, request, state, shard, (weights, gradients), notes)
    notes += _parallel_notes(request, shard)
    weights += dequantised_bytes(request, state, notes)
    per_gpu = TrainComponents(
        weights=weights,
        gradients=gradients,
        optimizer=optimizer,
        activations=activations,
        runtime=CUDA_CONTEXT_BYTES,
    )
    return per_gpu, host


def _parallel_notes(request: FinetuneRequest, shard: Mapping[str, int]) -> list[str]:
    """How the GPUs share the work: tensor parallel, then ZeRO or plain data parallel."""
    n, stage, tp = request.data_parallel, request.zero, request.tensor_parallel
    notes = []
    if tp > 1:
        notes.append(
            f"tensor parallel over {tp} GPUs (with sequence parallelism): weights, gradients, "
            "optimizer state, activations and logits divided"
        )
    whole = ("gradients",) if request.sharding == "fsdp" and unsharded_accumulation(request) else ()
    if n > 1 and stage:
        notes.append(
            f"ZeRO-{stage} over {n} GPUs: "
            + ", ".join(k for k, v in shard.items() if v > tp and k not in whole)
            + " divided"
        )
    elif n > 1:
        notes.append(f"data parallel over {n} GPUs: every GPU holds a full copy")
    return notes


def dequantised_bytes(request: FinetuneRequest, state: _State, notes: list[str]) -> int:
    """QLoRA computes with one 4-bit weight dequantised at a time, freed after its product
    (bitsandbytes MatMul4Bit: ``F.dequantize_4bit(B, quant_state).to(A.dtype)`` in the forward
    and again in the backward pass, no cache); the largest is counted, at the peak. Quantised
    from fp16 (Lightning), the fp16 copy and its bf16 cast exist together."""
    if not state.largest_quantised:
        return 0
    if request.weights_dtype == "fp32":  # quantised from fp32: dequantised to fp32, then cast
        dequantised, how = FP32 + BF16, "to fp32 and cast to bf16"
    elif request.fp16_quant_state:
        dequantised, how = BF16 + BF16, "to fp16 and cast to bf16"
    else:
        dequantised, how = BF16, "to 16 bits"
    notes.append(
        f"QLoRA: the largest 4-bit weight ({state.largest_quantised:,} values) dequantised "
        f"{how} while it computes"
    )
    return dequantised * state.largest_quantised


def unsharded_accumulation(request: FinetuneRequest) -> bool:
    """Gradients accumulated whole between micro-batches (FSDP's no_sync)."""
    return request.accumulate_unsharded and request.grad_accumulation > 1


def _fsdp_gradients(
    request: FinetuneRequest, state: _State, divisor: int, gradients: int, notes: list[str]
) -> int:
    """The gradients FSDP holds between micro-batches, per GPU: FSDP1's FlatParameters give
    a block's frozen weights a gradient too, and a loop that skips the reduce-scatter between
    micro-batches keeps them whole (see FinetuneRequest.grad_accumulation)."""
    held = state.flat_gradients if request.flat_parameters else state.gradients
    if request.flat_parameters and held > state.gradients:
        notes.append(
            "FSDP1 flat parameters: every block that trains has a gradient for each of its "
            "weights, the frozen ones too"
        )
    if unsharded_accumulation(request):
        notes.append(
            f"gradients accumulated unsharded over {request.grad_accumulation} micro-batches "
            "(FSDP's no_sync): each GPU holds every trained weight's whole gradient until the "
            "optimizer step"
        )
        return ceil(held / request.tensor_parallel)
    if request.flat_parameters and request.offload == "none":
        return ceil(held / divisor)
    return gradients


def _gathered(
    arch: Architecture,
    request: FinetuneRequest,
    state: _State,
    shard: Mapping[str, int],
    held: tuple[int, int],
    notes: list[str],
) -> tuple[int, int]:
    """The weights and gradients per GPU once sharded ones are gathered to compute: FSDP's
    whole blocks and the gradients it keeps between micro-batches, DeepSpeed ZeRO-3's output
    layer and block."""
    weights, gradients = held
    stage = request.zero
    if stage >= 2 and request.sharding == "fsdp":
        gradients = _fsdp_gradients(request, state, shard["gradients"], gradients, notes)
    if stage == 3 and request.deepspeed and request.offload != "all":
        return _with_gathered_modules(arch, request, state, weights, gradients, notes)
    if stage == 3 and request.sharding == "fsdp":
        if unsharded_accumulation(request):
            in_flight = 0
        elif request.flat_parameters:
            in_flight = state.layer_flat_gradients
        else:
            in_flight = state.layer_gradients
        return _with_unsharded_blocks(state, weights, gradients, in_flight, notes)
    return weights, gradients


def _with_gathered_modules(
    arch: Architecture,
    request: FinetuneRequest,
    state: _State,
    weights: int,
    gradients: int,
    notes: list[str],
) -> tuple[int, int]:
    """DeepSpeed ZeRO-3 gathers each module's parameters before it computes and releases them
    after, unless the module is used again within stage3_max_reuse_distance parameters'
    fetches (10^9 by default, deepspeed/runtime/zero/config.py; partitioned_param_coordinator.py
    __params_to_release: "if we see any of the candidate parameters to be released reoccur ...
    remove them from the set of parameters to release"). The output layer's backward follows
    its forward at once, so it stays whole in between, with its whole 16-bit gradient before
    the reduce-scatter, beside the block computing."""
    output = 0 if request.method == "reward" else BF16 * arch.vocab_size * arch.hidden_size
    notes.append(
        "DeepSpeed ZeRO-3: the output layer whole from its forward to its backward pass, with "
        "its whole gradient before the reduce-scatter, and the block computing gathered"
    )
    return weights + output + state.layer_weights, gradients + state.head_gradient


def _with_unsharded_blocks(
    state: _State, weights: int, gradients: int, in_flight: int, notes: list[str]
) -> tuple[int, int]:
    """FSDP all-gathers each block's parameters before its forward and backward and frees them
    after, and always prefetches the next block's all-gather on a separate stream so that it
    overlaps this block's compute ("Implicit forward prefetching (always enabled)", PyTorch's
    FSDP notes, https://docs.pytorch.org/docs/stable/notes/fsdp.html): two blocks are whole
    at once. In the backward pass a block's unsharded gradients (``in_flight``) exist until
    reduce-scattered; accumulated unsharded, they are already counted."""
    if in_flight:
        notes.append(
            "FSDP: two blocks' weights whole at once (the one computing and the next, "
            "prefetched), and one block's gradients before they are reduce-scattered"
        )
    else:
        notes.append(
            "FSDP: two blocks' weights whole at once (the one computing and the next, prefetched)"
        )
    return weights + 2 * state.layer_weights, gradients + in_flight


def foreach_workspace(request: FinetuneRequest, state: _State) -> int:
    """The temporary the foreach AdamW step writes over every trained value at once (see
    FinetuneRequest.foreach_step): exp_avg_sq's square root, as wide as the trained weights the
    optimizer holds (fp32 under mixed precision or for fp32 adapters, else 16-bit)."""
    if not request.foreach_step or request.optimizer != "adamw" or request.optimizer_in_backward:
        return 0
    if request.trains in ADAPTER_METHODS:
        wide = request.adapter_precision == "fp32"
    else:
        wide = request.precision == "amp"
    return state.trainable * (FP32 if wide else BF16)


def backward_peak(
    gradients: int, activations: int, state: _State, notes: list[str], step: int = 0
) -> tuple[int, int, int]:
    """One process without DDP's persistent gradient buckets: gradients do not exist during
    the forward pass (zero_grad(set_to_none=True), PyTorch's default since 2.0), and the
    backward pass frees each layer's saved activations as it makes that layer's gradients.
    Both change linearly layer by layer, so the peak is at one end: every activation plus the
    output layer's gradient, or every gradient and no activation, with the optimizer step's
    temporary (``step``, see foreach_workspace) after it. Returns the gradients, activations
    and step temporary held at the peak."""
    if activations + state.head_gradient >= gradients + step:
        notes.append(
            "peak at the start of the backward pass: all activations, only the output "
            "layer's gradient"
        )
        return state.head_gradient, activations, 0
    notes.append("peak at the end of the backward pass: every gradient, the activations freed")
    if step:
        notes.append(
            "the foreach AdamW step's temporary (the square root of exp_avg_sq, for every "
            "trained value at once) beside every gradient"
        )
    return gradients, 0, step


def estimate_finetune(
    arch: Architecture,
    request: FinetuneRequest,
    *,
    storage_types: Mapping[str, StorageType],
    nf4: WeightFormat,
    bf16: WeightFormat,
    devices: Sequence[Device],
    states: StateMemo | None = None,
) -> FinetuneEstimate:
    """``states`` memoises the training state (weights, gradients, optimizer state), which
    depends on the model and the method but not on the sequence, the batch or the GPUs, for a
    caller that estimates one setup many times (the hints: a dozen estimates each)."""
    validate(request, arch)
    if len(devices) != request.gpus:
        raise InputError(f"{request.gpus} GPUs asked but {len(devices)} described", field="gpus")
    base_format = qlora_base(arch, nf4) if request.trains == "qlora" else bf16
    # (the architecture in the key carries the checkpoint whose patterns qlora_base reads)
    key = (arch, base_format.id, *(getattr(request, name) for name in STATE_INPUTS))
    state = states.get(key) if states is not None else None
    if state is None:
        state = _training_state(
            arch,
            request,
            model_tensors(arch),
            storage_types=storage_types,
            base_format=base_format,
        )
        if states is not None:
            states[key] = state
    if request.method == "ppo":
        state = _with_value_model(state)
    notes = _setup_notes(request) + _kept_16bit_notes(request, base_format)
    if request.trainer != "none":
        from calc.trainers import trainer_note  # trainers builds on this module

        notes.insert(0, trainer_note(request.trainer, request.trainer_version))
    per_gpu, host = sharded(arch, request, state, notes)
    if arch.moe is not None:
        notes.append(
            "MoE: every expert's weights (and, when trained, their gradients and "
            "optimizer state) are held; activations count the routed experts only"
        )
    if request.method in OBJECTIVES:
        per_gpu = with_reference(arch, request, per_gpu, notes)
    return FinetuneEstimate(
        request=request,
        trainable_parameters=state.trainable,
        total_parameters=_total_parameters(arch, request),
        devices=tuple(
            TrainDevice(index=i, device=d, components=with_generation(arch, request, per_gpu, d))
            for i, d in enumerate(devices)
        ),
        host=host,
        notes=tuple(notes + generation_notes(arch, request, per_gpu)),
    )


def _total_parameters(arch: Architecture, request: FinetuneRequest) -> int:
    """The model's parameters; a reward model's score head replaces its output layer."""
    total = parameters_of(arch).total
    if request.method != "reward":
        return total
    output = 0 if arch.tie_word_embeddings else arch.vocab_size * arch.hidden_size
    return total - output + arch.hidden_size


def _with_value_model(state: _State) -> _State:
    """PPO trains a value model beside the policy: TRL's PPOTrainer takes it as a separate
    model, usually the policy's architecture with a one-output head, trained the same way; its
    weights, gradients and optimizer state are counted as the policy's again."""
    return replace(
        state,
        weights=2 * state.weights,
        gradients=2 * state.gradients,
        optimizer=2 * state.optimizer,
        trainable=2 * state.trainable,
    )


def _frozen_copies(request: FinetuneRequest, notes: list[str]) -> int:
    """Frozen 16-bit models beside the policy: the reference (none with adapters, whose
    base is the reference with the adapters disabled: TRL sets ``ref_model = None`` for a
    PEFT model), and PPO's reward model."""
    method = request.method
    referenced = method in REFERENCED and not (
        (method in ("dpo", "kto") and request.precompute_ref)
        or (method == "grpo" and request.kl_beta == 0)
    )
    copies = 0
    if referenced and request.trains in ADAPTER_METHODS:
        notes.append("reference model: the base model with the adapters disabled, no copy")
    elif referenced:
        copies += 1
        notes.append("reference model: a frozen 16-bit copy of the model")
    elif method in ("dpo", "kto"):
        notes.append("reference log-probabilities computed before training: no reference model")
    elif method == "grpo":
        notes.append("KL coefficient 0 (TRL's default): no reference model")
    if method == "ppo":
        copies += 1
        notes.append("reward model: a frozen 16-bit model of the same size")
    return copies


def with_reference(
    arch: Architecture, request: FinetuneRequest, per_gpu: TrainComponents, notes: list[str]
) -> TrainComponents:
    """The frozen models a preference or RL method adds, sharded as the weights are (ZeRO-3),
    and the reference forward pass DPO and KTO make after the policy's, while its activations
    are held: its logits over the same tokens (see _reference_logit_bytes).

    Megatron-SWIFT runs the reference first, under ``torch.no_grad()``, and keeps only its
    per-token log-probabilities: over all of a step's micro-batches until 3.9
    (``_replace_data_iterator`` in swift/megatron/trainers/dpo_trainer.py), in each micro-batch's
    forward_step before the policy's from then on (rlhf_mixin.py, PR #6036). Its logits never
    meet the policy's activations.
    Before 3.8.3 its DPO built the full reference with ``get_model``'s default
    ``wrap_with_ddp=True``, whose buffer holds an fp32 gradient for every parameter that requires
    one, the reference's too (PR #6027 unwrapped it: ``wrap_with_ddp=False`` and
    ``requires_grad_(False)``)."""
    copies = _frozen_copies(request, notes)
    shards = request.tensor_parallel * (request.data_parallel if request.zero >= 3 else 1)
    total = parameters_of(arch).total
    reference = ceil(copies * BF16 * total / shards)
    megatron = request.sharding == "megatron"
    if megatron and request.reference_grad_buffer and copies and request.method == "dpo":
        reference += ceil(FP32 * total / request.tensor_parallel)
        notes.append(
            "reference model wrapped in Megatron's DDP: an fp32 gradient buffer for all its "
            "parameters (Megatron-SWIFT before 3.8.3)"
        )
    activations = per_gpu.activations
    reads_reference = request.method in ("dpo", "kto") and not request.precompute_ref
    if reads_reference and megatron:
        notes.append(
            "the reference's forward pass runs before the policy's and keeps only per-token "
            "log-probabilities (Megatron-SWIFT): its logits add nothing to the peak"
        )
    elif reads_reference and activations and request.fused_loss:
        # the fused loss takes the reference's last hidden states and computes its logits a
        # chunk at a time beside the policy's (TRL's _compute_loss_liger: ref_hidden_states)
        hidden = logit_tokens(request) * arch.hidden_size * BF16
        activations += ceil(hidden / request.tensor_parallel)
    elif reads_reference and activations:
        per_logit = _reference_logit_bytes(request)
        # the reference's logits meet what the policy's forward pass ended with; the peak
        # rises only where that moment outgrows the policy's backward pass
        tokens_x_vocab = logit_tokens(request) * arch.vocab_size
        backward = loss_logit_bytes(arch, request)
        forward = tokens_x_vocab * (_forward_logits(request) + per_logit)
        logits = max(0, forward - backward)
        activations += ceil(logits / request.tensor_parallel)
    return replace(per_gpu, reference=reference, activations=activations)


def _reference_logit_bytes(request: FinetuneRequest) -> int:
    """Bytes per logit the reference's forward pass holds beside the policy's activations:
    its 16-bit logits and, read row by row, one more 16-bit log-softmax; under Accelerate's
    autocast (mixed precision without DeepSpeed) the model's outputs come back converted to fp32
    (convert_outputs_to_fp32, huggingface/accelerate#3477), the 16-bit logits and their fp32
    copy together for a moment; cast to fp32 first (LLaMA-Factory), an fp32 copy and its fp32
    log-softmax."""
    if not request.selective_logprobs:
        return FP32 + FP32
    if outputs_fp32(request):
        return BF16 + FP32
    return BF16 + BF16


def generation_kv_bytes(arch: Architecture, request: FinetuneRequest) -> int:
    """The KV cache of the trainer generating its completions itself (GRPO and PPO without
    vLLM): a 16-bit cache for every sequence of the step at its full length."""
    return request.micro_batch * request.seq_len * arch.num_layers * _kv_width(arch) * BF16


def with_generation(
    arch: Architecture, request: FinetuneRequest, per_gpu: TrainComponents, device: Device
) -> TrainComponents:
    """What generating the completions adds: a colocated vLLM keeps its share of each GPU for
    the whole run (vllm_gpu_memory_utilization of the GPU's memory, as vLLM sizes it); a
    trainer generating itself holds a KV cache while the step's activations and gradients do
    not exist yet, so only what the cache needs beyond them raises the peak."""
    if request.method not in ("grpo", "ppo"):
        return per_gpu
    if request.colocate_vllm:
        held = ceil(request.colocate_vllm * (device.capacity_bytes or 0))
        if not request.vllm_sleep:
            return replace(per_gpu, generation=held)
    else:
        held = ceil(generation_kv_bytes(arch, request) / request.tensor_parallel)
    # a slept engine, like the trainer's own cache, meets the weights and optimizer state only
    # while it generates, when the step's activations and gradients do not exist
    beyond = held - per_gpu.activations - per_gpu.gradients
    return replace(per_gpu, generation=max(0, beyond))


def generation_notes(
    arch: Architecture, request: FinetuneRequest, per_gpu: TrainComponents
) -> list[str]:
    if request.method not in ("grpo", "ppo"):
        return []
    if request.colocate_vllm and request.vllm_sleep:
        return [
            f"a colocated vLLM takes {request.colocate_vllm:.0%} of each GPU while it generates "
            "and sleeps through the training step (vllm_enable_sleep_mode): only what it needs "
            "beyond the step's activations and gradients raises the peak"
        ]
    if request.colocate_vllm:
        return [
            f"a colocated vLLM takes {request.colocate_vllm:.0%} of each GPU for generation "
            "(vllm_gpu_memory_utilization)"
        ]
    kv = generation_kv_bytes(arch, request)
    return [
        f"generation by the trainer: a 16-bit KV cache of {kv / 2**30:.2f} GiB for "
        f"{request.micro_batch} sequence(s) of {request.seq_len:,} tokens, while the step's "
        "activations and gradients do not exist"
    ]
