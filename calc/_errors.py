"""The estimator's exceptions: one root, so callers catch everything with one clause.

CalcError(ValueError)
 ├── InputError        an option or number out of range
 ├── UnknownNameError  a model, format, engine or GPU name not in the catalogue
 ├── ConfigError       a config.json that is malformed or of an unsupported kind
 └── CatalogueError    a data file entry that breaks the schema or a semantic rule
"""

from __future__ import annotations

from collections.abc import Sequence


class CalcError(ValueError):
    """Anything the estimator rejects; the message says what was wrong and what is accepted."""


class InputError(CalcError):
    """A user-supplied option is out of range or of the wrong kind; ``field`` names the input
    when one is to blame."""

    def __init__(self, message: str, *, field: str = "") -> None:
        self.field = field
        super().__init__(message)


class UnknownNameError(CalcError):
    """A name that matches nothing; carries the closest known names."""

    def __init__(self, kind: str, name: str, suggestions: Sequence[str] = ()) -> None:
        self.kind = kind
        self.name = name
        self.suggestions = tuple(suggestions)
        message = f"unknown {kind} {name!r}"
        if self.suggestions:
            message += "; did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        super().__init__(message)


class ConfigError(CalcError):
    """A Hugging Face config.json that cannot be turned into an architecture; ``path`` is the
    offending key's path inside the config (empty when the whole config is at fault)."""

    def __init__(self, message: str, *, path: tuple[str, ...] = ()) -> None:
        self.path = path
        super().__init__(message)


class CatalogueError(CalcError):
    """A catalogue entry breaks a rule; carries where, so editors can jump to it."""

    def __init__(
        self,
        message: str,
        *,
        file: str = "",
        line: int | None = None,
        entry: str = "",
        field: str = "",
    ) -> None:
        self.file = file
        self.line = line
        self.entry = entry
        self.field = field
        self.detail = message
        where = file + (f":{line}" if line is not None else "")
        parts = [p for p in (where, f"entry {entry!r}" if entry else "", field) if p]
        super().__init__(": ".join([*parts, message]) if parts else message)
