"""Resolve names and defaults once into a :class:`~calc.plan.Plan`, then estimate: the entry
point the CLI, the browser and the build share."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import partial
from typing import Any

from calc import inputs
from calc._errors import InputError
from calc.architecture import Architecture, parse_config
from calc.breakdown import Device, Estimate
from calc.catalogue import GPU, Catalogue
from calc.engines import Engine, engine_by_name
from calc.engines.history import Release
from calc.estimate import LayoutMemo, estimate_inference, layout_for
from calc.finetune import FinetuneEstimate, FinetuneRequest, estimate_finetune
from calc.formats import FILE_SCOPE, StorageType, WeightFormat
from calc.gguf import gguf_architecture, main_type, read_summary
from calc.plan import Default, Plan
from calc.records import replace
from calc.requests import InferenceRequest


def resolve_architecture(
    catalogue: Catalogue, request: InferenceRequest
) -> tuple[str, Architecture]:
    given = [v for v in (request.model, request.config, request.gguf) if v is not None]
    if len(given) != 1:
        raise InputError(
            "give exactly one of model (a catalogue id), config (a config.json) or gguf "
            "(a GGUF file)"
        )
    if request.config is not None:
        key = "config:" + json.dumps(request.config, sort_keys=True, default=str)
        return key, parse_config(request.config)
    if request.gguf is not None:
        key = "gguf:" + json.dumps(request.gguf, sort_keys=True, default=str)
        return key, gguf_architecture(read_summary(request.gguf))
    model = catalogue.model(str(request.model))
    return model.id, model.arch


def file_weights(catalogue: Catalogue, gguf: Mapping[str, Any]) -> tuple[WeightFormat, str]:
    """A GGUF file's weights: every tensor in the type the file gives it; and a note."""
    model = read_summary(gguf)
    named = catalogue.weight_formats.get(model.file_type or "")
    storage = catalogue.storage_types[main_type(model)]
    label = named.name if named is not None else storage.name
    fmt = WeightFormat(
        id=f"gguf-file:{model.file_type or storage.id}",
        name=f"{label} (the file's own tensor types)",
        family="gguf",
        storage=storage,
        scope=FILE_SCOPE,
    )
    words = "; ".join((f"{model.name}: weights as the GGUF file stores each tensor", *model.notes))
    return fmt, words


def check_engine_accepts(
    catalogue: Catalogue, engine: Engine[Any, Any], weights: WeightFormat
) -> None:
    if not engine.weights_only and not weights.loadable:
        raise InputError(
            f"{weights.name} is a number format, not a checkpoint an engine loads; pick a "
            "format such as q4_k_m, awq or fp8, or use --engine theory"
        )
    if not engine.loads(weights):
        accepted = sorted(f.name for f in loadable_formats(catalogue, engine) if f.family != "gguf")
        if "gguf" in engine.accepts:
            accepted.append("GGUF files such as Q4_K_M")
        raise InputError(
            f"{engine.name} cannot load {weights.name} weights; it takes " + ", ".join(accepted)
        )


def check_kv_type(
    catalogue: Catalogue,
    engine: Engine[Any, Any],
    release: Release,
    kv: StorageType,
    asked: str | None = None,
) -> None:
    """Refuse a KV cache type the release cannot store, naming the ones it can."""
    types = engine.kv_types(release)
    if types and kv.id not in types:
        names = ", ".join(catalogue.storage_types[t].name for t in types)
        raise InputError(
            f"{engine.name} {asked or release.version} cannot keep its KV cache in {kv.name}; "
            f"it takes {names}",
            field="kv_cache",
        )


def loadable_formats(catalogue: Catalogue, engine: Engine[Any, Any]) -> list[WeightFormat]:
    """The weight formats ``engine`` can load, in catalogue order."""
    return [f for f in catalogue.weight_formats.values() if engine.loads(f)]


def resolve(
    catalogue: Catalogue, request: InferenceRequest, *, layouts: LayoutMemo | None = None
) -> Plan:
    """The request with every name looked up and every default applied (layouts memoised)."""
    inputs.check_request("inference", request)
    layouts = catalogue.layouts if layouts is None else layouts
    engine = engine_by_name(request.engine)
    release = engine.release(request.engine_version)
    model_key, arch = resolve_architecture(catalogue, request)
    weights, weights_note = _weights(catalogue, engine, release, arch, request)
    check_engine_accepts(catalogue, engine, weights)
    devices = _devices(catalogue, request)
    _check_model_settings(arch, request)
    problem = engine.parallel_problem(arch, len(devices))
    if problem is not None:
        raise InputError(problem, field="gpus")
    flash = request.flash_attention
    if flash is None:
        flash = engine.flash_default(release, arch)
    asked_kv = catalogue.kv_format(request.kv_cache or engine.default_kv)
    check_kv_type(catalogue, engine, release, asked_kv, request.engine_version)
    kv_format, kv_note = engine.kv_type(
        asked_kv,
        flash,
        lambda: catalogue.kv_format("f16"),
    )
    inputs.check_applies("inference", _given(request), engine=engine.id)
    context = request.context
    if context is None:
        context = engine.default_context(release, arch, devices)
    plan = Plan(
        model_key=model_key,
        arch=arch,
        engine=engine,
        release=release,
        weights=weights,
        kv_format=kv_format,
        context=context,
        batch=request.batch or release.default_batch,
        devices=devices,
        flash_attention=flash,
        backend=request.backend,
        vision=arch.vision is not None
        and (engine.loads_vision if request.vision is None else request.vision),
        storage_types=catalogue.storage_types,
        notes=tuple(
            n for n in (_name_note(catalogue, request), arch.assumed, weights_note, kv_note) if n
        ),
        asked_version=request.engine_version,
        ram_bytes=request.ram_bytes,
    )
    options, engine_defaults = engine.resolve_options(plan, request)
    plan = replace(plan, options=options)
    batch_default = None
    if request.batch is None:
        batch, words = engine.choose_batch(plan, lambda: layout_for(plan, layouts))
        plan = replace(plan, batch=batch)
        batch_default = Default({"batch": batch}, "" if engine.weights_only else words)
    plan, fit_notes = engine.fit(plan, request, partial(layout_for, plan, layouts))
    plan = replace(plan, notes=(*plan.notes, *fit_notes))
    return replace(plan, defaults=_defaults(plan, request, engine_defaults, batch_default))


def _check_model_settings(arch: Architecture, request: InferenceRequest) -> None:
    """Settings that only some models have something to act on."""
    if request.cpu_moe_layers and arch.moe is None:
        raise InputError(
            "cpu_moe_layers (--n-cpu-moe) keeps routed experts in CPU RAM, and this model has "
            "none: it is not a mixture of experts (use --gpu-layers to move whole layers)",
            field="cpu_moe_layers",
        )


def _weights(
    catalogue: Catalogue,
    engine: Engine[Any, Any],
    release: Release,
    arch: Architecture,
    request: InferenceRequest,
) -> tuple[WeightFormat, str | None]:
    """The weight format the engine loads, and a note where it is not the obvious one.

    A GGUF file fixes every tensor's type. Engines that read Hugging Face files take the format
    the config.json declares unless told otherwise; a format the reader names wins, with a note
    saying what it replaced.
    """
    asked = request.weights
    entry = catalogue.name_entry(request.model) if request.model else None
    if asked is None and entry is not None and entry.weights and not engine.loads_checkpoints:
        asked = entry.weights  # the GGUF file an Ollama tag pulls (vLLM reads the checkpoint)
    if request.gguf is not None:
        if asked is not None:
            raise InputError(
                "a GGUF file fixes every tensor's type; leave weights empty", field="weights"
            )
        return file_weights(catalogue, request.gguf)
    checkpoint = arch.checkpoint if engine.loads_checkpoints else None
    if checkpoint is not None and not checkpoint.modelled:
        if asked is None:
            raise InputError(checkpoint.unmodelled_message(), field="weights")
        checkpoint = None
    stored = catalogue.checkpoint_format(checkpoint) if checkpoint is not None else None
    if asked is None:
        if (
            checkpoint is not None
            and stored is not None
            and engine.uses_checkpoint(release, checkpoint)
        ):
            return stored, None
        asked = engine.default_weights_for(release, arch)
        weights_id, note = engine.weight_files.get(asked, (asked, None))
        return catalogue.weight_format(weights_id), note
    weights_id, note = engine.weight_files.get(asked, (asked, None))
    weights = catalogue.weight_format(weights_id)
    if stored is None or checkpoint is None or not checkpoint.quantized:
        return weights, note
    if weights.id == stored.id:
        return stored, note  # the same files: the config's unquantised modules hold
    replaced = (
        f"config.json's quantization_config stores {checkpoint.label} weights; the asked "
        f"{weights.name} replaces them"
    )
    return weights, replaced if note is None else f"{note}; {replaced}"


def _name_note(catalogue: Catalogue, request: InferenceRequest) -> str:
    """What a typed name (an Ollama tag, say) stands for, and what to know about it."""
    entry = catalogue.name_entry(request.model) if request.model else None
    if entry is None:
        return ""
    model = catalogue.models[entry.model]
    words = f"{request.model} is {model.name}"
    if entry.weights:
        words += f" in {catalogue.weight_formats[entry.weights].name}"
    return f"{words}. {entry.note}" if entry.note else words


def _given(request: InferenceRequest) -> dict[str, object]:
    """The inputs the request sets, by input name."""
    return {
        item.name: getattr(request, item.field_name)
        for item in inputs.for_mode("inference")
        if getattr(request, item.field_name) is not None and item.engines
    }


def _defaults(
    plan: Plan,
    request: InferenceRequest,
    engine_defaults: tuple[Default, ...],
    batch: Default | None,
) -> tuple[Default, ...]:
    """The defaults the plan applied, in the order the note names them."""
    engine = plan.engine
    defaults: list[Default] = []
    if request.context is None:
        words = "" if engine.weights_only else f"context {plan.context} tokens"
        defaults.append(Default({"context": plan.context}, words))
    defaults += engine_defaults
    if batch is not None:
        defaults.append(batch)
    if request.weights is None:
        defaults.append(Default({"weights": plan.weights.id}, f"weights {plan.weights.name}"))
    if request.kv_cache is None:
        defaults.append(Default({"kv_cache": plan.kv_format.id}, ""))
    if request.flash_attention is None:
        state = "on" if plan.flash_attention else "off"
        words = f"flash attention {state}" if engine.mentions_flash_default else ""
        defaults.append(Default({"flash_attention": state}, words))
    if request.engine_version is None:
        defaults.append(Default({"engine_version": plan.release.version}, ""))
    if request.vision is None and plan.arch.vision is not None:
        state = "on" if plan.vision else "off"
        defaults.append(Default({"vision": state}, f"vision tower {state}"))
    return tuple(defaults)


def run_inference(
    catalogue: Catalogue, request: InferenceRequest, *, layouts: LayoutMemo | None = None
) -> Estimate:
    layouts = catalogue.layouts if layouts is None else layouts
    return estimate_inference(resolve(catalogue, request, layouts=layouts), layouts=layouts)


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
            _check_unified(gpus, request)
            return tuple(gpu_device(g) for g in gpus)
        gpu = catalogue.gpu(names[0])
        _check_unified([gpu], request)
        return (gpu_device(gpu, request),) * request.gpus
    if request.gpu_memory_bytes is not None:
        memory = request.gpu_memory_bytes
        if isinstance(memory, bool) or not isinstance(memory, int):
            raise InputError(f"GPU memory must be a whole number of bytes, got {memory!r}")
        if memory <= 0:
            raise InputError(f"GPU memory must be positive, got {memory}")
        return (Device(name="custom GPU", capacity_bytes=memory),) * request.gpus
    return (Device(),) * request.gpus


def _with_memory(name: str, memory_bytes: int) -> str:
    """'Apple M3 Max (128 GB, 40-core GPU)' with 64 GiB: 'Apple M3 Max (40-core GPU, 64 GiB)'."""
    bare = re.sub(r",?\s*\b\d+ GB\b,?\s*", " ", name).replace("( ", "(").replace(" )", ")")
    bare = re.sub(r"\s*\(\)", "", bare).strip()
    size = f"{memory_bytes / 2**30:g} GiB"
    if bare.endswith(")"):
        return f"{bare[:-1]}, {size})"
    return f"{bare} ({size})"


def _check_unified(gpus: list[GPU], request: InferenceRequest) -> None:
    """The unified-memory inputs need one GPU that shares the machine's memory."""
    for name in ("unified_memory_bytes", "wired_limit_bytes"):
        if getattr(request, name) is None:
            continue
        field = name.replace("_bytes", "_gib")
        if len(gpus) > 1 or not gpus[0].unified_memory:
            raise InputError(
                f"{field} applies to one GPU that shares the machine's memory (Apple silicon, "
                f"Ryzen AI Max, DGX Spark); {gpus[0].name} has memory of its own",
                field=field,
            )
    memory = request.unified_memory_bytes or gpus[0].memory_bytes
    if request.wired_limit_bytes is not None and request.wired_limit_bytes > memory:
        raise InputError(
            f"the GPU memory limit ({request.wired_limit_bytes / 2**30:.1f} GiB) is more than "
            f"the machine's memory ({memory / 2**30:.1f} GiB)",
            field="wired_limit_gib",
        )


def gpu_device(gpu: GPU, request: InferenceRequest | None = None) -> Device:
    """A catalogue GPU as the estimate places memory on it and times it; a unified-memory GPU
    gets its share of the machine's memory as asked (``unified_memory_bytes``), or the limit
    set for it (``wired_limit_bytes``)."""
    capacity, name = gpu.usable_bytes, gpu.name
    if request is not None and gpu.unified_memory:
        if request.unified_memory_bytes is not None:
            capacity = gpu.unified_share(request.unified_memory_bytes)
            name = _with_memory(gpu.name, request.unified_memory_bytes)
        if request.wired_limit_bytes is not None:
            capacity = request.wired_limit_bytes
    return Device(
        name=name,
        capacity_bytes=capacity,
        bandwidth_bytes_s=gpu.bandwidth_gb_s * 1e9,
        tflops=gpu.tflops,
        vendor=gpu.vendor,
        architecture=gpu.architecture,
        unified_memory=gpu.unified_memory,
    )


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
    inputs.check_request("finetune", request)
    where = InferenceRequest(
        model=model, config=config, gpus=request.gpus, gpu=gpu, gpu_memory_bytes=gpu_memory_bytes
    )
    _, arch = resolve_architecture(catalogue, where)
    return estimate_finetune(
        arch,
        request,
        storage_types=catalogue.storage_types,
        nf4=catalogue.weight_format("nf4" if request.double_quant else "nf4_nodq"),
        bf16=catalogue.weight_format("bf16"),
        devices=_devices(catalogue, where),
        states=catalogue.training_states,
    )
