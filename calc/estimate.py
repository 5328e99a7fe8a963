"""Inference memory: combine the components into a per-device breakdown.

parse (architecture) -> tensors -> place on devices -> one pure function per component ->
:class:`Estimate`. Nothing here formats bytes or reads a file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from math import ceil
from typing import Any, Self

from calc._errors import InputError
from calc.architecture import Architecture
from calc.engines import (
    VLLM_MAX_NUM_SEQS,
    Engine,
    ExpertPadding,
    compute_buffer_bytes,
    expert_padding,
    runtime_bytes,
    vllm_profile_tokens,
)
from calc.formats import StorageType, WeightFormat, tensor_bytes, tensor_storage
from calc.kv_cache import kv_cache_bytes
from calc.tensors import WEIGHT, ParameterCount, Tensor, count_parameters, model_tensors

# Limits that catch typos, not real deployments: a 100M-token context or 64 GPUs in one
# tensor-parallel group are beyond anything an engine runs.
MAX_CONTEXT = 100_000_000
MAX_BATCH = 65_536
MAX_GPUS = 64


@dataclass(frozen=True)
class ByKind:
    """Bytes by kind: the total, the sum of two, and the JSON mapping (in field order) all
    follow the subclass's fields."""

    @property
    def total(self) -> int:
        return sum(self.as_dict().values())

    def __add__(self, other: Self) -> Self:
        mine, theirs = self.as_dict(), other.as_dict()
        return replace(self, **{key: mine[key] + theirs[key] for key in mine})

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def sum_of(cls, parts: Iterable[Self]) -> Self:
        """The kind-by-kind sum of ``parts`` (all zero when there are none)."""
        total = cls()
        for part in parts:
            total = total + part
        return total


@dataclass(frozen=True)
class Components(ByKind):
    """Bytes by kind. ``runtime`` is memory outside the engine's own tensors."""

    weights: int = 0
    kv_cache: int = 0
    activations: int = 0
    runtime: int = 0


@dataclass(frozen=True)
class Device:
    """One GPU the model is placed on: a name and, when known, how much memory it offers."""

    name: str = "GPU"
    capacity_bytes: int | None = None


@dataclass(frozen=True)
class DeviceEstimate:
    index: int
    device: Device
    layers: tuple[int, ...]
    components: Components

    @property
    def total_bytes(self) -> int:
        return self.components.total

    @property
    def headroom_bytes(self) -> int | None:
        if self.device.capacity_bytes is None:
            return None
        return self.device.capacity_bytes - self.total_bytes

    @property
    def fits(self) -> bool | None:
        headroom = self.headroom_bytes
        return None if headroom is None else headroom >= 0


@dataclass(frozen=True)
class Estimate:
    engine: str
    weights_format: str
    kv_format: str
    context: int
    batch: int
    parameters: ParameterCount
    devices: tuple[DeviceEstimate, ...]
    host: Components
    notes: tuple[str, ...] = field(default=())
    details: Mapping[str, Any] = field(default_factory=dict)  # engine-specific figures

    @property
    def components(self) -> Components:
        return Components.sum_of(d.components for d in self.devices)

    @property
    def total_bytes(self) -> int:
        return self.components.total

    @property
    def host_bytes(self) -> int:
        return self.host.total

    @property
    def fits(self) -> bool | None:
        verdicts = [d.fits for d in self.devices]
        return None if None in verdicts else all(verdicts)

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``--json`` object and the browser bridge's result."""
        return {
            "total_bytes": self.total_bytes,
            "components": self.components.as_dict(),
            "devices": [
                {
                    "index": d.index,
                    "name": d.device.name,
                    "capacity_bytes": d.device.capacity_bytes,
                    "layers": len(d.layers),
                    "total_bytes": d.total_bytes,
                    "components": d.components.as_dict(),
                    "headroom_bytes": d.headroom_bytes,
                    "fits": d.fits,
                }
                for d in self.devices
            ],
            "host_bytes": self.host_bytes,
            "host_components": self.host.as_dict(),
            "fits": self.fits,
            "engine": self.engine,
            "weights": self.weights_format,
            "kv_cache": self.kv_format,
            "context": self.context,
            "batch": self.batch,
            "parameters": {
                "total": self.parameters.total,
                "active": self.parameters.active,
            },
            "notes": list(self.notes),
            "engine_details": dict(self.details),
        }


def split_layers(
    layers: Sequence[int], devices: Sequence[Device], shares: Sequence[float] | None = None
) -> list[tuple[int, ...]]:
    """Contiguous runs of ``layers`` per device, in proportion to ``shares`` (llama.cpp's
    ``--tensor-split``), else to each device's memory (llama.cpp's default follows free
    memory), else equal. Largest remainders go to the first devices."""
    if shares is None:
        if any(d.capacity_bytes is None for d in devices):
            shares = [1.0] * len(devices)
        else:
            shares = [float(d.capacity_bytes or 0) for d in devices]
    total = sum(shares)
    count = len(layers)
    exact = [count * share / total for share in shares]
    counts = [int(x) for x in exact]
    order = sorted(range(len(devices)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: count - sum(counts)]:
        counts[i] += 1
    runs, start = [], 0
    for n in counts:
        runs.append(tuple(layers[start : start + n]))
        start += n
    return runs


def validate_numbers(*, context: int, batch: int, gpus: int) -> None:
    for name, value, top in (
        ("context", context, MAX_CONTEXT),
        ("batch", batch, MAX_BATCH),
        ("gpus", gpus, MAX_GPUS),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{name} must be a whole number, got {value!r}", field=name)
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}", field=name)
        if value > top:
            raise InputError(f"{name} must be at most {top:,}, got {value:,}", field=name)


@dataclass(frozen=True)
class WeightLayout:
    """A model's weight bytes in one format, grouped by where an engine can put them.

    Walking the tensors is the costly part of an estimate; everything that depends on the
    context, batch, engine or GPUs works from this summary instead.
    """

    format_id: str
    layer_bytes: tuple[int, ...]  # per decoder layer
    layer_routed_bytes: tuple[int, ...]  # of which routed experts (llama.cpp --n-cpu-moe)
    embedding_bytes: int  # token_embd
    output_bytes: int  # output head and final norm: with the last layer
    other_bytes: int  # outside the blocks (vision tower, projector): with the first device
    matrix_bytes: int  # all tensors of two or more dimensions, for tensor-parallel sharding
    parameters: ParameterCount
    padding: ExpertPadding | None = None

    @property
    def total_bytes(self) -> int:
        return sum(self.layer_bytes) + self.embedding_bytes + self.output_bytes + self.other_bytes


def pad_expert(tensor: Tensor, padding: ExpertPadding) -> Tensor:
    """``tensor`` as an engine that pads routed experts allocates it (ggml order: the row
    length first: gate and up are hidden x intermediate, down intermediate x hidden)."""

    def up(n: int, multiple: int) -> int:
        return ceil(n / multiple) * multiple

    def inner(n: int) -> int:
        return up(ceil(n / padding.ranks), padding.intermediate) * padding.ranks

    shape = list(tensor.shape)
    if tensor.role in ("ffn_gate_exps", "ffn_up_exps"):
        if tensor.kind == WEIGHT:
            shape[0], shape[1] = up(shape[0], padding.hidden), inner(shape[1])
        else:
            shape[0] = inner(shape[0])
    elif tensor.role == "ffn_down_exps":
        if tensor.kind == WEIGHT:
            shape[0], shape[1] = inner(shape[0]), up(shape[1], padding.hidden)
        else:
            shape[0] = up(shape[0], padding.hidden)
    return replace(tensor, shape=tuple(shape))


def weight_layout(
    arch: Architecture,
    weights: WeightFormat,
    storage_types: Mapping[str, StorageType],
    padding: ExpertPadding | None = None,
) -> WeightLayout:
    tensors = model_tensors(arch)
    layers = [0] * arch.num_layers
    routed = [0] * arch.num_layers
    embedding = output = other = matrices = 0
    for tensor in tensors:
        stored = pad_expert(tensor, padding) if padding and tensor.routed else tensor
        size = tensor_bytes(stored, tensor_storage(tensor, weights, arch, storage_types))
        if tensor.kind == WEIGHT and len(tensor.shape) >= 2:
            matrices += size
        if tensor.layer is not None:
            layers[tensor.layer] += size
            if tensor.routed:
                routed[tensor.layer] += size
        elif tensor.role == "token_embd":
            embedding += size
        elif tensor.role in ("output", "output_norm"):
            output += size
        else:
            other += size
    return WeightLayout(
        format_id=weights.id,
        layer_bytes=tuple(layers),
        layer_routed_bytes=tuple(routed),
        embedding_bytes=embedding,
        output_bytes=output,
        other_bytes=other,
        matrix_bytes=matrices,
        parameters=count_parameters(arch, tensors),
        padding=padding,
    )


@dataclass(frozen=True)
class Settings:
    """Engine switches that change memory; the defaults are an engine's plain behaviour."""

    flash_attention: bool = False
    prompt_logits: bool = False  # transformers before 4.45
    gpu_layers: int | None = None  # llama.cpp -ngl: decoder layers on the GPUs; None: all + output
    cpu_moe_layers: int = 0  # llama.cpp --n-cpu-moe: routed experts of the first N layers on CPU
    tensor_split: tuple[float, ...] | None = None  # llama.cpp --tensor-split proportions
    memory_utilization: float = 1.0  # vLLM gpu_memory_utilization: the share of a GPU it takes
    mla_cache: str = "latent"  # see kv_cache.kv_row_values
    profile_rule: str = "v1"  # vLLM: see engines.vllm_profile_tokens
    # vLLM's max_num_batched_tokens and max_num_seqs for the profiling run; None: the defaults
    # (engines.vllm_profile_batch, which the API applies per GPU)
    profile_tokens: int | None = None
    profile_seqs: int | None = None


def estimate_inference(
    arch: Architecture,
    *,
    weights: WeightFormat,
    storage_types: Mapping[str, StorageType],
    engine: Engine,
    kv_format: StorageType,
    context: int,
    batch: int,
    devices: Sequence[Device],
    settings: Settings = Settings(),
    layout: WeightLayout | None = None,
) -> Estimate:
    """Memory to serve ``batch`` sequences of ``context`` tokens with ``engine`` on ``devices``.

    ``layout`` may be passed in when the same model and format are estimated repeatedly.
    """
    validate_numbers(context=context, batch=batch, gpus=len(devices))
    padding = expert_padding(engine, weights.id, len(devices))
    if layout is None or layout.format_id != weights.id or layout.padding != padding:
        layout = weight_layout(arch, weights, storage_types, padding)
    if engine.weights_only:
        return _theory(layout, weights, engine, kv_format, context, batch, devices, arch)

    notes: list[str] = []
    if padding is not None and arch.moe is not None:
        notes.append(
            f"{engine.name} pads each routed expert for its MoE kernel: the intermediate size per "
            f"GPU to a multiple of {padding.intermediate}, the hidden size to {padding.hidden}"
        )
    padded_context = ceil(context / engine.kv_padding) * engine.kv_padding
    if padded_context != context:
        notes.append(
            f"{engine.name} allocates the KV cache in steps of {engine.kv_padding} tokens: "
            f"{context} becomes {padded_context} per sequence"
        )
    if arch.max_position_embeddings and context > arch.max_position_embeddings:
        notes.append(
            f"context {context} exceeds the model's max_position_embeddings "
            f"({arch.max_position_embeddings})"
        )

    def kv(layers: Sequence[int], kv_share: float = 1.0) -> int:
        full = kv_cache_bytes(
            arch,
            context=padded_context,
            sequences=batch,
            storage=kv_format,
            layers=layers,
            sliding_window_cache=engine.sliding_window_cache,
            swa_extra=engine.swa_extra_tokens,
            mla_cache=settings.mla_cache,
        )
        return ceil(full * kv_share)

    n = len(devices)
    runtime = runtime_bytes(engine, gpus=n)
    if engine.split == "tensor":
        results, host = _tensor_parallel(arch, layout, devices, settings, kv), Components()

        def tp_activations(driver: bool) -> int:
            return compute_buffer_bytes(
                arch,
                engine,
                context_tokens=padded_context * batch,
                batch=batch,
                partial=False,
                flash_attention=settings.flash_attention,
                tensor_parallel=n,
                profile_tokens=settings.profile_tokens
                or vllm_profile_tokens(settings.profile_rule, padded_context),
                profile_seqs=settings.profile_seqs or VLLM_MAX_NUM_SEQS,
                profile_rule=settings.profile_rule,
                driver=driver,
            )

        on_driver, on_others = tp_activations(True), tp_activations(False)
        results = [
            replace(
                r,
                components=replace(
                    r.components,
                    activations=on_driver if r.index == 0 else on_others,
                    runtime=runtime,
                ),
            )
            for r in results
        ]
        if n > 1:
            notes.append(f"tensor parallel over {n} GPUs: each holds 1/{n} of every matrix")
    else:
        results, host, offloaded = _layer_split(arch, layout, engine, devices, settings, kv, notes)
        activations = compute_buffer_bytes(
            arch,
            engine,
            context_tokens=padded_context * batch,
            batch=batch,
            # Ollama's estimate charges every GPU its partial-offload graph when there are
            # several (llm/memory.go); llama.cpp itself builds the full graph whenever every
            # layer and the output are on GPUs.
            partial=(n > 1 and engine.id == "ollama") or not offloaded,
            flash_attention=settings.flash_attention,
            prompt_logits=settings.prompt_logits,
        )
        results = [
            replace(
                r,
                components=replace(
                    r.components,
                    activations=activations if r.layers or r.index == n - 1 else 0,
                    runtime=runtime,
                ),
            )
            for r in results
        ]
    details: dict[str, Any] = {}
    if engine.embeddings_on_host:
        notes.append(f"{engine.name} keeps the token embeddings in CPU RAM")
    if engine.id == "vllm":
        details = _vllm_budget(results, settings.memory_utilization)
        notes.append(
            f"vLLM takes {settings.memory_utilization:.0%} of each GPU "
            "(gpu_memory_utilization) and fills what the model leaves with KV cache; fits "
            "compares the model's need with that share"
        )
    return Estimate(
        engine=engine.id,
        weights_format=weights.id,
        kv_format=kv_format.id,
        context=context,
        batch=batch,
        parameters=layout.parameters,
        devices=tuple(results),
        host=host,
        notes=tuple(notes),
        details=details,
    )


KvFunction = Callable[..., int]


def _tensor_parallel(
    arch: Architecture,
    layout: WeightLayout,
    devices: Sequence[Device],
    settings: Settings,
    kv: KvFunction,
) -> list[DeviceEstimate]:
    n = len(devices)
    # Matrices are split over the ranks; vectors (norms, biases) are replicated.
    vectors = layout.total_bytes - layout.matrix_bytes
    weights_per_gpu = ceil(layout.matrix_bytes / n) + vectors
    all_layers = tuple(range(arch.num_layers))
    kv_per_gpu = kv(all_layers, _kv_heads_share(arch, n))
    budget = settings.memory_utilization
    return [
        DeviceEstimate(
            index=index,
            device=replace(
                device,
                capacity_bytes=int(device.capacity_bytes * budget)
                if device.capacity_bytes is not None
                else None,
            ),
            layers=all_layers,
            components=Components(weights=weights_per_gpu, kv_cache=kv_per_gpu),
        )
        for index, device in enumerate(devices)
    ]


def _layer_split(
    arch: Architecture,
    layout: WeightLayout,
    engine: Engine,
    devices: Sequence[Device],
    settings: Settings,
    kv: KvFunction,
    notes: list[str],
) -> tuple[list[DeviceEstimate], Components, bool]:
    """Layers over the GPUs; with -ngl below the layer count, the first layers stay on the CPU
    (llama.cpp: ``i_gpu_start = n_layer - n_gpu_layers``) and the output layer goes to the GPU
    only when n_gpu_layers exceeds the layer count. Returns whether everything is offloaded."""
    total_layers = arch.num_layers
    requested = settings.gpu_layers
    on_gpu = total_layers if requested is None else min(requested, total_layers)
    output_on_gpu = requested is None or requested > total_layers
    gpu_layers = list(range(total_layers - on_gpu, total_layers))
    cpu_layers = list(range(total_layers - on_gpu))
    cpu_moe = set(range(min(settings.cpu_moe_layers, total_layers)))
    if settings.tensor_split is not None and len(settings.tensor_split) != len(devices):
        raise InputError(
            f"tensor split has {len(settings.tensor_split)} parts for {len(devices)} GPUs",
            field="tensor_split",
        )
    runs = split_layers(gpu_layers, devices, settings.tensor_split)
    n = len(devices)
    results = []
    for index, (device, layers) in enumerate(zip(devices, runs, strict=True)):
        placed = sum(layout.layer_bytes[i] for i in layers)
        placed -= sum(layout.layer_routed_bytes[i] for i in layers if i in cpu_moe)
        if index == 0:
            placed += layout.other_bytes
            if not engine.embeddings_on_host:
                placed += layout.embedding_bytes
        if index == n - 1 and output_on_gpu:
            placed += layout.output_bytes
            if engine.embeddings_on_host and arch.tie_word_embeddings:
                # A tied model has no output.weight: llama.cpp loads token_embd a second
                # time (TENSOR_DUPLICATED) on the output layer's device.
                placed += layout.embedding_bytes
        results.append(
            DeviceEstimate(
                index=index,
                device=device,
                layers=layers,
                components=Components(weights=placed, kv_cache=kv(layers)),
            )
        )
    host_weights = sum(layout.layer_bytes[i] for i in cpu_layers)
    host_weights += sum(layout.layer_routed_bytes[i] for i in gpu_layers if i in cpu_moe)
    if engine.embeddings_on_host:
        host_weights += layout.embedding_bytes
    if not output_on_gpu:
        host_weights += layout.output_bytes
    host = Components(weights=host_weights, kv_cache=kv(cpu_layers))
    if cpu_layers:
        notes.append(
            f"{len(cpu_layers)} of {total_layers} layers stay on the CPU (weights and their KV "
            "cache in CPU RAM)"
        )
    if cpu_moe and arch.moe is not None:
        notes.append(f"the routed experts of the first {len(cpu_moe)} layers stay in CPU RAM")
    if n > 1:
        notes.append(
            f"layers split over {n} GPUs in proportion to "
            + ("--tensor-split" if settings.tensor_split else "their memory")
            + "; each GPU pays its own CUDA context and compute buffer"
        )
    return results, host, not cpu_layers and output_on_gpu and not cpu_moe


def _vllm_budget(results: Sequence[DeviceEstimate], utilization: float) -> dict[str, Any]:
    """What vLLM reserves and how much KV cache that leaves room for, per GPU."""
    if any(r.device.capacity_bytes is None for r in results):
        return {"gpu_memory_utilization": utilization}
    reserved = [r.device.capacity_bytes or 0 for r in results]
    other = [r.components.total - r.components.kv_cache for r in results]
    return {
        "gpu_memory_utilization": utilization,
        "reserved_bytes": reserved,
        "kv_cache_capacity_bytes": [max(0, a - b) for a, b in zip(reserved, other, strict=True)],
    }


def _kv_heads_share(arch: Architecture, gpus: int) -> float:
    """Share of the KV cache one rank holds: KV heads split over ranks, replicated when there
    are fewer heads than ranks; MLA's single latent is replicated on every rank."""
    if arch.mla is not None:
        return 1.0
    per_rank = ceil(arch.num_kv_heads / gpus)
    return per_rank / arch.num_kv_heads


def _theory(
    layout: WeightLayout,
    weights: WeightFormat,
    engine: Engine,
    kv_format: StorageType,
    context: int,
    batch: int,
    devices: Sequence[Device],
    arch: Architecture,
) -> Estimate:
    """The seed article's rule: every parameter at the format's bits, nothing else."""
    params = layout.parameters
    total = ceil(params.total * weights.storage.bits_per_weight / 8)
    n = len(devices)
    shares = [total // n + (1 if i < total % n else 0) for i in range(n)]
    ranges = split_layers(list(range(arch.num_layers)), devices)
    return Estimate(
        engine=engine.id,
        weights_format=weights.id,
        kv_format=kv_format.id,
        context=context,
        batch=batch,
        parameters=params,
        devices=tuple(
            DeviceEstimate(index=i, device=d, layers=r, components=Components(weights=s))
            for i, (d, r, s) in enumerate(zip(devices, ranges, shares, strict=True))
        ),
        host=Components(),
        notes=(
            f"theory: {params.total:,} parameters x {weights.storage.bits_per_weight:g} bits; "
            "no KV cache, buffers or runtime",
        ),
    )
