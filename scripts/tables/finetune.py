"""The fine-tuning tables, laid out as LLaMA-Factory's: one model per size column, one row per
method, at two sequence lengths."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from calc import (
    GB,
    GIB,
    INPUTS,
    LORA_GROUPS,
    TRAINERS,
    Catalogue,
    FinetuneRequest,
    run_finetune,
)
from scripts.messages import Text, text
from scripts.tables.common import Sources

FINETUNE_SIZES = (
    ("7B", "qwen2.5-7b"),
    ("14B", "qwen2.5-14b"),
    ("32B", "qwen2.5-32b"),
    ("72B", "qwen2.5-72b"),
)
# Assumed for every cell; each row adds its method.
SETTINGS: dict[str, Any] = {"micro_batch": 1, "grad_checkpointing": True, "flash_attention": True}
FINETUNE_ROWS: tuple[tuple[Text, dict[str, Any]], ...] = (
    (text("Full, mixed precision (AdamW, fp32 master)"), {"method": "full", "precision": "amp"}),
    (text("Full, pure bf16 (AdamW)"), {"method": "full", "precision": "bf16"}),
    (text("Freeze (last 2 layers train)"), {"method": "freeze", "freeze_trainable_layers": 2}),
    (text("LoRA r=16, all projections"), {"method": "lora"}),
    (text("QLoRA r=16, NF4 base"), {"method": "qlora"}),
)
SEQUENCE_LENGTHS = (1024, 4096)
# Preference and RL training as TRL 1.9 runs it by default (calc.finetune), at 1,024 tokens of
# prompt and completion; a DPO or ORPO sample is a pair.
PREFERENCE_ROWS: tuple[tuple[Text, dict[str, Any]], ...] = (
    (text("DPO, LoRA r=16 (reference: the adapters disabled)"), {"method": "dpo"}),
    (
        text("DPO, full, pure bf16 (a frozen reference copy)"),
        {"method": "dpo", "tuning": "full", "precision": "bf16"},
    ),
    (text("ORPO, LoRA r=16 (no reference)"), {"method": "orpo"}),
    (text("KTO, LoRA r=16"), {"method": "kto"}),
    (text("GRPO, LoRA r=16, 256-token completions, beta 0"), {"method": "grpo"}),
    (
        text("GRPO, full, pure bf16, beta 0.04 (a frozen reference copy)"),
        {"method": "grpo", "tuning": "full", "precision": "bf16", "kl_beta": 0.04},
    ),
    (text("PPO, LoRA r=16 (a value model and a reward model)"), {"method": "ppo"}),
    (text("Reward model, LoRA r=16 (a score head, no vocabulary logits)"), {"method": "reward"}),
)
PREFERENCE_LENGTH = 1024


@dataclass(frozen=True)
class FinetuneRow:
    label: Text
    cells: list[str]


def finetune_table(
    catalogue: Catalogue, seq_len: int, table: Sequence[tuple[Text, dict[str, Any]]] = FINETUNE_ROWS
) -> list[FinetuneRow]:
    rows = []
    for label, options in table:
        cells = []
        for _size, model in FINETUNE_SIZES:
            request = FinetuneRequest(**{**SETTINGS, **options, "seq_len": seq_len})
            total = run_finetune(catalogue, request, model=model).total_bytes
            cells.append(f"{total / GIB:,.0f} ({total / GB:,.0f})")
        rows.append(FinetuneRow(label, cells))
    return rows


def _at(seq_len: int) -> Callable[[Sources], dict[str, Any]]:
    def context(s: Sources) -> dict[str, Any]:
        rows = finetune_table(s.catalogue, seq_len)
        return {"rows": rows, "sizes": FINETUNE_SIZES, "seq_len": seq_len}

    return context


def _preference(s: Sources) -> dict[str, Any]:
    rows = finetune_table(s.catalogue, PREFERENCE_LENGTH, PREFERENCE_ROWS)
    return {"rows": rows, "sizes": FINETUNE_SIZES, "seq_len": PREFERENCE_LENGTH}


@dataclass(frozen=True)
class TrainerRow:
    tool: str
    release: str
    date: str
    cells: list[str]  # as TRAINER_FIELDS
    qlora: list[str]  # what the profile sets for QLoRA beyond LoRA's (QLORA_ITEMS)
    source: str


# The fields a profile sets, in the table's order (calc.trainers), as the tool sets them for LoRA
TRAINER_FIELDS = (
    ("grad_checkpointing", "lora"),
    ("activation_offloading", "lora"),
    ("lora_rank", "lora"),
    ("lora_targets", "lora"),
    ("lora_dropout", "lora"),
    ("adapter_precision", "lora"),
    ("chunked_loss", "lora"),
    ("fused_loss", "lora"),
    ("loss_chunk_gib", "lora"),
    ("optimizer", "lora"),
    ("precision", "lora"),
    ("sharding", "lora"),
    ("accumulate_unsharded", "lora"),
    ("weights_dtype", "lora"),
)

# What a profile sets for QLoRA alone, each as the phrase the table gives a value
QLORA_ITEMS = (
    ("adapter_precision", {"bf16": "adapters in bf16", "fp32": "adapters in fp32"}),
    ("kbit_upcast", {True: "PEFT's fp32 upcast"}),
    ("double_quant", {False: "no double quantisation"}),
    ("quantize_output", {True: "output layer in 4 bits"}),
    ("fp16_quant_state", {True: "quantised from fp16"}),
    ("keeps_graph", {True: "keeps the last step's outputs"}),
)


# A chosen value as the calculator labels it: the optimizer, the sharding library
CHOICE_LABELS = {
    item.field_name: dict(item.choices)
    for item in INPUTS
    if item.field_name in ("optimizer", "sharding")
}


def _cell(value: Any, name: str = "") -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value in CHOICE_LABELS.get(name, {}):
        return str(CHOICE_LABELS[name][value])
    if isinstance(value, tuple):
        named = [name for name, members in LORA_GROUPS.items() if members == value]
        return named[0] if named else ", ".join(value)
    return "" if value is None else str(value)


def trainer_rows() -> list[TrainerRow]:
    """Each modelled release of each tool with the defaults it runs LoRA with (cumulative)."""
    rows = []
    for profile in TRAINERS.values():
        for release in profile.releases:
            values = {
                method: profile.defaults(release.version, method, method, seq_len=2048)
                for method in ("lora", "qlora")
            }
            cells = [_cell(values["lora"].get(name), name) for name, _ in TRAINER_FIELDS]
            rows.append(
                TrainerRow(
                    profile.name,
                    release.version,
                    release.date,
                    cells,
                    _qlora_items(values["qlora"], values["lora"]),
                    release.source,
                )
            )
    return rows


def _qlora_items(qlora: dict[str, Any], lora: dict[str, Any]) -> list[str]:
    """The QLoRA settings a profile makes, as phrases: QLORA_ITEMS, then an optimizer QLoRA
    alone changes (LitGPT's paged AdamW)."""
    items = [
        phrases[qlora[name]]
        for name, phrases in QLORA_ITEMS
        if name in qlora and qlora[name] in phrases
    ]
    if qlora.get("optimizer") != lora.get("optimizer") and "optimizer" in qlora:
        items.append(_cell(qlora["optimizer"], "optimizer"))
    return items


def _trainers(s: Sources) -> dict[str, Any]:
    return {"rows": trainer_rows()}


# One template, one table per sequence length; the preference and RL methods in another.
TABLES = {
    **{f"finetune-{n}": ("finetune", _at(n)) for n in SEQUENCE_LENGTHS},
    "finetune-preference": ("finetune-preference", _preference),
    "trainers": ("trainers", _trainers),
}
