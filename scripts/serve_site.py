"""Build the site, serve it on 127.0.0.1 and find a Chromium: what the browser tests and the
benchmark share.

A plain threaded static server with the MIME types module workers and WebAssembly need
(browsers refuse a module served as anything but JavaScript).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MKDOCS = Path(sys.executable).parent / "mkdocs"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The calculator sets data-state=ready once it has shown its first result.
READY = "#vram-calculator[data-state=ready]"
BOOT_TIMEOUT_MS = 120_000

TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".whl": "application/zip",
    ".zip": "application/zip",
}


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **TYPES}
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", cache_control(self.path))
        super().end_headers()


# Files whose address changes with their content: the runtime's versioned folder, the wheel and
# the catalogue named with a ?v= hash by the manifest, Material's hashed bundles
_VERSIONED = re.compile(r"/assets/pyodide/[^/]+/|[?&]v=[0-9a-f]+|\.[0-9a-f]{8}\.min\.(?:js|css)$")


def cache_control(path: str) -> str:
    """Kept for a year where the address names the version; asked again (a 304 when
    unchanged) for pages, the manifest, the service worker and anything else."""
    if _VERSIONED.search(path):
        return "public, max-age=31536000, immutable"
    return "no-cache"


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that goes away mid-transfer (a closed test page, the service worker's
        downloads cut short) is not an error of the server's."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve(site_dir: Path) -> Iterator[str]:
    """Yield the base URL of ``site_dir`` served on a free port of 127.0.0.1."""
    handler = functools.partial(_Handler, directory=str(site_dir))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def build(site: Path, data: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of the repository into ``site`` (with another data/ if given)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    if data is not None:
        env["VRAM_GUIDE_DATA"] = str(data)
    return subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def chromium_path() -> str | None:
    """Debian's chromium, or $CHROMIUM, or None (Playwright's own, if it installed one)."""
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return None
