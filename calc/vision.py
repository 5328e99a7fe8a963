"""The image-encoding buffer of a vision tower: what encoding one image at the size the engine
warms up with costs beyond the tower's weights."""

from __future__ import annotations

from calc.architecture import Architecture, QwenVision, VisionTower, ViT

# llama.cpp's clip warm-up for Qwen's dynamic-resolution towers: "warmup: warmup with image
# size = 1472 x 1472" (logs of Qwen3.5-2B and Qwen3.6-27B mmproj files, 2026)
QWEN_WARMUP_SIDE = 1472


def image_patches(arch: Architecture) -> int:
    """Patches of the image an engine sizes the encoder's buffer with."""
    vt = arch.vision
    if isinstance(vt, QwenVision):
        return (QWEN_WARMUP_SIDE // vt.patch_size) ** 2
    if isinstance(vt, VisionTower | ViT):
        return (vt.image_size // vt.patch_size) ** 2
    return 0


def encode_buffer_bytes(arch: Architecture, value_bytes: int) -> int:
    """The encoder's compute buffer for one image: per patch, the widest MLP activation plus
    three hidden-width tensors (q, k, v) of ``value_bytes`` each. This matches llama.cpp's
    logged clip buffers exactly for a SigLIP tower ("alloc_compute_meta: CUDA0 compute buffer
    size = 121.25 MiB", Gemma 3 4B: 4096 patches x (4304 + 3 x 1152) x 4 bytes) and to 1% for
    Qwen3.6's tower (248.10 MiB logged, 250.8 MiB here); an empirical fit to those logs, not a
    walk of the graph."""
    vt = arch.vision
    if vt is None:
        return 0
    hidden = vt.hidden_size
    inner = vt.intermediate_size
    return image_patches(arch) * (inner + 3 * hidden) * value_bytes
