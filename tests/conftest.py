"""Shared fixtures: the real catalogue, and a scratch copy of data/ to break on purpose."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # scripts/ is imported as a package by the site tests
    sys.path.insert(0, str(ROOT))

from calc.catalogue import Catalogue  # noqa: E402
from calc.data_files import load_catalogue  # noqa: E402


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue(ROOT / "data")


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    """A writable copy of data/ (YAML files and schemas)."""
    target = tmp_path / "data"
    shutil.copytree(ROOT / "data", target)
    return target


MKDOCS = Path(sys.executable).parent / "mkdocs"


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


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once per test session."""
    target = tmp_path_factory.mktemp("site")
    result = build(target)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr
    return target
