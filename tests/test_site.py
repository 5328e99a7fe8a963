"""The built site: strict build, tables equal to calc's output, data changes flow through,
hostile names stay text, and no page asks a third-party host for anything."""

from __future__ import annotations

import functools
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest

from calc import InferenceRequest, run_inference
from calc.data_files import load_catalogue
from calc.units import GIB
from scripts.serve_site import build
from scripts.tables import (
    MARKER,
    TABLES,
    Renderer,
    Sources,
    UnknownTableError,
    anchor,
    drop_tables,
    lift_tables,
)
from scripts.tables.models import model_page_of

ROOT = Path(__file__).resolve().parent.parent


class Tables(HTMLParser):
    """Collects each table's rows (cells as text), keyed by the last heading id before it."""

    def __init__(self) -> None:
        super().__init__()
        self.section = ""
        self.tables: dict[str, list[list[str]]] = {}
        self.cell: list[str] | None = None
        self.row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("h1", "h2", "h3") and attributes.get("id"):
            self.section = attributes["id"]
        elif tag == "table":
            self.tables.setdefault(self.section, [])
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.row is not None and self.cell is not None:
            self.row.append("".join(self.cell).strip())
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.tables[self.section].append(self.row)
            self.row = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def tables_of(page: Path) -> dict[str, list[list[str]]]:
    parser = Tables()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.tables


@functools.cache
def _model_pages() -> dict[str, str]:
    """Each model's page: the repository's catalogue decides the pages of every build here."""
    return model_page_of(load_catalogue(ROOT / "data"))


def model_table_totals(site_dir: Path, model: str) -> dict[str, str]:
    page = _model_pages()[model]
    rows = tables_of(site_dir / "tables" / "models" / page / "index.html")[anchor(model)]
    return {row[0]: row[4] for row in rows[1:]}


def test_every_model_table_equals_the_cli_figures(site, catalogue):
    for model in catalogue.models.values():
        totals = model_table_totals(site, model.id)
        for label, engine, weights in (
            ("Q4_K_M", "llama.cpp", "q4_k_m"),
            ("BF16", "vllm", "bf16"),
        ):
            estimate = run_inference(
                catalogue,
                InferenceRequest(
                    model=model.id, weights=weights, engine=engine, context=4096, batch=1
                ),
            )
            assert totals[label].startswith(f"{estimate.total_bytes / GIB:,.1f} ("), model.id


def test_article_page_shows_the_measurements_and_estimates(site):
    setups = tables_of(site / "guide" / "article" / "index.html")[
        "the-articles-measurements-explained"
    ]
    measured = [row[2].split(" ")[0] for row in setups[1:]]
    assert measured == ["21.1", "44.6", "45.3"]
    errors = [float(row[4].rstrip("%")) for row in setups[1:]]
    assert all(abs(e) < 3 for e in errors)


def test_every_marker_in_the_docs_names_a_table():
    for page in (ROOT / "docs").rglob("*.md"):
        for name in MARKER.findall(page.read_text(encoding="utf-8")):
            assert name in TABLES, f"{page}: {name}"


def test_an_unknown_marker_is_an_error(catalogue):
    renderer = Renderer(lambda: Sources(catalogue, ()), ROOT / "docs" / "templates")
    with pytest.raises(UnknownTableError, match=r"page\.md: unknown table 'nonsense'"):
        renderer.expand("<!-- table: nonsense -->", page="page.md")


def test_changing_a_number_in_models_yaml_changes_the_site(site, data_copy, tmp_path):
    models = data_copy / "models.yaml"
    text = models.read_text()
    start = text.index("- id: llama-3.1-8b")
    head, tail = text[:start], text[start:]
    models.write_text(head + tail.replace("num_hidden_layers: 32", "num_hidden_layers: 40", 1))
    # The published count no longer matches; the site still builds and shows the new shape.
    changed_site = tmp_path / "site"
    result = build(changed_site, data_copy)
    assert result.returncode == 0, result.stderr
    before = model_table_totals(site, "llama-3.1-8b")
    after = model_table_totals(changed_site, "llama-3.1-8b")
    assert before != after
    estimate = run_inference(
        load_catalogue(data_copy),
        InferenceRequest(model="llama-3.1-8b", weights="q4_k_m", engine="llama.cpp", context=4096),
    )
    assert after["Q4_K_M"].startswith(f"{estimate.total_bytes / GIB:,.1f} (")


HOSTILE = '<script>alert("x")</script> **bold** [link](javascript:alert(1)) | pipe'


def test_names_and_sources_render_as_text(data_copy, tmp_path):
    models = data_copy / "models.yaml"
    text = models.read_text()
    text = text.replace("  name: Llama 3.1 8B\n", f"  name: '{HOSTILE}'\n", 1)
    models.write_text(text)
    gpus = data_copy / "gpus.yaml"
    gpus.write_text(gpus.read_text().replace("name: GeForce RTX 4090\n", f"name: '{HOSTILE}'\n", 1))
    site_dir = tmp_path / "site"
    result = build(site_dir, data_copy)
    assert result.returncode == 0, result.stderr
    for page in (
        "tables/models/index.html",
        "tables/models/meta-llama/index.html",
        "tables/gpus/index.html",
    ):
        html = (site_dir / page).read_text()
        assert "<script>alert" not in html
        assert "&#60;script&#62;alert" in html or "&lt;script&gt;alert" in html
        assert "<strong>bold</strong>" not in html
        assert 'href="javascript' not in html.lower()
    rows = tables_of(site_dir / "tables" / "gpus" / "index.html")
    flat = [cell for table in rows.values() for row in table for cell in row]
    assert HOSTILE in flat  # shown verbatim, as text, in one cell


class Requests(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("script", "img", "iframe", "audio", "video", "source"):
            self.urls.append(attributes.get("src") or "")
        if tag == "link" and attributes.get("rel") not in ("canonical",):
            self.urls.append(attributes.get("href") or "")


def test_no_page_requests_a_third_party_host(site):
    for page in site.rglob("*.html"):
        parser = Requests()
        parser.feed(page.read_text(encoding="utf-8"))
        for url in parser.urls:
            assert not re.match(r"^(https?:)?//", url), f"{page}: {url}"
    for asset in [*site.rglob("*.css"), *site.rglob("*.js")]:
        text = asset.read_text(encoding="utf-8", errors="replace")
        assert "fonts.googleapis.com" not in text, asset
        assert not re.search(r"@import\s+url\(\s*['\"]?https?://", text), asset


class Anchors(HTMLParser):
    """Every id on a page, and every link it makes."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(attributes["id"])
        if tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])


def test_every_internal_link_and_anchor_resolves(site):
    site_url = re.search(r'^site_url: .*"(https://[^"]+)"', (ROOT / "mkdocs.yml").read_text(), re.M)
    assert site_url is not None
    base_path = urlparse(site_url.group(1)).path  # the 404 page links from the site's root
    pages = {}
    for page in site.rglob("*.html"):
        parser = Anchors()
        parser.feed(page.read_text(encoding="utf-8"))
        pages[page.resolve()] = parser
    broken = []
    for page, parser in pages.items():
        for link in parser.links:
            if re.match(r"^[a-z]+:", link):  # https:, mailto: ... leave the site
                continue
            path, _, fragment = link.partition("#")
            if path.startswith(base_path):
                target = (site / path[len(base_path) :]).resolve()
            else:
                target = (page.parent / path).resolve() if path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site.resolve())}: {link} (no such file)")
                continue
            if fragment and target.suffix == ".html" and fragment not in pages[target].ids:
                broken.append(f"{page.relative_to(site.resolve())}: {link} (no such anchor)")
    assert broken == []


def test_two_builds_of_one_commit_are_byte_identical(site, tmp_path):
    again = tmp_path / "again"
    result = build(again)
    assert result.returncode == 0, result.stderr
    first = {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_tables_stay_out_of_markdown_and_the_search_index(site):
    """The generated HTML tables go into the finished pages after the search index is made:
    the index holds the prose and each model's heading, none of the validation table's cases."""
    import json

    from calc import load_measurements

    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    text = " ".join(doc["title"] + " " + doc["text"] for doc in index["docs"])
    catalogue = load_catalogue(ROOT / "data")
    assert all(model.name in text for model in catalogue.models.values())
    # the cases in the table (the list of cases not modelled is prose, and searchable)
    cases = [m.id for m in load_measurements(ROOT / "data") if not m.not_modelled]
    assert sum(case in text for case in cases) < 10  # a few are named in the prose
    page = (site / "validation" / "index.html").read_text(encoding="utf-8")
    assert "vram-guide html" not in page and all(case in page for case in cases)


def test_lifted_tables_come_back_whole():
    markdown = "Text\n\n<table>\n<tr><td>a</td></tr>\n</table>\n\nMore\n\n<table>\n</table>\n"
    lifted, tables = lift_tables(markdown)
    assert "<table" not in lifted and len(tables) == 2
    assert drop_tables(lifted, tables) == markdown


def test_the_local_server_keeps_versioned_files_and_revalidates_the_rest(site):
    """Addresses that name a version are kept for a year; pages, the manifest and the service
    worker are asked again each time (a 304 when unchanged)."""
    import json

    from scripts.serve_site import cache_control

    manifest = json.loads((site / "assets" / "calculator" / "manifest.json").read_text())
    versioned = [
        f"/assets/pyodide/{manifest['pyodide']}/pyodide.asm.wasm",
        f"/assets/calculator/{manifest['wheel']}",
        f"/assets/calculator/{manifest['catalogue']}",
    ]
    for path in versioned:
        assert cache_control(path) == "public, max-age=31536000, immutable", path
        assert (site / path.lstrip("/").split("?")[0]).is_file(), path
    for path in ("/calculator/", "/assets/calculator/manifest.json", "/sw.js", "/"):
        assert cache_control(path) == "no-cache", path
