"""The table of every input: its command-line option, what it applies to, its bounds and
default, from the estimator's input table (calc.inputs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from calc import ENGINES, INPUTS, Input
from scripts.tables.common import Sources

MODE_WORDS = {"inference": "inference", "finetune": "fine-tuning"}


@dataclass(frozen=True)
class InputRow:
    name: str
    option: str
    modes: str
    applies: str
    bounds: str
    default: str
    help: str


def _number(value: float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:g}"


def _bounds(item: Input) -> str:
    if item.choices:
        return ", ".join(str(v) for v in item.values)
    if item.minimum is None and item.maximum is None:
        return ""
    low = high = ""
    if item.minimum is not None:
        low = f"{'>' if item.above_minimum else '≥'} {_number(item.minimum)}"
    if item.maximum is not None:
        high = f"{'<' if item.below_maximum else '≤'} {_number(item.maximum)}"
        if item.finetune_maximum is not None:
            high += f" ({_number(item.finetune_maximum)} fine-tuning)"
    unit = f" {item.unit}" if item.unit else ""
    return " and ".join(part for part in (low, high) if part) + unit


def _default(item: Input) -> str:
    words = []
    for mode in item.modes:
        value = item.default_text(mode)
        text = item.default_rule if value is None else str(value)
        if text:
            words.append(f"{text} ({MODE_WORDS[mode]})" if len(item.modes) > 1 else text)
    return "; ".join(dict.fromkeys(words))


def input_rows() -> list[InputRow]:
    rows = []
    for item in INPUTS:
        applies = ", ".join(ENGINES[e].name for e in item.engines) or ", ".join(item.methods)
        rows.append(
            InputRow(
                name=item.name,
                option=item.option + (f" {item.metavar}" if item.metavar else ""),
                modes=", ".join(MODE_WORDS[mode] for mode in item.modes),
                applies=applies or "all",
                bounds=_bounds(item),
                default=_default(item),
                help=item.help,
            )
        )
    return rows


def _context(s: Sources) -> dict[str, Any]:
    return {"rows": input_rows()}


TABLES = {"inputs": ("inputs", _context)}
