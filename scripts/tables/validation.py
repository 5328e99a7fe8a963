"""The validation table: every published measurement next to the estimate for the same setup,
and the error by engine or framework."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from calc import (
    UNIT_SCALE,
    Comparison,
    Measurement,
    Summary,
    counter_summaries,
    method_summaries,
    release_summaries,
    speed_summaries,
    summaries,
)
from scripts.tables.common import Sources


@dataclass(frozen=True)
class ValidationRow:
    measurement: Measurement
    model: str
    measured: str
    estimated: str
    error: str


@dataclass(frozen=True)
class SummaryRow:
    engine: str
    cases: int
    median: str
    p90: str


def validation(sources: Sources) -> dict[str, Any]:
    catalogue = sources.catalogue
    rows, comparisons, skipped = [], [], []
    for m in sources.measurements:
        if m.not_modelled:
            skipped.append(m)
            continue
        comparison = sources.compare(m)
        comparisons.append(comparison)
        unit = UNIT_SCALE[m.unit]
        rows.append(
            ValidationRow(
                measurement=m,
                model=catalogue.models[m.model].name,
                measured=f"{m.value:,.2f} {m.unit}",
                estimated=f"{comparison.estimated_bytes / unit:,.2f} {m.unit}",
                error=f"{comparison.error * 100:+.1f}%",
            )
        )
    return {
        "rows": rows,
        "skipped": skipped,
        "summaries": summary_rows(comparisons),
        "releases": summary_rows(comparisons, release_summaries),
        "methods": summary_rows(comparisons, method_summaries),
        "counters": summary_rows(comparisons, counter_summaries),
        "speed": summary_rows(comparisons, speed_summaries),
    }


def summary_rows(
    comparisons: list[Comparison],
    group: Callable[[list[Comparison]], list[tuple[str, Summary]]] = summaries,
) -> list[SummaryRow]:
    return [
        SummaryRow(
            name,
            summary.cases,
            f"{summary.median_abs_error * 100:.1f}%",
            f"{summary.p90_abs_error * 100:.1f}%",
        )
        for name, summary in group(comparisons)
    ]


def _context(s: Sources) -> dict[str, Any]:
    return validation(s)


TABLES = {"validation": ("validation", _context)}
