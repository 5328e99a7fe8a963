"""The guide's generated tables: rows computed by ``calc``, rendered through Jinja templates.

Pages hold markers such as ``<!-- table: precisions -->``; :meth:`Renderer.expand` replaces each
with its rendered table. Row building is pure (catalogue in, dataclasses out); rendering is a
pure function of the rows and the template files. Every text that comes from the data files is
escaped for Markdown and HTML, so a model called ``<script>`` shows as text.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from calc import InferenceRequest, run_inference
from calc.catalogue import GPU, Catalogue, Model, Precision
from calc.data_files import DATA_ENV, default_data_dir, load_catalogue, load_measurements
from calc.engines import CONSTANTS, ENGINES
from calc.formats import tensor_bytes, tensor_storage
from calc.measurements import UNIT_BYTES, Comparison, Measurement, compare, summarise
from calc.tensors import model_tensors
from calc.units import GB, GIB, MIB

# A marker stands alone on its line, so that docs can mention the syntax in running text.
MARKER = re.compile(r"^<!--\s*table:\s*([A-Za-z0-9_-]+)\s*-->[ \t]*$", re.MULTILINE)

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
GUIDE_CONTEXT = 4096  # the context every generated table states
LONG_CONTEXT = 32768

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


class UnknownTableError(LookupError):
    """A page names a table that does not exist."""


# -- escaping ------------------------------------------------------------------------------

# Characters that can start Markdown or HTML syntax (emphasis, code, links, tables, escapes,
# raw HTML, attribute lists, pymdownx marks); each becomes a numeric character reference.
_MARKUP = re.compile(r"[\\`*_{}\[\]()<>#+!|~^=&]")


def md_text(value: object) -> str:
    """Plain text for a Markdown table cell: no markup, no HTML, no line breaks."""
    text = " ".join(str(value).split())
    return _MARKUP.sub(lambda m: f"&#{ord(m.group(0))};", text)


def md_url(url: str) -> str:
    """A link target that cannot break out of ``[text](...)``; only https links pass."""
    if not url.startswith("https://"):
        return "#"
    return quote(url, safe=":/?#=&%~.,+@!$;-_")


def first_url(text: str) -> str:
    match = re.search(r"https://[^\s'\"()<>]+", text)
    return match.group(0).rstrip(".,;") if match else ""


def anchor(model_id: str) -> str:
    """The heading id of a model's section on the models page."""
    return re.sub(r"[^a-z0-9-]", "-", model_id)


def gib(n_bytes: int) -> str:
    return f"{n_bytes / GIB:,.1f}"


def gb(n_bytes: int) -> str:
    return f"{n_bytes / GB:,.1f}"


# -- rows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrecisionRow:
    name: str
    group: str
    layout: str
    bits_per_weight: str
    max_normal: str
    min_normal: str
    source: str
    notes: str


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if 1e-4 <= abs(value) < 1e7 else f"{value:.4g}"


def precision_rows(catalogue: Catalogue) -> list[PrecisionRow]:
    groups = {
        "float": "Floating point",
        "integer": "Integer",
        "block": "Block-scaled",
    }
    rows = []
    for p in catalogue.precisions.values():
        if p.family == "gguf" and p.scope == "gguf":
            group = "GGUF file type (mix)"
        elif p.family == "gguf":
            group = "GGUF tensor type"
        else:
            group = groups[p.kind]
        if p.sign_bits is not None:
            layout = f"{p.sign_bits} + {p.exponent_bits} + {p.mantissa_bits}"
        elif p.block_size and p.block_bytes:
            layout = f"{p.block_size} values in {p.block_bytes} bytes"
        elif p.block_size:
            layout = f"blocks of {p.block_size}"
        elif p.mix_base:
            layout = f"mix over {catalogue.precisions[p.mix_base].name}"
        else:
            layout = f"{p.bits} bits"
        rows.append(
            PrecisionRow(
                name=p.name,
                group=group,
                layout=layout,
                bits_per_weight=_mix_bits(catalogue, p),
                max_normal=_number(p.max_normal),
                min_normal=_number(p.min_normal),
                source=first_url(p.source),
                notes=p.notes,
            )
        )
    order = list(dict.fromkeys(["Floating point", "Integer", "Block-scaled"]))
    return sorted(rows, key=lambda r: (order.index(r.group) if r.group in order else 9, r.group))


# The model whose Q4_K_M file size the issue tracker and the article cite.
REFERENCE_MODEL = "deepseek-r1-distill-qwen-32b"


def _mix_bits(catalogue: Catalogue, p: Precision) -> str:
    """A GGUF mix has no single bits per weight: report it on the reference model."""
    if p.scope != "gguf" or p.id not in catalogue.weight_formats:
        return f"{p.bits_per_weight:g}"
    model = catalogue.models[REFERENCE_MODEL]
    total = file_bytes(catalogue, model, p.id)
    return f"{total * 8 / model.params_published:.2f}"


def file_bytes(catalogue: Catalogue, model: Model, weights: str) -> int:
    fmt = catalogue.weight_format(weights)
    return sum(
        tensor_bytes(t, tensor_storage(t, fmt, model.arch, catalogue.storage_types))
        for t in model_tensors(model.arch)
    )


def estimate(
    catalogue: Catalogue,
    model: str,
    weights: str,
    engine: str,
    *,
    context: int = GUIDE_CONTEXT,
    gpus: int = 1,
    gpu: str | None = None,
) -> Any:
    return run_inference(
        catalogue,
        InferenceRequest(
            model=model,
            weights=weights,
            engine=engine,
            context=context,
            batch=1,
            gpus=gpus,
            gpu=gpu,
        ),
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
class ModelRow:
    format: str
    engine: str
    weights_gib: str
    kv_gib: str
    total_gib: str
    total_gb: str
    long_gib: str


@dataclass(frozen=True)
class ModelSection:
    model: Model
    anchor: str
    facts: list[str]
    long_context: int
    rows: list[ModelRow]


def model_sections(catalogue: Catalogue) -> list[ModelSection]:
    sections = []
    for model in catalogue.models.values():
        arch = model.arch
        limit = arch.max_position_embeddings or LONG_CONTEXT
        long_context = min(LONG_CONTEXT, limit)
        rows = []
        for weights, engine in MODEL_FORMATS:
            short = estimate(catalogue, model.id, weights, engine)
            long = estimate(catalogue, model.id, weights, engine, context=long_context)
            c = short.components
            rows.append(
                ModelRow(
                    format=catalogue.weight_format(weights).name,
                    engine=engine,
                    weights_gib=gib(c.weights + short.host.weights),
                    kv_gib=gib(c.kv_cache),
                    total_gib=gib(short.total_bytes),
                    total_gb=gb(short.total_bytes),
                    long_gib=gib(long.total_bytes),
                )
            )
        sections.append(
            ModelSection(
                model=model,
                anchor=anchor(model.id),
                facts=_facts(model),
                long_context=long_context,
                rows=rows,
            )
        )
    return sections


def _facts(model: Model) -> list[str]:
    arch = model.arch
    facts = [f"{model.params_published / 1e9:,.2f}B parameters"]
    if arch.moe:
        active = model.active_params_published
        if active:
            facts.append(f"{active / 1e9:,.1f}B active")
        facts.append(f"{arch.moe.num_experts} experts, {arch.moe.experts_per_token} per token")
    facts.append(f"{arch.num_layers} layers")
    if arch.mla:
        facts.append(f"MLA, latent {arch.mla.kv_lora_rank} + RoPE {arch.mla.qk_rope_head_dim}")
    else:
        facts.append(
            f"{arch.num_attention_heads} heads, {arch.num_kv_heads} KV heads of {arch.head_dim}"
        )
    if arch.sliding_window and "sliding" in arch.layer_kinds:
        sliding = arch.layer_kinds.count("sliding")
        facts.append(
            f"{sliding} of {arch.num_layers} layers slide over {arch.sliding_window} tokens"
        )
    if arch.max_position_embeddings:
        facts.append(f"context up to {arch.max_position_embeddings:,}")
    return facts


@dataclass(frozen=True)
class FitRow:
    name: str
    anchor: str
    cells: list[str]


@dataclass(frozen=True)
class FitTable:
    columns: list[str]
    rows: list[FitRow] = field(default_factory=list)


def fit_table(catalogue: Catalogue) -> FitTable:
    columns = []
    for gpu_id, count in FIT_SETUPS:
        gpu = catalogue.gpus[gpu_id]
        prefix = f"{count}x " if count > 1 else ""
        short = re.sub(r"^(GeForce|NVIDIA|AMD Instinct|AMD Radeon|AMD)\s+", "", gpu.name)
        columns.append(f"{prefix}{short} ({count * gpu.usable_bytes / GIB:,.0f} GiB)")
    rows = []
    for model in catalogue.models.values():
        cells = []
        for gpu_id, count in FIT_SETUPS:
            best = "-"
            for weights in FIT_LADDER:
                result = estimate(catalogue, model.id, weights, "llama.cpp", gpus=count, gpu=gpu_id)
                if result.fits:
                    best = catalogue.weight_format(weights).name
                    break
            cells.append(best)
        rows.append(FitRow(model.name, anchor(model.id), cells))
    return FitTable(columns=columns, rows=rows)


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


def article_setups(catalogue: Catalogue, measurements: Iterable[Measurement]) -> list[SetupRow]:
    rows = []
    for m in measurements:
        if not m.id.startswith("article-"):
            continue
        comparison = compare(catalogue, m)
        theory = run_inference(
            catalogue,
            InferenceRequest(model=m.model, weights="int4", engine="theory", gpus=m.gpus),
        )
        rows.append(
            SetupRow(
                comparison=comparison,
                model=catalogue.models[m.model],
                weights=catalogue.weight_format(m.weights).name,
                gpu=catalogue.gpu(m.gpu).name,
                theory_gb=gb(theory.total_bytes),
                estimate_gib=gib(comparison.estimated_bytes),
                estimate_gb=gb(comparison.estimated_bytes),
                error=f"{comparison.error * 100:+.1f}%",
            )
        )
    return rows


@dataclass(frozen=True)
class ComponentRow:
    name: str
    gib: str
    gb: str


def component_rows(comparison: Comparison) -> list[ComponentRow]:
    estimate = comparison.estimate
    c = estimate.components
    parts = [
        ("Weights on the GPU(s)", c.weights),
        ("KV cache", c.kv_cache),
        ("Compute buffer (activations)", c.activations),
        ("CUDA context (runtime)", c.runtime),
        ("Total on the GPU(s)", estimate.total_bytes),
        ("In CPU RAM (token embeddings)", estimate.host_bytes),
    ]
    return [ComponentRow(name, gib(value), gb(value)) for name, value in parts]


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


def _groups(m: Measurement) -> set[str]:
    return {m.runs_on, "all", "fine-tuning" if m.kind == "finetune" else "inference"}


def validation(catalogue: Catalogue, measurements: Iterable[Measurement]) -> dict[str, Any]:
    rows, comparisons, skipped = [], [], []
    for m in measurements:
        if m.not_modelled:
            skipped.append(m)
            continue
        comparison = compare(catalogue, m)
        comparisons.append(comparison)
        unit = UNIT_BYTES[m.unit]
        rows.append(
            ValidationRow(
                measurement=m,
                model=catalogue.models[m.model].name,
                measured=f"{m.value:,.2f} {m.unit}",
                estimated=f"{comparison.estimated_bytes / unit:,.2f} {m.unit}",
                error=f"{comparison.error * 100:+.1f}%",
            )
        )
    summaries = []
    engines = sorted({c.measurement.runs_on for c in comparisons})
    for engine in [*engines, "inference", "fine-tuning", "all"]:
        summary = summarise([c for c in comparisons if engine in _groups(c.measurement)])
        if summary:
            summaries.append(
                SummaryRow(
                    engine,
                    summary.cases,
                    f"{summary.median_abs_error * 100:.1f}%",
                    f"{summary.p90_abs_error * 100:.1f}%",
                )
            )
    return {"rows": rows, "skipped": skipped, "summaries": summaries}


# The LLaMA-Factory layout: one model per size column, one row per method.
FINETUNE_SIZES = (
    ("7B", "qwen2.5-7b"),
    ("14B", "qwen2.5-14b"),
    ("32B", "qwen2.5-32b"),
    ("72B", "qwen2.5-72b"),
)
FINETUNE_ROWS = (
    ("Full, mixed precision (AdamW, fp32 master)", {"method": "full", "precision": "amp"}),
    ("Full, pure bf16 (AdamW)", {"method": "full", "precision": "bf16"}),
    ("Freeze (last 2 layers train)", {"method": "freeze", "freeze_trainable_layers": 2}),
    ("LoRA r=16, all projections", {"method": "lora"}),
    ("QLoRA r=16, NF4 base", {"method": "qlora"}),
)
FINETUNE_DEFAULTS = {"micro_batch": 1, "grad_checkpointing": True, "flash_attention": True}


@dataclass(frozen=True)
class FinetuneRow:
    label: str
    cells: list[str]


def finetune_table(catalogue: Catalogue, seq_len: int) -> list[FinetuneRow]:
    from calc.api import run_finetune
    from calc.finetune import FinetuneRequest

    rows = []
    for label, options in FINETUNE_ROWS:
        cells = []
        for _size, model in FINETUNE_SIZES:
            request = FinetuneRequest(**{**FINETUNE_DEFAULTS, **options, "seq_len": seq_len})
            total = run_finetune(catalogue, request, model=model).total_bytes
            cells.append(f"{total / GIB:,.0f} ({total / GB:,.0f})")
        rows.append(FinetuneRow(label, cells))
    return rows


@dataclass(frozen=True)
class ReleaseRow:
    engine: str
    version: str
    words: dict[str, str]
    source: str


def release_rows() -> list[ReleaseRow]:
    """Every modelled release of every engine but the theory, with its defaults in words."""
    return [
        ReleaseRow(engine.name, release.version, engine.describe(release), release.source)
        for engine in ENGINES.values()
        if not engine.weights_only
        for release in engine.history.releases
    ]


# -- rendering -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """What the tables are computed from."""

    catalogue: Catalogue
    measurements: tuple[Measurement, ...]


TABLES: dict[str, Callable[[Sources], dict[str, Any]]] = {
    "precisions": lambda s: {"rows": precision_rows(s.catalogue)},
    "deepseek-r1": lambda s: {
        "rows": article_rows(s.catalogue),
        "formats": ARTICLE_FORMATS,
        "context": GUIDE_CONTEXT,
    },
    "models": lambda s: {"sections": model_sections(s.catalogue), "context": GUIDE_CONTEXT},
    "gpu-fit": lambda s: {
        "table": fit_table(s.catalogue),
        "context": GUIDE_CONTEXT,
        "ladder": FIT_LADDER,
    },
    "gpus": lambda s: {"rows": gpu_rows(s.catalogue)},
    "constants": lambda s: {"constants": CONSTANTS},
    "engine-releases": lambda s: {"rows": release_rows()},
    "article-setups": lambda s: {"rows": article_setups(s.catalogue, s.measurements)},
    "validation": lambda s: validation(s.catalogue, s.measurements),
    "finetune-1024": lambda s: {
        "rows": finetune_table(s.catalogue, 1024),
        "sizes": FINETUNE_SIZES,
        "seq_len": 1024,
    },
    "finetune-4096": lambda s: {
        "rows": finetune_table(s.catalogue, 4096),
        "sizes": FINETUNE_SIZES,
        "seq_len": 4096,
    },
    "article-components": lambda s: {
        "setups": [
            (row, component_rows(row.comparison))
            for row in article_setups(s.catalogue, s.measurements)
        ]
    },
}


def environment(templates: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # the output is Markdown: text goes through |md instead
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = md_text
    env.filters["url"] = md_url
    env.filters["first_url"] = first_url
    return env


class Renderer:
    """Renders tables by name; caches each one for the build."""

    def __init__(self, sources: Sources, templates: Path) -> None:
        self.sources = sources
        self.env = environment(templates)
        self._cache: dict[str, str] = {}

    @classmethod
    def from_repository(cls, root: Path) -> Renderer:
        """The repository's templates over its data (``$VRAM_GUIDE_DATA`` overrides the data)."""
        data = default_data_dir() if os.environ.get(DATA_ENV) else root / "data"
        sources = Sources(load_catalogue(data), load_measurements(data))
        return cls(sources, root / "docs" / "templates")

    def render(self, name: str) -> str:
        if name not in TABLES:
            raise UnknownTableError(
                f"unknown table {name!r}; known tables: {', '.join(sorted(TABLES))}"
            )
        if name not in self._cache:
            template = self.env.get_template(f"{name}.md.j2")
            self._cache[name] = template.render(**TABLES[name](self.sources))
        return self._cache[name]

    def expand(self, markdown: str, *, page: str = "") -> str:
        def replace(match: re.Match[str]) -> str:
            try:
                return self.render(match.group(1))
            except UnknownTableError as error:
                raise UnknownTableError(f"{page}: {error}") from None

        return MARKER.sub(replace, markdown)


def commit_timestamp(root: Path) -> int | None:
    """The checked-out commit's time, or None outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "log", "-1", "--format=%ct"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = result.stdout.strip()
    return int(text) if text.isdigit() else None


def table_names(markdown: str) -> Iterable[str]:
    return MARKER.findall(markdown)
