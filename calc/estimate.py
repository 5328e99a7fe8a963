"""Inference memory: combine the components into a per-device breakdown.

parse (architecture) -> tensors -> place on devices -> one pure function per component ->
:class:`Estimate`. Nothing here formats bytes or reads a file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import ceil
from typing import Any

from calc._errors import InputError
from calc.architecture import Architecture
from calc.engines import Engine, compute_buffer_bytes, runtime_bytes
from calc.formats import StorageType, WeightFormat, tensor_bytes, tensor_storage
from calc.kv_cache import kv_cache_bytes
from calc.tensors import WEIGHT, ParameterCount, count_parameters, model_tensors

# Limits that catch typos, not real deployments: a 100M-token context or 64 GPUs in one
# tensor-parallel group are beyond anything an engine runs.
MAX_CONTEXT = 100_000_000
MAX_BATCH = 65_536
MAX_GPUS = 64


@dataclass(frozen=True)
class Components:
    """Bytes by kind. ``runtime`` is memory outside the engine's own tensors."""

    weights: int = 0
    kv_cache: int = 0
    activations: int = 0
    runtime: int = 0

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.activations + self.runtime

    def __add__(self, other: Components) -> Components:
        return Components(
            weights=self.weights + other.weights,
            kv_cache=self.kv_cache + other.kv_cache,
            activations=self.activations + other.activations,
            runtime=self.runtime + other.runtime,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "weights": self.weights,
            "kv_cache": self.kv_cache,
            "activations": self.activations,
            "runtime": self.runtime,
        }


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

    @property
    def components(self) -> Components:
        total = Components()
        for device in self.devices:
            total = total + device.components
        return total

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
        }


def split_layers(num_layers: int, devices: Sequence[Device]) -> list[tuple[int, ...]]:
    """Contiguous layer ranges per device, in proportion to capacity (llama.cpp's default
    ``--tensor-split`` follows each device's memory); equal when capacities are unknown.
    Largest remainders go to the first devices."""
    weights = [d.capacity_bytes or 1 for d in devices]
    if any(d.capacity_bytes is None for d in devices):
        weights = [1] * len(devices)
    total = sum(weights)
    exact = [num_layers * w / total for w in weights]
    counts = [int(x) for x in exact]
    order = sorted(range(len(devices)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: num_layers - sum(counts)]:
        counts[i] += 1
    ranges, start = [], 0
    for count in counts:
        ranges.append(tuple(range(start, start + count)))
        start += count
    return ranges


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
    embedding_bytes: int  # token_embd
    output_bytes: int  # output head and final norm: with the last layer
    other_bytes: int  # outside the blocks (vision tower, projector): with the first device
    matrix_bytes: int  # all tensors of two or more dimensions, for tensor-parallel sharding
    parameters: ParameterCount

    @property
    def total_bytes(self) -> int:
        return sum(self.layer_bytes) + self.embedding_bytes + self.output_bytes + self.other_bytes


def weight_layout(
    arch: Architecture, weights: WeightFormat, storage_types: Mapping[str, StorageType]
) -> WeightLayout:
    tensors = model_tensors(arch)
    layers = [0] * arch.num_layers
    embedding = output = other = matrices = 0
    for tensor in tensors:
        size = tensor_bytes(tensor, tensor_storage(tensor, weights, arch, storage_types))
        if tensor.kind == WEIGHT and len(tensor.shape) >= 2:
            matrices += size
        if tensor.layer is not None:
            layers[tensor.layer] += size
        elif tensor.role == "token_embd":
            embedding += size
        elif tensor.role in ("output", "output_norm"):
            output += size
        else:
            other += size
    return WeightLayout(
        format_id=weights.id,
        layer_bytes=tuple(layers),
        embedding_bytes=embedding,
        output_bytes=output,
        other_bytes=other,
        matrix_bytes=matrices,
        parameters=count_parameters(arch, tensors),
    )


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
    layout: WeightLayout | None = None,
) -> Estimate:
    """Memory to serve ``batch`` sequences of ``context`` tokens with ``engine`` on ``devices``.

    ``layout`` may be passed in when the same model and format are estimated repeatedly.
    """
    validate_numbers(context=context, batch=batch, gpus=len(devices))
    if layout is None or layout.format_id != weights.id:
        layout = weight_layout(arch, weights, storage_types)
    if engine.weights_only:
        return _theory(layout, weights, engine, kv_format, context, batch, devices, arch)

    notes: list[str] = []
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

    host = Components()
    if engine.embeddings_on_host:
        host = Components(weights=layout.embedding_bytes)
        notes.append(f"{engine.name} keeps the token embeddings in CPU RAM")

    def kv(layers: Sequence[int], kv_share: float = 1.0) -> int:
        full = kv_cache_bytes(
            arch,
            context=padded_context,
            sequences=batch,
            storage=kv_format,
            layers=layers,
            sliding_window_cache=engine.sliding_window_cache,
            swa_extra=engine.swa_extra_tokens,
        )
        return ceil(full * kv_share)

    n = len(devices)
    activations = compute_buffer_bytes(arch, engine, context_tokens=padded_context * batch, gpus=n)
    runtime = runtime_bytes(engine, gpus=n)
    results: list[DeviceEstimate] = []
    if engine.split == "tensor":
        # Matrices are split over the ranks; vectors (norms, biases) are replicated.
        vectors = layout.total_bytes - layout.matrix_bytes
        weights_per_gpu = ceil(layout.matrix_bytes / n) + vectors
        all_layers = tuple(range(arch.num_layers))
        kv_per_gpu = kv(all_layers, _kv_heads_share(arch, n))
        for index, device in enumerate(devices):
            results.append(
                DeviceEstimate(
                    index=index,
                    device=device,
                    layers=all_layers,
                    components=Components(
                        weights=weights_per_gpu,
                        kv_cache=kv_per_gpu,
                        activations=activations,
                        runtime=runtime,
                    ),
                )
            )
        if n > 1:
            notes.append(f"tensor parallel over {n} GPUs: each holds 1/{n} of every matrix")
    else:
        ranges = split_layers(arch.num_layers, devices)
        for index, (device, layers) in enumerate(zip(devices, ranges, strict=True)):
            placed = sum(layout.layer_bytes[i] for i in layers)
            if index == 0:
                placed += layout.other_bytes
                if not engine.embeddings_on_host:
                    placed += layout.embedding_bytes
            if index == n - 1:
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
                    components=Components(
                        weights=placed,
                        kv_cache=kv(layers),
                        activations=activations if layers or index == n - 1 else 0,
                        runtime=runtime,
                    ),
                )
            )
        if n > 1:
            notes.append(
                f"layers split over {n} GPUs in proportion to their memory; each GPU pays its "
                "own CUDA context and compute buffer"
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
    )


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
    ranges = split_layers(arch.num_layers, devices)
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
