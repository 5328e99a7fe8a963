"""The seed article's tables: the DeepSeek-R1 family at four precisions, theory against the
estimate, and the article's three measured Ollama setups part by part."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from calc import (
    GB,
    Catalogue,
    Comparison,
    Estimate,
    InferenceRequest,
    Model,
    context_curve,
    run_inference,
    svg_chart,
)
from scripts.messages import Text, text
from scripts.tables.common import GUIDE_CONTEXT, Sources, estimate, gb, gib

# The article's table: the DeepSeek-R1 family, in its order.
ARTICLE_MODELS = (
    "deepseek-r1-distill-qwen-1.5b",
    "deepseek-r1-distill-qwen-7b",
    "deepseek-r1-distill-llama-8b",
    "deepseek-r1-distill-qwen-14b",
    "deepseek-r1-distill-qwen-32b",
    "deepseek-r1-distill-llama-70b",
    "deepseek-r1",
)
# The article's four precisions, and the GGUF file a reader would run for each.
ARTICLE_FORMATS = (
    ("FP32", "fp32", 4),
    ("FP16", "fp16", 2),
    ("INT8", "q8_0", 1),
    ("INT4", "q4_k_m", 0.5),
)


@dataclass(frozen=True)
class ArticleCell:
    theory_gb: str  # params x bytes / 10^9, the article's arithmetic
    real_gib: str
    real_gb: str
    host_gib: str


@dataclass(frozen=True)
class ArticleRow:
    name: str
    params_b: str
    cells: list[ArticleCell]


def article_rows(catalogue: Catalogue) -> list[ArticleRow]:
    rows = []
    for ident in ARTICLE_MODELS:
        model = catalogue.models[ident]
        cells = []
        for _label, weights, bytes_per_param in ARTICLE_FORMATS:
            real = estimate(catalogue, ident, weights, "llama.cpp")
            cells.append(
                ArticleCell(
                    theory_gb=f"{model.params_published * bytes_per_param / GB:,.1f}",
                    real_gib=gib(real.total_bytes),
                    real_gb=gb(real.total_bytes),
                    host_gib=gib(real.host_bytes),
                )
            )
        rows.append(ArticleRow(model.name, f"{model.params_published / 1e9:,.1f}", cells))
    return rows


@dataclass(frozen=True)
class SetupRow:
    comparison: Comparison
    model: Model
    weights: str
    gpu: str
    theory_gb: str
    estimate_gib: str
    estimate_gb: str
    error: str


def article_setups(sources: Sources) -> list[SetupRow]:
    catalogue, rows = sources.catalogue, []
    for m in sources.measurements:
        if not m.id.startswith("article-"):
            continue
        comparison = sources.compare(m)
        theory = run_inference(
            catalogue,
            InferenceRequest(model=m.model, weights="int4", engine="theory", gpus=m.gpus),
        )
        rows.append(
            SetupRow(
                comparison=comparison,
                model=catalogue.models[m.model],
                weights=catalogue.weight_format(m.weights).name,
                gpu=catalogue.gpu(m.gpu or "").name,
                theory_gb=gb(theory.total_bytes),
                estimate_gib=gib(comparison.estimated_bytes),
                estimate_gb=gb(comparison.estimated_bytes),
                error=f"{comparison.error * 100:+.1f}%",
            )
        )
    return rows


@dataclass(frozen=True)
class ComponentRow:
    name: Text
    gib: str
    gb: str


def component_rows(comparison: Comparison) -> list[ComponentRow]:
    result = comparison.estimate
    if not isinstance(result, Estimate):
        raise TypeError(f"{comparison.measurement.id} is not an inference measurement")
    c = result.components
    parts = [
        (text("Weights on the GPU(s)"), c.weights),
        (text("KV cache"), c.kv_cache),
        (text("Compute buffer (activations)"), c.activations),
        (text("CUDA context (runtime)"), c.runtime),
        (text("Total on the GPU(s)"), result.total_bytes),
        (text("In CPU RAM (token embeddings)"), result.host_bytes),
    ]
    return [ComponentRow(name, gib(value), gb(value)) for name, value in parts]


def _deepseek(s: Sources) -> dict[str, Any]:
    return {"rows": article_rows(s.catalogue), "formats": ARTICLE_FORMATS, "context": GUIDE_CONTEXT}


def _setups(s: Sources) -> dict[str, Any]:
    return {"rows": article_setups(s)}


def _components(s: Sources) -> dict[str, Any]:
    setups = article_setups(s)
    return {"setups": [(row, component_rows(row.comparison)) for row in setups]}


# The article's 32B model on its one RTX 4090D, with today's Ollama: what a longer context costs.
CHART_SETUP = InferenceRequest(
    model="deepseek-r1-distill-qwen-32b", engine="ollama", gpu="rtx-4090d", ram_bytes=64 * 2**30
)


def _charts(sources: Sources) -> dict[str, Any]:
    points = context_curve(sources.catalogue, CHART_SETUP)
    name = sources.catalogue.models[str(CHART_SETUP.model)].name
    return {"charts": [svg_chart(name, points, what) for what in ("memory", "decode")]}


TABLES = {
    "deepseek-r1": ("deepseek-r1", _deepseek),
    "article-charts": ("article-charts", _charts),
    "article-setups": ("article-setups", _setups),
    "article-components": ("article-components", _components),
}
