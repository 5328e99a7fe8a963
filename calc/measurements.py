"""Published measurements, and how the estimator's figure for the same setup compares."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from calc._errors import CalcError, CatalogueError, InputError
from calc.api import run_finetune, run_inference
from calc.breakdown import Estimate
from calc.catalogue import Catalogue, Locator
from calc.engines import engine_by_name
from calc.engines.history import version_key
from calc.finetune import OBJECTIVES, FinetuneEstimate, FinetuneRequest
from calc.inputs import Mode, finetune_request, inference_request, parse
from calc.records import record
from calc.requests import InferenceRequest
from calc.units import GB, GIB, MB, MIB

MEASUREMENTS_FILE = "data/measurements.yaml"
UNIT_BYTES = {"GiB": GIB, "GB": GB, "MiB": MIB, "MB": MB, "B": 1}
# vLLM's KV cache size in tokens and its concurrency in sequences are counts, not bytes.
UNIT_COUNTS = {"tokens": 1, "sequences": 1, "tokens/s": 1}
UNIT_SCALE: dict[str, int] = {**UNIT_BYTES, **UNIT_COUNTS}
COMPONENTS = ("weights", "kv_cache", "activations", "runtime")


# The fields of a measurement that describe the source and what it measured; every other field
# is an input of the estimate (calc.inputs), read by the same parser as the calculator's.
DESCRIPTION_FIELDS = frozenset(
    {
        "id", "kind", "framework", "framework_version", "quantity", "estimate_of", "device",
        "value", "unit", "unit_as_printed", "unit_reading", "source", "not_modelled",
        "settings", "settings_reading", "quantity_reading", "quote", "model_note",
        "engine_version_note", "gpu_as_stated", "assumed", "counter",
    }
)  # fmt: skip


@record
class Measurement:
    id: str
    kind: Mode
    inputs: Mapping[str, Any]  # the setup, typed, by input name; what the source leaves out
    quantity: str
    estimate_of: str
    device: int | None
    value: float
    unit: str
    unit_as_printed: str
    unit_reading: str
    source: str
    not_modelled: str | None = None
    framework: str = ""
    counter: str = ""  # fine-tuning: the counter read (COUNTER_GROUPS)

    @property
    def model(self) -> str:
        return str(self.inputs.get("model", ""))

    @property
    def engine(self) -> str:
        return str(self.inputs.get("engine", ""))

    @property
    def engine_version(self) -> str | None:
        version = self.inputs.get("engine_version")
        return None if version is None else str(version)

    @property
    def weights(self) -> str:
        return str(self.inputs.get("weights", ""))

    @property
    def gpus(self) -> int:
        return int(self.inputs.get("gpus", 1))

    @property
    def gpu(self) -> str | None:
        gpu = self.inputs.get("gpu")
        return None if gpu is None else str(gpu)

    @property
    def finetune(self) -> FinetuneRequest | None:
        """The fine-tuning setup, for kind "finetune"."""
        return finetune_request(self.inputs)[0] if self.kind == "finetune" else None

    @property
    def measured_bytes(self) -> float:
        """The value in bytes (or tokens, or sequences for the counts)."""
        return self.value * UNIT_SCALE[self.unit]

    @property
    def runs_on(self) -> str:
        """The engine or training framework, for grouping."""
        return self.framework if self.kind == "finetune" else self.engine

    @property
    def groups(self) -> set[str]:
        """The summary rows the case counts in: its engine or framework, its kind, all."""
        return {self.runs_on, "all", "fine-tuning" if self.kind == "finetune" else "inference"}

    def request(self) -> InferenceRequest:
        return inference_request(self.inputs)


@record
class Comparison:
    measurement: Measurement
    estimate: Estimate | FinetuneEstimate

    @property
    def estimated_bytes(self) -> float:
        return estimated_quantity(self.estimate, self.measurement)

    @property
    def error(self) -> float:
        """Signed relative error: (estimate - measured) / measured."""
        measured = self.measurement.measured_bytes
        return (self.estimated_bytes - measured) / measured


def estimated_quantity(estimate: Estimate | FinetuneEstimate, measurement: Measurement) -> float:
    """The estimate's figure for exactly what the source measured."""
    if isinstance(estimate, FinetuneEstimate):
        return _training_quantity(estimate, measurement)
    what, device = measurement.estimate_of, measurement.device
    whole = _setup_figure(estimate, what, device)
    if whole is not None:
        return whole
    if device is not None and device >= len(estimate.devices):
        raise CalcError(f"device {device} but the setup has {len(estimate.devices)} GPU(s)")
    parts = (
        [estimate.devices[device].components]
        if device is not None
        else [d.components for d in estimate.devices]
    )
    if what == "total_bytes":
        return sum(c.total for c in parts)
    if what == "allocated_bytes":
        return sum(c.total - c.runtime for c in parts)
    if what == "resident_bytes":
        return sum(c.weights + c.kv_cache for c in parts)
    if what == "weights":  # vLLM's and transformers' weight figures include the vision tower
        tower = estimate.details.get("vision_weights_bytes") or [0] * len(estimate.devices)
        chosen = [tower[device]] if device is not None else tower
        return float(sum(c.weights for c in parts) + sum(chosen))
    return float(sum(getattr(c, what) for c in parts))


COUNTS = ("kv_cache_tokens", "max_concurrency")


def _setup_figure(estimate: Estimate, what: str, device: int | None) -> float | None:
    """Figures of the whole setup rather than a sum of components; None for the others."""
    if what == "host_bytes":
        return estimate.host_bytes
    if what == "kv_cache_all":
        return estimate.components.kv_cache + estimate.host.kv_cache
    if what in COUNTS:
        return _count(estimate, what)
    if what in SPEEDS:
        return _speed(estimate, what)
    if what == "kv_cache_capacity":
        capacities = estimate.details.get("kv_cache_capacity_bytes")
        if not capacities:
            raise CalcError("the KV capacity needs the GPU's memory")
        return int(capacities[device or 0])
    return None


SPEEDS = ("decode_tokens_per_s", "prefill_tokens_per_s", "aggregate_decode_tokens_per_s")


def _speed(estimate: Estimate, key: str) -> float:
    """Tokens per second from the estimate's speed, which needs every GPU's bandwidth and peak."""
    figure = (estimate.speed or {}).get(key)
    if figure is None:
        raise CalcError(f"the estimate has no {key} (the GPU's bandwidth and peak are needed)")
    return float(figure)


def _count(estimate: Estimate, key: str) -> float:
    """vLLM's KV cache size in tokens, or its concurrency, from the engine's details."""
    figure = estimate.details.get(key)
    if figure is None:
        raise CalcError(f"the estimate has no {key} (it needs vLLM and the GPU's memory)")
    return float(figure)


def _training_quantity(estimate: FinetuneEstimate, measurement: Measurement) -> int:
    chosen = estimate.devices[measurement.device or 0].components
    if measurement.estimate_of == "allocated_bytes":
        # bitsandbytes' paged optimizers keep their state in CUDA unified memory
        # (cudaMallocManaged), outside PyTorch's caching allocator, so PyTorch's counters
        # (max_memory_allocated, active_bytes) never include it.
        unseen = chosen.optimizer if estimate.request.paged_optimizer else 0
        return chosen.total - chosen.runtime - unseen
    if measurement.estimate_of == "total_bytes":
        return chosen.total
    raise CalcError(f"a fine-tuning estimate has no {measurement.estimate_of!r}")


# What a fine-tuning figure was read from, grouped as the validation page compares them: the
# estimate is PyTorch's allocated peak; reserved memory adds the caching allocator's
# fragmentation, nvidia-smi the CUDA context too; a card's capacity is an upper bound that the
# longest setting that still fit on it came close to.
COUNTER_GROUPS = (
    ("allocated or active", ("allocated", "active", "allocated_or_active")),
    ("reserved", ("reserved",)),
    ("nvidia-smi", ("nvidia_smi",)),
    ("a card's capacity (longest that fit)", ("gpu_capacity",)),
    ("not stated", ("not_stated",)),
)
COUNTERS = tuple(counter for _, counters in COUNTER_GROUPS for counter in counters)


def parse_measurement(d: Mapping[str, Any]) -> Measurement:
    """One entry of data/measurements.yaml; its setup goes through the calculator's parser."""
    kind: Mode = "finetune" if d.get("kind") == "finetune" else "inference"
    counter = str(d.get("counter", ""))
    if kind == "finetune" and counter not in COUNTERS:
        raise InputError(
            f"a fine-tuning measurement states the counter its figure was read from: one of "
            f"{', '.join(COUNTERS)}, got {counter or 'nothing'}",
            field="counter",
        )
    return Measurement(
        id=str(d["id"]),
        kind=kind,
        inputs=parse(kind, d, ignore=DESCRIPTION_FIELDS),
        quantity=str(d["quantity"]),
        estimate_of=str(d["estimate_of"]),
        device=d.get("device"),
        value=float(d["value"]),
        unit=str(d["unit"]),
        unit_as_printed=str(d["unit_as_printed"]),
        unit_reading=str(d["unit_reading"]),
        source=str(d["source"]),
        not_modelled=d.get("not_modelled"),
        framework=str(d.get("framework", "")),
        counter=counter,
    )


def parse_measurements(docs: Sequence[Mapping[str, Any]]) -> tuple[Measurement, ...]:
    return tuple(parse_measurement(d) for d in docs)


def check_measurements(
    docs: Sequence[Mapping[str, Any]],
    catalogue: Catalogue,
    *,
    locate: Locator,
    comparisons: dict[str, Comparison] | None = None,
) -> list[CatalogueError]:
    """Each modelled measurement must name a known model, format and GPU and estimate cleanly;
    one the estimator cannot model yet says why in ``not_modelled``. The comparisons the check
    computes are kept in ``comparisons`` by measurement id, for a caller that shows them."""
    problems = []
    for index, entry in enumerate(docs):
        try:
            measurement = parse_measurement(entry)
        except CalcError as error:
            field = getattr(error, "field", "")
            problems.append(
                CatalogueError(
                    str(error),
                    file=MEASUREMENTS_FILE,
                    line=locate(MEASUREMENTS_FILE, (index, field) if field else (index,)),
                    entry=str(entry.get("id", f"#{index + 1}")),
                    field=field,
                )
            )
            continue
        if measurement.not_modelled:
            continue
        try:
            comparison = compare(catalogue, measurement)
            comparison.error  # noqa: B018 - computing it is the check
        except CalcError as error:
            problems.append(
                CatalogueError(
                    f"{error} (if the estimator cannot model this yet, say why in not_modelled)",
                    file=MEASUREMENTS_FILE,
                    line=locate(MEASUREMENTS_FILE, (index,)),
                    entry=measurement.id,
                )
            )
            continue
        if comparisons is not None:
            comparisons[measurement.id] = comparison
    return problems


def compare(catalogue: Catalogue, measurement: Measurement) -> Comparison:
    if measurement.kind == "finetune":
        request, where = finetune_request(measurement.inputs)
        estimate = run_finetune(catalogue, request, **where)
        return Comparison(measurement, estimate)
    return Comparison(measurement, run_inference(catalogue, measurement.request()))


@record
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


# Fine-tuning cases by what trains; a preference or RL method counts as such whatever trains.
METHOD_GROUPS = (
    ("full and freeze", ("full", "freeze")),
    ("LoRA", ("lora",)),
    ("QLoRA", ("qlora",)),
    ("preference and RL", OBJECTIVES),
)


def _fine_tuning_groups(
    comparisons: Sequence[Comparison],
    groups: Sequence[tuple[str, Sequence[str]]],
    key: Callable[[Measurement], str],
) -> list[tuple[str, Summary]]:
    """The fine-tuning memory error by group, a case in the group its ``key`` names; groups
    with cases only."""
    tuned = [
        c for c in comparisons if c.measurement.kind == "finetune" and not is_speed(c.measurement)
    ]
    found = []
    for name, members in groups:
        summary = summarise([c for c in tuned if key(c.measurement) in members])
        if summary:
            found.append((name, summary))
    return found


def method_summaries(comparisons: Sequence[Comparison]) -> list[tuple[str, Summary]]:
    """The fine-tuning memory error by method group (METHOD_GROUPS)."""
    return _fine_tuning_groups(
        comparisons, METHOD_GROUPS, lambda m: m.finetune.method if m.finetune else ""
    )


def counter_summaries(comparisons: Sequence[Comparison]) -> list[tuple[str, Summary]]:
    """The fine-tuning memory error by the counter the figure was read from (COUNTER_GROUPS)."""
    return _fine_tuning_groups(comparisons, COUNTER_GROUPS, lambda m: m.counter)


# Issue 12's line between yesterday's releases and today's.
MID_2025 = "2025-07-01"


def release_range(measurement: Measurement) -> tuple[str, str] | None:
    """The modelled release range an inference case falls in, as (engine, "first to next"),
    with the first release's date; None for fine-tuning and unstated versions."""
    if measurement.kind == "finetune" or measurement.engine_version is None:
        return None
    engine = engine_by_name(measurement.engine)
    release = engine.release(measurement.engine_version)
    releases = engine.history.releases
    index = [r.version for r in releases].index(release.version)
    upper = releases[index + 1].version if index + 1 < len(releases) else "newest"
    span = f"{release.version} and later" if upper == "newest" else f"{release.version} to {upper}"
    return engine.name, span


def since_mid_2025(measurement: Measurement) -> bool:
    """Whether the case's release is one of mid-2025 or later (by the modelled release's date)."""
    if measurement.kind == "finetune" or measurement.engine_version is None:
        return False
    release = engine_by_name(measurement.engine).release(measurement.engine_version)
    return bool(release.date >= MID_2025)


def release_summaries(comparisons: Sequence[Comparison]) -> list[tuple[str, Summary]]:
    """The inference error by engine and modelled release range, oldest first, then for the
    releases since mid-2025, then for the cases that state no release."""
    ranges: dict[tuple[str, str], list[Comparison]] = {}
    unstated: list[Comparison] = []
    for c in comparisons:
        if c.measurement.kind == "finetune" or is_speed(c.measurement):
            continue
        key = release_range(c.measurement)
        if key is None:
            unstated.append(c)
        else:
            ranges.setdefault(key, []).append(c)
    found = []

    def order(key: tuple[str, str]) -> tuple[str, tuple[int, ...]]:
        return key[0], version_key(key[1].split(" ")[0])

    for (engine, span), cases in sorted(ranges.items(), key=lambda kv: order(kv[0])):
        summary = summarise(cases)
        if summary:
            found.append((f"{engine} {span}", summary))
    recent = [
        c for c in comparisons if since_mid_2025(c.measurement) and not is_speed(c.measurement)
    ]
    for label, cases in (("releases since mid-2025", recent), ("release not stated", unstated)):
        summary = summarise(cases)
        if summary:
            found.append((label, summary))
    return found


def is_speed(measurement: Measurement) -> bool:
    return measurement.estimate_of in SPEEDS


def speed_summaries(comparisons: Sequence[Comparison]) -> list[tuple[str, Summary]]:
    """The speed error by quantity, then within it by engine, GPU vendor and backend."""
    found = []
    labels = ("decode", "prefill", "decode, several sequences together")
    for what, label in zip(SPEEDS, labels, strict=True):
        cases = [c for c in comparisons if c.measurement.estimate_of == what]
        summary = summarise(cases)
        if summary:
            found.append((label, summary))
        for key in (_engine_of, _vendor_of, _backend_of):
            groups: dict[str, list[Comparison]] = {}
            for c in cases:
                groups.setdefault(key(c), []).append(c)
            for group, members in sorted(groups.items()):
                part = summarise(members)
                if part and len(groups) > 1:
                    found.append((f"{label}, {group}", part))
    return found


def _speed_of(c: Comparison) -> Mapping[str, Any]:
    return (c.estimate.speed or {}) if isinstance(c.estimate, Estimate) else {}


def _engine_of(c: Comparison) -> str:
    return f"engine {c.measurement.runs_on}"


def _vendor_of(c: Comparison) -> str:
    devices = c.estimate.devices if isinstance(c.estimate, Estimate) else ()
    return f"{devices[0].device.vendor or 'unknown'} GPUs" if devices else "unknown GPUs"


def _backend_of(c: Comparison) -> str:
    return f"backend {_speed_of(c).get('backend', '')}"


def summaries(comparisons: Sequence[Comparison]) -> list[tuple[str, Summary]]:
    """The memory error by engine or framework (alphabetically), then by kind, then over all
    cases; speed figures are summarised apart (speed_summaries)."""
    comparisons = [c for c in comparisons if not is_speed(c.measurement)]
    names = sorted({c.measurement.runs_on for c in comparisons})
    found = []
    for name in [*names, "inference", "fine-tuning", "all"]:
        summary = summarise([c for c in comparisons if name in c.measurement.groups])
        if summary:
            found.append((name, summary))
    return found
