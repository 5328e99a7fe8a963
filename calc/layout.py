"""A model's weight bytes in one format, grouped by where an engine can put them.

Walking the tensors is the costly part of an estimate; everything that depends on the context,
batch, engine or GPUs works from this summary instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import ceil

from calc.architecture import Architecture
from calc.formats import StorageType, WeightFormat, storage_key, tensor_bytes, tensor_storage
from calc.records import record, replace
from calc.tensors import (
    WEIGHT,
    ParameterCount,
    Tensor,
    is_vision,
    model_tensors,
    parameters_of,
)


@record
class ExpertPadding:
    """Routed-expert tensors padded for an engine's MoE kernel: each tensor-parallel rank's
    intermediate size rounded up to a multiple of ``intermediate``, the hidden size to
    ``hidden``."""

    intermediate: int
    hidden: int
    ranks: int = 1


@record
class WeightLayout:
    format_id: str
    layer_bytes: tuple[int, ...]  # per decoder layer
    layer_routed_bytes: tuple[int, ...]  # of which routed experts (llama.cpp --n-cpu-moe)
    embedding_bytes: int  # token_embd
    output_bytes: int  # output head and final norm: with the last layer
    other_bytes: int  # outside the blocks and the vision tower: with the first device
    matrix_bytes: int  # all tensors of two or more dimensions, for tensor-parallel sharding
    parameters: ParameterCount
    padding: ExpertPadding | None = None
    vision_bytes: int = 0  # the vision tower and projector (an mmproj file in llama.cpp)
    # Gemma 3n/4's per-layer embedding table: an input tensor, which llama.cpp keeps in host RAM
    per_layer_embedding_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        """The language model's weights (the vision tower is counted apart)."""
        return (
            sum(self.layer_bytes)
            + self.embedding_bytes
            + self.output_bytes
            + self.other_bytes
            + self.per_layer_embedding_bytes
        )


def pad_expert(tensor: Tensor, padding: ExpertPadding) -> Tensor:
    """``tensor`` as an engine that pads routed experts allocates it (ggml order: the row
    length first: gate and up are hidden x intermediate, down intermediate x hidden)."""

    def up(n: int, multiple: int) -> int:
        return ceil(n / multiple) * multiple

    def inner(n: int) -> int:
        return up(ceil(n / padding.ranks), padding.intermediate) * padding.ranks

    shape = list(tensor.shape)
    if tensor.role in ("ffn_gate_exps", "ffn_up_exps"):
        if tensor.kind == WEIGHT:
            shape[0], shape[1] = up(shape[0], padding.hidden), inner(shape[1])
        else:
            shape[0] = inner(shape[0])
    elif tensor.role == "ffn_down_exps":
        if tensor.kind == WEIGHT:
            shape[0], shape[1] = inner(shape[0]), up(shape[1], padding.hidden)
        else:
            shape[0] = up(shape[0], padding.hidden)
    return replace(tensor, shape=tuple(shape))


def weight_layout(
    arch: Architecture,
    weights: WeightFormat,
    storage_types: Mapping[str, StorageType],
    padding: ExpertPadding | None = None,
) -> WeightLayout:
    tensors = model_tensors(arch)
    layers = [0] * arch.num_layers
    routed = [0] * arch.num_layers
    embedding = output = other = matrices = vision = per_layer = 0
    # the layers repeat: each distinct tensor is sized once (5 ms to 1 for a 70B model)
    key, sizes = storage_key(weights, arch), dict[tuple[object, ...], int]()
    for tensor in tensors:
        size = sizes.get(tensor_key := key(tensor))
        if size is None:
            stored = pad_expert(tensor, padding) if padding and tensor.routed else tensor
            size = tensor_bytes(stored, tensor_storage(tensor, weights, arch, storage_types))
            sizes[tensor_key] = size
        if is_vision(tensor):
            vision += size
            continue
        if tensor.kind == WEIGHT and len(tensor.shape) >= 2:
            matrices += size
        if tensor.layer is not None:
            layers[tensor.layer] += size
            if tensor.routed:
                routed[tensor.layer] += size
        elif tensor.role == "token_embd":
            embedding += size
        elif tensor.role == "per_layer_token_embd":
            per_layer += size
        elif tensor.role in ("output", "output_norm"):
            output += size
        else:
            other += size
    return WeightLayout(
        format_id=weights.id,
        layer_bytes=tuple(layers),
        layer_routed_bytes=tuple(routed),
        embedding_bytes=embedding,
        output_bytes=output,
        other_bytes=other,
        matrix_bytes=matrices,
        parameters=parameters_of(arch),
        padding=padding,
        vision_bytes=vision,
        per_layer_embedding_bytes=per_layer,
    )
