"""What a reader asks for inference: the options as given, unset ones left for the plan to
resolve (``calc.api.resolve``). ``calc.inputs`` describes each of them once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from calc.engines import DEFAULT_ENGINE
from calc.records import record


@record
class InferenceRequest:
    """What a reader asks. Unset options take the engine's defaults."""

    model: str | None = None
    config: Mapping[str, Any] | None = None
    gguf: Mapping[str, Any] | None = None  # a GGUF header as calc.gguf.summary gives it
    weights: str | None = None
    engine: str = DEFAULT_ENGINE
    context: int | None = None
    batch: int | None = None
    kv_cache: str | None = None
    gpus: int = 1
    gpu: str | None = None  # one name, or several separated by commas for mismatched GPUs
    gpu_memory_bytes: int | None = None
    ram_bytes: int | None = None  # host RAM the engine may fill (llama.cpp --fit, Ollama)
    unified_memory_bytes: int | None = None  # a unified-memory machine's memory (its variant)
    wired_limit_bytes: int | None = None  # what a unified-memory GPU may take (iogpu limit)
    engine_version: str | None = None
    flash_attention: bool | None = None
    vision: bool | None = None  # load the vision tower (where the model has one)
    backend: str | None = None  # the GPU backend (CUDA, ROCm, Metal ...) for the speed estimate
    gpu_layers: int | None = None
    cpu_moe_layers: int | None = None
    tensor_split: tuple[float, ...] | None = None
    ubatch_size: int | None = None  # llama.cpp -ub: tokens per physical batch
    gpu_memory_utilization: float | None = None  # vLLM: share of each GPU it reserves
    max_num_seqs: int | None = None  # vLLM: sequences per step, the profiling run's logits rows
    max_num_batched_tokens: int | None = None  # vLLM: tokens per step, the profiling pass
