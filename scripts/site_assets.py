"""Files the in-page calculator needs, produced at build time into the built site.

- the estimator as a pure-Python wheel (py3-none-any), byte-for-byte reproducible from the
  source: entries sorted, fixed timestamps and permissions, stored uncompressed;
- the catalogue as JSON, read and checked by the same loader as the CLI;
- the Pyodide runtime files, copied from the pinned npm package in node_modules/.

Each file is written only when its content changed, so ``mkdocs serve`` rebuilds stay cheap.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import subprocess
import tomllib
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from calc import page_table

# The estimator modules; the CLI and the YAML loader are CPython edges and stay out.
EDGE_MODULES = {"cli.py", "data_files.py", "__main__.py"}
# What Pyodide 314 needs to start with the standard library only.
PYODIDE_FILES = (
    "pyodide.mjs",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class AssetError(RuntimeError):
    """A build input is missing; the message says how to get it."""


def project_version(root: Path) -> tuple[str, str]:
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["name"].replace("-", "_"), project["version"]


def wheel_name(root: Path) -> str:
    name, version = project_version(root)
    return f"{name}-{version}-py3-none-any.whl"


def build_wheel(root: Path) -> bytes:
    """The wheel's bytes; the same source always gives the same bytes."""
    name, version = project_version(root)
    dist_info = f"{name}-{version}.dist-info"
    package = root / "calc"
    files: list[tuple[str, bytes]] = [
        (path.relative_to(root).as_posix(), path.read_bytes())
        for path in sorted(package.rglob("*.py"))
        if path.relative_to(package).as_posix() not in EDGE_MODULES
    ]
    files.append(
        (
            f"{dist_info}/METADATA",
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        )
    )
    files.append(
        (
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: llm-vram-guide site build\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        )
    )
    record = "".join(f"{path},sha256={_digest(data)},{len(data)}\n" for path, data in files)
    files.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as wheel:
        for path, data in files:
            info = zipfile.ZipInfo(path, date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.create_system = 3  # Unix, whatever machine builds it
            wheel.writestr(info, data)
    return buffer.getvalue()


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def catalogue_json(documents: Mapping[str, Any]) -> bytes:
    """The browser's copy of the catalogue: the raw documents (``calc.catalogue_documents``)."""
    payload = {key: documents[key] for key in ("models", "precisions", "gpus", "names")}
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def inputs_json() -> bytes:
    """The input table, from which the calculator's form is made."""
    return json.dumps(page_table(), sort_keys=True, ensure_ascii=False).encode()


def _short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def write_if_changed(path: Path, data: bytes) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def write_calculator_assets(
    root: Path, site_dir: Path, catalogue: bytes, messages: dict[str, bytes] | None = None
) -> list[Path]:
    """Write the wheel, the catalogue (:func:`catalogue_json`), the interface's words in each
    translation (``messages``: language to JSON) and Pyodide into the built site; return what
    changed."""
    messages = messages or {}
    package = root / "node_modules" / "pyodide"
    missing = [name for name in PYODIDE_FILES if not (package / name).is_file()]
    if missing:
        raise AssetError(
            f"node_modules/pyodide lacks {', '.join(missing)}: run 'npm ci' in {root} "
            "(./dev serve and ./dev test do it for you)"
        )
    pyodide_version = json.loads((package / "package.json").read_text())["version"]
    wheel = build_wheel(root)
    calculator = site_dir / "assets" / "calculator"
    # Every file the calculator loads has its version in its address: Pyodide's in the folder,
    # the wheel's and the catalogue's as a hash of their bytes. The service worker (docs/sw.js)
    # and the browser's cache keep them for good; only manifest.json is asked for each visit.
    manifest = {
        "pyodide": pyodide_version,
        "wheel": f"{wheel_name(root)}?v={_short_hash(wheel)}",
        "catalogue": f"catalogue.json?v={_short_hash(catalogue)}",
        "runtime": list(PYODIDE_FILES),
        "messages": {lang: f"messages.{lang}.json" for lang in sorted(messages)},
    }
    outputs = {
        calculator / wheel_name(root): wheel,
        calculator / "catalogue.json": catalogue,
        calculator / "inputs.json": inputs_json(),
        calculator / "manifest.json": json.dumps(manifest, sort_keys=True).encode(),
        **{calculator / f"messages.{lang}.json": words for lang, words in messages.items()},
    }
    for name in PYODIDE_FILES:
        runtime = site_dir / "assets" / "pyodide" / pyodide_version / name
        outputs[runtime] = (package / name).read_bytes()
    return [path for path, data in outputs.items() if write_if_changed(path, data)]


def _git(root: Path, *args: str) -> str | None:
    """A git command's output in ``root``, or None outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


def commit_timestamp(root: Path) -> int | None:
    """The checked-out commit's time, or None outside a git checkout."""
    text = _git(root, "log", "-1", "--format=%ct") or ""
    return int(text) if text.isdigit() else None


def commit_hash(root: Path) -> str | None:
    """The checked-out commit, or None outside a git checkout."""
    text = _git(root, "rev-parse", "HEAD") or ""
    return text if re.fullmatch(r"[0-9a-f]{40}", text) else None
