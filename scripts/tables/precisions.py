"""The number-format table: every format in data/precisions.yaml, GGUF mixes measured on one
model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from calc import Catalogue, Model, Precision, weight_layout
from scripts.messages import Text, text
from scripts.tables.common import Sources, first_url

# The model whose Q4_K_M file size the issue tracker and the article cite.
REFERENCE_MODEL = "deepseek-r1-distill-qwen-32b"
GROUPS = {"float": "Floating point", "integer": "Integer", "block": "Block-scaled"}
GGUF_MIX, GGUF_TENSOR = "GGUF file type (mix)", "GGUF tensor type"


@dataclass(frozen=True)
class PrecisionRow:
    name: str
    group: Text
    layout: Text
    bits_per_weight: str
    max_normal: str
    min_normal: str
    source: str
    notes: str


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if 1e-4 <= abs(value) < 1e7 else f"{value:.4g}"


def _group(p: Precision) -> Text:
    if p.family == "gguf" and p.scope == "gguf":
        return text(GGUF_MIX)
    if p.family == "gguf":
        return text(GGUF_TENSOR)
    return text(GROUPS[p.kind])


def _layout(catalogue: Catalogue, p: Precision) -> Text:
    if p.sign_bits is not None:
        return text(
            "%(sign)s + %(exponent)s + %(mantissa)s",
            sign=p.sign_bits,
            exponent=p.exponent_bits,
            mantissa=p.mantissa_bits,
        )
    if p.block_size and p.block_bytes:
        return text("%(n)s values in %(bytes)s bytes", n=p.block_size, bytes=p.block_bytes)
    if p.block_size:
        return text("blocks of %(n)s", n=p.block_size)
    if p.mix_base:
        return text("mix over %(base)s", base=catalogue.precisions[p.mix_base].name)
    return text("%(n)s bits", n=p.bits)


def precision_rows(catalogue: Catalogue) -> list[PrecisionRow]:
    rows = [
        PrecisionRow(
            name=p.name,
            group=_group(p),
            layout=_layout(catalogue, p),
            bits_per_weight=_mix_bits(catalogue, p),
            max_normal=_number(p.max_normal),
            min_normal=_number(p.min_normal),
            source=first_url(p.source),
            notes=p.notes,
        )
        for p in catalogue.precisions.values()
    ]
    order = list(GROUPS.values())
    return sorted(
        rows,
        key=lambda r: (
            order.index(r.group.message) if r.group.message in order else 9,
            str(r.group),
        ),
    )


def _mix_bits(catalogue: Catalogue, p: Precision) -> str:
    """A GGUF mix has no single bits per weight: report it on the reference model."""
    if p.scope != "gguf" or p.id not in catalogue.weight_formats:
        return f"{p.bits_per_weight:g}"
    model = catalogue.models[REFERENCE_MODEL]
    total = file_bytes(catalogue, model, p.id)
    return f"{total * 8 / model.params_published:.2f}"


def file_bytes(catalogue: Catalogue, model: Model, weights: str) -> int:
    """The model's weights in one format: the size of its file."""
    fmt = catalogue.weight_format(weights)
    return weight_layout(model.arch, fmt, catalogue.storage_types).total_bytes


def _context(s: Sources) -> dict[str, Any]:
    return {"rows": precision_rows(s.catalogue)}


TABLES = {"precisions": ("precisions", _context)}
