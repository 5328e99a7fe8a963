"""Turn a Hugging Face ``config.json`` (as a dict) into the architecture facts memory depends on.

Each supported ``model_type`` maps to a :class:`Family` that records what the modelling code in
``transformers`` does but the config does not say (biases, extra norms, default tying, which
layers use a sliding window). Those facts cite the upstream file they come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from calc._errors import ConfigError
from calc.checkpoint import Checkpoint, read_checkpoint

TRANSFORMERS = "https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/models"

FULL = "full"
SLIDING = "sliding"
NONE = "none"  # a layer without attention (a recurrent mixer, or an MLP on its own)


@dataclass(frozen=True)
class Family:
    """What the modelling code of one ``model_type`` adds to its config."""

    source: str
    tie_default: bool
    # "never", "always" (q, k and v carry a bias, o does not), "attention_bias" (the config
    # key decides for q, k, v and o together), or "attention_out_bias" (attention_bias for q, k
    # and v, attention_out_bias for o)
    attention_bias: str = "attention_bias"
    qk_norm: bool = False
    # OLMo 2 and 3 normalise the whole q and k projections (one weight per channel of all
    # heads) where Qwen3 and Gemma 3 normalise each head (head_dim weights)
    qk_norm_whole: bool = False
    norms_per_layer: int = 2
    # how layers get a sliding window when the config has no explicit "layer_types" list
    sliding: str = "none"  # none | all | qwen | every_other | pattern
    moe: str = "none"  # none | mixtral | qwen | deepseek | gpt_oss
    mla: bool = False
    defaults: tuple[tuple[str, Any], ...] = ()


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
    ),
    # Olmo 3: OLMo 2's layer with sliding-window layers listed in layer_types (3 of every 4)
    "olmo3": Family(
        f"{TRANSFORMERS}/olmo3/modeling_olmo3.py",
        tie_default=False,
        qk_norm=True,
        qk_norm_whole=True,
    ),
    # SmolLM3: Llama's layer, tied embeddings; its NoPE layers change no memory
    "smollm3": Family(f"{TRANSFORMERS}/smollm3/modeling_smollm3.py", tie_default=True),
    "gemma": Family(f"{TRANSFORMERS}/gemma/modeling_gemma.py", tie_default=True),
    "gemma2": Family(
        f"{TRANSFORMERS}/gemma2/modeling_gemma2.py",
        tie_default=True,
        norms_per_layer=4,
        sliding="every_other",
    ),
    "gemma3_text": Family(
        f"{TRANSFORMERS}/gemma3/modeling_gemma3.py",
        tie_default=True,
        qk_norm=True,
        norms_per_layer=4,
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
    "gpt_oss": Family(
        f"{TRANSFORMERS}/gpt_oss/modeling_gpt_oss.py",
        tie_default=False,
        sliding="every_other",
        moe="gpt_oss",
        defaults=(("attention_bias", True),),
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


# Multimodal wrappers whose language model sits under "text_config".
WRAPPERS: dict[str, str] = {"gemma3": "gemma3_text"}


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class MLA:
    """DeepSeek's multi-head latent attention (DeepSeek-V2 paper, section 2.1)."""

    q_lora_rank: int | None
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class VisionTower:
    """A SigLIP-style ViT encoder plus the projector into the language model."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    patch_size: int
    image_size: int
    num_channels: int
    projector_out: int


@dataclass(frozen=True)
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
    vision: VisionTower | QwenVision | None = None
    qk_norm_whole: bool = False
    # Hybrid models: the recurrent mixer and, per layer, whether it keeps a recurrent state
    recurrent: Recurrent | None = None
    recurrent_layers: tuple[bool, ...] = ()
    # Per layer: "dense", "moe" or "none" (Nemotron-H's mixer-only blocks); empty: every layer
    # has a feed-forward, routed where moe.moe_layers says
    ffn: tuple[str, ...] = ()
    ffn_gated: bool = True  # False: up and down only (Nemotron-H's squared-ReLU MLPs)
    attention_gate: bool = False  # Qwen3-Next: q_proj also produces a per-channel output gate
    mtp_layers: int = 0  # next-token-prediction layers shipped with the checkpoint
    assumed: str = ""  # what was assumed for a model_type the estimator does not know
    checkpoint: Checkpoint | None = None  # the format the published files are stored in
    # A GGUF file's own tensor table: (name, shape in ggml order, catalogue storage id) rows,
    # which replace the inventory the config would give
    file_tensors: tuple[tuple[str, tuple[int, ...], str], ...] | None = None

    @property
    def gqa_groups(self) -> int:
        return self.num_attention_heads // self.num_kv_heads

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
            raise self.error(key, f"{key!r} must be an integer, got {value!r}")
        if value < minimum:
            raise self.error(key, f"{key!r} must be at least {minimum}, got {value!r}")
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


def parse_config(config: Mapping[str, Any], *, where: str = "config.json") -> Architecture:
    """Read the memory-relevant architecture out of a Hugging Face config dict."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"{where}: expected a JSON object, got {type(config).__name__}")
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ConfigError(f'{where}: missing key \'model_type\' (e.g. "llama", "qwen2")')
    checkpoint = read_checkpoint(config, where=where)
    reader = _families().PARSERS.get(model_type)
    arch = reader(config, where) if reader else _decoder(config, model_type, where)
    return replace(arch, checkpoint=checkpoint)


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
    if model_type in WRAPPERS:
        vision, config, where = _unwrap(config, model_type, where)
        model_type, nested = WRAPPERS[model_type], ("text_config",)
    family = FAMILIES.get(model_type)
    assumed = ""
    if family is None:
        family = _generic_family(config, model_type, where)
        assumed = _assumed_words(model_type, family, config)
    c = _Config(config, where=where, defaults=dict(family.defaults), path=nested)
    hidden = c.integer("hidden_size")
    layers = c.integer("num_hidden_layers")
    heads, kv_heads, head_dim = _heads(c, hidden)
    qkv_bias, o_bias = _attention_bias(c, family)
    mla = _mla(c) if family.mla else None
    moe = _moe(c, family.moe, layers)
    intermediate = c.integer(
        "intermediate_size", default=moe.expert_intermediate_size if moe else None
    )
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
        qk_norm=family.qk_norm,
        qk_norm_whole=family.qk_norm_whole,
        norms_per_layer=family.norms_per_layer,
        layer_kinds=layer_kinds,
        sliding_window=sliding_window,
        attention_sinks=family.moe == "gpt_oss",
        max_position_embeddings=c.optional_int("max_position_embeddings"),
        moe=moe,
        mla=mla,
        vision=vision,
        assumed=assumed,
    )


def _unwrap(
    config: Mapping[str, Any], model_type: str, where: str
) -> tuple[VisionTower, dict[str, Any], str]:
    """A multimodal wrapper's vision tower, and its language model's config."""
    text = config.get("text_config")
    if not isinstance(text, Mapping):
        raise ConfigError(f"{where}: model_type {model_type!r} needs a 'text_config' object")
    vision = _vision_tower(config, text, where=where)
    return vision, {**text, "model_type": WRAPPERS[model_type]}, f"{where}: text_config"


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
    bias = c.flag("attention_bias", False)
    return bias, bias


def _mla(c: _Config) -> MLA:
    return MLA(
        q_lora_rank=c.optional_int("q_lora_rank"),
        kv_lora_rank=c.integer("kv_lora_rank"),
        qk_nope_head_dim=c.integer("qk_nope_head_dim"),
        qk_rope_head_dim=c.integer("qk_rope_head_dim"),
        v_head_dim=c.integer("v_head_dim"),
    )


def _moe(c: _Config, kind: str, layers: int) -> MoE | None:
    if kind == "none":
        return None
    if kind == "mixtral":
        experts = c.integer("num_local_experts")
        return MoE(
            num_experts=experts,
            experts_per_token=c.integer("num_experts_per_tok"),
            expert_intermediate_size=c.integer("intermediate_size"),
            shared_intermediate_size=0,
            moe_layers=(True,) * layers,
        )
    if kind == "gpt_oss":
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
    if kind == "qwen":
        # Qwen2MoeDecoderLayer / Qwen3MoeDecoderLayer: a layer is sparse unless listed in
        # mlp_only_layers, and only every decoder_sparse_step-th layer is.
        step = c.integer("decoder_sparse_step", default=1)
        dense_only = set(c.int_list("mlp_only_layers"))
        sparse = tuple(i not in dense_only and (i + 1) % step == 0 for i in range(layers))
        shared = c.integer("shared_expert_intermediate_size", 0, minimum=0)
        return MoE(
            num_experts=c.integer("num_experts"),
            experts_per_token=c.integer("num_experts_per_tok"),
            expert_intermediate_size=c.integer("moe_intermediate_size"),
            shared_intermediate_size=shared,
            moe_layers=sparse,
            shared_expert_gate=shared > 0,
        )
    # DeepSeek-V2/V3: the first first_k_dense_replace layers are dense, then every
    # moe_layer_freq-th layer is sparse; n_shared_experts experts of moe_intermediate_size each
    # are always active.
    experts = c.integer("n_routed_experts")
    first_dense = c.integer("first_k_dense_replace", 0, minimum=0)
    freq = c.integer("moe_layer_freq", 1)
    expert_size = c.integer("moe_intermediate_size")
    return MoE(
        num_experts=experts,
        experts_per_token=c.integer("num_experts_per_tok"),
        expert_intermediate_size=expert_size,
        shared_intermediate_size=c.integer("n_shared_experts", 0, minimum=0) * expert_size,
        moe_layers=tuple(i >= first_dense and i % freq == 0 for i in range(layers)),
        score_correction_bias=c.raw.get("topk_method") == "noaux_tc",
    )


def _layer_kinds(c: _Config, rule: str, layers: int) -> tuple[int | None, tuple[str, ...]]:
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
