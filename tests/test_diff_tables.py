"""scripts/diff_tables.py shows a reviewer exactly the cells a data change moves."""

from __future__ import annotations

import contextlib
import io
import subprocess

from scripts import diff_tables
from tests.conftest import ROOT


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)


def test_a_gpu_bandwidth_change_moves_only_that_gpus_cells(tmp_path):
    repo = tmp_path / "repo"
    git(ROOT, "clone", "--quiet", "--no-hardlinks", str(ROOT), str(repo))
    gpus = repo / "data" / "gpus.yaml"
    text = gpus.read_text()
    start = text.index("- id: rtx-4090\n")
    head, tail = text[:start], text[start:]
    gpus.write_text(head + tail.replace("bandwidth_gb_s: 1008", "bandwidth_gb_s: 1111", 1))
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "faster 4090")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert diff_tables.main(["HEAD~1", "HEAD", "--repo", str(repo)]) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "gpus > GeForce RTX 4090 > Bandwidth, GB/s: 1,008 -> 1,111"
    # no memory figure moves; only the speed figures estimated on that GPU do
    for line in lines[1:-1]:
        assert "rtx-4090" in line or line.startswith("validation > Speed"), line
    assert lines[-1].endswith("table cell(s) changed between HEAD~1 and HEAD")


def test_cells_are_keyed_by_section_row_and_column():
    tables = {"t": "## Model A { #a }\n\n| Weights | Total |\n|---|---:|\n| Q4&#95;K | 5.4 |\n"}
    assert diff_tables.cells(tables) == {("t", "Model A", "Q4_K", "Total"): "5.4"}
