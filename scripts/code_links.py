"""Links from the guide to the code that computes each rule: ``[text](calc:calc.module.name)``
becomes a link to that function's lines in the repository.

The build resolves every ``calc:`` link (an unknown name fails it), so a formula on the
methodology page always points at the code that computes it, and ``tests/test_rules.py`` pins
each linked function with values worked out by hand.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ](calc:calc.engines.vllm.profile_peak)
LINK = re.compile(r"\]\(calc:([A-Za-z_][A-Za-z0-9_.]*)\)")


class UnknownCodeError(LookupError):
    """A ``calc:`` link names nothing in the package."""


def find(dotted: str) -> object:
    """The object a dotted name names: a module, then attributes (classes, methods)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                raise UnknownCodeError(f"calc:{dotted}: no {attribute!r} in {found!r}")
            found = getattr(found, attribute)
        return found
    raise UnknownCodeError(f"calc:{dotted}: no such module")


def location(dotted: str) -> tuple[str, int, int]:
    """The file (relative to the repository) and the first and last lines of ``dotted``."""
    found = find(dotted)
    target = inspect.unwrap(found) if callable(found) else found
    try:
        lines, start = inspect.getsourcelines(target)  # type: ignore[arg-type]
        path = Path(inspect.getsourcefile(target) or "")  # type: ignore[arg-type]
    except TypeError:
        raise UnknownCodeError(f"calc:{dotted} is not a function, class or module") from None
    return path.resolve().relative_to(ROOT).as_posix(), max(start, 1), start + len(lines) - 1


def linked_names(markdown: str) -> list[str]:
    return LINK.findall(markdown)


def expand(markdown: str, repository: str, *, revision: str = "main") -> str:
    """Every ``calc:`` link as a link to the code's lines at ``revision``."""

    def replace(match: re.Match[str]) -> str:
        path, start, end = location(match.group(1))
        return f"]({repository.rstrip('/')}/blob/{revision}/{path}#L{start}-L{end})"

    return LINK.sub(replace, markdown)
