"""KV cache bytes for every attention kind and cache format."""

from __future__ import annotations

import pytest

from calc import kv_cache_bytes
from calc.kv_cache import kv_row_values
from calc.units import MIB


def test_llama_33_70b_f16_4096_tokens_is_1280_mib(catalogue):
    # 80 layers x 8 KV heads x 128 x 2 (K, V) x 2 bytes = 320 KiB per token; x 4096 = 1280 MiB.
    arch = catalogue.model("llama-3.3-70b").arch
    f16 = catalogue.kv_format("f16")
    assert kv_cache_bytes(arch, context=4096, sequences=1, storage=f16) == 1280 * MIB


def test_mla_caches_the_latent_and_the_rope_key(catalogue):
    # DeepSeek-V2 paper, section 2.1.2: (d_c + d_h^R) = 512 + 64 values per token and layer.
    arch = catalogue.model("deepseek-r1").arch
    assert kv_row_values(arch) == (576,)
    f16 = catalogue.kv_format("f16")
    assert kv_cache_bytes(arch, context=1000, sequences=1, storage=f16) == 61 * 576 * 2 * 1000


def test_q8_0_cache_uses_34_byte_blocks(catalogue):
    arch = catalogue.model("llama-3.1-8b").arch  # rows of 8 x 128 = 1024 values
    q8 = catalogue.kv_format("q8_0")
    per_token = 2 * (1024 // 32) * 34 * 32
    assert kv_cache_bytes(arch, context=10, sequences=1, storage=q8) == 10 * per_token


def test_sliding_layers_keep_only_their_window(catalogue):
    arch = catalogue.model("gemma-2-9b").arch  # 42 layers, half slide over 4096 tokens
    f16 = catalogue.kv_format("f16")
    long = kv_cache_bytes(arch, context=8192, sequences=1, storage=f16)
    full = kv_cache_bytes(arch, context=8192, sequences=1, storage=f16, sliding_window_cache=False)
    assert long == pytest.approx(full * 0.75)


def test_sequences_multiply_the_cache(catalogue):
    arch = catalogue.model("qwen2.5-7b").arch
    f16 = catalogue.kv_format("fp16")
    one = kv_cache_bytes(arch, context=2048, sequences=1, storage=f16)
    assert kv_cache_bytes(arch, context=2048, sequences=4, storage=f16) == 4 * one


@pytest.mark.parametrize("name", ["f16", "F16", "bf16", "fp8", "q8_0", "Q4_0"])
def test_kv_formats_are_found_by_common_names(catalogue, name):
    assert catalogue.kv_format(name).block_size >= 1
