"""GGUF headers: read from the first bytes of a file, turned into the architecture and the exact
per-tensor types, on the command line and through the page's bridge."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from math import prod
from pathlib import Path

import pytest

from calc import ConfigError, InferenceRequest, run_inference
from calc.bridge import Session
from calc.gguf import NeedMoreBytes, read_header, read_summary, summary
from tests.gguf_files import F32, Q8_0, gguf_bytes, tensor_bytes, tiny_llama, write

ROOT = Path(__file__).resolve().parents[1]


def weights(estimate) -> int:
    """Weight bytes wherever they sit (llama.cpp keeps the token embeddings in host RAM)."""
    return estimate.components.weights + estimate.host.weights


def header_of(metadata, tensors):
    return summary(read_header(gguf_bytes(metadata, tensors)))


def test_a_header_round_trips_names_shapes_and_types():
    metadata, tensors = tiny_llama()
    header = read_header(gguf_bytes(metadata, tensors, with_data=True))
    assert header.version == 3
    assert [(t.name, list(t.shape), t.type_id) for t in header.tensors] == tensors
    assert header.metadata["llama.attention.head_count_kv"] == 2
    assert header.metadata["general.name"] == "Tiny Llama"


def test_the_estimate_uses_each_tensors_own_type(catalogue):
    metadata, tensors = tiny_llama()
    estimate = run_inference(
        catalogue, InferenceRequest(gguf=header_of(metadata, tensors), engine="llama.cpp")
    )
    assert weights(estimate) == sum(tensor_bytes(shape, t) for _, shape, t in tensors)
    assert estimate.parameters.total == sum(prod(shape) for _, shape, _ in tensors)


def test_an_imatrix_style_mix_changes_the_weights_by_exactly_the_retyped_tensors(catalogue):
    """A file whose FFN gate/up are Q8_0 instead of Q4_K: the estimate moves by their bytes."""
    base_md, base = tiny_llama()
    _, mixed = tiny_llama(ffn_type=Q8_0)
    request = {"engine": "llama.cpp", "context": 4096}
    small = run_inference(catalogue, InferenceRequest(gguf=header_of(base_md, base), **request))
    large = run_inference(catalogue, InferenceRequest(gguf=header_of(base_md, mixed), **request))
    retyped = [
        (shape, a, b) for (_, shape, a), (_, _, b) in zip(base, mixed, strict=True) if a != b
    ]
    extra = sum(tensor_bytes(shape, b) - tensor_bytes(shape, a) for shape, a, b in retyped)
    assert weights(large) - weights(small) == extra > 0


def test_the_kv_cache_follows_the_metadata_heads(catalogue):
    metadata, tensors = tiny_llama()
    estimate = run_inference(
        catalogue,
        InferenceRequest(
            gguf=header_of(metadata, tensors), engine="llama.cpp", context=4096, batch=1
        ),
    )
    # 2 layers x (K + V) x 2 KV heads x 64 dims x 2 bytes (f16) x 4096 tokens
    assert estimate.components.kv_cache == 2 * 2 * 2 * 64 * 2 * 4096


def test_a_prefix_that_ends_inside_the_header_asks_for_more():
    metadata, tensors = tiny_llama(tokens=2000)
    data = gguf_bytes(metadata, tensors)
    with pytest.raises(NeedMoreBytes) as more:
        read_header(data[:1000])
    assert more.value.at_least > 1000
    assert read_header(data[: len(data)]).header_bytes == len(data)


def test_long_tokenizer_arrays_are_counted_not_kept():
    metadata, tensors = tiny_llama(tokens=5000)
    header = read_header(gguf_bytes(metadata, tensors))
    assert header.metadata["tokenizer.ggml.tokens"] == {"array_length": 5000}
    assert "tokenizer.ggml.tokens" not in summary(header)["metadata"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PK\x03\x04" + b"\0" * 40, "not a GGUF file"),
        (b"GGUF" + (1).to_bytes(4, "little") + b"\0" * 40, "GGUF version 1 is not supported"),
        (
            b"GGUF" + (3).to_bytes(4, "little") + (10**9).to_bytes(8, "little") + b"\0" * 8,
            "damaged",
        ),
    ],
)
def test_bad_headers_are_refused_by_what_is_wrong(data, message):
    with pytest.raises(ConfigError, match=message):
        read_header(data)


def test_a_tensor_type_the_catalogue_cannot_size_is_named(catalogue):
    metadata, tensors = tiny_llama()
    tensors[1] = (tensors[1][0], tensors[1][1], 41)  # Q1_0
    with pytest.raises(ConfigError, match=r"'blk.0.attn_norm.weight' is stored as Q1_0"):
        run_inference(catalogue, InferenceRequest(gguf=header_of(metadata, tensors)))


def test_missing_metadata_is_named():
    metadata, tensors = tiny_llama()
    del metadata["llama.block_count"]
    with pytest.raises(ConfigError, match=r"'llama.block_count' is missing"):
        from calc.gguf import gguf_architecture

        gguf_architecture(read_summary(header_of(metadata, tensors)))


def test_an_unknown_architecture_is_read_as_a_standard_decoder_with_a_note(catalogue):
    metadata, tensors = tiny_llama()
    metadata = {k.replace("llama.", "mystery."): v for k, v in metadata.items()}
    metadata["general.architecture"] = "mystery"
    estimate = run_inference(catalogue, InferenceRequest(gguf=header_of(metadata, tensors)))
    assert any("'mystery' is read as a standard decoder" in note for note in estimate.notes)


def test_weights_cannot_be_asked_for_a_gguf_file(catalogue):
    metadata, tensors = tiny_llama()
    with pytest.raises(Exception, match="a GGUF file fixes every tensor's type"):
        run_inference(
            catalogue, InferenceRequest(gguf=header_of(metadata, tensors), weights="q8_0")
        )


def test_the_command_line_reads_only_as_much_as_the_header_needs(tmp_path, monkeypatch):
    """A header longer than the first read is read again, longer; the data is never needed."""
    from calc import cli

    metadata, tensors = tiny_llama(tokens=20000)
    path = write(tmp_path / "tiny.gguf", metadata, tensors, with_data=True)
    monkeypatch.setattr(cli, "GGUF_FIRST_READ", 4096)
    header = cli.read_gguf(path)
    assert len(header["tensors"]) == len(tensors)


def test_the_command_line_estimates_a_gguf_file(tmp_path):
    metadata, tensors = tiny_llama()
    path = write(tmp_path / "tiny.gguf", metadata, tensors, with_data=True)
    result = subprocess.run(
        [sys.executable, "-m", "calc", "inference", "--gguf", str(path), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["components"]["weights"] + out["host_components"]["weights"] == sum(
        tensor_bytes(s, t) for _, s, t in tensors
    )


def test_a_cut_short_file_is_refused_on_the_command_line(tmp_path):
    metadata, tensors = tiny_llama(tokens=3000)
    path = tmp_path / "partial.gguf"
    path.write_bytes(gguf_bytes(metadata, tensors)[:5000])
    result = subprocess.run(
        [sys.executable, "-m", "calc", "inference", "--gguf", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert "ends inside its GGUF header" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_bridge_reads_header_bytes_and_estimates_from_them(catalogue):
    metadata, tensors = tiny_llama(tokens=3000)
    data = gguf_bytes(metadata, tensors)
    session = Session(catalogue)

    def ask(chunk: bytes) -> dict:
        encoded = base64.b64encode(chunk).decode()
        return json.loads(
            session.handle(json.dumps({"action": "gguf_header", "bytes_base64": encoded}))
        )

    first = ask(data[:2048])
    assert first["ok"] and first["need_bytes"] > 2048
    done = ask(data)
    assert done["ok"] and len(done["gguf"]["tensors"]) == len(tensors)
    response = json.loads(
        session.handle(
            json.dumps({"action": "estimate", "inputs": {"gguf": done["gguf"], "model": "phi-4"}})
        )
    )
    assert response["ok"], response
    result = response["result"]
    assert result["components"]["weights"] + result["host_components"]["weights"] == sum(
        tensor_bytes(s, t) for _, s, t in tensors
    )


def test_norms_are_f32_and_not_counted_as_matrices(catalogue):
    metadata, tensors = tiny_llama()
    norms = [t for t in tensors if t[2] == F32]
    assert norms and all(len(shape) == 1 for _, shape, _ in norms)
    estimate = run_inference(catalogue, InferenceRequest(gguf=header_of(metadata, tensors)))
    assert weights(estimate) > 0 and estimate.total_bytes > estimate.components.weights


def test_a_hybrid_files_metadata_gives_its_recurrent_layers(catalogue):
    """A Qwen3.5-style file: full_attention_interval 4 and ssm.* keys, as llama.cpp's converter
    writes them; only every fourth layer keeps a KV cache, the others a delta-rule state."""
    metadata, tensors = tiny_llama(layers=8)
    metadata = {k.replace("llama.", "qwen35."): v for k, v in metadata.items()}
    metadata.update(
        {
            "general.architecture": "qwen35",
            "qwen35.full_attention_interval": 4,
            "qwen35.ssm.conv_kernel": 4,
            "qwen35.ssm.state_size": 128,  # head_k_dim
            "qwen35.ssm.group_count": 2,  # key heads
            "qwen35.ssm.time_step_rank": 4,  # value heads
            "qwen35.ssm.inner_size": 512,  # value heads x head_v_dim
        }
    )
    estimate = run_inference(
        catalogue,
        InferenceRequest(
            gguf=header_of(metadata, tensors), engine="llama.cpp", context=4096, batch=1
        ),
    )
    # 2 attention layers x 4096 tokens x K and V of 2 heads x 64 in f16
    assert estimate.components.kv_cache == 2 * 4096 * 2 * 2 * 64 * 2
    # 6 recurrent layers, f32: conv (4 - 1) x (2 x 2 x 128 + 512), state 128 x 128 x 4
    assert estimate.components.recurrent_state == 6 * (3 * 1024 + 128 * 128 * 4) * 4
    assert not any("standard decoder" in note for note in estimate.notes)
