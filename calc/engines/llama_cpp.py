"""llama.cpp: GGUF files, layers split over GPUs (``-ngl``, ``--tensor-split``), token
embeddings in CPU RAM, a KV cache padded to 256 cells and a compute graph per GPU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from calc._errors import InputError
from calc.architecture import MLA, Architecture
from calc.engines.base import Constant, Engine, F16Lookup
from calc.engines.history import Change, History, Release
from calc.formats import StorageType
from calc.kv_cache import MlaCache
from calc.placement import Offload, Placement
from calc.plan import Default, Plan

LLAMA_CPP = "https://github.com/ggml-org/llama.cpp/blob"

# common/common.h: `int32_t n_ubatch = 512;` (physical batch of a prompt step).
UBATCH = 512
# llama.cpp pads the KV cache to a multiple of 256 cells (llama-kv-cache: get_padding).
KV_PADDING = 256


@dataclass(frozen=True)
class LlamaCppRelease(Release):
    # How the llama.cpp family caches MLA models (DeepSeek V2/V3/R1): see kv_cache.MlaCache.
    mla_cache: MlaCache = "latent"


HISTORY = History(
    "llama.cpp",
    LlamaCppRelease(
        version="b1000",
        default_context=4096,  # common/common.h: "int32_t n_ctx = 4096;"
        default_batch=1,
        flash_attention=False,
        source="https://github.com/ggml-org/llama.cpp/blob/master/common/common.h",
    ),
    (
        # "llama: use FA + max. GPU layers by default": -fa takes on|off|auto and defaults to
        # auto, which turns flash attention on where the backend supports it (CUDA, Metal,
        # Vulkan for the common head sizes), and -ngl defaults to every layer. First in b6325
        # (its release notes and downstream ports: "-fa now needs a value, -fa on").
        Change(
            "b6325", "https://github.com/ggml-org/llama.cpp/pull/15434", {"flash_attention": True}
        ),
    ),
)

L = TypeVar("L", bound=LlamaCppRelease)


@dataclass(frozen=True)
class LlamaCppOptions(Offload):
    """Placement, and -ub: the tokens of one physical batch of a prompt step."""

    ubatch: int = UBATCH


class LlamaCppFamily(Engine[L, LlamaCppOptions]):
    """What llama.cpp and the engines built on it share."""

    default_weights = "q4_k_m"
    default_kv = "f16"
    accepts = ("gguf", "ieee", "google")
    # src/llama-model.cpp load_tensors: "there is very little benefit to offloading the input
    # layer, so always keep it on the CPU"
    embeddings_on_host = True
    kv_padding = KV_PADDING
    mentions_flash_default = True

    def mla_cache(self, plan: Plan) -> MlaCache:
        return self.release_of(plan).mla_cache

    def swa_extra(self, plan: Plan) -> int:
        """The sliding-window cache holds the window plus one micro-batch
        (llama-kv-cache-iswa)."""
        return self.options_of(plan).ubatch

    def describe(self, release: L) -> dict[str, str]:
        return {**super().describe(release), "mla_cache": release.mla_cache}

    def resolve_options(
        self, plan: Plan, asked: Any
    ) -> tuple[LlamaCppOptions, tuple[Default, ...]]:
        options = LlamaCppOptions(
            gpu_layers=asked.gpu_layers,
            cpu_moe_layers=asked.cpu_moe_layers or 0,
            tensor_split=asked.tensor_split,
            ubatch=asked.ubatch_size or UBATCH,
        )
        defaults = () if asked.ubatch_size else (Default({"ubatch_size": UBATCH}, ""),)
        return options, defaults

    def offload(self, plan: Plan) -> Offload:
        return self.options_of(plan)

    def partial_graph(self, plan: Plan, placement: Placement) -> bool:
        """llama.cpp builds its full graph whenever every layer and the output sit on GPUs."""
        return not placement.offloaded

    def buffer_bytes(self, plan: Plan, placement: Placement) -> int:
        return graph_bytes(
            plan.arch,
            context_tokens=self.padded_context(plan.context) * plan.batch,
            partial=self.partial_graph(plan, placement),
            flash_attention=plan.flash_attention,
            ubatch=self.options_of(plan).ubatch,
        )


class LlamaCpp(LlamaCppFamily[LlamaCppRelease]):
    id = "llama.cpp"
    name = "llama.cpp"
    source = f"{LLAMA_CPP}/a5410f046c01d01330c8a42f13b64a211fedf2c3/src/llama-model.cpp"
    history = HISTORY
    constants = (
        Constant(
            "llama.cpp n_ubatch",
            str(UBATCH),
            "compute buffer, sliding-window cache",
            "https://github.com/ggml-org/llama.cpp/blob/master/common/common.h",
        ),
        Constant(
            "llama.cpp KV cache padding",
            f"{KV_PADDING} cells",
            "KV cache length rounding",
            "https://github.com/ggml-org/llama.cpp/blob/master/src/llama-kv-cache.cpp",
        ),
    )

    def kv_type(
        self, kv_format: StorageType, flash_attention: bool, f16: F16Lookup
    ) -> tuple[StorageType, str | None]:
        """Quantised KV caches need flash attention."""
        if kv_format.block_size > 1 and not flash_attention:
            raise InputError(
                f"llama.cpp needs flash attention for a quantised V cache ({kv_format.name}); "
                "turn flash attention on or use an f16 cache",
                field="kv_cache",
            )
        return kv_format, None


def graph_bytes(
    arch: Architecture,
    *,
    context_tokens: int,
    partial: bool,
    flash_attention: bool,
    ubatch: int = UBATCH,
) -> int:
    """Scratch memory for one forward pass on one GPU: llama.cpp's compute buffer.

    ``context_tokens`` is the whole cache (context x sequences). Ollama's own estimate of
    llama.cpp's compute graph, ``GraphSize`` in llm/ggml.go (v0.5.x; unchanged in
    fs/ggml/ggml.go), with b = min(context, n_ubatch: 512 unless -ub says); ``partial`` selects its
    partial-offload figure. With flash attention the b x context x heads score matrix is never
    built, so the context terms drop out (our adaptation; Ollama's v0.5 formula predates FA).
    """
    b = min(context_tokens, ubatch)
    ctx = 0 if flash_attention else context_tokens
    if arch.mla is not None:
        full, part = mla_graph(arch, arch.mla, b, ctx)
    elif arch.model_type in ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe"):
        full, part = qwen_graph(arch, b, ctx)
    else:
        full, part = llama_graph(arch, b, ctx)
    return part if partial else full


def mla_graph(arch: Architecture, mla: MLA, b: int, ctx: int) -> tuple[int, int]:
    """Ollama's deepseek2 branch. Its GGUF stores MLA expanded, so the KV heads are the
    attention heads and a key is qk_nope + qk_rope wide."""
    h, vocab = arch.hidden_size, arch.vocab_size
    kv_heads, key = arch.num_attention_heads, mla.qk_nope_head_dim + mla.qk_rope_head_dim
    full = max(
        4 * b * (3 * h + vocab),
        4 * b * (3 * h + 2 + ctx * (1 + kv_heads) + 2 * key * kv_heads),
    )
    part = max(
        4 * b * (3 * h + vocab) + h * vocab * 105 // 128,
        4 * b * (2 * h + 1 + 2 * key * kv_heads + ctx + ctx * kv_heads)
        + 4 * key * ctx * kv_heads
        + h * key * kv_heads * 9 // 16,
    )
    return full, part


def qwen_graph(arch: Architecture, b: int, ctx: int) -> tuple[int, int]:
    """Ollama's qwen2 branch (Qwen2, Qwen3 and their MoE models)."""
    h, heads, vocab = arch.hidden_size, arch.num_attention_heads, arch.vocab_size
    full = max(4 * b * (h + vocab), 4 * b * (1 + 2 * h + ctx + ctx * heads))
    part = max(
        4 * b * (h + vocab) + h * vocab * 105 // 128,
        4 * (b * (1 + 2 * h + ctx * (1 + heads)) + h * (1 + ctx)),
    )
    return full, part


def llama_graph(arch: Architecture, b: int, ctx: int) -> tuple[int, int]:
    """Ollama's default branch (Llama and every other architecture)."""
    h, heads, vocab = arch.hidden_size, arch.num_attention_heads, arch.vocab_size
    full = max(4 * b * (1 + 4 * h + ctx * (1 + heads)), 4 * b * (h + vocab))
    head_dim, kv_heads = arch.head_dim, arch.num_kv_heads
    part = 4 * b * h + max(
        4 * b * (1 + h + max(ctx, h))
        + h * h * 9 // 16
        + 4 * ctx * (b * heads + head_dim * kv_heads),
        4 * b * (h + vocab) + h * vocab * 105 // 128,
    )
    return full, part
