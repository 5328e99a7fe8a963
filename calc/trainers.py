"""Fine-tuning tools as profiles: the defaults each applies that change memory, by release.

A profile sets the fine-tuning request's fields a reader did not set: gradient checkpointing,
the LoRA rank, targets and dropout, the adapters' dtype, the loss, the optimizer, the precision.
Each release lists what it changed, with the line of the tool's source that says so; a version
takes every change up to it. Fields the reader gives win; the estimate names the profile.

What a profile cannot know is its default and said so: TRL from 0.27.0 loads a model named by a
string in float32 (trl/trainer/utils.py ``dtype = kwargs.get("dtype", "float32")``), which its
profile takes for LoRA and QLoRA; a model object loaded in bf16 (or dtype=bfloat16 in
model_init_kwargs) is --weights-dtype bf16.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from calc._errors import InputError
from calc.engines.history import release_at
from calc.finetune import LOGPROB_OBJECTIVES, LORA_GROUPS, OBJECTIVES
from calc.records import record

QV = ("q_proj", "v_proj")
ALL = LORA_GROUPS["all"]
# torchtune's LoRA configs: q, v and the output projection, and the MLP (not k)
TORCHTUNE_TARGETS = ("q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@record
class TrainerRelease:
    version: str
    date: str
    # request field -> value; "field@X" applies only when X is the method, how the weights
    # train (full, lora, qlora...), "sft" (a method that is not preference or RL training) or
    # "long" (sequences of LONG_SEQUENCE tokens or more)
    changes: Mapping[str, Any]
    source: str


@record
class Trainer:
    id: str
    name: str
    releases: tuple[TrainerRelease, ...]  # oldest first
    note: str = ""

    @property
    def newest(self) -> TrainerRelease:
        return self.releases[-1]

    def release(self, version: str = "") -> TrainerRelease:
        """The newest modelled release at or before ``version`` (the newest: none given)."""
        return release_at(self.releases, version or None, self.name, "trainer_version")

    def defaults(self, version: str, method: str, trains: str, seq_len: int = 0) -> dict[str, Any]:
        """The request fields this release sets, for ``method`` training its weights as
        ``trains`` on sequences of ``seq_len`` tokens ("long": 512 or more)."""
        last = self.release(version)
        kinds = {method, trains, "" if method in OBJECTIVES else "sft"}
        if seq_len >= LONG_SEQUENCE:
            kinds.add("long")
        values: dict[str, Any] = {}
        for release in self.releases:
            for key, value in release.changes.items():
                name, _, only = key.partition("@")
                if not only or only in kinds:
                    values[name] = value
            if release is last:
                break
        return values


# Unsloth offloads checkpoints only from this length: "if max_seq_length < 512:
# unpatch_unsloth_smart_gradient_checkpointing()" (unsloth/models/_utils.py#L374-L381)
LONG_SEQUENCE = 512

# Hugging Face's Trainer (under TRL, LLaMA-Factory, Axolotl, ms-swift) skips FSDP's
# reduce-scatter between micro-batches: transformers trainer.py ``functools.partial(
# self.accelerator.no_sync, model=model) if i != len(batch_samples) - 1 and
# self.accelerator.distributed_type != DistributedType.DEEPSPEED`` (at 000945a9)
HF_TRAINER_LOOP = {"accumulate_unsharded": True}

PEFT_LORA = {"lora_rank": 8, "lora_targets": QV, "lora_dropout": 0.0, "adapter_precision": "fp32"}

TRAINERS: Mapping[str, Trainer] = {
    t.id: t
    for t in (
        Trainer(
            "trl",
            "Hugging Face TRL (with PEFT)",
            (
                TrainerRelease(
                    "0.19.0",
                    "2025-06",
                    # bf16 AMP (PR #3515); PEFT's LoraConfig r=8 on its Llama/Qwen map (q_proj,
                    # v_proj), dropout 0.0, adapters autocast to fp32 (PEFT >= 0.12.0)
                    # QLoRA through PEFT's prepare_model_for_kbit_training (unquantised weights
                    # to fp32) in SFT, DPO, KTO, ORPO (sft_trainer.py#L572-L573,
                    # dpo_trainer.py#L567 at v0.19.0); GRPO called get_peft_model only
                    {
                        "precision": "amp",
                        "grad_checkpointing": False,
                        **PEFT_LORA,
                        "kbit_upcast@qlora": True,
                        "kbit_upcast@grpo": False,
                        # ModelConfig.use_bnb_nested_quant=False, passed as
                        # bnb_4bit_use_double_quant (model_config.py#L169, utils.py#L918)
                        "double_quant@qlora": False,
                        **HF_TRAINER_LOOP,
                        # log-probabilities by selective_log_softmax on the model's logits
                        # (dpo_trainer.py#L1519, kto_trainer.py#L1040, grpo_trainer.py#L872,
                        # orpo_trainer.py#L697, ppo_trainer.py#L560 at v0.19.0)
                        **{f"selective_logprobs@{m}": True for m in LOGPROB_OBJECTIVES},
                        # PPO divides its logits view by the temperature in place
                        # (``logits /= args.temperature + 1e-7``, ppo_trainer.py#L559)
                        "temperature_in_place@ppo": True,
                    },
                    "https://github.com/huggingface/trl/blob/v1.9.0/trl/trainer/base_config.py#L105",
                ),
                TrainerRelease(
                    "0.22.0",
                    "2025-08",
                    # PR #3510, base_config.py#L61-L62; GRPO's PEFT model through
                    # prepare_peft_model, which upcasts (PR #3882, models/utils.py#L539)
                    {"grad_checkpointing": True, "kbit_upcast@grpo": True},
                    "https://github.com/huggingface/trl/commit/a222aeb4622b07af15558c4e3e83dcb7385830df",
                ),
                TrainerRelease(
                    "0.26.0",
                    "2025-11",
                    # PR #4577: adapters of a quantized base in bf16; SFT and GRPO call
                    # get_peft_model only (sft_trainer.py#L703, grpo_trainer.py#L319)
                    {
                        "adapter_precision@qlora": "bf16",
                        "kbit_upcast@sft": False,
                        "kbit_upcast@grpo": False,
                    },
                    "https://github.com/huggingface/trl/blob/v1.9.0/trl/trainer/sft_trainer.py#L1127-L1130",
                ),
                TrainerRelease(
                    "0.27.0",
                    "2026-01",
                    # a model given by name loads in float32 unless model_init_kwargs sets
                    # dtype (PR #4778, trl/trainer/utils.py)
                    {"weights_dtype": "fp32"},
                    "https://github.com/huggingface/trl/blob/v1.9.0/trl/trainer/utils.py#L1144",
                ),
                TrainerRelease(
                    "0.29.0",
                    "2026-02",
                    {"kbit_upcast@dpo": False},  # Refactor DPO (#3906): get_peft_model only
                    "https://github.com/huggingface/trl/blob/v0.29.0/trl/trainer/dpo_trainer.py#L544",
                ),
                TrainerRelease(
                    "1.0.0",
                    "2026-03",
                    # GRPO divides the logits by the temperature in place (PR #5254)
                    {"temperature_in_place@grpo": True},
                    "https://github.com/huggingface/trl/commit/c49f3753ed0526f701a369b581bce77bef1744a7",
                ),
                TrainerRelease(
                    "1.4.0",
                    "2026-05",
                    {"kbit_upcast@kto": False},  # Align KTO with DPO's PEFT handling (#5661)
                    "https://github.com/huggingface/trl/commit/9516563e383ffcaea81291a9e02d65047abc9692",
                ),
                TrainerRelease(
                    "1.7.0",
                    "2026-06",
                    # SFT's loss_type "chunked_nll" by default (PR #5846): lm_head and loss
                    # over checkpointed chunks of 256 tokens
                    {"fused_loss@sft": True},
                    "https://github.com/huggingface/trl/blob/v1.9.0/trl/trainer/sft_config.py#L336",
                ),
                TrainerRelease(
                    "1.9.0",
                    "2026-07",
                    {},  # no change to these defaults since 1.7.0
                    "https://github.com/huggingface/trl/blob/v1.9.0/trl/trainer/base_config.py#L61-L62",
                ),
                TrainerRelease(
                    "1.10.0",
                    "2026-08",
                    # back to ``logits = logits / self.temperature`` (PR #6554, issue #6553)
                    {"temperature_in_place@grpo": False},
                    "https://github.com/huggingface/trl/pull/6554",
                ),
                TrainerRelease(
                    "1.15.0",
                    "2026-10",
                    # every trainer patches the model with a fused LM head
                    # (add_fused_lm_head: log-probabilities over tiles of 4,096 tokens by
                    # 32,768 vocabulary entries, the logits never whole) for SFT, DPO, KTO and
                    # GRPO alike (sft_trainer.py#L1137, dpo_trainer.py#L936,
                    # kto_trainer.py#L943, grpo_trainer.py#L1042 at v1.15.0)
                    {
                        f"{name}@{m}": True
                        for name in ("fused_loss", "fused_tiles")
                        for m in ("sft", "dpo", "kto", "grpo")
                    },
                    "https://github.com/huggingface/trl/blob/v1.15.0/trl/trainer/utils.py#L1503",
                ),
                TrainerRelease(
                    "1.16.0",
                    "2026-10",
                    {},  # no change to these defaults since 1.15.0
                    "https://github.com/huggingface/trl/blob/v1.16.0/trl/trainer/grpo_trainer.py#L1068",
                ),
            ),
            note="from 0.27.0 TRL loads a model named by a string in float32, which the profile "
            "takes; a model passed loaded in bf16 (or dtype=bfloat16 in model_init_kwargs) is "
            "weights_dtype bf16",
        ),
        Trainer(
            "unsloth",
            "Unsloth",
            (
                TrainerRelease(
                    "2026.8.19",
                    "2026-08",
                    # use_gradient_checkpointing="unsloth": each layer's input to pinned CPU
                    # RAM, the layer recomputed; r=16 on all projections, dropout 0, adapters
                    # upcast to fp32; adamw_8bit; the fused cross-entropy in chunks of at most
                    # min(half the free memory, 4 GiB) of fp32 logits (unsloth_zoo
                    # fused_losses/cross_entropy_loss.py#L140-L149 at ce232d6c)
                    {
                        "grad_checkpointing": True,
                        "activation_offloading@long": True,
                        "lora_rank": 16,
                        "lora_targets": ALL,
                        "lora_dropout": 0.0,
                        "adapter_precision": "fp32",
                        # fused for SFT and for GRPO ("Unsloth efficient GRPO": the per-token
                        # log-probabilities from hidden states in chunks,
                        # unsloth/models/rl_replacements.py); DPO, ORPO and KTO go through TRL's
                        # concatenated forward, whose model returns the whole logits
                        "fused_loss@sft": True,
                        "fused_loss@grpo": True,
                        "loss_chunk_gib@sft": 4.0,
                        "loss_chunk_gib@grpo": 4.0,
                        "optimizer": "adamw_8bit",
                        "precision": "amp",
                    },
                    "https://github.com/unslothai/unsloth/blob/015bdef0d94a241bcd94eec7a405b1700632180d/unsloth/models/llama.py#L3061-L3079",
                ),
            ),
            note="Unsloth offloads each layer's input to CPU RAM only from 512-token sequences "
            "and keeps the last layer's on the GPU",
        ),
        Trainer(
            "llama-factory",
            "LLaMA-Factory",
            (
                TrainerRelease(
                    "0.9.5",
                    "2026",
                    # checkpointing on; lora_rank 8 on every linear layer, dropout 0; trainable
                    # parameters upcast to fp32 (full fine-tuning too) unless pure_bf16
                    {
                        "grad_checkpointing": True,
                        "lora_rank": 8,
                        "lora_targets": ALL,
                        "lora_dropout": 0.0,
                        "adapter_precision": "fp32",
                        "precision": "amp",
                        "chunked_loss": False,
                        **HF_TRAINER_LOOP,
                        # DPO (ORPO and SimPO are its pref_loss) and KTO cast the logits to
                        # fp32 before their log-softmax: ``.logits.to(torch.float32)``
                        # (train/dpo/trainer.py#L230, train/kto/trainer.py#L179)
                        "selective_logprobs@dpo": False,
                        "selective_logprobs@orpo": False,
                        "selective_logprobs@kto": False,
                    },
                    "https://github.com/hiyouga/LLaMA-Factory/blob/v0.9.5/src/llamafactory/hparams/finetuning_args.py#L73-L82",
                ),
            ),
        ),
        Trainer(
            "torchtune",
            "torchtune",
            (
                TrainerRelease(
                    "0.6.1",
                    "2025-04",
                    # llama3_1/8B_lora_single_device.yaml: dtype bf16 (no AMP), adapters bf16,
                    # CEWithChunkedOutputLoss, activation checkpointing on; the full recipe's
                    # PagedAdamW8bit stepped in the backward pass
                    {
                        "precision": "bf16",
                        "adapter_precision": "bf16",
                        "grad_checkpointing": True,
                        "chunked_loss": True,
                        "lora_rank": 8,
                        "lora_targets": TORCHTUNE_TARGETS,
                        "lora_dropout": 0.0,
                        "optimizer@full": "paged_adamw_8bit",
                        "optimizer_in_backward@full": True,
                        # the distributed recipes shard with FSDP2's fully_shard
                        # (recipes/full_finetune_distributed.py, lora_finetune_distributed.py)
                        "sharding": "fsdp",
                        # DPO's log-probabilities from fp32 logits (``self.output(h).float()``,
                        # torchtune/modules/transformer.py#L659) through a whole log-softmax
                        # (rlhf/sequence_processing.py get_batch_log_probs)
                        "selective_logprobs@dpo": False,
                    },
                    "https://github.com/pytorch/torchtune/blob/v0.6.1/recipes/configs/llama3_1/8B_lora_single_device.yaml#L24-L93",
                ),
            ),
        ),
        Trainer(
            "axolotl",
            "Axolotl",
            (
                TrainerRelease(
                    "0.18.0",
                    "2026",
                    # gradient_checkpointing False, bf16 "auto" (AMP), lora_dropout 0.0,
                    # adapters fp32 (PEFT's autocast); no rank or target default
                    {
                        "grad_checkpointing": False,
                        "precision": "amp",
                        "lora_dropout": 0.0,
                        "adapter_precision": "fp32",
                        "chunked_loss": False,
                        **HF_TRAINER_LOOP,
                    },
                    "https://github.com/axolotl-ai-cloud/axolotl/blob/v0.18.0/src/axolotl/utils/schemas/config.py#L600-L601",
                ),
            ),
            note="Axolotl has no LoRA rank or target default: the YAML sets them",
        ),
        Trainer(
            "ms-swift",
            "ms-swift",
            (
                TrainerRelease(
                    "3.0.0",
                    "2024-12",
                    # gradient_checkpointing True; lora_rank 8, all-linear, dropout 0.05,
                    # adapters fp32 (lora_dtype None); bf16 AMP for a bf16 checkpoint
                    {
                        "grad_checkpointing": True,
                        "lora_rank": 8,
                        "lora_targets": ALL,
                        "lora_dropout": 0.05,
                        "adapter_precision": "fp32",
                        "precision": "amp",
                        "chunked_loss": False,
                        **HF_TRAINER_LOOP,
                        # DPO gathered from the log-softmax of the whole logits until 3.5.0
                        "selective_logprobs@dpo": False,
                    },
                    "https://github.com/modelscope/ms-swift/blob/v3.0.0/swift/llm/argument/tuner_args.py#L110-L120",
                ),
                TrainerRelease(
                    "3.5.0",
                    "2025-06",
                    # DPO's log-probabilities by TRL's selective_log_softmax (PR #4232)
                    {"selective_logprobs@dpo": True},
                    "https://github.com/modelscope/ms-swift/commit/c60ceecfefacf6aa0581fb9f8e4629eacc62eac7",
                ),
                TrainerRelease(
                    "4.5.2",
                    "2026",
                    {},  # the same defaults; the arguments moved to swift/arguments/ in 4.x
                    "https://github.com/modelscope/ms-swift/blob/v4.5.2/swift/trainers/arguments.py#L134",
                ),
            ),
        ),
        Trainer(
            "litgpt",
            "LitGPT",
            (
                TrainerRelease(
                    "0.5.13",
                    "2026",
                    # config_hub YAMLs: bf16-true (adapters bf16), q and v only in the fused
                    # qkv, r 32, dropout 0.05; no checkpointing on one GPU; QLoRA's 32-bit
                    # paged AdamW
                    {
                        "precision": "bf16",
                        # chunked_cross_entropy on the 16-bit logits, no upcast
                        # (litgpt/utils.py, F.cross_entropy per 128-token chunk)
                        "loss_upcast": False,
                        "adapter_precision": "bf16",
                        "grad_checkpointing": False,
                        "lora_rank": 32,
                        "lora_targets": QV,
                        "lora_dropout": 0.05,
                        "fused_qkv": True,
                        "optimizer@qlora": "paged_adamw_32bit",
                        # several devices: ModelParallelStrategy whose parallelize_fn calls
                        # FSDP2 fully_shard per block (litgpt/finetune/lora.py)
                        "sharding": "fsdp",
                        # --quantize bnb.nf4 (the config_hub QLoRA YAMLs): Lightning's
                        # BitsandbytesPrecision replaces every nn.Linear, lm_head included, with
                        # an NF4 layer without double quantisation, quantised from fp16
                        # (lightning/fabric/plugins/precision/bitsandbytes.py: _NF4Linear
                        # compress_statistics=False; ``.to(device=device, dtype=torch.half)``);
                        # fit() keeps ``logits`` until the next forward returns
                        "double_quant": False,
                        "quantize_output": True,
                        "fp16_quant_state": True,
                        "keeps_graph": True,
                        # every micro-batch but the last inside fabric.no_backward_sync: under
                        # FSDP the gradients stay unsharded (litgpt/finetune/lora.py#L354)
                        "accumulate_unsharded": True,
                        # torch.optim.AdamW built without fused=: PyTorch's foreach step
                        # (instantiate_torch_optimizer, litgpt/utils.py#L636-L653)
                        "foreach_step": True,
                    },
                    "https://github.com/Lightning-AI/litgpt/blob/v0.5.13/config_hub/finetune/llama-3.1-8b/lora.yaml#L8",
                ),
            ),
        ),
    )
}


def trainer(name: str) -> Trainer:
    if name not in TRAINERS:
        raise InputError(
            f"unknown trainer {name!r}; expected one of {', '.join(TRAINERS)}", field="trainer"
        )
    return TRAINERS[name]


def trainer_note(name: str, version: str) -> str:
    """The note an estimate carries: which profile and release set the defaults."""
    profile = trainer(name)
    release = profile.release(version)
    which = version or f"{profile.newest.version} (the newest modelled)"
    note = f"{profile.name} {which} defaults (as from release {release.version})"
    return f"{note}; {profile.note}" if profile.note else note
