"""Shared fixtures: the real catalogue, and a scratch copy of data/ to break on purpose."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # scripts/ is imported as a package by the site tests
    sys.path.insert(0, str(ROOT))

# the catalogue cache of this test run, not the reader's ~/.cache
os.environ.setdefault("VRAM_GUIDE_CACHE", tempfile.mkdtemp(prefix="vram-guide-cache-"))

from calc import Catalogue, load_catalogue  # noqa: E402
from scripts.serve_site import build  # noqa: E402


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue(ROOT / "data")


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    """A writable copy of data/ (YAML files and schemas)."""
    target = tmp_path / "data"
    shutil.copytree(ROOT / "data", target)
    return target


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once per test session."""
    target = tmp_path_factory.mktemp("site")
    result = build(target)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr
    return target
