"""KV cache size: what each layer stores per token, for how many tokens, in which format."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Literal

from calc.architecture import SLIDING, Architecture
from calc.formats import StorageType

# How an engine caches MLA (DeepSeek V2/V3/R1): "full" per-head K and V as plain attention,
# "latent_kv" the latent as K plus a kv_lora_rank-wide V, "latent" the latent alone.
MlaCache = Literal["full", "latent_kv", "latent"]


def kv_row_values(
    arch: Architecture, mla_cache: MlaCache = "latent", layer: int | None = None
) -> tuple[int, ...]:
    """The rows one token adds to one layer's cache, as a count of values per row.

    Standard attention stores a K row and a V row of ``num_kv_heads * head_dim`` values (MHA,
    GQA and MQA differ only in num_kv_heads). MLA stores one compressed latent of
    ``kv_lora_rank`` values plus the shared RoPE key of ``qk_rope_head_dim`` values
    (DeepSeek-V2 paper, section 2.1.2: "(d_c + d_h^R) l elements"). Engines that predate MLA
    support cache the expanded per-head K and V instead (``mla_cache="full"``), and llama.cpp
    from April 2025 to January 2026 kept a V row of ``kv_lora_rank`` beside the latent
    (``"latent_kv"``).
    """
    if arch.mla is not None:
        m = arch.mla
        latent = m.kv_lora_rank + m.qk_rope_head_dim
        if mla_cache == "full":
            heads = arch.num_attention_heads
            return (heads * (m.qk_nope_head_dim + m.qk_rope_head_dim), heads * m.v_head_dim)
        index = (m.index_head_dim,) if m.index_head_dim else ()  # V3.2's indexer keys
        if mla_cache == "latent_kv":
            return (latent, m.kv_lora_rank, *index)
        return (latent, *index)
    heads, size = (
        arch.attention_shape(layer)
        if layer is not None
        else (
            arch.num_kv_heads,
            arch.head_dim,
        )
    )
    return (heads * size, heads * size)


def cached_tokens(
    arch: Architecture, layer: int, *, context: int, sliding_window_cache: bool, swa_extra: int = 0
) -> int:
    """Tokens a layer keeps for one sequence: a sliding layer needs only its window
    (plus whatever the engine keeps for the batch being processed)."""
    if sliding_window_cache and _sliding(arch, layer):
        return min(context, (arch.sliding_window or 0) + swa_extra)
    return context


def kv_cache_bytes(
    arch: Architecture,
    *,
    context: int,
    sequences: int,
    storage: StorageType,
    layers: Iterable[int] | None = None,
    sliding_window_cache: bool = True,
    swa_extra: int = 0,
    mla_cache: MlaCache = "latent",
    sliding_cells: int | None = None,
) -> int:
    """Bytes of KV cache for ``sequences`` sequences of ``context`` tokens over ``layers``.

    ``sliding_cells``, where an engine sizes its sliding-window cache as a whole (llama.cpp's
    iSWA cache is shared by the sequences), is the cells one sliding layer holds for all of them.
    Quantised cache types are stored in whole blocks per row (q8_0: 34 bytes per 32 values),
    as ggml_row_size does.
    """
    per_token, sliding = layer_token_bytes(arch, storage, mla_cache)
    full = window = 0  # bytes per token of the chosen full and sliding layers
    for layer in range(arch.num_layers) if layers is None else layers:
        if sliding[layer]:
            window += per_token[layer]
        else:
            full += per_token[layer]
    if not sliding_window_cache:
        full, window = full + window, 0
    total = full * context * sequences
    if sliding_cells is not None:
        return total + window * sliding_cells  # as the engine sizes it: may exceed the context
    kept = min(context, (arch.sliding_window or 0) + swa_extra)
    return total + window * kept * sequences


@lru_cache(maxsize=256)
def layer_token_bytes(
    arch: Architecture, storage: StorageType, mla_cache: MlaCache
) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """Per layer: the bytes one token adds to its cache (0 where it keeps none: recurrent,
    MLP-only, or sharing another layer's cache), and whether it is a sliding-window layer.
    A pure function of frozen values, asked for by every placement of every estimate."""
    per_token = tuple(
        sum(storage.row_bytes(values) for values in kv_row_values(arch, mla_cache, layer))
        if arch.keeps_kv(layer)
        else 0
        for layer in range(arch.num_layers)
    )
    return per_token, tuple(_sliding(arch, layer) for layer in range(arch.num_layers))


def _sliding(arch: Architecture, layer: int) -> bool:
    return arch.layer_kinds[layer] == SLIDING and bool(arch.sliding_window)
