// The guide's service worker: keeps what the calculator needs (the Python runtime, the
// estimator's wheel, the catalogue, the page and its styles and scripts) so that a second visit
// starts without downloading them and works offline. Registered by the calculator once it has
// shown a first result (assets/calculator/loader.js); it asks no host but this site.
//
// - assets/calculator/manifest.json names each file by version; it and the pages are asked of
//   the network first, with the kept copy when there is no network;
// - files with their version in their address (the runtime's folder, the wheel's and the
//   catalogue's ?v= hash, Material's hashed bundles) come from the cache for good;
// - any other file of this site comes from the cache and is fetched again behind it, so the
//   next visit has the new one.

const CACHE = "vram-guide-v1";
const base = new URL("./", self.location.href);
const at = (path) => new URL(path, base).href;

async function precache() {
  const cache = await caches.open(CACHE);
  const manifestUrl = at("assets/calculator/manifest.json");
  const manifest = await (await fetch(manifestUrl, { cache: "no-cache" })).clone().json();
  const page = await fetch(at("calculator/"), { cache: "no-cache" });
  const html = await page.clone().text();
  // the page's own stylesheets and scripts, as the build named them
  const linked = [...html.matchAll(/(?:href|src)="([^"]+\.(?:css|js|png|svg|ico)(?:\?[^"]*)?)"/g)]
    .map((match) => new URL(match[1], at("calculator/")).href)
    .filter((url) => url.startsWith(base.href));
  const calculator = (name) => at(`assets/calculator/${name}`);
  // the search worker's language support, as Material's worker asks for it (search lang)
  const search = await (await fetch(at("search/search_index.json"), { cache: "no-cache" })).json();
  const languages = search.config.lang.filter((lang) => lang !== "en");
  const lunr = (name) => at(`assets/javascripts/lunr/min/${name}`);
  const lunrFiles = languages.length
    ? [
        lunr("lunr.stemmer.support.min.js"),
        ...languages.map((lang) => lunr(`lunr.${lang}.min.js`)),
        ...(search.config.lang.length > 1 ? [lunr("lunr.multi.min.js")] : []),
      ]
    : [];
  const urls = [
    manifestUrl,
    calculator(manifest.wheel),
    calculator(manifest.catalogue),
    calculator("inputs.json"),
    // the calculator in each translation, and its words
    // (Material's language switch reads each language's sitemap)
    ...Object.entries(manifest.messages || {}).flatMap(([lang, name]) => [
      calculator(name),
      at(`${lang}/calculator/`),
      at(`${lang}/sitemap.xml`),
    ]),
    calculator("calculator.js"),
    calculator("worker.js"),
    ...manifest.runtime.map((name) => at(`assets/pyodide/${manifest.pyodide}/${name}`)),
    // what Material's scripts ask for on every page: the search index, the sitemap (instant
    // navigation)
    at("search/search_index.json"),
    ...lunrFiles,
    at("sitemap.xml"),
    ...linked,
  ];
  await cache.put(at("calculator/"), page);
  await cache.addAll([...new Set(urls)]);
}

self.addEventListener("install", (event) => {
  event.waitUntil(precache().then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request, { cache: "no-cache" });
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (error) {
    const kept = await cache.match(request, { ignoreSearch: request.mode === "navigate" });
    if (kept) return kept;
    throw error;
  }
}

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const kept = await cache.match(request);
  if (kept) return kept;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

async function keptThenRefreshed(request, event) {
  const cache = await caches.open(CACHE);
  const kept = await cache.match(request);
  const refreshed = fetch(request).then(async (response) => {
    if (response.ok) await cache.put(request, response.clone());
    return response;
  });
  if (!kept) return refreshed;
  event.waitUntil(refreshed.catch(() => {}));
  return kept;
}

const VERSIONED = [/[?&]v=[0-9a-f]+/, /\/assets\/pyodide\/[^/]+\//, /\.[0-9a-f]{8}\.min\.(?:js|css)$/];

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET" || !request.url.startsWith(base.href)) return;
  if (request.mode === "navigate" || request.url.includes("/manifest.json")) {
    event.respondWith(networkFirst(request));
  } else if (VERSIONED.some((pattern) => pattern.test(request.url))) {
    event.respondWith(cacheFirst(request));
  } else {
    event.respondWith(keptThenRefreshed(request, event));
  }
});
