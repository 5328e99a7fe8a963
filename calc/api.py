"""Resolve names and defaults once, then estimate: the entry point the CLI and browser share."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from calc._errors import InputError, UnknownNameError
from calc.architecture import Architecture, parse_config
from calc.catalogue import Catalogue
from calc.engines import (
    ENGINES,
    MODEL_MAX,
    OLLAMA_MINIMUM_MEMORY,
    VLLM_GPU_MEMORY_UTILIZATION,
    Engine,
    ExpertPadding,
    Release,
    expert_padding,
    release_for,
    vllm_profile_batch,
)
from calc.estimate import (
    MAX_CONTEXT,
    Device,
    Estimate,
    Settings,
    WeightLayout,
    estimate_inference,
    validate_numbers,
    weight_layout,
)
from calc.finetune import FinetuneEstimate, FinetuneRequest, estimate_finetune
from calc.formats import StorageType, WeightFormat
from calc.units import GIB

DEFAULT_ENGINE = "llama.cpp"

# Weight layouts already computed, by (model key, format id); a caller that estimates the same
# model many times (the browser, the site build) passes one in.
LayoutMemo = MutableMapping[tuple[str, str, ExpertPadding | None], WeightLayout]


@dataclass(frozen=True)
class InferenceRequest:
    """What a reader asks. Unset options take the engine's defaults."""

    model: str | None = None
    config: Mapping[str, Any] | None = None
    weights: str | None = None
    engine: str = DEFAULT_ENGINE
    context: int | None = None
    batch: int | None = None
    kv_cache: str | None = None
    gpus: int = 1
    gpu: str | None = None  # one name, or several separated by commas for mismatched GPUs
    gpu_memory_bytes: int | None = None
    engine_version: str | None = None
    flash_attention: bool | None = None
    gpu_layers: int | None = None
    cpu_moe_layers: int | None = None
    tensor_split: tuple[float, ...] | None = None
    gpu_memory_utilization: float | None = None  # vLLM: share of each GPU it reserves
    max_num_seqs: int | None = None  # vLLM: sequences per step, the profiling run's logits rows
    max_num_batched_tokens: int | None = None  # vLLM: tokens per step, the profiling pass


@dataclass(frozen=True)
class Resolved:
    """A request with every name looked up and every default applied."""

    model_key: str  # catalogue id, or the config's canonical JSON
    arch: Architecture
    engine: Engine
    weights: WeightFormat
    kv_format: StorageType
    context: int
    batch: int
    devices: tuple[Device, ...]
    defaults: tuple[str, ...]  # which options took the engine's default
    release: Release
    settings: Settings
    notes: tuple[str, ...] = ()
    asked_version: str | None = None


def engine_by_name(name: str) -> Engine:
    wanted = name.strip().lower()
    for engine in ENGINES.values():
        if engine.id == wanted:
            return engine
    raise UnknownNameError("engine", name, difflib.get_close_matches(wanted, list(ENGINES)))


def resolve_architecture(
    catalogue: Catalogue, request: InferenceRequest
) -> tuple[str, Architecture]:
    if request.config is not None and request.model is None:
        key = "config:" + json.dumps(request.config, sort_keys=True, default=str)
        return key, parse_config(request.config)
    if request.model is not None and request.config is None:
        model = catalogue.model(request.model)
        return model.id, model.arch
    raise InputError("give exactly one of model (a catalogue id) or config (a config.json)")


def check_engine_accepts(catalogue: Catalogue, engine: Engine, weights: WeightFormat) -> None:
    if not engine.weights_only and not weights.loadable:
        raise InputError(
            f"{weights.name} is a number format, not a checkpoint an engine loads; pick a "
            "format such as q4_k_m, awq or fp8, or use --engine theory"
        )
    if engine.accepts and weights.family not in engine.accepts:
        accepted = sorted(f.name for f in loadable_formats(catalogue, engine) if f.family != "gguf")
        if "gguf" in engine.accepts:
            accepted.append("GGUF files such as Q4_K_M")
        raise InputError(
            f"{engine.name} cannot load {weights.name} weights; it takes " + ", ".join(accepted)
        )


def loadable_formats(catalogue: Catalogue, engine: Engine) -> list[WeightFormat]:
    """The weight formats ``engine`` can load, in catalogue order."""
    return [
        f
        for f in catalogue.weight_formats.values()
        if (f.loadable or engine.weights_only)
        and (not engine.accepts or f.family in engine.accepts)
    ]


def resolve(catalogue: Catalogue, request: InferenceRequest) -> Resolved:
    engine = engine_by_name(request.engine)
    release = release_for(engine.id, request.engine_version)
    model_key, arch = resolve_architecture(catalogue, request)
    weights = catalogue.weight_format(request.weights or engine.default_weights)
    check_engine_accepts(catalogue, engine, weights)
    devices = _devices(catalogue, request)
    notes: list[str] = []
    defaults: list[str] = []
    flash = release.flash_attention if request.flash_attention is None else request.flash_attention
    kv_format = catalogue.kv_format(request.kv_cache or engine.default_kv)
    kv_format = _kv_rules(engine, kv_format, flash, catalogue, notes)

    context = request.context
    if context is None:
        context = _default_context(release, devices, arch)
        if not engine.weights_only:
            defaults.append(f"context {context} tokens")
    settings = Settings(
        flash_attention=flash,
        prompt_logits=release.prompt_logits,
        gpu_layers=_optional_count(request.gpu_layers, "gpu_layers", minimum=0),
        cpu_moe_layers=_optional_count(request.cpu_moe_layers, "cpu_moe_layers", minimum=0) or 0,
        tensor_split=_tensor_split(request.tensor_split),
        memory_utilization=_memory_utilization(request.gpu_memory_utilization, engine),
        mla_cache=release.mla_cache,
        profile_rule=release.profile_rule,
    )
    if engine.id == "vllm":
        asked_tokens = _optional_count(
            request.max_num_batched_tokens, "max_num_batched_tokens", minimum=1
        )
        asked_seqs = _optional_count(request.max_num_seqs, "max_num_seqs", minimum=1)
        tokens, seqs = vllm_profile_batch(
            release,
            max_model_len=context,
            gpu_name=devices[0].name,
            gpu_bytes=devices[0].capacity_bytes,
            max_num_batched_tokens=asked_tokens,
            max_num_seqs=asked_seqs,
        )
        settings = replace(settings, profile_tokens=tokens, profile_seqs=seqs)
        if asked_tokens is None or asked_seqs is None:
            defaults.append(f"max_num_batched_tokens {tokens}, max_num_seqs {seqs}")
    elif request.max_num_seqs is not None or request.max_num_batched_tokens is not None:
        field = "max_num_seqs" if request.max_num_seqs is not None else "max_num_batched_tokens"
        raise InputError(f"{field} is a vLLM setting, not {engine.name}'s", field=field)
    if (settings.gpu_layers is not None or settings.cpu_moe_layers) and engine.id not in (
        "llama.cpp",
        "ollama",
    ):
        raise InputError(
            f"partial offload (GPU layers, CPU experts) is a llama.cpp/Ollama setting, not "
            f"{engine.name}'s",
            field="gpu_layers",
        )
    batch = request.batch
    validate_numbers(context=context, batch=batch or 1, gpus=len(devices))
    resolved = Resolved(
        model_key=model_key,
        arch=arch,
        engine=engine,
        weights=weights,
        kv_format=kv_format,
        context=context,
        batch=batch or release.default_batch,
        devices=devices,
        defaults=(),
        release=release,
        settings=settings,
    )
    if batch is None:
        resolved, choice = _default_batch(catalogue, resolved)
        if not engine.weights_only:
            defaults.append(choice)
    if request.weights is None:
        defaults.append(f"weights {weights.name}")
    if request.flash_attention is None and engine.id in ("llama.cpp", "ollama"):
        defaults.append(f"flash attention {'on' if flash else 'off'}")
    return replace(
        resolved,
        defaults=tuple(defaults),
        notes=tuple(notes),
        asked_version=request.engine_version,
    )


def _kv_rules(
    engine: Engine, kv_format: StorageType, flash: bool, catalogue: Catalogue, notes: list[str]
) -> StorageType:
    """Quantised KV caches need flash attention in the llama.cpp family."""
    quantised = kv_format.block_size > 1
    if not quantised or flash:
        return kv_format
    if engine.id == "ollama":
        # llm/memory.go reads OLLAMA_KV_CACHE_TYPE only "if envconfig.FlashAttention() && ..."
        notes.append(
            f"Ollama ignores a {kv_format.name} KV cache without flash attention and uses f16"
        )
        return catalogue.kv_format("f16")
    if engine.id == "llama.cpp":
        raise InputError(
            f"llama.cpp needs flash attention for a quantised V cache ({kv_format.name}); "
            "turn flash attention on or use an f16 cache",
            field="kv_cache",
        )
    return kv_format


def _default_context(release: Release, devices: Sequence[Device], arch: Architecture) -> int:
    if release.default_context == MODEL_MAX:
        return min(arch.max_position_embeddings or MAX_CONTEXT, MAX_CONTEXT)
    if not release.context_tiers:
        return release.default_context
    capacities = [d.capacity_bytes for d in devices]
    if any(c is None for c in capacities):
        return release.default_context
    total_gib = sum(c or 0 for c in capacities) / GIB
    for minimum, context in release.context_tiers:
        if total_gib >= minimum:
            return context
    return release.default_context


def _default_batch(catalogue: Catalogue, resolved: Resolved) -> tuple[Resolved, str]:
    """Ollama before 0.9.6 tried 4 parallel slots, then 1, keeping the first whose own
    estimate fits (server/sched.go); other engines serve one sequence unless told."""
    tries = resolved.release.parallel_tries
    if not tries:
        return resolved, f"{resolved.batch} sequence(s)"
    if any(d.capacity_bytes is None for d in resolved.devices):
        chosen = replace(resolved, batch=tries[0])
        return chosen, f"{tries[0]} parallel sequences (Ollama picks {tries[0]} when it fits)"
    for count in tries:
        candidate = replace(resolved, batch=count)
        if ollama_predicts_fit(catalogue, candidate):
            return candidate, f"{count} parallel sequence(s), chosen as Ollama's scheduler would"
    return replace(resolved, batch=tries[-1]), f"{tries[-1]} sequence(s)"


def ollama_predicts_fit(catalogue: Catalogue, resolved: Resolved) -> bool:
    """Ollama's own fit check (llm/memory.go): its estimate plus the 457 MiB minimum and one
    layer's worth of buffer per GPU must fit each GPU."""
    estimate = estimate_resolved(catalogue, resolved)
    layout = weight_layout(resolved.arch, resolved.weights, catalogue.storage_types)
    layer_buffer = max(layout.layer_bytes) if layout.layer_bytes else 0
    for device in estimate.devices:
        capacity = device.device.capacity_bytes or 0
        need = device.total_bytes - device.components.runtime
        if need + OLLAMA_MINIMUM_MEMORY + layer_buffer > capacity:
            return False
    return True


def _memory_utilization(value: float | None, engine: Engine) -> float:
    if value is None:
        return VLLM_GPU_MEMORY_UTILIZATION if engine.id == "vllm" else 1.0
    if engine.id != "vllm":
        raise InputError(
            f"gpu_memory_utilization is a vLLM setting, not {engine.name}'s",
            field="gpu_memory_utilization",
        )
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise InputError(
            f"gpu_memory_utilization must be a fraction above 0 and at most 1, got {value!r}",
            field="gpu_memory_utilization",
        )
    return float(value)


def _optional_count(value: int | None, field: str, *, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{field} must be a whole number >= {minimum}, got {value!r}", field=field)
    return value


def _tensor_split(split: tuple[float, ...] | None) -> tuple[float, ...] | None:
    if split is None:
        return None
    if (
        not split
        or any(isinstance(x, bool) or not isinstance(x, int | float) or x < 0 for x in split)
        or sum(split) <= 0
    ):
        raise InputError(
            f"tensor split must be non-negative numbers, not all zero, got {split!r}",
            field="tensor_split",
        )
    return tuple(float(x) for x in split)


def estimate_resolved(
    catalogue: Catalogue, resolved: Resolved, *, layouts: LayoutMemo | None = None
) -> Estimate:
    padding = expert_padding(resolved.engine, resolved.weights.id, len(resolved.devices))
    key = (resolved.model_key, resolved.weights.id, padding)
    layout = layouts.get(key) if layouts is not None else None
    if layout is None:
        layout = weight_layout(resolved.arch, resolved.weights, catalogue.storage_types, padding)
        if layouts is not None:
            layouts[key] = layout
    estimate = estimate_inference(
        resolved.arch,
        weights=resolved.weights,
        storage_types=catalogue.storage_types,
        engine=resolved.engine,
        kv_format=resolved.kv_format,
        context=resolved.context,
        batch=resolved.batch,
        devices=resolved.devices,
        settings=resolved.settings,
        layout=layout,
    )
    notes = list(resolved.notes)
    if resolved.defaults:
        engine, release = resolved.engine, resolved.release.version
        which = resolved.asked_version or f"{release} (the newest modelled)"
        notes.insert(
            0,
            f"{engine.name} {which} defaults (as from release {release}): "
            + ", ".join(resolved.defaults),
        )
    return replace(estimate, notes=(*notes, *estimate.notes)) if notes else estimate


def run_inference(
    catalogue: Catalogue, request: InferenceRequest, *, layouts: LayoutMemo | None = None
) -> Estimate:
    return estimate_resolved(catalogue, resolve(catalogue, request), layouts=layouts)


def _devices(catalogue: Catalogue, request: InferenceRequest) -> tuple[Device, ...]:
    if request.gpu is not None and request.gpu_memory_bytes is not None:
        raise InputError("give a GPU name or a memory size, not both")
    if request.gpu is not None:
        names = [name for name in request.gpu.split(",") if name.strip()]
        if not names:
            raise InputError("no GPU named", field="gpu")
        if len(names) > 1:
            if request.gpus not in (1, len(names)):
                raise InputError(
                    f"{len(names)} GPUs named but gpus is {request.gpus}; name one GPU to "
                    "repeat it, or list every GPU",
                    field="gpus",
                )
            gpus = [catalogue.gpu(name) for name in names]
            return tuple(Device(name=g.name, capacity_bytes=g.usable_bytes) for g in gpus)
        gpu = catalogue.gpu(names[0])
        return (Device(name=gpu.name, capacity_bytes=gpu.usable_bytes),) * request.gpus
    if request.gpu_memory_bytes is not None:
        memory = request.gpu_memory_bytes
        if isinstance(memory, bool) or not isinstance(memory, int):
            raise InputError(f"GPU memory must be a whole number of bytes, got {memory!r}")
        if memory <= 0:
            raise InputError(f"GPU memory must be positive, got {memory}")
        return (Device(name="custom GPU", capacity_bytes=memory),) * request.gpus
    return (Device(),) * request.gpus


def run_finetune(
    catalogue: Catalogue,
    request: FinetuneRequest,
    *,
    model: str | None = None,
    config: Mapping[str, Any] | None = None,
    gpu: str | None = None,
    gpu_memory_bytes: int | None = None,
) -> FinetuneEstimate:
    """Fine-tuning memory for a catalogue model or a config.json on these GPUs."""
    where = InferenceRequest(
        model=model, config=config, gpus=request.gpus, gpu=gpu, gpu_memory_bytes=gpu_memory_bytes
    )
    _, arch = resolve_architecture(catalogue, where)
    return estimate_finetune(
        arch,
        request,
        storage_types=catalogue.storage_types,
        nf4=catalogue.weight_format("nf4"),
        bf16=catalogue.weight_format("bf16"),
        devices=_devices(catalogue, where),
    )
