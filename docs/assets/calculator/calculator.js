// The calculator page: a form, the URL as its state, and a view of calc.bridge's answer.
// No memory arithmetic happens here: every number comes from the Python estimator in the
// worker. Everything shown is set with textContent or SVG attributes, never as HTML.

const GIB = 2 ** 30;
const GB = 1e9;
const COMPONENTS_BY_MODE = {
  inference: [
    ["weights", "Weights"],
    ["vision", "Vision tower"],
    ["kv_cache", "KV cache"],
    ["recurrent_state", "Recurrent state"],
    ["activations", "Activations"],
    ["runtime", "Runtime"],
  ],
  finetune: [
    ["weights", "Weights"],
    ["gradients", "Gradients"],
    ["optimizer", "Optimizer state"],
    ["activations", "Activations"],
    ["reference", "Reference and reward models"],
    ["generation", "Generation"],
    ["runtime", "Runtime"],
  ],
};
let COMPONENTS = COMPONENTS_BY_MODE.inference;
// The page opens on an example; every other starting value is the input table's default.
const EXAMPLE = { model: "llama-3.1-8b", gpu: "rtx-4090" };
const CUSTOM_GPU = "custom";
const URL_DELAY_MS = 250; // inputs idle this long before the address bar is rewritten
// A GGUF file's header is read from its first bytes; the estimator asks for more when the
// header (mostly the vocabulary) runs on. The tensor data is never read.
const GGUF_FIRST_READ = 2 ** 20;
const SVG = "http://www.w3.org/2000/svg";

// The page's language (Material sets <html lang>): English is the source; another language's
// words come from messages.<lang>.json, which the build writes from docs/i18n/<lang>.yaml.
const LANG = (document.documentElement.lang || "en").split("-")[0].toLowerCase();
let MESSAGES = { calculator: {}, estimator: {}, inputs: {} };
const NUMBER_LOCALE = LANG === "zh" ? "zh-CN" : "en";

// The interface's own words: "Fits: {gib} GiB", with each {name} filled from values.
export function t(english, values = {}) {
  const text = MESSAGES.calculator[english] ?? english;
  return text.replace(/\{(\w+)\}/g, (all, name) => (name in values ? String(values[name]) : all));
}

// The input table's labels and help (calc/inputs.py), as the build translated them.
const tInput = (english) => (english && MESSAGES.inputs[english]) || english;

// The estimator's notes and errors are English sentences with figures in them; each catalogue
// entry is a sentence with {name} holes, matched whole. A hole named *_list or *_items holds a
// comma-separated list whose items are translated in turn (a list of settings is joined with
// "，", of items with "、"). Unmatched text stays English.
const isList = (name) => name.endsWith("_list") || name.endsWith("_items");
let notePatterns = null;
function patterns() {
  if (notePatterns) return notePatterns;
  notePatterns = Object.entries(MESSAGES.estimator).map(([english, translated]) => {
    const names = [];
    const source = english
      .split(/(\{\w+\})/)
      .map((part) => {
        const hole = /^\{(\w+)\}$/.exec(part);
        if (!hole) return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
        names.push(hole[1]);
        return isList(hole[1]) ? "(.+)" : "(.+?)";
      })
      .join("");
    return { regex: new RegExp(`^${source}$`), names, translated, fixed: english.replace(/\{\w+\}/g, "").length };
  });
  // the most specific first: "unknown model {name}; did you mean {options}?" before "unknown model {name}"
  notePatterns.sort((a, b) => b.fixed - a.fixed);
  return notePatterns;
}

export function tNote(english) {
  if (LANG === "en" || !english) return english;
  for (const { regex, names, translated } of patterns()) {
    const match = regex.exec(english);
    if (!match) continue;
    const values = {};
    names.forEach((name, i) => {
      const value = match[i + 1];
      values[name] = isList(name) ? value.split(", ").map(tNote).join(name.endsWith("_items") ? "、" : "，") : tNote(value);
    });
    return translated.replace(/\{(\w+)\}/g, (all, name) => values[name] ?? all);
  }
  return english;
}

async function loadMessages() {
  if (LANG === "en") return;
  const response = await fetch(new URL(`messages.${LANG}.json`, import.meta.url));
  if (response.ok) MESSAGES = { ...MESSAGES, ...(await response.json()) };
}

let worker = null;
let booted = null;
let nextId = 0;
const pending = new Map();

function startWorker() {
  if (booted) return booted;
  worker = new Worker(new URL("worker.js", import.meta.url), { type: "module" });
  booted = new Promise((resolve, reject) => {
    worker.onmessage = (event) => {
      const message = event.data;
      if (message.type === "progress") {
        for (const listener of progressListeners) listener(message.stage);
      } else if (message.type === "ready") {
        resolve(message.options);
      } else if (message.type === "failed") {
        reject(new Error(message.message));
      } else if (message.type === "response") {
        const callback = pending.get(message.id);
        pending.delete(message.id);
        if (callback) callback(JSON.parse(message.body));
      }
    };
    worker.onerror = (event) => reject(new Error(event.message || "the worker failed"));
  });
  return booted;
}

const progressListeners = new Set();

function ask(body) {
  const id = ++nextId;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    worker.postMessage({ id, body: JSON.stringify(body) });
  });
}

export function formatBytes(bytes) {
  return `${(bytes / GIB).toFixed(1)} GiB (${(bytes / GB).toFixed(1)} GB)`;
}

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

// Bytes as base64 for the JSON bridge, in slices small enough for String.fromCharCode.
function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function option(value, label) {
  const node = document.createElement("option");
  node.value = value;
  node.textContent = label;
  return node;
}

// One form field per input of the table (calc/inputs.py, emitted by the build as inputs.json).
function buildField(input) {
  const id = `vram-${input.name}`;
  const wrap = element("div", { class: "vram-calc__field", "data-input": input.name });
  wrap.append(element("label", { for: id, title: tInput(input.help) }, tInput(input.label)));
  let control;
  const selectLists = ["weights", "kv_formats", "gpus"];
  if (input.choices.length || selectLists.includes(input.suggest)) {
    control = element("select", { id, name: input.name });
  } else if (input.kind === "config") {
    control = element("textarea", { id, name: input.name, rows: "8", spellcheck: "false" });
    control.placeholder = '{"model_type": "llama", "hidden_size": 4096, ...}';
  } else if (input.kind === "gguf") {
    control = element("input", { id, name: input.name, type: "file", accept: ".gguf" });
  } else {
    control = element("input", { id, name: input.name, spellcheck: "false" });
    if (["int", "fraction", "memory"].includes(input.kind)) {
      control.type = "number";
      control.step = input.kind === "int" ? "1" : "any";
      if (input.kind === "int") control.inputMode = "numeric";
      if (input.minimum !== null) control.min = String(input.minimum);
      if (input.maximum !== null) control.max = String(input.maximum);
    }
    if (input.suggest) control.setAttribute("list", `${id}-list`);
  }
  wrap.append(control);
  if (control.tagName === "INPUT" && input.suggest) wrap.append(element("datalist", { id: `${id}-list` }));
  return wrap;
}

// A select's "" option stands for the default; its label says which value that is. Inference
// resolves some defaults (engine, model, GPUs); fine-tuning's choices take a trainer's defaults
// when one is picked, so they start empty too (not the method, the trainer or the tuning).
const PICKED = ["method", "trainer", "tuning"];
function defaultable(input) {
  if (!input.choices.length) return false;
  if (input.resolved) return true;
  return input.modes.length === 1 && input.modes[0] === "finetune" && !PICKED.includes(input.name);
}

function defaultLabel(value) {
  return value === null || value === undefined || value === "" ? t("default") : t("default ({value})", { value });
}

export async function mount(root) {
  const $ = (role) => root.querySelector(`[data-role=${role}]`);
  const form = $("form");
  const status = $("status");
  const errorBox = $("error");
  const source = () => form.elements.namedItem("source").value;
  const mode = () => form.elements.namedItem("mode").value;

  const onProgress = (stage) => {
    status.textContent = `${t(stage)}…`;
  };
  progressListeners.add(onProgress);
  root.dataset.state = "loading";
  status.textContent = t("Starting the calculator…");
  let options;
  let table;
  try {
    const tableRequest = fetch(new URL("inputs.json", import.meta.url)).then((r) => r.json());
    [options, table] = await Promise.all([startWorker(), tableRequest, loadMessages()]);
  } catch (error) {
    root.dataset.state = "error";
    status.textContent = t("The calculator could not start: {error}", { error: error.message });
    return;
  } finally {
    progressListeners.delete(onProgress);
  }
  if (!root.isConnected) return; // the reader navigated away while Python started

  const inputs = new Map(table.map((input) => [input.name, input]));
  const FIELDS = table.map((input) => input.name);
  for (const input of table) {
    form.querySelector(`[data-group=${input.group}]`).append(buildField(input));
  }
  const fields = Object.fromEntries(FIELDS.map((name) => [name, form.elements.namedItem(name)]));
  const rows = Object.fromEntries(
    FIELDS.map((name) => [name, form.querySelector(`[data-input=${name}]`)]),
  );
  let resolved = {}; // the defaults the last estimate applied, by input
  let ggufHeader = null; // the chosen GGUF file's header, as the estimator read it

  // Read the chosen file's header: the first MiB, then as much as the estimator asks for.
  async function readGguf(file) {
    let want = GGUF_FIRST_READ;
    for (;;) {
      const chunk = await file.slice(0, want).arrayBuffer();
      const response = await ask({ action: "gguf_header", bytes_base64: toBase64(chunk) });
      if (!response.ok) return { error: response.error.message };
      if (response.gguf) return { header: response.gguf };
      if (want >= file.size) return { error: t("{file} ends inside its GGUF header: it is cut short or still downloading.", { file: file.name }) };
      want = Math.min(response.need_bytes, file.size);
    }
  }

  const engines = new Map(options.engines.map((engine) => [engine.id, engine]));
  const numericChoices = (input) => input.choices.length && typeof input.choices[0].value === "number";
  for (const input of table) {
    const field = fields[input.name];
    if (defaultable(input)) field.append(option("", t("default")));
    for (const choice of input.choices) field.append(option(String(choice.value), tInput(choice.label)));
  }
  // The names the catalogue answers to, spelt as it compares them (calc.catalogue: a Hugging
  // Face address as owner/name; case, spaces and dashes ignored): while the model box holds
  // something else, the reader is still typing and nothing is asked.
  const plainName = (text) =>
    text
      .trim()
      .replace(/^(?:https?:\/\/)?(?:www\.)?(?:huggingface\.co|hf\.co)\//i, "")
      .replace(/\/+$/, "")
      .trim()
      .toLowerCase()
      .replace(/[\s-]+/g, "_");
  const knownModels = new Set(
    [...options.models.flatMap((m) => [m.id, m.name, m.hf_repo]), ...options.names.map((n) => n.name)]
      .filter(Boolean)
      .map(plainName),
  );
  const stillTyping = () => source() === "model" && !knownModels.has(plainName(fields.model.value));
  const models = root.querySelector("#vram-model-list");
  for (const model of options.models) models.append(option(model.id, `${model.name} (${model.family})`));
  for (const tag of options.names) models.append(option(tag.name, `Ollama: ${tag.model}`));
  for (const gpu of options.gpus) {
    fields.gpu.append(option(gpu.id, `${gpu.name} — ${(gpu.usable_bytes / GIB).toFixed(1)} GiB`));
  }
  fields.gpu.append(option(CUSTOM_GPU, t("Other: enter its memory")));
  fields.gpu.append(option("", t("No GPU: just the memory needed")));

  // Mixed GPUs: more lists after the first, and the request names them all ("gpu=a,b", as the
  // command line's --gpu takes them); the count field then follows the list.
  const gpuLabel = (gpu) => `${gpu.name} — ${(gpu.usable_bytes / GIB).toFixed(1)} GiB`;
  const moreGpus = element("div", { class: "vram-calc__more-gpus", "data-role": "more-gpus" });
  const addGpu = element("button", { type: "button", class: "md-button", "data-role": "add-gpu" }, t("Add a different GPU"));
  fields.gpu.closest(".vram-calc__field").after(moreGpus, element("p", {}, ""));
  moreGpus.nextElementSibling.append(addGpu);
  function addGpuList(value) {
    const row = element("div", { class: "vram-calc__field vram-calc__more-gpu" });
    const select = element("select", { "aria-label": `GPU ${moreGpus.children.length + 2}` });
    select.append(...options.gpus.map((gpu) => option(gpu.id, gpuLabel(gpu))));
    select.value = value;
    const remove = element("button", { type: "button", class: "md-button", "aria-label": t("Remove this GPU") }, t("Remove"));
    remove.addEventListener("click", () => {
      row.remove();
      showGpuCount();
      update();
    });
    row.append(select, remove);
    moreGpus.append(row);
    return select;
  }
  const extraGpus = () => [...moreGpus.querySelectorAll("select")].map((select) => select.value);
  function showGpuCount() {
    const inference = mode() === "inference"; // training runs on one kind of GPU here
    const mixed = inference && moreGpus.children.length > 0;
    fields.gpus.disabled = mixed;
    if (mixed) fields.gpus.value = "";
    moreGpus.hidden = !inference;
    addGpu.hidden = !inference || !options.gpus.some((gpu) => gpu.id === fields.gpu.value);
  }
  addGpu.addEventListener("click", () => {
    addGpuList(fields.gpu.value);
    showGpuCount();
    update();
  });

  function fillEngineChoices() {
    const engine = engines.get(fields.engine.value) || engines.get(inputs.get("engine").defaults.inference);
    const keep = fields.weights.value;
    fields.weights.replaceChildren(option("", "default"), ...engine.weights.map((w) => option(w.id, w.name)));
    fields.weights.value = engine.weights.some((w) => w.id === keep) ? keep : "";
    const keepKv = fields.kv_cache.value;
    fields.kv_cache.replaceChildren(option("", "default"), ...options.kv_formats.map((f) => option(f.id, f.name)));
    fields.kv_cache.value = keepKv;
    root.querySelector("#vram-engine_version-list").replaceChildren(...engine.versions.map((v) => option(v, v)));
    showDefaults();
  }

  // The method, and for preference and RL methods how their weights train (DPO with LoRA):
  // a field applies to either (calc.inputs.check_applies). Those methods are the ones the
  // tuning input applies to.
  const OBJECTIVES = table.find((input) => input.name === "tuning").methods;
  const methodsOf = () => {
    const method = fields.method.value;
    return OBJECTIVES.includes(method) ? [method, fields.tuning.value] : [method];
  };

  // Which fields apply: the mode, the engine and the method decide, as the table says.
  function applies(input) {
    if (!input.modes.includes(mode())) return false;
    if (mode() === "inference" && input.engines.length && !input.engines.includes(fields.engine.value)) return false;
    if (mode() === "finetune" && input.methods.length && !methodsOf().some((m) => input.methods.includes(m))) return false;
    if (input.name === "model") return source() === "model";
    if (input.name === "config") return source() === "config";
    if (input.name === "gguf") return source() === "gguf";
    if (input.name === "gpu_memory_gib") return fields.gpu.value === CUSTOM_GPU;
    return true;
  }

  function showSource() {
    const training = mode() === "finetune";
    COMPONENTS = COMPONENTS_BY_MODE[mode()];
    $("inference-group").hidden = training;
    $("finetune-group").hidden = !training;
    for (const input of table) rows[input.name].hidden = !applies(input);
    showDefaults();
  }

  // Each empty field shows what the estimate took for it: the same resolution as the notes.
  // Only the texts that change are written: a DOM write per field on every keystroke cost more
  // than the estimate itself.
  function showDefaults() {
    for (const input of table) {
      // inference: what the plan resolved; fine-tuning: what the request took (a trainer's
      // defaults among them) for every field left empty
      const known = mode() === "inference" ? input.resolved : input.name in resolved;
      const value = known ? resolved[input.name] : input.defaults[mode()];
      const field = fields[input.name];
      if (field.tagName === "SELECT") {
        const empty = field.querySelector('option[value=""]');
        const choice = input.choices.find((c) => String(c.value) === String(value));
        const text = defaultLabel(choice ? tInput(choice.label) : value);
        if (empty && input.name !== "gpu" && empty.textContent !== text) empty.textContent = text;
      } else if (input.kind !== "config" && input.kind !== "gguf") {
        const text = value === null || value === undefined ? t("default") : `${t("default")} ${value}`;
        if (field.placeholder !== text) field.placeholder = text;
      }
    }
  }

  // Returns the inputs that name something the lists do not have.
  function setForm(values) {
    const problems = [];
    form.elements.namedItem("source").value = values.config ? "config" : "model";
    const wantedMode = values.mode || "inference";
    form.elements.namedItem("mode").value = wantedMode;
    if (form.elements.namedItem("mode").value !== wantedMode) {
      problems.push(`unknown mode ${JSON.stringify(values.mode)}`);
      form.elements.namedItem("mode").value = "inference";
    }
    const start = (name) => values[name] ?? EXAMPLE[name] ?? startValue(inputs.get(name));
    fields.engine.value = start("engine");
    if (fields.engine.value !== start("engine")) {
      problems.push(`unknown engine ${JSON.stringify(values.engine)}`);
      fields.engine.value = startValue(inputs.get("engine"));
    }
    fillEngineChoices();
    const [firstGpu, ...otherGpus] = String(start("gpu")).split(",");
    for (const name of FIELDS) {
      if (name === "engine" || inputs.get(name).kind === "gguf") continue;
      const wanted = name === "gpu" ? firstGpu : start(name);
      fields[name].value = wanted;
      if (fields[name].tagName === "SELECT" && fields[name].value !== wanted) {
        problems.push(`unknown ${name.replaceAll("_", " ")} ${JSON.stringify(wanted)}`);
      }
    }
    if (values.gpu_memory_gib && !values.gpu) fields.gpu.value = CUSTOM_GPU;
    moreGpus.replaceChildren();
    for (const id of otherGpus) {
      if (addGpuList(id).value !== id) problems.push(`unknown gpu ${JSON.stringify(id)}`);
    }
    showGpuCount();
    showSource();
    return problems;
  }

  // A choice starts at the table's default, or empty where the estimate resolves it; a typed
  // field starts empty, its placeholder showing the default.
  function startValue(input) {
    const value = input.defaults[input.modes[0]];
    const resolvedHere = input.resolved && input.modes[0] === "inference";
    const emptyStart = resolvedHere || (defaultable(input) && !input.resolved);
    if (fields[input.name].tagName !== "SELECT" || emptyStart || value === null) return "";
    return String(value);
  }

  function readForm() {
    const values = { mode: mode() };
    for (const input of table) {
      // a local file stays on this page: never in the address bar
      const own = applies(input) && input.kind !== "gguf";
      values[input.name] = own ? fields[input.name].value.trim() : "";
    }
    if (values.gpu === CUSTOM_GPU) values.gpu = "";
    if (values.gpu && values.mode === "inference" && moreGpus.children.length) {
      values.gpu = [values.gpu, ...extraGpus()].join(",");
    }
    return values;
  }

  // The bridge's inputs: numbers where the table says so; text the bridge reads and names.
  function toInputs(values) {
    const inputsOut = {};
    if (values.mode === "inference" && source() === "gguf" && ggufHeader) inputsOut.gguf = ggufHeader;
    for (const input of table) {
      if (!input.modes.includes(values.mode)) continue;
      const text = values[input.name];
      if (text === "" || text === undefined) continue;
      if (input.kind === "int" || numericChoices(input)) {
        const value = Number(text);
        inputsOut[input.name] = Number.isInteger(value) ? value : text; // the bridge names a bad value
      } else if (input.kind === "memory") {
        inputsOut[input.name] = Number(text);
      } else {
        inputsOut[input.name] = text;
      }
    }
    return inputsOut;
  }

  function writeUrl(values) {
    const params = new URLSearchParams();
    if (values.mode === "finetune") params.set("mode", "finetune");
    for (const name of FIELDS) if (values[name]) params.set(name, values[name]);
    const url = `${location.pathname}?${params}${location.hash}`;
    history.replaceState(history.state, "", url);
  }

  // The address bar follows the inputs once they settle. history.replaceState costs Chromium a
  // few milliseconds of main-thread and browser-process work per call; on every keystroke it
  // delayed the next result by more than the estimate itself took (scripts/bench_calculator.py:
  // p95 14 ms per change with a write per update, 4 ms with this delay).
  let urlTimer = 0;
  let urlValues = null;
  function scheduleUrl(values) {
    urlValues = values;
    clearTimeout(urlTimer);
    urlTimer = setTimeout(flushUrl, URL_DELAY_MS);
  }
  function flushUrl() {
    clearTimeout(urlTimer);
    // After instant navigation this page is gone: never write its inputs onto another page.
    if (urlValues && root.isConnected) writeUrl(urlValues);
    urlValues = null;
  }

  function readUrl() {
    const params = new URLSearchParams(location.search);
    const values = {};
    let any = false;
    for (const name of ["mode", ...FIELDS]) {
      if (params.has(name)) {
        values[name] = params.get(name);
        any = true;
      }
    }
    return any ? values : null;
  }

  let latest = 0;
  let started = 0;
  async function update({ fallback = false } = {}) {
    const values = readForm();
    if (values.mode === "inference" && source() === "gguf" && !ggufHeader) {
      showError(t("Choose a .gguf file: only its header is read, on this computer."), "gguf");
      return;
    }
    if (source() === "config" && !fields.config.value.trim()) {
      showError(t("Paste a model's config.json (from its Hugging Face page) into the box."), "config");
      return;
    }
    const ticket = ++latest;
    started = performance.now();
    const action = values.mode === "finetune" ? "finetune" : "estimate";
    const response = await ask({ action, inputs: toInputs(values) });
    if (ticket !== latest || !root.isConnected) return; // a newer input has been sent
    if (!response.ok) {
      if (fallback) {
        const message = t("This link's inputs could not be used ({problem}); showing the defaults instead.", { problem: tNote(response.error.message) });
        setForm({});
        await update();
        showError(message, "", true);
        root.dataset.linkError = message;
        return;
      }
      showError(tNote(response.error.message), response.error.field);
      root.dataset.state = "ready";
      return;
    }
    showError("");
    render(response);
    if ($("charts").open) drawCharts(values);
    for (const role of Object.keys(RANKINGS)) if ($(role).open) drawRanking(role, values);
    root.dataset.lastUpdateMs = (performance.now() - started).toFixed(2);
    scheduleUrl(values);
    root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
    root.dataset.state = "ready";
  }

  // The charts are drawn by calc.charts (their text escaped there) and parsed as SVG, never as HTML.
  let chartTicket = 0;
  async function drawCharts(values = readForm()) {
    const box = $("chart-box");
    if (values.mode !== "inference") {
      box.replaceChildren();
      return;
    }
    const ticket = ++chartTicket;
    const response = await ask({ action: "chart", inputs: toInputs(values) });
    if (ticket !== chartTicket || !response.ok) return;
    const parser = new DOMParser();
    box.replaceChildren(
      ...["memory", "decode", "prefill"].map((what) => {
        const doc = parser.parseFromString(response.charts[what], "image/svg+xml");
        const svg = document.importNode(doc.documentElement, true);
        svg.dataset.chart = what;
        return svg;
      }),
    );
    root.dataset.charts = String(Number(root.dataset.charts || 0) + 1);
  }

  // The planner's three answers, each computed when its panel is opened (the rankings run the
  // estimate for every catalogue model or GPU). Text only: every cell is set with textContent.
  const speedCell = (r) => (r.decode_tokens_per_s == null ? "" : `${r.decode_tokens_per_s.toFixed(1)} t/s`);
  const promptCell = (r) => (r.prefill_tokens_per_s == null ? "" : `${Math.round(r.prefill_tokens_per_s).toLocaleString("en")} t/s`);
  const RANKINGS = {
    plan: {
      head: ["Placement", "Settings", "Fits", "GPUs", "CPU RAM", "Generation", "Prompt"],
      rows: (response) => response.plan.map((c) => [tNote(c.label), c.flags, c.fits === null ? "" : c.fits ? t("yes") : t("no"), formatBytes(c.gpu_bytes), formatBytes(c.host_bytes), speedCell(c), promptCell(c)]),
    },
    fits: {
      head: ["Model", "Weights", "Longest context", "Generation", "Prompt"],
      rows: (response) => response.fits.map((m) => [m.name, m.weights || t("does not fit"), m.max_context == null ? "" : m.max_context.toLocaleString("en"), speedCell(m), promptCell(m)]),
    },
    gpus: {
      head: ["GPU", "How many", "Their memory", "Generation", "Prompt"],
      rows: (response) => response.gpus.map((g) => [g.name, g.count == null ? t("too small") : String(g.count), formatBytes(g.memory_bytes), speedCell(g), promptCell(g)]),
    },
  };
  const rankTickets = {};
  async function drawRanking(role, values = readForm()) {
    const table = $(`${role}-table`);
    if (values.mode !== "inference") {
      table.replaceChildren();
      return;
    }
    const ticket = (rankTickets[role] = (rankTickets[role] || 0) + 1);
    table.replaceChildren(element("caption", {}, t("Computing…")));
    const response = await ask({ action: role, inputs: toInputs(values) });
    if (ticket !== rankTickets[role]) return;
    if (!response.ok) {
      table.replaceChildren(element("caption", {}, tNote(response.error.message)));
      return;
    }
    const spec = RANKINGS[role];
    const head = element("tr");
    head.append(...spec.head.map((h) => element("th", { scope: "col" }, t(h))));
    const body = spec.rows(response).map((cells) => {
      const tr = element("tr");
      tr.append(...cells.map((c) => element("td", {}, c)));
      return tr;
    });
    table.replaceChildren(element("thead"), element("tbody"));
    table.tHead.append(head);
    table.tBodies[0].append(...body);
    table.dataset.rows = String(body.length);
    root.dataset[`${role}Updates`] = String(Number(root.dataset[`${role}Updates`] || 0) + 1);
  }

  // keepResult: a notice above a valid result (a bad link that fell back to defaults).
  function showError(message, field = "", keepResult = false) {
    errorBox.hidden = !message;
    errorBox.textContent = message;
    root.dataset.error = message;
    for (const name of FIELDS) fields[name].removeAttribute("aria-invalid");
    if (field && fields[field]) fields[field].setAttribute("aria-invalid", "true");
    if (message && !keepResult) {
      $("result").hidden = true;
      $("summary").hidden = true;
    }
  }

  function render({ result, hint, defaults }) {
    root.dataset.result = JSON.stringify(result);
    resolved = defaults || {};
    showDefaults();
    root.dataset.totalBytes = String(result.total_bytes);
    const section = $("result");
    section.hidden = false;
    $("summary").hidden = false;
    const gpus = result.devices.length;
    root.dataset.mode = mode();
    $("total").textContent = t(gpus > 1 ? "{total} of GPU memory in all, on {gpus} GPUs; {host} in CPU RAM." : "{total} of GPU memory in all, on {gpus} GPU; {host} in CPU RAM.", {
      total: formatBytes(result.total_bytes),
      gpus,
      host: formatBytes(result.host_bytes),
    });
    const verdict = $("verdict");
    if (result.fits === null) {
      verdict.textContent = t("Pick a GPU to see whether it fits.");
      verdict.dataset.fits = "unknown";
    } else {
      const worst = Math.min(...result.devices.map((d) => d.headroom_bytes));
      verdict.textContent = result.fits
        ? t("Fits: the fullest GPU has {gib} GiB to spare.", { gib: (worst / GIB).toFixed(1) })
        : t("Does not fit: the fullest GPU is {gib} GiB short.", { gib: (-worst / GIB).toFixed(1) });
      verdict.dataset.fits = String(result.fits);
    }
    $("hint").textContent = hintText(hint, result);
    $("speed").textContent = speedText(result);
    $("serving").textContent = servingText(result);
    // only multimodal models have a vision tower, only hybrid models a recurrent state
    const optional = ["vision", "recurrent_state", "reference", "generation"];
    COMPONENTS = COMPONENTS_BY_MODE[mode()].filter(([key]) => !optional.includes(key) || result.components[key] > 0);
    renderBars(result);
    renderTable(result);
    $("notes").replaceChildren(...result.notes.map((note) => element("li", {}, tNote(note))));
  }

  function servingText(result) {
    const serving = result.serving;
    if (!serving || mode() === "finetune") return "";
    let text = t("Serving: {sequences} sequence(s) at once, up to {tokens} tokens each ({cache} tokens of KV cache)", {
      sequences: serving.sequences.toLocaleString("en"),
      tokens: serving.tokens_per_sequence.toLocaleString("en"),
      cache: serving.kv_cache_tokens.toLocaleString("en"),
    });
    if (serving.aggregate_decode_tokens_per_s) {
      const rate = Math.round(serving.aggregate_decode_tokens_per_s).toLocaleString("en");
      text += t(", generating {rate} tokens/s together with every cache full", { rate });
    }
    return text + t(".");
  }

  function speedText(result) {
    const speed = result.speed;
    if (!speed || mode() === "finetune") return "";
    const prompt = Math.round(speed.prefill_tokens_per_s).toLocaleString("en");
    const decode = speed.decode_tokens_per_s.toFixed(1);
    let text = t("Speed ({backend}, estimated): a {context}-token prompt at {prompt} tokens/s, generation at {decode} tokens/s", {
      backend: speed.backend,
      context: result.context.toLocaleString("en"),
      prompt,
      decode,
    });
    if (speed.aggregate_decode_tokens_per_s) {
      const rate = Math.round(speed.aggregate_decode_tokens_per_s).toLocaleString("en");
      text += t(", {rate} tokens/s for all {batch} sequences", { rate, batch: result.batch });
    }
    return text + t(" (limited by {what}).", { what: tNote(speed.limited_by) });
  }

  function hintText(hint, result) {
    if (!hint) return "";
    if (mode() === "finetune") return finetuneHintText(hint);
    const parts = [];
    if (hint.max_context !== null && hint.max_context !== undefined) {
      parts.push(t("Longest context that fits: {tokens} tokens per sequence.", { tokens: hint.max_context.toLocaleString("en") }));
    } else if (result.engine !== "theory") {
      parts.push(t("Not even a one-token context fits."));
    }
    if (!hint.fits) {
      if (hint.best_weights) {
        const name = fields.weights.querySelector(`option[value="${CSS.escape(hint.best_weights)}"]`)?.textContent || hint.best_weights;
        parts.push(t("It would fit with {name} weights.", { name }));
      }
      if (hint.gpus_needed) parts.push(t("It would fit on {n} of these GPUs.", { n: hint.gpus_needed }));
      const p = hint.pipeline;
      if (p) {
        parts.push(t("With pipeline parallel it would fit on {gpus} (tensor parallel {tp} x {pp} stages).", { gpus: p.gpus, tp: p.tensor_parallel, pp: p.pipeline_parallel }));
      }
    }
    return parts.join(t(" "));
  }

  function finetuneHintText(hint) {
    const parts = [];
    if (hint.max_seq_len !== null && hint.max_seq_len !== undefined) {
      parts.push(t("Longest sequence that fits: {tokens} tokens per sample.", { tokens: hint.max_seq_len.toLocaleString("en") }));
    } else {
      parts.push(t("Not even a one-token sequence fits."));
    }
    if (!hint.fits && hint.gpus_needed) {
      parts.push(t("It would fit on {n} of these GPUs with ZeRO-{zero}.", { n: hint.gpus_needed, zero: hint.zero }));
    }
    if (hint.fits_with_bf16_base) {
      parts.push(t("It would fit with the base model loaded in bf16."));
    }
    return parts.join(" ");
  }

  function renderBars(result) {
    const scale = Math.max(...result.devices.map((d) => Math.max(d.total_bytes, d.capacity_bytes || 0)));
    const rows = result.devices.map((device) => {
      const row = element("div", { class: "vram-calc__bar-row" });
      row.append(element("span", { class: "vram-calc__bar-label" }, `GPU ${device.index}: ${formatBytes(device.total_bytes)}`));
      const svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("viewBox", "0 0 1000 24");
      svg.setAttribute("preserveAspectRatio", "none");
      svg.setAttribute("class", "vram-calc__bar");
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", `GPU ${device.index}: ${COMPONENTS.map(([key, label]) => `${t(label)} ${(device.components[key] / GIB).toFixed(1)} GiB`).join(", ")}`);
      let x = 0;
      for (const [key] of COMPONENTS) {
        const width = (device.components[key] / scale) * 1000;
        const rect = document.createElementNS(SVG, "rect");
        rect.setAttribute("x", x.toFixed(2));
        rect.setAttribute("y", "2");
        rect.setAttribute("width", Math.max(width, 0).toFixed(2));
        rect.setAttribute("height", "20");
        rect.setAttribute("class", `vram-calc__seg vram-calc__seg--${key}`);
        svg.append(rect);
        x += width;
      }
      if (device.capacity_bytes) {
        const line = document.createElementNS(SVG, "rect");
        line.setAttribute("x", ((device.capacity_bytes / scale) * 1000 - 2).toFixed(2));
        line.setAttribute("y", "0");
        line.setAttribute("width", "4");
        line.setAttribute("height", "24");
        line.setAttribute("class", "vram-calc__capacity");
        svg.append(line);
      }
      row.append(svg);
      return row;
    });
    $("bars").replaceChildren(...rows);
    $("legend").replaceChildren(
      ...COMPONENTS.map(([key, label]) => {
        const item = element("li");
        item.append(element("span", { class: `vram-calc__swatch vram-calc__seg--${key}` }), document.createTextNode(t(label)));
        return item;
      }),
      (() => {
        const item = element("li");
        item.append(element("span", { class: "vram-calc__swatch vram-calc__capacity" }), document.createTextNode("GPU memory"));
        return item;
      })(),
    );
  }

  // Each cell carries its column's label, so that a narrow result shows each GPU as a stack of
  // labelled figures instead of hiding the columns past the edge (calculator.css).
  function renderTable(result) {
    const table = $("table");
    const labels = [...COMPONENTS.map(([, l]) => t(l)), t("Total"), t("Headroom")];
    const head = element("tr");
    for (const label of ["", ...labels]) head.append(element("th", {}, label));
    const cells = (values, totalBytes) =>
      values.map((text, i) => {
        const attributes = { "data-label": labels[i] };
        if (i === values.length - 2) attributes["data-total-bytes"] = String(totalBytes);
        return element("td", attributes, text);
      });
    const rows = result.devices.map((device) => {
      const row = element("tr");
      row.append(element("th", {}, `GPU ${device.index} ${device.name}`));
      const values = COMPONENTS.map(([key]) => formatBytes(device.components[key]));
      values.push(formatBytes(device.total_bytes), device.headroom_bytes === null ? "" : formatBytes(device.headroom_bytes));
      row.append(...cells(values, device.total_bytes));
      return row;
    });
    const total = element("tr");
    total.append(element("th", {}, t("All GPUs")));
    const values = COMPONENTS.map(([key]) => formatBytes(result.components[key]));
    values.push(formatBytes(result.total_bytes), "");
    total.append(...cells(values, result.total_bytes));
    table.replaceChildren(element("thead"), element("tbody"));
    table.tHead.append(head);
    table.tBodies[0].append(...rows, total);
  }

  form.addEventListener("submit", (event) => event.preventDefault());
  const isChoice = (target) => target.tagName === "SELECT" || target.type === "radio";
  form.addEventListener("input", (event) => {
    if (event.target === fields.model && stillTyping()) return; // no error while a name is half typed
    if (!isChoice(event.target) && event.target !== fields.gguf) update();
  });
  // A config.json file dropped on its box is read here, as if pasted (it never leaves the page).
  fields.config.addEventListener("dragover", (event) => event.preventDefault());
  fields.config.addEventListener("drop", async (event) => {
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (!file) return;
    event.preventDefault();
    fields.config.value = await file.text();
    update();
  });
  // Leaving the box (or Enter) with a name the catalogue does not know: now say so.
  fields.model.addEventListener("change", () => {
    if (stillTyping()) update();
  });
  fields.gguf.addEventListener("change", async () => {
    const file = fields.gguf.files[0];
    ggufHeader = null;
    if (!file) return update();
    root.dataset.state = "loading";
    const { header, error } = await readGguf(file);
    if (error) {
      showError(error, "gguf");
      root.dataset.state = "ready";
      return;
    }
    ggufHeader = header;
    await update();
  });
  form.addEventListener("change", (event) => {
    if (!isChoice(event.target)) return;
    showGpuCount();
    if (event.target === fields.engine) fillEngineChoices();
    showSource();
    update();
  });
  $("charts").addEventListener("toggle", () => {
    if ($("charts").open) drawCharts();
  });
  for (const role of Object.keys(RANKINGS)) {
    $(role).addEventListener("toggle", () => {
      if ($(role).open) drawRanking(role);
    });
  }
  // Start again: the example's inputs, no pasted config and no chosen file.
  $("reset").addEventListener("click", () => {
    ggufHeader = null;
    fields.gguf.value = "";
    fields.config.value = "";
    setForm({});
    update();
  });
  $("copy").addEventListener("click", async () => {
    flushUrl();
    try {
      await navigator.clipboard.writeText(location.href);
      $("copy").textContent = t("Link copied");
    } catch {
      $("copy").textContent = t("Copy the address bar to share");
    }
  });

  status.textContent = "";
  form.hidden = false;
  const fromUrl = readUrl();
  const problems = setForm(fromUrl || {});
  if (problems.length) {
    const message = t("This link's inputs could not be used ({problem}); showing the defaults instead.", { problem: problems.join(", ") });
    setForm({});
    await update();
    showError(message, "", true);
    root.dataset.linkError = message;
    return;
  }
  await update({ fallback: fromUrl !== null });
  keepForNextVisit(root);
}

// Once the calculator works, a service worker keeps what it loaded (the runtime, the wheel, the
// catalogue, this page) so that the next visit starts without the network (docs/sw.js).
function keepForNextVisit(root) {
  if (!("serviceWorker" in navigator) || !root.isConnected) return;
  navigator.serviceWorker
    .register(new URL("../../sw.js", import.meta.url))
    .then(() => navigator.serviceWorker.ready)
    .then(() => {
      root.dataset.offline = "ready";
    })
    .catch(() => {}); // a browser that refuses it (private mode) downloads again next time
}
