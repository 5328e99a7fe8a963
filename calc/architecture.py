"""Turn a Hugging Face ``config.json`` (as a dict) into the architecture facts memory depends on.

Each supported ``model_type`` maps to a :class:`Family` that records what the modelling code in
``transformers`` does but the config does not say (biases, extra norms, default tying, which
layers use a sliding window). Those facts cite the upstream file they come from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from calc._errors import ConfigError
from calc.checkpoint import Checkpoint, read_checkpoint
from calc.records import record, replace

TRANSFORMERS = "https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/models"
TRANSFORMERS_5 = "https://github.com/huggingface/transformers/blob/v5.24.0/src/transformers/models"

FULL = "full"
SLIDING = "sliding"
NONE = "none"  # a layer without attention (a recurrent mixer, or an MLP on its own)


@record
class Family:
    """What the modelling code of one ``model_type`` adds to its config."""

    source: str
    tie_default: bool
    # "never", "always" (q, k and v carry a bias, o does not), "attention_bias" (the config
    # key decides for q, k, v and o together), "attention_out_bias" (attention_bias for q, k
    # and v, attention_out_bias for o), "qkv" (attention_bias for q, k and v; o never: GLM)
    attention_bias: str = "attention_bias"
    qk_norm: bool = False
    # OLMo 2 and 3 normalise the whole q and k projections (one weight per channel of all
    # heads) where Qwen3 and Gemma 3 normalise each head (head_dim weights)
    qk_norm_whole: bool = False
    norms_per_layer: int = 2
    # The RMSNorm multiplies by its weight in fp32 (Gemma: ``output * (1.0 + self.weight.float())``;
    # OLMo 2/3 and gpt-oss: ``(self.weight * hidden_states).to(input_dtype)``), where Llama's
    # casts back to 16 bits first (``self.weight * hidden_states.to(input_dtype)``): a trained
    # norm weight keeps the fp32 normalised input for its gradient, not a 16-bit one.
    norm_weight_fp32: bool = False
    # One qkv_proj whose output q, k and v are slices of (Phi-3: ``query_states =
    # qkv[..., :query_pos]``): v reaches the attention kernel as a view and keeps the whole
    # output alive until the backward pass.
    fused_qkv_proj: bool = False
    # how layers get a sliding window when the config has no explicit "layer_types" list
    sliding: str = "none"  # none | all | qwen | every_other | pattern
    moe: str = "none"  # none | mixtral | qwen | deepseek | gpt_oss
    mla: bool = False
    defaults: tuple[tuple[str, Any], ...] = ()
    qk_norm_key: str = ""  # a config flag that turns the per-head q/k norms on (GLM: use_qk_norm)
    # the router's score-correction bias: None = as topk_method says (DeepSeek's "noaux_tc")
    score_bias: bool | None = None
    # next-token-prediction layers (num_nextn_predict_layers) carry their own copies of the
    # embeddings and output head (DeepSeek-V3, GLM-4.5 checkpoints)
    mtp_embeddings: bool = False


FAMILIES: dict[str, Family] = {
    "llama": Family(f"{TRANSFORMERS}/llama/modeling_llama.py", tie_default=False),
    "mistral": Family(
        f"{TRANSFORMERS}/mistral/modeling_mistral.py",
        tie_default=False,
        attention_bias="never",
        sliding="all",
    ),
    "mixtral": Family(
        f"{TRANSFORMERS}/mixtral/modeling_mixtral.py",
        tie_default=False,
        attention_bias="never",
        sliding="all",
        moe="mixtral",
    ),
    "qwen2": Family(
        f"{TRANSFORMERS}/qwen2/modeling_qwen2.py",
        tie_default=False,
        attention_bias="always",
        sliding="qwen",
    ),
    "qwen2_moe": Family(
        f"{TRANSFORMERS}/qwen2_moe/modeling_qwen2_moe.py",
        tie_default=False,
        attention_bias="always",
        sliding="qwen",
        moe="qwen",
    ),
    "qwen3": Family(
        f"{TRANSFORMERS}/qwen3/modeling_qwen3.py", tie_default=False, qk_norm=True, sliding="qwen"
    ),
    "qwen3_moe": Family(
        f"{TRANSFORMERS}/qwen3_moe/modeling_qwen3_moe.py",
        tie_default=False,
        qk_norm=True,
        sliding="qwen",
        moe="qwen",
    ),
    "phi3": Family(
        f"{TRANSFORMERS}/phi3/modeling_phi3.py",
        tie_default=False,
        attention_bias="never",
        sliding="all",
        fused_qkv_proj=True,
    ),
    # SeedOssAttention: q/k/v biases from attention_bias, o's from attention_out_bias
    "seed_oss": Family(
        f"{TRANSFORMERS}/seed_oss/modeling_seed_oss.py",
        tie_default=False,
        attention_bias="attention_out_bias",
    ),
    # Olmo2Attention: "self.q_norm = Olmo2RMSNorm(config.num_attention_heads * self.head_dim"
    # (the whole projection); post-attention and post-feedforward norms instead of pre-norms
    "olmo2": Family(
        f"{TRANSFORMERS}/olmo2/modeling_olmo2.py",
        tie_default=False,
        qk_norm=True,
        qk_norm_whole=True,
        norm_weight_fp32=True,
    ),
    # Olmo 3: OLMo 2's layer with sliding-window layers listed in layer_types (3 of every 4)
    "olmo3": Family(
        f"{TRANSFORMERS}/olmo3/modeling_olmo3.py",
        tie_default=False,
        qk_norm=True,
        qk_norm_whole=True,
        norm_weight_fp32=True,
    ),
    # SmolLM3: Llama's layer, tied embeddings; its NoPE layers change no memory
    "smollm3": Family(f"{TRANSFORMERS}/smollm3/modeling_smollm3.py", tie_default=True),
    "gemma": Family(
        f"{TRANSFORMERS}/gemma/modeling_gemma.py", tie_default=True, norm_weight_fp32=True
    ),
    "gemma2": Family(
        f"{TRANSFORMERS}/gemma2/modeling_gemma2.py",
        tie_default=True,
        norms_per_layer=4,
        norm_weight_fp32=True,
        sliding="every_other",
    ),
    "gemma3_text": Family(
        f"{TRANSFORMERS}/gemma3/modeling_gemma3.py",
        tie_default=True,
        qk_norm=True,
        norms_per_layer=4,
        norm_weight_fp32=True,
        sliding="pattern",
        # Gemma3TextConfig defaults that published config.json files rely on
        # (transformers/models/gemma3/configuration_gemma3.py)
        defaults=(("vocab_size", 262208), ("sliding_window_pattern", 6)),
    ),
    "deepseek_v2": Family(
        f"{TRANSFORMERS}/deepseek_v2/modeling_deepseek_v2.py",
        tie_default=False,
        attention_bias="never",
        moe="deepseek",
        mla=True,
    ),
    "deepseek_v3": Family(
        f"{TRANSFORMERS}/deepseek_v3/modeling_deepseek_v3.py",
        tie_default=False,
        attention_bias="never",
        moe="deepseek",
        mla=True,
    ),
    # Glm4MoeAttention: q/k/v biases from attention_bias, o_proj without; per-head q/k norms
    # when use_qk_norm; DeepSeek-style MoE whose router always has e_score_correction_bias
    "glm4_moe": Family(
        f"{TRANSFORMERS_5}/glm4_moe/modeling_glm4_moe.py",
        tie_default=False,
        attention_bias="qkv",
        qk_norm_key="use_qk_norm",
        moe="deepseek",
        score_bias=True,
        mtp_embeddings=True,
    ),
    # GLM-5: DeepSeek-V3.2's layer (MLA, the sparse-attention indexer, DeepSeek MoE) with GLM's
    # sizes; its MTP layer has no embedding copies
    "glm_moe_dsa": Family(
        f"{TRANSFORMERS_5}/glm_moe_dsa/modeling_glm_moe_dsa.py",
        tie_default=False,
        attention_bias="never",
        moe="deepseek",
        mla=True,
        score_bias=True,
    ),
    "deepseek_v32": Family(
        f"{TRANSFORMERS_5}/deepseek_v32/modeling_deepseek_v32.py",
        tie_default=False,
        attention_bias="never",
        moe="deepseek",
        mla=True,
        mtp_embeddings=True,
    ),
    # Kimi K2 ships DeepSeek-V3's architecture under its own model_type
    "kimi_k2": Family(
        f"{TRANSFORMERS}/deepseek_v3/modeling_deepseek_v3.py",
        tie_default=False,
        attention_bias="never",
        moe="deepseek",
        mla=True,
        mtp_embeddings=True,
    ),
    # MiniMax-M2: qk_norm_type "per_layer" normalises the whole q and k projections; 256
    # routed experts (w1, w3, w2) with a score-correction bias, no shared expert
    "minimax_m2": Family(
        "https://huggingface.co/MiniMaxAI/MiniMax-M2/blob/main/modeling_minimax_m2.py",
        tie_default=False,
        attention_bias="never",
        qk_norm_key="use_qk_norm",
        qk_norm_whole=True,
        moe="mixtral",
        score_bias=True,
    ),
    # Ernie4_5_MoeDecoderLayer: MoE from moe_layer_start_index every moe_layer_interval
    # layers, shared experts, an fp32 router with moe_statics.e_score_correction_bias
    "ernie4_5_moe": Family(
        f"{TRANSFORMERS_5}/ernie4_5_moe/modeling_ernie4_5_moe.py",
        tie_default=True,
        attention_bias="use_bias",
        moe="ernie",
        score_bias=True,
    ),
    # Llama 4: MoE every interleave_moe_layer_step-th layer (a routed expert and a shared
    # one), dense layers of intermediate_size_mlp; RoPE layers attend in chunks of
    # attention_chunk_size, every fourth (no_rope_layers 0) globally
    "llama4_text": Family(
        f"{TRANSFORMERS_5}/llama4/modeling_llama4.py",
        tie_default=False,
        sliding="llama4",
        moe="llama4",
    ),
    # Ministral 3 / Mistral Small 3.x text: Mistral's layer
    "ministral3": Family(
        f"{TRANSFORMERS_5}/ministral3/modeling_ministral3.py",
        tie_default=False,
        attention_bias="never",
        sliding="all",
    ),
    "gpt_oss": Family(
        f"{TRANSFORMERS}/gpt_oss/modeling_gpt_oss.py",
        tie_default=False,
        sliding="every_other",
        moe="gpt_oss",
        defaults=(("attention_bias", True),),
        norm_weight_fp32=True,
    ),
}

# The config.json keys the estimator reads (or that say what it needs to know, such as the
# dtype); the catalogue keeps these and drops the rest (tokeniser ids, rope scaling ...).
MEMORY_KEYS = frozenset(
    {
        "architectures", "model_type", "torch_dtype", "hidden_size", "intermediate_size",
        "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
        "vocab_size", "max_position_embeddings", "tie_word_embeddings", "attention_bias",
        "mlp_bias", "sliding_window", "use_sliding_window", "max_window_layers", "layer_types",
        "sliding_window_pattern", "num_local_experts", "num_experts", "n_routed_experts",
        "num_experts_per_tok", "experts_per_token", "n_shared_experts", "moe_intermediate_size",
        "shared_expert_intermediate_size", "decoder_sparse_step", "mlp_only_layers",
        "first_k_dense_replace", "moe_layer_freq", "topk_method", "q_lora_rank",
        "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
        "num_nextn_predict_layers", "text_config", "vision_config", "mm_tokens_per_image",
        "patch_size", "image_size", "num_channels", "dtype", "quantization_config",
        # attention variants and MoE layouts of 2025-26 families
        "attention_out_bias", "use_qk_norm", "use_bias", "index_n_heads", "index_head_dim",
        "moe_num_experts", "moe_k", "moe_layer_start_index", "moe_layer_end_index",
        "moe_layer_interval", "moe_num_shared_experts", "interleave_moe_layer_step",
        "intermediate_size_mlp", "attention_chunk_size", "no_rope_layers", "moe_layers",
        "shared_intermediate_size", "num_dense_layers", "use_expert_bias",
        "moe_shared_expert_intermediate_size", "moe_latent_size",
        # hybrid models: linear attention, Mamba-2, short convolutions, MTP layers
        "full_attention_interval", "attn_output_gate", "linear_num_key_heads",
        "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim",
        "linear_conv_kernel_dim", "mamba_ssm_dtype", "mtp_num_hidden_layers",
        "hybrid_override_pattern", "layers_block_type", "mamba_num_heads", "mamba_head_dim",
        "n_groups", "ssm_state_size", "conv_kernel", "use_conv_bias", "mamba_ssm_cache_dtype",
        "mamba_n_heads", "mamba_d_head", "mamba_d_state", "mamba_n_groups", "mamba_d_conv",
        "mamba_expand", "mamba_conv_bias", "mamba_proj_bias", "mamba_d_ssm", "mamba_rms_norm",
        "projectors_bias", "block_ff_dim", "block_auto_adjust_ff_dim", "block_ffn_dim_multiplier",
        "block_multiple_of", "conv_L_cache", "conv_bias", "full_attn_idxs", "tie_embedding",
        # vision towers
        "depth", "out_hidden_size", "spatial_merge_size", "temporal_patch_size", "in_channels",
        "in_chans", "num_position_embeddings", "deepstack_visual_indexes", "vision_output_dim",
        "projector_input_dim", "projector_output_dim", "multi_modal_projector_bias",
        "multimodal_projector_bias",
        # Gemma 3n and Gemma 4
        "hidden_size_per_layer_input", "vocab_size_per_layer_input", "altup_num_inputs",
        "laurel_rank", "num_kv_shared_layers", "global_head_dim", "num_global_key_value_heads",
        "attention_k_eq_v", "use_double_wide_mlp", "enable_moe_block", "top_k_experts",
        "audio_config", "conf_num_hidden_layers", "conf_num_attention_heads",
        "conf_conv_kernel_size", "sscp_conv_channel_size", "input_feat_size",
        "subsampling_conv_channels", "conv_kernel_size", "output_proj_dims", "use_clipped_linears",
        "position_embedding_size",
    }
)  # fmt: skip

# Kept whole: every key of a quantization_config says how the files are stored.
VERBATIM_KEYS = frozenset({"quantization_config"})


def memory_keys(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a config.json that memory depends on, nested configs included."""
    kept: dict[str, Any] = {}
    for key, value in config.items():
        if key not in MEMORY_KEYS:
            continue
        nested = isinstance(value, Mapping) and key not in VERBATIM_KEYS
        kept[key] = memory_keys(value) if nested else value
    return kept


# Multimodal wrappers whose language model sits under "text_config": the model_type to read
# it as (None: the text_config's own), and the vision tower's reader.
WRAPPERS: dict[str, tuple[str | None, str]] = {
    "gemma3": ("gemma3_text", "siglip"),
    "llama4": ("llama4_text", "llama4"),
    "mistral3": (None, "pixtral"),
    "kimi_k25": ("kimi_k2", "none"),
}


@record
class MoE:
    num_experts: int
    experts_per_token: int
    expert_intermediate_size: int
    shared_intermediate_size: int  # 0 when the model has no shared expert
    moe_layers: tuple[bool, ...]  # per layer: does it use the routed experts?
    shared_expert_gate: bool = False  # Qwen2-MoE gates its shared expert with one scalar
    router_bias: bool = False
    expert_bias: bool = False  # gpt-oss experts carry biases
    score_correction_bias: bool = False  # DeepSeek-V3's e_score_correction_bias
    latent_size: int = 0  # Nemotron 3 Super: experts work in a smaller latent space


@record
class MLA:
    """DeepSeek's multi-head latent attention (DeepSeek-V2 paper, section 2.1)."""

    q_lora_rank: int | None
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    # DeepSeek-V3.2's sparse-attention indexer (index_n_heads, index_head_dim): it caches one
    # key of index_head_dim values per token and layer beside the latent
    index_heads: int = 0
    index_head_dim: int = 0


@record
class Mamba2:
    """A Mamba-2 mixer (Nemotron-H, Granite 4.0-H, Falcon-H1): in_proj, a causal conv over
    x, B and C, per-head A, D and dt bias, a gated norm and out_proj."""

    d_inner: int  # heads x head_dim
    heads: int
    groups: int
    d_state: int
    d_conv: int
    conv_bias: bool = True
    proj_bias: bool = False
    gated_norm: bool = True
    state_float32: bool = False  # the config asks for a float32 SSM state (vLLM honours it)

    @property
    def conv_channels(self) -> int:
        return self.d_inner + 2 * self.groups * self.d_state

    @property
    def conv_values(self) -> int:
        """Values of conv state one sequence keeps per layer: the last d_conv - 1 inputs
        (llama.cpp src/llama-hparams.cpp n_embd_r)."""
        return (self.d_conv - 1) * self.conv_channels

    @property
    def state_values(self) -> int:
        """Values of SSM state per sequence and layer (llama.cpp n_embd_s: d_state x d_inner)."""
        return self.d_state * self.d_inner


@record
class GatedDeltaNet:
    """Qwen3-Next's and Qwen3.5's linear attention (modeling_qwen3_next.py
    Qwen3NextGatedDeltaNet): a conv over q, k and v, and one head_k x head_v state per value
    head."""

    key_heads: int
    value_heads: int
    key_head_dim: int
    value_head_dim: int
    d_conv: int
    state_float32: bool = False  # Qwen3.5's mamba_ssm_dtype "float32"
    split_projections: bool = False  # Qwen3.5: in_proj_qkv, _z, _b, _a instead of _qkvz, _ba

    @property
    def key_dim(self) -> int:
        return self.key_heads * self.key_head_dim

    @property
    def value_dim(self) -> int:
        return self.value_heads * self.value_head_dim

    @property
    def conv_channels(self) -> int:
        return 2 * self.key_dim + self.value_dim

    @property
    def conv_values(self) -> int:
        return (self.d_conv - 1) * self.conv_channels

    @property
    def state_values(self) -> int:
        return self.key_head_dim * self.value_head_dim * self.value_heads


@record
class ShortConv:
    """LFM2's gated short convolution: in_proj to 3 x hidden, a depthwise conv of L_cache taps,
    out_proj; it keeps the last L_cache - 1 inputs and no other state."""

    hidden: int
    l_cache: int
    bias: bool = False
    state_float32: bool = False  # no SSM state: only the conv

    @property
    def conv_channels(self) -> int:
        return self.hidden

    @property
    def d_conv(self) -> int:
        return self.l_cache

    @property
    def conv_values(self) -> int:
        return (self.l_cache - 1) * self.hidden

    @property
    def state_values(self) -> int:
        return 0


Recurrent = Mamba2 | GatedDeltaNet | ShortConv


@record
class QwenVision:
    """The Qwen2.5-VL / Qwen3-VL / Qwen3.5 vision encoder and its patch merger
    (modeling_qwen2_5_vl.py, modeling_qwen3_vl.py)."""

    hidden_size: int
    intermediate_size: int
    depth: int
    patch_size: int
    temporal_patch_size: int
    in_channels: int
    merge: int  # spatial_merge_size: merge x merge patches become one token
    out_hidden: int
    gated_mlp: bool  # Qwen2.5-VL: gate/up/down with SiLU; Qwen3: fc1/fc2
    layer_norm: bool  # Qwen3: LayerNorm (weight and bias); Qwen2.5-VL: RMSNorm (weight)
    patch_bias: bool
    position_embeddings: int  # Qwen3: a learned table of this many rows; Qwen2.5-VL: none
    deepstack: int  # Qwen3-VL: extra mergers fed from these many intermediate blocks


@record
class ViT:
    """A plain vision transformer and its projector into the language model: Llama 4's
    (modeling_llama4.py Llama4VisionModel, vision adapter, projector) and Pixtral's
    (modeling_pixtral.py, Mistral 3's patch merger and projector)."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    patch_inputs: int  # channels x patch x patch
    patch_bias: bool
    positions: int  # rows of a learned position table (0: 2-D RoPE)
    class_token: bool
    layer_norm: bool  # LayerNorm with bias (Llama 4) or RMSNorm (Pixtral)
    linear_bias: bool
    gated_mlp: bool
    pre_norm: bool
    post_norm: bool
    image_size: int  # the side of the image the encoder is sized for
    patch_size: int
    # after the tower: norms (their widths) and linear layers (in, out, bias)
    projector_norms: tuple[int, ...]
    projector: tuple[tuple[int, int, bool], ...]


@record
class OpaqueTower:
    """An encoder counted as a whole (Gemma 3n's MobileNetV5 and audio conformer, Gemma 4's
    vision and audio encoders): its parameters, and the widths its image buffer scales with."""

    parameters: int
    hidden_size: int
    intermediate_size: int
    image_size: int
    patch_size: int


@record
class GemmaLayers:
    """What Gemma 3n's and Gemma 4's layers add to Gemma 3's (modeling_gemma3n.py,
    modeling_gemma4.py): per-layer embeddings (PLE), AltUp and LAuReL (3n), a layer scalar and
    the MoE router's scales (4)."""

    ple_dim: int  # hidden_size_per_layer_input; 0: none
    ple_vocab: int
    altup_inputs: int = 0
    laurel_rank: int = 0
    layer_scalar: bool = False
    moe_router_scales: bool = False
    k_eq_v: bool = False  # Gemma 4's global layers use K as V: no v_proj


@record
class VisionTower:
    """A SigLIP-style ViT encoder plus the projector into the language model."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    patch_size: int
    image_size: int
    num_channels: int
    projector_out: int


@record
class Architecture:
    model_type: str
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    qkv_bias: bool
    o_bias: bool
    mlp_bias: bool
    qk_norm: bool
    norms_per_layer: int
    layer_kinds: tuple[str, ...]  # FULL or SLIDING, one per layer
    sliding_window: int | None
    attention_sinks: bool
    max_position_embeddings: int | None
    moe: MoE | None = None
    mla: MLA | None = None
    vision: VisionTower | QwenVision | ViT | OpaqueTower | None = None
    qk_norm_whole: bool = False
    norm_weight_fp32: bool = False  # see Family.norm_weight_fp32
    fused_qkv_proj: bool = False  # see Family.fused_qkv_proj
    # Hybrid models: the recurrent mixer and, per layer, whether it keeps a recurrent state
    recurrent: Recurrent | None = None
    recurrent_layers: tuple[bool, ...] = ()
    # Per layer: "dense", "moe" or "none" (Nemotron-H's mixer-only blocks); empty: every layer
    # has a feed-forward, routed where moe.moe_layers says
    ffn: tuple[str, ...] = ()
    ffn_gated: bool = True  # False: up and down only (Nemotron-H's squared-ReLU MLPs)
    attention_gate: bool = False  # Qwen3-Next: q_proj also produces a per-channel output gate
    mtp_layers: int = 0  # next-token-prediction layers shipped with the checkpoint
    mtp_embeddings: bool = False  # each MTP layer has its own embeddings and output head
    # Gemma 3n/4: layers from this index on reuse an earlier layer's KV cache (none of their own)
    kv_layers: int | None = None
    # Gemma 4: full-attention layers with their own head size and KV heads
    full_head_dim: int | None = None
    full_kv_heads: int | None = None
    intermediate_sizes: tuple[int, ...] = ()  # per layer, where they differ (Gemma 3n/4)
    gemma: GemmaLayers | None = None
    assumed: str = ""  # what was assumed for a model_type the estimator does not know
    checkpoint: Checkpoint | None = None  # the format the published files are stored in
    # A GGUF file's own tensor table: (name, shape in ggml order, catalogue storage id) rows,
    # which replace the inventory the config would give
    file_tensors: tuple[tuple[str, tuple[int, ...], str], ...] | None = None

    @property
    def gqa_groups(self) -> int:
        return self.num_attention_heads // self.num_kv_heads

    def attention_shape(self, layer: int) -> tuple[int, int]:
        """(KV heads, head size) of one layer: Gemma 4's global layers differ."""
        if self.layer_kinds[layer] == FULL and self.full_head_dim:
            return self.full_kv_heads or self.num_kv_heads, self.full_head_dim
        return self.num_kv_heads, self.head_dim

    def keeps_kv(self, layer: int) -> bool:
        """Whether a layer has a KV cache of its own (attention, not shared)."""
        if self.layer_kinds[layer] == NONE:
            return False
        return self.kv_layers is None or layer < self.kv_layers

    def is_recurrent(self, layer: int) -> bool:
        return bool(self.recurrent_layers) and self.recurrent_layers[layer]

    def ffn_kind(self, layer: int) -> str:
        if self.ffn:
            return self.ffn[layer]
        return "moe" if self.moe is not None and self.moe.moe_layers[layer] else "dense"


class _Config:
    """Typed access to one config dict, with errors that name the key and the value."""

    def __init__(
        self,
        raw: Mapping[str, Any],
        *,
        where: str,
        defaults: Mapping[str, Any],
        path: tuple[str, ...] = (),
    ):
        self.raw = raw
        self.where = where
        self.defaults = defaults
        self.path = path

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where}: {message}", path=(*self.path, key))

    def _get(self, key: str) -> Any:
        if key in self.raw and self.raw[key] is not None:
            return self.raw[key]
        return self.defaults.get(key)

    def has(self, key: str) -> bool:
        return self._get(key) is not None

    def integer(self, key: str, default: int | None = None, *, minimum: int = 1) -> int:
        value = self._get(key)
        if value is None:
            if default is not None:
                return default
            raise self.error(key, f"missing key {key!r} (a positive integer)")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"{key!r} must be an integer, got {_short(value)}")
        if value < minimum:
            raise self.error(key, f"{key!r} must be at least {minimum}, got {_short(value)}")
        top = CONFIG_MAXIMA.get(key, CONFIG_MAXIMUM)
        if value > top:  # checked before any work: a billion layers would hang the estimate
            raise self.error(key, f"{key!r} must be at most {top:,}, got {_short(value)}")
        return value

    def optional_int(self, key: str) -> int | None:
        return self.integer(key) if self.has(key) else None

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"{key!r} must be true or false, got {value!r}")
        return value

    def int_list(self, key: str) -> list[int]:
        value = self._get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise self.error(key, f"{key!r} must be a list of integers, got {value!r}")
        return value


# Bounds on config.json's sizes, generous beyond any model of 2026 (the largest have 128 layers,
# hidden sizes of 20k, vocabularies of 262k, 384 experts); anything above is a typo or hostile.
CONFIG_MAXIMA = {
    "num_hidden_layers": 4096,
    "num_layers": 4096,
    "n_layer": 4096,
    "hidden_size": 1 << 20,
    "num_attention_heads": 1 << 14,
    "num_key_value_heads": 1 << 14,
    "head_dim": 1 << 16,
    "vocab_size": 1 << 24,
    "num_experts": 1 << 16,
    "n_routed_experts": 1 << 16,
    "num_local_experts": 1 << 16,
    "max_position_embeddings": 1 << 27,
    "num_experts_per_tok": 1 << 16,
    "num_nextn_predict_layers": 64,  # MTP layers: one to three in every checkpoint of 2026
    "mtp_num_hidden_layers": 64,
}
CONFIG_MAXIMUM = 1 << 32  # any other size: intermediate sizes, ranks, windows


def _short(value: object) -> str:
    """A value for an error message, cut to one readable line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_shape(arch: Architecture, where: str) -> None:
    """What no real model has: heads of no size, more experts per token than experts (KV heads
    that do not divide the heads are refused where they are read)."""
    if arch.num_attention_heads and arch.head_dim < 1:
        raise ConfigError(
            f"{where}: hidden_size ({arch.hidden_size}) is smaller than num_attention_heads "
            f"({arch.num_attention_heads}): each head would have no values; give head_dim",
            path=("hidden_size",),
        )
    moe = arch.moe
    if moe is not None and moe.experts_per_token > moe.num_experts:
        raise ConfigError(
            f"{where}: {moe.experts_per_token} experts per token but only {moe.num_experts} "
            "experts",
            path=("num_experts_per_tok",),
        )


def parse_config(config: Mapping[str, Any], *, where: str = "config.json") -> Architecture:
    """Read the memory-relevant architecture out of a Hugging Face config dict."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"{where}: expected a JSON object, got {type(config).__name__}")
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ConfigError(f'{where}: missing key \'model_type\' (e.g. "llama", "qwen2")')
    checkpoint = read_checkpoint(config, where=where)
    reader = _families().PARSERS.get(model_type)
    known = model_type in FAMILIES or model_type in WRAPPERS
    inner = None if known or reader else _language_model(config)
    arch: Architecture
    if reader is not None:
        arch = reader(config, where)
    elif inner is not None:
        arch = _unknown_wrapper(model_type, inner, where)
    else:
        arch = _decoder(config, model_type, where)
    check_shape(arch, where)
    return replace(arch, checkpoint=checkpoint)


def _language_model(config: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """An unknown multimodal wrapper's language model: its text_config (or one inside a
    component such as Qwen3-Omni's thinker_config), when that names a model_type."""
    if config.get("hidden_size") is not None:
        return None  # the keys are at the top level: read it as it is
    candidates = [("text_config", config.get("text_config"))]
    for key, value in config.items():
        if isinstance(value, Mapping):
            candidates.append((f"{key}.text_config", value.get("text_config")))
    for path, text in candidates:
        if isinstance(text, Mapping) and isinstance(text.get("model_type"), str):
            return path, text
    return None


def _unknown_wrapper(
    model_type: str, found: tuple[str, Mapping[str, Any]], where: str
) -> Architecture:
    """The language model of a multimodal wrapper this estimator does not know."""
    path, text = found
    arch = parse_config(text, where=f"{where}: {path}")
    words = (
        f"model_type {model_type!r} is not modelled: its language model ({path}, a "
        f"{text['model_type']!r}) is estimated; its vision or audio encoders are not counted"
    )
    return replace(arch, assumed="; ".join(w for w in (words, arch.assumed) if w))


# What a config must say for an unknown model_type to be read as a standard decoder.
DECODER_KEYS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size"
)  # fmt: skip


def _generic_family(config: Mapping[str, Any], model_type: str, where: str) -> Family:
    """A Llama-style family for a model_type this estimator does not know, when the config
    describes a standard decoder; the MoE and MLA layouts its keys name are taken as
    Mixtral's, Qwen's or DeepSeek's."""
    missing = [key for key in DECODER_KEYS if config.get(key) is None]
    moe = "none"
    if config.get("n_routed_experts") is not None:
        moe = "deepseek"
    elif config.get("num_experts") is not None and config.get("moe_intermediate_size"):
        moe = "qwen"
    elif config.get("num_local_experts") is not None:
        moe = "mixtral"
    if moe != "none" and "intermediate_size" in missing:
        missing.remove("intermediate_size")
    if missing:
        known = ", ".join(sorted([*FAMILIES, *WRAPPERS, *_families().PARSERS]))
        raise ConfigError(
            f"{where}: unsupported model_type {model_type!r}, and the config is not a standard "
            f"decoder: missing {', '.join(repr(k) for k in missing)}. Supported: {known}"
        )
    return Family(
        source=f"config.json of model_type {model_type!r} (not modelled: a standard decoder)",
        tie_default=False,
        sliding="all" if config.get("use_sliding_window") is not False else "none",
        moe=moe,
        mla=config.get("kv_lora_rank") is not None,
    )


def _family(config: Mapping[str, Any], model_type: str, where: str) -> tuple[Family, str]:
    """The family of ``model_type``, or a standard decoder's with the note saying so."""
    family = FAMILIES.get(model_type)
    if family is not None:
        return family, ""
    family = _generic_family(config, model_type, where)
    return family, _assumed_words(model_type, family, config)


def _assumed_words(model_type: str, family: Family, config: Mapping[str, Any]) -> str:
    """The note that says what a standard-decoder reading assumed."""
    experts = {
        "none": "",
        "mixtral": " of routed experts",
        "qwen": " of Qwen-style experts",
        "deepseek": " of DeepSeek-style experts",
    }[family.moe]
    window = family.sliding == "all" and config.get("sliding_window")
    return (
        f"model_type {model_type!r} is not modelled: read as a standard decoder (q, k, v and o "
        f"projections, a gated MLP{experts}, two norms per layer, biases as attention_bias "
        f"says{', a sliding window on every layer' if window else ''})"
    )


def _families() -> Any:
    """calc.families, whose readers build on this module's (imported late for that reason)."""
    from calc import families

    return families


def _decoder(config: Mapping[str, Any], model_type: str, where: str) -> Architecture:
    """A standard decoder: every layer attention (full or sliding) and a gated MLP or MoE."""
    tie_source = config
    vision = None
    nested: tuple[str, ...] = ()
    assumed = ""
    if model_type in WRAPPERS:
        if WRAPPERS[model_type][1] == "none":
            assumed = f"{model_type!r}: the language model only; its vision tower is not counted"
        vision, config, where = _unwrap(config, model_type, where)
        model_type, nested = str(config["model_type"]), ("text_config",)
    family, generic = _family(config, model_type, where)
    assumed = generic or assumed
    c = _Config(config, where=where, defaults=dict(family.defaults), path=nested)
    hidden = c.integer("hidden_size")
    layers = c.integer("num_hidden_layers")
    heads, kv_heads, head_dim = _heads(c, hidden)
    qkv_bias, o_bias = _attention_bias(c, family)
    mla = _mla(c) if family.mla else None
    moe, intermediate = _feed_forward(c, family, layers)
    sliding_window, layer_kinds = _layer_kinds(c, family.sliding, layers)
    # The wrapper's own tie flag wins: Gemma 3 puts it at the top level.
    tie = _Config(tie_source, where=where, defaults={}).flag(
        "tie_word_embeddings", c.flag("tie_word_embeddings", family.tie_default)
    )
    return Architecture(
        model_type=model_type,
        hidden_size=hidden,
        num_layers=layers,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=intermediate,
        vocab_size=c.integer("vocab_size"),
        tie_word_embeddings=tie,
        qkv_bias=qkv_bias,
        o_bias=o_bias,
        mlp_bias=c.flag("mlp_bias", False),
        qk_norm=c.flag(family.qk_norm_key, family.qk_norm)
        if family.qk_norm_key
        else family.qk_norm,
        qk_norm_whole=family.qk_norm_whole,
        norms_per_layer=family.norms_per_layer,
        norm_weight_fp32=family.norm_weight_fp32,
        fused_qkv_proj=family.fused_qkv_proj,
        layer_kinds=layer_kinds,
        sliding_window=sliding_window,
        attention_sinks=family.moe == "gpt_oss",
        max_position_embeddings=c.optional_int("max_position_embeddings"),
        moe=moe,
        mla=mla,
        vision=vision,
        assumed=assumed,
        mtp_layers=(
            c.integer("num_nextn_predict_layers", 0, minimum=0) if family.moe == "deepseek" else 0
        ),
        mtp_embeddings=family.mtp_embeddings,
    )


def _unwrap(
    config: Mapping[str, Any], model_type: str, where: str
) -> tuple[VisionTower | ViT | None, dict[str, Any], str]:
    """A multimodal wrapper's vision tower, and its language model's config."""
    text = config.get("text_config")
    if not isinstance(text, Mapping):
        raise ConfigError(f"{where}: model_type {model_type!r} needs a 'text_config' object")
    text_type, reader = WRAPPERS[model_type]
    text_type = text_type or str(text.get("model_type") or "mistral")
    if text_type == "mistral":  # Mistral 3's text model reads as Ministral 3's
        text_type = "ministral3"
    vision: VisionTower | ViT | None = None
    if reader == "siglip":
        vision = _vision_tower(config, text, where=where)
    elif reader in ("llama4", "pixtral"):
        vision = _vit(config, text, reader, where=where)
    return vision, {**text, "model_type": text_type}, f"{where}: text_config"


def _vit(config: Mapping[str, Any], text: Mapping[str, Any], kind: str, *, where: str) -> ViT:
    raw = config.get("vision_config")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a multimodal config needs a 'vision_config' object")
    v = _Config(raw, where=f"{where}: vision_config", defaults={}, path=("vision_config",))
    t = _Config(text, where=f"{where}: text_config", defaults={}, path=("text_config",))
    h, inner = v.integer("hidden_size"), v.integer("intermediate_size")
    patch = v.integer("patch_size")
    patch_inputs = v.integer("num_channels", default=3) * patch * patch
    text_hidden = t.integer("hidden_size")
    if kind == "llama4":
        # Llama4VisionPixelShuffleMLP takes the shuffled intermediate width to
        # projector_input_dim, then projector_output_dim; the projector maps
        # vision_output_dim to the text width (no biases in either)
        bias = _Config(raw, where=where, defaults={}).flag("multi_modal_projector_bias", False)
        out = v.integer("vision_output_dim")
        return ViT(
            hidden_size=h, intermediate_size=inner, num_layers=v.integer("num_hidden_layers"),
            patch_inputs=patch_inputs, patch_bias=False,
            positions=(v.integer("image_size") // patch) ** 2 + 1, class_token=True,
            layer_norm=True, linear_bias=True, gated_mlp=False, pre_norm=True, post_norm=True,
            image_size=v.integer("image_size"), patch_size=patch, projector_norms=(),
            projector=(
                (inner, v.integer("projector_input_dim"), False),
                (v.integer("projector_input_dim"), v.integer("projector_output_dim"), False),
                (out, text_hidden, bias),
            ),
        )  # fmt: skip
    # Pixtral: RMSNorms, gated MLP, no biases; Mistral 3's projector normalises, merges
    # spatial_merge_size^2 patches, then two linear layers
    merge = _Config(config, where=where, defaults={}).integer("spatial_merge_size", default=2)
    bias = _Config(config, where=where, defaults={}).flag("multimodal_projector_bias", False)
    return ViT(
        hidden_size=h, intermediate_size=inner, num_layers=v.integer("num_hidden_layers"),
        patch_inputs=patch_inputs, patch_bias=False, positions=0, class_token=False,
        layer_norm=False, linear_bias=False, gated_mlp=True, pre_norm=True, post_norm=False,
        image_size=v.integer("image_size", default=1540), patch_size=patch,
        projector_norms=(h,),
        projector=(
            (h * merge * merge, h, False),
            (h, text_hidden, bias),
            (text_hidden, text_hidden, bias),
        ),
    )  # fmt: skip


def _heads(c: _Config, hidden: int) -> tuple[int, int, int]:
    """Query heads, KV heads and the head size."""
    heads = c.integer("num_attention_heads")
    kv_heads = c.integer("num_key_value_heads", default=heads)
    if heads % kv_heads:
        raise c.error(
            "num_key_value_heads",
            f"num_attention_heads ({heads}) must be a multiple of num_key_value_heads ({kv_heads})",
        )
    return heads, kv_heads, c.integer("head_dim", default=hidden // heads)


def _attention_bias(c: _Config, family: Family) -> tuple[bool, bool]:
    """Whether q, k, v and whether o carry a bias."""
    if family.attention_bias == "always":
        return True, False
    if family.attention_bias == "never":
        return False, False
    if family.attention_bias == "attention_out_bias":  # Seed-OSS: two keys
        return c.flag("attention_bias", False), c.flag("attention_out_bias", False)
    if family.attention_bias == "qkv":
        return c.flag("attention_bias", False), False
    if family.attention_bias == "use_bias":  # ERNIE 4.5: one key for every linear layer
        return c.flag("use_bias", False), c.flag("use_bias", False)
    bias = c.flag("attention_bias", False)
    return bias, bias


def _mla(c: _Config) -> MLA:
    return MLA(
        q_lora_rank=c.optional_int("q_lora_rank"),
        kv_lora_rank=c.integer("kv_lora_rank"),
        qk_nope_head_dim=c.integer("qk_nope_head_dim"),
        qk_rope_head_dim=c.integer("qk_rope_head_dim"),
        v_head_dim=c.integer("v_head_dim"),
        index_heads=(index_heads := c.integer("index_n_heads", 0, minimum=0)),
        # an indexer's keys need a size: missing or 0 is an error, not a division by zero
        index_head_dim=c.integer("index_head_dim") if index_heads else 0,
    )


def _moe(c: _Config, kind: str, layers: int) -> MoE | None:
    """The MoE layout a family's config keys describe (None for a dense family)."""
    reader = _MOE_READERS.get(kind)
    return reader(c, layers) if reader else None


def _mixtral_moe(c: _Config, layers: int) -> MoE:
    return MoE(
        num_experts=c.integer("num_local_experts"),
        experts_per_token=c.integer("num_experts_per_tok"),
        expert_intermediate_size=c.integer("intermediate_size"),
        shared_intermediate_size=0,
        moe_layers=(True,) * layers,
    )


def _gpt_oss_moe(c: _Config, layers: int) -> MoE:
    return MoE(
        num_experts=c.integer("num_local_experts"),
        experts_per_token=c.integer(
            "num_experts_per_tok", default=c.integer("experts_per_token", 4)
        ),
        expert_intermediate_size=c.integer("intermediate_size"),
        shared_intermediate_size=0,
        moe_layers=(True,) * layers,
        router_bias=True,
        expert_bias=True,
    )


def _llama4_moe(c: _Config, layers: int) -> MoE:
    """Llama4TextDecoderLayer: "self.is_moe_layer = layer_idx in config.moe_layers", which
    defaults to every interleave_moe_layer_step-th layer; one shared expert as wide."""
    step = c.integer("interleave_moe_layer_step", default=1)
    size = c.integer("intermediate_size")
    listed = set(c.int_list("moe_layers"))
    return MoE(
        num_experts=c.integer("num_local_experts"),
        experts_per_token=c.integer("num_experts_per_tok", default=1),
        expert_intermediate_size=size,
        shared_intermediate_size=size,
        moe_layers=tuple((i in listed) if listed else (i + 1) % step == 0 for i in range(layers)),
    )


def _qwen_moe(c: _Config, layers: int) -> MoE:
    """Qwen2MoeDecoderLayer / Qwen3MoeDecoderLayer: a layer is sparse unless listed in
    mlp_only_layers, and only every decoder_sparse_step-th layer is."""
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


def _deepseek_moe(c: _Config, layers: int) -> MoE:
    """DeepSeek-V2/V3: the first first_k_dense_replace layers are dense, then every
    moe_layer_freq-th layer is sparse; n_shared_experts experts of moe_intermediate_size each
    are always active."""
    first_dense = c.integer("first_k_dense_replace", 0, minimum=0)
    freq = c.integer("moe_layer_freq", 1)
    expert_size = c.integer("moe_intermediate_size")
    return MoE(
        num_experts=c.integer("n_routed_experts"),
        experts_per_token=c.integer("num_experts_per_tok"),
        expert_intermediate_size=expert_size,
        shared_intermediate_size=c.integer("n_shared_experts", 0, minimum=0) * expert_size,
        moe_layers=tuple(i >= first_dense and i % freq == 0 for i in range(layers)),
        score_correction_bias=c.raw.get("topk_method") == "noaux_tc",
    )


def _feed_forward(c: _Config, family: Family, layers: int) -> tuple[MoE | None, int]:
    """The MoE layout and the dense layers' intermediate size."""
    moe = _moe(c, family.moe, layers)
    if moe is not None and family.score_bias is not None:
        moe = replace(moe, score_correction_bias=family.score_bias)
    intermediate = c.integer(
        "intermediate_size_mlp" if family.moe == "llama4" else "intermediate_size",
        default=moe.expert_intermediate_size if moe else None,
    )
    return moe, intermediate


def _qk_norm(c: _Config, family: Family) -> bool:
    return c.flag(family.qk_norm_key, family.qk_norm) if family.qk_norm_key else family.qk_norm


def _ernie_moe(c: _Config, layers: int) -> MoE:
    """ERNIE 4.5: layers moe_layer_start_index..moe_layer_end_index (-1: the last), every
    moe_layer_interval-th, are MoE with moe_num_shared_experts shared experts."""
    start = c.integer("moe_layer_start_index", 0, minimum=0)
    end_raw = c.raw.get("moe_layer_end_index")
    end = layers - 1 if end_raw in (None, -1) else c.integer("moe_layer_end_index", minimum=0)
    step = c.integer("moe_layer_interval", default=1)
    size = c.integer("moe_intermediate_size")
    return MoE(
        num_experts=c.integer("moe_num_experts"),
        experts_per_token=c.integer("moe_k"),
        expert_intermediate_size=size,
        shared_intermediate_size=c.integer("moe_num_shared_experts", 0, minimum=0) * size,
        moe_layers=tuple((i + 1) % step == 0 and start <= i <= end for i in range(layers)),
    )


_MOE_READERS: dict[str, Callable[[_Config, int], MoE]] = {
    "mixtral": _mixtral_moe,
    "gpt_oss": _gpt_oss_moe,
    "ernie": _ernie_moe,
    "llama4": _llama4_moe,
    "qwen": _qwen_moe,
    "deepseek": _deepseek_moe,
}


def _layer_kinds(c: _Config, rule: str, layers: int) -> tuple[int | None, tuple[str, ...]]:
    if rule == "llama4":
        # chunked attention on the RoPE layers, which llama.cpp and vLLM run as a sliding
        # window of attention_chunk_size (llama.cpp: LLAMA_SWA_TYPE_CHUNKED)
        chunk = c.optional_int("attention_chunk_size")
        rope = c.int_list("no_rope_layers") or [int((i + 1) % 4 != 0) for i in range(layers)]
        if chunk is None or len(rope) != layers:
            return None, (FULL,) * layers
        return chunk, tuple(SLIDING if r else FULL for r in rope)
    window = c.optional_int("sliding_window")
    if c.raw.get("layer_types") is not None:
        kinds = _explicit_layer_types(c, layers)
        if SLIDING in kinds and window is None:
            raise c.error("sliding_window", "sliding layers need 'sliding_window'")
        return window, kinds
    if window is None or rule == "none":
        return None, (FULL,) * layers
    if rule == "all":
        return window, (SLIDING,) * layers
    if rule == "qwen":
        if not c.flag("use_sliding_window", False):
            return None, (FULL,) * layers
        first = c.integer("max_window_layers", default=layers, minimum=0)
        return window, tuple(SLIDING if i >= first else FULL for i in range(layers))
    if rule == "every_other":
        # Gemma2DecoderLayer: even-numbered layers slide, odd ones attend globally.
        return window, tuple(SLIDING if (i + 1) % 2 else FULL for i in range(layers))
    # Gemma 3: every sliding_window_pattern-th layer is global (configuration_gemma3.py).
    pattern = c.integer("sliding_window_pattern")
    return window, tuple(SLIDING if (i + 1) % pattern else FULL for i in range(layers))


def _explicit_layer_types(c: _Config, layers: int) -> tuple[str, ...]:
    """The config's own "layer_types" list, one entry per layer."""
    explicit = c.raw.get("layer_types")
    if not isinstance(explicit, list) or len(explicit) != layers:
        raise c.error(
            "layer_types",
            f"'layer_types' must list one entry per layer ({layers}), got {explicit!r}",
        )
    kinds = []
    for entry in explicit:
        if entry not in ("full_attention", "sliding_attention"):
            raise c.error(
                "layer_types",
                "'layer_types' entries must be \"full_attention\" or "
                f'"sliding_attention", got {entry!r}',
            )
        kinds.append(SLIDING if entry == "sliding_attention" else FULL)
    return tuple(kinds)


def _vision_tower(config: Mapping[str, Any], text: Mapping[str, Any], *, where: str) -> VisionTower:
    raw = config.get("vision_config")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a multimodal config needs a 'vision_config' object")
    v = _Config(
        raw, where=f"{where}: vision_config", defaults={"num_channels": 3}, path=("vision_config",)
    )
    t = _Config(text, where=f"{where}: text_config", defaults={}, path=("text_config",))
    return VisionTower(
        hidden_size=v.integer("hidden_size"),
        intermediate_size=v.integer("intermediate_size"),
        num_layers=v.integer("num_hidden_layers"),
        patch_size=v.integer("patch_size"),
        image_size=v.integer("image_size"),
        num_channels=v.integer("num_channels"),
        projector_out=t.integer("hidden_size"),
    )
