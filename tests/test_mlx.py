"""MLX (mlx-lm): its affine formats quantise every matrix (embeddings and output included), the
KV cache grows 256 tokens at a time, an mlx-community config.json names its format, and the
published mlx_lm.benchmark peaks are met."""

from __future__ import annotations

import statistics

import pytest

from calc import (
    InferenceRequest,
    InputError,
    compare,
    fit_hint,
    load_measurements,
    resolve,
    run_inference,
)
from calc.checkpoint import read_checkpoint

MODEL = "qwen3-4b-instruct-2507"


def mlx(catalogue, **request):
    return run_inference(
        catalogue, InferenceRequest(model=MODEL, engine="mlx", gpu="m4-pro", **request)
    )


@pytest.mark.parametrize(("weights", "bits"), [("mlx_q4", 4.5), ("mlx_q8", 8.5), ("mlx_q4_g32", 5)])
def test_every_matrix_is_stored_at_the_format_s_bits(catalogue, weights, bits):
    estimate = mlx(catalogue, weights=weights, context=4096)
    params = estimate.parameters.total
    # norms stay bf16: a few hundred thousand values of four billion
    assert estimate.components.weights == pytest.approx(params * bits / 8, rel=0.002)


def test_the_kv_cache_grows_in_steps_of_256_tokens(catalogue):
    def kv(context):
        return mlx(catalogue, context=context).components.kv_cache

    assert kv(2049) == kv(2304) < kv(2305)
    per_token = 36 * 8 * 128 * 2 * 2  # layers x KV heads x head size x (K, V) x bf16
    assert kv(2304) == 2304 * per_token


def test_an_mlx_community_config_names_its_format(catalogue):
    config = dict(catalogue.model(MODEL).config)
    config["quantization"] = {"group_size": 32, "bits": 4}
    config["quantization_config"] = {"group_size": 32, "bits": 4}
    checkpoint = read_checkpoint(config, where="config.json")
    assert checkpoint.format_id == "mlx_q4_g32"
    estimate = run_inference(
        catalogue, InferenceRequest(config=config, engine="mlx", gpu="m4-pro", context=4096)
    )
    assert estimate.weights_format == "mlx_q4_g32"


def test_other_engines_refuse_mlx_files(catalogue):
    with pytest.raises(InputError, match="MLX"):
        run_inference(
            catalogue, InferenceRequest(model=MODEL, engine="llama.cpp", weights="mlx_q4")
        )


def test_the_published_mlx_peaks_and_rates_are_met(catalogue):
    rows = [m for m in load_measurements() if m.inputs.get("engine") == "mlx"]
    assert len(rows) >= 30
    for what, target in (("allocated_bytes", 0.05), ("decode_tokens_per_s", 0.05)):
        errors = [abs(compare(catalogue, m).error) for m in rows if m.estimate_of == what]
        assert len(errors) >= 10
        assert statistics.median(errors) <= target
        assert max(errors) <= 2 * target


def test_a_mac_is_never_told_to_add_another_mac(catalogue):
    estimate = run_inference(
        catalogue,
        InferenceRequest(
            model="llama-3.1-70b", engine="mlx", gpu="m4-pro-64gb", unified_memory_bytes=24 * 2**30
        ),
    )
    assert estimate.fits is False
    plan = resolve(
        catalogue,
        InferenceRequest(
            model="llama-3.1-70b", engine="mlx", gpu="m4-pro-64gb", unified_memory_bytes=24 * 2**30
        ),
    )
    assert fit_hint(catalogue, plan, {}).gpus_needed is None


def test_mlx_runs_a_conversion_of_an_fp8_checkpoint(catalogue):
    """Kimi K2's config names FP8 blocks, which mlx-lm does not run as such: its 4-bit
    conversion is what a Mac loads."""
    estimate = run_inference(
        catalogue, InferenceRequest(model="kimi-k2-instruct", engine="mlx", gpu="m3-ultra")
    )
    assert estimate.weights_format == "mlx_q4"
