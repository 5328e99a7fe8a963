"""What an estimate returns: bytes by kind, per device, with a total and a JSON form.

Nothing here computes memory; the engines fill these records and the edges format them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import field, fields
from typing import Any, Self

from calc.records import record, replace
from calc.tensors import ParameterCount

_KINDS: dict[type, tuple[str, ...]] = {}


def _kinds(cls: type) -> tuple[str, ...]:
    """A ByKind subclass's field names (dataclasses.fields is slow for the hot paths)."""
    names = _KINDS.get(cls)
    if names is None:
        names = _KINDS[cls] = tuple(f.name for f in fields(cls))
    return names


@record
class ByKind:
    """Bytes by kind: the total, the sum of two, and the JSON mapping (in field order) all
    follow the subclass's fields."""

    @property
    def total(self) -> int:
        return sum(getattr(self, name) for name in _kinds(type(self)))

    def __add__(self, other: Self) -> Self:
        mine, theirs = self.as_dict(), other.as_dict()
        return replace(self, **{key: mine[key] + theirs[key] for key in mine})

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _kinds(type(self))}

    @classmethod
    def sum_of(cls, parts: Iterable[Self]) -> Self:
        """The kind-by-kind sum of ``parts`` (all zero when there are none)."""
        total = cls()
        for part in parts:
            total = total + part
        return total


@record
class Components(ByKind):
    """Bytes by kind. ``runtime`` is memory outside the engine's own tensors."""

    weights: int = 0
    # a multimodal model's vision encoder and projector, and its image-encoding buffer
    vision: int = 0
    kv_cache: int = 0
    # hybrid models' recurrent layers: conv and SSM state per sequence (0 for pure attention)
    recurrent_state: int = 0
    activations: int = 0
    runtime: int = 0


@record
class Device:
    """One GPU the model is placed on: a name and, when known, how much memory it offers."""

    name: str = "GPU"
    capacity_bytes: int | None = None
    # what the speed estimate needs, where the catalogue knows the GPU
    bandwidth_bytes_s: float | None = None
    tflops: tuple[tuple[str, float], ...] = ()  # dense peak by data type
    vendor: str = ""
    architecture: str = ""
    unified_memory: bool = False


@record
class DeviceEstimate:
    index: int
    device: Device
    layers: tuple[int, ...]
    components: Components
    # Where the engine judges the fit itself (vLLM: its KV reserve against what the context
    # needs), the room it leaves; else capacity minus total.
    room: int | None = None

    @property
    def total_bytes(self) -> int:
        return self.components.total

    @property
    def headroom_bytes(self) -> int | None:
        if self.device.capacity_bytes is None:
            return None
        if self.room is not None:
            return self.room
        return self.device.capacity_bytes - self.total_bytes

    @property
    def fits(self) -> bool | None:
        headroom = self.headroom_bytes
        return None if headroom is None else headroom >= 0


@record
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
    ram_bytes: int | None = None  # the host RAM the reader has, where given
    # tokens per second (calc.speed.Speed.to_json), where every GPU's bandwidth and peak is known
    speed: Mapping[str, Any] | None = None
    # a server's capacity (calc.speed.Serving.to_json): vLLM, llama-server, Ollama
    serving: Mapping[str, Any] | None = None

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
    def host_fits(self) -> bool | None:
        """Whether what stays in CPU RAM fits the RAM given; None where none was given."""
        return None if self.ram_bytes is None else self.host_bytes <= self.ram_bytes

    @property
    def fits(self) -> bool | None:
        verdicts = [d.fits for d in self.devices]
        if None in verdicts:
            return None
        return all(verdicts) and self.host_fits is not False

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``--json`` object and the browser bridge's result."""
        return {
            "total_bytes": self.total_bytes,
            "components": self.components.as_dict(),
            "devices": [_device_json(d) for d in self.devices],
            "host_bytes": self.host_bytes,
            "host_components": self.host.as_dict(),
            "host_fits": self.host_fits,
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
            "speed": dict(self.speed) if self.speed is not None else None,
            "serving": dict(self.serving) if self.serving is not None else None,
        }


def _device_json(d: DeviceEstimate) -> dict[str, Any]:
    return {
        "index": d.index,
        "name": d.device.name,
        "capacity_bytes": d.device.capacity_bytes,
        "layers": len(d.layers),
        "total_bytes": d.total_bytes,
        "components": d.components.as_dict(),
        "headroom_bytes": d.headroom_bytes,
        "fits": d.fits,
    }
