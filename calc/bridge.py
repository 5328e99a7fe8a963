"""The browser's one door into the estimator: a JSON string in, a JSON string out.

Errors come back as data (``{"ok": false, "error": {...}}``), never as exceptions across the
JavaScript bridge. The session keeps the catalogue and a memo of weight layouts, so repeated
estimates of one model (each keystroke in the form) stay fast.

Request:  {"action": "options"}
          {"action": "estimate", "inputs": {"model" | "config", "weights", "engine",
           "context", "batch", "kv_cache", "gpus", "gpu" | "gpu_memory_gib", ...}}
          {"action": "finetune", "inputs": {"model" | "config", "method", "precision",
           "optimizer", "lora_rank", "lora_targets", "seq_len", "micro_batch", ...}}
Response: {"ok": true, "options": {...}}
          {"ok": true, "result": {...}, "hint": {...} | null, "defaults": {input: value}}
          {"ok": false, "error": {"message": "...", "field": "..."}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from calc._errors import CalcError, ConfigError, InputError, UnknownNameError
from calc.api import InferenceRequest, loadable_formats, resolve, run_finetune
from calc.catalogue import Catalogue, build_catalogue
from calc.engines import ENGINES
from calc.estimate import LayoutMemo, estimate_inference
from calc.finetune import FinetuneRequest, parse_lora_targets
from calc.hints import finetune_hint, fit_hint
from calc.units import GIB

INPUT_KEYS = (
    "model",
    "config",
    "weights",
    "engine",
    "context",
    "batch",
    "kv_cache",
    "gpus",
    "gpu",
    "gpu_memory_gib",
    "engine_version",
    "flash_attention",
    "gpu_layers",
    "cpu_moe_layers",
    "tensor_split",
    "gpu_memory_utilization",
    "max_num_seqs",
    "max_num_batched_tokens",
)
MAX_CONFIG_CHARS = 1_000_000  # a real config.json is a few kB


class Session:
    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.layouts: LayoutMemo = {}

    @classmethod
    def from_json(cls, catalogue_json: str) -> Session:
        """The catalogue as the site build emits it: {"models": [...], "precisions": [...],
        "gpus": [...]}, already checked against the schemas."""
        documents = json.loads(catalogue_json)
        return cls(build_catalogue(documents["models"], documents["precisions"], documents["gpus"]))

    def handle(self, request_json: str) -> str:
        try:
            request = json.loads(request_json)
            if not isinstance(request, dict):
                raise InputError("a request must be a JSON object")
            action = request.get("action")
            if action == "options":
                response: dict[str, Any] = {"ok": True, "options": self.options()}
            elif action == "estimate":
                response = self.estimate(request.get("inputs"))
            elif action == "finetune":
                response = self.finetune(request.get("inputs"))
            else:
                raise InputError(
                    f"unknown action {action!r}; expected 'options', 'estimate' or 'finetune'"
                )
        except CalcError as error:
            response = {"ok": False, "error": _error(error)}
        except (ValueError, TypeError) as error:  # malformed request JSON from the page
            response = {"ok": False, "error": {"message": f"bad request: {error}", "field": ""}}
        return json.dumps(response, sort_keys=True)

    def options(self) -> dict[str, Any]:
        c = self.catalogue
        return {
            "models": [{"id": m.id, "name": m.name, "family": m.family} for m in c.models.values()],
            "engines": [
                {
                    "id": e.id,
                    "name": e.name,
                    "default_weights": e.default_weights,
                    "default_kv": e.default_kv,
                    "versions": [r.version for r in e.history.releases],
                    "weights": [{"id": f.id, "name": f.name} for f in loadable_formats(c, e)],
                }
                for e in ENGINES.values()
            ],
            "kv_formats": [
                {"id": p.id, "name": p.name} for p in c.precisions.values() if p.kv_cache
            ],
            "gpus": [
                {"id": g.id, "name": g.name, "usable_bytes": g.usable_bytes}
                for g in c.gpus.values()
            ],
        }

    def estimate(self, inputs: object) -> dict[str, Any]:
        request = parse_inputs(inputs)
        layouts: LayoutMemo = self.layouts
        plan = resolve(self.catalogue, request, layouts=layouts)
        estimate = estimate_inference(plan, layouts=layouts)
        hint = fit_hint(self.catalogue, plan, layouts)
        return {
            "ok": True,
            "result": estimate.to_json(),
            "hint": hint.to_json() if hint else None,
            "defaults": plan.default_values(),
        }

    def finetune(self, inputs: object) -> dict[str, Any]:
        request, where = parse_finetune_inputs(inputs)
        estimate = run_finetune(self.catalogue, request, **where)
        hint = finetune_hint(self.catalogue, request, where)
        return {
            "ok": True,
            "result": estimate.to_json(),
            "hint": hint.to_json() if hint else None,
        }


FINETUNE_KEYS = (
    "model",
    "config",
    "method",
    "precision",
    "optimizer",
    "lora_rank",
    "lora_targets",
    "freeze_layers",
    "seq_len",
    "micro_batch",
    "grad_checkpointing",
    "flash_attention",
    "gpus",
    "zero",
    "offload",
    "gpu",
    "gpu_memory_gib",
    "compile",
    "chunked_loss",
    "optimizer_in_backward",
    "activation_offloading",
    "adapter_precision",
    "lora_dropout",
    "fused_qkv",
)


def parse_finetune_inputs(inputs: object) -> tuple[FinetuneRequest, dict[str, Any]]:
    """The fine-tuning form's inputs; shared fields are read as for inference."""
    if not isinstance(inputs, Mapping):
        raise _field_error("", "inputs must be a JSON object")
    unknown = sorted(set(inputs) - set(FINETUNE_KEYS))
    if unknown:
        raise _field_error(unknown[0], f"unknown input {unknown[0]!r}")
    shared = parse_inputs({k: inputs[k] for k in INPUT_KEYS if k in inputs})

    def pick(key: str, default: Any) -> Any:
        value = inputs.get(key)
        return default if value is None or value == "" else value

    def switch(key: str, default: bool) -> bool:
        value = pick(key, default)
        if value in ("on", "full", True):
            return True
        if value in ("off", False):
            return False
        raise _field_error(key, f"{key} must be on or off, got {value!r}")

    targets = pick("lora_targets", "all")
    if not isinstance(targets, str):
        raise _field_error("lora_targets", "lora_targets must be text such as all or q_proj,v_proj")
    request = FinetuneRequest(
        method=pick("method", "lora"),
        precision=pick("precision", "amp"),
        optimizer=pick("optimizer", "adamw"),
        lora_rank=pick("lora_rank", 16),
        lora_targets=parse_lora_targets(targets),
        freeze_trainable_layers=pick("freeze_layers", 2),
        seq_len=pick("seq_len", 1024),
        micro_batch=pick("micro_batch", 1),
        grad_checkpointing=switch("grad_checkpointing", False),
        flash_attention=switch("flash_attention", True),
        gpus=shared.gpus,
        zero=pick("zero", 0),
        offload=pick("offload", "none"),
        compiled=switch("compile", False),
        chunked_loss=switch("chunked_loss", False),
        optimizer_in_backward=switch("optimizer_in_backward", False),
        activation_offloading=switch("activation_offloading", False),
        adapter_precision=pick("adapter_precision", "fp32"),
        lora_dropout=_fraction(inputs, "lora_dropout", "0.05") or 0.0,
        fused_qkv=switch("fused_qkv", False),
    )
    where = {
        "model": shared.model,
        "config": shared.config,
        "gpu": shared.gpu,
        "gpu_memory_bytes": shared.gpu_memory_bytes,
    }
    return request, where


def _error(error: CalcError) -> dict[str, Any]:
    field = getattr(error, "field", "")
    if isinstance(error, ConfigError):
        field = "config"
    elif isinstance(error, UnknownNameError):
        field = {
            "model": "model",
            "weight format": "weights",
            "KV cache format": "kv_cache",
            "GPU": "gpu",
            "engine": "engine",
        }.get(error.kind, "")
    return {"message": str(error), "field": field}


def _fraction(inputs: Mapping[str, Any], key: str, example: str) -> float | None:
    """A number sent as a number or as text such as "0.9"; None when left empty."""
    raw = inputs.get(key)
    if raw is None or raw == "":
        return None
    try:
        if isinstance(raw, bool):
            raise ValueError
        return float(raw)
    except (TypeError, ValueError):
        raise _field_error(key, f"{key} must be a fraction like {example}, got {raw!r}") from None


def _field_error(field: str, message: str) -> InputError:
    return InputError(message, field=field)


def parse_inputs(inputs: object) -> InferenceRequest:
    """Check the page's inputs one by one; every problem names its field."""
    if not isinstance(inputs, Mapping):
        raise _field_error("", "inputs must be a JSON object")
    unknown = sorted(set(inputs) - set(INPUT_KEYS))
    if unknown:
        raise _field_error(unknown[0], f"unknown input {unknown[0]!r}")

    def text(key: str) -> str | None:
        value = inputs.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise _field_error(key, f"{key} must be text, got {type(value).__name__}")
        return value

    def whole(key: str) -> int | None:
        value = inputs.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _field_error(key, f"{key} must be a whole number, got {value!r}")
        return value

    config = None
    config_text = text("config")
    if config_text is not None:
        if len(config_text) > MAX_CONFIG_CHARS:
            raise _field_error("config", "config.json is too large (over 1,000,000 characters)")
        try:
            config = json.loads(config_text)
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"config.json is not valid JSON at line {error.lineno}, column {error.colno}: "
                f"{error.msg}"
            ) from None
        if not isinstance(config, dict):
            raise ConfigError(f"config.json must be a JSON object, got {type(config).__name__}")
    model = None if config is not None else text("model")
    memory = inputs.get("gpu_memory_gib")
    memory_bytes = None
    if memory is not None and memory != "":
        if isinstance(memory, bool) or not isinstance(memory, int | float) or not memory > 0:
            raise _field_error(
                "gpu_memory_gib", f"GPU memory must be a positive number of GiB, got {memory!r}"
            )
        if memory > 1_000_000:
            raise _field_error(
                "gpu_memory_gib", f"GPU memory must be at most 1,000,000 GiB, got {memory!r}"
            )
        memory_bytes = int(memory * GIB)
    gpus = whole("gpus")
    flash = inputs.get("flash_attention")
    if flash in (None, ""):
        flash_attention = None
    elif flash in ("on", True):
        flash_attention = True
    elif flash in ("off", False):
        flash_attention = False
    else:
        raise _field_error("flash_attention", f"flash_attention must be on or off, got {flash!r}")
    split_text = text("tensor_split")
    split = None
    if split_text is not None:
        try:
            split = tuple(float(part) for part in split_text.split(","))
        except ValueError:
            raise _field_error(
                "tensor_split", f"tensor split must be numbers like 3,1, got {split_text!r}"
            ) from None
    utilization = _fraction(inputs, "gpu_memory_utilization", "0.9")
    return InferenceRequest(
        model=model,
        config=config,
        weights=text("weights"),
        engine=text("engine") or "llama.cpp",
        context=whole("context"),
        batch=whole("batch"),
        kv_cache=text("kv_cache"),
        gpus=1 if gpus is None else gpus,
        gpu=None if memory_bytes is not None else text("gpu"),
        gpu_memory_bytes=memory_bytes,
        engine_version=text("engine_version"),
        flash_attention=flash_attention,
        gpu_layers=whole("gpu_layers"),
        cpu_moe_layers=whole("cpu_moe_layers"),
        tensor_split=split,
        gpu_memory_utilization=utilization,
        max_num_seqs=whole("max_num_seqs"),
        max_num_batched_tokens=whole("max_num_batched_tokens"),
    )
