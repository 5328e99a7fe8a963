"""Resolve names and defaults once, then estimate: the entry point the CLI and browser share."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from calc._errors import InputError, UnknownNameError
from calc.architecture import Architecture, parse_config
from calc.catalogue import Catalogue
from calc.engines import ENGINES, Engine
from calc.estimate import Device, Estimate, estimate_inference, validate_numbers

DEFAULT_ENGINE = "llama.cpp"


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
        return "custom config.json", parse_config(request.config)
    if request.model is not None and request.config is None:
        model = catalogue.model(request.model)
        return model.id, model.arch
    raise InputError("give exactly one of model (a catalogue id) or config (a config.json)")


def run_inference(catalogue: Catalogue, request: InferenceRequest) -> Estimate:
    engine = engine_by_name(request.engine)
    _, arch = resolve_architecture(catalogue, request)
    weights = catalogue.weight_format(request.weights or engine.default_weights)
    precision = catalogue.precisions[weights.id]
    if not engine.weights_only and not weights.loadable:
        raise InputError(
            f"{weights.name} is a number format, not a checkpoint an engine loads; pick a "
            "format such as q4_k_m, awq or fp8, or use --engine theory"
        )
    if engine.accepts and precision.family not in engine.accepts:
        accepted = sorted(
            p.name
            for p in catalogue.precisions.values()
            if p.scope and p.family in engine.accepts and p.family != "gguf"
        )
        if "gguf" in engine.accepts:
            accepted.append("GGUF files such as Q4_K_M")
        raise InputError(
            f"{engine.name} cannot load {weights.name} weights; it takes " + ", ".join(accepted)
        )
    kv_format = catalogue.kv_format(request.kv_cache or engine.default_kv)
    context = request.context if request.context is not None else engine.default_context
    batch = request.batch if request.batch is not None else engine.default_batch
    validate_numbers(context=context, batch=batch, gpus=request.gpus)
    devices = _devices(catalogue, request)
    estimate = estimate_inference(
        arch,
        weights=weights,
        storage_types=catalogue.storage_types,
        engine=engine,
        kv_format=kv_format,
        context=context,
        batch=batch,
        devices=devices,
    )
    defaults = []
    if request.context is None and not engine.weights_only:
        defaults.append(f"context {context} tokens")
    if request.batch is None and not engine.weights_only:
        defaults.append(f"{batch} sequence(s)")
    if request.weights is None:
        defaults.append(f"weights {weights.name}")
    if defaults:
        note = f"{engine.name} defaults ({engine.defaults_for}): " + ", ".join(defaults)
        return _with_note(estimate, note)
    return estimate


def _devices(catalogue: Catalogue, request: InferenceRequest) -> tuple[Device, ...]:
    if request.gpu is not None and request.gpu_memory_bytes is not None:
        raise InputError("give a GPU name or a memory size, not both")
    if request.gpu is not None:
        gpu = catalogue.gpu(request.gpu)
        return (Device(name=gpu.name, capacity_bytes=gpu.usable_bytes),) * request.gpus
    if request.gpu_memory_bytes is not None:
        if request.gpu_memory_bytes <= 0:
            raise InputError(f"GPU memory must be positive, got {request.gpu_memory_bytes}")
        return (Device(name="custom GPU", capacity_bytes=request.gpu_memory_bytes),) * request.gpus
    return (Device(),) * request.gpus


def _with_note(estimate: Estimate, note: str) -> Estimate:
    return replace(estimate, notes=(note, *estimate.notes))
