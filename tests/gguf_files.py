"""Small GGUF files for tests, written byte by byte as llama.cpp's gguf.h lays them out
(little-endian, version 3): the header only, or the header and zero-filled tensor data."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from math import prod
from pathlib import Path
from typing import Any

# ggml type id -> (values per block, bytes per block), from ggml-common.h's block structs
BLOCKS = {0: (1, 4), 1: (1, 2), 8: (32, 34), 12: (256, 144), 14: (256, 210), 30: (1, 2)}
F32, F16, Q8_0, Q4_K, Q6_K = 0, 1, 8, 12, 14


def tensor_bytes(shape: Sequence[int], type_id: int) -> int:
    values, size = BLOCKS.get(type_id, (1, 1))  # others: one byte a value, for offsets only
    return prod(shape) // values * size


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _value(value: Any) -> bytes:
    """A metadata value with its gguf_type: uint32 for ints, string, bool, float32, arrays."""
    if isinstance(value, bool):
        return struct.pack("<I?", 7, value)
    if isinstance(value, int):
        return struct.pack("<II", 4, value)
    if isinstance(value, float):
        return struct.pack("<If", 6, value)
    if isinstance(value, str):
        return struct.pack("<I", 8) + _string(value)
    items = list(value)
    if items and isinstance(items[0], str):
        return struct.pack("<IIQ", 9, 8, len(items)) + b"".join(_string(s) for s in items)
    return struct.pack("<IIQ", 9, 4, len(items)) + b"".join(struct.pack("<I", i) for i in items)


def gguf_bytes(
    metadata: Mapping[str, Any],
    tensors: Sequence[tuple[str, Sequence[int], int]],
    *,
    version: int = 3,
    with_data: bool = False,
) -> bytes:
    out = [b"GGUF", struct.pack("<IQQ", version, len(tensors), len(metadata))]
    for key, value in metadata.items():
        out += [_string(key), _value(value)]
    offset = 0
    for name, shape, type_id in tensors:
        out += [_string(name), struct.pack("<I", len(shape))]
        out += [struct.pack("<Q", d) for d in shape]
        out += [struct.pack("<IQ", type_id, offset)]
        offset += -(-tensor_bytes(shape, type_id) // 32) * 32  # aligned to 32 bytes
    header = b"".join(out)
    if not with_data:
        return header
    return header + b"\0" * (-len(header) % 32) + b"\0" * offset


def tiny_llama(
    *, ffn_type: int = Q4_K, layers: int = 2, tokens: int = 0
) -> tuple[dict[str, Any], list[tuple[str, list[int], int]]]:
    """A two-layer Llama with hidden size 256, as llama.cpp names its keys and tensors;
    ``tokens`` adds a vocabulary of that many strings (to make a long header)."""
    h, ff, vocab, heads, kv_heads = 256, 512, 512, 4, 2
    head_dim = h // heads
    metadata: dict[str, Any] = {
        "general.architecture": "llama",
        "general.name": "Tiny Llama",
        "general.file_type": 15,  # LLAMA_FTYPE_MOSTLY_Q4_K_M
        "llama.block_count": layers,
        "llama.context_length": 4096,
        "llama.embedding_length": h,
        "llama.feed_forward_length": ff,
        "llama.attention.head_count": heads,
        "llama.attention.head_count_kv": kv_heads,
    }
    if tokens:
        metadata["tokenizer.ggml.tokens"] = [f"token-{i:06d}" for i in range(tokens)]
    tensors = [("token_embd.weight", [h, vocab], Q4_K)]
    for i in range(layers):
        tensors += [
            (f"blk.{i}.attn_norm.weight", [h], F32),
            (f"blk.{i}.attn_q.weight", [h, heads * head_dim], Q4_K),
            (f"blk.{i}.attn_k.weight", [h, kv_heads * head_dim], Q4_K),
            (f"blk.{i}.attn_v.weight", [h, kv_heads * head_dim], Q6_K),
            (f"blk.{i}.attn_output.weight", [heads * head_dim, h], Q4_K),
            (f"blk.{i}.ffn_norm.weight", [h], F32),
            (f"blk.{i}.ffn_gate.weight", [h, ff], ffn_type),
            (f"blk.{i}.ffn_up.weight", [h, ff], ffn_type),
            (f"blk.{i}.ffn_down.weight", [ff, h], Q6_K),
        ]
    tensors += [("output_norm.weight", [h], F32), ("output.weight", [h, vocab], Q6_K)]
    return metadata, tensors


def write(path: Path, metadata: Mapping[str, Any], tensors: Sequence[Any], **kwargs: Any) -> Path:
    path.write_bytes(gguf_bytes(metadata, tensors, **kwargs))
    return path
