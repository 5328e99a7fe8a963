"""The tensor inventory of a model, named as llama.cpp names them, and the parameter counts.

One list serves every later step: parameter counts, which GGUF type each tensor gets, which
device holds it, and what a tensor-parallel rank keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from math import prod

from calc.architecture import (
    FULL,
    NONE,
    Architecture,
    GatedDeltaNet,
    GemmaLayers,
    Mamba2,
    OpaqueTower,
    QwenVision,
    Recurrent,
    ShortConv,
    VisionTower,
    ViT,
)
from calc.records import record, replace

# Kinds of tensor. Only "weight" tensors with two or more dimensions are ever quantised
# (llama.cpp src/llama-quant.cpp: `quantize &= (ggml_n_dims(tensor) >= 2)` and the name must
# end in "weight"); norms and biases stay in full precision everywhere.
WEIGHT = "weight"
BIAS = "bias"
NORM = "norm"


@record
class Tensor:
    role: str  # llama.cpp's tensor name without the "blk.N." prefix, e.g. "attn_v"
    kind: str  # WEIGHT, BIAS or NORM
    shape: tuple[int, ...]  # ggml order: row length first, then rows, then experts
    layer: int | None = None  # None for tensors outside the repeating blocks
    routed: bool = False  # one slice per routed expert: only experts_per_token are active
    stored: str | None = None  # the storage type a GGUF file gives it, where read from one

    @property
    def numel(self) -> int:
        return prod(self.shape)

    @property
    def name(self) -> str:
        prefix = f"blk.{self.layer}." if self.layer is not None else ""
        return f"{prefix}{self.role}.{'bias' if self.kind == BIAS else 'weight'}"


@lru_cache(maxsize=32)  # a pure function of a frozen architecture; hints call it many times
def model_tensors(arch: Architecture) -> tuple[Tensor, ...]:
    """Every tensor of the language model (and vision tower, if any), in load order."""
    if arch.file_tensors is not None:
        return tuple(file_tensor(*row) for row in arch.file_tensors)
    h, v = arch.hidden_size, arch.vocab_size
    out: list[Tensor] = [Tensor("token_embd", WEIGHT, (h, v))]
    for i in range(arch.num_layers):
        out += _layer(arch, i)
    out.append(Tensor("output_norm", NORM, (h,)))
    if not arch.tie_word_embeddings:
        out.append(Tensor("output", WEIGHT, (h, v)))
    if isinstance(arch.vision, VisionTower):
        out += _vision(arch.vision)
    elif isinstance(arch.vision, QwenVision):
        out += _qwen_vision(arch.vision)
    elif isinstance(arch.vision, ViT):
        out += _vit(arch.vision)
    elif isinstance(arch.vision, OpaqueTower):
        out.append(Tensor("v.tower", WEIGHT, (1, arch.vision.parameters)))
    if arch.gemma is not None:
        out += _gemma_globals(arch, arch.gemma)
    return tuple(out)


def _layer(arch: Architecture, i: int) -> list[Tensor]:
    """One decoder layer: attention and/or a recurrent mixer, a feed-forward, the norms."""
    h = arch.hidden_size
    out: list[Tensor] = []
    if arch.layer_kinds[i] != NONE:
        out += _attention(arch, i)
    if arch.is_recurrent(i) and arch.recurrent is not None:
        out += _recurrent(arch.recurrent, h, i)
    if arch.ffn_kind(i) != "none":
        out += _feed_forward(arch, i)
    out.append(Tensor("attn_norm", NORM, (h,), i))
    if arch.norms_per_layer >= 2:
        out.append(Tensor("ffn_norm", NORM, (h,), i))
    if arch.norms_per_layer == 4:  # Gemma 2/3 also normalise each sublayer's output
        out += [Tensor("post_attention_norm", NORM, (h,), i)]
        out += [Tensor("post_ffw_norm", NORM, (h,), i)]
    if arch.gemma is not None:
        out += _gemma_layer(arch, arch.gemma, i)
    return out


def _gemma_layer(arch: Architecture, g: GemmaLayers, i: int) -> list[Tensor]:
    h = arch.hidden_size
    out: list[Tensor] = []
    if g.altup_inputs:  # AltUp: router, prediction and correction coefficients
        a = g.altup_inputs
        out += [Tensor("altup_correct_scale", NORM, (h,), i)]
        out += [Tensor("altup_correct_coef", WEIGHT, (a, a), i)]
        out += [Tensor("altup_predict_coef", WEIGHT, (a, a * a), i)]
        out += [
            Tensor("altup_router", WEIGHT, (h, a), i),
            Tensor("altup_router_norm", NORM, (h,), i),
        ]
    if g.laurel_rank:  # LAuReL: a low-rank residual
        out += _linear("laurel_l", h, g.laurel_rank, i, False)
        out += _linear("laurel_r", g.laurel_rank, h, i, False)
        out += [Tensor("laurel_post_norm", NORM, (h,), i)]
    if g.ple_dim:  # per-layer embeddings: gate, projection, norm
        out += _linear("inp_gate", h, g.ple_dim, i, False)
        out += _linear("proj", g.ple_dim, h, i, False)
        out += [Tensor("post_norm", NORM, (h,), i)]
    if g.layer_scalar:
        out += [Tensor("layer_output_scale", NORM, (1,), i)]
    if g.moe_router_scales and arch.ffn_kind(i) == "moe":
        e = arch.moe.num_experts if arch.moe else 0
        out += [Tensor("ffn_gate_inp_scale", NORM, (h,), i), Tensor("ffn_exp_scale", NORM, (e,), i)]
        out += [Tensor(f"ffn_norm_{n}", NORM, (h,), i) for n in (1, 2, 3)]
    return out


def _gemma_globals(arch: Architecture, g: GemmaLayers) -> list[Tensor]:
    """Gemma 3n/4's per-layer embedding table and projection, and AltUp's projections."""
    h, layers = arch.hidden_size, arch.num_layers
    out: list[Tensor] = []
    if g.ple_dim:
        out += [Tensor("per_layer_token_embd", WEIGHT, (layers * g.ple_dim, g.ple_vocab))]
        out += [Tensor("per_layer_model_proj", WEIGHT, (h, layers * g.ple_dim))]
        out += [Tensor("per_layer_proj_norm", NORM, (g.ple_dim,))]
    if g.altup_inputs:
        for n in range(g.altup_inputs - 1):
            out += [
                Tensor(f"altup_proj.{n}", WEIGHT, (h, h)),
                Tensor(f"altup_unembd_proj.{n}", WEIGHT, (h, h)),
            ]
    return out


@lru_cache(maxsize=32)
def mtp_tensors(arch: Architecture) -> tuple[Tensor, ...]:
    """Next-token-prediction layers the checkpoint ships beside the model (Qwen3-Next,
    Qwen3.5: modeling's ``mtp.*`` keys): a full-attention decoder layer with the model's
    feed-forward, a 2h -> h projection and three norms each. Engines load them only for
    speculative decoding, so they count in the checkpoint's size, not in memory."""
    if not arch.mtp_layers:
        return ()
    h = arch.hidden_size
    attention = [i for i in range(arch.num_layers) if arch.layer_kinds[i] != NONE]
    template = max(attention, default=arch.num_layers - 1)
    out: list[Tensor] = []
    for n in range(arch.mtp_layers):
        layer = [*_attention(arch, template), *_feed_forward(arch, template)]
        layer += [Tensor("attn_norm", NORM, (h,)), Tensor("ffn_norm", NORM, (h,))]
        layer += [Tensor("fc", WEIGHT, (2 * h, h))]
        layer += [Tensor(name, NORM, (h,)) for name in ("enorm", "hnorm", "norm")]
        if arch.mtp_embeddings:  # DeepSeek-V3 and GLM-4.5 ship their own copies
            v = arch.vocab_size
            layer += [Tensor("token_embd", WEIGHT, (h, v)), Tensor("output", WEIGHT, (h, v))]
        out += [replace(t, role=f"mtp.{n}.{t.role}", layer=None) for t in layer]
    return tuple(out)


def _recurrent(mixer: Recurrent, h: int, i: int) -> list[Tensor]:
    """A recurrent mixer's tensors, named as llama.cpp's ssm_* and shortconv tensors."""
    if isinstance(mixer, ShortConv):
        return [
            *_linear("shortconv.in_proj", h, 3 * h, i, mixer.bias),
            Tensor("shortconv.conv", WEIGHT, (mixer.l_cache, h), i),
            *([Tensor("shortconv.conv", BIAS, (h,), i)] if mixer.bias else []),
            *_linear("shortconv.out_proj", h, h, i, mixer.bias),
        ]
    if isinstance(mixer, GatedDeltaNet):
        nv = mixer.value_heads
        return [
            # in_proj_qkvz (Qwen3.5 splits it into qkv and z: the same weights)
            *_linear("ssm_in", h, 2 * mixer.key_dim + 2 * mixer.value_dim, i, False),
            *_linear("ssm_ba", h, 2 * nv, i, False),  # beta and alpha per value head
            Tensor("ssm_conv1d", WEIGHT, (mixer.d_conv, mixer.conv_channels), i),
            Tensor("ssm_dt", BIAS, (nv,), i),
            Tensor("ssm_a", BIAS, (nv,), i),
            Tensor("ssm_norm", NORM, (mixer.value_head_dim,), i),
            *_linear("ssm_out", mixer.value_dim, h, i, False),
        ]
    return _mamba2(mixer, h, i)


def _mamba2(m: Mamba2, h: int, i: int) -> list[Tensor]:
    """Mamba2Mixer: in_proj to z, x, B, C and dt; the conv; A, D and dt bias per head."""
    out = _linear("ssm_in", h, m.d_inner + m.conv_channels + m.heads, i, m.proj_bias)
    out.append(Tensor("ssm_conv1d", WEIGHT, (m.d_conv, m.conv_channels), i))
    if m.conv_bias:
        out.append(Tensor("ssm_conv1d", BIAS, (m.conv_channels,), i))
    out += [Tensor(role, BIAS, (m.heads,), i) for role in ("ssm_a", "ssm_d", "ssm_dt")]
    if m.gated_norm:
        out.append(Tensor("ssm_norm", NORM, (m.d_inner,), i))
    out += _linear("ssm_out", m.d_inner, h, i, m.proj_bias)
    return out


def file_tensor(name: str, shape: tuple[int, ...], stored: str) -> Tensor:
    """A tensor as a GGUF file names it ("blk.3.ffn_up_exps.weight")."""
    layer = None
    parts = name.split(".")
    if len(parts) > 2 and parts[0] == "blk" and parts[1].isdigit():
        layer, parts = int(parts[1]), parts[2:]
    suffix = parts[-1] if len(parts) > 1 else ""
    role = ".".join(parts[:-1]) if suffix in ("weight", "bias") else ".".join(parts)
    if suffix == "bias":
        kind = BIAS
    elif len(shape) < 2 or role.endswith("norm"):
        kind = NORM
    else:
        kind = WEIGHT
    return Tensor(role, kind, shape, layer, routed="_exps" in role, stored=stored)


def _linear(role: str, n_in: int, n_out: int, layer: int, bias: bool) -> list[Tensor]:
    tensors = [Tensor(role, WEIGHT, (n_in, n_out), layer)]
    if bias:
        tensors.append(Tensor(role, BIAS, (n_out,), layer))
    return tensors


def _attention(arch: Architecture, i: int) -> list[Tensor]:
    h, heads = arch.hidden_size, arch.num_attention_heads
    if arch.mla is not None:
        m = arch.mla
        qk_dim = m.qk_nope_head_dim + m.qk_rope_head_dim
        out: list[Tensor] = []
        if m.q_lora_rank is None:
            out += _linear("attn_q", h, heads * qk_dim, i, False)
        else:
            out += _linear("attn_q_a", h, m.q_lora_rank, i, False)
            out.append(Tensor("attn_q_a_norm", NORM, (m.q_lora_rank,), i))
            out += _linear("attn_q_b", m.q_lora_rank, heads * qk_dim, i, False)
        out += _linear("attn_kv_a_mqa", h, m.kv_lora_rank + m.qk_rope_head_dim, i, False)
        out.append(Tensor("attn_kv_a_norm", NORM, (m.kv_lora_rank,), i))
        kv_b_out = heads * (m.qk_nope_head_dim + m.v_head_dim)
        out += _linear("attn_kv_b", m.kv_lora_rank, kv_b_out, i, False)
        out += _linear("attn_output", heads * m.v_head_dim, h, i, False)
        if m.index_heads:  # DeepSeek-V3.2's lightning indexer
            dim = m.index_heads * m.index_head_dim
            out += _linear("indexer.attn_q_b", m.q_lora_rank or h, dim, i, False)
            out += _linear("indexer.attn_k", h, m.index_head_dim, i, False)
            out += [Tensor("indexer.k_norm", NORM, (m.index_head_dim,), i)]
            out += [Tensor("indexer.k_norm", BIAS, (m.index_head_dim,), i)]
            out += _linear("indexer.proj", h, m.index_heads, i, False)
        return out
    kv_heads, head = arch.attention_shape(i)
    q_dim = heads * head
    kv_dim = kv_heads * head
    # Qwen3-Next's gated attention: q_proj also produces the output gate
    out = _linear("attn_q", h, q_dim * (2 if arch.attention_gate else 1), i, arch.qkv_bias)
    out += _linear("attn_k", h, kv_dim, i, arch.qkv_bias)
    if not (arch.gemma and arch.gemma.k_eq_v and arch.layer_kinds[i] == FULL):
        out += _linear("attn_v", h, kv_dim, i, arch.qkv_bias)
    out += _linear("attn_output", q_dim, h, i, arch.o_bias)
    if arch.qk_norm:
        whole = arch.qk_norm_whole
        out += [Tensor("attn_q_norm", NORM, (q_dim if whole else head,), i)]
        out += [Tensor("attn_k_norm", NORM, (kv_dim if whole else head,), i)]
    if arch.attention_sinks:  # gpt-oss: one learned sink logit per head
        out.append(Tensor("attn_sinks", BIAS, (heads,), i))
    return out


def _feed_forward(arch: Architecture, i: int) -> list[Tensor]:
    h, moe = arch.hidden_size, arch.moe
    gated = arch.ffn_gated
    if moe is None or arch.ffn_kind(i) == "dense":
        size = arch.intermediate_sizes[i] if arch.intermediate_sizes else arch.intermediate_size
        return [
            *(_linear("ffn_gate", h, size, i, arch.mlp_bias) if gated else []),
            *_linear("ffn_up", h, size, i, arch.mlp_bias),
            *_linear("ffn_down", size, h, i, arch.mlp_bias),
        ]
    e, size = moe.num_experts, moe.expert_intermediate_size
    out = [Tensor("ffn_gate_inp", WEIGHT, (h, e), i)]
    if moe.router_bias:
        out.append(Tensor("ffn_gate_inp", BIAS, (e,), i))
    if moe.score_correction_bias:
        out.append(Tensor("exp_probs_b", BIAS, (e,), i))
    inner = moe.latent_size or h  # Nemotron 3 Super's experts work in a latent space
    if moe.latent_size:
        out += _linear("ffn_latent_in", h, inner, i, arch.mlp_bias)
        out += _linear("ffn_latent_out", inner, h, i, arch.mlp_bias)
    if gated:
        out.append(Tensor("ffn_gate_exps", WEIGHT, (inner, size, e), i, routed=True))
    out += [
        Tensor("ffn_up_exps", WEIGHT, (inner, size, e), i, routed=True),
        Tensor("ffn_down_exps", WEIGHT, (size, inner, e), i, routed=True),
    ]
    if moe.expert_bias:
        out += [
            Tensor("ffn_gate_exps", BIAS, (size, e), i, routed=True),
            Tensor("ffn_up_exps", BIAS, (size, e), i, routed=True),
            Tensor("ffn_down_exps", BIAS, (h, e), i, routed=True),
        ]
    if moe.shared_intermediate_size:
        shared = moe.shared_intermediate_size
        if gated:
            out.append(Tensor("ffn_gate_shexp", WEIGHT, (h, shared), i))
        out += [
            Tensor("ffn_up_shexp", WEIGHT, (h, shared), i),
            Tensor("ffn_down_shexp", WEIGHT, (shared, h), i),
        ]
        if moe.shared_expert_gate:
            out.append(Tensor("ffn_gate_inp_shexp", WEIGHT, (h, 1), i))
    return out


def _vision(vt: VisionTower) -> list[Tensor]:
    """A SigLIP encoder (modeling_siglip.py) and Gemma 3's projector (modeling_gemma3.py).

    Vision blocks are not decoder blocks, so they carry no layer index: the per-layer split
    over GPUs only moves decoder layers.
    """
    h, inner = vt.hidden_size, vt.intermediate_size
    patches = (vt.image_size // vt.patch_size) ** 2
    out = [
        Tensor("v.patch_embd", WEIGHT, (vt.patch_size * vt.patch_size * vt.num_channels, h)),
        Tensor("v.patch_embd", BIAS, (h,)),
        Tensor("v.position_embd", WEIGHT, (h, patches)),
    ]
    for i in range(vt.num_layers):
        for role in ("attn_q", "attn_k", "attn_v", "attn_out"):
            out += _vision_linear(f"v.blk.{i}.{role}", h, h)
        out += _vision_linear(f"v.blk.{i}.ffn_up", h, inner)
        out += _vision_linear(f"v.blk.{i}.ffn_down", inner, h)
        for role in ("ln1", "ln2"):  # LayerNorm: weight and bias
            out += [
                Tensor(f"v.blk.{i}.{role}", NORM, (h,)),
                Tensor(f"v.blk.{i}.{role}", BIAS, (h,)),
            ]
    out += [Tensor("v.post_ln", NORM, (h,)), Tensor("v.post_ln", BIAS, (h,))]
    out += [Tensor("mm.soft_emb_norm", NORM, (h,))]
    out += [Tensor("mm.input_projection", WEIGHT, (h, vt.projector_out))]
    return out


def _qwen_vision(vt: QwenVision) -> list[Tensor]:
    """The Qwen2.5-VL / Qwen3-VL / Qwen3.5 vision encoder and mergers (modeling_qwen2_5_vl.py,
    modeling_qwen3_vl.py); every linear layer carries a bias."""
    h, inner, merged = vt.hidden_size, vt.intermediate_size, vt.hidden_size * vt.merge**2
    patch = vt.in_channels * vt.temporal_patch_size * vt.patch_size**2
    out = [Tensor("v.patch_embd", WEIGHT, (patch, h))]
    if vt.patch_bias:
        out.append(Tensor("v.patch_embd", BIAS, (h,)))
    if vt.position_embeddings:
        out.append(Tensor("v.position_embd", WEIGHT, (h, vt.position_embeddings)))

    def norm(role: str, width: int) -> list[Tensor]:
        return [Tensor(role, NORM, (width,))] + (
            [Tensor(role, BIAS, (width,))] if vt.layer_norm else []
        )

    for i in range(vt.depth):
        out += norm(f"v.blk.{i}.ln1", h) + norm(f"v.blk.{i}.ln2", h)
        out += _vision_linear(f"v.blk.{i}.attn_qkv", h, 3 * h)
        out += _vision_linear(f"v.blk.{i}.attn_out", h, h)
        if vt.gated_mlp:
            out += _vision_linear(f"v.blk.{i}.ffn_gate", h, inner)
        out += _vision_linear(f"v.blk.{i}.ffn_up", h, inner)
        out += _vision_linear(f"v.blk.{i}.ffn_down", inner, h)
    mergers = [("mm", h)] + [(f"mm.deepstack.{n}", merged) for n in range(vt.deepstack)]
    for prefix, width in mergers:  # the deepstack mergers normalise after merging
        out += norm(f"{prefix}.norm", width)
        out += _vision_linear(f"{prefix}.fc1", merged, merged)
        out += _vision_linear(f"{prefix}.fc2", merged, vt.out_hidden)
    return out


def _vit(vt: ViT) -> list[Tensor]:
    """A plain ViT (Llama 4's, Pixtral's) and the linear layers that project it."""
    h, inner = vt.hidden_size, vt.intermediate_size

    def norm(role: str, width: int) -> list[Tensor]:
        bias = [Tensor(role, BIAS, (width,))] if vt.layer_norm else []
        return [Tensor(role, NORM, (width,)), *bias]

    def linear(role: str, n_in: int, n_out: int, bias: bool) -> list[Tensor]:
        return _vision_linear(role, n_in, n_out) if bias else [Tensor(role, WEIGHT, (n_in, n_out))]

    out = linear("v.patch_embd", vt.patch_inputs, h, vt.patch_bias)
    if vt.class_token:
        out.append(Tensor("v.class_embd", NORM, (h,)))
    if vt.positions:
        out.append(Tensor("v.position_embd", WEIGHT, (h, vt.positions)))
    out += norm("v.pre_ln", h) if vt.pre_norm else []
    out += norm("v.post_ln", h) if vt.post_norm else []
    b = vt.linear_bias
    for i in range(vt.num_layers):
        out += norm(f"v.blk.{i}.ln1", h) + norm(f"v.blk.{i}.ln2", h)
        for role in ("attn_q", "attn_k", "attn_v", "attn_out"):
            out += linear(f"v.blk.{i}.{role}", h, h, b)
        if vt.gated_mlp:
            out += linear(f"v.blk.{i}.ffn_gate", h, inner, b)
        out += linear(f"v.blk.{i}.ffn_up", h, inner, b)
        out += linear(f"v.blk.{i}.ffn_down", inner, h, b)
    out += [Tensor(f"mm.norm.{n}", NORM, (w,)) for n, w in enumerate(vt.projector_norms)]
    for n, (n_in, n_out, bias) in enumerate(vt.projector):
        out += linear(f"mm.{n}", n_in, n_out, bias)
    return out


def _vision_linear(role: str, n_in: int, n_out: int) -> list[Tensor]:
    return [Tensor(role, WEIGHT, (n_in, n_out)), Tensor(role, BIAS, (n_out,))]


# llama.cpp tensor roles -> the Hugging Face module they come from, for matching a checkpoint's
# "leave unquantised" lists (names as in modeling_llama.py, modeling_deepseek_v3.py,
# modeling_qwen2_moe.py; expert stacks as expert 0 of "mlp.experts")
_HF_MODULES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_a": "self_attn.q_a_proj",
    "attn_q_b": "self_attn.q_b_proj",
    "attn_kv_a_mqa": "self_attn.kv_a_proj_with_mqa",
    "attn_kv_b": "self_attn.kv_b_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "ffn_gate_inp": "mlp.gate",
    "ffn_gate_exps": "mlp.experts.0.gate_proj",
    "ffn_up_exps": "mlp.experts.0.up_proj",
    "ffn_down_exps": "mlp.experts.0.down_proj",
    "ffn_gate_shexp": "mlp.shared_expert.gate_proj",
    "ffn_up_shexp": "mlp.shared_expert.up_proj",
    "ffn_down_shexp": "mlp.shared_expert.down_proj",
    "ffn_gate_inp_shexp": "mlp.shared_expert_gate",
}


def hf_module(tensor: Tensor) -> str:
    """The Hugging Face module name a tensor belongs to, e.g. ``model.layers.3.mlp.up_proj``."""
    if tensor.role == "token_embd":
        return "model.embed_tokens"
    if tensor.role == "output":
        return "lm_head"
    if tensor.layer is None:
        return tensor.role
    return f"model.layers.{tensor.layer}.{_HF_MODULES.get(tensor.role, tensor.role)}"


def is_vision(tensor: Tensor) -> bool:
    return tensor.role.startswith(("v.", "mm."))


@record
class ParameterCount:
    total: int
    active: int  # per token: routed experts count experts_per_token times, not num_experts
    embedding: int
    vision: int
    mtp: int = 0  # next-token-prediction layers in the checkpoint, outside total

    @property
    def checkpoint_total(self) -> int:
        """What the published files hold: the model and its MTP layers."""
        return self.total + self.mtp


@lru_cache(maxsize=32)  # as model_tensors: every weight layout of a model needs it
def parameters_of(arch: Architecture) -> ParameterCount:
    """:func:`count_parameters` of the model's own tensors."""
    return count_parameters(arch)


def count_parameters(arch: Architecture, tensors: Sequence[Tensor] | None = None) -> ParameterCount:
    """Total and per-token active parameters.

    "Active" counts every non-expert tensor (both embedding matrices included) plus
    experts_per_token of the routed experts, the convention of Mixtral's "12.9B active".
    """
    if tensors is None:
        tensors = model_tensors(arch)
    total = sum(t.numel for t in tensors)
    routed = sum(t.numel for t in tensors if t.routed)
    per_expert_share = arch.moe.experts_per_token / arch.moe.num_experts if arch.moe else 0.0
    active = total - routed + round(routed * per_expert_share)
    embedding = sum(t.numel for t in tensors if t.role in ("token_embd", "output"))
    vision = sum(t.numel for t in tensors if is_vision(t))
    mtp = sum(t.numel for t in mtp_tensors(arch))
    return ParameterCount(total=total, active=active, embedding=embedding, vision=vision, mtp=mtp)
