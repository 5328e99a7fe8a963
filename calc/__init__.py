"""LLM VRAM Guide's estimator: GPU memory for inference and fine-tuning, per device, from a
model's architecture.

Pure Python and standard library only, so the same code runs in CPython and in the browser
under Pyodide. These names are the public API; scripts and tools use nothing else. Every
name is imported on first use (PEP 562): a command or a page loads only the modules it touches,
and the catalogue readers (``calc.data_files``, which need PyYAML and jsonschema) never reach
the browser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from calc._errors import CalcError, CatalogueError, ConfigError, InputError, UnknownNameError

if TYPE_CHECKING:
    from calc.api import loadable_formats, resolve, run_finetune, run_inference
    from calc.architecture import Architecture, memory_keys, parse_config
    from calc.breakdown import Components, Device, DeviceEstimate, Estimate
    from calc.bridge import Session
    from calc.catalogue import GPU, Catalogue, Model, Precision, build_catalogue
    from calc.charts import context_curve, svg_chart
    from calc.data_files import (
        DATA_ENV,
        Checked,
        cache_dir,
        catalogue_documents,
        catalogue_problems,
        default_data_dir,
        load_catalogue,
        load_checked,
        load_measurements,
        prune_cache,
        read_documents,
    )
    from calc.engines import CONSTANTS, ENGINES, Constant, Engine, Release
    from calc.estimate import LayoutMemo, estimate_inference, layout_for
    from calc.finetune import (
        LORA_GROUPS,
        FinetuneEstimate,
        FinetuneRequest,
        TrainComponents,
        layer_token_bytes,
        logit_tokens,
        loss_logit_bytes,
    )
    from calc.hints import FinetuneHint, FitHint, finetune_hint, fit_hint
    from calc.inputs import INPUTS, Input, page_table, parse_config_text
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
        counter_summaries,
        is_speed,
        method_summaries,
        release_summaries,
        speed_summaries,
        summaries,
        summarise,
    )
    from calc.plan import Plan
    from calc.planner import all_on_gpus
    from calc.requests import InferenceRequest
    from calc.speed import BACKENDS, estimate_speed
    from calc.tensors import ParameterCount, count_parameters
    from calc.trainers import TRAINERS, Trainer
    from calc.units import GB, GIB, MB, MIB, format_bytes

# Each public name and the module that defines it, imported when first asked for.
_LAZY = {
    "Session": "calc.bridge",
    "LORA_GROUPS": "calc.finetune",
    "TRAINERS": "calc.trainers",
    "Trainer": "calc.trainers",
    "Architecture": "calc.architecture",
    "BACKENDS": "calc.speed",
    "CONSTANTS": "calc.engines",
    "Catalogue": "calc.catalogue",
    "Comparison": "calc.measurements",
    "Components": "calc.breakdown",
    "Constant": "calc.engines",
    "DATA_ENV": "calc.data_files",
    "Device": "calc.breakdown",
    "DeviceEstimate": "calc.breakdown",
    "ENGINES": "calc.engines",
    "Engine": "calc.engines",
    "Estimate": "calc.breakdown",
    "FinetuneEstimate": "calc.finetune",
    "FinetuneHint": "calc.hints",
    "FinetuneRequest": "calc.finetune",
    "FitHint": "calc.hints",
    "GB": "calc.units",
    "GIB": "calc.units",
    "GPU": "calc.catalogue",
    "INPUTS": "calc.inputs",
    "InferenceRequest": "calc.requests",
    "Input": "calc.inputs",
    "LayoutMemo": "calc.estimate",
    "MB": "calc.units",
    "MIB": "calc.units",
    "Measurement": "calc.measurements",
    "Model": "calc.catalogue",
    "ParameterCount": "calc.tensors",
    "Plan": "calc.plan",
    "Precision": "calc.catalogue",
    "Release": "calc.engines",
    "SPEEDS": "calc.measurements",
    "Summary": "calc.measurements",
    "TrainComponents": "calc.finetune",
    "UNIT_BYTES": "calc.measurements",
    "UNIT_SCALE": "calc.measurements",
    "WeightLayout": "calc.layout",
    "all_on_gpus": "calc.planner",
    "build_catalogue": "calc.catalogue",
    "cache_dir": "calc.data_files",
    "prune_cache": "calc.data_files",
    "catalogue_documents": "calc.data_files",
    "catalogue_problems": "calc.data_files",
    "compare": "calc.measurements",
    "context_curve": "calc.charts",
    "count_parameters": "calc.tensors",
    "default_data_dir": "calc.data_files",
    "estimate_inference": "calc.estimate",
    "estimate_speed": "calc.speed",
    "finetune_hint": "calc.hints",
    "fit_hint": "calc.hints",
    "format_bytes": "calc.units",
    "is_speed": "calc.measurements",
    "kv_cache_bytes": "calc.kv_cache",
    "layer_token_bytes": "calc.finetune",
    "logit_tokens": "calc.finetune",
    "loss_logit_bytes": "calc.finetune",
    "layout_for": "calc.estimate",
    "load_catalogue": "calc.data_files",
    "load_checked": "calc.data_files",
    "Checked": "calc.data_files",
    "load_measurements": "calc.data_files",
    "loadable_formats": "calc.api",
    "memory_keys": "calc.architecture",
    "page_table": "calc.inputs",
    "parse_config": "calc.architecture",
    "parse_config_text": "calc.inputs",
    "read_documents": "calc.data_files",
    "counter_summaries": "calc.measurements",
    "method_summaries": "calc.measurements",
    "release_summaries": "calc.measurements",
    "resolve": "calc.api",
    "run_finetune": "calc.api",
    "run_inference": "calc.api",
    "speed_summaries": "calc.measurements",
    "summaries": "calc.measurements",
    "summarise": "calc.measurements",
    "svg_chart": "calc.charts",
    "weight_layout": "calc.layout",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'calc' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BACKENDS",
    "CONSTANTS",
    "DATA_ENV",
    "ENGINES",
    "GB",
    "GIB",
    "GPU",
    "INPUTS",
    "LORA_GROUPS",
    "MB",
    "MIB",
    "SPEEDS",
    "TRAINERS",
    "UNIT_BYTES",
    "UNIT_SCALE",
    "Architecture",
    "CalcError",
    "Catalogue",
    "CatalogueError",
    "Checked",
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
    "Session",
    "Summary",
    "TrainComponents",
    "Trainer",
    "UnknownNameError",
    "WeightLayout",
    "all_on_gpus",
    "build_catalogue",
    "cache_dir",
    "catalogue_documents",
    "catalogue_problems",
    "compare",
    "context_curve",
    "count_parameters",
    "counter_summaries",
    "default_data_dir",
    "estimate_inference",
    "estimate_speed",
    "finetune_hint",
    "fit_hint",
    "format_bytes",
    "is_speed",
    "kv_cache_bytes",
    "layer_token_bytes",
    "layout_for",
    "load_catalogue",
    "load_checked",
    "load_measurements",
    "loadable_formats",
    "logit_tokens",
    "loss_logit_bytes",
    "memory_keys",
    "method_summaries",
    "page_table",
    "parse_config",
    "parse_config_text",
    "prune_cache",
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
