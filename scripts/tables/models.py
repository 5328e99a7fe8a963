"""The per-model tables (every catalogue model at the common formats) and the "which GPUs fit"
view."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from calc import GIB, Catalogue, Model
from scripts.messages import Text, text
from scripts.tables.common import GUIDE_CONTEXT, Sources, anchor, estimate, first_url, gb, gib

LONG_CONTEXT = 32768
# The GPU the tables' speed columns are estimated on (where the model fits on one)
SPEED_GPU = "h200-sxm-141gb"
# Formats in each model's table, with the engine that runs them.
MODEL_FORMATS = (
    ("bf16", "vllm"),
    ("fp8_e4m3", "vllm"),
    ("awq_4bit_g128", "vllm"),
    ("q8_0", "llama.cpp"),
    ("q6_k", "llama.cpp"),
    ("q5_k_m", "llama.cpp"),
    ("q4_k_m", "llama.cpp"),
    ("q3_k_m", "llama.cpp"),
    ("q2_k", "llama.cpp"),
)
# The "which GPUs fit" view: GGUF files from best to smallest, on these setups.
FIT_LADDER = ("fp16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k", "iq2_xxs")
FIT_SETUPS = (
    ("rtx-3060-12gb", 1),
    ("rtx-4060-ti-16gb", 1),
    ("rtx-4090", 1),
    ("rtx-5090", 1),
    ("rtx-4090", 2),
    ("l40s", 1),
    ("a100-80gb-sxm", 1),
    ("h200-sxm-141gb", 1),
    ("mi300x", 1),
    ("h100-sxm-80gb", 8),
)


@dataclass(frozen=True)
class ModelRow:
    format: str
    engine: str
    weights_gib: str
    kv_gib: str
    total_gib: str
    total_gb: str
    long_gib: str
    decode: str | Text  # tokens per second on SPEED_GPU, or "does not fit"
    prefill: str


@dataclass(frozen=True)
class ModelSection:
    model: Model
    anchor: str
    facts: list[Text]
    params_link: str  # where the published parameter count comes from; "" when no link
    long_context: int
    rows: list[ModelRow]


# A page of model tables per Hugging Face organisation, at most this many models each, so that
# the pages stay light however large the catalogue grows
MODELS_PER_PAGE = 40


@dataclass(frozen=True)
class ModelPage:
    slug: str  # the page is tables/models/<slug>.md, served at tables/models/<slug>/
    title: str | Text  # the organisation, and which part of its models when they fill several
    models: tuple[Model, ...]


def model_pages(catalogue: Catalogue) -> list[ModelPage]:
    """The catalogue's models by organisation (the owner in ``hf_repo``), in catalogue order."""
    groups: dict[str, list[Model]] = {}
    for model in catalogue.models.values():
        groups.setdefault(page_slug(organisation(model)), []).append(model)
    pages = []
    for slug, models in groups.items():
        chunks = range(0, len(models), MODELS_PER_PAGE)
        for part, start in enumerate(chunks, start=1):
            title: str | Text = organisation(models[0])
            if len(chunks) > 1:
                title = text(
                    "%(name)s (%(part)s of %(parts)s)", name=title, part=part, parts=len(chunks)
                )
            name = slug if part == 1 else f"{slug}-{part}"
            pages.append(ModelPage(name, title, tuple(models[start : start + MODELS_PER_PAGE])))
    return pages


def organisation(model: Model) -> str:
    return model.hf_repo.split("/")[0]


def page_slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "models"


def model_page_of(catalogue: Catalogue) -> dict[str, str]:
    """Each model id's page slug."""
    return {m.id: page.slug for page in model_pages(catalogue) for m in page.models}


@dataclass(frozen=True)
class IndexRow:
    model: Model
    page: str
    anchor: str
    params_b: str
    active_b: str
    layers: int
    context: str


def model_index(catalogue: Catalogue) -> list[IndexRow]:
    pages = model_page_of(catalogue)
    rows = []
    for model in catalogue.models.values():
        arch, active = model.arch, model.active_params_published
        rows.append(
            IndexRow(
                model=model,
                page=pages[model.id],
                anchor=anchor(model.id),
                params_b=f"{model.params_published / 1e9:,.1f}",
                active_b=f"{active / 1e9:,.1f}" if arch.moe and active else "",
                layers=arch.num_layers,
                context=f"{arch.max_position_embeddings:,}" if arch.max_position_embeddings else "",
            )
        )
    return rows


def model_sections(
    catalogue: Catalogue, models: Iterable[Model] | None = None
) -> list[ModelSection]:
    sections = []
    for model in catalogue.models.values() if models is None else models:
        limit = model.arch.max_position_embeddings or LONG_CONTEXT
        long_context = min(LONG_CONTEXT, limit)
        sections.append(
            ModelSection(
                model=model,
                anchor=anchor(model.id),
                facts=_facts(model),
                params_link=first_url(model.params_source),
                long_context=long_context,
                rows=[_row(catalogue, model, w, e, long_context) for w, e in MODEL_FORMATS],
            )
        )
    return sections


def _row(catalogue: Catalogue, model: Model, weights: str, engine: str, long: int) -> ModelRow:
    short = estimate(catalogue, model.id, weights, engine)
    longer = estimate(catalogue, model.id, weights, engine, context=long)
    timed = estimate(catalogue, model.id, weights, engine, gpu=SPEED_GPU)
    speed = timed.speed if timed.fits else None
    c = short.components
    return ModelRow(
        format=catalogue.weight_format(weights).name,
        engine=engine,
        weights_gib=gib(c.weights + short.host.weights),
        kv_gib=gib(c.kv_cache),
        total_gib=gib(short.total_bytes),
        total_gb=gb(short.total_bytes),
        long_gib=gib(longer.total_bytes),
        decode=f"{speed['decode_tokens_per_s']:,.0f}" if speed else text("does not fit"),
        prefill=f"{speed['prefill_tokens_per_s']:,.0f}" if speed else "",
    )


def _facts(model: Model) -> list[Text]:
    arch = model.arch
    facts = [text("%(n)sB parameters", n=f"{model.params_published / 1e9:,.2f}")]
    if arch.moe:
        active = model.active_params_published
        if active:
            facts.append(text("%(n)sB active", n=f"{active / 1e9:,.1f}"))
        facts.append(
            text(
                "%(experts)s experts, %(k)s per token",
                experts=arch.moe.num_experts,
                k=arch.moe.experts_per_token,
            )
        )
    facts.append(text("%(n)s layers", n=arch.num_layers))
    if arch.mla:
        mla = arch.mla
        facts.append(
            text(
                "MLA, latent %(rank)s + RoPE %(rope)s",
                rank=mla.kv_lora_rank,
                rope=mla.qk_rope_head_dim,
            )
        )
    else:
        facts.append(
            text(
                "%(heads)s heads, %(kv)s KV heads of %(dim)s",
                heads=arch.num_attention_heads,
                kv=arch.num_kv_heads,
                dim=arch.head_dim,
            )
        )
    if arch.sliding_window and "sliding" in arch.layer_kinds:
        facts.append(
            text(
                "%(n)s of %(layers)s layers slide over %(window)s tokens",
                n=arch.layer_kinds.count("sliding"),
                layers=arch.num_layers,
                window=arch.sliding_window,
            )
        )
    if arch.max_position_embeddings:
        facts.append(text("context up to %(n)s", n=f"{arch.max_position_embeddings:,}"))
    return facts


@dataclass(frozen=True)
class FitRow:
    name: str
    href: str  # the model's section, relative to the GPU page
    cells: list[str]


@dataclass(frozen=True)
class FitTable:
    columns: list[str]
    rows: list[FitRow] = field(default_factory=list)


def fit_table(catalogue: Catalogue) -> FitTable:
    pages = model_page_of(catalogue)
    columns = []
    for gpu_id, count in FIT_SETUPS:
        gpu = catalogue.gpus[gpu_id]
        prefix = f"{count}x " if count > 1 else ""
        short = re.sub(r"^(GeForce|NVIDIA|AMD Instinct|AMD Radeon|AMD)\s+", "", gpu.name)
        columns.append(f"{prefix}{short} ({count * gpu.usable_bytes / GIB:,.0f} GiB)")
    rows = []
    for model in catalogue.models.values():
        on_gpus: dict[str, int] = {}
        cells = [_best_fit(catalogue, model, gpu, count, on_gpus) for gpu, count in FIT_SETUPS]
        rows.append(FitRow(model.name, f"../models/{pages[model.id]}/#{anchor(model.id)}", cells))
    return FitTable(columns=columns, rows=rows)


def _best_fit(
    catalogue: Catalogue, model: Model, gpu: str, count: int, on_gpus: dict[str, int]
) -> str:
    """The most faithful GGUF file of the ladder that fits, or "-". A format whose weights
    alone (``on_gpus``: what llama.cpp puts on the GPUs, all but the token embeddings, by
    format) outweigh the GPUs' memory together cannot fit, and is passed over unestimated."""
    room = count * catalogue.gpus[gpu].usable_bytes
    for weights in FIT_LADDER:
        if weights not in on_gpus:
            fitted = estimate(catalogue, model.id, weights, "llama.cpp")
            on_gpus[weights] = fitted.components.weights
        if on_gpus[weights] > room:
            continue
        if estimate(catalogue, model.id, weights, "llama.cpp", gpus=count, gpu=gpu).fits:
            return catalogue.weight_format(weights).name
    return "-"


def _models(s: Sources) -> dict[str, Any]:
    return {"rows": model_index(s.catalogue)}


def model_page_context(s: Sources, page: ModelPage) -> dict[str, Any]:
    """What templates/model-page.md.j2 renders one page of model tables from."""
    return {
        "page": page,
        "sections": model_sections(s.catalogue, page.models),
        "context": GUIDE_CONTEXT,
        "speed_gpu": s.catalogue.gpus[SPEED_GPU].name,
    }


def _fit(s: Sources) -> dict[str, Any]:
    return {"table": fit_table(s.catalogue), "context": GUIDE_CONTEXT, "ladder": FIT_LADDER}


TABLES = {"models": ("models", _models), "gpu-fit": ("gpu-fit", _fit)}
