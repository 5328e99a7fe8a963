"""llama.cpp: GGUF files, layers split over GPUs (``-ngl``, ``--tensor-split``), token
embeddings in CPU RAM, a KV cache padded to 256 cells and a compute graph per GPU."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from calc._errors import InputError
from calc.architecture import MLA, Architecture
from calc.breakdown import Estimate
from calc.engines.base import FP32, Constant, Engine, F16Lookup
from calc.engines.fit import FitRules, run_fit
from calc.engines.history import MODEL_MAX, Change, History, Release, version_key
from calc.formats import StorageType
from calc.kv_cache import MlaCache
from calc.layout import WeightLayout
from calc.placement import Offload, Placement
from calc.plan import Default, Plan
from calc.records import record, replace

LLAMA_CPP = "https://github.com/ggml-org/llama.cpp/blob"
PULL = "https://github.com/ggml-org/llama.cpp/pull"

# common/common.h: `int32_t n_ubatch = 512;` (physical batch of a prompt step).
UBATCH = 512
# llama.cpp pads the KV cache to a multiple of 256 cells (llama-context: GGML_PAD(n_ctx, 256)).
KV_PADDING = 256
# llama-server's automatic slots: "n_parallel is set to auto, using n_parallel = 4 and
# kv_unified = true" (tools/server, https://github.com/ggml-org/llama.cpp/pull/17997)
SERVER_SLOTS = 4
MXFP4_FILES = ("mxfp4", "mxfp4_moe")
# common/arg.cpp kv_cache_types: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1
KV_TYPES = (
    "fp32", "fp16", "bf16", "ggml_q8_0", "ggml_q4_0", "ggml_q4_1", "ggml_iq4_nl", "ggml_q5_0",
    "ggml_q5_1",
)  # fmt: skip


@record
class LlamaCppRelease(Release):
    # How the llama.cpp family caches MLA models (DeepSeek V2/V3/R1): see kv_cache.MlaCache.
    mla_cache: MlaCache = "latent"
    all_layers: bool = True  # -ngl's default puts every layer on the GPUs (else none)
    kv_step_flash: int = KV_PADDING  # KV cache padding with flash attention
    kv_step_plain: int = KV_PADDING  # and without
    sliding_cache: bool = True  # sliding-window layers get their own, smaller cache (iSWA)
    sequence_streams: bool = True  # with -np N, one KV stream per sequence
    server_slots: int = 1  # slots llama-server opens by default, sharing one unified cache
    explicit_slots: bool = True  # an explicit -np 1 keeps one slot (not the default slots)
    fit: bool = False  # --fit on: settings left alone are fitted to the GPUs' free memory
    fit_context_per_stream: bool = False  # fit's default context is per -np stream
    loads_mxfp4: bool = True  # MXFP4 expert tensors (gpt-oss)


HISTORY = History(
    "llama.cpp",
    LlamaCppRelease(
        version="b1000",
        date="2023-08-08",
        default_context=512,  # common.h (2023): "int32_t n_ctx = 512; // context size"
        default_batch=1,
        flash_attention=False,
        all_layers=False,  # "int32_t n_gpu_layers = 0" outside Metal builds
        kv_step_plain=1,
        sliding_cache=False,
        sequence_streams=False,
        loads_mxfp4=False,
        source="https://github.com/ggml-org/llama.cpp/blob/b1000/common/common.h",
    ),
    (
        # "llama : less KV padding when FA is off": 256 cells with flash attention, else 32
        Change("b2880", f"{PULL}/7257", {"kv_step_plain": 32}, date="2024-05-13"),
        # the context left unset became the model's trained length: "n_ctx will reuse
        # n_ctx_train when --ctx_size not set" (issue 8817, filed 2024-08-02, when b3500 was
        # current; the first build is not known)
        Change(
            "b3500",
            "https://github.com/ggml-org/llama.cpp/issues/8817",
            {"default_context": MODEL_MAX},
            date="2024-08-02",
        ),
        # "By default, the examples will use a context size of 4096, instead of the training
        # context of the model."
        Change("b4020", f"{PULL}/10136", {"default_context": 4096}, date="2024-11-02"),
        # iSWA: sliding-window layers keep n_swa + n_ubatch cells (PRs 13194 and 13833)
        Change("b5500", f"{PULL}/13833", {"sliding_cache": True}, date="2025-05-27"),
        # "llama : add high-throughput mode": one KV stream per sequence unless -kvu
        Change("b5900", f"{PULL}/14363", {"sequence_streams": True}, date="2025-07-16"),
        # gpt-oss and its MXFP4 tensors (first in b6096)
        Change("b6096", f"{PULL}/15091", {"loads_mxfp4": True}, date="2025-08-05"),
        # "llama: use FA + max. GPU layers by default": -fa auto (on where the backend has the
        # kernel) and every layer on the GPUs
        Change(
            "b6325",
            f"{PULL}/15434",
            {"flash_attention": True, "all_layers": True},
            date="2025-08-30",
        ),
        # "memory : remove KV cache size padding"
        Change(
            "b6870",
            f"{PULL}/16812",
            {"kv_step_flash": 1, "kv_step_plain": 1},
            date="2025-10-28",
        ),
        # "kv-cache : pad the cache size to 256 for performance", flash attention or not
        Change(
            "b6960",
            f"{PULL}/17046",
            {"kv_step_flash": KV_PADDING, "kv_step_plain": KV_PADDING},
            date="2025-11-06",
        ),
        # "server : support unified cache across slots": "By default, start the server using
        # 4 slots and unified KV cache" (even with -np 1: issue 17300, on b7079)
        Change(
            "b7079",
            f"{PULL}/16736",
            {"server_slots": SERVER_SLOTS, "explicit_slots": False},
            date="2025-11-16",
        ),
        # --fit on by default (PR 16653; in b7437, issue 18097), with n_ctx 0 = the trained
        # length that fit shrinks to no less than 4096; -np auto (PR 17997): only the default
        # gets 4 unified slots, an explicit -np N gets N streams
        Change(
            "b7437",
            f"{PULL}/16653",
            {"fit": True, "default_context": MODEL_MAX, "explicit_slots": True},
            date="2025-12-16",
        ),
        # v0.3.0: with -np N and no -c, fit gives each stream the trained length
        Change(
            "b10621",
            f"{PULL}/27496",
            {"fit_context_per_stream": True},
            date="2026-08-21",
        ),
    ),
)

# Version tags llama.cpp publishes since August 2026 beside its build numbers: v0.1.2 came with
# nightly b10485 (its release page: "Nightly build: b10485"), v0.3.0 is build 10621 (issue 27872:
# "version: 0.3.0-dev (build 10621, commit c1d0e7a00)"). No default modelled here changed after
# v0.3.0, so a later tag takes b10621's defaults.
VERSION_TAGS = ((3, "b10621"), (1, "b10485"))

L = TypeVar("L", bound=LlamaCppRelease)


@record
class LlamaCppOptions(Offload):
    """Placement, -ub (the tokens of one physical batch of a prompt step), and the slots that
    share the KV cache: ``slots`` sequences in one unified cache, or one stream per sequence."""

    ubatch: int = UBATCH
    slots: int = 1
    unified: bool = True


class LlamaCppFamily(Engine[L, LlamaCppOptions]):
    """What llama.cpp and the engines built on it share."""

    default_weights = "q4_k_m"
    default_kv = "f16"
    accepts: tuple[str, ...] = ("gguf", "ieee", "google")
    # src/llama-model.cpp load_tensors: "there is very little benefit to offloading the input
    # layer, so always keep it on the CPU"
    embeddings_on_host = True
    mentions_flash_default = True
    # clip's activations are f32; the tower comes as its own mmproj file
    vision_value_bytes = FP32

    def mla_cache(self, plan: Plan) -> MlaCache:
        return self.release_of(plan).mla_cache

    def kv_types(self, release: L) -> tuple[str, ...]:
        return KV_TYPES

    def kv_step(self, plan: Plan) -> int:
        release = self.release_of(plan)
        return release.kv_step_flash if plan.flash_attention else release.kv_step_plain

    def keeps_window(self, plan: Plan) -> bool:
        return self.release_of(plan).sliding_cache

    def sliding_cells(self, plan: Plan) -> int | None:
        """llama-kv-cache-iswa: GGML_PAD(min(n_ctx, n_swa * (unified ? n_seq_max : 1) +
        n_ubatch), 256) per stream: one unified cache for the slots, or one per sequence."""
        window = plan.arch.sliding_window
        if not window:
            return None
        options = self.options_of(plan)
        streams = 1 if options.unified else plan.batch
        seqs = max(options.slots, plan.batch) if options.unified else 1
        context = self.padded_context(plan) * plan.batch // streams
        step = KV_PADDING
        per_stream = -(-min(context, window * seqs + options.ubatch) // step) * step
        return min(per_stream, context) * streams

    def serving(self, plan: Plan, estimate: Estimate) -> tuple[int, int] | None:
        """llama-server: the cache holds the context of every stream; its slots (-np, or the
        automatic 4 sharing one unified cache) run at once, each within the shared tokens."""
        options = self.options_of(plan)
        sequences = max(options.slots, plan.batch) if options.unified else plan.batch
        return self.padded_context(plan) * plan.batch, sequences

    def recurrent_cells(self, plan: Plan) -> int:
        """One cell per sequence the context can hold: n_seq_max, which counts llama-server's
        unified slots ("llama_memory_recurrent: size = 77.06 MiB (4 cells, 24 layers, 4 seqs)"
        with -np auto)."""
        options = self.options_of(plan)
        return max(options.slots, plan.batch) if options.unified else plan.batch

    def describe(self, release: L) -> dict[str, str]:
        words = super().describe(release)
        words["mla_cache"] = release.mla_cache
        words["layers"] = "all (fitted)" if release.fit else "all" if release.all_layers else "none"
        words["kv_layout"] = _kv_layout(release)
        words["buffers"] = f"compute buffer {UBATCH} tokens wide per GPU" + (
            "; --fit keeps 1024 MiB free per GPU" if release.fit else ""
        )
        return words

    def release(self, version: str | None) -> L:
        if version is not None and version.lower().startswith("v"):
            version = build_of_tag(self.name, version)
        return super().release(version)

    def resolve_options(
        self, plan: Plan, asked: Any
    ) -> tuple[LlamaCppOptions, tuple[Default, ...]]:
        release = self.release_of(plan)
        if plan.weights.id in MXFP4_FILES and not release.loads_mxfp4:
            raise InputError(
                f"{self.name} {release.version} cannot load MXFP4 weights (from b6096)",
                field="engine_version",
            )
        default_slots = asked.batch is None or (asked.batch == 1 and not release.explicit_slots)
        if release.server_slots > 1 and default_slots:
            slots, unified = release.server_slots, True
        else:
            slots, unified = plan.batch, not release.sequence_streams or plan.batch == 1
        options = LlamaCppOptions(
            # before b6325 -ngl defaulted to 0: nothing on the GPU unless asked
            gpu_layers=asked.gpu_layers if release.all_layers else (asked.gpu_layers or 0),
            cpu_moe_layers=asked.cpu_moe_layers or 0,
            tensor_split=asked.tensor_split,
            ubatch=asked.ubatch_size or UBATCH,
            slots=slots,
            unified=unified,
        )
        defaults = () if asked.ubatch_size else (Default({"ubatch_size": UBATCH}, ""),)
        return options, defaults

    def offload(self, plan: Plan) -> Offload:
        return self.options_of(plan)

    def partial_graph(self, plan: Plan, placement: Placement) -> bool:
        """llama.cpp builds its full graph whenever every layer and the output sit on GPUs,
        routed experts kept in CPU RAM or not (--n-cpu-moe 99 on gpt-oss-20b: a 457 MiB CUDA0
        compute buffer, as without it)."""
        return not placement.offloaded

    def buffer_bytes(self, plan: Plan, placement: Placement) -> int:
        return graph_bytes(
            plan.arch,
            context_tokens=self.padded_context(plan) * plan.batch,
            partial=self.partial_graph(plan, placement),
            flash_attention=plan.flash_attention,
            ubatch=self.options_of(plan).ubatch,
        )

    def fit_applies(self, plan: Plan) -> bool:
        return self.release_of(plan).fit

    def fit(
        self, plan: Plan, asked: Any, layout: Callable[[], WeightLayout]
    ) -> tuple[Plan, tuple[str, ...]]:
        """--fit, as the release runs it, where the GPUs' memory is known."""
        release = self.release_of(plan)
        split = release.fit and not release.fit_context_per_stream
        if split and asked.context is None and asked.batch and asked.batch > 1:
            # n_ctx_train split over the -np streams
            plan = replace(plan, context=max(1, plan.context // asked.batch))
        if not self.fit_applies(plan) or any(d.capacity_bytes is None for d in plan.devices):
            return plan, ()
        return run_fit(self, plan, asked, layout(), FitRules())


def build_of_tag(name: str, tag: str) -> str:
    """The build whose defaults a version tag (v0.3.0) runs with."""
    major, minor = version_key(tag)[:2]
    if major > 0:
        return VERSION_TAGS[0][1]
    for first, build in VERSION_TAGS:
        if minor >= first:
            return build
    raise InputError(
        f"{name} {tag}: version tags start at v0.1.0 (August 2026); for older releases give the "
        "build number llama-server --version prints (e.g. b7437)",
        field="engine_version",
    )


def _kv_layout(release: LlamaCppRelease) -> str:
    parts = []
    if release.server_slots > 1:
        parts.append(f"{release.server_slots} slots share one cache")
    elif release.sequence_streams:
        parts.append("a stream per sequence")
    else:
        parts.append("one cache")
    if release.sliding_cache:
        parts.append("sliding layers: window + n_ubatch")
    step = release.kv_step_flash if release.flash_attention else release.kv_step_plain
    parts.append("no padding" if step == 1 else f"padded to {step}")
    return "; ".join(parts)


class LlamaCpp(LlamaCppFamily[LlamaCppRelease]):
    id = "llama.cpp"
    name = "llama.cpp"
    source = f"{LLAMA_CPP}/a5410f046c01d01330c8a42f13b64a211fedf2c3/src/llama-model.cpp"
    history = HISTORY
    # llama-server loads a vision tower only with --mmproj (or -hf, which fetches one)
    loads_vision = False
    layers_option = "-ngl"
    own_placement = "what llama.cpp's --fit chooses"
    bare_step = True  # llama-bench times decode steps without sampling: the backends' reference
    # gpt-oss ships MXFP4 experts; llama.cpp runs it from its MXFP4_MOE GGUF (support from b6096,
    # https://github.com/ggml-org/llama.cpp/pull/15091).
    weight_files: Mapping[str, tuple[str, str]] = MappingProxyType(
        {
            "mxfp4": (
                "mxfp4_moe",
                "llama.cpp loads MXFP4 checkpoints as MXFP4_MOE GGUF files: the experts stay "
                "MXFP4, the other tensors are Q8_0",
            )
        }
    )
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
            f"{PULL}/17046",
        ),
        Constant(
            "llama.cpp --fit margin",
            "1024 MiB per GPU; context no less than 4096",
            "what --fit leaves free, how far it shrinks the context",
            f"{PULL}/16653",
        ),
        Constant(
            "llama-server slots",
            f"{SERVER_SLOTS}, sharing one unified KV cache (from b7079)",
            "sliding-window cache",
            f"{PULL}/16736",
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
