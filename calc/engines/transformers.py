"""Hugging Face transformers: ``generate()`` on a model placed by layers (accelerate's
``device_map``), a DynamicCache that keeps every token for every layer, and the prefill of the
whole prompt at once."""

from __future__ import annotations

from calc.architecture import Architecture, GatedDeltaNet
from calc.checkpoint import Checkpoint
from calc.engines.base import BF16, FP32, Engine, widest_mlp
from calc.engines.history import Change, History, Release
from calc.placement import Placement
from calc.plan import EngineOptions, Plan
from calc.records import record

SOURCE = "https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/cache_utils.py"


PULL = "https://github.com/huggingface/transformers/pull"


@record
class TransformersRelease(Release):
    prompt_logits: bool = False  # before 4.45: fp32 logits for every prompt token
    # sliding-window layers keep only their window (DynamicSlidingWindowLayer, 4.56)
    sliding_cache: bool = False
    # from_pretrained without a dtype: float32 before 5.0, the checkpoint's dtype ("auto") after
    default_weights: str = "fp32"
    # models run with eager attention when not told otherwise (no SDPA for them)
    eager_models: tuple[str, ...] = ()


HISTORY = History(
    "transformers",
    TransformersRelease(
        version="4.40.0",
        date="2024-04-18",
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
        # generate() keeps only the last token's logits; Gemma 2 "eager attention by default"
        Change(
            "4.45.0",
            f"{PULL}/31292",
            {"prompt_logits": False, "eager_models": ("gemma2",)},
            date="2024-09-25",
        ),
        # Gemma 2 back on SDPA with the attention refactor
        Change("4.48.0", f"{PULL}/34282", {"eager_models": ()}, date="2025-01-10"),
        # gpt-oss has no SDPA ("_supports_sdpa = False"): eager unless flash is asked for
        Change("4.55.0", f"{PULL}/39923", {"eager_models": ("gpt_oss",)}, date="2025-08-05"),
        # "New DynamicSlidingWindowLayer & associated Cache": sliding layers keep the window
        Change("4.56.0", f"{PULL}/40039", {"sliding_cache": True}, date="2025-08-29"),
        # "Default auto": from_pretrained loads the checkpoint's dtype, not float32
        Change("5.0.0", f"{PULL}/42805", {"default_weights": "auto"}, date="2026-01-26"),
        # Gemma 2 loses SDPA again: "_supports_sdpa = False  # sdpa does not support softcapping"
        Change(
            "5.21.0",
            "https://github.com/huggingface/transformers/blob/v5.21.0/src/transformers/models/gemma2/modeling_gemma2.py",
            {"eager_models": ("gpt_oss", "gemma2")},
            date="2026-10-26",
        ),
        # the newest release (checked: none of the defaults above changed)
        Change(
            "5.24.0",
            "https://pypi.org/project/transformers/5.24.0/",
            {},
            date="2026-11-21",
        ),
    ),
)


class Transformers(Engine[TransformersRelease, EngineOptions]):
    id = "transformers"
    name = "Hugging Face transformers"
    source = SOURCE
    history = HISTORY
    default_weights = "bf16"
    loads_checkpoints = True
    default_kv = "bf16"
    accepts = ("ieee", "google", "ocp", "gptq", "awq", "bitsandbytes", "ocp-mx", "integer")

    def describe(self, release: TransformersRelease) -> dict[str, str]:
        words = super().describe(release)
        words["layers"] = "all (device_map)"
        words["buffers"] = (
            "prefill of the whole prompt; logits for every prompt token"
            if release.prompt_logits
            else "prefill of the whole prompt; logits for the last token"
        )
        words["kv_layout"] = "DynamicCache: " + (
            "sliding layers keep their window" if release.sliding_cache else "every token"
        )
        eager = ", ".join(release.eager_models)
        words["flash_attention"] = "SDPA" + (f"; eager for {eager}" if eager else "")
        weights = "float32" if release.default_weights == "fp32" else "the checkpoint's dtype"
        words["context"] = f"{words['context']}; weights {weights}"
        return words

    def kv_types(self, release: TransformersRelease) -> tuple[str, ...]:
        """DynamicCache stores keys and values in the model's floating-point dtype."""
        return ("fp32", "fp16", "bf16")

    def keeps_window(self, plan: Plan) -> bool:
        """Before 4.56 DynamicCache kept every token of a sliding layer."""
        return self.release_of(plan).sliding_cache

    def flash_default(self, release: TransformersRelease, arch: Architecture) -> bool:
        return arch.model_type not in release.eager_models

    def recurrent_types(self, plan: Plan) -> tuple[int, int]:
        """The caches keep the conv state in the model's dtype; the gated delta rule returns its
        state in float32 (modeling_qwen3_next.py torch_chunk_gated_delta_rule upcasts), Mamba-2
        keeps it in the model's dtype (HybridMambaAttentionDynamicCache)."""
        float32_state = isinstance(plan.arch.recurrent, GatedDeltaNet)
        return BF16, FP32 if float32_state else BF16

    def uses_checkpoint(self, release: TransformersRelease, checkpoint: Checkpoint) -> bool:
        """A quantised checkpoint loads as stored in every release; a plain one in its own
        dtype from 5.0 (``dtype="auto"``) and in float32 before."""
        return checkpoint.quantized or release.default_weights != "fp32"

    def default_weights_for(self, release: TransformersRelease, arch: Architecture) -> str:
        """float32 unless told (before 5.0); from 5.0 the checkpoint's dtype, which we take as
        bf16, what the catalogue's checkpoints ship in."""
        return "fp32" if release.default_weights == "fp32" else self.default_weights

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
