"""Number formats: how many bytes a row of values takes, and which format each tensor gets.

A :class:`StorageType` is one way of storing values (fp16, q8_0, q4_k, nf4 ...). A
:class:`WeightFormat` is what a reader downloads or asks an engine for ("Q4_K_M", "AWQ 4-bit"):
it assigns a storage type to each tensor. GGUF file types do so by the rules of llama.cpp's
``llama_tensor_get_type``, which the catalogue transcribes as data (``mix``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from math import ceil
from typing import Any

from calc._errors import CatalogueError
from calc.architecture import Architecture
from calc.checkpoint import module_kept
from calc.records import record
from calc.tensors import WEIGHT, Tensor, hf_module, is_vision

# Where a weight format applies: to every tensor, to the linear layers of the decoder blocks
# (embeddings, output head, router and norms stay in the checkpoint's 16-bit type), to the routed
# experts only (gpt-oss MXFP4), or by GGUF mix rules.
SCOPES = ("all", "linear", "experts", "gguf", "mlx")
# A format read from a GGUF file's tensor table: each tensor keeps the type the file gives it.
FILE_SCOPE = "file"

# Tensors llama.cpp never quantises even when 2-D (src/llama-quant.cpp: the router,
# "ffn_gate_inp.weight", is excluded by name).
_NEVER_QUANTISED = ("ffn_gate_inp", "ffn_gate_inp_shexp")


@record
class StorageType:
    id: str
    name: str
    block_size: int  # values per block; 1 for plain scalars
    block_bytes: int | None  # bytes per block, when a block is a whole number of bytes
    bits_per_weight: float  # effective, including scales and zero points
    row_extra_bits: int = 0  # a scale (and zero point) per row: per-channel quantisation

    def row_bytes(self, values: int) -> int:
        """Bytes for one row of ``values`` numbers (blocks never straddle rows)."""
        if self.block_bytes is not None:
            return ceil(values / self.block_size) * self.block_bytes
        return ceil((values * self.bits_per_weight + self.row_extra_bits) / 8)


@record
class MixRule:
    """One line of a GGUF mix: tensors with this role get ``type`` when every condition holds."""

    roles: tuple[str, ...]
    type: str
    when: tuple[str, ...] = ()


@record
class WeightFormat:
    id: str
    name: str
    family: str
    storage: StorageType  # the format's main storage type (a GGUF mix's base type)
    scope: str
    unquantised: StorageType | None = None  # for tensors the scope leaves out
    rules: tuple[MixRule, ...] = ()  # GGUF mixes only
    post: tuple[MixRule, ...] = ()
    # False for number formats no engine loads as a checkpoint (plain INT4, TF32, a ggml
    # tensor type on its own): only the theory engine's parameters x bits applies to them.
    loadable: bool = True
    # Hugging Face module names (or re:/glob patterns) a checkpoint leaves unquantised
    keep: tuple[str, ...] = ()


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama.cpp's choice of layers that get a larger type in the _M mixes.

    src/llama-quant.cpp: ``i_layer < n_layers/8 || i_layer >= 7*n_layers/8 ||
    (i_layer - n_layers/8)%3 == 2`` (integer division, as in C++).
    """
    eighth = n_layers // 8
    return i_layer < eighth or i_layer >= 7 * n_layers // 8 or (i_layer - eighth) % 3 == 2


def _condition_holds(
    condition: str, tensor: Tensor, arch: Architecture, base: StorageType, chosen: StorageType
) -> bool:
    name, _, arg = condition.partition(":")
    test = _CONDITIONS.get(name)
    if test is None:
        raise CatalogueError(f"unknown mix condition {condition!r}")
    return test(_Subject(tensor, arch, base, chosen), arg)


@record
class _Subject:
    """What a mix condition looks at: the tensor, its model, the base and chosen types."""

    tensor: Tensor
    arch: Architecture
    base: StorageType
    chosen: StorageType

    @property
    def i(self) -> int:
        return self.tensor.layer if self.tensor.layer is not None else 0

    @property
    def n(self) -> int:
        return self.arch.num_layers

    @property
    def experts(self) -> int:
        return self.arch.moe.num_experts if self.arch.moe else 0


_CONDITIONS: dict[str, Callable[[_Subject, str], bool]] = {
    "use_more_bits": lambda s, _: use_more_bits(s.i, s.n),
    # i < n/K, integer division as in llama.cpp
    "layer_below_fraction": lambda s, arg: s.i < s.n // int(arg),
    "layer_below": lambda s, arg: s.i < int(arg),
    "gqa_at_least": lambda s, arg: s.arch.gqa_groups >= int(arg),
    "experts_equal": lambda s, arg: s.experts == int(arg),
    "experts_at_least": lambda s, arg: s.experts >= int(arg),
    # llama.cpp's LLM_TYPE_70B: 80 layers with grouped KV heads (llama and qwen2 loaders)
    "llama70b": lambda s, _: (
        s.n == LLAMA_70B_LAYERS and s.arch.num_kv_heads != s.arch.num_attention_heads
    ),
    "row_misfits_base": lambda s, _: s.tensor.shape[0] % s.base.block_size != 0,
    "chosen": lambda s, arg: s.chosen.id in arg.split("|"),
    # a 3-D stack of routed experts (ne[2] > 1)
    "expert_stack": lambda s, _: s.tensor.routed and len(s.tensor.shape) == 3,
}


LLAMA_70B_LAYERS = 80

MIX_CONDITIONS = tuple(_CONDITIONS)
# the conditions that look at the layer's index: only they make two layers' tensors differ
LAYER_CONDITIONS = frozenset({"use_more_bits", "layer_below_fraction", "layer_below"})


def storage_key(fmt: WeightFormat, arch: Architecture) -> Callable[[Tensor], tuple[Any, ...]]:
    """A key per tensor such that two tensors with one key get one storage type from
    :func:`tensor_storage`: everything it looks at but the layer's index, which enters only
    for the tensor classes a layer condition decides (and for all, where a checkpoint keeps
    modules by name)."""
    by_layer = {
        role
        for rule in (*fmt.rules, *fmt.post)
        if any(c.partition(":")[0] in LAYER_CONDITIONS for c in rule.when)
        for role in rule.roles
    }
    layered: dict[str, bool] = {}  # by role: tensor_class looks at nothing else of a tensor

    def key(tensor: Tensor) -> tuple[Any, ...]:
        role = tensor.role
        if role not in layered:
            layered[role] = bool(fmt.keep) or tensor_class(tensor, arch) in by_layer
        where = tensor.layer if layered[role] else tensor.layer is None
        return (role, tensor.kind, tensor.shape, tensor.routed, tensor.stored, where)

    return key


def tensor_class(tensor: Tensor, arch: Architecture) -> str:
    """llama.cpp's category of a tensor for the mix rules (tensor_get_category: substring
    matches, so attn_qkv and MLA's attn_kv_b count as attn_v, expert stacks as their FFN)."""
    role = tensor.role
    if role == "token_embd" and arch.tie_word_embeddings:
        return "output"  # no output.weight: the embeddings take the output rules
    if role in ("attn_v", "attn_qkv", "attn_kv_b"):
        return "attn_v"
    for ffn in ("ffn_down", "ffn_gate", "ffn_up"):
        if role.startswith(ffn):
            return ffn
    return role


def tensor_storage(
    tensor: Tensor,
    fmt: WeightFormat,
    arch: Architecture,
    types: Mapping[str, StorageType],
) -> StorageType:
    """The storage type ``fmt`` gives ``tensor``."""
    if fmt.scope == "all":
        return fmt.storage
    if fmt.scope == FILE_SCOPE and tensor.stored is not None:  # a GGUF file's own types
        return types[tensor.stored]
    other = fmt.unquantised or types["bf16"]
    quantisable = tensor.kind == WEIGHT and len(tensor.shape) >= 2
    if fmt.keep and quantisable and module_kept(hf_module(tensor), fmt.keep):
        return other
    in_blocks = tensor.layer is not None and tensor.role not in _NEVER_QUANTISED
    if fmt.scope == "linear" or (fmt.scope == "experts" and arch.moe is None):
        return fmt.storage if quantisable and in_blocks else other
    if fmt.scope == "experts":
        return fmt.storage if quantisable and tensor.routed else other
    if fmt.scope == MLX_SCOPE:
        return _mlx_storage(tensor, fmt, types, quantisable)
    return _gguf_storage(tensor, fmt, arch, types, quantisable)


MLX_SCOPE = "mlx"


def _mlx_storage(
    tensor: Tensor, fmt: WeightFormat, types: Mapping[str, StorageType], quantisable: bool
) -> StorageType:
    """mlx_lm.convert's choice: every matrix whose rows divide by the group (embeddings and the
    output layer included) in the format, a MoE router in 8 bits, the rest (norms, biases,
    convolutions) in bf16; the vision tower stays bf16 (mlx-lm loads the language model)."""
    group = fmt.storage.block_size or 64
    if not quantisable or is_vision(tensor) or tensor.shape[0] % group:  # ne[0]: the row
        return types["bf16"]
    if tensor.role == "ffn_gate_inp":
        return types["mlx_q8"]
    return fmt.storage


def _gguf_storage(
    tensor: Tensor,
    fmt: WeightFormat,
    arch: Architecture,
    types: Mapping[str, StorageType],
    quantisable: bool,
) -> StorageType:
    """A GGUF mix's type for ``tensor``: llama_tensor_get_type's rules, then the fallback."""
    # 1-D tensors, biases and the router are stored as F32 by convert_hf_to_gguf.py; the
    # vision tower ships as a separate 16-bit mmproj file.
    if is_vision(tensor):
        # an F16 mmproj keeps vectors and the position table in F32 (clip's converter)
        small = len(tensor.shape) < 2 or tensor.role.endswith("position_embd")
        return types["ggml_f32"] if small or tensor.kind != WEIGHT else types["ggml_f16"]
    if not quantisable or tensor.role in _NEVER_QUANTISED:
        return types["ggml_f32"]
    cls = tensor_class(tensor, arch)
    base = chosen = fmt.storage
    for rules in (fmt.rules, fmt.post):
        for rule in rules:
            if cls in rule.roles and all(
                _condition_holds(c, tensor, arch, base, chosen) for c in rule.when
            ):
                chosen = types[rule.type]
                break
    return _gguf_fallback(chosen, tensor.shape[0], types)


# llama.cpp tensor_type_fallback (src/llama-quant.cpp at 007dbbf, L374-L421): when a row is not
# a whole number of blocks, a 256-value type falls back to a 32-value type of similar size, and
# to F16 if even that does not divide the row.
_FALLBACK = {
    "ggml_iq1_s": "ggml_iq4_nl",
    "ggml_iq1_m": "ggml_iq4_nl",
    "ggml_iq2_xxs": "ggml_iq4_nl",
    "ggml_iq2_xs": "ggml_iq4_nl",
    "ggml_iq2_s": "ggml_iq4_nl",
    "ggml_iq3_xxs": "ggml_iq4_nl",
    "ggml_iq3_s": "ggml_iq4_nl",
    "ggml_iq4_xs": "ggml_iq4_nl",
    "ggml_q2_k": "ggml_q4_0",
    "ggml_q3_k": "ggml_q4_0",
    "ggml_q4_k": "ggml_q5_0",
    "ggml_q5_k": "ggml_q5_1",
    "ggml_q6_k": "ggml_q8_0",
}


def _gguf_fallback(chosen: StorageType, row: int, types: Mapping[str, StorageType]) -> StorageType:
    if row % chosen.block_size == 0:
        return chosen
    fallback = types.get(_FALLBACK.get(chosen.id, ""), types["ggml_f16"])
    return fallback if row % fallback.block_size == 0 else types["ggml_f16"]


def tensor_bytes(tensor: Tensor, storage: StorageType) -> int:
    rows = tensor.numel // tensor.shape[0]
    return rows * storage.row_bytes(tensor.shape[0])


def required_storage_ids() -> Sequence[str]:
    """Storage types the rules above fall back on; the catalogue must define them."""
    return ("bf16", "ggml_f32", "ggml_f16", *sorted(set(_FALLBACK.values())))
