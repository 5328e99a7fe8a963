"""The GPU table: every GPU in data/gpus.yaml with what software can allocate of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from calc import GPU, MIB, Catalogue
from scripts.tables.common import Sources, gib


@dataclass(frozen=True)
class GpuRow:
    gpu: GPU
    usable_gib: str
    usable_mib: str


def gpu_rows(catalogue: Catalogue) -> list[GpuRow]:
    return [
        GpuRow(gpu=g, usable_gib=gib(g.usable_bytes), usable_mib=f"{g.usable_bytes // MIB:,}")
        for g in sorted(catalogue.gpus.values(), key=lambda g: (g.vendor, g.usable_bytes, g.name))
    ]


def _context(s: Sources) -> dict[str, Any]:
    return {"rows": gpu_rows(s.catalogue)}


TABLES = {"gpus": ("gpus", _context)}
