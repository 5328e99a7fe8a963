"""Engine profiles: the defaults and allocation rules of each inference engine, with sources.

An engine decides more of the memory than the model does: how long a context it allocates by
default, for how many sequences, where the token embeddings live, how large its scratch buffers
are and what each GPU loses to the CUDA context. Every constant here names where it comes from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from calc._errors import InputError
from calc.architecture import Architecture
from calc.units import GIB, MIB

OLLAMA = "https://github.com/ollama/ollama/blob"
LLAMA_CPP = "https://github.com/ggml-org/llama.cpp/blob"

# The CUDA context (driver state and loaded kernels) of one process on one GPU, with lazy module
# loading (the default since CUDA 11.7 / PyTorch 1.13): 287,047,680 bytes measured in
# https://github.com/pytorch/pytorch/pull/86509 ("shows a memory usage of: 287,047,680 bytes");
# "around 400MB" per a PyTorch maintainer in https://github.com/pytorch/pytorch/issues/109888.
# Engines add cuBLAS workspaces and their own allocations on top; we take the measured figure.
CUDA_CONTEXT_BYTES = 287_047_680

# Ollama sets this much aside per GPU for "VRAM consumed by context structures independent of
# model allocations": discover/gpu.go `cudaMinimumMemory = 457 * format.MebiByte`
# (https://github.com/ollama/ollama/blob/05de33f852378ba9c834af25efb6388c0fef90ee/discover/gpu.go).
# It is a reserve in Ollama's fit check, not memory that shows up in nvidia-smi.
OLLAMA_MINIMUM_MEMORY = 457 * MIB

# vLLM's defaults (vllm/engine/arg_utils.py: `block_size: int = 16`,
# `gpu_memory_utilization: float = 0.90`, `max_num_seqs: int = 256`).
VLLM_BLOCK_SIZE = 16
VLLM_GPU_MEMORY_UTILIZATION = 0.90
VLLM_MAX_NUM_SEQS = 256
VLLM_V0_CHUNKED_PREFILL_TOKENS = 2048  # V0's max_num_batched_tokens with chunked prefill
VLLM_V0_CHUNKED_ABOVE = 32768  # V0 enabled chunked prefill above this max_model_len
# V1's scheduler defaults for `vllm serve` (engine/arg_utils.py, the OPENAI_API_SERVER entries):
# max_num_batched_tokens 2048 and max_num_seqs 256; from 0.9 a GPU with at least 70 GiB that is not
# an A100 gets 8192 and 1024 ("For GPUs like H100 and MI300x, use larger default values"; the A100
# is excluded because "Setting large `max_num_batched_tokens` for A100 reduces throughput, see PR
# #17885"). Chunked prefill is always on in V1, so the profiling pass is that many tokens.
VLLM_SERVE_BATCH = (2048, 256)
VLLM_LARGE_GPU_BATCH = (8192, 1024)
VLLM_LARGE_GPU_BYTES = 70 * GIB


def vllm_profile_tokens(rule: str, max_model_len: int) -> int:
    """Tokens in vLLM's profiling forward pass with the default scheduler settings."""
    if rule == "v0":
        if max_model_len > VLLM_V0_CHUNKED_ABOVE:
            return VLLM_V0_CHUNKED_PREFILL_TOKENS
        return max(max_model_len, VLLM_V0_CHUNKED_PREFILL_TOKENS)
    return VLLM_SERVE_BATCH[0]


def vllm_profile_batch(
    release: Release,
    *,
    max_model_len: int,
    gpu_name: str,
    gpu_bytes: int | None,
    max_num_batched_tokens: int | None = None,
    max_num_seqs: int | None = None,
) -> tuple[int, int]:
    """Tokens and sequences in vLLM's profiling run: what was asked, else the defaults.

    V1 sizes its defaults by the first GPU as vLLM sees it (its total memory, its name)."""
    if release.profile_rule == "v0":
        tokens = vllm_profile_tokens("v0", max_model_len)
        seqs = VLLM_MAX_NUM_SEQS
    else:
        large = (
            release.large_gpu_batch
            and gpu_bytes is not None
            and gpu_bytes >= VLLM_LARGE_GPU_BYTES
            and "a100" not in gpu_name.lower()
        )
        tokens, seqs = VLLM_LARGE_GPU_BATCH if large else VLLM_SERVE_BATCH
    tokens = max_num_batched_tokens or tokens
    return tokens, min(max_num_seqs or seqs, tokens)


# "Graph capturing finished in 14 secs, took 0.21 GiB" (Llama-3.2-1B,
# https://github.com/vllm-project/vllm/pull/11349); larger models capture more, this is a floor.
VLLM_CUDA_GRAPH_BYTES = int(0.21 * 1024**3)

# vLLM V0's profiling run samples with top_p=0.99, top_k=vocab-1 "to reflect the accurate
# memory usage" (worker/model_runner.py profile_run), so the sampler takes its sort path over
# max_num_seqs rows of the vocabulary. Live at its peak, in units of one fp32 [seqs x vocab]
# tensor (vllm/model_executor/layers/sampler.py, Sampler.forward and _apply_top_k_top_p): the
# bf16 logits from the LM head (0.5), their fp32 copy (1), the sorted copy (1) and its int64
# indices (2), the top-k and top-p masks (0.25 each), the sorted softmax (1) and its cumulative
# sum (1), and the re-scattered logits (1): 8 units (the scatter since vLLM PR 8619, v0.6.2; before
# it an int64 inverse index and a gather added 2 more). Only the driver worker (TP rank 0) samples.
# V1's dummy sampler run takes the same path (top_p 0.9, top_k vocab-1) on every rank, and its
# apply_top_k_top_p holds the same tensors; we count the same 8 units.
VLLM_SAMPLER_UNITS_X4 = 32  # 8 units, kept in quarters so the sum stays an integer

# A default context of MODEL_MAX means the model's own maximum (max_position_embeddings):
# vLLM's `max_model_len` "will be automatically derived from the model config" when unset
# (vllm/engine/arg_utils.py), so by default it sizes for the longest sequence the model takes.
MODEL_MAX = 0

BF16 = 2  # bytes per activation value
FP32 = 4  # bytes per logit (engines upcast logits before sampling)

# llama.cpp common/common.h: `int32_t n_ubatch = 512;` (physical batch of a prompt step).
LLAMA_CPP_UBATCH = 512
# llama.cpp pads the KV cache to a multiple of 256 cells (llama-kv-cache: get_padding).
LLAMA_CPP_KV_PADDING = 256


@dataclass(frozen=True)
class Engine:
    id: str
    name: str
    defaults_for: str  # the release whose defaults apply
    default_context: int
    default_batch: int
    default_kv: str
    default_weights: str
    # precision families the engine loads; empty means any (the theory engine)
    accepts: tuple[str, ...] = ()
    weights_only: bool = False  # theory: params x bytes and nothing else
    embeddings_on_host: bool = False
    sliding_window_cache: bool = True
    swa_extra_tokens: int = 0
    kv_padding: int = 1
    split: str = "layers"  # "layers" (pipeline split) or "tensor" (tensor parallel)
    source: str = ""


ENGINES: dict[str, Engine] = {
    "theory": Engine(
        id="theory",
        name="theory (parameters x bytes)",
        defaults_for="-",
        default_context=4096,  # unused: the theory counts no KV cache
        default_batch=1,
        default_kv="f16",
        default_weights="fp16",
        weights_only=True,
        source="the seed article's rule: parameters x bytes per parameter",
    ),
    "llama.cpp": Engine(
        id="llama.cpp",
        name="llama.cpp",
        defaults_for="b5000+ (2025)",
        # common/common.h: `int32_t n_ctx = 4096; // context size`
        default_context=4096,
        default_batch=1,
        default_kv="f16",
        default_weights="q4_k_m",
        accepts=("gguf", "ieee", "google"),
        # src/llama-model.cpp load_tensors: "there is very little benefit to offloading the input
        # layer, so always keep it on the CPU"
        embeddings_on_host=True,
        # the sliding-window cache holds the window plus one micro-batch (llama-kv-cache-iswa)
        swa_extra_tokens=LLAMA_CPP_UBATCH,
        kv_padding=LLAMA_CPP_KV_PADDING,
        source=f"{LLAMA_CPP}/a5410f046c01d01330c8a42f13b64a211fedf2c3/src/llama-model.cpp",
    ),
    "ollama": Engine(
        id="ollama",
        name="Ollama",
        defaults_for="0.6.7 to 0.15.4",
        # num_ctx 4096 from v0.6.7 (https://github.com/ollama/ollama/pull/10452); 2048 before.
        default_context=4096,
        # OLLAMA_NUM_PARALLEL defaults to 1 since https://github.com/ollama/ollama/pull/11330
        # (2025-07-08); before that "auto": 4 when it fits, else 1.
        default_batch=1,
        default_kv="f16",
        default_weights="q4_k_m",
        accepts=("gguf", "ieee", "google"),
        embeddings_on_host=True,
        swa_extra_tokens=LLAMA_CPP_UBATCH,
        kv_padding=LLAMA_CPP_KV_PADDING,
        source=f"{OLLAMA}/3241b457904a91c709b4c77075a50917fab43aaa/llm/memory.go",
    ),
    "vllm": Engine(
        id="vllm",
        name="vLLM",
        defaults_for="0.10",
        default_context=MODEL_MAX,
        default_batch=1,
        default_kv="bf16",
        default_weights="bf16",
        accepts=(
            "ieee",
            "google",
            "ocp",
            "gptq",
            "awq",
            "bitsandbytes",
            "ocp-mx",
            "nvidia",
            "gguf",
        ),
        kv_padding=VLLM_BLOCK_SIZE,
        split="tensor",
        source="https://github.com/vllm-project/vllm/blob/99d7eb5d6a512cfcc5a2b104f24ebf2d6cda772b/vllm/engine/arg_utils.py",
    ),
    "transformers": Engine(
        id="transformers",
        name="Hugging Face transformers",
        defaults_for="4.46+",
        default_context=4096,
        default_batch=1,
        default_kv="bf16",
        default_weights="bf16",
        accepts=("ieee", "google", "ocp", "gptq", "awq", "bitsandbytes", "ocp-mx", "integer"),
        # DynamicCache keeps every token for every layer; sliding layers are not trimmed
        sliding_window_cache=False,
        source="https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/cache_utils.py",
    ),
}


def compute_buffer_bytes(
    arch: Architecture,
    engine: Engine,
    *,
    context_tokens: int,
    batch: int,
    partial: bool,
    flash_attention: bool,
    prompt_logits: bool = False,
    tensor_parallel: int = 1,
    profile_tokens: int = VLLM_SERVE_BATCH[0],
    profile_seqs: int = VLLM_MAX_NUM_SEQS,
    profile_rule: str = "v1",
    driver: bool = True,
) -> int:
    """Scratch memory for one forward pass on one GPU (the 'compute buffer' or activation peak).

    ``context_tokens`` is the whole cache (context x sequences); ``batch`` the sequences.

    llama.cpp and Ollama: Ollama's own estimate of llama.cpp's compute graph, ``GraphSize`` in
    llm/ggml.go (v0.5.x; unchanged in fs/ggml/ggml.go), with b = min(context, n_ubatch 512).
    ``partial`` selects its partial-offload figure, which Ollama charges every GPU when there
    are several (llm/memory.go: "multigpu should always use the partial graph size") and when
    layers stay on the CPU. With flash attention the b x context x heads score matrix is never
    built, so the context terms drop out (our adaptation; Ollama's v0.5 formula predates FA).
    """
    if engine.weights_only:
        return 0
    h, heads, vocab = arch.hidden_size, arch.num_attention_heads, arch.vocab_size
    if engine.id in ("llama.cpp", "ollama"):
        b = min(context_tokens, LLAMA_CPP_UBATCH)
        ctx = 0 if flash_attention else context_tokens
        if arch.mla is not None:
            # Ollama's deepseek2 branch. Its GGUF stores MLA expanded, so the KV heads are the
            # attention heads and a key is qk_nope + qk_rope wide.
            kv_heads, key = heads, arch.mla.qk_nope_head_dim + arch.mla.qk_rope_head_dim
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
        elif arch.model_type in ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe"):
            full = max(4 * b * (h + vocab), 4 * b * (1 + 2 * h + ctx + ctx * heads))
            part = max(
                4 * b * (h + vocab) + h * vocab * 105 // 128,
                4 * (b * (1 + 2 * h + ctx * (1 + heads)) + h * (1 + ctx)),
            )
        else:
            full = max(4 * b * (1 + 4 * h + ctx * (1 + heads)), 4 * b * (h + vocab))
            head_dim, kv_heads = arch.head_dim, arch.num_kv_heads
            part = 4 * b * h + max(
                4 * b * (1 + h + max(ctx, h))
                + h * h * 9 // 16
                + 4 * ctx * (b * heads + head_dim * kv_heads),
                4 * b * (h + vocab) + h * vocab * 105 // 128,
            )
        return part if partial else full
    if engine.id == "vllm":
        # The profiling run pushes profile_tokens tokens through one layer at a time: the
        # peak holds the MLP's gate and up projections (2 x intermediate, sharded over the GPUs)
        # and a few hidden-sized buffers in 16-bit. Then the sampler runs over one row of logits
        # per sequence (profile_seqs).
        inner = _widest_mlp(arch) // tensor_parallel
        tokens = profile_tokens
        forward = tokens * (3 * inner + 4 * h) * BF16
        if arch.moe is not None:
            # vLLM's fused MoE kernels hold, per token and routed expert, one buffer of the wider
            # of the gate/up output (2 x the expert's share of the intermediate size) and the
            # down output (the whole hidden size, unsharded), plus the activation between them
            # (fused_marlin_moe: intermediate_cache13 of M x topk x max(2N, K) and
            # intermediate_cache2 of M x topk x N; fused_moe.py's Triton path likewise).
            share = arch.moe.expert_intermediate_size // tensor_parallel
            routed = arch.moe.experts_per_token * (max(2 * share, h) + share)
            shared = 3 * arch.moe.shared_intermediate_size // tensor_parallel
            forward = max(forward, tokens * (routed + shared + 4 * h) * BF16)
        if profile_rule == "v0" and not driver:
            return forward  # V0: "Only perform sampling in the driver worker"
        # The forward pass's scratch is freed before sampling; its output hidden states (tokens x
        # h, 16-bit) stay referenced while the sort-path sampler runs. V1 gathers the logits on
        # every rank and samples there, with the same sort path: its dummy sampler run asks for
        # top_p 0.9 and top_k vocab-1 (v1/worker/gpu_model_runner.py, _dummy_sampler_run).
        sampler = profile_seqs * vocab * FP32 * VLLM_SAMPLER_UNITS_X4 // 4
        return max(forward, sampler + tokens * h * BF16)
    # transformers: the prefill of the whole prompt at once. The MLP's gate/up/product in bf16
    # dominate; eager attention (flash attention off) also holds one layer's scores in bf16 and
    # their fp32 softmax; logits are fp32 for the last token (generate() since v4.45) or, before,
    # for every prompt token on top of their bf16 originals.
    inner = _widest_mlp(arch)
    peak = context_tokens * (3 * inner + 4 * h) * BF16
    per_sequence = context_tokens // max(batch, 1)
    if not flash_attention:
        peak += batch * heads * per_sequence * per_sequence * (BF16 + FP32)
    logits_rows = context_tokens if prompt_logits else batch
    return peak + logits_rows * vocab * (FP32 + (BF16 if prompt_logits else 0))


def _widest_mlp(arch: Architecture) -> int:
    """The largest intermediate width a token passes through in one layer."""
    if arch.moe is None:
        return arch.intermediate_size
    routed = arch.moe.experts_per_token * arch.moe.expert_intermediate_size
    dense = arch.intermediate_size if not all(arch.moe.moe_layers) else 0
    return max(dense, routed + arch.moe.shared_intermediate_size)


@dataclass(frozen=True)
class ExpertPadding:
    """Routed-expert tensors padded for an engine's MoE kernel: each tensor-parallel rank's
    intermediate size rounded up to a multiple of ``intermediate``, the hidden size to
    ``hidden``."""

    intermediate: int
    hidden: int
    ranks: int = 1


# vLLM's MXFP4 MoE with its Marlin backend (model_executor/layers/quantization/mxfp4.py,
# Mxfp4MoEMethod.create_weights): "The moe marlin kernel requires that for each linear n % 256 == 0
# and k % 128 == 0", so each rank's expert intermediate size is rounded up to 128 and the hidden
# size to 256 (gpt-oss: 2880 becomes 2944 and 3072, 9% more expert memory). vLLM picks Marlin
# below Hopper, and on Hopper without triton_kernels or torch 2.8 (get_mxfp4_backend); its Triton
# (Hopper) and FlashInfer (Blackwell) backends pad to 64 and to 256 instead.
VLLM_MXFP4_MARLIN_PADDING = (128, 256)


def expert_padding(engine: Engine, weights_id: str, ranks: int) -> ExpertPadding | None:
    """How ``engine`` pads routed experts stored as ``weights_id`` over ``ranks`` GPUs."""
    if engine.id == "vllm" and weights_id == "mxfp4":
        return ExpertPadding(*VLLM_MXFP4_MARLIN_PADDING, ranks=ranks)
    return None


def runtime_bytes(engine: Engine, *, gpus: int) -> int:
    """Memory per GPU outside the engine's own tensors: CUDA context, graphs, NCCL."""
    if engine.weights_only:
        return 0
    extra = 0
    if engine.id == "vllm":
        extra = VLLM_CUDA_GRAPH_BYTES
    return CUDA_CONTEXT_BYTES + extra


@dataclass(frozen=True)
class Constant:
    """A number the estimator relies on, for the methodology page."""

    name: str
    value: str
    used_for: str
    source: str


CONSTANTS: tuple[Constant, ...] = (
    Constant(
        "CUDA context per GPU",
        f"{CUDA_CONTEXT_BYTES:,} bytes",
        "runtime, every engine but theory",
        "https://github.com/pytorch/pytorch/pull/86509",
    ),
    Constant(
        "Ollama minimum memory per GPU",
        "457 MiB",
        "Ollama's fit check (reserve, not allocated)",
        "https://github.com/ollama/ollama/blob/05de33f852378ba9c834af25efb6388c0fef90ee/discover/gpu.go",
    ),
    Constant(
        "llama.cpp n_ubatch",
        str(LLAMA_CPP_UBATCH),
        "compute buffer, sliding-window cache",
        "https://github.com/ggml-org/llama.cpp/blob/master/common/common.h",
    ),
    Constant(
        "llama.cpp KV cache padding",
        f"{LLAMA_CPP_KV_PADDING} cells",
        "KV cache length rounding",
        "https://github.com/ggml-org/llama.cpp/blob/master/src/llama-kv-cache.cpp",
    ),
    Constant(
        "vLLM block size",
        f"{VLLM_BLOCK_SIZE} tokens",
        "KV cache length rounding",
        ENGINES["vllm"].source,
    ),
    Constant(
        "vLLM gpu_memory_utilization",
        f"{VLLM_GPU_MEMORY_UTILIZATION}",
        "what vLLM reserves (reported, not predicted)",
        ENGINES["vllm"].source,
    ),
    Constant(
        "vLLM max_num_seqs",
        f"{VLLM_MAX_NUM_SEQS}; V1 from 0.9 on a GPU of 70 GiB or more (not an A100): "
        f"{VLLM_LARGE_GPU_BATCH[1]}",
        "sampler logits in the profiling run",
        "https://github.com/vllm-project/vllm/blob/main/vllm/engine/arg_utils.py",
    ),
    Constant(
        "vLLM profiling tokens",
        f"V0: max(max_model_len, 2048), 2048 above 32k; V1: {VLLM_SERVE_BATCH[0]}, "
        f"{VLLM_LARGE_GPU_BATCH[0]} on a GPU of 70 GiB or more (not an A100) from 0.9",
        "activation peak",
        "https://github.com/vllm-project/vllm/blob/main/vllm/engine/arg_utils.py",
    ),
    Constant(
        "vLLM CUDA graphs",
        "0.21 GiB",
        "runtime (vLLM)",
        "https://github.com/vllm-project/vllm/pull/11349",
    ),
    Constant(
        "Ollama default num_ctx",
        "2048 before v0.6.7, 4096 from v0.6.7",
        "default context (Ollama)",
        "https://github.com/ollama/ollama/pull/10452",
    ),
    Constant(
        "Ollama default parallel",
        "auto (4, else 1) before July 2025, then 1",
        "default sequences (Ollama)",
        "https://github.com/ollama/ollama/pull/11330",
    ),
)


@dataclass(frozen=True)
class Release:
    """The defaults of one engine from one release on, until the next entry's release.

    ``context_tiers`` makes the default context depend on the GPU memory, as Ollama does since
    v0.15.5: (minimum GiB of usable GPU memory, context) pairs, highest first.
    ``parallel_tries`` is Ollama's old automatic parallelism: the first count whose estimate
    fits is used.
    """

    version: str
    default_context: int
    default_batch: int
    flash_attention: bool
    source: str
    context_tiers: tuple[tuple[int, int], ...] = ()
    parallel_tries: tuple[int, ...] = ()
    prompt_logits: bool = False  # transformers before 4.45: fp32 logits for every prompt token
    # How the llama.cpp family caches MLA models (DeepSeek V2/V3/R1): "full" per-head K and V
    # as plain attention, "latent_kv" the 576-value latent as K plus a 512-value V,
    # "latent" the latent alone.
    mla_cache: str = "latent"
    # vLLM's profiling batch: "v1" is a fixed max_num_batched_tokens; "v0" is max(max_model_len,
    # 2048), or 2048 when chunked prefill is on (V0 turned it on above a 32k max_model_len).
    profile_rule: str = "v1"
    # vLLM V1 from 0.9: larger scheduler defaults on GPUs of 70 GiB or more (see
    # vllm_profile_batch).
    large_gpu_batch: bool = False


RELEASES: dict[str, tuple[Release, ...]] = {
    "ollama": (
        Release(
            version="0.1.33",
            default_context=2048,
            default_batch=1,
            flash_attention=False,
            # server/sched.go: "var defaultParallel = 4" ... "try larger then smaller, always end
            # with 1"; the 0.5.7 log: "OLLAMA_FLASH_ATTENTION:false ... OLLAMA_NUM_PARALLEL:0"
            parallel_tries=(4, 1),
            # Ollama 0.5.x's estimate for deepseek-r1:671b at 2048 tokens:
            # memory.required.kv="9.5 GiB" (https://github.com/ollama/ollama/issues/8447), the
            # size of per-head K (192) and V (128) over 128 heads and 61 layers.
            mla_cache="full",
            source="https://github.com/ollama/ollama/issues/9246",
        ),
        Release(
            version="0.6.7",
            default_context=4096,  # "config: update default context length to 4096"
            default_batch=1,
            flash_attention=False,
            parallel_tries=(4, 1),
            # llama.cpp's MLA cache (https://github.com/ggml-org/llama.cpp/pull/12801, April
            # 2025) stores the latent as K and a 512-value V; we assume Ollama follows it.
            mla_cache="latent_kv",
            source="https://github.com/ollama/ollama/pull/10452",
        ),
        Release(
            # "Reduce default parallelism to 1", merged 2025-07-08; 0.9.5 was current on
            # 2025-07-02 (ollama issue 11277), so the first release with it is 0.9.6.
            version="0.9.6",
            default_context=4096,
            default_batch=1,
            flash_attention=False,
            mla_cache="latent_kv",
            source="https://github.com/ollama/ollama/pull/11330",
        ),
        Release(
            # "Ollama v0.15.5 (2026-02-03) replaced that fixed default with one picked from
            # available VRAM ... 4096 tokens below 24 GiB, 32768 tokens from 24 to 48 GiB, and
            # 262144 tokens at 48 GiB and above" (https://github.com/open-webui/docs/pull/1393)
            version="0.15.5",
            default_context=4096,
            default_batch=1,
            flash_attention=False,
            # "Support V-less KV cache ... for MLA models such as DeepSeek"
            # (https://github.com/ggml-org/llama.cpp/pull/19067, 2026-01-24)
            mla_cache="latent",
            context_tiers=((48, 262144), (24, 32768), (0, 4096)),
            source="https://github.com/open-webui/docs/pull/1393",
        ),
    ),
    "llama.cpp": (
        Release(
            version="b1000",
            default_context=4096,  # common/common.h: "int32_t n_ctx = 4096;"
            default_batch=1,
            flash_attention=False,
            source="https://github.com/ggml-org/llama.cpp/blob/master/common/common.h",
        ),
    ),
    "vllm": (
        Release(
            version="0.6.0",
            default_context=MODEL_MAX,
            default_batch=1,
            flash_attention=True,  # vLLM's attention backends never materialise the scores
            profile_rule="v0",
            source=ENGINES["vllm"].source,
        ),
        Release(
            # the V1 engine became the default in 0.8.0: 2048 batched tokens and 256 sequences
            # for `vllm serve`
            version="0.8.0",
            default_context=MODEL_MAX,
            default_batch=1,
            flash_attention=True,
            source="https://github.com/vllm-project/vllm/blob/main/vllm/engine/arg_utils.py",
        ),
        Release(
            # 8192 batched tokens and 1024 sequences on GPUs of 70 GiB or more, not A100s
            version="0.9.0",
            default_context=MODEL_MAX,
            default_batch=1,
            flash_attention=True,
            large_gpu_batch=True,
            source="https://github.com/vllm-project/vllm/pull/17885",
        ),
    ),
    "transformers": (
        Release(
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
        Release(
            version="4.45.0",
            default_context=4096,
            default_batch=1,
            flash_attention=True,
            source="https://github.com/huggingface/transformers/pull/33902",
        ),
    ),
    "theory": (
        Release(
            version="0",
            default_context=4096,
            default_batch=1,
            flash_attention=False,
            source=ENGINES["theory"].source,
        ),
    ),
}


def version_key(version: str) -> tuple[int, ...]:
    """'0.5.7' -> (0, 5, 7); llama.cpp's build tags 'b4713' -> (4713,)."""
    parts = re.findall(r"\d+", version)
    if not parts:
        raise InputError(
            f"engine version {version!r} has no number in it; e.g. 0.5.7 or b4713",
            field="engine_version",
        )
    numbers = [int(p) for p in parts[:4]]
    return tuple(numbers + [0] * (4 - len(numbers)))  # "0.6" is "0.6.0"


def release_for(engine: str, version: str | None) -> Release:
    """The release whose defaults hold for ``version`` (the newest one when None)."""
    releases = RELEASES[engine]
    if version is None:
        return releases[-1]
    wanted = version_key(version)
    chosen = [r for r in releases if version_key(r.version) <= wanted]
    if not chosen:
        raise InputError(
            f"{engine} {version} is older than the oldest release modelled ({releases[0].version})",
            field="engine_version",
        )
    return chosen[-1]
