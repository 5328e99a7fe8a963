"""Unified memory as it works: macOS wires 2/3 of a Mac's memory for the GPU up to 36 GiB and 3/4
above, sysctl iogpu.wired_limit_mb (or an APU's carve-out) replaces that share, and GPUs with
memory of their own refuse both inputs."""

from __future__ import annotations

import pytest

from calc import InferenceRequest, InputError, run_inference

GIB = 2**30


def capacity(catalogue, **request) -> int:
    estimate = run_inference(catalogue, InferenceRequest(model="qwen3-8b", **request))
    return estimate.devices[0].device.capacity_bytes


@pytest.mark.parametrize(
    ("memory_gib", "share"), [(16, 2 / 3), (24, 2 / 3), (36, 2 / 3), (48, 3 / 4), (128, 3 / 4)]
)
def test_a_mac_wires_its_share_of_the_memory_for_the_gpu(catalogue, memory_gib, share):
    got = capacity(catalogue, gpu="m4-pro", unified_memory_bytes=memory_gib * GIB)
    assert got == int(memory_gib * GIB * share)


def test_the_memory_variant_is_named_with_the_chip(catalogue):
    estimate = run_inference(
        catalogue,
        InferenceRequest(model="qwen3-8b", gpu="m3-max-128gb", unified_memory_bytes=64 * GIB),
    )
    name = estimate.devices[0].device.name
    assert "64 GiB" in name and "128" not in name and name.startswith("Apple M3 Max")


def test_the_wired_limit_replaces_the_default_share(catalogue):
    got = capacity(
        catalogue, gpu="m4-pro", unified_memory_bytes=64 * GIB, wired_limit_bytes=56 * GIB
    )
    assert got == 56 * GIB
    with pytest.raises(InputError, match="more than the machine's memory"):
        capacity(catalogue, gpu="m4-pro", unified_memory_bytes=32 * GIB, wired_limit_bytes=40 * GIB)


def test_an_apu_takes_its_vendors_share_or_the_carve_out(catalogue):
    apu = catalogue.gpu("ryzen-ai-max-395")
    assert capacity(catalogue, gpu="ryzen-ai-max-395", unified_memory_bytes=64 * GIB) == int(
        64 * GIB * apu.usable_fraction
    )
    assert capacity(catalogue, gpu="ryzen-ai-max-395", wired_limit_bytes=96 * GIB) == 96 * GIB


def test_a_fitting_verdict_follows_the_memory_variant(catalogue):
    request = {"model": "qwen3-32b", "gpu": "m4-pro", "context": 8192, "gpu_layers": 99}
    small = run_inference(catalogue, InferenceRequest(**request, unified_memory_bytes=24 * GIB))
    large = run_inference(catalogue, InferenceRequest(**request, unified_memory_bytes=48 * GIB))
    assert small.fits is False and large.fits is True


@pytest.mark.parametrize("field", ["unified_memory_bytes", "wired_limit_bytes"])
def test_a_gpu_with_its_own_memory_refuses_unified_inputs(catalogue, field):
    with pytest.raises(InputError, match="memory of its own") as error:
        capacity(catalogue, gpu="rtx-4090", **{field: 32 * GIB})
    assert error.value.field == field.replace("_bytes", "_gib")
