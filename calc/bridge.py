"""The browser's one door into the estimator: a JSON string in, a JSON string out.

Errors come back as data (``{"ok": false, "error": {...}}``), never as exceptions across the
JavaScript bridge. The session keeps the catalogue and a memo of weight layouts, so repeated
estimates of one model (each keystroke in the form) stay fast.

Request:  {"action": "options"}
          {"action": "estimate", "inputs": {"model" | "config", "weights", "engine",
           "context", "batch", "kv_cache", "gpus", "gpu" | "gpu_memory_gib", ...}}
          {"action": "finetune", "inputs": {"model" | "config", "method", "precision",
           "optimizer", "lora_rank", "lora_targets", "seq_len", "micro_batch", ...}}
          {"action": "chart" | "plan" | "fits" | "gpus", "inputs": {as for "estimate"}}
Response: {"ok": true, "options": {...}}
          {"ok": true, "charts": {"memory" | "decode" | "prefill": "<svg ...>"}}
          {"ok": true, "plan": [...]} / {"ok": true, "fits": [...], "context": N} /
          {"ok": true, "gpus": [...], "context": N}
          {"ok": true, "result": {...}, "hint": {...} | null, "defaults": {input: value}}
          {"ok": false, "error": {"message": "...", "field": "..."}}
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from calc import gguf
from calc._errors import CalcError, ConfigError, InputError, UnknownNameError
from calc.api import loadable_formats, resolve, run_finetune
from calc.catalogue import Catalogue, build_catalogue
from calc.charts import WHATS, context_curve, svg_chart
from calc.engines import ENGINES, engine_by_name
from calc.estimate import LayoutMemo, estimate_inference
from calc.finetune import FinetuneRequest
from calc.hints import finetune_hint, fit_hint, verified
from calc.inputs import Mode, finetune_defaults, finetune_request, inference_request, parse
from calc.planner import RANKING_CONTEXT, plan_offload, rank_gpus, rank_models
from calc.requests import InferenceRequest


class Session:
    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.layouts: LayoutMemo = {}

    @classmethod
    def from_json(cls, catalogue_json: str, *, checked: bool = False) -> Session:
        """The catalogue as the site build emits it: {"models": [...], "precisions": [...],
        "gpus": [...]}, already checked against the schemas; ``checked`` skips the catalogue's
        own rules too, for the copy the build wrote after they passed (the page's boot)."""
        documents = json.loads(catalogue_json)
        return cls(
            build_catalogue(
                documents["models"],
                documents["precisions"],
                documents["gpus"],
                names=documents.get("names", ()),
                checked=checked,
            )
        )

    def handle(self, request_json: str) -> str:
        """One request in, one JSON answer out: every failure is an answer, never a traceback."""
        try:
            response = self._answer(request_json)
        except CalcError as error:
            response = {"ok": False, "error": _error(error)}
        except (ValueError, TypeError) as error:  # malformed request JSON from the page
            response = _failure(f"bad request: {error}")
        except RecursionError:
            response = _failure("the request nests too deeply")
        except Exception as error:  # anything else is a bug: still an answer the page can show
            response = _failure(f"internal error ({type(error).__name__}: {error}); please report")
        return json.dumps(response, sort_keys=True)

    def _answer(self, request_json: str) -> dict[str, Any]:
        request = json.loads(request_json)
        if not isinstance(request, dict):
            raise InputError("a request must be a JSON object")
        action = request.get("action")
        inputs = request.get("inputs")
        if action == "options":
            return {"ok": True, "options": self.options()}
        if action == "gguf_header":
            return gguf_header(request.get("bytes_base64"))
        if action in ("plan", "fits", "gpus"):
            return self.rank(action, inputs)
        handlers = {"estimate": self.estimate, "finetune": self.finetune, "chart": self.chart}
        if action not in handlers:
            raise InputError(
                f"unknown action {action!r}; expected 'options', 'estimate', 'finetune', "
                "'chart', 'plan', 'fits', 'gpus' or 'gguf_header'"
            )
        return handlers[action](inputs)

    def options(self) -> dict[str, Any]:
        c = self.catalogue
        return {
            "models": [
                {"id": m.id, "name": m.name, "family": m.family, "hf_repo": m.hf_repo}
                for m in c.models.values()
            ],
            # Ollama tags and other names the model field also takes
            "names": [{"name": n.name, "model": c.models[n.model].name} for n in c.names.values()],
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
        hint = fit_hint(self.catalogue, plan, layouts, estimate)
        if hint is not None:
            hint = verified(self.catalogue, request, hint)
        return {
            "ok": True,
            "result": estimate.to_json(),
            "hint": hint.to_json() if hint else None,
            "defaults": plan.default_values(),
        }

    def chart(self, inputs: object) -> dict[str, Any]:
        """The setup's memory, generation and prompt speed against context, as SVG charts."""
        request = parse_inputs(inputs)
        points = context_curve(self.catalogue, request, layouts=self.layouts)
        name = self.catalogue.model(request.model).name if request.model else "this model"
        return {"ok": True, "charts": {what: svg_chart(name, points, what) for what in WHATS}}

    def rank(self, action: str, inputs: object) -> dict[str, Any]:
        """The planner's answers for the form's setup: where the layers go (plan), every
        catalogue model on these GPUs (fits), every catalogue GPU for this model (gpus)."""
        request = parse_inputs(inputs)
        if action == "plan":
            option = engine_by_name(request.engine).layers_option
            choices = plan_offload(self.catalogue, request, layouts=self.layouts)
            rows = [{**c.to_json(option), "flags": c.flags(option)} for c in choices]
            return {"ok": True, "plan": rows}
        context = request.context or RANKING_CONTEXT  # what the rankings compare at
        if action == "fits":
            ranked = rank_models(self.catalogue, request, layouts=self.layouts)
            return {"ok": True, "fits": [r.to_json() for r in ranked], "context": context}
        gpus = rank_gpus(self.catalogue, request, layouts=self.layouts)
        return {"ok": True, "gpus": [g.to_json() for g in gpus], "context": context}

    def finetune(self, inputs: object) -> dict[str, Any]:
        request, where = parse_finetune_inputs(inputs)
        estimate = run_finetune(self.catalogue, request, **where)
        hint = finetune_hint(self.catalogue, request, where)
        given = inputs.keys() if isinstance(inputs, dict) else ()
        return {
            "ok": True,
            "result": estimate.to_json(),
            "hint": hint.to_json() if hint else None,
            "defaults": finetune_defaults(request, given),
        }


def gguf_header(encoded: object) -> dict[str, Any]:
    """The first bytes of a local GGUF file (base64, as the page reads them) as the header
    object the estimate takes, or how many bytes to read when the header goes on."""
    if not isinstance(encoded, str):
        raise InputError("gguf_header needs 'bytes_base64', the file's first bytes in base64")
    try:
        data = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise InputError("bytes_base64 is not base64") from None
    try:
        header = gguf.read_header(data, where="the GGUF file")
    except gguf.NeedMoreBytes as more:
        return {"ok": True, "need_bytes": more.at_least}
    return {"ok": True, "gguf": gguf.summary(header)}


def parse_finetune_inputs(inputs: object) -> tuple[FinetuneRequest, dict[str, Any]]:
    """The fine-tuning form's inputs, and where the estimate runs."""
    return finetune_request(_page_values("finetune", inputs))


def parse_inputs(inputs: object) -> InferenceRequest:
    """Check the page's inputs one by one; every problem names its field."""
    return inference_request(_page_values("inference", inputs))


def _page_values(mode: Mode, inputs: object) -> dict[str, Any]:
    """The table's parser, with the form's two rules: a pasted config.json replaces the
    catalogue model, and a memory size replaces the GPU's name."""
    values = parse(mode, inputs)
    if "gguf" in values:
        values.pop("model", None)
        values.pop("config", None)
    if "config" in values:
        values.pop("model", None)
    if "gpu_memory_gib" in values:
        values.pop("gpu", None)
    return values


def _failure(message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"message": message[:300], "field": ""}}


def _error(error: CalcError) -> dict[str, Any]:
    field = getattr(error, "field", "")
    if isinstance(error, ConfigError):
        field = "gguf" if "GGUF" in str(error) else "config"
    elif isinstance(error, UnknownNameError):
        field = {
            "model": "model",
            "weight format": "weights",
            "KV cache format": "kv_cache",
            "GPU": "gpu",
            "engine": "engine",
        }.get(error.kind, "")
    return {"message": str(error), "field": field}
