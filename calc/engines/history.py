"""Engine releases as data: a first release with every default, then one row per change.

A :class:`Change` names the release that changed a default, the new value and the source (a
pull request, a release note, an upstream source line). :class:`History` folds the rows into
one frozen release record per version, so every later rule reads a release's defaults, never a
version number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Generic, Protocol, TypeVar

from calc._errors import InputError
from calc.records import record, replace

# A default context of MODEL_MAX means the model's own maximum (max_position_embeddings).
MODEL_MAX = 0


@record
class Release:
    """The defaults every engine has, as one release ships them. Engines subclass it with
    their own fields; ``source`` is the change that made this release's row."""

    version: str
    source: str
    default_context: int = 4096
    default_batch: int = 1
    flash_attention: bool = False
    date: str = ""  # YYYY-MM-DD where the source dates the release


@record
class Change:
    """One release's changes to the defaults: field name to new value, with its source."""

    version: str
    source: str
    sets: Mapping[str, object]
    date: str = ""


R = TypeVar("R", bound=Release)


class History(Generic[R]):
    """An engine's releases, oldest first: ``first`` and each change folded onto the last."""

    def __init__(self, engine: str, first: R, changes: Sequence[Change] = ()) -> None:
        self.engine = engine
        self.first = first
        self.changes = tuple(changes)
        known = {f.name for f in fields(first)}
        releases = [first]
        for change in self.changes:
            unknown = sorted(set(change.sets) - known)
            if unknown:
                raise TypeError(f"{engine} {change.version}: no default named {unknown[0]!r}")
            if version_key(change.version) <= version_key(releases[-1].version):
                raise TypeError(f"{engine} {change.version}: releases must be in order")
            releases.append(
                replace(
                    releases[-1],
                    version=change.version,
                    source=change.source,
                    date=change.date,
                    **change.sets,  # type: ignore[arg-type]
                )
            )
        self.releases: tuple[R, ...] = tuple(releases)

    @property
    def newest(self) -> R:
        return self.releases[-1]

    def at(self, version: str | None) -> R:
        """The release whose defaults hold for ``version`` (the newest one when None)."""
        return release_at(self.releases, version, self.engine, "engine_version")


class Versioned(Protocol):
    @property
    def version(self) -> str: ...


V = TypeVar("V", bound=Versioned)


def release_at(releases: Sequence[V], version: str | None, name: str, field: str) -> V:
    """Of ``releases`` (oldest first), the newest at or before ``version`` (the newest of all
    when None): an engine's, or a fine-tuning tool's (calc.trainers)."""
    if version is None:
        return releases[-1]
    wanted = version_key(version, field)
    chosen = [r for r in releases if version_key(r.version) <= wanted]
    if not chosen:
        raise InputError(
            f"{name} {version} is older than the oldest release modelled ({releases[0].version})",
            field=field,
        )
    return chosen[-1]


def version_key(version: str, field: str = "engine_version") -> tuple[int, ...]:
    """'0.5.7' -> (0, 5, 7, 0); llama.cpp's build tags 'b4713' -> (4713, 0, 0, 0)."""
    parts = re.findall(r"\d+", version)
    if not parts:
        raise InputError(
            f"{field.replace('_', ' ')} {version!r} has no number in it; e.g. 0.5.7 or b4713",
            field=field,
        )
    numbers = [int(p) for p in parts[:4]]
    return tuple(numbers + [0] * (4 - len(numbers)))  # "0.6" is "0.6.0"
