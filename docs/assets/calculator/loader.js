// Loaded on every page, a few hundred bytes: starts the calculator only where there is one,
// including after Material's instant navigation (document$ emits on every page change).
// Pages without the calculator load nothing more, and never Pyodide.
function start() {
  const root = document.getElementById("vram-calculator");
  if (!root || root.dataset.mounted) return;
  root.dataset.mounted = "true";
  root.dataset.state = "loading";
  import(new URL("calculator.js", import.meta.url).href)
    .then((module) => module.mount(root))
    .catch((error) => {
      root.dataset.state = "error";
      const status = root.querySelector("[data-role=status]");
      if (status) status.textContent = `The calculator could not start: ${error.message}`;
    });
}

// Every wide table of the page gets its column's name on each cell, so that on a phone each row
// reads as a list of labelled figures instead of columns scrolled out of sight (calculator.css:
// .vram-stack). Without JavaScript the tables scroll, as Material makes them.
function labelTables() {
  for (const table of document.querySelectorAll(".md-typeset table:not(.vram-stack)")) {
    const head = table.tHead && table.tHead.rows[0];
    if (!head || head.cells.length < 4) continue;
    const labels = [...head.cells].map((cell) => cell.textContent.trim());
    for (const body of table.tBodies) {
      for (const row of body.rows) {
        [...row.cells].forEach((cell, i) => cell.setAttribute("data-label", labels[i] || ""));
      }
    }
    table.classList.add("vram-stack");
  }
}

// The language switch: the same page in the other language. Every page has its translation
// (the build fails otherwise), under /zh/ for Chinese, at the site's root for English, so the
// address maps one to one; computed at the click, it holds after instant navigation too.
const LANGUAGES = ["zh"]; // the translations' folders
function siteRoot() {
  const config = document.getElementById("__config");
  const base = config ? JSON.parse(config.textContent).base : ".";
  return new URL(`${base}/`, location.href);
}

function samePageIn(lang) {
  const root = siteRoot();
  let path = location.pathname.slice(root.pathname.length);
  const first = path.split("/")[0];
  if (LANGUAGES.includes(first)) path = path.slice(first.length + 1);
  const prefix = lang === "en" ? "" : `${lang}/`;
  return new URL(prefix + path + location.search + location.hash, root).href;
}

document.addEventListener(
  "click",
  (event) => {
    const link = event.target instanceof Element && event.target.closest("a.md-select__link[hreflang]");
    if (!link || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    event.stopPropagation(); // Material's own handler would look for a sitemap per page
    location.assign(samePageIn(link.getAttribute("hreflang")));
  },
  true,
);

function onPage() {
  start();
  labelTables();
}

if (window.document$) {
  window.document$.subscribe(onPage);
} else {
  document.addEventListener("DOMContentLoaded", onPage);
}
