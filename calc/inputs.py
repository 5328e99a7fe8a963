"""Every input the estimator takes, described once: name, type, unit, bounds, default, what it
applies to and its help.

The command line's options (``calc.cli``), the browser bridge's parser (``calc.bridge``), the
measurement file's fields (``calc.measurements`` and the schema ``calc.data_files`` checks them
against) and the calculator's form (the build emits :func:`page_table` as JSON) are all made
from :data:`INPUTS`. A default is the request dataclass's own (``InferenceRequest``,
``FinetuneRequest``); a default marked ``resolved`` is decided by the plan (the engine release,
the model, the GPUs) and reported back with the estimate.

Values arrive as JSON or YAML (:func:`parse`) or as command-line text (``calc.cli`` turns each
kind into an argparse type); :func:`check` then holds every value to the table's bounds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, fields
from typing import Any, Literal

from calc._errors import ConfigError, InputError
from calc.engines import ENGINES
from calc.finetune import (
    ADAPTER_METHODS,
    LOGPROB_OBJECTIVES,
    LORA_GROUPS,
    OBJECTIVES,
    FinetuneRequest,
    parse_lora_targets,
    version_tuple,
)
from calc.plan import MAX_ACCUMULATION, MAX_BATCH, MAX_CONTEXT, MAX_GPUS
from calc.records import record, replace
from calc.requests import InferenceRequest
from calc.speed import BACKENDS
from calc.trainers import TRAINERS, trainer
from calc.units import GIB

Kind = Literal[
    "text", "int", "fraction", "choice", "switch", "memory", "split", "targets", "config", "gguf"
]
Mode = Literal["inference", "finetune"]
Group = Literal["model", "runs", "trains", "gpus"]
INFERENCE: tuple[Mode, ...] = ("inference",)
FINETUNE: tuple[Mode, ...] = ("finetune",)
BOTH: tuple[Mode, ...] = ("inference", "finetune")
ON_OFF = (("off", "off"), ("on", "on"))

MAX_CONFIG_CHARS = 1_000_000  # a real config.json is a few kB
MAX_GPU_MEMORY_GIB = 1_000_000
MAX_FINETUNE_GPUS = 4096
MAX_SEQ_LEN = 10_000_000
LLAMA_CPP_FAMILY = ("llama.cpp", "ollama")


@record
class Input:
    """One input. ``name`` is its key everywhere: the bridge's JSON, a measurement's field, the
    form field's ``name`` and the URL parameter."""

    name: str
    kind: Kind
    label: str  # the form's label
    help: str  # one sentence for the CLI's --help and the form's description
    modes: tuple[Mode, ...]
    group: Group
    attr: str = ""  # the request dataclass's field, where it differs from name
    flag: str = ""  # the command-line option, where it differs from --name-with-dashes
    metavar: str = ""
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    above_minimum: bool = False  # the minimum itself is not allowed
    below_maximum: bool = False  # the maximum itself is not allowed
    finetune_maximum: float | None = None  # a different maximum when fine-tuning
    example: str = ""
    choices: tuple[tuple[Any, str], ...] = ()  # (value, label)
    on_word: str = "on"  # a switch's word for True
    resolved: bool = False  # inference: the plan decides the default (engine, model, GPUs)
    default_rule: str = ""  # in words, for a resolved default
    engines: tuple[str, ...] = ()  # empty: every engine
    methods: tuple[str, ...] = ()  # empty: every fine-tuning method
    suggest: str = ""  # the catalogue list the form offers (models, weights, kv_formats, gpus)
    cli: bool = True
    measured: bool = True  # a field of data/measurements.yaml

    @property
    def field_name(self) -> str:
        return self.attr or self.name

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def values(self) -> tuple[Any, ...]:
        return tuple(value for value, _ in self.choices)

    def maximum_for(self, mode: Mode) -> float | None:
        if mode == "finetune" and self.finetune_maximum is not None:
            return self.finetune_maximum
        return self.maximum

    def default(self, mode: Mode) -> Any:
        """The value taken when the input is not given; None where the plan resolves it."""
        if mode == "inference" and self.resolved:
            return None
        request = InferenceRequest if mode == "inference" else FinetuneRequest
        for f in fields(request):
            if f.name == self.field_name:
                return None if f.default is MISSING else f.default
        return None

    def default_text(self, mode: Mode) -> Any:
        """The default as a reader would type it (None where the plan resolves it)."""
        return self.as_text(self.default(mode))

    def as_text(self, value: Any) -> Any:
        """A value as a reader would type it."""
        if self.kind == "switch" and isinstance(value, bool):
            return self.on_word if value else "off"
        if self.kind == "targets" and isinstance(value, tuple):
            named = [group for group, members in LORA_GROUPS.items() if members == value]
            return named[0] if named else ",".join(value)
        if isinstance(value, tuple):
            return ",".join(str(v) for v in value)
        return value


def _engine_choices() -> tuple[tuple[Any, str], ...]:
    return tuple((engine.id, engine.name) for engine in ENGINES.values())


def _training_switch(name: str, label: str, help_text: str, **extra: Any) -> Input:
    """An on/off fine-tuning setting of how the weights train (the form's "trains" group)."""
    return Input(name, "switch", label, help_text, FINETUNE, "trains", choices=ON_OFF, **extra)


def _training_split(name: str, label: str, help_text: str) -> Input:
    """A fine-tuning GPU count that splits the work (a divisor of the GPUs)."""
    return Input(
        name, "int", label, help_text, FINETUNE, "trains", metavar="N", minimum=1, maximum=MAX_GPUS
    )


INPUTS: tuple[Input, ...] = (
    # -- the model ----------------------------------------------------------------------------
    Input(
        "model",
        "text",
        "Model",
        "a catalogue model id, e.g. llama-3.1-8b",
        BOTH,
        "model",
        metavar="ID",
        suggest="models",
    ),
    Input(
        "config",
        "config",
        "Paste a config.json",
        "a Hugging Face config.json (the command line takes its path)",
        BOTH,
        "model",
        metavar="PATH",
        measured=False,
    ),
    Input(
        "gguf",
        "gguf",
        "A local GGUF file",
        "a local .gguf file: its header (metadata and tensor table) is read, never its data",
        INFERENCE,
        "model",
        metavar="PATH",
        measured=False,
    ),
    # -- how it runs --------------------------------------------------------------------------
    Input(
        "engine",
        "text",
        "Engine",
        "the engine whose defaults and buffers to model",
        INFERENCE,
        "runs",
        choices=_engine_choices(),
    ),
    Input(
        "engine_version",
        "text",
        "Engine version",
        "the engine release whose defaults apply, e.g. 0.5.7",
        INFERENCE,
        "runs",
        metavar="VERSION",
        resolved=True,
        default_rule="the newest release modelled",
        suggest="versions",
    ),
    Input(
        "flash_attention",
        "switch",
        "Flash attention",
        "flash attention on or off",
        BOTH,
        "runs",
        choices=ON_OFF,
        resolved=True,
        default_rule="the engine release's default",
    ),
    Input(
        "vision",
        "switch",
        "Vision tower",
        "load the model's vision encoder and projector (and its image-encoding buffer)",
        INFERENCE,
        "runs",
        choices=ON_OFF,
        resolved=True,
        default_rule="on where the engine loads it: Ollama, vLLM, transformers; llama.cpp "
        "only with --mmproj",
    ),
    Input(
        "weights",
        "text",
        "Weights",
        "weight format, e.g. q4_k_m, bf16, awq-int4",
        INFERENCE,
        "runs",
        metavar="FORMAT",
        resolved=True,
        default_rule="the engine's usual format",
        suggest="weights",
    ),
    Input(
        "context",
        "int",
        "Context (tokens per sequence)",
        "tokens per sequence",
        INFERENCE,
        "runs",
        metavar="TOKENS",
        unit="tokens",
        minimum=1,
        maximum=MAX_CONTEXT,
        resolved=True,
        default_rule="the engine release's default for this model and these GPUs",
    ),
    Input(
        "batch",
        "int",
        "Sequences at once",
        "sequences served at once",
        INFERENCE,
        "runs",
        metavar="SEQUENCES",
        unit="sequences",
        minimum=1,
        maximum=MAX_BATCH,
        resolved=True,
        default_rule="the engine release's default (Ollama before 0.9.6: 4 if they fit)",
    ),
    Input(
        "kv_cache",
        "text",
        "KV cache",
        "KV cache type: f16, q8_0 ...",
        INFERENCE,
        "runs",
        metavar="FORMAT",
        resolved=True,
        default_rule="the engine's default",
        suggest="kv_formats",
    ),
    Input(
        "gpu_layers",
        "int",
        "Layers on the GPUs (-ngl)",
        "layers on the GPUs; one more than the layers adds the output layer",
        INFERENCE,
        "runs",
        metavar="N",
        minimum=0,
        maximum=MAX_CONTEXT,
        engines=LLAMA_CPP_FAMILY,
        default_rule="all of them",
    ),
    Input(
        "cpu_moe_layers",
        "int",
        "Experts of the first N layers in CPU RAM (--n-cpu-moe)",
        "keep the routed experts of the first N layers in CPU RAM",
        INFERENCE,
        "runs",
        flag="--n-cpu-moe",
        metavar="N",
        minimum=0,
        maximum=MAX_CONTEXT,
        engines=LLAMA_CPP_FAMILY,
    ),
    Input(
        "tensor_split",
        "split",
        "Share of the layers per GPU (--tensor-split)",
        "each GPU's share of the layers, e.g. 3,1",
        INFERENCE,
        "runs",
        metavar="A,B,...",
        example="3,1",
        engines=LLAMA_CPP_FAMILY,
        default_rule="in proportion to each GPU's memory",
    ),
    Input(
        "ubatch_size",
        "int",
        "Micro-batch (-ub, --ubatch-size)",
        "tokens in one physical batch of a prompt step (Ollama's num_batch): the compute "
        "buffer's width",
        INFERENCE,
        "runs",
        metavar="N",
        unit="tokens",
        minimum=1,
        maximum=MAX_BATCH,
        resolved=True,
        engines=LLAMA_CPP_FAMILY,
        default_rule="512",
    ),
    Input(
        "gpu_memory_utilization",
        "fraction",
        "gpu_memory_utilization (share of each GPU)",
        "the share of each GPU vLLM reserves; sets the KV capacity reported",
        INFERENCE,
        "runs",
        metavar="F",
        minimum=0,
        above_minimum=True,
        maximum=1,
        example="0.9",
        resolved=True,
        engines=("vllm",),
        default_rule="0.9",
    ),
    Input(
        "max_num_seqs",
        "int",
        "max_num_seqs",
        "sequences per step: the profiling run's rows of logits",
        INFERENCE,
        "runs",
        metavar="N",
        minimum=1,
        maximum=MAX_BATCH,
        resolved=True,
        engines=("vllm",),
        default_rule="256; 1024 on GPUs of 70 GiB or more from 0.9",
    ),
    Input(
        "max_num_batched_tokens",
        "int",
        "max_num_batched_tokens",
        "tokens per step: the size of the profiling pass",
        INFERENCE,
        "runs",
        metavar="N",
        minimum=1,
        maximum=MAX_CONTEXT,
        resolved=True,
        engines=("vllm",),
        default_rule="2048; 8192 on GPUs of 70 GiB or more from 0.9",
    ),
    # -- how it trains ------------------------------------------------------------------------
    Input(
        "method",
        "choice",
        "Method",
        "what trains: LoRA or QLoRA adapters, every weight, or the last layers",
        FINETUNE,
        "trains",
        choices=(
            ("lora", "LoRA"),
            ("qlora", "QLoRA (4-bit base)"),
            ("full", "Full fine-tuning"),
            ("freeze", "Freeze (last layers train)"),
            ("dpo", "DPO (preference pairs, reference model)"),
            ("orpo", "ORPO (preference pairs, no reference)"),
            ("kto", "KTO (single completions, reference model)"),
            ("grpo", "GRPO (generated groups, RL)"),
            ("ppo", "PPO (policy, value, reference and reward models)"),
            ("reward", "Reward model (preference pairs, a score head)"),
        ),
    ),
    _training_split(
        "sequence_parallel",
        "Sequence parallel GPUs",
        "each sequence split over this many GPUs (DeepSpeed Ulysses, ring attention); divides "
        "the GPU count",
    ),
    _training_split(
        "tensor_parallel",
        "Tensor parallel GPUs (Megatron)",
        "every matrix and the activations split over this many GPUs (Megatron tensor "
        "parallelism with sequence parallelism); ZeRO shards over the rest; divides the GPU count",
    ),
    Input(
        "trainer",
        "choice",
        "Fine-tuning tool",
        "the tool whose defaults apply to what you leave unset (gradient checkpointing, LoRA "
        "rank, targets and dropout, adapter dtype, loss, optimizer)",
        FINETUNE,
        "trains",
        choices=(
            ("none", "None: this guide's defaults"),
            *((t.id, t.name) for t in TRAINERS.values()),
        ),
    ),
    Input(
        "trainer_version",
        "text",
        "Tool version",
        "the tool's release whose defaults apply, e.g. 0.22.0 (the newest modelled if unset)",
        FINETUNE,
        "trains",
        metavar="VERSION",
        example="1.9.0",
    ),
    Input(
        "tuning",
        "choice",
        "What trains",
        "preference and RL methods: which weights train (TRL with PEFT trains LoRA adapters)",
        FINETUNE,
        "trains",
        choices=(
            ("lora", "LoRA"),
            ("qlora", "QLoRA (4-bit base)"),
            ("full", "Full fine-tuning"),
            ("freeze", "Freeze (last layers train)"),
        ),
        methods=OBJECTIVES,
    ),
    _training_switch(
        "precompute_ref",
        "Reference log-probabilities computed first",
        "DPO and KTO: the reference model's log-probabilities computed once before training "
        "(TRL's precompute_ref_log_probs), so no reference model is held",
        methods=("dpo", "kto"),
    ),
    _training_switch(
        "selective_logprobs",
        "Log-probabilities from the logits as returned",
        "preference and RL methods: each row's log-softmax and gather on the logits as the "
        "model returns them (TRL's selective_log_softmax, ms-swift's DPO), no fp32 copy; off: "
        "the logits cast to fp32 first (LLaMA-Factory)",
        methods=LOGPROB_OBJECTIVES,
    ),
    _training_switch(
        "reference_grad_buffer",
        "Megatron-SWIFT before 3.8.3: reference in Megatron's DDP",
        "full DPO under Megatron-SWIFT before 3.8.3 (PR #6027): the reference model "
        "wrapped in Megatron's DDP, whose buffer gives each of its parameters an fp32 gradient",
        methods=("dpo",),
    ),
    Input(
        "kl_beta",
        "fraction",
        "GRPO: KL coefficient (beta)",
        "GRPO's KL penalty: above 0 a frozen reference model is held (TRL's default 0.0)",
        FINETUNE,
        "trains",
        metavar="BETA",
        minimum=0,
        maximum=10,
        example="0.04",
        methods=("grpo",),
    ),
    Input(
        "completion_len",
        "int",
        "GRPO: completion length (tokens)",
        "the longest completion GRPO computes log-probabilities over (TRL's "
        "max_completion_length, 256 in 1.9.0)",
        FINETUNE,
        "trains",
        metavar="N",
        minimum=1,
        maximum=MAX_CONTEXT,
        methods=("grpo",),
    ),
    Input(
        "colocate_vllm",
        "fraction",
        "Colocated vLLM's share of each GPU",
        "GRPO and PPO: the share of each GPU's memory a vLLM engine on the same GPUs keeps for "
        "generation (TRL's vllm_gpu_memory_utilization, 0.3 with use_vllm in colocate mode); 0: "
        "the trainer generates itself",
        FINETUNE,
        "trains",
        metavar="SHARE",
        minimum=0,
        maximum=1,
        below_maximum=True,
        example="0.3",
        methods=("grpo", "ppo"),
    ),
    _training_switch(
        "vllm_sleep",
        "Colocated vLLM sleeps during training",
        "GRPO and PPO with a colocated vLLM: its weights and KV cache dropped after each "
        "generation and restored before the next (TRL's vllm_enable_sleep_mode), so it does not "
        "meet the training step's activations and gradients",
        methods=("grpo", "ppo"),
    ),
    _training_switch(
        "temperature_in_place",
        "Temperature division in place (GRPO, PPO)",
        "GRPO and PPO: the logits divided by the sampling temperature in place, on a view "
        "(TRL's GRPOTrainer from 1.0.0 until 1.10.0, its PPOTrainer), so the backward pass "
        "clones the logits' gradient and divides it, one more logits-sized tensor",
        methods=("grpo", "ppo"),
    ),
    Input(
        "precision",
        "choice",
        "Precision",
        "amp: 16-bit compute with fp32 master weights; bf16: everything in bf16",
        FINETUNE,
        "trains",
        choices=(("amp", "mixed (bf16 compute, fp32 master weights)"), ("bf16", "pure bf16")),
    ),
    Input(
        "optimizer",
        "choice",
        "Optimizer",
        "the optimizer, whose state trains beside the weights",
        FINETUNE,
        "trains",
        choices=(
            ("adamw", "AdamW"),
            ("adamw_8bit", "8-bit AdamW"),
            ("paged_adamw_8bit", "paged 8-bit AdamW"),
            ("paged_adamw_32bit", "paged AdamW"),
            ("sgd", "SGD"),
            ("sgd_momentum", "SGD with momentum"),
            ("adafactor", "Adafactor"),
        ),
    ),
    Input(
        "lora_rank",
        "int",
        "LoRA rank",
        "the adapters' rank",
        FINETUNE,
        "trains",
        metavar="R",
        minimum=1,
        maximum=MAX_BATCH,
        methods=ADAPTER_METHODS,
    ),
    Input(
        "lora_targets",
        "targets",
        "LoRA targets (attention, mlp, all, or q_proj,v_proj,...)",
        "attention, mlp, all, or modules: q_proj,v_proj,... embed_tokens,lm_head",
        FINETUNE,
        "trains",
        metavar="LIST",
        example="q_proj,v_proj",
        methods=ADAPTER_METHODS,
    ),
    Input(
        "freeze_layers",
        "int",
        "Freeze: layers that train",
        "freeze: how many of the last layers train",
        FINETUNE,
        "trains",
        attr="freeze_trainable_layers",
        metavar="N",
        minimum=1,
        maximum=MAX_CONTEXT,
        methods=("freeze",),
    ),
    Input(
        "seq_len",
        "int",
        "Sequence length (tokens)",
        "tokens per sample",
        FINETUNE,
        "trains",
        metavar="N",
        unit="tokens",
        minimum=1,
        maximum=MAX_SEQ_LEN,
    ),
    Input(
        "micro_batch",
        "int",
        "Micro-batch",
        "samples per step on each GPU",
        FINETUNE,
        "trains",
        metavar="N",
        minimum=1,
        maximum=MAX_BATCH,
    ),
    Input(
        "grad_accumulation",
        "int",
        "Gradient accumulation steps",
        "micro-batches per optimizer step; memory changes only when FSDP accumulates the "
        "gradients unsharded between them",
        FINETUNE,
        "trains",
        metavar="N",
        minimum=1,
        maximum=MAX_ACCUMULATION,
    ),
    Input(
        "grad_checkpointing",
        "switch",
        "Gradient checkpointing",
        "keep each layer's input only and recompute the rest in the backward pass",
        FINETUNE,
        "trains",
        choices=(("off", "off"), ("full", "full")),
        on_word="full",
    ),
    Input(
        "zero",
        "choice",
        "ZeRO / FSDP sharding",
        "ZeRO stage (3 is FSDP full sharding)",
        FINETUNE,
        "trains",
        choices=(
            (0, "none (DDP)"),
            (1, "ZeRO-1: optimizer state"),
            (2, "ZeRO-2: + gradients"),
            (3, "ZeRO-3 / FSDP: + weights"),
        ),
    ),
    Input(
        "sharding",
        "choice",
        "Sharding library",
        "what shards the ZeRO stage: DeepSpeed keeps fp32 master weights, fp32 optimizer "
        "state and (ZeRO-3) fp32 gradients even for a bf16 model; PyTorch FSDP keeps what the "
        "precision says; Megatron keeps fp32 main weights and gradients (zero 1: its distributed "
        "optimizer)",
        FINETUNE,
        "trains",
        choices=(
            ("deepspeed", "DeepSpeed ZeRO"),
            ("fsdp", "PyTorch FSDP / FSDP2"),
            ("megatron", "Megatron (distributed optimizer)"),
        ),
    ),
    _training_switch(
        "accumulate_unsharded",
        "FSDP: gradients accumulated unsharded (no_sync)",
        "FSDP with gradient accumulation: the reduce-scatter skipped between micro-batches "
        "(no_sync, as Hugging Face's Trainer and LitGPT do), so each GPU holds every trained "
        "weight's whole gradient until the optimizer step",
    ),
    _training_switch(
        "flat_parameters",
        "FSDP1: frozen and trained weights in one flat parameter",
        "LoRA under FSDP1 with use_orig_params and whole blocks wrapped (LitGPT before 0.5.8): "
        "each block's one gradient covers its frozen weights too",
        methods=ADAPTER_METHODS,
    ),
    Input(
        "offload",
        "choice",
        "Offload to CPU",
        "what ZeRO moves to CPU RAM",
        FINETUNE,
        "trains",
        choices=(
            ("none", "none"),
            ("optimizer", "optimizer state"),
            ("all", "optimizer and weights"),
        ),
    ),
    Input(
        "adapter_precision",
        "choice",
        "LoRA adapters",
        "LoRA adapters: fp32 (PEFT) or bf16 (torchtune, LitGPT bf16-true)",
        FINETUNE,
        "trains",
        choices=(("fp32", "fp32 (PEFT)"), ("bf16", "bf16 (torchtune, LitGPT)")),
        methods=ADAPTER_METHODS,
    ),
    Input(
        "lora_dropout",
        "fraction",
        "LoRA dropout",
        "dropout on the adapters' input (LitGPT and ms-swift use 0.05)",
        FINETUNE,
        "trains",
        metavar="P",
        minimum=0,
        maximum=1,
        below_maximum=True,
        example="0.05",
        methods=ADAPTER_METHODS,
    ),
    _training_switch(
        "fused_qkv",
        "q, k and v in one projection (LitGPT)",
        "q, k and v as one projection with one adapter input (LitGPT)",
        methods=ADAPTER_METHODS,
    ),
    _training_switch(
        "norms_fp32",
        "Norms computed in fp32",
        "RMSNorm casts its input to fp32 and keeps that copy for the backward pass "
        "(transformers, torchtune, LitGPT); off: the norm computes in 16 bits and keeps its "
        "16-bit input (lit-gpt before October 2023)",
    ),
    Input(
        "bnb_version",
        "text",
        "bitsandbytes version (QLoRA)",
        "QLoRA: the bitsandbytes release; before 0.43.2 each 4-bit layer also kept its input "
        "until the backward pass (bitsandbytes PR #1270)",
        FINETUNE,
        "trains",
        metavar="VERSION",
        example="0.42.0",
        methods=("qlora",),
    ),
    Input(
        "weights_dtype",
        "choice",
        "Base model loaded in",
        "LoRA and QLoRA: the dtype the base model's weights are loaded in; TRL from 0.27 loads a "
        "model given by name in fp32 unless dtype is set; training still computes in bf16",
        FINETUNE,
        "trains",
        choices=(("bf16", "bf16"), ("fp32", "fp32")),
        methods=ADAPTER_METHODS,
    ),
    _training_switch(
        "double_quant",
        "Double quantisation (QLoRA)",
        "QLoRA: bitsandbytes' double quantisation of the block scales, 4.127 bits a weight; "
        "off: 4.5 (transformers' default, LitGPT's bnb.nf4)",
        methods=("qlora",),
    ),
    _training_switch(
        "quantize_output",
        "Output layer in 4 bits (QLoRA)",
        "QLoRA: the output layer quantised too, as LitGPT quantises every linear layer; "
        "transformers leaves it 16-bit",
        methods=("qlora",),
    ),
    Input(
        "fp16_quant_state",
        "switch",
        "4-bit weights quantised from fp16 (QLoRA)",
        "QLoRA: weights quantised from fp16 (Lightning, LitGPT), so each dequantisation makes "
        "an fp16 copy and then its bf16 cast",
        FINETUNE,
        "trains",
        choices=ON_OFF,
        methods=("qlora",),
    ),
    _training_switch(
        "keeps_graph",
        "Loop keeps the last step's outputs (QLoRA)",
        "QLoRA without checkpointing on bitsandbytes before 0.43.2: a training loop that keeps "
        "the last step's outputs (LitGPT) keeps that step's 4-bit layer inputs through the next "
        "forward pass",
        methods=("qlora",),
    ),
    _training_switch(
        "kbit_upcast",
        "fp32 unquantised weights (PEFT's prepare_model_for_kbit_training)",
        "QLoRA: PEFT's prepare_model_for_kbit_training casts the weights left unquantised "
        "(embeddings, output layer, norms) to fp32, and the residual stream follows (TRL before "
        "0.26 for SFT, before 0.29 for DPO)",
        methods=("qlora",),
    ),
    _training_switch(
        "loss_upcast",
        "Loss upcasts the logits to fp32",
        "the cross-entropy casts 16-bit logits to fp32 before its log-softmax (transformers, "
        "torchtune, LLaMA-Factory's log-probabilities); off: it runs on them as they are "
        "(LitGPT in bf16-true). Under autocast it runs in fp32 either way",
    ),
    _training_switch(
        "compile",
        "torch.compile",
        "torch.compile: fused norms, no fp32 copies kept",
        attr="compiled",
    ),
    _training_switch(
        "chunked_loss",
        "Loss in 8 chunks",
        "the loss over 8 chunks (torchtune)",
    ),
    _training_switch(
        "fused_loss",
        "Fused output layer and loss",
        "the output layer and the loss over chunks of 256 tokens, the whole logits never held "
        "(Liger kernel, TRL's chunked_nll); wins over the 8 chunks",
    ),
    Input(
        "loss_chunk_gib",
        "fraction",
        "Fused loss chunk budget (GiB)",
        "with the fused loss: chunks sized to hold at most this much fp32 logits, as Unsloth "
        "does (half the free memory, at most 4 GiB); 0: chunks of 256 tokens (Liger, TRL)",
        FINETUNE,
        "trains",
        metavar="GIB",
        minimum=0,
        maximum=1024,
        example="4",
    ),
    _training_switch(
        "fused_tiles",
        "Fused loss in tiles (TRL's fused LM head)",
        "with the fused loss: the output layer scored in tiles of 4,096 tokens by 32,768 "
        "vocabulary entries, the gradient of the hidden states gathered in fp32 (TRL from 1.15.0, "
        "every trainer)",
    ),
    _training_switch(
        "optimizer_in_backward",
        "Optimizer step in the backward pass",
        "step each parameter as its gradient arrives (torchtune's full fine-tuning recipes)",
        methods=("full", "freeze"),
    ),
    _training_switch(
        "foreach_step",
        "AdamW stepped by its foreach implementation",
        "torch.optim.AdamW's default (and Hugging Face's adamw_torch, the Trainer's default before "
        "adamw_torch_fused for PyTorch 2.8 and later): the step writes one temporary as large as "
        "an optimizer state; fused and 8-bit optimizers step in place",
    ),
    _training_switch(
        "activation_offloading",
        "Activations offloaded to CPU RAM",
        "activations wait in CPU RAM between the forward and backward passes",
    ),
    # -- the GPUs -----------------------------------------------------------------------------
    Input(
        "gpu",
        "text",
        "GPU",
        "GPU model, e.g. 'RTX 4090D'; list several for mismatched GPUs: 'RTX 4090,RTX 3090'",
        BOTH,
        "gpus",
        metavar="NAME",
        suggest="gpus",
    ),
    Input(
        "backend",
        "text",
        "GPU backend",
        "the GPU backend the engine runs on, for the speed estimate",
        INFERENCE,
        "gpus",
        choices=tuple((b.id, b.name) for b in BACKENDS.values()),
        resolved=True,
        default_rule="CUDA on NVIDIA, ROCm on AMD, Metal on Apple, SYCL on Intel",
    ),
    Input(
        "gpu_memory_gib",
        "memory",
        "Memory per GPU (GiB)",
        "memory per GPU, e.g. 24GiB or 80GB",
        BOTH,
        "gpus",
        attr="gpu_memory_bytes",
        flag="--gpu-memory",
        metavar="SIZE",
        unit="GiB",
        minimum=0,
        above_minimum=True,
        maximum=MAX_GPU_MEMORY_GIB,
    ),
    Input(
        "ram_gib",
        "memory",
        "CPU RAM (GiB)",
        "host RAM free for the model, e.g. 64GiB: where llama.cpp's --fit and Ollama's scheduler "
        "put the layers and experts the GPUs cannot hold",
        INFERENCE,
        "gpus",
        attr="ram_bytes",
        flag="--ram",
        metavar="SIZE",
        unit="GiB",
        minimum=0,
        above_minimum=True,
        maximum=MAX_GPU_MEMORY_GIB,
        engines=LLAMA_CPP_FAMILY,
    ),
    Input(
        "unified_memory_gib",
        "memory",
        "Unified memory (GiB)",
        "the machine's memory where the GPU shares it (Apple silicon, Ryzen AI Max, DGX Spark), "
        "e.g. 48GB: the GPU gets macOS's share of it (2/3 up to 36 GiB, 3/4 above) or the "
        "vendor's default",
        INFERENCE,
        "gpus",
        attr="unified_memory_bytes",
        flag="--unified-memory",
        metavar="SIZE",
        unit="GiB",
        minimum=0,
        above_minimum=True,
        maximum=MAX_GPU_MEMORY_GIB,
        default_rule="the catalogue GPU's memory",
    ),
    Input(
        "wired_limit_gib",
        "memory",
        "GPU memory limit (GiB)",
        "what a unified-memory GPU may take instead of its default share: macOS's sysctl "
        "iogpu.wired_limit_mb, an AMD APU's BIOS carve-out or GTT size, e.g. 56GiB",
        INFERENCE,
        "gpus",
        attr="wired_limit_bytes",
        flag="--wired-limit",
        metavar="SIZE",
        unit="GiB",
        minimum=0,
        above_minimum=True,
        maximum=MAX_GPU_MEMORY_GIB,
        default_rule="macOS's share, or the vendor's",
    ),
    Input(
        "gpus",
        "int",
        "Number of GPUs",
        "number of GPUs",
        BOTH,
        "gpus",
        metavar="N",
        minimum=1,
        maximum=MAX_GPUS,
        finetune_maximum=MAX_FINETUNE_GPUS,
    ),
)
BY_NAME: dict[str, Input] = {i.name: i for i in INPUTS}
BY_FIELD: dict[str, Input] = {i.field_name: i for i in INPUTS}
# Inputs outside a request dataclass: where the estimate runs (fine-tuning's model and GPUs).
WHERE = ("model", "config", "gpu", "gpu_memory_gib")


def for_mode(mode: Mode) -> tuple[Input, ...]:
    return tuple(i for i in INPUTS if mode in i.modes)


# -- reading values -------------------------------------------------------------------------


def parse(mode: Mode, raw: object, *, ignore: frozenset[str] = frozenset()) -> dict[str, Any]:
    """JSON or YAML values (the bridge's inputs, a measurement entry) as typed values, by
    input name; empty values and nulls are left out. Keys in ``ignore`` are skipped; any other
    unknown key is refused."""
    if not isinstance(raw, Mapping):
        raise InputError("inputs must be a JSON object")
    known = {i.name: i for i in for_mode(mode)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ignore:
            continue
        item = known.get(key)
        if item is None:
            raise InputError(f"unknown input {key!r}", field=str(key))
        if value is None or value == "":
            continue
        values[key] = parse_value(item, value)
    return values


def parse_value(item: Input, value: object) -> Any:
    """One JSON or YAML value as its kind's type; every problem names the input."""
    if item.kind == "split" and isinstance(value, list):
        value = ",".join(str(v) for v in value)  # YAML's [3, 1] as the command line's 3,1
    if item.kind in ("text", "targets", "split", "config") and not isinstance(value, str):
        raise InputError(f"{item.name} must be text, got {type(value).__name__}", field=item.name)
    return _PARSERS[item.kind](item, value)


def _whole(item: Input, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{item.name} must be a whole number, got {value!r}", field=item.name)
    return value


def _choice(item: Input, value: object) -> object:
    if value not in item.values:
        options = ", ".join(str(v) for v in item.values)
        raise InputError(f"{item.name} must be one of {options}, got {value!r}", field=item.name)
    return value


def _number(item: Input, value: object) -> float:
    """A number sent as a number or as text such as "0.9"."""
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        return float(value)
    except ValueError:
        raise InputError(
            f"{item.name} must be a fraction like {item.example}, got {value!r}", field=item.name
        ) from None


def _switch(item: Input, value: object) -> bool:
    if value in (item.on_word, True):
        return True
    if value in ("off", False):
        return False
    raise InputError(f"{item.name} must be {item.on_word} or off, got {value!r}", field=item.name)


def _split(item: Input, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise InputError(
            f"tensor split must be numbers like {item.example}, got {text!r}", field=item.name
        ) from None


def memory_bytes(item: Input, value: object) -> int:
    """GiB, as the page and the measurements give it, in bytes."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InputError(
            f"GPU memory must be a positive number of GiB, got {value!r}", field=item.name
        )
    if value > MAX_GPU_MEMORY_GIB:
        raise InputError(
            f"GPU memory must be at most {MAX_GPU_MEMORY_GIB:,} GiB, got {value!r}",
            field=item.name,
        )
    return int(value * GIB)


def parse_config_text(text: str, where: str = "config.json") -> dict[str, Any]:
    """A config.json's text as a dict; ``where`` names it in errors (a path, on the CLI)."""
    if len(text) > MAX_CONFIG_CHARS:
        raise InputError(
            f"{where} is too large (over {MAX_CONFIG_CHARS:,} characters)", field="config"
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{where} is not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply to be a config.json") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{where} must be a JSON object, got {type(config).__name__}")
    if _depth(config) > MAX_CONFIG_DEPTH:
        raise ConfigError(
            f"{where} is nested more than {MAX_CONFIG_DEPTH} levels deep; a config.json has 4"
        )
    return config


MAX_CONFIG_DEPTH = 32


def _depth(value: object, level: int = 0) -> int:
    """How deeply objects and arrays nest (stops counting past the limit)."""
    if level > MAX_CONFIG_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _text(item: Input, value: str) -> str:
    return value


def _targets(item: Input, value: str) -> tuple[str, ...]:
    return parse_lora_targets(value)


def _config(item: Input, value: str) -> dict[str, Any]:
    return parse_config_text(value)


def _gguf(item: Input, value: object) -> Mapping[str, Any]:
    """A GGUF header as the page sends it (calc.gguf.summary's object); checked in full when
    the estimate reads it."""
    if not isinstance(value, Mapping):
        raise InputError(
            f"gguf must be a GGUF header object, got {type(value).__name__}", field=item.name
        )
    return value


_PARSERS: dict[Kind, Callable[[Input, Any], Any]] = {
    "text": _text,
    "int": _whole,
    "fraction": _number,
    "switch": _switch,
    "choice": _choice,
    "memory": memory_bytes,
    "split": _split,
    "targets": _targets,
    "config": _config,
    "gguf": _gguf,
}


# -- holding values to the table ------------------------------------------------------------


def check(item: Input, value: object, mode: Mode) -> None:
    """``value`` within the table's bounds for ``item``, or an error that names it."""
    name = item.name
    if item.kind == "int":
        _bounds(item, _whole(item, value), mode)
    elif item.kind == "fraction":
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise InputError(f"{name} must be {_fraction_words(item)}, got {value!r}", field=name)
        low, high = item.minimum, item.maximum
        if (low is not None and (value < low or (item.above_minimum and value == low))) or (
            high is not None and (value > high or (item.below_maximum and value == high))
        ):
            raise InputError(f"{name} must be {_fraction_words(item)}, got {value!r}", field=name)
    elif item.kind == "choice":
        _choice(item, value)
    elif item.kind == "split":
        _check_split(item, value)
    elif item.kind == "memory":
        _check_memory(item, value)


def _check_memory(item: Input, value: object) -> None:
    """A size in bytes within the table's bounds (which are in GiB)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(
            f"{item.name} must be a whole number of bytes, got {value!r}", field=item.name
        )
    low = (item.minimum or 0) * 2**30
    high = None if item.maximum is None else item.maximum * 2**30
    if value < low or (item.above_minimum and value == low) or (high is not None and value > high):
        top = f" and at most {item.maximum:,} GiB" if item.maximum is not None else ""
        least = "more than" if item.above_minimum else "at least"
        raise InputError(
            f"{item.name} must be {least} {item.minimum or 0} GiB{top}, got "
            f"{value / 2**30:,.2f} GiB",
            field=item.name,
        )


def _check_split(item: Input, split: object) -> None:
    """Shares: non-negative numbers, not all zero."""
    if (
        not isinstance(split, tuple)
        or not split
        or any(
            isinstance(x, bool) or not isinstance(x, int | float) or not 0 <= x < 1e12
            for x in split
        )
        or sum(split) <= 0
    ):
        raise InputError(
            f"tensor split must be non-negative numbers below 10^12, not all zero, got {split!r}",
            field=item.name,
        )


def _bounds(item: Input, value: int, mode: Mode) -> None:
    top = item.maximum_for(mode)
    if item.minimum is not None and value < item.minimum:
        raise InputError(
            f"{item.name} must be at least {int(item.minimum):,}, got {value:,}", field=item.name
        )
    if top is not None and value > top:
        raise InputError(
            f"{item.name} must be at most {int(top):,}, got {value:,}", field=item.name
        )


def _fraction_words(item: Input) -> str:
    low = f"above {item.minimum:g}" if item.above_minimum else f"from {item.minimum:g}"
    high = f"below {item.maximum:g}" if item.below_maximum else f"at most {item.maximum:g}"
    return f"a fraction {low} and {high}"


def check_request(mode: Mode, request: object) -> None:
    """Every field of an InferenceRequest or FinetuneRequest that the table bounds."""
    for item in for_mode(mode):
        if item.name in WHERE and mode == "finetune":
            continue
        value = getattr(request, item.field_name, None)
        if value is not None:
            check(item, value, mode)


def check_applies(
    mode: Mode,
    given: Mapping[str, object],
    *,
    engine: str = "",
    method: str | tuple[str, ...] = (),
) -> None:
    """Refuse an input given to an engine or a method that does not use it, unless it is the
    default anyway (an engine or method the table does not know is left for its own check).
    ``method``: the method, and how its weights train when that differs (DPO with LoRA)."""
    methods = (method,) if isinstance(method, str) and method else tuple(method)
    for name, value in given.items():
        item = BY_NAME[name]
        if value == item.default(mode):
            continue
        if engine in ENGINES and item.engines and engine not in item.engines:
            owners = "/".join(ENGINES[e].name for e in item.engines)
            raise InputError(
                f"{name} is a {owners} setting, not {ENGINES[engine].name}'s", field=name
            )
        if mode == "finetune" and methods and item.methods and not set(methods) & set(item.methods):
            raise InputError(
                f"{name} applies to {' and '.join(item.methods)} only, not {methods[0]}",
                field=name,
            )


# -- building requests ----------------------------------------------------------------------


def inference_request(values: Mapping[str, Any]) -> InferenceRequest:
    """An InferenceRequest from typed values by input name; the rest keep their defaults."""
    return InferenceRequest(**{BY_NAME[name].field_name: value for name, value in values.items()})


def finetune_defaults(request: FinetuneRequest, given: Iterable[str]) -> dict[str, Any]:
    """What the estimate took for each fine-tuning input the reader left unset (a trainer's
    defaults, or the table's): the page shows them as the empty fields' placeholders."""
    fields = set(request.__dataclass_fields__)
    return {
        item.name: item.as_text(getattr(request, item.field_name))
        for item in INPUTS
        if "finetune" in item.modes and item.name not in given and item.field_name in fields
    }


def with_trainer_defaults(request: FinetuneRequest, given: set[str]) -> FinetuneRequest:
    """The request with its trainer's defaults for every field the reader left alone and the
    method uses (a profile's LoRA dropout does not reach full fine-tuning)."""
    profile = trainer(request.trainer)
    methods = {request.method, request.trains}
    defaults = profile.defaults(
        request.trainer_version, request.method, request.trains, request.seq_len
    )
    chosen = {}
    for field_name, value in defaults.items():
        item = BY_FIELD[field_name]
        if field_name not in given and (not item.methods or methods & set(item.methods)):
            chosen[field_name] = value
    return replace(request, **chosen)


def finetune_request(values: Mapping[str, Any]) -> tuple[FinetuneRequest, dict[str, Any]]:
    """A FinetuneRequest, and where it runs (``run_finetune``'s model, config, gpu and
    gpu_memory_bytes), from typed values by input name. An input the method does not use is
    refused unless it is the default."""
    setup = {BY_NAME[name].field_name: value for name, value in values.items() if name not in WHERE}
    request = FinetuneRequest(**setup)
    # an input applies to the method or, for preference and RL methods, to how weights train
    check_applies("finetune", values, method=(request.method, request.trains))
    if request.trainer != "none":
        request = with_trainer_defaults(request, set(setup))
    version_tuple(request.bnb_version)  # a version that is not one is said at once
    where = {name: None for name in ("model", "config", "gpu", "gpu_memory_bytes")}
    where.update(
        {BY_NAME[name].field_name: value for name, value in values.items() if name in WHERE}
    )
    return request, where


# -- the table for others -------------------------------------------------------------------


def page_table() -> list[dict[str, Any]]:
    """The table as JSON for the calculator's form."""
    return [
        {
            "name": i.name,
            "kind": i.kind,
            "label": i.label,
            "help": i.help,
            "modes": list(i.modes),
            "group": i.group,
            "unit": i.unit,
            "minimum": i.minimum,
            "maximum": i.maximum,
            "example": i.example,
            "choices": [{"value": v, "label": label} for v, label in i.choices],
            "defaults": {mode: i.default_text(mode) for mode in i.modes},
            "resolved": i.resolved,
            "default_rule": i.default_rule,
            "engines": list(i.engines),
            "methods": list(i.methods),
            "suggest": i.suggest,
        }
        for i in INPUTS
    ]


def measurement_schema() -> dict[str, Any]:
    """JSON Schema properties for the inputs a measurement states; null: not stated."""
    properties: dict[str, Any] = {}
    for item in INPUTS:
        if not item.measured:
            continue
        schema = _kind_schema(item)
        properties[item.name] = {**schema, "description": _describe(item)}
    return properties


def _kind_schema(item: Input) -> dict[str, Any]:
    if item.choices and item.kind != "switch":
        return {"enum": [*item.values, None]}
    if item.kind == "int":
        top = item.finetune_maximum or item.maximum
        return {"type": ["integer", "null"], "minimum": item.minimum, "maximum": top}
    if item.kind in ("fraction", "memory"):
        bounds: dict[str, Any] = {"type": ["number", "null"]}
        bounds["exclusiveMinimum" if item.above_minimum else "minimum"] = item.minimum
        bounds["exclusiveMaximum" if item.below_maximum else "maximum"] = item.maximum
        return bounds
    if item.kind == "switch":
        return {"type": ["boolean", "null"]}
    return {"type": ["string", "null"]}


def _describe(item: Input) -> str:
    applies = ""
    if item.engines:
        applies = " (" + ", ".join(ENGINES[e].name for e in item.engines) + ")"
    if item.methods:
        applies = " (" + ", ".join(item.methods) + ")"
    return item.help + applies
