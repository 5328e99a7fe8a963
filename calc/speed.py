"""Tokens per second: a memory-and-compute model of one decode step and of one prompt.

Decoding a token reads every weight the token passes through (for a mixture of experts, the
dense tensors and experts_per_token of the routed experts) and the KV cache of its context, once
per step; the time is those bytes over the GPU's memory bandwidth, plus a fixed cost per layer
(kernel launches and synchronisation), with the GPUs of a layer split working one after the
other and tensor-parallel ranks together. Weights in host RAM are read at the host's bandwidth.
A prompt is compute: two FLOPs per active parameter per token plus attention's T^2 terms,
against the GPU's dense peak for the data type the engine multiplies in. A decode step of
several sequences multiplies too: its compute time adds to its memory time (the kernels that
stream the weights do the arithmetic; they do not overlap a separate compute phase).

Each backend has one bandwidth efficiency, one per-layer cost and one compute efficiency,
calibrated on the published figures in ``data/measurements.yaml`` by
``scripts/calibrate_speed.py`` (which prints the fit and the error by backend and vendor).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import ceil
from typing import Any

from calc.architecture import SLIDING, Architecture
from calc.breakdown import Device, DeviceEstimate, Estimate
from calc.kv_cache import kv_cache_bytes
from calc.layout import WeightLayout
from calc.plan import Plan
from calc.records import record, replace


@record
class Backend:
    """How close one GPU backend comes to the hardware's peaks (fitted, see module doc)."""

    id: str
    name: str
    bandwidth: float  # share of peak memory bandwidth a decode step reaches
    layer_seconds: float  # fixed cost per layer and step (launches, synchronisation)
    compute: float  # share of dense peak a prompt's matrix products reach
    quantized_dtype: str  # the peak a prompt with quantised weights is timed against
    moe_layer_seconds: float = 0.0  # a MoE layer's extra cost per step (routing, expert kernels)
    moe_compute: float = 1.0  # a MoE prompt's share of the dense compute share (grouped GEMMs)
    context_bytes: int = 0  # the runtime's own memory per GPU and process (see RUNTIME_BYTES)


# id, name, bandwidth share, seconds per layer, compute share, quantised prompts' peak, MoE
# layer's extra seconds, MoE compute share; llama.cpp's CUDA backend multiplies quantised
# weights in int8 (MMQ), the others dequantise to 16 bits. Fitted by scripts/calibrate_speed.py
# on 235 llama-bench and llama-batched-bench figures (CUDA 40 decode / 31 prompt, ROCm 16 / 10,
# Metal 49 / 49, Vulkan 24 / 16): median |error| of decode 4.9%, 4.9%, 2.6%, 4.3%; of prompts
# 21.1%, 6.6%, 3.3%, 25.3%. Engines that sample and serve add their own time per token
# (Engine.token_seconds).
# The runtime's memory per GPU and process, outside the engine's buffers:
# - CUDA: the context with lazy module loading, 287,047,680 bytes ("shows a memory usage of:
#   287,047,680 bytes", https://github.com/pytorch/pytorch/pull/86509).
# - ROCm: "Two unrelated models each left the same ~0.4 GiB unexplained" on an RX 7900 XTX
#   (https://github.com/Quartermaster-Labs/Quartermaster/pull/24); llama.cpp's memory breakdown
#   shows 253 MiB "unaccounted" on headless MI50s.
# - Metal: nothing counts against the GPU's limit but the process's own buffers: ggml-metal
#   reports "*total = dev->mtl_device.recommendedMaxWorkingSetSize; *free = *total -
#   dev->mtl_device.currentAllocatedSize;" (ggml/src/ggml-metal/ggml-metal-device.m), so the
#   runtime's share is already inside the buffers it allocates.
# - Vulkan and SYCL: no figure from a GPU without a display was found; the CUDA context's size
#   stands in.
CUDA_CONTEXT_BYTES = 287_047_680
RUNTIME_BYTES = {
    "cuda": CUDA_CONTEXT_BYTES,
    "rocm": int(0.4 * 2**30),
    "metal": 0,
    "vulkan": CUDA_CONTEXT_BYTES,
    "sycl": CUDA_CONTEXT_BYTES,
}

BACKENDS: dict[str, Backend] = {
    b.id: replace(b, context_bytes=RUNTIME_BYTES[b.id])
    for b in (
        Backend("cuda", "CUDA", 0.85, 26e-6, 0.20, "int8", 60e-6, 0.60),
        Backend("rocm", "ROCm", 0.76, 0.0, 0.34, "fp16", 80e-6, 0.40),
        Backend("metal", "Metal", 0.94, 100e-6, 0.68, "fp16", 30e-6, 0.50),
        Backend("vulkan", "Vulkan", 0.85, 4e-6, 0.26, "fp16", 60e-6, 0.50),
        # no published SYCL figure was found to fit: ROCm's shares, a larger launch cost
        Backend("sycl", "SYCL", 0.76, 30e-6, 0.34, "fp16", 80e-6, 0.40),
    )
}

# The backend an engine uses on each vendor's GPUs unless told otherwise.
VENDOR_BACKENDS = {"NVIDIA": "cuda", "AMD": "rocm", "Apple": "metal", "Intel": "sycl"}

# Host RAM read by the CPU for layers or experts kept there: dual-channel DDR5-4800 peaks at
# 76.8 GB/s (2 channels x 64 bits x 4800 MT/s); a CPU reaches about 80% of it in practice.
HOST_BANDWIDTH = 76.8e9 * 0.8
# Weights in host RAM that a prompt's large batches use are copied to the GPU over PCIe 4.0 x16
# (31.5 GB/s peak per direction), as llama.cpp does for batches of 32 tokens and more.
PCIE_BANDWIDTH = 31.5e9 * 0.8


@record
class Speed:
    """Tokens per second for one sequence (and, for several, all of them together)."""

    prefill_tokens_per_s: float | None
    decode_tokens_per_s: float | None
    aggregate_decode_tokens_per_s: float | None
    backend: str
    limited_by: str

    def to_json(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        return {
            "prefill_tokens_per_s": rounded(self.prefill_tokens_per_s),
            "decode_tokens_per_s": rounded(self.decode_tokens_per_s),
            "aggregate_decode_tokens_per_s": rounded(self.aggregate_decode_tokens_per_s),
            "backend": self.backend,
            "limited_by": self.limited_by,
        }


def runtime_bytes(device: Device, asked: str | None = None) -> int:
    """The GPU runtime's own memory on ``device`` (its backend's context); CUDA's where the
    backend is unknown (a GPU given only by its memory size)."""
    backend = backend_of(device, asked)
    return CUDA_CONTEXT_BYTES if backend is None else backend.context_bytes


def backend_of(
    device: Device, asked: str | None = None, own: Mapping[str, Backend] | None = None
) -> Backend | None:
    """The backend asked for, else the vendor's usual one; an engine's ``own`` constants for it
    (MLX on Metal) where it has them."""
    ident = asked or VENDOR_BACKENDS.get(device.vendor, "")
    if own and ident in own:
        return own[ident]
    return BACKENDS.get(ident)


def peak_flops(device: Device, dtype: str) -> float | None:
    table = dict(device.tflops)
    for choice in (dtype, "fp16", "bf16", "fp32"):
        if choice in table:
            return table[choice] * 1e12
    return None


def estimate_speed(
    plan: Plan, layout: WeightLayout, estimate: Estimate, *, backend: str | None = None
) -> Speed | None:
    """The speed of ``plan`` as ``estimate`` places it; None where a GPU's bandwidth or peak is
    unknown (a GPU given only by its memory size)."""
    step = _step(plan, layout, estimate, backend)
    if step is None:
        return None
    decode_time, limit = step.decode_seconds(sequences=1)
    prefill = step.prefill_seconds(plan.context)
    aggregate = None
    if plan.batch > 1:
        seconds, _ = step.decode_seconds(sequences=plan.batch)
        aggregate = plan.batch / seconds
    return Speed(
        prefill_tokens_per_s=plan.context / prefill if prefill else None,
        decode_tokens_per_s=1 / decode_time,
        aggregate_decode_tokens_per_s=aggregate,
        backend=step.backends[0].name,
        limited_by=limit,
    )


@record
class Serving:
    """A server's capacity for the plan: the tokens its KV cache holds, the sequences it runs at
    once, the tokens each may hold, and their decode rate together with every cache full."""

    kv_cache_tokens: int
    sequences: int
    tokens_per_sequence: int
    aggregate_decode_tokens_per_s: float | None

    def to_json(self) -> dict[str, Any]:
        rate = self.aggregate_decode_tokens_per_s
        return {
            "kv_cache_tokens": self.kv_cache_tokens,
            "sequences": self.sequences,
            "tokens_per_sequence": self.tokens_per_sequence,
            "aggregate_decode_tokens_per_s": None if rate is None else round(rate, 1),
        }


def estimate_serving(
    plan: Plan, layout: WeightLayout, estimate: Estimate, *, backend: str | None = None
) -> Serving | None:
    """The plan's engine as a server (None for one that is not): its capacity and, where the
    GPUs' bandwidth and peak are known, the aggregate decode rate at that capacity."""
    shape = plan.engine.serving(plan, estimate)
    if shape is None:
        return None
    tokens, sequences = shape
    if sequences < 1:
        return Serving(tokens, 0, 0, None)
    each = min(tokens // sequences, plan.context)
    step = _step(plan, layout, estimate, backend)
    rate = None
    if step is not None:
        seconds, _ = step.decode_seconds(sequences=sequences, depth=each)
        rate = sequences / seconds
    return Serving(tokens, sequences, each, rate)


def _step(
    plan: Plan, layout: WeightLayout, estimate: Estimate, backend: str | None
) -> _Step | None:
    devices = [d for d in estimate.devices if d.layers or d.components.weights]
    if not devices:
        return None
    backends = [backend_of(d.device, backend, plan.engine.backends) for d in devices]
    if any(b is None for b in backends) or any(
        d.device.bandwidth_bytes_s is None or peak_flops(d.device, "fp16") is None for d in devices
    ):
        return None
    chosen = [b for b in backends if b is not None]
    return _Step(plan, layout, estimate, devices, chosen, _tensor_parallel(plan, devices))


def _tensor_parallel(plan: Plan, devices: Sequence[DeviceEstimate]) -> bool:
    """Every GPU holds every layer: the ranks of a tensor-parallel group work together."""
    everything = tuple(range(plan.arch.num_layers))
    return len(devices) > 1 and all(d.layers == everything for d in devices)


class _Step:
    """Bytes and FLOPs of one step, per GPU."""

    def __init__(
        self,
        plan: Plan,
        layout: WeightLayout,
        estimate: Estimate,
        devices: Sequence[DeviceEstimate],
        backends: Sequence[Backend],
        parallel: bool,
    ) -> None:
        self.plan, self.layout, self.estimate = plan, layout, estimate
        self.devices, self.backends, self.parallel = devices, backends, parallel
        arch = plan.arch
        self.expert_share = arch.moe.experts_per_token / arch.moe.num_experts if arch.moe else 1.0
        self.quantized = plan.weights.storage.bits_per_weight < 16
        # per layer, the bytes one token reads: all but the idle routed experts
        idle = 1 - self.expert_share
        self.active_bytes = [
            total - routed * idle
            for total, routed in zip(layout.layer_bytes, layout.layer_routed_bytes, strict=True)
        ]
        self.all_active = sum(self.active_bytes)

    def prompt_peak(self, device: Device, backend: Backend) -> float:
        """The dense peak a prompt's products run at on this GPU, times the backend's share."""
        dtype = backend.quantized_dtype if self.quantized else "fp16"
        share = backend.compute * (backend.moe_compute if self.plan.arch.moe else 1.0)
        return (peak_flops(device, dtype) or 1) * share

    def fixed_seconds(self, layers: Sequence[int], backend: Backend) -> float:
        """The step's fixed cost on one GPU: per layer, and more per MoE layer."""
        arch = self.plan.arch
        moe = sum(1 for i in layers if arch.ffn_kind(i) == "moe") if arch.moe else 0
        return len(layers) * backend.layer_seconds + moe * backend.moe_layer_seconds

    def active_ratio(self, layers: Sequence[int]) -> float:
        """The share of these layers' bytes one token reads (all but the idle experts)."""
        total = sum(self.layout.layer_bytes[i] for i in layers)
        return sum(self.active_bytes[i] for i in layers) / total if total else 1.0

    def expert_ratio(self, sequences: int) -> float:
        """The share of routed experts a step of ``sequences`` tokens touches."""
        return 1 - (1 - self.expert_share) ** sequences

    def kv_read(self, layers: Sequence[int], context: int) -> int:
        """KV cache bytes one token reads at a depth of ``context`` tokens."""
        return kv_cache_bytes(
            self.plan.arch,
            context=context,
            sequences=1,
            storage=self.plan.kv_format,
            layers=layers,
            mla_cache=self.plan.engine.mla_cache(self.plan),
        )

    def decode_seconds(self, *, sequences: int, depth: int | None = None) -> tuple[float, str]:
        """One step of ``sequences`` sequences, each with ``depth`` tokens (the plan's context)
        in the cache."""
        plan = self.plan
        share = 1 / len(self.devices) if self.parallel else 1.0
        times = []
        for d, backend in zip(self.devices, self.backends, strict=True):
            bandwidth = (d.device.bandwidth_bytes_s or 1) * backend.bandwidth
            ratio = self.active_ratio(d.layers)
            if sequences > 1 and plan.arch.moe is not None:
                ratio = max(ratio, min(1.0, self.expert_ratio(sequences)))
            weights = d.components.weights * ratio
            kv = self.kv_read(d.layers, depth or plan.context) * share * sequences
            state = 2 * d.components.recurrent_state * sequences / max(plan.batch, 1)
            memory = (weights + kv + state) / bandwidth
            flops = 2 * self.layout.parameters.active * share * sequences
            compute = flops / self.prompt_peak(d.device, backend)
            fixed = self.fixed_seconds(d.layers, backend)
            times.append((memory + compute + fixed, "compute" if compute > memory else "memory"))
        host = self.host_read() / HOST_BANDWIDTH
        if self.parallel:
            seconds, limit = max(times)
        else:
            seconds = sum(t for t, _ in times)
            limit = max(times)[1]
        if host > seconds:
            limit = "host RAM"
        limits = {"memory": "GPU memory bandwidth", "compute": "GPU compute"}
        engine = plan.engine.token_seconds * sequences  # sampling and the server loop
        return seconds + host + engine, limits.get(limit, limit)

    def host_read(self) -> float:
        """Bytes the CPU reads per token: layers and experts kept in host RAM (the token
        embeddings there are read one row at a time, which is nothing)."""
        host = self.estimate.host.weights - self.layout.embedding_bytes
        host -= self.layout.per_layer_embedding_bytes
        if host <= 0:
            return 0.0
        return host * (self.expert_share if self.plan.arch.moe else 1.0)

    def prefill_seconds(self, tokens: int) -> float:
        arch = self.plan.arch
        times = []
        share = 1 / len(self.devices) if self.parallel else 1.0
        for d, backend in zip(self.devices, self.backends, strict=True):
            params = self.layout.parameters.active * self.layer_share(d.layers) * share
            flops = 2 * params * tokens + attention_flops(arch, d.layers, tokens) * share
            peak = self.prompt_peak(d.device, backend)
            fixed = self.fixed_seconds(d.layers, backend) * ceil(tokens / 512)
            times.append(flops / peak + fixed)
        total = max(times) if self.parallel else sum(times)
        host = self.estimate.host.weights - self.layout.embedding_bytes
        host -= self.layout.per_layer_embedding_bytes
        if host > 0:  # copied to the GPU once per batch of 512 tokens
            total += host * ceil(tokens / 512) / PCIE_BANDWIDTH
        return total

    def layer_share(self, layers: Sequence[int]) -> float:
        """These layers' share of the model's active parameters (by bytes read)."""
        part = sum(self.active_bytes[i] for i in layers)
        return part / self.all_active if self.all_active else 0.0


def attention_flops(arch: Architecture, layers: Sequence[int], tokens: int) -> float:
    """QK^T and attention x V over a causal prompt: 2 x 2 x (T^2 / 2) x heads x head size per
    layer, a sliding layer's keys capped at its window."""
    total = 0.0
    for i in layers:
        if not arch.keeps_kv(i):
            continue
        span = tokens
        if arch.layer_kinds[i] == SLIDING and arch.sliding_window:
            span = min(tokens, arch.sliding_window)
        heads, size = arch.num_attention_heads, arch.attention_shape(i)[1]
        total += 2 * tokens * span * heads * size
    return total
