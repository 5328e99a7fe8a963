"""Published measurements, and how the estimator's figure for the same setup compares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from calc._errors import CalcError, CatalogueError
from calc.api import InferenceRequest, run_inference
from calc.catalogue import Catalogue, Locator
from calc.estimate import Estimate
from calc.units import GB, GIB, MB, MIB

MEASUREMENTS_FILE = "data/measurements.yaml"
UNIT_BYTES = {"GiB": GIB, "GB": GB, "MiB": MIB, "MB": MB}


@dataclass(frozen=True)
class Measurement:
    id: str
    model: str
    engine: str
    engine_version: str
    weights: str
    kv_cache: str | None
    context: int | None  # None: the engine version's default
    batch: int | None
    gpus: int
    gpu: str
    quantity: str
    estimate_of: str
    value: float
    unit: str
    unit_as_printed: str
    unit_reading: str
    source: str

    @property
    def measured_bytes(self) -> int:
        return round(self.value * UNIT_BYTES[self.unit])

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
            engine_version=self.engine_version or None,
        )


@dataclass(frozen=True)
class Comparison:
    measurement: Measurement
    estimate: Estimate

    @property
    def estimated_bytes(self) -> int:
        value: int = getattr(self.estimate, self.measurement.estimate_of)
        return value

    @property
    def error(self) -> float:
        """Signed relative error: (estimate - measured) / measured."""
        measured = self.measurement.measured_bytes
        return (self.estimated_bytes - measured) / measured


def parse_measurements(docs: Sequence[Mapping[str, Any]]) -> tuple[Measurement, ...]:
    return tuple(
        Measurement(
            id=str(d["id"]),
            model=str(d["model"]),
            engine=str(d["engine"]),
            engine_version=str(d.get("engine_version", "")),
            weights=str(d["weights"]),
            kv_cache=d.get("kv_cache"),
            context=d.get("context"),
            batch=d.get("batch"),
            gpus=int(d["gpus"]),
            gpu=str(d["gpu"]),
            quantity=str(d["quantity"]),
            estimate_of=str(d["estimate_of"]),
            value=float(d["value"]),
            unit=str(d["unit"]),
            unit_as_printed=str(d["unit_as_printed"]),
            unit_reading=str(d["unit_reading"]),
            source=str(d["source"]),
        )
        for d in docs
    )


def check_measurements(
    docs: Sequence[Mapping[str, Any]], catalogue: Catalogue, *, locate: Locator
) -> list[CatalogueError]:
    """Each measurement must name a known model, format and GPU, and estimate cleanly."""
    problems = []
    for index, measurement in enumerate(parse_measurements(docs)):
        try:
            run_inference(catalogue, measurement.request())
        except CalcError as error:
            problems.append(
                CatalogueError(
                    str(error),
                    file=MEASUREMENTS_FILE,
                    line=locate(MEASUREMENTS_FILE, (index,)),
                    entry=measurement.id,
                )
            )
    return problems


def compare(catalogue: Catalogue, measurement: Measurement) -> Comparison:
    return Comparison(measurement, run_inference(catalogue, measurement.request()))
