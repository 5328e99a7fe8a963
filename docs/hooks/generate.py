"""MkDocs hook: expand ``<!-- table: NAME -->`` markers into tables generated from ``data/``,
and put the calculator's wheel, catalogue and Pyodide runtime into the built site.

Thin by design: loading, computing and rendering live in ``scripts/tables/``, which
tests use without MkDocs. An unknown marker or a bad catalogue entry fails the build.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from calc import CalcError  # noqa: E402
from scripts import code_links, messages, site_assets, tables, translations  # noqa: E402
from scripts.messages import DEFAULT_LANGUAGE  # noqa: E402

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


def language(config: Any) -> str:
    """The language being built: the i18n plugin builds English, then each translation."""
    return str(config.theme.get("language") or DEFAULT_LANGUAGE)


def on_pre_build(config: Any) -> None:
    global _renderer
    lang = language(config)
    try:
        if lang == DEFAULT_LANGUAGE or _renderer is None:
            _renderer = tables.Renderer.from_repository(ROOT, language=lang)
        else:  # a translation, built right after English: the same data and rows
            _renderer = _renderer.translated(lang)
    except (CalcError, tables.MissingTranslation) as error:
        raise PluginError(f"catalogue: {error}") from None
    if lang == DEFAULT_LANGUAGE:
        missing = translations.problems(Path(config.docs_dir))
        if missing:
            raise PluginError("the Chinese edition is not up to date:\n" + "\n".join(missing))


@event_priority(-200)  # after the i18n plugin has sorted the files by language
def on_files(files: Any, config: Any) -> Any:
    """Add the generated pages (the model tables, a page per organisation), in the language
    being built: ``tables/models/x.md`` in English, ``zh/tables/models/x/`` in Chinese."""
    if _renderer is None:  # pragma: no cover - on_pre_build always runs first
        raise PluginError("the table renderer was not initialised")
    lang = language(config)
    try:
        for path, markdown in _renderer.pages():
            files.append(_generated(config, path, markdown, lang))
    except (CalcError, tables.MissingTranslation) as error:
        raise PluginError(f"catalogue: {error}") from None
    return files


def _generated(config: Any, path: str, markdown: str, lang: str) -> File:
    if lang == DEFAULT_LANGUAGE:
        return File.generated(config, path, content=markdown)
    stem = path.removesuffix(".md")
    file = File.generated(config, f"{stem}.{lang}.md", content=markdown)
    # Where the i18n plugin puts a translated page: under /<lang>/, named as in English
    file.dest_uri = (
        f"{lang}/{stem}/index.html" if config.use_directory_urls else f"{lang}/{stem}.html"
    )
    return file


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if _renderer is None:  # pragma: no cover - on_pre_build always runs first
        raise PluginError("the table renderer was not initialised")
    try:
        if language(config) != DEFAULT_LANGUAGE:
            markdown = join_cjk_lines(markdown)
        markdown = _renderer.expand(markdown, page=page.file.src_uri)
        markdown, _lifted[page.file.src_uri] = tables.lift_tables(markdown)
        return code_links.expand(markdown, config.repo_url or "", revision=_revision)
    except (tables.UnknownTableError, tables.MissingTranslation) as error:
        raise PluginError(f"{page.file.src_uri}: {error}") from None
    except code_links.UnknownCodeError as error:
        raise PluginError(f"{page.file.src_uri}: {error}") from None
    except CalcError as error:
        raise PluginError(f"{page.file.src_uri}: {error}") from None


# A line break between two Chinese characters would show as a space (browsers do not drop it)
CJK = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef"
CJK_BREAK = re.compile(f"(?<=[{CJK}])\n(?=[{CJK}])")


def join_cjk_lines(markdown: str) -> str:
    return CJK_BREAK.sub("", markdown)


def on_post_page(output: str, page: Any, config: Any) -> str:
    """The generated HTML tables back in their places, after the search index was made."""
    return tables.drop_tables(output, _lifted.pop(page.file.src_uri, {}))


def on_post_build(config: Any) -> None:
    if _renderer is None:  # pragma: no cover - on_pre_build always runs first
        raise PluginError("the table renderer was not initialised")
    lang = language(config)
    if lang != DEFAULT_LANGUAGE:
        # The translations share the site's one copy of the calculator's runtime. Material's
        # language switch reads each language's sitemap.xml: the one sitemap lists them all.
        site = Path(config.site_dir)
        for name in ("sitemap.xml", "sitemap.xml.gz"):
            if (site / name).is_file():
                shutil.copyfile(site / name, site / lang / name)
        return
    try:
        catalogue = _renderer.catalogue_json().encode()
        words = {lang: messages.browser_json(lang) for lang in messages.languages()}
        site_assets.write_calculator_assets(ROOT, Path(config.site_dir), catalogue, words)
    except (site_assets.AssetError, CalcError, messages.MissingTranslation) as error:
        raise PluginError(str(error)) from None
