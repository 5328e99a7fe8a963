"""Readers for the 2025-26 model types whose layers are not all the standard decoder's: hybrid
models that mix attention with a recurrent mixer (Mamba-2, gated delta rule, short
convolution), and the Qwen vision-language wrappers.

Each reader follows the ``transformers`` modeling file it names (v5.24.0) for which tensors a
layer holds; the recurrent state they keep is sized by the mixer classes in
:mod:`calc.architecture`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from math import ceil
from typing import Any

from calc._errors import ConfigError
from calc.architecture import (
    FULL,
    NONE,
    Architecture,
    GatedDeltaNet,
    Mamba2,
    MoE,
    QwenVision,
    ShortConv,
    _Config,
)

MODELS = "https://github.com/huggingface/transformers/blob/v5.24.0/src/transformers/models"


def _base(c: _Config, model_type: str, layers: int, *, tie_default: bool) -> dict[str, Any]:
    """The Architecture fields every reader fills the same way."""
    hidden = c.integer("hidden_size")
    heads = c.integer("num_attention_heads")
    kv_heads = c.integer("num_key_value_heads", default=heads)
    return {
        "model_type": model_type,
        "hidden_size": hidden,
        "num_layers": layers,
        "num_attention_heads": heads,
        "num_kv_heads": kv_heads,
        "head_dim": c.integer("head_dim", default=hidden // heads),
        "vocab_size": c.integer("vocab_size"),
        "tie_word_embeddings": c.flag("tie_word_embeddings", tie_default),
        "qkv_bias": c.flag("attention_bias", False),
        "o_bias": c.flag("attention_bias", False),
        "mlp_bias": c.flag("mlp_bias", False),
        "sliding_window": None,
        "attention_sinks": False,
        "max_position_embeddings": c.optional_int("max_position_embeddings"),
    }


def _types(c: _Config, key: str, layers: int, allowed: Mapping[str, str]) -> list[str]:
    """A per-layer list of block types (layer_types, layers_block_type), mapped to our words."""
    raw = c.raw.get(key)
    if not isinstance(raw, list) or len(raw) != layers or not all(v in allowed for v in raw):
        names = ", ".join(repr(v) for v in allowed)
        raise c.error(key, f"{key!r} must list one of {names} per layer ({layers}), got {raw!r}")
    return [allowed[v] for v in raw]


# -- Qwen3-Next and Qwen3.5 (gated delta rule + gated attention) -----------------------------


def qwen3_next(config: Mapping[str, Any], where: str) -> Architecture:
    """modeling_qwen3_next.py / modeling_qwen3_5.py: three linear-attention layers to one
    gated full-attention layer, a MoE (or dense) MLP in every layer."""
    c = _Config(config, where=where, defaults={})
    layers = c.integer("num_hidden_layers")
    if c.raw.get("layer_types") is not None:
        kinds = _types(
            c, "layer_types", layers, {"linear_attention": "linear", "full_attention": "full"}
        )
    else:
        interval = c.integer("full_attention_interval", default=4)
        kinds = ["full" if (i + 1) % interval == 0 else "linear" for i in range(layers)]
    base = _base(c, str(config["model_type"]), layers, tie_default=False)
    moe = _qwen_moe(c, layers) if c.has("num_experts") else None
    # Qwen3-Next's checkpoint ships one MTP layer (vLLM qwen3_next_mtp.py reads
    # num_nextn_predict_layers with a default of 1); Qwen3.5 says mtp_num_hidden_layers
    mtp = c.integer(
        "mtp_num_hidden_layers",
        default=c.integer("num_nextn_predict_layers", 1, minimum=0),
        minimum=0,
    )
    return Architecture(
        **base,
        intermediate_size=c.integer("intermediate_size", default=_moe_size(moe)),
        qk_norm=True,
        norms_per_layer=2,
        layer_kinds=tuple(FULL if k == "full" else NONE for k in kinds),
        moe=moe,
        recurrent=GatedDeltaNet(
            key_heads=c.integer("linear_num_key_heads"),
            value_heads=c.integer("linear_num_value_heads"),
            key_head_dim=c.integer("linear_key_head_dim"),
            value_head_dim=c.integer("linear_value_head_dim"),
            d_conv=c.integer("linear_conv_kernel_dim", default=4),
            state_float32=c.raw.get("mamba_ssm_dtype") == "float32",
        ),
        recurrent_layers=tuple(k == "linear" for k in kinds),
        attention_gate=c.flag("attn_output_gate", True),
        mtp_layers=mtp,
    )


def _moe_size(moe: MoE | None) -> int | None:
    return moe.expert_intermediate_size if moe else None


def _qwen_moe(c: _Config, layers: int) -> MoE:
    step = c.integer("decoder_sparse_step", default=1)
    dense_only = set(c.int_list("mlp_only_layers"))
    shared = c.integer("shared_expert_intermediate_size", 0, minimum=0)
    return MoE(
        num_experts=c.integer("num_experts"),
        experts_per_token=c.integer("num_experts_per_tok"),
        expert_intermediate_size=c.integer("moe_intermediate_size"),
        shared_intermediate_size=shared,
        moe_layers=tuple(i not in dense_only and (i + 1) % step == 0 for i in range(layers)),
        shared_expert_gate=shared > 0,
    )


# -- Mamba-2 hybrids ------------------------------------------------------------------------

_NEMOTRON_BLOCKS = {"M": "mamba", "*": "attention", "-": "mlp", "E": "moe"}
_NEMOTRON_CHARS = set(_NEMOTRON_BLOCKS)


def nemotron_h(config: Mapping[str, Any], where: str) -> Architecture:
    """modeling_nemotron_h.py: each block is one norm and ONE mixer: Mamba-2 (M), attention
    (*), a squared-ReLU MLP without gate (-) or a MoE of such MLPs (E)."""
    c = _Config(config, where=where, defaults={})
    layers = c.integer("num_hidden_layers")
    pattern = c.raw.get("hybrid_override_pattern")
    if isinstance(pattern, str) and len(pattern) == layers and set(pattern) <= _NEMOTRON_CHARS:
        blocks = [_NEMOTRON_BLOCKS[ch] for ch in pattern]
    elif c.raw.get("layers_block_type") is not None:
        words = {"mamba": "mamba", "attention": "attention", "mlp": "mlp", "moe": "moe"}
        blocks = _types(c, "layers_block_type", layers, words)
    else:
        raise c.error(
            "hybrid_override_pattern",
            f"'hybrid_override_pattern' must be {layers} characters of M, *, - and E, "
            f"got {pattern!r}",
        )
    heads = c.integer("mamba_num_heads")
    mamba = Mamba2(
        d_inner=heads * c.integer("mamba_head_dim"),
        heads=heads,
        groups=c.integer("n_groups", default=8),
        d_state=c.integer("ssm_state_size", default=128),
        d_conv=c.integer("conv_kernel", default=4),
        conv_bias=c.flag("use_conv_bias", True),
        proj_bias=c.flag("use_bias", False),
        # vLLM's NemotronH config forces a float32 SSM state unless the config names another
        # (model_executor/models/config.py, DEFAULT_MAMBA_SSM_CACHE_DTYPE)
        state_float32=c.raw.get("mamba_ssm_cache_dtype", "float32") == "float32",
    )
    moe = None
    if "moe" in blocks:
        size = c.integer("moe_intermediate_size")
        moe = MoE(
            num_experts=c.integer("n_routed_experts"),
            experts_per_token=c.integer("num_experts_per_tok"),
            expert_intermediate_size=size,
            shared_intermediate_size=(
                c.integer("moe_shared_expert_intermediate_size", 0, minimum=0)
                * c.integer("n_shared_experts", 1, minimum=0)
            ),
            moe_layers=tuple(b == "moe" for b in blocks),
            score_correction_bias=True,  # NemotronHTopkRouter.e_score_correction_bias
            latent_size=c.integer("moe_latent_size", 0, minimum=0),
        )
    ffn = {"mlp": "dense", "moe": "moe"}
    return Architecture(
        **_base(c, "nemotron_h", layers, tie_default=False),
        intermediate_size=c.integer("intermediate_size", default=_moe_size(moe)),
        qk_norm=False,
        norms_per_layer=1,
        layer_kinds=tuple(FULL if b == "attention" else NONE for b in blocks),
        moe=moe,
        recurrent=mamba,
        recurrent_layers=tuple(b == "mamba" for b in blocks),
        ffn=tuple(ffn.get(b, "none") for b in blocks),
        ffn_gated=False,
    )


def granitemoehybrid(config: Mapping[str, Any], where: str) -> Architecture:
    """modeling_granitemoehybrid.py: Mamba-2 or attention, then a shared SwiGLU MLP in every
    layer, plus routed experts when num_local_experts > 0."""
    c = _Config(config, where=where, defaults={})
    layers = c.integer("num_hidden_layers")
    key = "layer_types" if c.raw.get("layer_types") is not None else "layers_block_type"
    if c.raw.get(key) is None:
        blocks = ["attention"] * layers  # granite-4.0-micro: attention only
    else:
        blocks = _types(c, key, layers, {"mamba": "mamba", "attention": "attention"})
    hidden = c.integer("hidden_size")
    heads = c.integer("mamba_n_heads", default=128)
    if c.has("mamba_d_head"):
        d_inner = heads * c.integer("mamba_d_head")
    else:
        d_inner = int(c.integer("mamba_expand", default=2) * hidden)
    shared = c.integer("shared_intermediate_size", 0, minimum=0)
    experts = c.integer("num_local_experts", 0, minimum=0)
    moe = None
    if experts:
        moe = MoE(
            num_experts=experts,
            experts_per_token=c.integer("num_experts_per_tok"),
            expert_intermediate_size=c.integer("intermediate_size"),
            shared_intermediate_size=shared,
            moe_layers=(True,) * layers,
        )
    recurrent = None
    if "mamba" in blocks:
        recurrent = Mamba2(
            d_inner=d_inner,
            heads=heads,
            groups=c.integer("mamba_n_groups", default=1),
            d_state=c.integer("mamba_d_state", default=256),
            d_conv=c.integer("mamba_d_conv", default=4),
            conv_bias=c.flag("mamba_conv_bias", True),
            proj_bias=c.flag("mamba_proj_bias", False),
        )
    base = _base(c, "granitemoehybrid", layers, tie_default=True)
    base["head_dim"] = hidden // base["num_attention_heads"]
    return Architecture(
        **base,
        intermediate_size=shared or c.integer("intermediate_size"),
        qk_norm=False,
        norms_per_layer=2,
        layer_kinds=tuple(FULL if b == "attention" else NONE for b in blocks),
        moe=moe,
        recurrent=recurrent,
        recurrent_layers=tuple(b == "mamba" for b in blocks) if recurrent else (),
    )


def falcon_h1(config: Mapping[str, Any], where: str) -> Architecture:
    """modeling_falcon_h1.py: attention and Mamba-2 side by side in every layer, then a
    SwiGLU MLP."""
    c = _Config(config, where=where, defaults={})
    layers = c.integer("num_hidden_layers")
    hidden = c.integer("hidden_size")
    heads = c.integer("mamba_n_heads")
    d_inner = c.integer("mamba_d_ssm", default=int(c.integer("mamba_expand", 2) * hidden))
    mamba = Mamba2(
        d_inner=d_inner,
        heads=heads,
        groups=c.integer("mamba_n_groups", default=1),
        d_state=c.integer("mamba_d_state", default=256),
        d_conv=c.integer("mamba_d_conv", default=4),
        conv_bias=c.flag("mamba_conv_bias", True),
        proj_bias=c.flag("mamba_proj_bias", False),
        gated_norm=c.flag("mamba_rms_norm", False),
    )
    return Architecture(
        **_base(c, "falcon_h1", layers, tie_default=False),
        intermediate_size=c.integer("intermediate_size"),
        qk_norm=False,
        norms_per_layer=2,
        layer_kinds=(FULL,) * layers,
        recurrent=mamba,
        recurrent_layers=(True,) * layers,
    )


# -- LFM2 (short convolutions + attention) --------------------------------------------------


def lfm2(config: Mapping[str, Any], where: str) -> Architecture:
    """modeling_lfm2.py / modeling_lfm2_moe.py: gated short-convolution layers and attention
    layers (with per-head q/k norms), a SwiGLU MLP or MoE in every layer."""
    c = _Config(config, where=where, defaults={})
    layers = c.integer("num_hidden_layers")
    if c.raw.get("layer_types") is not None:
        kinds = _types(c, "layer_types", layers, {"conv": "conv", "full_attention": "full"})
    else:
        full = set(c.int_list("full_attn_idxs"))
        kinds = ["full" if i in full else "conv" for i in range(layers)]
    hidden = c.integer("hidden_size")
    model_type = str(config["model_type"])
    moe = None
    if model_type == "lfm2_moe":
        dense = c.integer("num_dense_layers", 0, minimum=0)
        moe = MoE(
            num_experts=c.integer("num_experts"),
            experts_per_token=c.integer("num_experts_per_tok"),
            expert_intermediate_size=c.integer("moe_intermediate_size"),
            shared_intermediate_size=0,
            moe_layers=tuple(i >= dense for i in range(layers)),
            score_correction_bias=c.flag("use_expert_bias", True),
        )
    base = _base(c, model_type, layers, tie_default=True)
    base["tie_word_embeddings"] = c.flag("tie_embedding", base["tie_word_embeddings"])
    return Architecture(
        **base,
        intermediate_size=_lfm2_ffn(c),
        qk_norm=True,
        norms_per_layer=2,
        layer_kinds=tuple(FULL if k == "full" else NONE for k in kinds),
        moe=moe,
        recurrent=ShortConv(
            hidden=hidden,
            l_cache=c.integer("conv_L_cache", default=3),
            bias=c.flag("conv_bias", False),
        ),
        recurrent_layers=tuple(k == "conv" for k in kinds),
    )


def _lfm2_ffn(c: _Config) -> int:
    """Lfm2MLP's width: block_ff_dim, two thirds of it when auto-adjusted, times the
    multiplier, rounded up to block_multiple_of."""
    if c.has("intermediate_size") and not c.has("block_ff_dim"):
        size = c.integer("intermediate_size")
    else:
        size = c.integer("block_ff_dim")
    if not c.flag("block_auto_adjust_ff_dim", False):
        return size
    size = int(2 * size / 3)
    multiplier = c.raw.get("block_ffn_dim_multiplier")
    if isinstance(multiplier, int | float) and not isinstance(multiplier, bool):
        size = int(multiplier * size)
    multiple = c.integer("block_multiple_of", default=256)
    return multiple * ceil(size / multiple)


# -- Qwen vision-language wrappers ----------------------------------------------------------


def _qwen_vision(config: Mapping[str, Any], where: str, *, qwen3: bool) -> QwenVision:
    raw = config.get("vision_config")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a multimodal config needs a 'vision_config' object")
    v = _Config(raw, where=f"{where}: vision_config", defaults={}, path=("vision_config",))
    return QwenVision(
        hidden_size=v.integer("hidden_size"),
        intermediate_size=v.integer("intermediate_size"),
        depth=v.integer("depth"),
        patch_size=v.integer("patch_size", default=14),
        temporal_patch_size=v.integer("temporal_patch_size", default=2),
        in_channels=v.integer("in_channels", default=v.integer("in_chans", default=3)),
        merge=v.integer("spatial_merge_size", default=2),
        out_hidden=v.integer("out_hidden_size"),
        gated_mlp=not qwen3,
        layer_norm=qwen3,
        patch_bias=qwen3,
        position_embeddings=v.integer("num_position_embeddings", default=2304) if qwen3 else 0,
        deepstack=len(v.int_list("deepstack_visual_indexes")) if qwen3 else 0,
    )


def _text_config(config: Mapping[str, Any], where: str, text_type: str) -> dict[str, Any]:
    """The language model's config: text_config when present (Qwen3-VL, Qwen3.5), else the top
    level (Qwen2.5-VL files keep the text keys there)."""
    text = config.get("text_config")
    merged = dict(text) if isinstance(text, Mapping) else {k: v for k, v in config.items()}
    merged.pop("vision_config", None)
    if "tie_word_embeddings" in config:
        merged["tie_word_embeddings"] = config["tie_word_embeddings"]
    merged["model_type"] = text_type
    return merged


def _vl(text_type: str, *, qwen3: bool) -> Callable[[Mapping[str, Any], str], Architecture]:
    def read(config: Mapping[str, Any], where: str) -> Architecture:
        from calc.architecture import parse_config

        vision = _qwen_vision(config, where, qwen3=qwen3)
        text = _text_config(config, where, text_type)
        arch = parse_config(text, where=f"{where}: text_config")
        return _with_vision(arch, vision, str(config["model_type"]))

    return read


def _with_vision(arch: Architecture, vision: QwenVision, model_type: str) -> Architecture:
    return replace(arch, vision=vision, model_type=model_type)


PARSERS: dict[str, Callable[[Mapping[str, Any], str], Architecture]] = {
    "qwen3_next": qwen3_next,
    "qwen3_5_text": qwen3_next,
    "qwen3_5_moe_text": qwen3_next,
    "qwen3_5": _vl("qwen3_5_text", qwen3=True),
    "qwen3_5_moe": _vl("qwen3_5_moe_text", qwen3=True),
    "qwen3_vl": _vl("qwen3", qwen3=True),
    "qwen3_vl_moe": _vl("qwen3_moe", qwen3=True),
    "qwen2_5_vl": _vl("qwen2", qwen3=False),
    "nemotron_h": nemotron_h,
    "granitemoehybrid": granitemoehybrid,
    "falcon_h1": falcon_h1,
    "lfm2": lfm2,
    "lfm2_moe": lfm2,
}
