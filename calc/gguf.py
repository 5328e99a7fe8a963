"""Read a GGUF file's header (metadata and tensor table, never the tensor data) and turn it into
the architecture and exact per-tensor storage types the estimator uses.

The layout is llama.cpp's ``gguf.h`` / ``docs/gguf.md`` (version 2 and 3: 64-bit counts):
magic ``GGUF``, version, tensor count, key/value count, the key/value pairs, then one
(name, dimensions, ggml type, offset) record per tensor. Parsing works on a prefix of the file:
when the prefix ends inside the header, :class:`NeedMoreBytes` says how much to read, so the
command line and the page read only the header bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import field
from typing import Any

from calc._errors import ConfigError
from calc.architecture import (
    NONE,
    Architecture,
    GatedDeltaNet,
    Mamba2,
    ShortConv,
    parse_config,
)
from calc.records import record, replace

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
# Nobody's header is this large (a 256k-token vocabulary with merges is about 10 MiB); a larger
# one means a damaged file, not a bigger read.
MAX_HEADER_BYTES = 256 * 2**20
# Metadata arrays longer than this (the tokenizer's tokens, scores and merges) are counted, not
# kept: the estimate needs only per-layer arrays.
MAX_KEPT_ARRAY = 4096

# ggml_type ids as written in the tensor table (ggml/include/ggml.h enum ggml_type; the same
# list as ollama fs/ggml/type.go) -> catalogue storage types. Ids 4, 5, 31-33 and 36-38 were
# never written to files.
GGML_TYPES: dict[int, str] = {
    0: "ggml_f32",
    1: "ggml_f16",
    2: "ggml_q4_0",
    3: "ggml_q4_1",
    6: "ggml_q5_0",
    7: "ggml_q5_1",
    8: "ggml_q8_0",
    10: "ggml_q2_k",
    11: "ggml_q3_k",
    12: "ggml_q4_k",
    13: "ggml_q5_k",
    14: "ggml_q6_k",
    16: "ggml_iq2_xxs",
    17: "ggml_iq2_xs",
    18: "ggml_iq3_xxs",
    19: "ggml_iq1_s",
    20: "ggml_iq4_nl",
    21: "ggml_iq3_s",
    22: "ggml_iq2_s",
    23: "ggml_iq4_xs",
    29: "ggml_iq1_m",
    30: "ggml_bf16",
    34: "ggml_tq1_0",
    35: "ggml_tq2_0",
    39: "ggml_mxfp4",
    40: "ggml_nvfp4",
}
GGML_TYPE_NAMES = {
    **{i: name.removeprefix("ggml_").upper() for i, name in GGML_TYPES.items()},
    9: "Q8_1", 15: "Q8_K", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 41: "Q1_0",
}  # fmt: skip

# llama_ftype (general.file_type) -> the catalogue's GGUF mix of the same name
# (llama.cpp include/llama.h enum llama_ftype).
FILE_TYPES: dict[int, str] = {
    0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 7: "q8_0", 8: "q5_0", 9: "q5_1", 10: "q2_k",
    11: "q3_k_s", 12: "q3_k_m", 13: "q3_k_l", 14: "q4_k_s", 15: "q4_k_m", 16: "q5_k_s",
    17: "q5_k_m", 18: "q6_k", 19: "iq2_xxs", 20: "iq2_xs", 21: "q2_k_s", 22: "iq3_xs",
    23: "iq3_xxs", 24: "iq1_s", 25: "iq4_nl", 26: "iq3_s", 27: "iq3_m", 28: "iq2_s",
    29: "iq2_m", 30: "iq4_xs", 31: "iq1_m", 32: "bf16", 36: "tq1_0", 37: "tq2_0",
    38: "mxfp4_moe",
}  # fmt: skip

# GGUF metadata value types (gguf.h enum gguf_type): struct format and size.
_SCALARS: dict[int, str] = {
    0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d",
}  # fmt: skip
_STRING, _ARRAY = 8, 9


class NeedMoreBytes(Exception):
    """The prefix ended inside the header; ``at_least`` bytes of the file are needed."""

    def __init__(self, at_least: int) -> None:
        self.at_least = at_least
        super().__init__(f"need at least {at_least} bytes of the file")


@record
class GgufTensor:
    name: str
    shape: tuple[int, ...]  # ggml order: the row length first
    type_id: int


@record
class GgufHeader:
    version: int
    metadata: Mapping[str, Any]  # long arrays as {"array_length": n}
    tensors: tuple[GgufTensor, ...]
    header_bytes: int


class _Reader:
    def __init__(self, data: bytes, where: str) -> None:
        self.data = memoryview(data)
        self.at = 0
        self.order = "<"
        self.where = where

    def take(self, size: int) -> memoryview:
        end = self.at + size
        if end > len(self.data):
            if end > MAX_HEADER_BYTES:
                raise ConfigError(
                    f"{self.where}: the GGUF header claims more than {MAX_HEADER_BYTES // 2**20} "
                    "MiB; the file is damaged or not a GGUF file"
                )
            # ask for what is missing and a margin, so long headers take few reads
            raise NeedMoreBytes(max(end, 2 * len(self.data)))
        chunk = self.data[self.at : end]
        self.at = end
        return chunk

    def scalar(self, code: str) -> Any:
        return struct.unpack(self.order + code, self.take(struct.calcsize(code)))[0]

    def string(self) -> str:
        length = self.scalar("Q")
        raw = bytes(self.take(length))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("utf-8", errors="replace")

    def value(self, kind: int, key: str) -> Any:
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, count = self.scalar("I"), self.scalar("Q")
            if item_kind == _ARRAY:
                raise ConfigError(f"{self.where}: metadata {key!r} nests arrays")
            if count > MAX_KEPT_ARRAY:
                self.skip_array(item_kind, count, key)
                return {"array_length": count}
            return [self.value(item_kind, key) for _ in range(count)]
        raise ConfigError(f"{self.where}: metadata {key!r} has unknown value type {kind}")

    def skip_array(self, kind: int, count: int, key: str) -> None:
        if kind in _SCALARS:
            self.take(count * struct.calcsize(_SCALARS[kind]))
        elif kind == _STRING:
            for _ in range(count):
                self.take(self.scalar("Q"))
        else:
            raise ConfigError(f"{self.where}: metadata {key!r} has unknown item type {kind}")


def read_header(data: bytes, *, where: str = "GGUF file") -> GgufHeader:
    """The header of a GGUF file from the first bytes of it.

    Raises :class:`NeedMoreBytes` when ``data`` ends inside the header and ConfigError when the
    bytes are not a GGUF header of a version this reader knows.
    """
    r = _Reader(data, where)
    if bytes(r.take(4)) != MAGIC:
        raise ConfigError(f"{where}: not a GGUF file (it does not start with 'GGUF')")
    version = r.scalar("I")
    if (
        version not in SUPPORTED_VERSIONS
        and struct.unpack(">I", struct.pack("<I", version))[0] in SUPPORTED_VERSIONS
    ):
        r.order, version = ">", struct.unpack(">I", struct.pack("<I", version))[0]  # big-endian
    if version not in SUPPORTED_VERSIONS:
        raise ConfigError(
            f"{where}: GGUF version {version} is not supported (versions 2 and 3 are; "
            "version 1 files predate August 2023 and need converting again)"
        )
    n_tensors, n_kv = r.scalar("Q"), r.scalar("Q")
    if n_tensors > 1_000_000 or n_kv > 1_000_000:
        raise ConfigError(f"{where}: the GGUF header is damaged ({n_tensors} tensors, {n_kv} keys)")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        metadata[key] = r.value(r.scalar("I"), key)
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.scalar("I")
        if not 1 <= n_dims <= 4:
            raise ConfigError(f"{where}: tensor {name!r} has {n_dims} dimensions (1 to 4 allowed)")
        shape = tuple(r.scalar("Q") for _ in range(n_dims))
        type_id = r.scalar("I")
        r.scalar("Q")  # the data offset: the data itself is never read
        tensors.append(GgufTensor(name, shape, type_id))
    return GgufHeader(version, metadata, tuple(tensors), r.at)


# -- from the header to what the estimator needs ---------------------------------------------

# llama.cpp architecture names (general.architecture) -> the Hugging Face model_type whose
# family rules (sliding layers, MLA, sinks) apply. Others are read as a standard decoder.
ARCHITECTURES: dict[str, str] = {
    "llama": "llama",
    "mistral3": "llama",
    "qwen2": "qwen2",
    "qwen2moe": "qwen2_moe",
    "qwen3": "qwen3",
    "qwen3moe": "qwen3_moe",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "gemma3": "gemma3_text",
    "phi3": "phi3",
    "deepseek2": "deepseek_v3",
    "gpt-oss": "gpt_oss",
    "olmo2": "olmo2",
    "smollm3": "smollm3",
    "seed_oss": "seed_oss",
    # hybrids: the file's tensors give the weights, the metadata the recurrent layers (_hybrid)
    "qwen3next": "qwen3",
    "qwen35": "qwen3",
    "qwen35moe": "qwen3_moe",
    "nemotron_h": "llama",
    "nemotron_h_moe": "llama",
    "granitehybrid": "llama",
    "lfm2": "llama",
    "lfm2moe": "llama",
    "falcon-h1": "llama",
}


def summary(header: GgufHeader) -> dict[str, Any]:
    """The header as plain JSON (what the page sends the estimator): the metadata without the
    tokenizer, and the tensor table as [name, shape, type id] rows."""
    metadata = {
        key: value
        for key, value in header.metadata.items()
        if not key.startswith("tokenizer.") and not isinstance(value, dict)
    }
    return {
        "version": header.version,
        "metadata": metadata,
        "tensors": [[t.name, list(t.shape), t.type_id] for t in header.tensors],
    }


def _scalar_or_max(value: Any) -> Any:
    """Per-layer metadata arrays (head counts, feed-forward sizes) as their largest entry."""
    if isinstance(value, list):
        numbers = [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
        return max(numbers) if numbers else None
    return value


@record
class GgufModel:
    """What a GGUF file says: a config.json equivalent, its tensors and the file type."""

    config: dict[str, Any]
    tensors: tuple[GgufTensor, ...]
    file_type: str | None  # the catalogue mix named by general.file_type
    name: str
    notes: tuple[str, ...]
    architecture: str = ""  # general.architecture
    metadata: Mapping[str, Any] = field(default_factory=dict)


def read_summary(raw: Mapping[str, Any], *, where: str = "GGUF file") -> GgufModel:
    """Check a summary (from :func:`summary`, or sent by the page) and read the model in it."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected the GGUF header as a JSON object")
    metadata, rows = raw.get("metadata"), raw.get("tensors")
    if not isinstance(metadata, Mapping) or not isinstance(rows, list) or not rows:
        raise ConfigError(f"{where}: a GGUF header needs 'metadata' and a non-empty 'tensors'")
    tensors = tuple(_tensor_row(row, where) for row in rows)
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise ConfigError(f"{where}: metadata has no 'general.architecture'")
    config, notes = _config(arch, metadata, tensors, where)
    file_type = metadata.get("general.file_type")
    name = metadata.get("general.name")
    return GgufModel(
        config=config,
        tensors=tensors,
        file_type=FILE_TYPES.get(file_type) if isinstance(file_type, int) else None,
        name=name if isinstance(name, str) and name else arch,
        notes=notes,
        architecture=arch,
        metadata=metadata,
    )


def _tensor_row(row: Any, where: str) -> GgufTensor:
    if not (
        isinstance(row, Sequence)
        and len(row) == 3
        and isinstance(row[0], str)
        and isinstance(row[1], Sequence)
        and 1 <= len(row[1]) <= 4
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in row[1])
        and isinstance(row[2], int)
    ):
        raise ConfigError(f"{where}: a tensor row must be [name, shape, type id], got {row!r}")
    return GgufTensor(row[0], tuple(row[1]), row[2])


class _Meta:
    """One architecture's metadata keys (``{arch}.block_count`` ...), with errors that name them."""

    def __init__(self, arch: str, md: Mapping[str, Any], where: str) -> None:
        self.prefix, self.md, self.where = f"{arch}.", md, where

    def opt(self, key: str) -> Any:
        value = _scalar_or_max(self.md.get(self.prefix + key))
        return value if isinstance(value, int) and not isinstance(value, bool) and value else None

    def need(self, key: str) -> Any:
        value = self.opt(key)
        if value is None or value < 0:
            raise ConfigError(
                f"{self.where}: metadata {self.prefix + key!r} is missing or not a positive integer"
            )
        return value


def _config(
    arch: str, md: Mapping[str, Any], tensors: Sequence[GgufTensor], where: str
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A config.json equivalent from llama.cpp's metadata keys and the tensor shapes."""
    m = _Meta(arch, md, where)
    by_name = {t.name: t for t in tensors}
    embd = by_name.get("token_embd.weight")
    if embd is None or len(embd.shape) != 2:
        raise ConfigError(f"{where}: the tensor table has no 2-D 'token_embd.weight'")
    notes: list[str] = []
    model_type = ARCHITECTURES.get(arch)
    if model_type is None:
        model_type = "llama"
        notes.append(
            f"llama.cpp architecture {arch!r} is read as a standard decoder: every layer "
            "attends to the whole context, weights as the file stores them"
        )
    config: dict[str, Any] = {
        "model_type": model_type,
        "hidden_size": m.need("embedding_length"),
        "num_hidden_layers": m.need("block_count"),
        "num_attention_heads": m.need("attention.head_count"),
        "num_key_value_heads": m.opt("attention.head_count_kv") or m.need("attention.head_count"),
        "intermediate_size": m.opt("feed_forward_length") or 1,
        "vocab_size": embd.shape[1],
        "max_position_embeddings": m.opt("context_length"),
        "tie_word_embeddings": "output.weight" not in by_name,
        "sliding_window": m.opt("attention.sliding_window"),
        "head_dim": None if model_type == "deepseek_v3" else m.opt("attention.key_length"),
        # Qwen's converter records a window its models never use
        "use_sliding_window": False,
    }
    experts = _experts(tensors)
    if experts is not None:
        used = m.need("expert_used_count")
        config.update(_moe_keys(model_type, *experts, m.opt("leading_dense_block_count") or 0))
        config["num_experts_per_tok"] = used
    if model_type == "deepseek_v3":
        config.update(_mla_keys(m))
    return config, tuple(notes)


def _mla_keys(m: _Meta) -> dict[str, Any]:
    """DeepSeek's MLA sizes; files converted for absorbed MLA (2025) keep the per-head sizes in
    the ``_mla`` keys."""
    rope = m.need("rope.dimension_count")
    key = m.opt("attention.key_length_mla") or m.need("attention.key_length")
    return {
        "q_lora_rank": m.opt("attention.q_lora_rank"),
        "kv_lora_rank": m.need("attention.kv_lora_rank"),
        "qk_rope_head_dim": rope,
        "qk_nope_head_dim": key - rope,
        "v_head_dim": m.opt("attention.value_length_mla") or m.need("attention.value_length"),
    }


def _moe_keys(model_type: str, count: int, size: int, shared: int, dense: int) -> dict[str, Any]:
    """The config keys each MoE family reads, from the expert tensors' shapes."""
    if model_type in ("qwen2_moe", "qwen3_moe"):
        return {
            "num_experts": count,
            "moe_intermediate_size": size,
            "shared_expert_intermediate_size": shared,
        }
    if model_type == "deepseek_v3":
        return {
            "n_routed_experts": count,
            "moe_intermediate_size": size,
            "n_shared_experts": shared // size if shared else 0,
            "first_k_dense_replace": dense,
        }
    # gpt-oss, and Mixtral (llama.cpp writes it as "llama" with experts)
    return {
        "model_type": "gpt_oss" if model_type == "gpt_oss" else "mixtral",
        "num_local_experts": count,
        "intermediate_size": size,
    }


def _experts(tensors: Sequence[GgufTensor]) -> tuple[int, int, int] | None:
    """(experts, expert feed-forward size, shared-expert size) from the tensor shapes."""
    stack = next((t for t in tensors if t.name.endswith("ffn_gate_exps.weight")), None)
    if stack is None:
        stack = next((t for t in tensors if t.name.endswith("ffn_up_exps.weight")), None)
    if stack is None or len(stack.shape) != 3:
        return None
    shared = next((t for t in tensors if t.name.endswith("ffn_up_shexp.weight")), None)
    return stack.shape[2], stack.shape[1], shared.shape[1] if shared else 0


def gguf_architecture(model: GgufModel, *, where: str = "GGUF file") -> Architecture:
    """The architecture a GGUF file describes, carrying the file's own tensor table."""
    arch = parse_config(model.config, where=f"{where}: metadata")
    rows = []
    for tensor in model.tensors:
        stored = GGML_TYPES.get(tensor.type_id)
        if stored is None:
            name = GGML_TYPE_NAMES.get(tensor.type_id, f"type id {tensor.type_id}")
            raise ConfigError(
                f"{where}: tensor {tensor.name!r} is stored as {name}, which the estimator "
                "cannot size"
            )
        rows.append((tensor.name, tensor.shape, stored))
    return replace(_hybrid(arch, model, where), file_tensors=tuple(rows))


# llama.cpp architectures whose recurrent layers are gated-delta-rule (Qwen3-Next, Qwen3.5)
DELTA_RULE = ("qwen3next", "qwen35", "qwen35moe")


def _hybrid(arch: Architecture, model: GgufModel, where: str) -> Architecture:
    """Recurrent layers as llama.cpp reads them from the metadata: a layer with no KV heads
    (per-layer head_count_kv) or between full_attention_interval's layers is recurrent, unless
    it has a feed-forward of its own (Nemotron-H's MLP blocks); Falcon-H1's layers are both."""
    m = _Meta(model.architecture, model.metadata, where)
    layers = arch.num_layers
    kv = model.metadata.get(m.prefix + "attention.head_count_kv")
    ff = model.metadata.get(m.prefix + "feed_forward_length")
    l_cache = m.opt("shortconv.l_cache")
    has_ssm = m.opt("ssm.conv_kernel") is not None
    if not has_ssm and l_cache is None:
        return arch
    if isinstance(kv, list) and len(kv) == layers:
        attention = [bool(k) for k in kv]
    elif m.opt("full_attention_interval"):
        interval = m.need("full_attention_interval")
        attention = [(i + 1) % interval == 0 for i in range(layers)]
    else:  # Falcon-H1: attention and Mamba-2 in every layer
        attention = [True] * layers
    both = all(attention)
    feed = ff if isinstance(ff, list) and len(ff) == layers else [1] * layers
    recurrent = [both or (not a and not (f and model.architecture.startswith("nemotron_h")))
                 for a, f in zip(attention, feed, strict=True)]  # fmt: skip
    mixer: Mamba2 | GatedDeltaNet | ShortConv
    if l_cache is not None:
        mixer = ShortConv(hidden=arch.hidden_size, l_cache=l_cache)
    elif model.architecture in DELTA_RULE:
        value_heads = m.need("ssm.time_step_rank")
        mixer = GatedDeltaNet(
            key_heads=m.need("ssm.group_count"),
            value_heads=value_heads,
            key_head_dim=m.need("ssm.state_size"),
            value_head_dim=m.need("ssm.inner_size") // value_heads,
            d_conv=m.need("ssm.conv_kernel"),
        )
    else:
        mixer = Mamba2(
            d_inner=m.need("ssm.inner_size"),
            heads=m.need("ssm.time_step_rank"),
            groups=m.opt("ssm.group_count") or 1,
            d_state=m.need("ssm.state_size"),
            d_conv=m.need("ssm.conv_kernel"),
        )
    kinds = tuple(kind if a else NONE for kind, a in zip(arch.layer_kinds, attention, strict=True))
    return replace(arch, layer_kinds=kinds, recurrent=mixer, recurrent_layers=tuple(recurrent))


def main_type(model: GgufModel) -> str:
    """The storage type most of the file's weight bytes use (its "Q4_K" in Q4_K_M)."""
    counts: dict[str, int] = {}
    for tensor in model.tensors:
        stored = GGML_TYPES.get(tensor.type_id)
        if stored is not None and len(tensor.shape) >= 2:
            numel = 1
            for d in tensor.shape:
                numel *= d
            counts[stored] = counts.get(stored, 0) + numel
    return max(counts, key=lambda k: counts[k]) if counts else "ggml_f32"
