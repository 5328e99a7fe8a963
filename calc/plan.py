"""A resolved plan: one request with every name looked up and every default applied, once.

The estimator, the notes that name the defaults and the calculator's placeholders all read the
same frozen :class:`Plan`, so they cannot disagree. Engines build the engine-specific parts
(:class:`EngineOptions`); ``calc.api.resolve`` builds the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import TYPE_CHECKING, Any

from calc.architecture import Architecture
from calc.breakdown import Device
from calc.formats import StorageType, WeightFormat
from calc.records import record

if TYPE_CHECKING:  # annotations only: importing calc.engines here would import every engine
    from calc.engines.base import Engine
    from calc.engines.history import Release

# Limits that catch typos, not real deployments: a 100M-token context or 64 GPUs in one
# tensor-parallel group are beyond anything an engine runs.
MAX_CONTEXT = 100_000_000
MAX_BATCH = 65_536
MAX_ACCUMULATION = 65_536  # micro-batches per optimizer step
MAX_GPUS = 64


@record
class EngineOptions:
    """An engine's own settings after defaults (none for engines without any)."""


@record
class Default:
    """Inputs a default decided: their values (for the page's placeholders) and the words the
    estimate's first note uses for them."""

    values: Mapping[str, object]
    words: str


@record
class Plan:
    model_key: str  # catalogue id, or the config's canonical JSON
    arch: Architecture
    engine: Engine[Any, Any]
    release: Release
    weights: WeightFormat
    kv_format: StorageType
    context: int
    batch: int
    devices: tuple[Device, ...]
    flash_attention: bool
    vision: bool = False  # the vision tower is loaded (the model has one, and it is on)
    backend: str | None = None  # the GPU backend asked for; None: each GPU vendor's usual one
    options: EngineOptions = EngineOptions()
    storage_types: Mapping[str, StorageType] = field(
        default_factory=dict, compare=False, repr=False
    )
    defaults: tuple[Default, ...] = ()
    notes: tuple[str, ...] = ()
    asked_version: str | None = None
    ram_bytes: int | None = None  # host RAM the reader has, where given

    def default_values(self) -> dict[str, object]:
        """Every input a default decided, with its value: what the calculator shows as each
        empty field's placeholder."""
        values: dict[str, object] = {}
        for default in self.defaults:
            values.update(default.values)
        return values

    def defaults_note(self) -> str | None:
        """The note that names the release and the defaults it applied."""
        words = [d.words for d in self.defaults if d.words]
        if not words:
            return None
        version = self.release.version
        which = self.asked_version or f"{version} (the newest modelled)"
        return f"{self.engine.name} {which} defaults (as from release {version}): " + ", ".join(
            words
        )
