"""scripts/measure_transformers.py writes entries the catalogue accepts; without PyTorch it
says what it needs."""

from __future__ import annotations

import contextlib
import importlib.util
import io

import pytest
import yaml

from calc.data_files import load_measurements
from scripts import measure_transformers as script


class NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


def test_entries_pass_the_schema_and_compare(catalogue, data_copy):
    run = script.Run(
        model="llama-3.2-1b",
        context=8192,
        new_tokens=16,
        peak_allocated=3 * 2**30,
        peak_reserved=3 * 2**30 + 2**28,
        device_used=4 * 2**30,
        gpu_name="NVIDIA H200",
        gpu_total=143771 * 2**20,
        torch_version="2.13.0",
        transformers_version="4.57.1",
        attn_implementation="sdpa",
    )
    found = script.entries(run, catalogue)
    assert [e["estimate_of"] for e in found] == ["allocated_bytes", "total_bytes"]
    assert found[0]["gpu"] == "h200-sxm-141gb"
    assert found[0]["value"] == 3072.0
    path = data_copy / "measurements.yaml"
    path.write_text(path.read_text() + "\n" + yaml.dump(found, Dumper=NoAliases, sort_keys=False))
    ids = {m.id for m in load_measurements(data_copy)}
    assert {e["id"] for e in found} <= ids


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed")
def test_without_pytorch_it_says_what_it_needs(capsys):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert script.main(["--model", "llama-3.2-1b"]) == 2
    assert "needs PyTorch with CUDA" in err.getvalue()
