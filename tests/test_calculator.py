"""The calculator in a real headless Chromium, against the built site served on 127.0.0.1.

Each test waits for the page's machine-readable state (``data-state``, ``data-updates``),
never for a fixed time, and compares what the page shows with the CPython CLI's answer.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from calc.cli import main as cli_main
from scripts.serve_site import BOOT_TIMEOUT_MS, CHROMIUM_ARGS, READY, chromium_path, serve

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    path = chromium_path()
    with playwright_api.sync_playwright() as p:
        if path is None:
            try:
                launched = p.chromium.launch(args=CHROMIUM_ARGS)
            except playwright_api.Error:
                if os.environ.get("CI"):
                    pytest.fail("no Chromium: CI must install Debian's chromium package")
                pytest.skip(
                    "no Chromium found: apt-get install chromium, or set CHROMIUM=/path/to/it"
                )
        else:
            launched = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    with serve(site) as url:
        yield url


class Watched:
    """A page with its console errors, uncaught exceptions and requests recorded."""

    def __init__(self, page: object) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("dialog", lambda d: (self.errors.append(f"dialog: {d.message}"), d.dismiss()))


@pytest.fixture
def watched(browser) -> Iterator[Watched]:
    context = browser.new_context()
    page = context.new_page()
    yield Watched(page)
    context.close()


def open_calculator(watched: Watched, base_url: str, query: dict[str, str] | None = None):
    url = base_url + "calculator/" + ("?" + urlencode(query) if query else "")
    watched.page.goto(url)
    watched.page.wait_for_selector(READY, timeout=BOOT_TIMEOUT_MS)
    return watched.page.locator("#vram-calculator")


def updates(root) -> int:
    return int(root.get_attribute("data-updates") or 0)


def change(root, action) -> None:
    """Do ``action`` and wait until the page has shown one more result or an error."""
    before = updates(root)
    error_before = root.get_attribute("data-error") or ""
    action()
    root.page.wait_for_function(
        """([before, errorBefore]) => {
            const r = document.getElementById('vram-calculator');
            return Number(r.dataset.updates || 0) > before
                || (r.dataset.error || '') !== errorBefore;
        }""",
        arg=[before, error_before],
    )


def cli_json(*args: str) -> dict:
    return cli_json_command("inference", *args)


def cli_json_command(command: str, *args: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main([command, *args, "--json"]) == 0
    return json.loads(out.getvalue())


def shown(root) -> dict:
    return json.loads(root.get_attribute("data-result"))


def format_bytes(n: int) -> str:
    return f"{n / 2**30:.1f} GiB ({n / 1e9:.1f} GB)"


def set_inputs(root, values: dict[str, str]) -> None:
    page = root.page
    if "engine" in values:
        change(root, lambda: page.select_option("#vram-engine", values["engine"]))
    for name, selector in (
        ("weights", "#vram-weights"),
        ("kv_cache", "#vram-kv_cache"),
        ("flash_attention", "#vram-flash_attention"),
    ):
        if name in values:
            change(root, lambda s=selector, v=values[name]: page.select_option(s, v))
    if "gpu" in values:
        change(root, lambda: page.select_option("#vram-gpu", values["gpu"]))
    for name, selector in (
        ("model", "#vram-model"),
        ("engine_version", "#vram-engine_version"),
        ("context", "#vram-context"),
        ("batch", "#vram-batch"),
        ("gpus", "#vram-gpus"),
        ("gpu_memory_gib", "#vram-gpu_memory_gib"),
        ("gpu_memory_utilization", "#vram-gpu_memory_utilization"),
        ("max_num_seqs", "#vram-max_num_seqs"),
        ("max_num_batched_tokens", "#vram-max_num_batched_tokens"),
    ):
        if name in values:
            change(root, lambda s=selector, v=values[name]: page.fill(s, v))


SCENARIOS = [
    # (form inputs, the same request on the command line)
    (
        {
            "engine": "vllm",
            "model": "qwen2.5-7b",
            "weights": "awq_4bit_g128",
            "gpu_memory_utilization": "0.8",
            "max_num_seqs": "64",
            "max_num_batched_tokens": "4096",
        },
        [
            "--model",
            "qwen2.5-7b",
            "--engine",
            "vllm",
            "--weights",
            "awq_4bit_g128",
            "--gpu-memory-utilization",
            "0.8",
            "--max-num-seqs",
            "64",
            "--max-num-batched-tokens",
            "4096",
            "--gpu",
            "rtx-4090",
        ],
    ),
    (
        {"model": "llama-3.1-8b"},
        ["--model", "llama-3.1-8b", "--gpu", "rtx-4090"],
    ),
    (
        {"model": "qwen3-30b-a3b", "weights": "q5_k_m", "context": "32768"},
        [
            "--model",
            "qwen3-30b-a3b",
            "--weights",
            "q5_k_m",
            "--context",
            "32768",
            "--gpu",
            "rtx-4090",
        ],
    ),
    (
        {"model": "deepseek-r1", "weights": "q2_k", "gpu": "h200-sxm-141gb", "gpus": "2"},
        ["--model", "deepseek-r1", "--weights", "q2_k", "--gpu", "h200-sxm-141gb", "--gpus", "2"],
    ),
    (
        {
            "model": "deepseek-r1-distill-llama-70b",
            "engine": "ollama",
            "context": "2048",
            "batch": "4",
            "gpu": "rtx-4090d",
            "gpus": "3",
        },
        [
            "--model",
            "deepseek-r1-distill-llama-70b",
            "--engine",
            "ollama",
            "--context",
            "2048",
            "--batch",
            "4",
            "--gpu",
            "rtx-4090d",
            "--gpus",
            "3",
        ],
    ),
    (
        {
            "model": "llama-3.3-70b",
            "engine": "vllm",
            "weights": "awq_4bit_g128",
            "gpu": "l40s",
            "gpus": "2",
            "batch": "8",
        },
        [
            "--model",
            "llama-3.3-70b",
            "--engine",
            "vllm",
            "--weights",
            "awq",
            "--gpu",
            "l40s",
            "--gpus",
            "2",
            "--batch",
            "8",
        ],
    ),
    (
        {"model": "gemma-3-27b", "engine": "transformers", "context": "8192"},
        [
            "--model",
            "gemma-3-27b",
            "--engine",
            "transformers",
            "--context",
            "8192",
            "--gpu",
            "rtx-4090",
        ],
    ),
    (
        {"model": "gpt-oss-120b", "engine": "vllm", "weights": "mxfp4", "gpu": "h100-sxm-80gb"},
        [
            "--model",
            "gpt-oss-120b",
            "--engine",
            "vllm",
            "--weights",
            "mxfp4",
            "--gpu",
            "h100-sxm-80gb",
        ],
    ),
    (
        {
            "model": "mixtral-8x7b",
            "kv_cache": "ggml_q8_0",
            "flash_attention": "on",
            "context": "16384",
        },
        "--model mixtral-8x7b --kv-cache q8_0 --flash-attention on --context 16384 --gpu rtx-4090",
    ),
    (
        {
            "model": "deepseek-r1-distill-qwen-32b",
            "engine": "ollama",
            "engine_version": "0.5.7",
            "gpu": "rtx-4090d",
        },
        "--model deepseek-r1-distill-qwen-32b --engine ollama --engine-version 0.5.7 "
        "--gpu rtx-4090d",
    ),
    (
        {"model": "phi-4", "gpu": "custom", "gpu_memory_gib": "12"},
        ["--model", "phi-4", "--gpu-memory", "12GiB"],
    ),
    (
        {"model": "qwen2.5-72b", "engine": "theory", "weights": "int4", "gpu": ""},
        ["--model", "qwen2.5-72b", "--engine", "theory", "--weights", "int4"],
    ),
]


@pytest.fixture(scope="module")
def booted(browser, base_url) -> Iterator[tuple[Watched, object]]:
    """One calculator page for the scenarios: each starts again from the example with the page's
    own button, so Pyodide boots once for all of them."""
    context = browser.new_context()
    watched = Watched(context.new_page())
    yield watched, open_calculator(watched, base_url)
    context.close()


def again(booted) -> tuple[Watched, object, int]:
    """The shared page started again from the example, and the count of errors so far."""
    watched, root = booted
    errors = len(watched.errors)
    change(root, lambda: root.page.click("[data-role=reset]"))
    return watched, root, errors


@pytest.mark.parametrize(("inputs", "cli_args"), SCENARIOS)
def test_page_shows_the_cli_answer(booted, inputs, cli_args):
    watched, root, errors = again(booted)
    set_inputs(root, inputs)
    assert root.get_attribute("data-error") == ""
    expected = cli_json(*(cli_args.split() if isinstance(cli_args, str) else cli_args))
    assert shown(root) == expected
    total = root.locator("[data-role=table] tr:last-child td[data-total-bytes]")
    assert total.inner_text() == format_bytes(expected["total_bytes"])
    assert watched.errors[errors:] == []


def test_typing_a_model_name_shows_no_error_until_it_is_chosen(booted):
    """Typing "qwen3 32b" one key at a time asks nothing until the box holds a name the
    catalogue knows (9 error states before); an unknown name is an error once the box is left."""
    watched, root, errors = again(booted)
    page = root.page
    page.evaluate(
        """() => {
        const root = document.getElementById('vram-calculator');
        window.__errors = 0;
        new MutationObserver(() => { if (root.dataset.error) window.__errors++; })
          .observe(root, { attributes: true, attributeFilter: ['data-error'] });
    }"""
    )
    page.fill("#vram-model", "")
    change(root, lambda: page.type("#vram-model", "qwen3 32b"))
    assert page.evaluate("window.__errors") == 0
    assert shown(root) == cli_json("--model", "qwen3-32b", "--gpu", "rtx-4090")
    page.fill("#vram-model", "")
    page.type("#vram-model", "no such model")
    assert page.evaluate("window.__errors") == 0
    change(root, lambda: page.press("#vram-model", "Tab"))
    assert "no such model" in root.get_attribute("data-error").lower()
    assert watched.errors[errors:] == []


def test_mixed_gpus_are_picked_on_the_page_and_kept_in_the_link(booted):
    """Add a different GPU: the request names both, as --gpu rtx-4090,rtx-3090 does."""
    watched, root, errors = again(booted)
    page = root.page
    change(root, lambda: page.click("[data-role=add-gpu]"))
    extra = "[data-role=more-gpus] select"
    change(root, lambda: page.select_option(extra, "rtx-3090"))
    assert page.is_disabled("#vram-gpus")
    assert shown(root) == cli_json("--model", "llama-3.1-8b", "--gpu", "rtx-4090,rtx-3090")
    page.wait_for_function("location.search.includes('gpu=rtx-4090%2Crtx-3090')")
    change(root, lambda: page.click("[data-role=more-gpus] button"))
    assert page.locator(extra).count() == 0 and not page.is_disabled("#vram-gpus")
    assert shown(root) == cli_json("--model", "llama-3.1-8b", "--gpu", "rtx-4090")
    assert watched.errors[errors:] == []


def test_start_again_restores_the_example(booted):
    _, root = booted
    change(root, lambda: root.page.click("[data-role=reset]"))
    example = shown(root)
    set_inputs(root, {"model": "qwen3-8b", "context": "2048"})
    assert shown(root) != example
    change(root, lambda: root.page.click("[data-role=reset]"))
    assert shown(root) == example
    assert root.page.input_value("#vram-model") != "qwen3-8b"


def test_a_pasted_config_gives_the_cli_answer(booted, catalogue, tmp_path):
    config = json.dumps(dict(catalogue.model("mistral-small-24b").config), indent=2)
    watched, root, errors = again(booted)
    change(root, lambda: root.page.check("input[name=source][value=config]"))
    assert root.get_attribute("data-error").startswith("Paste a model's config.json")
    change(root, lambda: root.page.fill("#vram-config", config))
    path = tmp_path / "config.json"
    path.write_text(config)
    expected = cli_json("--config", str(path), "--gpu", "rtx-4090")
    assert shown(root) == expected
    assert watched.errors[errors:] == []


def test_a_dropped_config_file_gives_the_cli_answer(booted, catalogue, tmp_path):
    config = json.dumps(dict(catalogue.model("qwen3-8b").config))
    watched, root, errors = again(booted)
    page = root.page
    change(root, lambda: page.check("input[name=source][value=config]"))
    drop = """(text) => {
        const data = new DataTransfer();
        data.items.add(new File([text], "config.json", { type: "application/json" }));
        const box = document.getElementById("vram-config");
        const event = { dataTransfer: data, bubbles: true, cancelable: true };
        box.dispatchEvent(new DragEvent("drop", event));
    }"""
    change(root, lambda: page.evaluate(drop, config))
    path = tmp_path / "config.json"
    path.write_text(config)
    assert shown(root) == cli_json("--config", str(path), "--gpu", "rtx-4090")
    assert watched.errors[errors:] == []


def test_a_local_gguf_file_gives_the_cli_answer_and_stays_out_of_the_link(booted, tmp_path):
    """The page reads the header in steps (the first MiB, then what the estimator asks for)
    and shows what the command line says for the same file."""
    from tests.gguf_files import tiny_llama, write

    metadata, tensors = tiny_llama(tokens=120_000)  # a header of about 2.5 MiB
    path = write(tmp_path / "tiny.gguf", metadata, tensors, with_data=True)
    watched, root, errors = again(booted)
    change(root, lambda: root.page.check("input[name=source][value=gguf]"))
    assert "Choose a .gguf file" in root.get_attribute("data-error")
    change(root, lambda: root.page.set_input_files("#vram-gguf", str(path)))
    assert root.get_attribute("data-error") == ""
    assert shown(root) == cli_json("--gguf", str(path), "--gpu", "rtx-4090")
    watched.page.wait_for_function("location.search.includes('gpu=rtx-4090')")
    assert "gguf" not in watched.page.url and "tiny" not in watched.page.url
    assert watched.errors[errors:] == []


def test_a_copied_link_restores_inputs_and_result(booted, browser):
    """A link holds every input, mixed GPUs included, and reopens the same estimate."""
    watched, root, errors = again(booted)
    set_inputs(
        root,
        {"model": "qwen3-32b", "engine": "ollama", "context": "12000", "gpu": "rtx-3090"},
    )
    change(root, lambda: root.page.click("[data-role=add-gpu]"))
    change(root, lambda: root.page.select_option("[data-role=more-gpus] select", "rtx-4090"))
    watched.page.wait_for_function("location.search.includes('context=12000')")
    watched.page.wait_for_function("location.search.includes('gpu=rtx-3090%2Crtx-4090')")
    link, result = watched.page.url, shown(root)
    assert len(result["devices"]) == 2
    other = Watched(browser.new_context().new_page())
    other.page.goto(link)
    other.page.wait_for_selector(READY, timeout=BOOT_TIMEOUT_MS)
    restored = other.page.locator("#vram-calculator")
    assert shown(restored) == result
    assert other.page.input_value("#vram-context") == "12000"
    assert other.page.input_value("#vram-gpu") == "rtx-3090"
    assert other.page.input_value("[data-role=more-gpus] select") == "rtx-4090"
    assert other.errors == [] and watched.errors[errors:] == []
    other.page.context.close()


def test_bad_config_text_shows_an_error_without_console_errors(booted):
    watched, root, errors = again(booted)
    change(root, lambda: root.page.check("input[name=source][value=config]"))
    change(root, lambda: root.page.fill("#vram-config", '{"model_type": "llama", "hidden'))
    message = root.locator("[data-role=error]")
    assert message.is_visible()
    assert "not valid JSON at line 1" in message.inner_text()
    assert root.page.get_attribute("#vram-config", "aria-invalid") == "true"
    change(root, lambda: root.page.fill("#vram-config", '{"model_type": "mamba"}'))
    assert "unsupported model_type 'mamba'" in message.inner_text()
    assert watched.errors[errors:] == []


def test_a_hostile_link_shows_an_error_and_falls_back_to_defaults(watched, base_url):
    hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    root = open_calculator(
        watched, base_url, {"model": hostile, "context": "-5", "engine": "llama.cpp"}
    )
    assert "could not be used" in root.get_attribute("data-link-error")
    assert root.locator("[data-role=error]").is_visible()
    assert root.page.input_value("#vram-model") == "llama-3.1-8b"
    assert shown(root)["total_bytes"] > 0
    assert root.page.locator("#vram-calculator img").count() == 0
    assert root.page.locator("#vram-calculator script").count() == 0
    assert watched.errors == []


def test_unknown_choices_in_a_link_fall_back_too(watched, base_url):
    root = open_calculator(watched, base_url, {"engine": "tgi", "weights": "q9_k"})
    assert "unknown engine" in root.get_attribute("data-link-error")
    assert root.page.input_value("#vram-engine") == "llama.cpp"


def test_every_request_stays_on_127_0_0_1(booted, base_url):
    """Every request the shared page made, from its boot on."""
    watched, _ = booted
    hosts = {url.split("/")[2] for url in watched.requests if url.startswith("http")}
    assert hosts == {base_url.split("/")[2]}


def test_a_second_visit_starts_offline(browser, base_url):
    """After a first result the service worker keeps the runtime, the wheel, the catalogue and
    the page: with the network gone, the calculator starts again and answers."""
    context = browser.new_context()
    first = Watched(context.new_page())
    root = open_calculator(first, base_url)
    root.page.wait_for_selector(
        "#vram-calculator[data-offline=ready]", state="attached", timeout=BOOT_TIMEOUT_MS
    )
    expected = shown(root)
    context.set_offline(True)
    again = Watched(context.new_page())
    restored = open_calculator(again, base_url)
    assert shown(restored) == expected
    assert again.errors == [] and first.errors == []
    context.close()


# Screenshots of the calculator at each width and scheme, kept by CI as artifacts
SCREENSHOTS = Path(
    os.environ.get("SCREENSHOTS_DIR")
    or Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
)
WIDTHS = [(1280, 900), (768, 1024), (390, 844)]


@pytest.mark.parametrize(("width", "height"), WIDTHS)
def test_the_answer_is_on_the_first_screen_and_stays_there(booted, width, height):
    """The summary (total, verdict, what would fit, speed) is in the first screen once the
    first result is in, and still in sight with the page scrolled down the form."""
    watched, root, errors = again(booted)
    page = watched.page
    before = page.viewport_size
    page.set_viewport_size({"width": width, "height": height})
    try:
        summary = root.locator("[data-role=summary]")
        assert "GiB" in summary.inner_text()
        for scrolled in (0, 600):
            page.evaluate(f"window.scrollTo(0, {scrolled})")
            box = summary.bounding_box()
            assert box is not None and box["y"] >= 0
            assert box["y"] + min(box["height"], 120) <= height
        result = root.locator("[data-role=result]")
        assert result.is_visible()
        # no column of the result runs past its edge: narrow tables stack their figures
        assert result.evaluate("(r) => r.scrollWidth <= r.clientWidth + 1")
        table = root.locator("[data-role=table]")
        assert table.evaluate("(t) => t.getBoundingClientRect().right") <= width
        page.evaluate("window.scrollTo(0, 0)")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"calculator-{width}-light.png"))
    finally:
        page.evaluate("window.scrollTo(0, 0)")
        page.set_viewport_size(before)
    assert watched.errors[errors:] == []


def test_generated_tables_hide_no_column_on_a_phone(browser, base_url):
    """At 390 px a wide table's rows become labelled lists: nothing runs past the screen or
    needs scrolling sideways (the DeepSeek-R1 table showed 3 of 10 columns)."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    for path in ("tables/deepseek-r1/", "tables/models/qwen/", "tables/gpus/", "validation/"):
        page.goto(base_url + path)
        page.wait_for_load_state("networkidle")
        tables = page.locator(".md-typeset table")
        assert tables.count() > 0, path
        hidden = page.evaluate(
            """() => [...document.querySelectorAll('.md-typeset table')].filter((t) =>
                t.getBoundingClientRect().right > innerWidth + 1
                || t.parentElement.scrollWidth > t.parentElement.clientWidth + 1).length"""
        )
        assert hidden == 0, path
        assert page.locator("table.vram-stack td[data-label]").count() > 0, path
    context.close()


AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
AXE_RUN = """async () => {
  const tags = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];
  const result = await axe.run(document, { runOnly: { type: "tag", values: tags } });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | ")}`);
}"""


def axe_violations(page) -> list[str]:
    """axe-core's serious and critical WCAG 2.1 A/AA findings; the script is injected by the
    test (npm's axe-core), never served by the site."""
    page.add_script_tag(path=str(AXE))
    return page.evaluate(AXE_RUN)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_guide_pages_pass_axe_in_both_schemes(browser, base_url, scheme):
    context = browser.new_context(color_scheme=scheme)
    page = context.new_page()
    # a page of each kind: home, guide, generated table, model page, the reference prose (the
    # long table pages cost axe 10 s each and hold the same markup)
    for path in (
        "",
        "guide/article/",
        "tables/deepseek-r1/",
        "tables/models/openai/",
        "methodology/",
    ):
        page.goto(base_url + path)
        page.wait_for_load_state("networkidle")
        assert axe_violations(page) == [], path
    context.close()


def test_the_calculator_passes_axe_and_works_from_the_keyboard(booted):
    watched, root, errors = again(booted)
    page = root.page
    assert axe_violations(page) == []
    page.focus("input[name=mode][value=inference]")
    reached = set()
    for _ in range(120):
        page.keyboard.press("Tab")
        reached.add(
            page.evaluate("document.activeElement.id || document.activeElement.dataset.role")
        )
    wanted = {"vram-model", "vram-engine", "vram-gpu", "add-gpu", "reset", "copy"}
    assert wanted <= reached, wanted - reached
    assert watched.errors[errors:] == []


def test_a_trainer_profile_fills_the_empty_fields_as_on_the_command_line(booted):
    watched, root, errors = again(booted)
    page = root.page
    change(root, lambda: page.check("input[name=mode][value=finetune]"))
    change(root, lambda: page.select_option("select[name=trainer]", "unsloth"))
    expected = cli_json_command(
        "finetune", "--model", "llama-3.1-8b", "--trainer", "unsloth", "--gpu", "rtx-4090"
    )
    assert shown(root)["total_bytes"] == expected["total_bytes"]
    # the empty fields show what the profile set: r=16, 8-bit AdamW, offloaded activations
    assert page.get_attribute("input[name=lora_rank]", "placeholder") == "default 16"
    optimizer = page.locator("select[name=optimizer] option[value='']").inner_text()
    assert "8-bit" in optimizer, optimizer
    change(root, lambda: page.fill("input[name=lora_rank]", "64"))
    flags = "--model llama-3.1-8b --trainer unsloth --lora-rank 64 --gpu rtx-4090"
    mine = cli_json_command("finetune", *flags.split())
    assert shown(root)["total_bytes"] == mine["total_bytes"]
    assert watched.errors[errors:] == []


def test_fine_tuning_mode_passes_axe_and_works_from_the_keyboard(booted):
    watched, root, errors = again(booted)
    page = root.page
    change(root, lambda: page.check("input[name=mode][value=finetune]"))
    assert root.get_attribute("data-mode") == "finetune"
    assert axe_violations(page) == []
    page.focus("input[name=mode][value=finetune]")
    reached = set()
    for _ in range(120):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.name || document.activeElement.id"))
    # the method's fields, reached in turn, and none hidden from the keyboard
    assert {"method", "seq_len", "micro_batch", "gpu"} <= reached, reached
    hidden = page.evaluate(
        """names => names.filter(n => {
            const f = document.querySelector(`[name="${n}"]`);
            return f && f.closest('[hidden]');
        })""",
        sorted(n for n in reached if n),
    )
    assert hidden == []
    assert watched.errors[errors:] == []


def test_guide_pages_load_no_pyodide(watched, base_url):
    watched.page.goto(base_url + "guide/article/")
    watched.page.wait_for_load_state("networkidle")
    calculator_only = ("/pyodide/", "calculator.js", "worker.js", ".whl", "catalogue.json")
    assert not [url for url in watched.requests if any(part in url for part in calculator_only)]
    assert any(url.endswith("loader.js") for url in watched.requests)  # the small starter only


def test_instant_navigation_starts_the_calculator(watched, base_url):
    watched.page.goto(base_url)
    watched.page.wait_for_load_state("networkidle")
    watched.page.click("nav.md-nav--primary >> text=Calculator")
    watched.page.wait_for_selector(READY, timeout=BOOT_TIMEOUT_MS)
    assert shown(watched.page.locator("#vram-calculator"))["total_bytes"] > 0
    assert watched.errors == []


def test_without_javascript_the_page_says_so(browser, base_url):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(base_url + "calculator/")
    assert "needs JavaScript" in page.locator("#vram-calculator").inner_text()
    page.goto(base_url + "tables/models/qwen/")
    assert page.locator("table").count() > 10
    context.close()


def test_phone_width_and_dark_mode(browser, base_url):
    """Dark mode at every width: nothing wider than the screen, buttons at AA contrast, axe
    clean; a screenshot at each width."""
    context = browser.new_context(viewport={"width": 375, "height": 800}, color_scheme="dark")
    page = context.new_page()
    page.goto(base_url + "calculator/")
    page.wait_for_selector(READY, timeout=BOOT_TIMEOUT_MS)
    assert page.get_attribute("body", "data-md-color-scheme") == "slate"
    width = page.evaluate(
        "document.querySelector('[data-role=form]').getBoundingClientRect().width"
    )
    assert width <= 375
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 375
    # the buttons' text against the page: WCAG AA asks 4.5:1 (it was 2.35:1 in dark mode)
    for role in ("copy", "reset"):
        assert page.evaluate(CONTRAST_JS, f"[data-role={role}]") >= 4.5, role
    assert axe_violations(page) == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in WIDTHS:
        page.set_viewport_size({"width": width, "height": height})
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(SCREENSHOTS / f"calculator-{width}-dark.png"))
    context.close()


CONTRAST_JS = r"""(selector) => {
  const element = document.querySelector(selector);
  const rgb = (text) => text.match(/[0-9.]+/g).slice(0, 3).map(Number);
  const luminance = ([r, g, b]) => {
    const [R, G, B] = [r, g, b].map((c) => {
      c /= 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  let node = element, background = null;
  while (node && !background) {
    const colour = getComputedStyle(node).backgroundColor;
    if (!/rgba\(0, 0, 0, 0\)|transparent/.test(colour)) background = rgb(colour);
    node = node.parentElement;
  }
  const fg = luminance(rgb(getComputedStyle(element).color));
  const bg = luminance(background || [255, 255, 255]);
  return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
}"""


def test_fine_tuning_mode_shows_the_cli_answer_and_keeps_it_in_the_link(booted):
    watched, root, errors = again(booted)
    page = root.page
    change(root, lambda: page.check("input[name=mode][value=finetune]"))
    assert page.locator("[data-role=inference-group]").is_hidden()
    change(root, lambda: page.select_option("#vram-method", "qlora"))
    change(root, lambda: page.fill("#vram-seq_len", "4096"))
    change(root, lambda: page.select_option("#vram-grad_checkpointing", "full"))
    change(root, lambda: page.select_option("#vram-adapter_precision", "bf16"))
    change(root, lambda: page.select_option("#vram-compile", "on"))
    change(root, lambda: page.select_option("#vram-chunked_loss", "on"))
    change(root, lambda: page.fill("#vram-lora_dropout", "0.05"))
    change(root, lambda: page.select_option("#vram-fused_qkv", "on"))
    expected = cli_json_command(
        "finetune",
        "--model",
        "llama-3.1-8b",
        "--method",
        "qlora",
        "--seq-len",
        "4096",
        "--grad-checkpointing",
        "full",
        "--adapter-precision",
        "bf16",
        "--compile",
        "on",
        "--chunked-loss",
        "on",
        "--lora-dropout",
        "0.05",
        "--fused-qkv",
        "on",
        "--gpu",
        "rtx-4090",
    )
    assert shown(root) == expected
    labels = root.locator("[data-role=legend] li").all_inner_texts()
    assert "Optimizer state" in labels and "KV cache" not in labels
    page.wait_for_function("location.search.includes('mode=finetune')")
    page.wait_for_function("location.search.includes('grad_checkpointing=full')")
    page.wait_for_function("location.search.includes('lora_dropout=0.05')")
    other = Watched(page.context.new_page())  # the link, opened beside the shared page
    other.page.goto(page.url)
    other.page.wait_for_selector(READY, timeout=BOOT_TIMEOUT_MS)
    assert shown(other.page.locator("#vram-calculator")) == expected
    other.page.close()
    assert other.errors == [] and watched.errors[errors:] == []


def test_hints_say_what_would_fit_in_both_modes(booted, catalogue):
    from calc import InferenceRequest
    from calc.api import resolve
    from calc.finetune import FinetuneRequest
    from calc.hints import fewest_gpus, finetune_hint

    watched, root, errors = again(booted)
    page = root.page
    # vLLM: no CPU offload, so the hint counts the GPUs (only sizes that divide the heads)
    set_inputs(root, {"engine": "vllm", "model": "llama-3.1-70b", "weights": "bf16"})
    resolved = resolve(
        catalogue,
        InferenceRequest(model="llama-3.1-70b", weights="bf16", engine="vllm", gpu="rtx-4090"),
    )
    needed = fewest_gpus(resolved, {})
    hint = root.locator("[data-role=hint]").inner_text()
    assert f"It would fit on {needed} of these GPUs." in hint
    from calc.hints import fit_hint

    tp, pp = fit_hint(catalogue, resolved, {}).pipeline
    assert (
        f"With pipeline parallel it would fit on {tp * pp} (tensor parallel {tp} x {pp} stages)."
        in hint
    )
    change(root, lambda: page.check("input[name=mode][value=finetune]"))
    change(root, lambda: page.select_option("#vram-method", "full"))
    change(root, lambda: page.select_option("#vram-grad_checkpointing", "full"))
    # a 70B model's full fine-tune needs more 24 GB cards than the hint counts to; an 8B's not
    set_inputs(root, {"model": "llama-3.1-8b"})
    expected = finetune_hint(
        catalogue,
        FinetuneRequest(method="full", grad_checkpointing=True),
        {"model": "llama-3.1-8b", "gpu": "rtx-4090"},
    )
    assert expected is not None and expected.gpus_needed is not None
    hint = root.locator("[data-role=hint]").inner_text()
    assert f"It would fit on {expected.gpus_needed} of these GPUs with ZeRO-3." in hint
    assert watched.errors[errors:] == []


def test_serving_capacity_and_context_charts_come_from_calc(booted):
    watched, root, errors = again(booted)
    set_inputs(root, {"model": "llama-3.1-8b", "engine": "vllm", "gpu": "rtx-4090"})
    serving = shown(root)["serving"]
    text = root.locator("[data-role=serving]").inner_text()
    assert f"{serving['sequences']:,} sequence(s) at once" in text
    assert f"{serving['kv_cache_tokens']:,} tokens of KV cache" in text
    root.locator("[data-role=charts] summary").click()
    root.page.wait_for_function(
        "() => Number(document.getElementById('vram-calculator').dataset.charts || 0) >= 1"
    )
    charts = root.locator("[data-role=chart-box] svg")
    assert charts.count() == 3
    assert [charts.nth(i).get_attribute("data-chart") for i in range(3)] == [
        "memory",
        "decode",
        "prefill",
    ]
    assert "Llama 3.1 8B" in charts.nth(0).locator("title").first.text_content()
    root.locator("[data-role=charts] summary").click()  # closed again for the next test
    assert watched.errors[errors:] == []


def test_the_planner_panels_answer_as_the_cli_does(booted):
    watched, root, errors = again(booted)
    set_inputs(root, {"model": "llama-3.1-70b", "engine": "llama.cpp", "gpu": "rtx-4090d"})
    page = root.page
    for role, command in (("plan", "plan"), ("gpus", "gpus")):
        root.locator(f"[data-role={role}] summary").click()
        key = f"{role}Updates"
        page.wait_for_function(
            f"() => Number(document.getElementById('vram-calculator').dataset.{key} || 0) >= 1",
            timeout=120_000,
        )
        expected = cli_json_command(command, "--model", "llama-3.1-70b", "--gpu", "rtx-4090d")
        table = root.locator(f"[data-role={role}-table]")
        assert table.get_attribute("data-rows") == str(len(expected))
        first = table.locator("tbody tr").first.locator("td").first.inner_text()
        assert first == (expected[0]["label"] if role == "plan" else expected[0]["name"])
        root.locator(f"[data-role={role}] summary").click()  # closed again for the next test
    assert watched.errors[errors:] == []
