"""Ollama: llama.cpp underneath, with its own defaults (context by release and GPU memory,
automatic parallel slots before July 2025) and its own estimate, which it uses to decide."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from calc.architecture import Architecture
from calc.breakdown import Device
from calc.engines.base import Constant, F16Lookup
from calc.engines.history import Change, History
from calc.engines.llama_cpp import LlamaCppFamily, LlamaCppRelease
from calc.formats import StorageType
from calc.layout import WeightLayout
from calc.placement import Placement
from calc.plan import Plan
from calc.units import GIB, MIB

OLLAMA = "https://github.com/ollama/ollama/blob"

# Ollama sets this much aside per GPU for "VRAM consumed by context structures independent of
# model allocations": discover/gpu.go `cudaMinimumMemory = 457 * format.MebiByte`
# (https://github.com/ollama/ollama/blob/05de33f852378ba9c834af25efb6388c0fef90ee/discover/gpu.go).
# It is a reserve in Ollama's fit check, not memory that shows up in nvidia-smi.
MINIMUM_MEMORY = 457 * MIB


@dataclass(frozen=True)
class OllamaRelease(LlamaCppRelease):
    """``context_tiers`` makes the default context depend on the GPU memory, as Ollama does
    since v0.15.5: (minimum GiB of usable GPU memory, context) pairs, highest first.
    ``parallel_tries`` is Ollama's old automatic parallelism: the first count whose estimate
    fits is used."""

    context_tiers: tuple[tuple[int, int], ...] = ()
    parallel_tries: tuple[int, ...] = ()


HISTORY = History(
    "ollama",
    OllamaRelease(
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
    (
        Change(
            "0.6.7",
            "https://github.com/ollama/ollama/pull/10452",
            {
                "default_context": 4096,  # "config: update default context length to 4096"
                # llama.cpp's MLA cache (https://github.com/ggml-org/llama.cpp/pull/12801, April
                # 2025) stores the latent as K and a 512-value V; we assume Ollama follows it.
                "mla_cache": "latent_kv",
            },
        ),
        # "Reduce default parallelism to 1", merged 2025-07-08; 0.9.5 was current on
        # 2025-07-02 (ollama issue 11277), so the first release with it is 0.9.6.
        Change("0.9.6", "https://github.com/ollama/ollama/pull/11330", {"parallel_tries": ()}),
        Change(
            # "Ollama v0.15.5 (2026-02-03) replaced that fixed default with one picked from
            # available VRAM ... 4096 tokens below 24 GiB, 32768 tokens from 24 to 48 GiB, and
            # 262144 tokens at 48 GiB and above" (https://github.com/open-webui/docs/pull/1393)
            "0.15.5",
            "https://github.com/open-webui/docs/pull/1393",
            {
                "context_tiers": ((48, 262144), (24, 32768), (0, 4096)),
                # "Support V-less KV cache ... for MLA models such as DeepSeek"
                # (https://github.com/ggml-org/llama.cpp/pull/19067, 2026-01-24)
                "mla_cache": "latent",
            },
            date="2026-02-03",
        ),
    ),
)


class Ollama(LlamaCppFamily[OllamaRelease]):
    id = "ollama"
    name = "Ollama"
    source = f"{OLLAMA}/3241b457904a91c709b4c77075a50917fab43aaa/llm/memory.go"
    history = HISTORY
    constants = (
        Constant(
            "Ollama minimum memory per GPU",
            "457 MiB",
            "Ollama's fit check (reserve, not allocated)",
            f"{OLLAMA}/05de33f852378ba9c834af25efb6388c0fef90ee/discover/gpu.go",
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

    def default_context(
        self, release: OllamaRelease, arch: Architecture, devices: Sequence[Device]
    ) -> int:
        """Since v0.15.5 by the GPUs' memory together, when it is known."""
        capacities = [d.capacity_bytes for d in devices]
        if not release.context_tiers or any(c is None for c in capacities):
            return release.default_context
        total_gib = sum(c or 0 for c in capacities) / GIB
        for minimum, context in release.context_tiers:
            if total_gib >= minimum:
                return context
        return release.default_context

    def describe(self, release: OllamaRelease) -> dict[str, str]:
        words = super().describe(release)
        if release.context_tiers:
            words["context"] = ", ".join(
                f"{context:,} from {gib} GiB" for gib, context in release.context_tiers
            )
        if release.parallel_tries:
            words["sequences"] = " if it fits, else ".join(str(n) for n in release.parallel_tries)
        return words

    def choose_batch(self, plan: Plan, layout: Callable[[], WeightLayout]) -> tuple[int, str]:
        """Before 0.9.6 Ollama tried 4 parallel slots, then 1, keeping the first whose own
        estimate fits (server/sched.go)."""
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

    def kv_type(
        self, kv_format: StorageType, flash_attention: bool, f16: F16Lookup
    ) -> tuple[StorageType, str | None]:
        # llm/memory.go reads OLLAMA_KV_CACHE_TYPE only "if envconfig.FlashAttention() && ..."
        if kv_format.block_size > 1 and not flash_attention:
            return f16(), (
                f"Ollama ignores a {kv_format.name} KV cache without flash attention and uses f16"
            )
        return kv_format, None

    def partial_graph(self, plan: Plan, placement: Placement) -> bool:
        """Ollama's estimate charges every GPU its partial-offload graph when there are several
        (llm/memory.go: "multigpu should always use the partial graph size")."""
        return len(plan.devices) > 1 or super().partial_graph(plan, placement)
