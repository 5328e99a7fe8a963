"""Published measurements, and how the estimator's figure for the same setup compares."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from calc._errors import CalcError, CatalogueError
from calc.api import InferenceRequest, run_finetune, run_inference
from calc.breakdown import Estimate
from calc.catalogue import Catalogue, Locator
from calc.finetune import FinetuneEstimate, FinetuneRequest, parse_lora_targets
from calc.units import GB, GIB, MB, MIB

MEASUREMENTS_FILE = "data/measurements.yaml"
UNIT_BYTES = {"GiB": GIB, "GB": GB, "MiB": MIB, "MB": MB}
COMPONENTS = ("weights", "kv_cache", "activations", "runtime")


@dataclass(frozen=True)
class Measurement:
    id: str
    model: str
    engine: str
    engine_version: str | None
    weights: str
    kv_cache: str | None
    context: int | None  # None: the engine version's default
    batch: int | None
    gpus: int
    gpu: str | None
    gpu_memory_gib: float | None
    flash_attention: bool | None
    gpu_layers: int | None
    gpu_memory_utilization: float | None
    max_num_seqs: int | None
    max_num_batched_tokens: int | None
    quantity: str
    estimate_of: str
    device: int | None
    value: float
    unit: str
    unit_as_printed: str
    unit_reading: str
    source: str
    not_modelled: str | None = None
    kind: str = "inference"
    finetune: FinetuneRequest | None = None  # the setup, for kind "finetune"
    framework: str = ""

    @property
    def measured_bytes(self) -> int:
        return round(self.value * UNIT_BYTES[self.unit])

    @property
    def runs_on(self) -> str:
        """The engine or training framework, for grouping."""
        return self.framework if self.kind == "finetune" else self.engine

    def request(self) -> InferenceRequest:
        return InferenceRequest(
            model=self.model,
            weights=self.weights,
            engine=self.engine,
            context=self.context,
            batch=self.batch,
            kv_cache=self.kv_cache,
            gpus=self.gpus,
            gpu=self.gpu,
            gpu_memory_bytes=round(self.gpu_memory_gib * GIB) if self.gpu_memory_gib else None,
            engine_version=self.engine_version,
            flash_attention=self.flash_attention,
            gpu_layers=self.gpu_layers,
            gpu_memory_utilization=self.gpu_memory_utilization,
            max_num_seqs=self.max_num_seqs,
            max_num_batched_tokens=self.max_num_batched_tokens,
        )


@dataclass(frozen=True)
class Comparison:
    measurement: Measurement
    estimate: Estimate | FinetuneEstimate

    @property
    def estimated_bytes(self) -> int:
        return estimated_quantity(self.estimate, self.measurement)

    @property
    def error(self) -> float:
        """Signed relative error: (estimate - measured) / measured."""
        measured = self.measurement.measured_bytes
        return (self.estimated_bytes - measured) / measured


def estimated_quantity(estimate: Estimate | FinetuneEstimate, measurement: Measurement) -> int:
    """The estimate's figure for exactly what the source measured."""
    what, device = measurement.estimate_of, measurement.device
    if isinstance(estimate, FinetuneEstimate):
        chosen = estimate.devices[device or 0].components
        if what == "allocated_bytes":
            # bitsandbytes' paged optimizers keep their state in CUDA unified memory
            # (cudaMallocManaged), outside PyTorch's caching allocator, so PyTorch's counters
            # (max_memory_allocated, active_bytes) never include it.
            unseen = chosen.optimizer if estimate.request.paged_optimizer else 0
            return chosen.total - chosen.runtime - unseen
        if what == "total_bytes":
            return chosen.total
        raise CalcError(f"a fine-tuning estimate has no {what!r}")
    if what == "host_bytes":
        return estimate.host_bytes
    if what == "kv_cache_capacity":
        capacities = estimate.details.get("kv_cache_capacity_bytes")
        if not capacities:
            raise CalcError("the KV capacity needs the GPU's memory")
        return int(capacities[device or 0])
    parts = (
        [estimate.devices[device].components]
        if device is not None and device < len(estimate.devices)
        else [d.components for d in estimate.devices]
    )
    if device is not None and device >= len(estimate.devices):
        raise CalcError(f"device {device} but the setup has {len(estimate.devices)} GPU(s)")
    if what == "total_bytes":
        return sum(c.total for c in parts)
    if what == "allocated_bytes":
        return sum(c.total - c.runtime for c in parts)
    if what == "resident_bytes":
        return sum(c.weights + c.kv_cache for c in parts)
    return sum(getattr(c, what) for c in parts)


def _finetune_request(d: Mapping[str, Any]) -> FinetuneRequest:
    return FinetuneRequest(
        method=str(d["method"]),
        precision=str(d.get("precision", "bf16")),
        optimizer=str(d.get("optimizer", "adamw")),
        lora_rank=int(d.get("lora_rank", 16)),
        lora_targets=parse_lora_targets(str(d.get("lora_targets", "all"))),
        seq_len=int(d.get("seq_len") or 1),
        micro_batch=int(d["micro_batch"]),
        grad_checkpointing=bool(d.get("grad_checkpointing", False)),
        gpus=int(d["gpus"]),
        zero=int(d.get("zero", 0)),
        offload=str(d.get("offload", "none")),
        chunked_loss=bool(d.get("chunked_loss", False)),
        optimizer_in_backward=bool(d.get("optimizer_in_backward", False)),
        activation_offloading=bool(d.get("activation_offloading", False)),
        compiled=bool(d.get("compile", False)),
        adapter_precision=str(d.get("adapter_precision", "fp32")),
        lora_dropout=float(d.get("lora_dropout", 0.0)),
        fused_qkv=bool(d.get("fused_qkv", False)),
    )


def parse_measurements(docs: Sequence[Mapping[str, Any]]) -> tuple[Measurement, ...]:
    return tuple(
        Measurement(
            id=str(d["id"]),
            model=str(d["model"]),
            engine=str(d.get("engine", "")),
            engine_version=d.get("engine_version"),
            weights=str(d.get("weights", "")),
            kv_cache=d.get("kv_cache"),
            context=d.get("context"),
            batch=d.get("batch"),
            gpus=int(d.get("gpus", 1)),
            gpu=d.get("gpu"),
            gpu_memory_gib=d.get("gpu_memory_gib"),
            flash_attention=d.get("flash_attention"),
            gpu_layers=d.get("gpu_layers"),
            gpu_memory_utilization=d.get("gpu_memory_utilization"),
            max_num_seqs=d.get("max_num_seqs"),
            max_num_batched_tokens=d.get("max_num_batched_tokens"),
            quantity=str(d["quantity"]),
            estimate_of=str(d["estimate_of"]),
            device=d.get("device"),
            value=float(d["value"]),
            unit=str(d["unit"]),
            unit_as_printed=str(d["unit_as_printed"]),
            unit_reading=str(d["unit_reading"]),
            source=str(d["source"]),
            not_modelled=d.get("not_modelled"),
            kind=str(d.get("kind", "inference")),
            finetune=_finetune_request(d) if d.get("kind") == "finetune" else None,
            framework=str(d.get("framework", "")),
        )
        for d in docs
    )


def check_measurements(
    docs: Sequence[Mapping[str, Any]], catalogue: Catalogue, *, locate: Locator
) -> list[CatalogueError]:
    """Each modelled measurement must name a known model, format and GPU and estimate cleanly;
    one the estimator cannot model yet says why in ``not_modelled``."""
    problems = []
    for index, measurement in enumerate(parse_measurements(docs)):
        if measurement.not_modelled:
            continue
        try:
            compare(catalogue, measurement).error  # noqa: B018 - computing it is the check
        except CalcError as error:
            problems.append(
                CatalogueError(
                    f"{error} (if the estimator cannot model this yet, say why in not_modelled)",
                    file=MEASUREMENTS_FILE,
                    line=locate(MEASUREMENTS_FILE, (index,)),
                    entry=measurement.id,
                )
            )
    return problems


def compare(catalogue: Catalogue, measurement: Measurement) -> Comparison:
    if measurement.finetune is not None:
        estimate = run_finetune(
            catalogue, measurement.finetune, model=measurement.model, gpu=measurement.gpu
        )
        return Comparison(measurement, estimate)
    return Comparison(measurement, run_inference(catalogue, measurement.request()))


@dataclass(frozen=True)
class Summary:
    cases: int
    median_abs_error: float
    p90_abs_error: float


def summarise(comparisons: Sequence[Comparison]) -> Summary | None:
    errors = sorted(abs(c.error) for c in comparisons)
    if not errors:
        return None
    p90 = errors[min(len(errors) - 1, round(0.9 * (len(errors) - 1)))]
    return Summary(len(errors), statistics.median(errors), p90)
