// Runs calc.bridge inside Pyodide (the npm package the site ships) under Node, over the
// requests in a JSON file, and writes the responses: the CPython side compares them.
// Usage: node tests/parity.mjs WHEEL CATALOGUE_JSON REQUESTS_JSON RESPONSES_JSON
import { readFile, writeFile } from "node:fs/promises";
import { loadPyodide } from "pyodide";

const [wheelPath, cataloguePath, requestsPath, responsesPath] = process.argv.slice(2);
const pyodide = await loadPyodide({ stdout: () => {}, stderr: () => {} });
pyodide.unpackArchive(new Uint8Array(await readFile(wheelPath)), "wheel");
const bridge = pyodide.pyimport("calc.bridge");
const session = bridge.Session.from_json(await readFile(cataloguePath, "utf8"));
const requests = JSON.parse(await readFile(requestsPath, "utf8"));
const responses = requests.map((request) => session.handle(request));
const version = pyodide.runPython("import sys; sys.version.split()[0]");
await writeFile(responsesPath, JSON.stringify({ python: version, responses }));
