"""Where weights and KV cache go: contiguous layers per GPU (llama.cpp, transformers), or every
matrix split over the GPUs (tensor parallel, vLLM). Engines pick one and add their buffers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import ceil

from calc._errors import InputError
from calc.architecture import Architecture
from calc.breakdown import Components, Device, DeviceEstimate
from calc.layout import WeightLayout
from calc.plan import EngineOptions
from calc.records import record

# Bytes of KV cache for these layers, at a share of the KV heads (tensor parallel).
KvBytes = Callable[[Sequence[int], float], int]


@record
class Placement:
    """Weights and KV cache on each GPU and in CPU RAM, before buffers and runtime."""

    devices: tuple[DeviceEstimate, ...]
    host: Components
    offloaded: bool  # every layer and the output layer on the GPUs (routed experts may not be)
    notes: tuple[str, ...] = ()


@record
class Offload(EngineOptions):
    """llama.cpp's placement switches: ``-ngl`` (decoder layers on the GPUs; None: all and the
    output), ``--n-cpu-moe`` (routed experts of the first N layers in CPU RAM) and
    ``--tensor-split`` (each GPU's share of the layers)."""

    gpu_layers: int | None = None
    cpu_moe_layers: int = 0
    tensor_split: tuple[float, ...] | None = None
    # routed experts of the last N layers in CPU RAM: what --fit's -ot patterns do
    cpu_moe_last: int = 0


ALL_ON_GPUS = Offload()  # every layer on the GPUs, as the engines place them by default


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
    if total <= 0:
        raise InputError("tensor split needs a share above 0", field="tensor_split")
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


def place_layers(
    arch: Architecture,
    layout: WeightLayout,
    devices: Sequence[Device],
    kv: KvBytes,
    *,
    embeddings_on_host: bool,
    offload: Offload = ALL_ON_GPUS,
) -> Placement:
    """Layers over the GPUs; with -ngl below the layer count, the first layers stay on the CPU
    (llama.cpp: ``i_gpu_start = n_layer - n_gpu_layers``) and the output layer goes to the GPU
    only when n_gpu_layers exceeds the layer count."""
    total_layers = arch.num_layers
    requested = offload.gpu_layers
    on_gpu = total_layers if requested is None else min(requested, total_layers)
    output_on_gpu = requested is None or requested > total_layers
    gpu_layers = list(range(total_layers - on_gpu, total_layers))
    cpu_layers = list(range(total_layers - on_gpu))
    cpu_moe = set(range(min(offload.cpu_moe_layers, total_layers)))
    cpu_moe |= set(range(max(0, total_layers - offload.cpu_moe_last), total_layers))
    if offload.tensor_split is not None and len(offload.tensor_split) != len(devices):
        raise InputError(
            f"tensor split has {len(offload.tensor_split)} parts for {len(devices)} GPUs",
            field="tensor_split",
        )
    runs = split_layers(gpu_layers, devices, offload.tensor_split)
    placed = tuple(
        DeviceEstimate(
            index=index,
            device=device,
            layers=layers,
            components=Components(
                weights=_layer_weights(
                    arch,
                    layout,
                    layers,
                    cpu_moe,
                    first=index == 0,
                    output=index == len(devices) - 1 and output_on_gpu,
                    embeddings_on_host=embeddings_on_host,
                ),
                kv_cache=kv(layers, 1.0),
            ),
        )
        for index, (device, layers) in enumerate(zip(devices, runs, strict=True))
    )
    host_weights = sum(layout.layer_bytes[i] for i in cpu_layers)
    host_weights += sum(layout.layer_routed_bytes[i] for i in gpu_layers if i in cpu_moe)
    if embeddings_on_host:
        host_weights += layout.embedding_bytes + layout.per_layer_embedding_bytes
    if not output_on_gpu:
        host_weights += layout.output_bytes
    return Placement(
        devices=placed,
        host=Components(weights=host_weights, kv_cache=kv(cpu_layers, 1.0)),
        offloaded=not cpu_layers and output_on_gpu,
        notes=_layer_notes(arch, len(devices), cpu_layers, cpu_moe, offload),
    )


def _layer_weights(
    arch: Architecture,
    layout: WeightLayout,
    layers: Sequence[int],
    cpu_moe: set[int],
    *,
    first: bool,
    output: bool,
    embeddings_on_host: bool,
) -> int:
    """The weights one GPU holds: its layers less experts kept on the CPU; the first GPU also
    what sits outside the blocks, the last the output layer."""
    placed = sum(layout.layer_bytes[i] for i in layers)
    placed -= sum(layout.layer_routed_bytes[i] for i in layers if i in cpu_moe)
    if first:
        placed += layout.other_bytes
        if not embeddings_on_host:
            placed += layout.embedding_bytes + layout.per_layer_embedding_bytes
    if output:
        placed += layout.output_bytes
        if embeddings_on_host and arch.tie_word_embeddings:
            # A tied model has no output.weight: llama.cpp loads token_embd a second time
            # (TENSOR_DUPLICATED) on the output layer's device.
            placed += layout.embedding_bytes
    return placed


def _layer_notes(
    arch: Architecture, gpus: int, cpu_layers: Sequence[int], cpu_moe: set[int], offload: Offload
) -> tuple[str, ...]:
    notes = []
    if cpu_layers:
        notes.append(
            f"{len(cpu_layers)} of {arch.num_layers} layers stay on the CPU (weights and their KV "
            "cache in CPU RAM)"
        )
    if cpu_moe and arch.moe is not None:
        which = "last" if offload.cpu_moe_last else "first"
        notes.append(f"the routed experts of the {which} {len(cpu_moe)} layers stay in CPU RAM")
    if gpus > 1:
        notes.append(
            f"layers split over {gpus} GPUs in proportion to "
            + ("--tensor-split" if offload.tensor_split else "their memory")
            + "; each GPU pays its own CUDA context and compute buffer"
        )
    return tuple(notes)


def place_tensor_parallel(
    arch: Architecture,
    layout: WeightLayout,
    devices: Sequence[Device],
    kv: KvBytes,
) -> Placement:
    """Every matrix split over the GPUs, vectors (norms, biases) on each."""
    n = len(devices)
    vectors = layout.total_bytes - layout.matrix_bytes
    weights_per_gpu = ceil(layout.matrix_bytes / n) + vectors
    all_layers = tuple(range(arch.num_layers))
    kv_per_gpu = kv(all_layers, kv_heads_share(arch, n))
    placed = tuple(
        DeviceEstimate(
            index=index,
            device=device,
            layers=all_layers,
            components=Components(weights=weights_per_gpu, kv_cache=kv_per_gpu),
        )
        for index, device in enumerate(devices)
    )
    notes = (f"tensor parallel over {n} GPUs: each holds 1/{n} of every matrix",) if n > 1 else ()
    return Placement(devices=placed, host=Components(), offloaded=True, notes=notes)


def kv_heads_share(arch: Architecture, gpus: int) -> float:
    """Share of the KV cache one rank holds: KV heads split over ranks, replicated when there
    are fewer heads than ranks; MLA's single latent is replicated on every rank."""
    if arch.mla is not None:
        return 1.0
    per_rank = ceil(arch.num_kv_heads / gpus)
    return per_rank / arch.num_kv_heads
