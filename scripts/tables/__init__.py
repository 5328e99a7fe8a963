"""The guide's generated tables: rows computed by ``calc``, rendered through Jinja templates.

Pages hold markers such as ``<!-- table: precisions -->``; :meth:`Renderer.expand` replaces each
with its rendered table. Each family of tables has its own module here, a pure function from
the catalogue to rows; rendering is a pure function of the rows and the template files. Every
text that comes from the data files is escaped for Markdown and HTML, so a model called
``<script>`` shows as text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jinja2

from calc import DATA_ENV, default_data_dir, load_checked
from scripts.tables import article, engines, finetune, gpus, inputs, models, precisions, validation
from scripts.tables.common import Sources, anchor, first_url, md_text, md_url

# A marker stands alone on its line, so that docs can mention the syntax in running text.
MARKER = re.compile(r"^<!--\s*table:\s*([A-Za-z0-9_-]+)\s*-->[ \t]*$", re.MULTILINE)

# Each table: its template (templates/NAME.md.j2) and the function that computes its rows.
Table = tuple[str, Callable[[Sources], dict[str, Any]]]
TABLES: dict[str, Table] = {
    **precisions.TABLES,
    **article.TABLES,
    **models.TABLES,
    **gpus.TABLES,
    **engines.TABLES,
    **validation.TABLES,
    **finetune.TABLES,
    **inputs.TABLES,
}

__all__ = ["MARKER", "TABLES", "Renderer", "Sources", "UnknownTableError", "anchor", "table_names"]


class UnknownTableError(LookupError):
    """A page names a table that does not exist."""


def environment(templates: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # the output is Markdown: text goes through |md instead
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = md_text
    env.filters["url"] = md_url
    env.filters["first_url"] = first_url
    return env


class Renderer:
    """Renders tables by name; caches each one for the build."""

    def __init__(self, sources: Sources, templates: Path) -> None:
        self.sources = sources
        self.env = environment(templates)
        self._cache: dict[str, str] = {}

    @classmethod
    def from_repository(cls, root: Path) -> Renderer:
        """The repository's templates over its data (``$VRAM_GUIDE_DATA`` overrides the data)."""
        data = default_data_dir() if os.environ.get(DATA_ENV) else root / "data"
        checked = load_checked(data)
        sources = Sources(
            checked.catalogue, checked.measurements, checked.comparisons, checked.documents
        )
        return cls(sources, root / "docs" / "templates")

    def render(self, name: str) -> str:
        if name not in TABLES:
            raise UnknownTableError(
                f"unknown table {name!r}; known tables: {', '.join(sorted(TABLES))}"
            )
        if name not in self._cache:
            template, rows = TABLES[name]
            self._cache[name] = self.env.get_template(f"{template}.md.j2").render(
                **rows(self.sources)
            )
        return self._cache[name]

    def expand(self, markdown: str, *, page: str = "") -> str:
        def replace(match: re.Match[str]) -> str:
            try:
                return self.render(match.group(1))
            except UnknownTableError as error:
                raise UnknownTableError(f"{page}: {error}") from None

        return MARKER.sub(replace, markdown)


def table_names(markdown: str) -> Iterable[str]:
    return MARKER.findall(markdown)
