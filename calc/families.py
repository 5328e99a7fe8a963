"""Readers for the 2025-26 model types whose layers are not all the standard decoder's: hybrid
models that mix attention with a recurrent mixer (Mamba-2, gated delta rule, short
convolution), and the Qwen vision-language wrappers.

Each reader follows the ``transformers`` modeling file it names (v5.24.0) for which tensors a
layer holds; the recurrent state they keep is sized by the mixer classes in
:mod:`calc.architecture`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from math import ceil
from typing import Any

from calc._errors import ConfigError
from calc.architecture import (
    FULL,
    NONE,
    SLIDING,
    Architecture,
    GatedDeltaNet,
    GemmaLayers,
    Mamba2,
    MoE,
    OpaqueTower,
    QwenVision,
    ShortConv,
    _Config,
    _qwen_moe,
)
from calc.records import replace

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
        # Qwen3NextRMSNorm: ``output * (1.0 + self.weight.float())``, in fp32
        norm_weight_fp32=True,
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
        # NemotronHRMSNorm: ``(self.weight.to(torch.float32) * hidden_states)``, in fp32
        norm_weight_fp32=True,
        layer_kinds=tuple(FULL if b == "attention" else NONE for b in blocks),
        moe=moe,
        recurrent=mamba,
        recurrent_layers=tuple(b == "mamba" for b in blocks),
        ffn=tuple(ffn.get(b, "none") for b in blocks),
        ffn_gated=False,
    )


def _mamba_keys(c: _Config, d_inner: int, heads: int, *, gated_norm: bool = True) -> Mamba2:
    """The Mamba-2 mixer as Granite 4.0-H's and Falcon-H1's mamba_* keys describe it."""
    return Mamba2(
        d_inner=d_inner,
        heads=heads,
        groups=c.integer("mamba_n_groups", default=1),
        d_state=c.integer("mamba_d_state", default=256),
        d_conv=c.integer("mamba_d_conv", default=4),
        conv_bias=c.flag("mamba_conv_bias", True),
        proj_bias=c.flag("mamba_proj_bias", False),
        gated_norm=gated_norm,
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
        recurrent = _mamba_keys(c, d_inner, heads)
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
    mamba = _mamba_keys(c, d_inner, heads, gated_norm=c.flag("mamba_rms_norm", False))
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
        if not 0 < multiplier <= 64:  # NaN and infinity fail this too
            raise c.error(
                "block_ffn_dim_multiplier",
                f"'block_ffn_dim_multiplier' must be above 0 and at most 64, got {multiplier!r}",
            )
        size = max(1, int(multiplier * size))
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


# -- Gemma 3n and Gemma 4 ----------------------------------------------------------------------

# timm's mobilenetv5_300m_enc, Gemma 3n's vision encoder (vision_config "architecture"):
# 294,126,912 parameters, counted by instantiating it with timm (the research notes)
MOBILENETV5_300M = 294_126_912


def gemma3n(config: Mapping[str, Any], where: str) -> Architecture:
    """modeling_gemma3n.py: Gemma 3's layer plus AltUp, LAuReL and per-layer embeddings; the
    last num_kv_shared_layers layers reuse earlier layers' KV cache."""
    c, _ = _text(config, where)
    arch = _gemma_text(c, "gemma3n")
    g = GemmaLayers(
        ple_dim=c.integer("hidden_size_per_layer_input"),
        ple_vocab=c.integer("vocab_size_per_layer_input", default=arch.vocab_size),
        altup_inputs=c.integer("altup_num_inputs", default=4),
        laurel_rank=c.integer("laurel_rank", default=64),
    )
    vision = None
    if isinstance(config.get("vision_config"), Mapping):
        v = _Config(config["vision_config"], where=where, defaults={}, path=("vision_config",))
        vh, vocab = v.integer("hidden_size", default=2048), v.integer("vocab_size", default=128)
        tower = MOBILENETV5_300M + vocab * vh + 2 * vh + arch.hidden_size * vh
        tower += _gemma3n_audio(config, arch.hidden_size)
        vision = OpaqueTower(tower, vh, vh, image_size=768, patch_size=16)
    return replace(arch, gemma=g, vision=vision)


def _gemma3n_audio(config: Mapping[str, Any], hidden: int) -> int:
    """Gemma 3n's USM conformer and its embedder (Gemma3nAudioEncoder)."""
    raw = config.get("audio_config")
    if not isinstance(raw, Mapping):
        return 0
    a = _Config(raw, where="audio_config", defaults={}, path=("audio_config",))
    h, layers = a.integer("hidden_size", default=1536), a.integer("conf_num_hidden_layers", 12)
    heads, kernel = a.integer("conf_num_attention_heads", 8), a.integer("conf_conv_kernel_size", 5)
    c0, c1 = (raw.get("sscp_conv_channel_size") or [128, 32])[:2]
    features, vocab = a.integer("input_feat_size", default=128), a.integer("vocab_size", 128)
    subsample = c0 * 9 + c0 + c1 * c0 * 9 + c1 + h * c1 * (features // 4)
    feed_forward = 2 * h + 2 * h * 4 * h
    attention = h + h // heads + 5 * h * h + h
    conv = h + 2 * h * h + h * kernel + h + h * h
    layer = 2 * feed_forward + attention + conv + h
    return int(subsample + layers * layer + vocab * h + 2 * h + hidden * h)


def gemma4(config: Mapping[str, Any], where: str) -> Architecture:
    """modeling_gemma4.py: global layers with their own head size (global_head_dim) and KV
    heads, K used as V where attention_k_eq_v, per-layer embeddings on the small models, KV
    sharing, double-wide MLPs on shared layers, and a MoE beside the dense MLP (26B-A4B)."""
    c, _ = _text(config, where)
    arch = _gemma_text(c, "gemma4")
    layers = arch.num_layers
    shared_from = arch.kv_layers if arch.kv_layers is not None else layers
    wide = c.flag("use_double_wide_mlp", False)
    sizes = tuple(
        arch.intermediate_size * (2 if wide and i >= shared_from else 1) for i in range(layers)
    )
    moe = None
    if c.flag("enable_moe_block", False):
        moe = MoE(
            num_experts=c.integer("num_experts"),
            experts_per_token=c.integer("top_k_experts"),
            expert_intermediate_size=c.integer("moe_intermediate_size"),
            shared_intermediate_size=arch.intermediate_size,  # the dense MLP runs beside them
            moe_layers=(True,) * layers,
        )
    k_eq_v = c.flag("attention_k_eq_v", False)
    g = GemmaLayers(
        ple_dim=c.integer("hidden_size_per_layer_input", 0, minimum=0),
        ple_vocab=c.integer("vocab_size_per_layer_input", default=arch.vocab_size),
        layer_scalar=True,
        moe_router_scales=moe is not None,
        k_eq_v=k_eq_v,
    )
    global_kv = c.integer("num_global_key_value_heads", default=arch.num_kv_heads)
    return replace(
        arch,
        gemma=g,
        moe=moe,
        intermediate_sizes=sizes,
        full_head_dim=c.integer("global_head_dim", default=arch.head_dim),
        full_kv_heads=global_kv if k_eq_v else arch.num_kv_heads,
        vision=_gemma4_towers(config, arch.hidden_size),
    )


def _gemma4_towers(config: Mapping[str, Any], hidden: int) -> OpaqueTower | None:
    """Gemma 4's vision encoder and audio conformer with their embedders (modeling_gemma4.py),
    counted as one tower."""
    raw = config.get("vision_config")
    if not isinstance(raw, Mapping):
        return None
    v = _Config(raw, where="vision_config", defaults={}, path=("vision_config",))
    h, layers, inner = (
        v.integer("hidden_size"),
        v.integer("num_hidden_layers"),
        v.integer("intermediate_size"),
    )
    heads = v.integer("num_attention_heads")
    kv_heads, head = v.integer("num_key_value_heads", default=heads), v.integer("head_dim", 64)
    patch, positions = v.integer("patch_size", 16), v.integer("position_embedding_size", 10240)
    layer = h * heads * head * 2 + h * kv_heads * head * 2 + 2 * head + 3 * h * inner + 4 * h
    if v.flag("use_clipped_linears", False):
        layer += 7 * 4  # each clipped linear keeps its input and output bounds
    tower = 2 * positions * h + h * 3 * patch * patch + layers * layer + hidden * h
    audio = config.get("audio_config")
    if isinstance(audio, Mapping):
        a = _Config(audio, where="audio_config", defaults={}, path=("audio_config",))
        ha, la = a.integer("hidden_size", 1024), a.integer("num_hidden_layers", 12)
        heads_a, kernel = a.integer("num_attention_heads", 8), a.integer("conv_kernel_size", 5)
        c0, c1 = (audio.get("subsampling_conv_channels") or [128, 32])[:2]
        out = a.integer("output_proj_dims", default=1536)
        per = 2 * (2 * ha + 8 * ha * ha) + ha // heads_a + 5 * ha * ha
        per += 3 * ha * ha + ha * kernel + 2 * ha + 3 * ha
        if a.flag("use_clipped_linears", True):
            per += 10 * 4
        tower += c0 * 9 + c0 + c1 * c0 * 9 + c1 + ha * c1 * 32 + la * per + out * ha + out
        tower += hidden * out
    return OpaqueTower(tower, h, inner, image_size=patch * 48, patch_size=patch)


def _text(config: Mapping[str, Any], where: str) -> tuple[_Config, Mapping[str, Any]]:
    text = config.get("text_config")
    if isinstance(text, Mapping):
        merged = dict(text)
        if "tie_word_embeddings" in config:
            merged.setdefault("tie_word_embeddings", config["tie_word_embeddings"])
        return _Config(
            merged, where=f"{where}: text_config", defaults={}, path=("text_config",)
        ), merged
    return _Config(config, where=where, defaults={}), config


def _gemma_text(c: _Config, model_type: str) -> Architecture:
    """The Gemma 3 layer both build on: four norms, per-head q/k norms, sliding layers."""
    layers = c.integer("num_hidden_layers")
    kinds = _types(c, "layer_types", layers, {"sliding_attention": SLIDING, "full_attention": FULL})
    sizes = c.raw.get("intermediate_size")
    per_layer: tuple[int, ...] = ()
    if isinstance(sizes, list):
        if len(sizes) != layers or not all(isinstance(x, int) for x in sizes):
            raise c.error("intermediate_size", f"'intermediate_size' must list {layers} sizes")
        per_layer = tuple(sizes)
    shared = c.integer("num_kv_shared_layers", 0, minimum=0)
    base = _base(c, model_type, layers, tie_default=True)
    base["sliding_window"] = c.optional_int("sliding_window")
    return Architecture(
        **base,
        intermediate_size=max(per_layer) if per_layer else c.integer("intermediate_size"),
        intermediate_sizes=per_layer,
        qk_norm=True,
        norms_per_layer=4,
        norm_weight_fp32=True,  # Gemma's norm: ``output * (1.0 + self.weight.float())``
        layer_kinds=tuple(kinds),
        kv_layers=layers - shared if shared else None,
    )


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
    "gemma3n": gemma3n,
    "gemma3n_text": gemma3n,
    "gemma4": gemma4,
    "gemma4_text": gemma4,
}
