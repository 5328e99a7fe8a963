"""vLLM: tensor parallel over the GPUs, a share of each GPU (``gpu_memory_utilization``) filled
with KV cache blocks after a profiling pass, CUDA graphs, and expert padding for its kernels."""

from __future__ import annotations

from collections.abc import Sequence
from math import ceil
from typing import Any, Literal

from calc.architecture import NONE, SLIDING, Architecture
from calc.breakdown import Device, DeviceEstimate, Estimate
from calc.checkpoint import Checkpoint
from calc.engines.base import BF16, FP32, Constant, Engine, widest_mlp
from calc.engines.history import MODEL_MAX, Change, History, Release
from calc.kv_cache import kv_cache_bytes
from calc.layout import ExpertPadding, WeightLayout
from calc.placement import Placement, kv_heads_share, place_tensor_parallel
from calc.plan import MAX_GPUS, Default, EngineOptions, Plan
from calc.records import record, replace
from calc.units import GIB

ARG_UTILS = (
    "https://github.com/vllm-project/vllm/blob/99d7eb5d6a512cfcc5a2b104f24ebf2d6cda772b/"
    "vllm/engine/arg_utils.py"
)
ARG_UTILS_MAIN = "https://github.com/vllm-project/vllm/blob/main/vllm/engine/arg_utils.py"

# vLLM's defaults (vllm/engine/arg_utils.py: `block_size: int = 16`,
# `gpu_memory_utilization: float = 0.90`, `max_num_seqs: int = 256`).
BLOCK_SIZE = 16
GPU_MEMORY_UTILIZATION = 0.90
MAX_NUM_SEQS = 256
V0_CHUNKED_PREFILL_TOKENS = 2048  # V0's max_num_batched_tokens with chunked prefill
V0_CHUNKED_ABOVE = 32768  # V0 enabled chunked prefill above this max_model_len
# V1's scheduler defaults for `vllm serve` (engine/arg_utils.py, the OPENAI_API_SERVER entries):
# max_num_batched_tokens 2048 and max_num_seqs 256; from 0.9 a GPU with at least 70 GiB that is not
# an A100 gets 8192 and 1024 ("For GPUs like H100 and MI300x, use larger default values"; the A100
# is excluded because "Setting large `max_num_batched_tokens` for A100 reduces throughput, see PR
# #17885"). Chunked prefill is always on in V1, so the profiling pass is that many tokens.
SERVE_BATCH = (2048, 256)
LARGE_GPU_BATCH = (8192, 1024)
LARGE_GPU_BYTES = 70 * GIB

# "Graph capturing finished in 14 secs, took 0.21 GiB" (Llama-3.2-1B,
# https://github.com/vllm-project/vllm/pull/11349); larger models capture more, this is a floor.
CUDA_GRAPH_BYTES = int(0.21 * 1024**3)

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
SAMPLER_UNITS_X4 = 32  # 8 units, kept in quarters so the sum stays an integer

# vLLM's MXFP4 MoE with its Marlin backend (model_executor/layers/quantization/mxfp4.py,
# Mxfp4MoEMethod.create_weights): "The moe marlin kernel requires that for each linear n % 256 == 0
# and k % 128 == 0", so each rank's expert intermediate size is rounded up to 128 and the hidden
# size to 256 (gpt-oss: 2880 becomes 2944 and 3072, 9% more expert memory). vLLM picks Marlin
# below Hopper, and on Hopper without triton_kernels or torch 2.8 (get_mxfp4_backend); its Triton
# (Hopper) and FlashInfer (Blackwell) backends pad to 64 and to 256 instead.
MXFP4_MARLIN_PADDING = (128, 256)

ProfileRule = Literal["v0", "v1"]
PULL = "https://github.com/vllm-project/vllm/pull"
HUGE_GPU_BYTES = 160 * GIB
HUGE_GPU_BATCH = (16384, 1024)


@record
class VllmRelease(Release):
    # The profiling batch: "v1" is a fixed max_num_batched_tokens; "v0" is max(max_model_len,
    # 2048), or 2048 when chunked prefill is on (V0 turned it on above a 32k max_model_len).
    profile_rule: ProfileRule = "v1"
    # From 0.9: larger scheduler defaults on GPUs of 70 GiB or more (see profile_batch); from
    # 0.28 larger still from 160 GiB.
    large_gpu_batch: bool = False
    huge_gpu_batch: bool = False
    memory_utilization: float = GPU_MEMORY_UTILIZATION
    # What the reserve pays for besides weights and the profiling peak: before 0.9.1 the CUDA
    # context and everything not PyTorch's (graphs included, as we count them); from 0.9.1 the
    # budget starts after the CUDA context, and CUDA graphs, captured after the KV cache,
    # come on top until 0.20 takes their estimate out of the reserve.
    runtime_in_budget: bool = True
    graphs_in_budget: bool = False
    # Sliding-window layers in their own KV groups (the hybrid allocator, 0.9.1)
    hybrid_allocator: bool = False
    # "GPU KV cache size" as concurrency x max_model_len (0.24) rather than blocks x 16
    tokens_by_concurrency: bool = False
    # CUDA graphs as the release captures them (their size is not modelled: a fixed 0.21 GiB)
    cuda_graphs: str = "none (V0 captures up to 256 sequences)"
    # --kv-cache-dtype: "auto" (the model's dtype) and fp8 from the start; bfloat16 (0.11) and
    # float16 (0.18) by name
    kv_types: tuple[str, ...] = ("bf16", "fp16", "fp8_e4m3", "fp8_e5m2")


HISTORY = History(
    "vllm",
    VllmRelease(
        version="0.6.0",
        date="2024-09-04",
        default_context=MODEL_MAX,  # max_model_len "will be automatically derived from the model"
        default_batch=1,
        flash_attention=True,  # vLLM's attention backends never materialise the scores
        profile_rule="v0",
        source=ARG_UTILS,
    ),
    (
        # the V1 engine became the default in 0.8.0: 2048 batched tokens and 256 sequences for
        # `vllm serve`
        Change(
            "0.8.0",
            ARG_UTILS_MAIN,
            {"profile_rule": "v1", "cuda_graphs": "piecewise, 67 sizes up to 512"},
            date="2025-03-18",
        ),
        # 8192 batched tokens and 1024 sequences on GPUs of 70 GiB or more, not A100s
        Change("0.9.0", f"{PULL}/17885", {"large_gpu_batch": True}, date="2025-05-28"),
        # MemorySnapshot: requested_memory = total x utilization, counted from a snapshot taken
        # after the CUDA context; the hybrid allocator for sliding-window models (PR 17996)
        Change(
            "0.9.1",
            f"{PULL}/19312",
            {"runtime_in_budget": False, "hybrid_allocator": True},
            date="2025-06-10",
        ),
        # "self.cuda_graph_sizes = [min(self.max_num_seqs * 2, 512)]"
        Change(
            "0.10.0",
            "https://github.com/vllm-project/vllm/blob/v0.10.0/vllm/config.py",
            {"cuda_graphs": "piecewise, up to min(2 x max_num_seqs, 512)"},
            date="2025-07-25",
        ),
        # V1 only ("Remove V0 core"); FULL_AND_PIECEWISE CUDA graphs by default (PR 25444)
        Change(
            "0.11.0",
            f"{PULL}/25444",
            {"cuda_graphs": "full and piecewise, up to min(2 x max_num_seqs, 512)"},
            date="2025-10-04",
        ),
        # "gpu_memory_utilization: float = Field(default=0.92" and the CUDA graph estimate
        # taken out of the KV reserve by default (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1)
        Change(
            "0.20.0",
            f"{PULL}/38284",
            {"memory_utilization": 0.92, "graphs_in_budget": True},
            date="2026-04-27",
        ),
        # kv_cache_utils: "return int(max_concurrency * max_model_len), max_concurrency"
        Change(
            "0.24.0",
            "https://github.com/vllm-project/vllm/blob/v0.24.0/vllm/v1/core/kv_cache_utils.py",
            {"tokens_by_concurrency": True},
            date="2026-06-30",
        ),
        # "if device_memory >= 160 * GiB_bytes:" 16384 batched tokens for `vllm serve` too
        Change(
            "0.28.0",
            "https://github.com/vllm-project/vllm/blob/v0.28.0/vllm/engine/arg_utils.py",
            {
                "huge_gpu_batch": True,
                # "1024 if current_platform.is_device_capability_family(100) else 512"
                "cuda_graphs": "full and piecewise, up to min(2 x max_num_seqs, 512; 1024 "
                "on Blackwell B200/B300)",
            },
            date="2026-08-26",
        ),
        # the newest release (checked: none of the defaults above changed)
        Change(
            "0.33.0",
            "https://github.com/vllm-project/vllm/blob/v0.33.0/vllm/v1/worker/gpu_worker.py",
            {},
            date="2026-11-02",
        ),
    ),
)


@record
class Scheduler(EngineOptions):
    """The share of each GPU vLLM takes, and its profiling run's tokens and sequences."""

    memory_utilization: float = GPU_MEMORY_UTILIZATION
    profile_tokens: int = SERVE_BATCH[0]
    profile_seqs: int = SERVE_BATCH[1]


def splits_heads(arch: Architecture, gpus: int) -> bool:
    """vLLM shards attention heads evenly over the tensor-parallel GPUs (the model files:
    "Total number of attention heads ({n}) must be divisible by tensor parallel size ({tp})"),
    and KV heads evenly or, where there are fewer KV heads than GPUs, replicated whole
    (QKVParallelLinear: "tp_size % total_num_kv_heads == 0")."""
    heads, kv_heads = arch.num_attention_heads, arch.num_kv_heads
    return heads % gpus == 0 and (kv_heads % gpus == 0 or gpus % kv_heads == 0)


def profile_batch(
    release: VllmRelease,
    *,
    max_model_len: int,
    gpu: Device,
    max_num_batched_tokens: int | None = None,
    max_num_seqs: int | None = None,
) -> tuple[int, int]:
    """Tokens and sequences in vLLM's profiling run: what was asked, else the defaults.

    V1 sizes its defaults by the first GPU as vLLM sees it (its total memory, its name)."""
    if release.profile_rule == "v0":
        tokens = max(max_model_len, V0_CHUNKED_PREFILL_TOKENS)
        if max_model_len > V0_CHUNKED_ABOVE:
            tokens = V0_CHUNKED_PREFILL_TOKENS
        seqs = MAX_NUM_SEQS
    else:
        memory = gpu.capacity_bytes or 0
        large = release.large_gpu_batch and memory >= LARGE_GPU_BYTES
        large = large and "a100" not in gpu.name.lower()
        tokens, seqs = LARGE_GPU_BATCH if large else SERVE_BATCH
        if release.huge_gpu_batch and memory >= HUGE_GPU_BYTES:
            tokens, seqs = HUGE_GPU_BATCH
    tokens = max_num_batched_tokens or tokens
    return tokens, min(max_num_seqs or seqs, tokens)


def profile_peak(
    arch: Architecture, *, tokens: int, seqs: int, tensor_parallel: int, samples: bool
) -> int:
    """The activation peak of vLLM's profiling run on one GPU.

    The run pushes ``tokens`` tokens through one layer at a time: the peak holds the MLP's gate
    and up projections (2 x intermediate, sharded over the GPUs) and a few hidden-sized buffers
    in 16-bit. Then, where ``samples``, the sampler runs over one row of logits per sequence.
    """
    h = arch.hidden_size
    inner = widest_mlp(arch) // tensor_parallel
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
    if not samples:
        return forward
    # The forward pass's scratch is freed before sampling; its output hidden states (tokens x
    # h, 16-bit) stay referenced while the sort-path sampler runs.
    sampler = seqs * arch.vocab_size * FP32 * SAMPLER_UNITS_X4 // 4
    return max(forward, sampler + tokens * h * BF16)


class Vllm(Engine[VllmRelease, Scheduler]):
    id = "vllm"
    name = "vLLM"
    source = ARG_UTILS
    history = HISTORY
    default_weights = "bf16"
    loads_checkpoints = True
    default_kv = "bf16"
    accepts = ("ieee", "google", "ocp", "gptq", "awq", "bitsandbytes", "ocp-mx", "nvidia", "gguf")
    kv_padding = BLOCK_SIZE
    constants = (
        Constant("vLLM block size", f"{BLOCK_SIZE} tokens", "KV cache length rounding", ARG_UTILS),
        Constant(
            "vLLM gpu_memory_utilization",
            f"{GPU_MEMORY_UTILIZATION}",
            "what vLLM reserves (reported, not predicted)",
            ARG_UTILS,
        ),
        Constant(
            "vLLM max_num_seqs",
            f"{MAX_NUM_SEQS}; V1 from 0.9 on a GPU of 70 GiB or more (not an A100): "
            f"{LARGE_GPU_BATCH[1]}",
            "sampler logits in the profiling run",
            ARG_UTILS_MAIN,
        ),
        Constant(
            "vLLM profiling tokens",
            f"V0: max(max_model_len, 2048), 2048 above 32k; V1: {SERVE_BATCH[0]}, "
            f"{LARGE_GPU_BATCH[0]} on a GPU of 70 GiB or more (not an A100) from 0.9",
            "activation peak",
            ARG_UTILS_MAIN,
        ),
        Constant(
            "vLLM CUDA graphs",
            "0.21 GiB",
            "runtime (vLLM)",
            "https://github.com/vllm-project/vllm/pull/11349",
        ),
    )

    def describe(self, release: VllmRelease) -> dict[str, str]:
        words = super().describe(release)
        words["layers"] = "all, tensor parallel"
        profile = (
            "max(max_model_len, 2048) tokens, 256 sequences"
            if release.profile_rule == "v0"
            else f"{SERVE_BATCH[0]} tokens, {SERVE_BATCH[1]} sequences"
        )
        if release.large_gpu_batch:
            profile += f"; {LARGE_GPU_BATCH[0]}, {LARGE_GPU_BATCH[1]} from 70 GiB (not A100)"
        if release.huge_gpu_batch:
            profile += f"; {HUGE_GPU_BATCH[0]}, {HUGE_GPU_BATCH[1]} from 160 GiB"
        words["buffers"] = f"profiling pass: {profile}; CUDA graphs: {release.cuda_graphs}"
        share = f"{release.memory_utilization:.0%}"
        words["kv_layout"] = (
            f"blocks of {BLOCK_SIZE} filling {share} of each GPU"
            + (", CUDA graphs inside it" if release.graphs_in_budget else "")
            + ("; sliding layers in groups of their own" if release.hybrid_allocator else "")
        )
        return words

    def recurrent_types(self, plan: Plan) -> tuple[int, int]:
        """Conv state in the model's dtype, SSM state too unless the model asks for float32
        (model_executor/layers/mamba/mamba_utils.py MambaStateDtypeCalculator)."""
        mixer = plan.arch.recurrent
        return BF16, FP32 if mixer is not None and mixer.state_float32 else BF16

    def vision_share(self, plan: Plan) -> float:
        # mm_encoder_tp_mode "weights" (the default): the encoder is sharded like the model
        return 1 / len(plan.devices)

    def recurrent_share(self, plan: Plan) -> float:
        return 1 / len(plan.devices)  # heads split over the tensor-parallel ranks

    def uses_checkpoint(self, release: VllmRelease, checkpoint: Checkpoint) -> bool:
        """``--dtype auto`` loads a float32 checkpoint in 16 bits (vllm/config/model.py,
        _resolve_auto_dtype), every other checkpoint as stored."""
        return checkpoint.format_id != "fp32"

    def kv_types(self, release: VllmRelease) -> tuple[str, ...]:
        return release.kv_types

    def parallel_problem(self, arch: Architecture, gpus: int) -> str | None:
        if splits_heads(arch, gpus):
            return None
        sizes = [n for n in range(1, MAX_GPUS + 1) if splits_heads(arch, n)]
        return (
            f"vLLM splits the {arch.num_attention_heads} attention heads "
            f"({arch.num_kv_heads} KV heads) evenly over tensor-parallel GPUs, and {gpus} does "
            "not divide them; it runs on " + ", ".join(map(str, sizes)) + " GPUs"
        )

    def pipeline_split(
        self, plan: Plan, layout: WeightLayout, below: int
    ) -> tuple[int, int] | None:
        """--pipeline-parallel-size: each stage holds a run of layers (vLLM's partitions put at
        most ceil(layers / stages) on one) and tensor-parallels it; the embeddings go with the
        first stage and the output head with the last, so a stage holds the larger of the two.
        Checked on the fullest stage, against the same share of its GPUs."""
        device = plan.devices[0]
        layers = plan.arch.num_layers
        best: tuple[int, int] | None = None
        for tp in (n for n in range(1, MAX_GPUS + 1) if splits_heads(plan.arch, n)):
            for pp in range(2, min(layers, MAX_GPUS // tp) + 1):
                if tp * pp >= below or (best and tp * pp >= best[0] * best[1]):
                    break
                if self._stage_fits(plan, layout, tp, ceil(layers / pp) / layers, device):
                    best = (tp, pp)
                    break
        return best

    def _stage_fits(
        self, plan: Plan, layout: WeightLayout, tp: int, share: float, device: Device
    ) -> bool:
        split = replace(plan, devices=(device,) * tp)
        c = self.estimate(split, layout).devices[0].components
        blocks = sum(layout.layer_bytes) / tp
        vocab = min(layout.embedding_bytes, layout.output_bytes) / tp
        weights = c.weights - blocks * (1 - share) - vocab
        layers = range(plan.arch.num_layers)
        need_kv = self.kv_of(split)(layers, kv_heads_share(plan.arch, tp))
        release = self.release_of(plan)
        other = c.runtime if release.runtime_in_budget else 0
        budget = (device.capacity_bytes or 0) * self.options_of(plan).memory_utilization
        return weights + need_kv * share + c.activations + other <= budget

    def resolve_options(self, plan: Plan, asked: Any) -> tuple[Scheduler, tuple[Default, ...]]:
        tokens, seqs = profile_batch(
            self.release_of(plan),
            max_model_len=plan.context,
            gpu=plan.devices[0],
            max_num_batched_tokens=asked.max_num_batched_tokens,
            max_num_seqs=asked.max_num_seqs,
        )
        defaults = []
        if asked.gpu_memory_utilization is None:
            utilization = self.release_of(plan).memory_utilization
            defaults.append(Default({"gpu_memory_utilization": utilization}, ""))
        else:
            utilization = float(asked.gpu_memory_utilization)
        if asked.max_num_batched_tokens is None or asked.max_num_seqs is None:
            defaults.append(
                Default(
                    {"max_num_batched_tokens": tokens, "max_num_seqs": seqs},
                    f"max_num_batched_tokens {tokens}, max_num_seqs {seqs}",
                )
            )
        options = Scheduler(
            memory_utilization=utilization, profile_tokens=tokens, profile_seqs=seqs
        )
        return options, tuple(defaults)

    def expert_padding(self, weights_id: str, ranks: int) -> ExpertPadding | None:
        if weights_id == "mxfp4":
            return ExpertPadding(*MXFP4_MARLIN_PADDING, ranks=ranks)
        return None

    def place(self, plan: Plan, layout: WeightLayout) -> Placement:
        return place_tensor_parallel(plan.arch, layout, plan.devices, self.kv_of(plan))

    def activation_bytes(self, plan: Plan, placement: Placement) -> list[int]:
        """V0 samples on the driver worker (TP rank 0) alone ("Only perform sampling in the
        driver worker"); V1 gathers the logits on every rank and samples there, with the same
        sort path: its dummy sampler run asks for top_p 0.9 and top_k vocab-1
        (v1/worker/gpu_model_runner.py, _dummy_sampler_run)."""
        options = self.options_of(plan)
        v0 = self.release_of(plan).profile_rule == "v0"

        def peak(samples: bool) -> int:
            return profile_peak(
                plan.arch,
                tokens=options.profile_tokens,
                seqs=options.profile_seqs,
                tensor_parallel=len(plan.devices),
                samples=samples,
            )

        driver, others = peak(True), peak(not v0)
        return [driver if d.index == 0 else others for d in placement.devices]

    def runtime_bytes(self, plan: Plan, device: Device) -> int:
        return super().runtime_bytes(plan, device) + CUDA_GRAPH_BYTES

    def finish(
        self, plan: Plan, devices: Sequence[DeviceEstimate]
    ) -> tuple[dict[str, Any], list[str]]:
        utilization = self.options_of(plan).memory_utilization
        note = (
            f"vLLM takes {utilization:.0%} of each GPU (gpu_memory_utilization) and fills what "
            "the model leaves with KV cache: the KV cache shown is that reserve, as nvidia-smi "
            "sees it; fits compares it with what the context needs"
        )
        return budget(plan, devices, utilization), [note]

    def serving(self, plan: Plan, estimate: Estimate) -> tuple[int, int] | None:
        """The KV reserve's tokens ("GPU KV cache size") and the requests of the full context
        it serves at once ("Maximum concurrency"), at most max_num_seqs."""
        tokens = estimate.details.get("kv_cache_tokens")
        if tokens is None:
            return None
        options = self.options_of(plan)
        concurrency = int(estimate.details.get("max_concurrency", 0))
        return int(tokens), min(concurrency, options.profile_seqs)

    def estimate(self, plan: Plan, layout: WeightLayout) -> Estimate:
        """The estimate with each GPU's KV cache grown to the reserve vLLM fills."""
        estimate = super().estimate(plan, layout)
        pools = estimate.details.get("kv_cache_capacity_bytes")
        if pools is None:
            return estimate
        devices = tuple(
            replace(
                d,
                components=replace(
                    d.components,
                    kv_cache=max(pool - d.components.recurrent_state, d.components.kv_cache),
                ),
                room=pool - d.components.kv_cache - d.components.recurrent_state,
            )
            for d, pool in zip(estimate.devices, pools, strict=True)
        )
        return replace(estimate, devices=devices)


def budget(plan: Plan, devices: Sequence[DeviceEstimate], utilization: float) -> dict[str, Any]:
    """What vLLM reserves on each GPU, the KV cache that leaves room for, in bytes and tokens,
    and how many sequences of the full context it serves at once."""
    if any(d.device.capacity_bytes is None for d in devices):
        return {"gpu_memory_utilization": utilization}
    release = plan.release
    assert isinstance(release, VllmRelease)
    reserved = [int((d.device.capacity_bytes or 0) * utilization) for d in devices]
    pools = []
    for device, share in zip(devices, reserved, strict=True):
        c = device.components
        other = c.weights + c.activations
        if release.runtime_in_budget:
            other += c.runtime
        elif release.graphs_in_budget:
            other += CUDA_GRAPH_BYTES
        pools.append(share - other)  # negative: vLLM stops, "No available memory"
    details: dict[str, Any] = {
        "gpu_memory_utilization": utilization,
        "reserved_bytes": reserved,
        "kv_cache_capacity_bytes": pools,
    }
    details.update(kv_capacity(plan, max(0, min(pools))))
    return details


def _cache_specs(arch: Architecture, hybrid_allocator: bool) -> list[str]:
    """One entry per cache vLLM keeps: an attention layer's kind, "mamba" for a recurrent
    layer's state (Falcon-H1's layers have both); MLP-only layers keep none."""
    specs = []
    for i, kind in enumerate(arch.layer_kinds):
        if kind != NONE:
            specs.append(kind if hybrid_allocator else "full")
        if arch.is_recurrent(i):
            specs.append("mamba")
    return specs


def _state_page(plan: Plan, share: float) -> int:
    """Bytes of one recurrent layer's state for one request on one GPU (MambaSpec page)."""
    mixer = plan.arch.recurrent
    if mixer is None or not any(plan.arch.recurrent_layers):
        return 0
    conv, state = plan.engine.recurrent_types(plan)
    return ceil((mixer.conv_values * conv + mixer.state_values * state) * share)


def kv_capacity(plan: Plan, pool: int) -> dict[str, Any]:
    """vLLM's "GPU KV cache size: N tokens" and "Maximum concurrency for L tokens per request"
    (v1/core/kv_cache_utils.py): blocks of 16 tokens; with sliding-window layers (the hybrid
    allocator) layers form equal groups, each block holds one group's layers, and a request
    needs its full context in the full-attention groups but only the window plus one step's
    tokens in the sliding ones."""
    arch = plan.arch
    release = plan.release
    assert isinstance(release, VllmRelease)
    share = kv_heads_share(arch, len(plan.devices))
    per_token = [
        ceil(
            kv_cache_bytes(
                arch, context=1, sequences=1, storage=plan.kv_format, layers=[i],
                sliding_window_cache=False, mla_cache="latent",
            ) * share
        )
        for i in range(arch.num_layers)
    ]  # fmt: skip
    specs = _cache_specs(arch, release.hybrid_allocator)
    counts = {kind: specs.count(kind) for kind in set(specs)}
    size = min(counts.values())
    groups = {kind: -(-count // size) for kind, count in counts.items()}
    attention = max(per_token)
    block = BLOCK_SIZE
    mamba = _state_page(plan, share)
    if mamba and attention:
        # "Setting attention block size to N tokens to ensure that attention page size is >=
        # mamba page size" (vllm/model_executor/models/config.py, HybridAttentionMambaModelConfig)
        block = BLOCK_SIZE * -(-mamba // (BLOCK_SIZE * attention))
    page = max(block * attention, mamba) * size
    blocks = pool // page if page else 0
    length = plan.context
    options = plan.options
    assert isinstance(options, Scheduler)
    need = 0
    for kind, n in groups.items():
        window = arch.sliding_window if kind == SLIDING and arch.sliding_window else None
        if kind == "mamba":
            need += n  # one state page per request
        elif window is None:
            need += n * -(-length // block)
        else:
            tokens = min(window - 1 + options.profile_tokens, length)
            need += n * (-(-tokens // block) + 1)
    concurrency = blocks / need if need else 0.0
    if release.tokens_by_concurrency:
        tokens = int(concurrency * length)
    else:
        tokens = blocks // sum(groups.values()) * block
    capacity: dict[str, Any] = {"kv_cache_tokens": tokens, "max_concurrency": round(concurrency, 2)}
    if mamba:
        capacity["attention_block_tokens"] = block
    return capacity
