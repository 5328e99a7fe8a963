"""Benchmark the calculator in headless Chromium; prints figures, asserts nothing.

    .venv/bin/python scripts/bench_calculator.py [--runs 5] [--changes 200]

Measures, against a fresh build served on 127.0.0.1:
- bare Pyodide boot: a blank page whose worker only loads Pyodide (the floor);
- calculator: navigation to the first result shown;
- per input change, inference (the context) and fine-tuning (the sequence length): from the
  input event on an idle page to the result in place, median and p95 over --changes changes;
- bytes transferred by the calculator page and by a guide page, on a first visit (cold) and on
  a second visit in the same browser profile (warm: what its cache does not hold).
Targets (issues 3 and 15): first result within 1.2x of the bare boot; p95 update at most 10 ms
for both modes; guide pages load no Pyodide.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, Request, sync_playwright  # noqa: E402

from scripts.serve_site import CHROMIUM_ARGS, READY, build, chromium_path, serve  # noqa: E402

BLANK_PAGE = """<!doctype html><meta charset="utf-8"><title>bare Pyodide</title>
<script type="module">
const worker = new Worker("blank-worker.js", { type: "module" });
worker.onmessage = () => { document.body.dataset.state = "ready"; };
</script><body data-state="loading"></body>
"""
BLANK_WORKER = """
const manifest = await fetch(new URL("../assets/calculator/manifest.json", self.location.href))
  .then((r) => r.json());
const runtime = new URL(`../assets/pyodide/${manifest.pyodide}/`, self.location.href);
const { loadPyodide } = await import(new URL("pyodide.mjs", runtime).href);
await loadPyodide({ indexURL: runtime.href });
self.postMessage("ready");
"""
CHANGES_JS = """async ([count, field, low, span]) => {
  // Each change starts on an idle page (two frames after the last, its paint done), and ends
  // when the page has put the result in place: one edit, as a reader makes it.
  const root = document.getElementById("vram-calculator");
  const input = document.getElementById(field);
  const frame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));
  const timings = [];
  for (let i = 0; i < count; i++) {
    await frame();
    await frame();
    const before = Number(root.dataset.updates);
    const done = new Promise((resolve) => {
      const observer = new MutationObserver(() => {
        if (Number(root.dataset.updates) > before) { observer.disconnect(); resolve(); }
      });
      observer.observe(root, { attributes: true, attributeFilter: ["data-updates"] });
    });
    const start = performance.now();
    input.value = String(low + ((i * 7919) % span));
    input.dispatchEvent(new Event("input", { bubbles: true }));
    await done;
    timings.push(performance.now() - start);
  }
  return timings;
}"""


# (field, lowest value, span): the values each change sets
CONTEXTS = ("vram-context", 1024, 120_000)
SEQ_LENS = ("vram-seq_len", 256, 8_000)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def transferred(page: Page, url: str, ready: str) -> int:
    sizes: list[int] = []

    def finished(request: Request) -> None:
        response = request.response()
        if response is not None and response.from_service_worker:
            return  # kept by the service worker: nothing crossed the network
        s = request.sizes()
        sizes.append(s["responseBodySize"] + s["responseHeadersSize"])

    page.on("requestfinished", finished)
    page.goto(url)
    page.wait_for_selector(ready, state="attached", timeout=120_000)
    page.wait_for_load_state("networkidle")
    page.remove_listener("requestfinished", finished)
    return sum(sizes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--changes", type=int, default=200)
    args = parser.parse_args()
    chromium = chromium_path()
    if chromium is None:
        print("no Chromium found: apt-get install chromium, or set CHROMIUM", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as temp:
        site = Path(temp) / "site"
        result = build(site)
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return 1
        (site / "_bench").mkdir()
        (site / "_bench" / "blank.html").write_text(BLANK_PAGE)
        (site / "_bench" / "blank-worker.js").write_text(BLANK_WORKER)
        with serve(site) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            bare: list[float] = []
            first: list[float] = []
            for _ in range(args.runs):
                for url, ready, out in (
                    (base + "_bench/blank.html", "body[data-state=ready]", bare),
                    (base + "calculator/", "#vram-calculator[data-updates='1']", first),
                ):
                    context = browser.new_context()
                    page = context.new_page()
                    page.goto(url)
                    page.wait_for_selector(ready, state="attached", timeout=120_000)
                    out.append(page.evaluate("performance.now()"))
                    context.close()
            context = browser.new_context()
            page = context.new_page()
            calculator_bytes = transferred(page, base + "calculator/", READY)
            timings = {"inference": page.evaluate(CHANGES_JS, [args.changes, *CONTEXTS])}
            page.check("input[name=mode][value=finetune]")
            page.wait_for_selector("#vram-seq_len", state="visible")
            timings["fine-tuning"] = page.evaluate(CHANGES_JS, [args.changes, *SEQ_LENS])
            fresh = browser.new_context()  # a first visit to a guide page: nothing kept yet
            guide_bytes = transferred(fresh.new_page(), base + "guide/article/", "article")
            fresh.close()
            page.wait_for_selector("#vram-calculator[data-offline=ready]", state="attached")
            again = context.new_page()
            warm_calculator = transferred(again, base + "calculator/", READY)
            warm_guide = transferred(context.new_page(), base + "guide/article/", "article")
            context.close()
            browser.close()
        shutil.rmtree(site / "_bench")
    bare_ms, first_ms = statistics.median(bare), statistics.median(first)
    print(f"bare Pyodide boot (median of {args.runs}):        {bare_ms:8.0f} ms")
    print(
        f"calculator first result (median of {args.runs}):  {first_ms:8.0f} ms"
        f"  = {first_ms / bare_ms:.2f}x the bare boot (target <= 1.2x)"
    )
    for mode, times in timings.items():
        median, p95 = statistics.median(times), percentile(times, 0.95)
        print(
            f"{mode} input change to result, {len(times)} changes: median {median:.2f} ms,"
            f" p95 {p95:.2f} ms (target p95 <= 10 ms)"
        )
    for label, cold, warm in (
        ("calculator page", calculator_bytes, warm_calculator),
        ("a guide page", guide_bytes, warm_guide),
    ):
        print(
            f"bytes transferred, {label:16} cold {cold / 2**20:8.2f} MiB,"
            f" warm {warm / 2**20:8.2f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
