"""Ollama: llama.cpp underneath, with its own defaults (context by release and GPU memory,
automatic parallel slots before July 2025), its own engine for some models from 0.6 to 0.24, its
own estimate, which it uses to decide, and from 0.30 llama-server with --fit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from calc.architecture import Architecture
from calc.breakdown import Device
from calc.engines.base import Constant, F16Lookup
from calc.engines.fit import FitRules, run_fit
from calc.engines.history import Change, History
from calc.engines.llama_cpp import UBATCH, LlamaCppFamily, LlamaCppRelease
from calc.formats import StorageType
from calc.layout import WeightLayout
from calc.placement import Placement
from calc.plan import Plan
from calc.records import record, replace
from calc.units import GIB, MIB

OLLAMA = "https://github.com/ollama/ollama/blob"
PULL = "https://github.com/ollama/ollama/pull"
COMMIT = "https://github.com/ollama/ollama/commit"

# Ollama sets this much aside per GPU for "VRAM consumed by context structures independent of
# model allocations": discover/gpu.go `cudaMinimumMemory = 457 * format.MebiByte`
# (https://github.com/ollama/ollama/blob/05de33f852378ba9c834af25efb6388c0fef90ee/discover/gpu.go),
# ml/device.go MinimumMemory() from 0.11.5 (512 MiB on Metal). It is a reserve in Ollama's fit
# check, not memory that shows up in nvidia-smi.
MINIMUM_MEMORY = 457 * MIB

# Ollama's architecture names for Hugging Face model types.
ARCH_NAMES = {
    "gpt_oss": "gptoss",
    "qwen3": "qwen3",
    "qwen3_moe": "qwen3moe",
    "gemma3": "gemma3",
    "gemma3_text": "gemma3",
    "gemma3n": "gemma3n",
    "mistral3": "mistral3",
    "llama4": "llama4",
    "deepseek_v2": "deepseek2",
    "deepseek_v3": "deepseek2",
    "qwen2_5_vl": "qwen25vl",
}


@record
class OllamaRelease(LlamaCppRelease):
    """``context_tiers`` makes the default context depend on the GPU memory (v0.15.5 on):
    (minimum GiB of GPU memory, context) pairs, highest first. ``parallel_tries`` is Ollama's
    old automatic parallelism: the first count whose estimate fits is used.
    ``engine_models`` run on Ollama's own engine (0.6 to 0.24), which flash attention only where
    ``flash_models`` names them; ``swa_memory`` is what its sliding-window cache keeps per
    sequence where it keeps more than the window. From 0.30 Ollama runs llama-server."""

    context_tiers: tuple[tuple[int, int], ...] = ()
    parallel_tries: tuple[int, ...] = ()
    caps_context: bool = False  # a context above the trained length is cut to it
    min_context: tuple[tuple[str, int], ...] = ()  # (arch, at least this many tokens)
    engine_models: tuple[str, ...] = ()
    flash_models: tuple[str, ...] = ()
    swa_memory: tuple[tuple[str, int], ...] = ()
    # a sliding cache that would hold the whole context becomes the full cache (kvcache/causal.go
    # at v0.15.5: "if int(c.swaMemorySize) >= capacity"); 0.12.3 still sized gpt-oss's sliding
    # layers at 4096 + 512 cells for a 4096-token context (ollama issue 12470)
    swa_capped: bool = False
    fits_layers: bool = True  # its scheduler puts as many layers on the GPUs as fit
    llama_server: bool = False  # 0.30: llama-server with --fit, -np, -b/-ub by context


ENGINE_ARCHS_0_9 = ("gemma3", "gemma3n", "mistral3", "llama4", "mllama", "qwen25vl")

HISTORY = History(
    "ollama",
    OllamaRelease(
        version="0.1.33",
        date="2024-04-28",
        default_context=2048,  # api/types.go: "NumCtx: 2048,"
        default_batch=1,
        flash_attention=False,
        all_layers=True,
        sliding_cache=False,
        sequence_streams=False,
        loads_mxfp4=False,
        # Ollama 0.5.x's estimate for deepseek-r1:671b at 2048 tokens:
        # memory.required.kv="9.5 GiB" (https://github.com/ollama/ollama/issues/8447), the
        # size of per-head K (192) and V (128) over 128 heads and 61 layers.
        mla_cache="full",
        source=f"{OLLAMA}/v0.1.33/server/sched.go",
    ),
    (
        # server/sched.go: "var defaultParallel = 4" ... "try larger then smaller, always end
        # with 1"; the 0.5.7 log: "OLLAMA_FLASH_ATTENTION:false ... OLLAMA_NUM_PARALLEL:0"
        Change(
            "0.2.0",
            "https://github.com/ollama/ollama/issues/9246",
            {"parallel_tries": (4, 1), "kv_step_plain": 32},
            date="2024-07-07",
        ),
        Change(
            "0.6.7",
            f"{PULL}/10452",
            {
                "default_context": 4096,  # "config: update default context length to 4096"
                # "the old 4x2k limit and the new 2x4k limit are memory equivalent" (fe5b9bb21)
                "parallel_tries": (2, 1),
                # llama.cpp's MLA cache (https://github.com/ggml-org/llama.cpp/pull/12801, April
                # 2025) stores the latent as K and a 512-value V; we assume Ollama follows it.
                "mla_cache": "latent_kv",
                "sliding_cache": True,
                "engine_models": (*ENGINE_ARCHS_0_9[:4],),
            },
            date="2025-04-30",
        ),
        # llm/server.go: "if opts.NumCtx/numParallel > int(trainCtx) && trainCtx > 0 {"
        Change("0.9.3", f"{PULL}/11175", {"caps_context": True}, date="2025-06-26"),
        # "Reduce default parallelism to 1": OLLAMA_NUM_PARALLEL defaults to 1
        Change("0.10.0", f"{PULL}/11330", {"parallel_tries": ()}, date="2025-07-30"),
        # gpt-oss on Ollama's engine: at least 8192 tokens (on 20 GiB or more from 0.11.4), and
        # its sliding layers keep 4096 tokens per sequence ("kvcache: Enable SWA to retain
        # additional entries")
        Change(
            "0.11.0",
            f"{PULL}/11672",
            {
                "loads_mxfp4": True,
                "engine_models": (*ENGINE_ARCHS_0_9, "gptoss"),
                "min_context": (("gptoss", 8192),),
                "swa_memory": (("gptoss", 4096),),
            },
            date="2025-08-05",
        ),
        # FlashAttention() list: gpt-oss first
        Change("0.11.8", f"{PULL}/11996", {"flash_models": ("gptoss",)}, date="2025-08-28"),
        Change(
            "0.12.4",
            f"{PULL}/12482",
            {
                "engine_models": (*ENGINE_ARCHS_0_9, "gptoss", "qwen3", "qwen3moe"),
                "flash_models": ("gptoss", "qwen3", "qwen3moe"),
            },
            date="2025-10-09",
        ),
        Change(
            "0.12.6",
            f"{PULL}/12639",
            {"flash_models": ("gemma3", "gptoss", "qwen3", "qwen3moe")},
            date="2025-10-16",
        ),
        # "ggml: Always set cache padding to 256"; mistral3 joins the flash-attention list
        Change(
            "0.13.2",
            f"{COMMIT}/7837a5bc7",
            {
                "kv_step_plain": 256,
                "engine_models": (*ENGINE_ARCHS_0_9, "gptoss", "qwen3", "qwen3moe", "deepseek2"),
                "flash_models": ("gemma3", "gptoss", "qwen3", "qwen3moe", "mistral3"),
            },
            date="2025-12-07",
        ),
        # the llama.cpp engine's flash attention becomes "auto" (on where the GPU has it)
        Change("0.13.4", f"{PULL}/13052", {"flash_attention": True}, date="2025-12-15"),
        Change(
            # the default context from the GPUs' total memory: 262144 from 47 GiB, 32768 from
            # 23 GiB, else 4096 (server/routes.go: "Use slightly lower thresholds (47/23 GiB vs.
            # 48/24 GiB)"); the gpt-oss minimum goes
            "0.15.5",
            f"{PULL}/13946",
            {
                "context_tiers": ((47, 262144), (23, 32768), (0, 4096)),
                "min_context": (),
                "swa_capped": True,
                # "Support V-less KV cache ... for MLA models such as DeepSeek"
                # (https://github.com/ggml-org/llama.cpp/pull/19067, 2026-01-24)
                "mla_cache": "latent",
            },
            date="2026-02-05",
        ),
        # Ollama's engine and runner removed: every GGUF runs in llama-server (b9452) with -c
        # num_ctx x parallel, -np, --flash-attn auto and -b/-ub by context; llama.cpp's --fit
        # places the layers (margin 1024 MiB), never the context, which Ollama always passes
        Change(
            "0.30.0",
            f"{PULL}/16031",
            {
                "llama_server": True,
                "engine_models": (),
                "flash_models": (),
                "swa_memory": (),
                "server_slots": 1,
                "sequence_streams": True,
            },
            date="2026-06-01",
        ),
        # the newest final release in the sources (checked: the tiers, parallel 1, -np/-c and
        # --fit unchanged; PR 14743's smaller tiers were closed unmerged)
        Change(
            "0.32.15",
            f"{OLLAMA}/v0.32.15/server/routes.go",
            {},
            date="2026-08-19",
        ),
    ),
)

# 0.30's -b/-ub by context (server/sched.go generationBatchForContext): "> 32768 -> 2048;
# > 4096 -> 1024; else 512", each only if the model's prediction stays under 60% (2048) or
# 75% (1024) of the GPUs' memory and, with 2 GiB or 768 MiB more, under 80%.
OLLAMA_KV_TYPES = ("fp16", "ggml_q8_0", "ggml_q4_0")
UBATCH_STEPS = ((32768, 2048, 0.60, 2048 * MIB), (4096, 1024, 0.75, 768 * MIB))


class Ollama(LlamaCppFamily[OllamaRelease]):
    id = "ollama"
    name = "Ollama"
    source = f"{OLLAMA}/3241b457904a91c709b4c77075a50917fab43aaa/llm/memory.go"
    history = HISTORY
    layers_option = "num_gpu"  # the Modelfile / API option
    own_placement = "what Ollama's scheduler chooses"
    # Ollama's runner samples each token in Go and streams it: 0.8 ms per token on top of the
    # llama-bench step, fitted on 20 published eval rates (scripts/calibrate_speed.py).
    token_seconds = 0.8e-3
    # Ollama's own gpt-oss files keep OpenAI's MXFP4 experts and BF16 for the rest (0.11.0,
    # https://github.com/ollama/ollama/pull/11672).
    accepts: tuple[str, ...] = (*LlamaCppFamily.accepts, "ocp-mx")
    constants = (
        Constant(
            "Ollama minimum memory per GPU",
            "457 MiB",
            "Ollama's fit check before 0.30 (reserve, not allocated)",
            f"{OLLAMA}/05de33f852378ba9c834af25efb6388c0fef90ee/discover/gpu.go",
        ),
        Constant(
            "Ollama default num_ctx",
            "2048 before v0.6.7, 4096 from v0.6.7; from v0.15.5 by total GPU memory: 4096, "
            "32768 from 23 GiB, 262144 from 47 GiB; never above the trained length (v0.9.3)",
            "default context (Ollama)",
            f"{PULL}/13946",
        ),
        Constant(
            "Ollama default parallel",
            "1 before 0.2.0; auto (4, else 1) from 0.2.0; (2, else 1) from 0.6.7; 1 from 0.10.0",
            "default sequences (Ollama)",
            f"{PULL}/11330",
        ),
    )

    def arch_name(self, arch: Architecture) -> str:
        return ARCH_NAMES.get(arch.model_type, arch.model_type)

    def default_context(
        self, release: OllamaRelease, arch: Architecture, devices: Sequence[Device]
    ) -> int:
        """From v0.15.5 by the GPUs' memory together, when it is known; at least a model's
        minimum (gpt-oss 8192, 0.11); never above the trained length (0.9.3)."""
        context = release.default_context
        capacities = [d.capacity_bytes for d in devices]
        if release.context_tiers and not any(c is None for c in capacities):
            total_gib = sum(c or 0 for c in capacities) / GIB
            context = next((c for gib, c in release.context_tiers if total_gib >= gib), context)
        context = max(context, dict(release.min_context).get(self.arch_name(arch), 0))
        return self.capped(release, arch, context)

    def capped(self, release: OllamaRelease, arch: Architecture, context: int) -> int:
        trained = arch.max_position_embeddings
        if release.caps_context and trained and context > trained:
            return trained
        return context

    def kv_types(self, release: OllamaRelease) -> tuple[str, ...]:
        """OLLAMA_KV_CACHE_TYPE: f16, q8_0 or q4_0 (SupportsKVCacheType); from 0.30 passed to
        llama-server as it is."""
        return super().kv_types(release) if release.llama_server else OLLAMA_KV_TYPES

    def flash_default(self, release: OllamaRelease, arch: Architecture) -> bool:
        """Ollama's own engine turns flash attention on only for the models it lists."""
        name = self.arch_name(arch)
        if name in release.engine_models:
            return name in release.flash_models
        return release.flash_attention

    def sliding_cells(self, plan: Plan) -> int | None:
        """Ollama's engine (kvcache/causal.go): sequences x memory + the batch, padded, where
        memory is the window (one more with several sequences) or what the model asks for
        (gpt-oss keeps 4096); models on llama.cpp get llama.cpp's cache."""
        release = self.release_of(plan)
        name = self.arch_name(plan.arch)
        window = plan.arch.sliding_window
        if not window or name not in release.engine_models:
            return super().sliding_cells(plan)
        memory = dict(release.swa_memory).get(name, window)
        if plan.batch > 1:
            memory = max(memory, window + 1)
        if release.swa_capped and memory >= self.padded_context(plan):
            return None
        step = self.kv_step(plan)
        cells = plan.batch * memory + self.options_of(plan).ubatch
        return -(-cells // step) * step

    def describe(self, release: OllamaRelease) -> dict[str, str]:
        words = super().describe(release)
        if release.context_tiers:
            lowest = release.context_tiers[-1][1]
            above = [(gib, c) for gib, c in release.context_tiers if gib > 0]
            words["context"] = ", ".join(
                [f"{c:,} from {gib} GiB" for gib, c in above]
                + [f"{lowest:,} below {above[-1][0]} GiB"]
            )
        if release.caps_context:
            words["context"] += ", at most the trained length"
        if release.parallel_tries:
            words["sequences"] = " if it fits, else ".join(str(n) for n in release.parallel_tries)
        if release.flash_models and not release.flash_attention:
            words["flash_attention"] = "off; on for " + ", ".join(release.flash_models)
        elif release.engine_models and release.flash_attention:
            words["flash_attention"] = "auto; on its own engine only for " + ", ".join(
                release.flash_models
            )
        words["layers"] = (
            "fitted by llama-server's --fit" if release.llama_server else "as many as fit"
        )
        if release.llama_server:
            words["buffers"] = (
                "batch 512, 1024 above 4k or 2048 above 32k tokens; --fit keeps 1024 MiB free"
            )
        else:
            words["buffers"] = "batch 512; 457 MiB kept free per GPU"
        return words

    def choose_batch(self, plan: Plan, layout: Callable[[], WeightLayout]) -> tuple[int, str]:
        """From 0.2.0 to 0.9.x Ollama tried 4 (from 0.6.7: 2) parallel slots, then 1, keeping
        the first whose own estimate fits (server/sched.go)."""
        tries = self.release_of(plan).parallel_tries
        if not tries:
            return super().choose_batch(plan, layout)
        if any(d.capacity_bytes is None for d in plan.devices):
            return tries[0], f"{tries[0]} parallel sequences (Ollama picks {tries[0]} when it fits)"
        for count in tries:
            if self.predicts_fit(replace(plan, batch=count), layout()):
                return count, f"{count} parallel sequence(s), chosen as Ollama's scheduler would"
        return tries[-1], f"{tries[-1]} sequence(s)"

    def predicts_fit(self, plan: Plan, layout: WeightLayout) -> bool:
        """Ollama's own fit check (llm/memory.go): its estimate of each GPU's weights, KV cache
        and graph, plus the 457 MiB minimum and one layer's worth of buffer, must fit."""
        placement = self.place(plan, layout)
        graphs = self.activation_bytes(plan, placement)
        layer_buffer = max(layout.layer_bytes) if layout.layer_bytes else 0
        for device, graph in zip(placement.devices, graphs, strict=True):
            need = device.components.weights + device.components.kv_cache + graph
            if need + MINIMUM_MEMORY + layer_buffer > (device.device.capacity_bytes or 0):
                return False
        return True

    def fit(
        self, plan: Plan, asked: Any, layout: Callable[[], WeightLayout]
    ) -> tuple[Plan, tuple[str, ...]]:
        """Ollama caps the context at the trained length; then its scheduler (to 0.24) or
        llama-server's --fit (0.30 on) fits the layers to the GPUs."""
        release = self.release_of(plan)
        notes: list[str] = []
        capped = self.capped(release, plan.arch, plan.context)
        if capped != plan.context:
            notes.append(
                f"Ollama cuts the context to the model's trained length: {plan.context} -> {capped}"
            )
            plan = replace(plan, context=capped)
        weights = layout()
        if release.llama_server and asked.ubatch_size is None:
            plan = replace(
                plan,
                options=replace(self.options_of(plan), ubatch=self.auto_ubatch(plan, weights)),
            )
        if not release.fits_layers or any(d.capacity_bytes is None for d in plan.devices):
            return plan, tuple(notes)
        who = "llama-server's --fit" if release.llama_server else "Ollama's scheduler"
        rules = (
            FitRules(min_context=None)
            if release.llama_server
            else FitRules(margin=MINIMUM_MEMORY, min_context=None, experts_first=False)
        )
        plan, more = run_fit(self, plan, asked, weights, rules, who=who)
        return plan, (*notes, *more)

    def auto_ubatch(self, plan: Plan, layout: WeightLayout) -> int:
        """0.30's -b/-ub: wider for long contexts where the GPUs have room."""
        available = None
        if not any(d.capacity_bytes is None for d in plan.devices):
            available = sum(d.capacity_bytes or 0 for d in plan.devices)
        kv_f16 = plan.arch.num_layers * 2 * plan.arch.num_kv_heads * plan.arch.head_dim * 2
        predicted = layout.total_bytes + kv_f16 * plan.context * plan.batch
        for above, ubatch, share, extra in UBATCH_STEPS:
            if plan.context <= above:
                continue
            if available is None or (
                predicted <= share * available and predicted + extra <= 0.8 * available
            ):
                return ubatch
        return UBATCH

    def kv_type(
        self, kv_format: StorageType, flash_attention: bool, f16: F16Lookup
    ) -> tuple[StorageType, str | None]:
        # llm/memory.go reads OLLAMA_KV_CACHE_TYPE only "if envconfig.FlashAttention() && ..."
        if kv_format.block_size > 1 and not flash_attention:
            return f16(), (
                f"Ollama ignores a {kv_format.name} KV cache without flash attention and uses f16"
            )
        return kv_format, None

    def buffer_bytes(self, plan: Plan, placement: Placement) -> int:
        """Models on Ollama's own engine get its graph; the others llama.cpp's."""
        if self.arch_name(plan.arch) not in self.release_of(plan).engine_models:
            return super().buffer_bytes(plan, placement)
        return engine_graph_bytes(
            plan.arch,
            context_tokens=self.padded_context(plan) * plan.batch,
            sequences=plan.batch,
            flash_attention=plan.flash_attention,
            ubatch=self.options_of(plan).ubatch,
        )

    def partial_graph(self, plan: Plan, placement: Placement) -> bool:
        """Ollama's estimate charges every GPU its partial-offload graph when there are several
        (llm/memory.go: "multigpu should always use the partial graph size")."""
        if self.release_of(plan).llama_server:
            return super().partial_graph(plan, placement)
        return len(plan.devices) > 1 or super().partial_graph(plan, placement)


def engine_graph_bytes(
    arch: Architecture, *, context_tokens: int, sequences: int, flash_attention: bool, ubatch: int
) -> int:
    """The worst-case graph Ollama's engine reserves (runner/ollamarunner reserveWorstCaseGraph):
    a batch of min(num_batch, num_ctx) tokens whose outputs are one row per sequence, so the
    logits are ``sequences`` rows, not the batch's. Its f32 activations: four hidden-sized
    buffers per token, the feed-forward's intermediates (gate, up and their product; for MoE each
    routed expert's, and its output), and without flash attention one layer's scores."""
    b = min(context_tokens, ubatch)
    h = arch.hidden_size
    if arch.moe is not None:
        moe = arch.moe
        width = moe.experts_per_token * (3 * moe.expert_intermediate_size + h)
        width += 3 * moe.shared_intermediate_size
    else:
        width = 3 * arch.intermediate_size
    scores = 0 if flash_attention else b * context_tokens * (1 + arch.num_attention_heads)
    return 4 * (b * (1 + 4 * h + width) + scores + sequences * (h + arch.vocab_size))
