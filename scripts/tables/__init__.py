"""The guide's generated tables: rows computed by ``calc``, rendered through Jinja templates.

Pages hold markers such as ``<!-- table: precisions -->``; :meth:`Renderer.expand` replaces each
with its rendered table. Each family of tables has its own module here, a pure function from
the catalogue to rows; rendering is a pure function of the rows and the template files. Every
text that comes from the data files is escaped for Markdown and HTML, so a model called
``<script>`` shows as text.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jinja2

from calc import DATA_ENV, cache_dir, default_data_dir, load_checked, prune_cache
from scripts.messages import CATALOGUES, DEFAULT_LANGUAGE, Messages, MissingTranslation
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

__all__ = [
    "MARKER",
    "TABLES",
    "MissingTranslation",
    "Renderer",
    "Sources",
    "UnknownTableError",
    "anchor",
    "drop_tables",
    "lift_tables",
    "table_names",
]


class UnknownTableError(LookupError):
    """A page names a table that does not exist."""


def environment(templates: Path, messages: Messages | None = None) -> jinja2.Environment:
    """The templates' environment: ``_("...")`` for their own text and ``| t`` for a
    :class:`~scripts.messages.Text` or data text, in the language of ``messages``."""
    messages = messages or Messages()
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # the output is Markdown: text goes through |md instead
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        messages.gettext, messages.ngettext, newstyle=True
    )
    env.filters["t"] = messages.translate
    env.globals["language"] = messages.language
    env.filters["md"] = md_text
    env.filters["url"] = md_url
    env.filters["first_url"] = first_url
    return env


class Renderer:
    """Renders tables by name, each once per build, and keeps them between builds.

    A rendered table depends on nothing but the data files, the estimator, these table modules
    and the templates; the renderer keeps each in the cache (``calc.cache_dir()``) under a hash
    of all of their contents, so a build after a change to the prose only reads them back, and
    the data are read and checked only when some table must be computed again.
    """

    def __init__(
        self,
        load: Callable[[], Sources],
        templates: Path,
        cache: Path | None = None,
        language: str = DEFAULT_LANGUAGE,
    ) -> None:
        self._load = load
        self._sources: Sources | None = None
        self.templates = templates
        self.language = language
        self.env = environment(templates, Messages(language))
        self.cache = cache
        self._rendered: dict[str, str] = {}
        # Rows do not depend on the language: computed once, rendered in each
        self._rows: dict[str, dict[str, Any]] = {}
        self._page_contexts: list[tuple[str, dict[str, Any]]] = []

    def translated(self, language: str) -> Renderer:
        """The same tables in another language, sharing this renderer's data and rows."""
        other = Renderer(self._load, self.templates, self.cache, language)
        other._sources, other._rows = self._sources, self._rows
        other._page_contexts = self._page_contexts
        return other

    @classmethod
    def from_repository(
        cls, root: Path, *, cached: bool = True, language: str = DEFAULT_LANGUAGE
    ) -> Renderer:
        """The repository's templates over its data (``$VRAM_GUIDE_DATA`` overrides the data),
        in ``language`` (``docs/i18n/<language>.yaml``)."""
        data = default_data_dir() if os.environ.get(DATA_ENV) else root / "data"
        templates = root / "docs" / "templates"

        def load() -> Sources:
            checked = load_checked(data)
            return Sources(
                checked.catalogue, checked.measurements, checked.comparisons, checked.documents
            )

        cache = None
        if cached:
            key = content_hash([data, root / "calc", Path(__file__).parent, templates, CATALOGUES])
            cache = cache_dir() / f"tables-{key}"
        return cls(load, templates, cache, language)

    @property
    def sources(self) -> Sources:
        if self._sources is None:
            self._sources = self._load()
        return self._sources

    def render(self, name: str) -> str:
        if name not in TABLES:
            raise UnknownTableError(
                f"unknown table {name!r}; known tables: {', '.join(sorted(TABLES))}"
            )
        if name not in self._rendered:
            self._rendered[name] = self._kept(
                f"{name}.{self.language}.md", lambda: self._compute(name)
            )
        return self._rendered[name]

    def _compute(self, name: str) -> str:
        template, rows = TABLES[name]
        if name not in self._rows:
            self._rows[name] = rows(self.sources)
        return self.env.get_template(f"{template}.md.j2").render(**self._rows[name])

    def pages(self) -> list[tuple[str, str]]:
        """The pages the build adds to docs/: (path, Markdown), the model tables by
        organisation (``tables/models/<organisation>.md``)."""
        text = self._kept(f"pages.{self.language}.json", lambda: json.dumps(self._pages()))
        return [(path, markdown) for path, markdown in json.loads(text)]

    def _pages(self) -> list[tuple[str, str]]:
        template = self.env.get_template("model-page.md.j2")
        if not self._page_contexts:
            self._page_contexts.extend(
                (page.slug, models.model_page_context(self.sources, page))
                for page in models.model_pages(self.sources.catalogue)
            )
        return [
            (f"tables/models/{slug}.md", template.render(**context))
            for slug, context in self._page_contexts
        ]

    def catalogue_json(self) -> str:
        """The browser's copy of the catalogue (``site_assets.catalogue_json``), kept alike."""
        from scripts.site_assets import catalogue_json

        return self._kept("catalogue.json", lambda: catalogue_json(self.sources.documents).decode())

    def _kept(self, filename: str, compute: Callable[[], str]) -> str:
        path = self.cache / filename if self.cache is not None else None
        if path is not None:
            with contextlib.suppress(OSError):
                return path.read_text(encoding="utf-8")
        text = compute()
        if path is not None:
            _keep(path, text)
        return text

    def expand(self, markdown: str, *, page: str = "") -> str:
        def replace(match: re.Match[str]) -> str:
            try:
                return self.render(match.group(1))
            except UnknownTableError as error:
                raise UnknownTableError(f"{page}: {error}") from None

        return MARKER.sub(replace, markdown)


def content_hash(roots: Iterable[Path]) -> str:
    """A hash of every file under ``roots`` (names and bytes) and of the Python and Jinja
    versions that turn them into tables."""
    digest = hashlib.sha256(f"{sys.version}|{jinja2.__version__}".encode())
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(f"{path.relative_to(root.parent)}\0".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:32]


def _keep(path: Path, text: str) -> None:
    """Write ``path`` whole (a temporary file renamed), dropping the oldest builds' folders; a
    cache that cannot be written is only a slower next build."""
    try:
        folder = path.parent
        if not folder.exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            prune_cache(folder.parent, "tables-*")
            folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{path.name}.{os.getpid()}.tmp"
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    except OSError:
        pass


# A generated table written as HTML; tables do not nest, so the first </table> closes it
HTML_TABLE = re.compile(r"^<table\b.*?^</table>$", re.MULTILINE | re.DOTALL)
ISLAND = re.compile(r"<!-- vram-guide html ([0-9a-f]{16}) -->")


def lift_tables(markdown: str) -> tuple[str, dict[str, str]]:
    """The Markdown with each HTML table replaced by a placeholder comment, and the tables by
    key. The build puts them back into the finished page (:func:`drop_tables`), so neither
    Markdown nor the search index reads a table's thousands of cells: the tables are not
    searchable, the prose around them is."""
    tables: dict[str, str] = {}

    def lift(match: re.Match[str]) -> str:
        key = hashlib.sha256(match.group(0).encode()).hexdigest()[:16]
        tables[key] = match.group(0)
        return f"<!-- vram-guide html {key} -->"

    return HTML_TABLE.sub(lift, markdown), tables


def drop_tables(html: str, tables: dict[str, str]) -> str:
    """The finished page with each placeholder replaced by its table again."""
    return ISLAND.sub(lambda m: tables[m.group(1)], html)


def table_names(markdown: str) -> Iterable[str]:
    return MARKER.findall(markdown)
