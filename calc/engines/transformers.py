"""Hugging Face transformers: ``generate()`` on a model placed by layers (accelerate's
``device_map``), a DynamicCache that keeps every token for every layer, and the prefill of the
whole prompt at once."""

from __future__ import annotations

from dataclasses import dataclass

from calc.architecture import Architecture
from calc.engines.base import BF16, FP32, Engine, widest_mlp
from calc.engines.history import Change, History, Release
from calc.placement import Placement
from calc.plan import EngineOptions, Plan

SOURCE = "https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/cache_utils.py"


@dataclass(frozen=True)
class TransformersRelease(Release):
    prompt_logits: bool = False  # before 4.45: fp32 logits for every prompt token


HISTORY = History(
    "transformers",
    TransformersRelease(
        version="4.40.0",
        default_context=4096,
        default_batch=1,
        flash_attention=True,  # SDPA, the default attn_implementation, keeps no score matrix
        prompt_logits=True,
        # before num_logits_to_keep, the prefill computed logits for every prompt token and
        # upcast them: "that line will almost always double the memory footprint of the
        # logits" (https://github.com/huggingface/transformers/issues/30860)
        source="https://github.com/huggingface/transformers/issues/30860",
    ),
    (
        Change(
            "4.45.0",
            "https://github.com/huggingface/transformers/pull/33902",
            {"prompt_logits": False},
        ),
    ),
)


class Transformers(Engine[TransformersRelease, EngineOptions]):
    id = "transformers"
    name = "Hugging Face transformers"
    source = SOURCE
    history = HISTORY
    default_weights = "bf16"
    default_kv = "bf16"
    accepts = ("ieee", "google", "ocp", "gptq", "awq", "bitsandbytes", "ocp-mx", "integer")
    # DynamicCache keeps every token for every layer; sliding layers are not trimmed
    sliding_window_cache = False

    def buffer_bytes(self, plan: Plan, placement: Placement) -> int:
        return prefill_bytes(
            plan.arch,
            context_tokens=self.padded_context(plan) * plan.batch,
            batch=plan.batch,
            flash_attention=plan.flash_attention,
            prompt_logits=self.release_of(plan).prompt_logits,
        )


def prefill_bytes(
    arch: Architecture,
    *,
    context_tokens: int,
    batch: int,
    flash_attention: bool,
    prompt_logits: bool,
) -> int:
    """The prefill of the whole prompt at once (``context_tokens``: context x sequences).

    The MLP's gate/up/product in bf16 dominate; eager attention (flash attention off) also
    holds one layer's scores in bf16 and their fp32 softmax; logits are fp32 for the last
    token (generate() since v4.45) or, before, for every prompt token on top of their bf16
    originals.
    """
    peak = context_tokens * (3 * widest_mlp(arch) + 4 * arch.hidden_size) * BF16
    per_sequence = context_tokens // max(batch, 1)
    if not flash_attention:
        peak += batch * arch.num_attention_heads * per_sequence * per_sequence * (BF16 + FP32)
    logits_rows = context_tokens if prompt_logits else batch
    return peak + logits_rows * arch.vocab_size * (FP32 + (BF16 if prompt_logits else 0))
