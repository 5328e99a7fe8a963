"""MLX (mlx-lm) on Apple silicon: the whole model in unified memory, a KV cache that grows with
the conversation in steps of 256 tokens, and the prompt processed 2,048 tokens at a time.

mlx-lm allocates nothing up front: ``context`` is the tokens the conversation reaches (prompt
plus generated), and the memory is what ``mx.get_peak_memory()`` counts ("Peak memory: N GB").
"""

from __future__ import annotations

from types import MappingProxyType

from calc.architecture import Architecture
from calc.checkpoint import Checkpoint
from calc.engines.base import BF16, Engine, widest_mlp
from calc.engines.history import Change, History, Release
from calc.placement import Placement
from calc.plan import EngineOptions, Plan
from calc.records import record
from calc.speed import Backend

MLX_LM = "https://github.com/ml-explore/mlx-lm"
SNAPSHOT = f"{MLX_LM}/blob/d78bf58e217c904ec282ed8da9b947491f78c022/mlx_lm"

# mlx_lm/models/cache.py: "class KVCache(_BaseCache):\n    step = 256": a full step of keys
# and values is allocated whenever the cache runs out (RotatingKVCache the same, up to its window).
KV_STEP = 256
# mlx_lm/generate.py generate_step: "prefill_step_size: int = 2048"; the prompt goes through the
# model in pieces of that many tokens ("n_to_process = min(prefill_step_size, remaining)").
PREFILL_STEP = 2048


@record
class MlxRelease(Release):
    pass


HISTORY = History(
    "mlx",
    MlxRelease(
        version="0.27.0",
        date="2025-08-28",
        # no allocation up front: the estimate is for a conversation of this many tokens
        default_context=4096,
        flash_attention=True,  # mx.fast.scaled_dot_product_attention
        source=f"{MLX_LM}/pull/406",
    ),
    (
        # the newest release (checked: KVCache.step 256 and prefill_step_size 2048 unchanged)
        Change("0.32.0", f"{SNAPSHOT}/_version.py", {}, date="2026-08-22"),
    ),
)


class Mlx(Engine[MlxRelease, EngineOptions]):
    id = "mlx"
    name = "MLX (mlx-lm)"
    source = f"{SNAPSHOT}/models/cache.py"
    history = HISTORY
    default_weights = "mlx_q4"
    default_kv = "bf16"
    accepts = ("mlx", "ieee", "google")
    loads_checkpoints = True  # an mlx-community config.json names its quantisation
    loads_vision = False  # mlx-lm loads the language model (mlx-vlm is another program)
    kv_padding = KV_STEP
    # MLX's own Metal kernels: share of bandwidth, per-layer cost, share of compute, a MoE
    # layer's extra cost and compute share, fitted by scripts/calibrate_speed.py on 23 published
    # mlx_lm.benchmark figures (median |error| of decode 1.3%, of prompts 1.6%)
    backends = MappingProxyType(
        {"metal": Backend("metal", "Metal (MLX)", 0.85, 35e-6, 0.76, "fp16", 60e-6, 0.90)}
    )

    def describe(self, release: MlxRelease) -> dict[str, str]:
        words = super().describe(release)
        words["layers"] = "all (unified memory)"
        words["kv_layout"] = f"grows with the conversation, {KV_STEP} tokens at a time"
        words["buffers"] = f"the prompt in pieces of {PREFILL_STEP:,} tokens"
        words["context"] = f"{words['context']} (prompt plus generated tokens; nothing up front)"
        return words

    def kv_types(self, release: MlxRelease) -> tuple[str, ...]:
        """KVCache keeps keys and values in the model's activation dtype."""
        return ("bf16", "fp16")

    def keeps_window(self, plan: Plan) -> bool:
        """Sliding-window layers use RotatingKVCache(max_size=sliding_window) (gemma3, gpt-oss)."""
        return True

    def uses_checkpoint(self, release: MlxRelease, checkpoint: Checkpoint) -> bool:
        """An mlx-community checkpoint loads as converted; any other (bf16, or FP8 and AWQ,
        which mlx-lm does not run as such) is taken as what people run on a Mac, its 4-bit
        conversion (mlx_lm.convert -q), unless --weights says otherwise."""
        return checkpoint.method.startswith("mlx")

    def flash_default(self, release: MlxRelease, arch: Architecture) -> bool:
        return True

    def buffer_bytes(self, plan: Plan, placement: Placement) -> int:
        return prefill_piece_bytes(plan.arch, tokens=min(plan.context, PREFILL_STEP) * plan.batch)


def prefill_piece_bytes(arch: Architecture, *, tokens: int) -> int:
    """One piece of the prompt through the model (``tokens``: its tokens x sequences): the MLP's
    gate, up and product and the attention's projections in bf16, and one vocabulary-wide bf16
    row per token. The last is what was measured, not read in the code: mlx-lm's published peaks
    (0.28.2 and 0.31.3, BENCHMARKS.md and pull 1569) exceed weights and KV cache by the size of
    the piece's logits (0.62 GB for Qwen3-4B's 151,936 entries at 2,048 tokens), though since
    0.27 (#406) only the last token goes through the output layer."""
    activations = tokens * (3 * widest_mlp(arch) + 4 * arch.hidden_size) * BF16
    return activations + tokens * arch.vocab_size * BF16
