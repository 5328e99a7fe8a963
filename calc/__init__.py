"""LLM VRAM Guide's estimator: GPU memory for inference, per device, from a model's architecture.

Pure Python and standard library only, so the same code runs in CPython and in the browser
under Pyodide. The public API is small; everything else is private detail.
"""

from calc._errors import CalcError, CatalogueError, ConfigError, InputError, UnknownNameError
from calc.api import InferenceRequest, run_inference
from calc.architecture import Architecture, parse_config
from calc.breakdown import Components, Device, DeviceEstimate, Estimate
from calc.catalogue import Catalogue, build_catalogue
from calc.engines import ENGINES
from calc.estimate import estimate_inference
from calc.kv_cache import kv_cache_bytes
from calc.tensors import ParameterCount, count_parameters
from calc.units import format_bytes

__all__ = [
    "ENGINES",
    "Architecture",
    "CalcError",
    "Catalogue",
    "CatalogueError",
    "Components",
    "ConfigError",
    "Device",
    "DeviceEstimate",
    "Estimate",
    "InferenceRequest",
    "InputError",
    "ParameterCount",
    "UnknownNameError",
    "build_catalogue",
    "count_parameters",
    "estimate_inference",
    "format_bytes",
    "kv_cache_bytes",
    "parse_config",
    "run_inference",
]
