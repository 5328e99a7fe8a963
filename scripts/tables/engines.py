"""The engines' tables: every modelled release with its defaults and source, and the constants
the estimator relies on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from calc import CONSTANTS, ENGINES
from scripts.tables.common import Sources


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


def _releases(s: Sources) -> dict[str, Any]:
    return {"rows": release_rows()}


def _constants(s: Sources) -> dict[str, Any]:
    return {"constants": CONSTANTS}


TABLES = {
    "engine-releases": ("engine-releases", _releases),
    "constants": ("constants", _constants),
}
