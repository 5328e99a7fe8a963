// The calculator's Web Worker: boots Pyodide (served by this site, never a CDN), installs the
// estimator's wheel, loads the catalogue, and answers JSON requests through calc.bridge.
// The page never runs Python itself, so it stays responsive while Python starts.

const here = new URL(".", self.location.href);
const post = (message) => self.postMessage(message);

async function boot() {
  post({ type: "progress", stage: "Loading the Python runtime" });
  // The wheel and the catalogue download while the runtime starts.
  // The manifest names each file by version; it alone is asked of the server on each visit
  // (and comes from the service worker's copy when there is no network).
  const manifest = await fetch(new URL("manifest.json", here), { cache: "no-cache" }).then((r) => r.json());
  const files = Promise.all([
    fetch(new URL(manifest.wheel, here)).then((r) => r.arrayBuffer()),
    fetch(new URL(manifest.catalogue, here)).then((r) => r.text()),
  ]);
  files.catch(() => {}); // a failure surfaces where it is awaited, not as an unhandled rejection
  const runtime = new URL(`../pyodide/${manifest.pyodide}/`, here);
  const { loadPyodide } = await import(new URL("pyodide.mjs", runtime).href);
  const pyodide = await loadPyodide({
    indexURL: runtime.href,
    stdout: () => {},
    stderr: () => {},
  });
  post({ type: "progress", stage: "Installing the estimator" });
  const [wheel, catalogue] = await files;
  pyodide.unpackArchive(wheel, "wheel");
  const bridge = pyodide.pyimport("calc.bridge");
  // The build checked this catalogue before writing it: its rules need not run again here.
  const session = bridge.Session.from_json.callKwargs(catalogue, { checked: true });
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
