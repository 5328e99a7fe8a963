"""Weight bytes: block layouts and llama.cpp's GGUF mixes."""

from __future__ import annotations

import pytest

from calc.formats import tensor_bytes, tensor_storage, use_more_bits
from calc.tensors import Tensor, model_tensors
from calc.units import MIB


def file_bytes(catalogue, model_id, weights):
    model = catalogue.model(model_id)
    fmt = catalogue.weight_format(weights)
    return sum(
        tensor_bytes(t, tensor_storage(t, fmt, model.arch, catalogue.storage_types))
        for t in model_tensors(model.arch)
    )


def test_r1_distill_qwen_32b_q4_k_m_matches_the_published_file(catalogue):
    size = file_bytes(catalogue, "deepseek-r1-distill-qwen-32b", "q4_k_m")
    # Published size of the Q4_K_M file: 19.85 GB.
    assert size == pytest.approx(19.85e9, rel=0.01)
    # llama.cpp's load log for it (ggml-org/llama.cpp issue 11861): "CUDA0 model buffer size =
    # 18508.35 MiB" plus "CPU_Mapped model buffer size = 417.66 MiB".
    assert size / MIB == pytest.approx(18508.35 + 417.66, abs=0.5)


def test_q8_0_is_34_bytes_per_32_values(catalogue):
    q8 = catalogue.storage_types["ggml_q8_0"]
    assert q8.row_bytes(32) == 34
    assert q8.row_bytes(4096) == 4096 // 32 * 34


def test_use_more_bits_matches_llama_cpp_for_64_layers():
    # i < 8, i >= 56, or (i - 8) % 3 == 2: 8 + 8 + 16 layers.
    chosen = [i for i in range(64) if use_more_bits(i, 64)]
    assert len(chosen) == 32
    assert chosen[:10] == [0, 1, 2, 3, 4, 5, 6, 7, 10, 13]


def test_q4_k_m_upgrades_output_attn_v_and_ffn_down(catalogue):
    arch = catalogue.model("deepseek-r1-distill-qwen-32b").arch
    fmt = catalogue.weight_format("q4_k_m")
    types = catalogue.storage_types

    def kind(role, layer=None):
        tensor = next(t for t in model_tensors(arch) if t.role == role and t.layer == layer)
        return tensor_storage(tensor, fmt, arch, types).id

    assert kind("output") == "ggml_q6_k"
    assert kind("token_embd") == "ggml_q4_k"
    assert kind("attn_v", 0) == "ggml_q6_k"  # first eighth
    assert kind("attn_v", 8) == "ggml_q4_k"
    assert kind("ffn_down", 10) == "ggml_q6_k"  # (10 - 8) % 3 == 2
    assert kind("attn_q", 0) == "ggml_q4_k"
    assert kind("attn_norm", 0) == "ggml_f32"


def test_tied_embeddings_take_the_output_type(catalogue):
    arch = catalogue.model("qwen2.5-1.5b").arch
    embd = next(t for t in model_tensors(arch) if t.role == "token_embd")
    fmt = catalogue.weight_format("q4_k_m")
    assert tensor_storage(embd, fmt, arch, catalogue.storage_types).id == "ggml_q6_k"


def test_llama_70b_attention_values_get_q5_k(catalogue):
    # LLM_TYPE_70B: attn_v that would be Q3_K or Q4_K becomes Q5_K.
    arch = catalogue.model("llama-3.3-70b").arch
    v = next(t for t in model_tensors(arch) if t.role == "attn_v" and t.layer == 11)
    fmt = catalogue.weight_format("q4_k_m")
    assert tensor_storage(v, fmt, arch, catalogue.storage_types).id == "ggml_q5_k"


def test_rows_that_are_not_whole_super_blocks_fall_back(catalogue):
    # gpt-oss rows are 2880 values long: not a multiple of 256, so Q4_K falls back to Q5_0.
    arch = catalogue.model("gpt-oss-20b").arch
    tensor = next(t for t in model_tensors(arch) if t.role == "attn_q")
    fmt = catalogue.weight_format("q4_k_m")
    assert tensor_storage(tensor, fmt, arch, catalogue.storage_types).id == "ggml_q5_0"


def test_awq_keeps_embeddings_in_16_bits(catalogue):
    arch = catalogue.model("llama-3.1-8b").arch
    fmt = catalogue.weight_format("awq")
    by_role = {t.role: t for t in model_tensors(arch) if t.layer in (None, 0)}
    assert tensor_storage(by_role["token_embd"], fmt, arch, catalogue.storage_types).id == "fp16"
    assert (
        tensor_storage(by_role["attn_q"], fmt, arch, catalogue.storage_types).id == "awq_4bit_g128"
    )


def test_block_rounding_never_splits_a_row(catalogue):
    q4 = catalogue.storage_types["ggml_q4_0"]
    tensor = Tensor("attn_q", "weight", (33, 2))
    assert tensor_bytes(tensor, q4) == 2 * 2 * 18


@pytest.mark.parametrize(
    ("smaller", "larger"),
    [
        ("q2_k", "q3_k_m"),
        ("q3_k_m", "q4_k_m"),
        ("q4_k_m", "q5_k_m"),
        ("q5_k_m", "q6_k"),
        ("q6_k", "q8_0"),
        ("q8_0", "fp16"),
        ("fp16", "fp32"),
        ("awq", "fp16"),
        ("nf4", "int8"),
    ],
)
def test_fewer_bits_give_smaller_files(catalogue, smaller, larger):
    for model in ("llama-3.1-8b", "qwen3-30b-a3b", "gemma-2-9b", "deepseek-r1"):
        assert file_bytes(catalogue, model, smaller) < file_bytes(catalogue, model, larger)


def test_the_layout_sizes_each_distinct_tensor_once_and_gets_the_same_bytes(catalogue):
    """weight_layout sizes one tensor per storage_key; summing every tensor one by one, as
    tensor_storage decides it for each, must give the same bytes per layer for every model and
    every format (GGUF mixes with layer rules, checkpoints that keep modules, MLX, FP8)."""
    from calc.formats import LAYER_CONDITIONS
    from calc.layout import weight_layout
    from calc.tensors import is_vision

    def by_layer(fmt):
        conditions = [c for rule in (*fmt.rules, *fmt.post) for c in rule.when]
        return any(c.partition(":")[0] in LAYER_CONDITIONS for c in conditions)

    loadable = [f for f in catalogue.weight_formats.values() if f.loadable]
    # each kind of decision: every scope, module lists kept by name, and layer rules
    kinds = {(f.scope, bool(f.keep), by_layer(f)): f for f in loadable}
    formats = [*kinds.values(), catalogue.weight_formats["q4_k_m"]]
    assert len(kinds) >= 5
    for model in catalogue.models.values():
        arch = model.arch
        for fmt in formats:
            layout = weight_layout(arch, fmt, catalogue.storage_types)
            layers = [0] * arch.num_layers
            for tensor in model_tensors(arch):
                if tensor.layer is not None and not is_vision(tensor):
                    storage = tensor_storage(tensor, fmt, arch, catalogue.storage_types)
                    layers[tensor.layer] += tensor_bytes(tensor, storage)
            assert list(layout.layer_bytes) == layers, (model.id, fmt.id)
