// The calculator's Web Worker: boots Pyodide (served by this site, never a CDN), installs the
// estimator's wheel, loads the catalogue, and answers JSON requests through calc.bridge.
// The page never runs Python itself, so it stays responsive while Python starts.

const here = new URL(".", self.location.href);
const post = (message) => self.postMessage(message);

async function boot() {
  post({ type: "progress", stage: "Loading the Python runtime" });
  const manifest = await (await fetch(new URL("manifest.json", here))).json();
  const { loadPyodide } = await import(new URL("../pyodide/pyodide.mjs", here).href);
  const pyodide = await loadPyodide({
    indexURL: new URL("../pyodide/", here).href,
    stdout: () => {},
    stderr: () => {},
  });
  post({ type: "progress", stage: "Installing the estimator" });
  const [wheel, catalogue] = await Promise.all([
    fetch(new URL(manifest.wheel, here)).then((r) => r.arrayBuffer()),
    fetch(new URL("catalogue.json", here)).then((r) => r.text()),
  ]);
  pyodide.unpackArchive(wheel, "wheel");
  const bridge = pyodide.pyimport("calc.bridge");
  const session = bridge.Session.from_json(catalogue);
  // The catalogue lives as long as the page: keep the collector from rescanning it, which
  // otherwise shows up as the slowest updates.
  pyodide.runPython("import gc; gc.freeze()");
  const options = JSON.parse(session.handle(JSON.stringify({ action: "options" })));
  return { session, options: options.options };
}

const ready = boot();

ready.then(
  ({ options }) => post({ type: "ready", options }),
  (error) => post({ type: "failed", message: String(error && error.message ? error.message : error) }),
);

self.onmessage = async (event) => {
  const { id, body } = event.data;
  try {
    const { session } = await ready;
    post({ type: "response", id, body: session.handle(body) });
  } catch (error) {
    post({ type: "response", id, body: JSON.stringify({ ok: false, error: { message: String(error), field: "" } }) });
  }
};
