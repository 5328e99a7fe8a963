"""Resolve names and defaults once, then estimate: the entry point the CLI and browser share."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

from calc._errors import InputError, UnknownNameError
from calc.architecture import Architecture, parse_config
from calc.catalogue import Catalogue
from calc.engines import ENGINES, Engine
from calc.estimate import (
    Device,
    Estimate,
    WeightLayout,
    estimate_inference,
    validate_numbers,
    weight_layout,
)
from calc.formats import StorageType, WeightFormat

DEFAULT_ENGINE = "llama.cpp"

# Weight layouts already computed, by (model key, format id); a caller that estimates the same
# model many times (the browser, the site build) passes one in.
LayoutMemo = MutableMapping[tuple[str, str], WeightLayout]


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
    gpu: str | None = None
    gpu_memory_bytes: int | None = None


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
    model_key, arch = resolve_architecture(catalogue, request)
    weights = catalogue.weight_format(request.weights or engine.default_weights)
    check_engine_accepts(catalogue, engine, weights)
    kv_format = catalogue.kv_format(request.kv_cache or engine.default_kv)
    context = request.context if request.context is not None else engine.default_context
    batch = request.batch if request.batch is not None else engine.default_batch
    validate_numbers(context=context, batch=batch, gpus=request.gpus)
    defaults = []
    if request.context is None and not engine.weights_only:
        defaults.append(f"context {context} tokens")
    if request.batch is None and not engine.weights_only:
        defaults.append(f"{batch} sequence(s)")
    if request.weights is None:
        defaults.append(f"weights {weights.name}")
    return Resolved(
        model_key=model_key,
        arch=arch,
        engine=engine,
        weights=weights,
        kv_format=kv_format,
        context=context,
        batch=batch,
        devices=_devices(catalogue, request),
        defaults=tuple(defaults),
    )


def estimate_resolved(
    catalogue: Catalogue, resolved: Resolved, *, layouts: LayoutMemo | None = None
) -> Estimate:
    key = (resolved.model_key, resolved.weights.id)
    layout = layouts.get(key) if layouts is not None else None
    if layout is None:
        layout = weight_layout(resolved.arch, resolved.weights, catalogue.storage_types)
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
        layout=layout,
    )
    if not resolved.defaults:
        return estimate
    engine = resolved.engine
    note = f"{engine.name} defaults ({engine.defaults_for}): " + ", ".join(resolved.defaults)
    return replace(estimate, notes=(note, *estimate.notes))


def run_inference(
    catalogue: Catalogue, request: InferenceRequest, *, layouts: LayoutMemo | None = None
) -> Estimate:
    return estimate_resolved(catalogue, resolve(catalogue, request), layouts=layouts)


def _devices(catalogue: Catalogue, request: InferenceRequest) -> tuple[Device, ...]:
    if request.gpu is not None and request.gpu_memory_bytes is not None:
        raise InputError("give a GPU name or a memory size, not both")
    if request.gpu is not None:
        gpu = catalogue.gpu(request.gpu)
        return (Device(name=gpu.name, capacity_bytes=gpu.usable_bytes),) * request.gpus
    if request.gpu_memory_bytes is not None:
        if isinstance(request.gpu_memory_bytes, bool) or not isinstance(
            request.gpu_memory_bytes, int
        ):
            raise InputError(
                f"GPU memory must be a whole number of bytes, got {request.gpu_memory_bytes!r}"
            )
        if request.gpu_memory_bytes <= 0:
            raise InputError(f"GPU memory must be positive, got {request.gpu_memory_bytes}")
        return (Device(name="custom GPU", capacity_bytes=request.gpu_memory_bytes),) * request.gpus
    return (Device(),) * request.gpus
