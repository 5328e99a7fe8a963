"""What every table module shares: the sources, the settings every table states, Markdown-safe
text, links and byte figures."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from calc import (
    GB,
    GIB,
    Catalogue,
    Comparison,
    Estimate,
    InferenceRequest,
    Measurement,
    all_on_gpus,
    compare,
    run_inference,
)

GUIDE_CONTEXT = 4096  # the context every generated table states


@dataclass(frozen=True)
class Sources:
    """What the tables are computed from: the data files read and checked once
    (``calc.load_checked``), the comparisons the check made included."""

    catalogue: Catalogue
    measurements: tuple[Measurement, ...]
    comparisons: Mapping[str, Comparison] = field(default_factory=dict)
    documents: Mapping[str, Any] = field(default_factory=dict)

    def compare(self, measurement: Measurement) -> Comparison:
        """The measurement next to its estimate, as the data check computed it."""
        known = self.comparisons.get(measurement.id)
        return known if known is not None else compare(self.catalogue, measurement)


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


def gib(n_bytes: float) -> str:
    return f"{n_bytes / GIB:,.1f}"


def gb(n_bytes: float) -> str:
    return f"{n_bytes / GB:,.1f}"


def estimate(
    catalogue: Catalogue,
    model: str,
    weights: str,
    engine: str,
    *,
    context: int = GUIDE_CONTEXT,
    gpus: int = 1,
    gpu: str | None = None,
) -> Estimate:
    """One sequence of ``context`` tokens: the setting the guide's tables state. On named GPUs
    every layer stays on them (-ngl 999), so that "fits" means the whole model fits, not what
    llama.cpp's --fit would leave on the GPUs after moving layers to the CPU."""
    request = InferenceRequest(
        model=model, weights=weights, engine=engine, context=context, batch=1, gpus=gpus, gpu=gpu
    )
    return run_inference(catalogue, all_on_gpus(request) if gpu is not None else request)
