"""The command line through its entry points: the JSON contract, the table, and bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from calc.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "calc", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_json_follows_the_contract():
    result = run("inference", "--model", "llama-3.1-8b", "--gpus", "2", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"total_bytes", "components", "devices", "host_bytes", "notes"} <= set(data)
    assert {"weights", "kv_cache", "activations", "runtime"} <= set(data["components"])
    assert len(data["devices"]) == 2
    for device in data["devices"]:
        assert {"total_bytes", "components"} <= set(device)
    assert data["total_bytes"] == sum(d["total_bytes"] for d in data["devices"])
    assert data["total_bytes"] == sum(data["components"].values())
    assert isinstance(data["notes"], list) and data["notes"]


def test_console_script_is_installed():
    script = shutil.which("vram-calc", path=str(Path(sys.executable).parent))
    assert script is not None
    result = subprocess.run(
        [script, "inference", "--model", "qwen3-8b", "--json"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert json.loads(result.stdout)["components"]["weights"] > 0


def test_an_estimate_loads_only_what_it_needs(tmp_path):
    """With the catalogue cached, one estimate reads no YAML, checks no schema and imports none
    of the planner, the charts or the measurements (issue 15: the CLI's start-up)."""
    probe = (
        "import sys, runpy; sys.argv = ['calc', 'inference', '--model', 'qwen3-8b'];\n"
        "try: runpy.run_module('calc', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('yaml', 'jsonschema', 'calc')))"
    )
    env = {**os.environ, "VRAM_GUIDE_CACHE": str(tmp_path)}  # its own: no other test's churn
    for _ in range(2):  # the first run fills the cache
        result = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
            env=env,
        )
    loaded = set(json.loads(result.stdout.splitlines()[-1].replace("'", '"')))
    assert "calc.estimate" in loaded
    assert not loaded & {"yaml", "jsonschema", "calc.measurements", "calc.planner", "calc.charts"}


def test_table_shows_gib_and_gb(capsys):
    assert main(["inference", "--model", "deepseek-r1-distill-qwen-32b", "--gpu", "RTX 4090D"]) == 0
    out = capsys.readouterr().out
    assert "GiB" in out and " GB" in out
    assert "GPU 0 GeForce RTX 4090 D" in out
    assert "fits" in out


def test_config_json_matches_the_catalogue_entry(tmp_path, catalogue, capsys):
    config = dict(catalogue.model("gemma-3-27b").config)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    main(["inference", "--config", str(path), "--json"])
    from_config = json.loads(capsys.readouterr().out)
    main(["inference", "--model", "gemma-3-27b", "--json"])
    from_model = json.loads(capsys.readouterr().out)
    assert from_config["total_bytes"] == from_model["total_bytes"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('{"model_type": "llama", "hidden_size": 4096', "not valid JSON at line 1"),
        ("[1, 2]", "must be a JSON object, got list"),
        ('{"model_type": "rwkv"}', "unsupported model_type 'rwkv'"),
        ('{"model_type": "qwen2", "hidden_size": 1024}', "missing key 'num_hidden_layers'"),
        ('{"model_type": "llama", "hidden_size": -5}', "'hidden_size' must be at least 1"),
    ],
)
def test_bad_config_files_exit_2_with_the_key(tmp_path, config, message):
    path = tmp_path / "config.json"
    path.write_text(config)
    result = run("inference", "--config", str(path))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "llama-3.1-7b"], "unknown model 'llama-3.1-7b'; did you mean"),
        (["--model", "llama-3.1-8b", "--weights", "q4_k_x"], "unknown weight format 'q4_k_x'"),
        (["--model", "llama-3.1-8b", "--gpu", "RTX 9999"], "unknown GPU 'RTX 9999'"),
        (["--model", "llama-3.1-8b", "--kv-cache", "q3"], "unknown KV cache format 'q3'"),
        (["--model", "llama-3.1-8b", "--context", "0"], "context must be at least 1, got 0"),
        (["--model", "llama-3.1-8b", "--context", "-4096"], "context must be at least 1"),
        (["--model", "llama-3.1-8b", "--batch", "1000000"], "batch must be at most 65,536"),
        (["--model", "llama-3.1-8b", "--gpus", "0"], "gpus must be at least 1"),
        (["--model", "llama-3.1-8b", "--context", "lots"], "invalid int value: 'lots'"),
        (["--model", "llama-3.1-8b", "--gpu-memory", "24"], "not a memory size"),
        (["--model", "llama-3.1-8b", "--engine", "tgi"], "invalid choice: 'tgi'"),
        (["--config", "/nonexistent/config.json"], "cannot read /nonexistent/config.json"),
        ([], "one of the arguments --model --config --gguf is required"),
    ],
)
def test_bad_input_exits_2_without_traceback(args, message):
    result = run("inference", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_catalogue_is_reported_with_its_line(data_copy):
    models = data_copy / "models.yaml"
    text = models.read_text()
    models.write_text(text.replace("    num_hidden_layers: 32\n", "    num_hidden_layers: -1\n", 1))
    result = run("inference", "--model", "llama-3.1-8b", env={"VRAM_GUIDE_DATA": str(data_copy)})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    line = int(result.stderr.split("data/models.yaml:")[1].split(":")[0])
    assert models.read_text().splitlines()[line - 1].strip() == "num_hidden_layers: -1"
    assert "'num_hidden_layers' must be at least 1, got -1" in result.stderr


def test_gpu_memory_sizes(capsys):
    assert main(["inference", "--model", "llama-3.1-8b", "--gpu-memory", "12GiB", "--json"]) == 0
    device = json.loads(capsys.readouterr().out)["devices"][0]
    assert device["capacity_bytes"] == 12 * 2**30


def test_gpu_memory_utilization_flag_sets_vllms_reserve(capsys):
    args = ["inference", "--model", "llama-3.1-8b", "--engine", "vllm", "--gpu", "a100-80gb-sxm"]
    assert main([*args, "--gpu-memory-utilization", "0.5", "--json"]) == 0
    details = json.loads(capsys.readouterr().out)["engine_details"]
    assert details["gpu_memory_utilization"] == 0.5
    assert details["reserved_bytes"] == [int(81920 * 2**20 * 0.5)]
    assert main([*args, "--gpu-memory-utilization", "1.2"]) == 2
    assert "gpu_memory_utilization must be a fraction" in capsys.readouterr().err


def test_vllm_batch_flags_size_the_profiling_run(capsys):
    args = ["inference", "--model", "llama-3.1-8b", "--engine", "vllm", "--gpu", "h100", "--json"]

    def activations(*flags):
        assert main([*args, *flags]) == 0
        return json.loads(capsys.readouterr().out)["components"]["activations"]

    default = activations()  # 8192 tokens, 1024 sequences on an 80 GB H100
    assert activations("--max-num-seqs", "256") < default
    assert activations("--max-num-batched-tokens", "512") == 8 * 512 * 128_256 * 4 + 512 * 4096 * 2
    assert main(["inference", "--model", "llama-3.1-8b", "--max-num-seqs", "4"]) == 2
    assert "max_num_seqs is a vLLM setting" in capsys.readouterr().err


def test_a_setup_that_does_not_fit_says_what_would(capsys):
    assert (
        main(["inference", "--model", "llama-3.1-8b", "--engine", "vllm", "--gpu", "rtx-4090"]) == 0
    )
    out = capsys.readouterr().out
    # vLLM's default max_model_len is the model's own 131,072 tokens, which a 4090 cannot hold
    assert "context 131072 tokens" in out and "DOES NOT FIT" in out
    assert "would fit: a context of up to" in out and "of these GPUs" in out
    assert main(["inference", "--model", "llama-3.1-8b", "--gpu", "rtx-4090"]) == 0
    assert "would fit" not in capsys.readouterr().out  # it fits: no hint


def test_the_cache_keeps_the_newest_few_versions(tmp_path):
    """Two checkouts, or a test's copy of data/, alternate without evicting each other."""
    import os as _os

    from calc.data_files import KEPT, prune_cache

    for age in range(6):
        path = tmp_path / f"catalogue-{age}.json"
        path.write_text("{}")
        _os.utime(path, (1_000_000 - age, 1_000_000 - age))
    (tmp_path / "tables-0").mkdir()
    _os.utime(tmp_path / "tables-0", (0, 0))
    prune_cache(tmp_path, "catalogue-*.json")
    left = sorted(p.name for p in tmp_path.glob("catalogue-*.json"))
    assert left == [f"catalogue-{age}.json" for age in range(KEPT - 1)]
    assert (tmp_path / "tables-0").is_dir()  # another pattern is left alone
