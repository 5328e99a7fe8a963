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

if (window.document$) {
  window.document$.subscribe(start);
} else {
  document.addEventListener("DOMContentLoaded", start);
}
