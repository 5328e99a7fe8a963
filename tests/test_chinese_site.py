"""The built site's Chinese edition under /zh/: every page, its tables, the language switch, the
search and the calculator, in a real headless Chromium against the site on 127.0.0.1."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from scripts.serve_site import BOOT_TIMEOUT_MS, READY
from tests.test_calculator import (  # noqa: F401 (fixtures)
    SCREENSHOTS,
    WIDTHS,
    Watched,
    axe_violations,
    base_url,
    browser,
    cli_json,
    format_bytes,
    shown,
)

CJK = re.compile(r"[\u4e00-\u9fff]")


def english_pages(site: Path) -> list[Path]:
    return sorted(
        p.relative_to(site)
        for p in site.rglob("index.html")
        if p.relative_to(site).parts[0] not in ("zh", "assets")
    )


def test_every_page_is_in_chinese_under_zh(site):
    pages = english_pages(site)
    assert len(pages) > 30  # the hand-written pages and the model pages per organisation
    missing = [str(p) for p in pages if not (site / "zh" / p).is_file()]
    assert missing == []
    for page in pages:
        html = (site / "zh" / page).read_text(encoding="utf-8")
        assert '<html lang="zh"' in html, page
        body = html.split('<article class="md-content__inner', 1)[1]
        assert len(CJK.findall(body)) > 20, f"zh/{page} is barely Chinese"


def test_every_page_links_its_other_language(site):
    for page in english_pages(site):
        english = (site / page).read_text(encoding="utf-8")
        chinese = (site / "zh" / page).read_text(encoding="utf-8")
        assert re.search(r'class="md-select__link"|hreflang="zh"', english), page
        assert 'hreflang="zh"' in english and 'hreflang="en"' in chinese, page


class Headers(HTMLParser):
    """The header cells of each table on a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[str]] = []
        self._in_th = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        self._in_th = self._in_th or tag == "th"

    def handle_endtag(self, tag):
        if tag == "th":
            self._in_th = False

    def handle_data(self, data):
        if self._in_th and self.tables:
            self.tables[-1].append(data)


def test_the_generated_tables_are_in_chinese(site):
    """Every table of the Chinese pages has Chinese headers, and the figures are the English
    tables' own (one computation, two languages)."""
    counted = 0
    for page in english_pages(site):
        parser = Headers()
        parser.feed((site / "zh" / page).read_text(encoding="utf-8"))
        for headers in parser.tables:
            if headers:
                counted += 1
                assert CJK.search(" ".join(headers)), f"zh/{page}: {headers}"
    assert counted > 30
    numbers = re.compile(r"<td[^>]*>([\d.,]+(?: \([\d.,]+\))?)</td>")
    english = (site / "tables" / "models" / "qwen" / "index.html").read_text(encoding="utf-8")
    chinese = (site / "zh" / "tables" / "models" / "qwen" / "index.html").read_text("utf-8")
    assert numbers.findall(english) == numbers.findall(chinese) != []


def test_the_search_index_holds_chinese_words(site):
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    assert "zh" in index["config"]["lang"] and "u200b" in index["config"]["separator"]
    chinese = [doc for doc in index["docs"] if doc["location"].startswith("zh/")]
    assert len(chinese) > 50
    words = {w for doc in chinese for w in re.split(r"[\s\u200b]+", doc["text"])}
    assert {"显存", "量化", "满血版"} <= words or {"显存", "量化", "满血"} <= words


@pytest.fixture
def page(browser) -> Iterator[Watched]:  # noqa: F811
    context = browser.new_context()
    yield Watched(context.new_page())
    context.close()


def test_searching_a_chinese_word_finds_the_chinese_pages(page, base_url):  # noqa: F811
    page.page.goto(base_url + "zh/guide/formats/")
    page.page.locator("input.md-search__input").fill("显存")
    results = page.page.locator(".md-search-result__item a")
    results.first.wait_for(timeout=20_000)
    links = results.evaluate_all("items => items.map(a => a.getAttribute('href'))")
    assert any("/zh/" in link for link in links), links
    assert page.errors == []


def test_the_language_switch_keeps_the_page(page, base_url):  # noqa: F811
    page.page.goto(base_url + "guide/formats/#integers-in-blocks")
    page.page.locator('.md-select__link[hreflang="zh"]').dispatch_event("click")
    page.page.wait_for_url("**/zh/guide/formats/#integers-in-blocks")
    assert page.page.locator("html").get_attribute("lang") == "zh"
    # after instant navigation to another page, the switch follows that page
    page.page.click("nav.md-nav--primary >> text=测算方法")
    page.page.wait_for_url("**/zh/methodology/")
    page.page.locator('.md-select__link[hreflang="en"]').dispatch_event("click")
    page.page.wait_for_url(lambda url: url.endswith("/methodology/") and "/zh/" not in url)
    assert page.page.locator("html").get_attribute("lang") == "en"
    assert page.errors == []


@pytest.fixture(scope="module")
def zh_calculator(browser, base_url) -> Iterator[Watched]:  # noqa: F811
    """The Chinese calculator, booted once for the tests below."""
    context = browser.new_context()
    watched = Watched(context.new_page())
    watched.page.goto(base_url + "zh/calculator/")
    watched.page.wait_for_selector(READY, timeout=BOOT_TIMEOUT_MS)
    yield watched
    context.close()


def test_the_chinese_calculator_answers_in_chinese(zh_calculator, base_url):  # noqa: F811
    page = zh_calculator
    root = page.page.locator("#vram-calculator")
    summary = root.locator("[data-role=summary]")
    total = summary.locator("[data-role=total]").inner_text()
    verdict = summary.locator("[data-role=verdict]").inner_text()
    assert "GiB" in total and CJK.search(total) and CJK.search(verdict), (total, verdict)
    labels = root.locator("label").all_inner_texts()
    assert sum(bool(CJK.search(label)) for label in labels) > 10
    notes = root.locator("[data-role=notes] li").all_inner_texts()
    assert notes and all(CJK.search(note) for note in notes), notes
    headers = root.locator("[data-role=table] th").all_inner_texts()
    assert any(CJK.search(h) for h in headers), headers
    # the same answer as the command line's for the page's example
    expected = cli_json("--model", "llama-3.1-8b", "--gpu", "rtx-4090")
    assert shown(root)["total_bytes"] == expected["total_bytes"]
    assert format_bytes(expected["total_bytes"]) in total
    assert page.errors == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_chinese_calculator_at_three_widths(zh_calculator, browser, base_url, scheme):  # noqa: F811
    """As the English one: the summary on the first screen, no result column past its edge, a
    screenshot at each width in each scheme (the dark one in a page of its own: Material picks
    the scheme when the page loads)."""
    context = browser.new_context(color_scheme="dark") if scheme == "dark" else None
    watched = Watched(context.new_page()) if context else zh_calculator
    page = watched.page
    if context:
        page.goto(base_url + "zh/calculator/")
        page.wait_for_selector(READY, timeout=BOOT_TIMEOUT_MS)
    root = page.locator("#vram-calculator")
    for width, height in WIDTHS:
        page.set_viewport_size({"width": width, "height": height})
        page.evaluate("window.scrollTo(0, 0)")
        box = root.locator("[data-role=summary]").bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + min(box["height"], 120) <= height
        result = root.locator("[data-role=result]")
        assert result.evaluate("(r) => r.scrollWidth <= r.clientWidth + 1"), width
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"calculator-zh-{width}-{scheme}.png"))
    page.set_viewport_size({"width": 1280, "height": 900})
    assert axe_violations(page) == []
    assert watched.errors == []
    if context:
        context.close()


def test_chinese_guide_pages_pass_axe(page, base_url):  # noqa: F811
    for path in ("zh/", "zh/guide/beyond-weights/", "zh/tables/deepseek-r1/"):
        page.page.goto(base_url + path)
        page.page.wait_for_load_state("networkidle")
        assert axe_violations(page.page) == [], path
    assert page.errors == []
