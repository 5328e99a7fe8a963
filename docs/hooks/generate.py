"""MkDocs hook: expand ``<!-- table: NAME -->`` markers into tables generated from ``data/``,
and put the calculator's wheel, catalogue and Pyodide runtime into the built site.

Thin by design: loading, computing and rendering live in ``scripts/tables/``, which
tests use without MkDocs. An unknown marker or a bad catalogue entry fails the build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from calc import CalcError  # noqa: E402
from scripts import code_links, site_assets, tables  # noqa: E402

_renderer: tables.Renderer | None = None
_lifted: dict[str, dict[str, str]] = {}  # each page's HTML tables, kept out of Markdown
# Links to the code point at the commit being built, so their line numbers stay right.
_revision = site_assets.commit_hash(ROOT) or "main"


def on_config(config: Any) -> Any:
    # Dates in the built site (the sitemap's lastmod, its gzip header) follow the commit, not
    # the clock, so that two builds of one commit are byte-identical.
    if "SOURCE_DATE_EPOCH" not in os.environ:
        stamp = site_assets.commit_timestamp(ROOT)
        if stamp is not None:
            os.environ["SOURCE_DATE_EPOCH"] = str(stamp)
    return config


def on_pre_build(config: Any) -> None:
    global _renderer
    try:
        _renderer = tables.Renderer.from_repository(ROOT)
    except CalcError as error:
        raise PluginError(f"catalogue: {error}") from None


def on_files(files: Any, config: Any) -> Any:
    """Add the generated pages (the model tables, a page per organisation)."""
    if _renderer is None:  # pragma: no cover - on_pre_build always runs first
        raise PluginError("the table renderer was not initialised")
    try:
        for path, markdown in _renderer.pages():
            files.append(File.generated(config, path, content=markdown))
    except CalcError as error:
        raise PluginError(f"catalogue: {error}") from None
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if _renderer is None:  # pragma: no cover - on_pre_build always runs first
        raise PluginError("the table renderer was not initialised")
    try:
        markdown = _renderer.expand(markdown, page=page.file.src_uri)
        markdown, _lifted[page.file.src_uri] = tables.lift_tables(markdown)
        return code_links.expand(markdown, config.repo_url or "", revision=_revision)
    except tables.UnknownTableError as error:
        raise PluginError(str(error)) from None
    except code_links.UnknownCodeError as error:
        raise PluginError(f"{page.file.src_uri}: {error}") from None
    except CalcError as error:
        raise PluginError(f"{page.file.src_uri}: {error}") from None


def on_post_page(output: str, page: Any, config: Any) -> str:
    """The generated HTML tables back in their places, after the search index was made."""
    return tables.drop_tables(output, _lifted.pop(page.file.src_uri, {}))


def on_post_build(config: Any) -> None:
    if _renderer is None:  # pragma: no cover - on_pre_build always runs first
        raise PluginError("the table renderer was not initialised")
    try:
        catalogue = _renderer.catalogue_json().encode()
        site_assets.write_calculator_assets(ROOT, Path(config.site_dir), catalogue)
    except (site_assets.AssetError, CalcError) as error:
        raise PluginError(str(error)) from None
