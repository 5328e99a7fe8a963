"""Engine profiles: one module per inference engine behind :class:`~calc.engines.base.Engine`,
and the registry that names them.

Every engine-specific rule lives in its own module (``theory``, ``llama_cpp``, ``ollama``,
``vllm``, ``transformers``), with its release history as data and the source of each default.
"""

from __future__ import annotations

import difflib
from typing import Any

from calc._errors import UnknownNameError
from calc.engines.base import Constant, Engine
from calc.engines.history import MODEL_MAX, Change, History, Release, version_key
from calc.engines.llama_cpp import LlamaCpp
from calc.engines.mlx import Mlx
from calc.engines.ollama import Ollama
from calc.engines.theory import Theory
from calc.engines.transformers import Transformers
from calc.engines.vllm import Vllm
from calc.speed import CUDA_CONTEXT_BYTES, RUNTIME_BYTES

ENGINES: dict[str, Engine[Any, Any]] = {
    engine.id: engine for engine in (Theory(), LlamaCpp(), Ollama(), Vllm(), Transformers(), Mlx())
}
DEFAULT_ENGINE = "llama.cpp"

CONSTANTS: tuple[Constant, ...] = (
    Constant(
        "CUDA context per GPU",
        f"{CUDA_CONTEXT_BYTES:,} bytes",
        "runtime, every engine but theory (CUDA; also Vulkan and SYCL, for want of a figure)",
        "https://github.com/pytorch/pytorch/pull/86509",
    ),
    Constant(
        "HIP (ROCm) runtime per GPU",
        f"{RUNTIME_BYTES['rocm']:,} bytes",
        "runtime on AMD GPUs (ROCm)",
        "https://github.com/Quartermaster-Labs/Quartermaster/pull/24",
    ),
    Constant(
        "Metal runtime per GPU",
        "0 bytes",
        "runtime on Apple GPUs: inside the buffers counted against recommendedMaxWorkingSetSize",
        "https://github.com/ggml-org/llama.cpp/blob/177ab4547616c32f3159fe9def08fff2fcb14457/"
        "ggml/src/ggml-metal/ggml-metal-device.m",
    ),
    *(constant for engine in ENGINES.values() for constant in engine.constants),
)


def engine_by_name(name: str) -> Engine[Any, Any]:
    wanted = name.strip().lower()
    if wanted in ENGINES:
        return ENGINES[wanted]
    raise UnknownNameError("engine", name, difflib.get_close_matches(wanted, list(ENGINES)))


__all__ = [
    "CONSTANTS",
    "DEFAULT_ENGINE",
    "ENGINES",
    "MODEL_MAX",
    "Change",
    "Constant",
    "Engine",
    "History",
    "Release",
    "engine_by_name",
    "version_key",
]
