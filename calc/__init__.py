"""LLM VRAM Guide's estimator: GPU memory for inference and fine-tuning, per device, from a
model's architecture.

Pure Python and standard library only, so the same code runs in CPython and in the browser
under Pyodide. These names are the public API; scripts and tools use nothing else. The
catalogue readers (``load_catalogue`` and the rest of ``calc.data_files``, which need PyYAML and
jsonschema) are imported on first use, so the browser never loads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from calc._errors import CalcError, CatalogueError, ConfigError, InputError, UnknownNameError
from calc.api import loadable_formats, resolve, run_finetune, run_inference
from calc.architecture import Architecture, memory_keys, parse_config
from calc.breakdown import Components, Device, DeviceEstimate, Estimate
from calc.catalogue import GPU, Catalogue, Model, Precision, build_catalogue
from calc.charts import context_curve, svg_chart
from calc.engines import CONSTANTS, ENGINES, Constant, Engine, Release
from calc.estimate import LayoutMemo, estimate_inference, layout_for
from calc.finetune import FinetuneEstimate, FinetuneRequest, TrainComponents
from calc.hints import FinetuneHint, FitHint, finetune_hint, fit_hint
from calc.inputs import INPUTS, Input, page_table
from calc.kv_cache import kv_cache_bytes
from calc.layout import WeightLayout, weight_layout
from calc.measurements import (
    SPEEDS,
    UNIT_BYTES,
    UNIT_SCALE,
    Comparison,
    Measurement,
    Summary,
    compare,
    is_speed,
    release_summaries,
    speed_summaries,
    summaries,
    summarise,
)
from calc.plan import Plan
from calc.requests import InferenceRequest
from calc.speed import BACKENDS, estimate_speed
from calc.tensors import ParameterCount, count_parameters
from calc.units import GB, GIB, MB, MIB, format_bytes

if TYPE_CHECKING:
    from calc.data_files import (
        DATA_ENV,
        catalogue_documents,
        catalogue_problems,
        default_data_dir,
        load_catalogue,
        load_measurements,
        read_documents,
    )

# The edge: reading data/*.yaml. Imported on first use (PEP 562).
_DATA_FILES = frozenset(
    {
        "DATA_ENV",
        "catalogue_documents",
        "catalogue_problems",
        "default_data_dir",
        "load_catalogue",
        "load_measurements",
        "read_documents",
    }
)


def __getattr__(name: str) -> Any:
    if name in _DATA_FILES:
        from calc import data_files

        return getattr(data_files, name)
    raise AttributeError(f"module 'calc' has no attribute {name!r}")


__all__ = [
    "BACKENDS",
    "CONSTANTS",
    "DATA_ENV",
    "ENGINES",
    "GB",
    "GIB",
    "GPU",
    "INPUTS",
    "MB",
    "MIB",
    "SPEEDS",
    "UNIT_BYTES",
    "UNIT_SCALE",
    "Architecture",
    "CalcError",
    "Catalogue",
    "CatalogueError",
    "Comparison",
    "Components",
    "ConfigError",
    "Constant",
    "Device",
    "DeviceEstimate",
    "Engine",
    "Estimate",
    "FinetuneEstimate",
    "FinetuneHint",
    "FinetuneRequest",
    "FitHint",
    "InferenceRequest",
    "Input",
    "InputError",
    "LayoutMemo",
    "Measurement",
    "Model",
    "ParameterCount",
    "Plan",
    "Precision",
    "Release",
    "Summary",
    "TrainComponents",
    "UnknownNameError",
    "WeightLayout",
    "build_catalogue",
    "catalogue_documents",
    "catalogue_problems",
    "compare",
    "context_curve",
    "count_parameters",
    "default_data_dir",
    "estimate_inference",
    "estimate_speed",
    "finetune_hint",
    "fit_hint",
    "format_bytes",
    "is_speed",
    "kv_cache_bytes",
    "layout_for",
    "load_catalogue",
    "load_measurements",
    "loadable_formats",
    "memory_keys",
    "page_table",
    "parse_config",
    "read_documents",
    "release_summaries",
    "resolve",
    "run_finetune",
    "run_inference",
    "speed_summaries",
    "summaries",
    "summarise",
    "svg_chart",
    "weight_layout",
]
