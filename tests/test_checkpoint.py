"""A config.json's quantization_config decides the weight format engines that read Hugging Face
files load; the reader's --weights overrides it with a note."""

from __future__ import annotations

import pytest

from calc import CalcError, ConfigError, InferenceRequest, count_parameters, parse_config
from calc.api import resolve
from calc.checkpoint import module_kept, read_checkpoint
from calc.formats import tensor_storage
from calc.tensors import model_tensors

# Qwen/Qwen2.5-7B-Instruct's config.json (the shapes; the AWQ and FP8 repos ship the same ones)
QWEN_7B = {
    "model_type": "qwen2",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
# Qwen/Qwen2.5-7B-Instruct-AWQ config.json
AWQ = {
    "bits": 4,
    "group_size": 128,
    "modules_to_not_convert": None,
    "quant_method": "awq",
    "version": "gemm",
    "zero_point": True,
}
# Qwen/Qwen3-8B-FP8 config.json
FP8_BLOCK = {
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "modules_to_not_convert": ["lm_head"],
    "quant_method": "fp8",
    "weight_block_size": [128, 128],
}


def plan_for(catalogue, config, **kwargs):
    return resolve(catalogue, InferenceRequest(config=config, **kwargs))


def test_an_awq_config_gives_awq_weights_without_being_told(catalogue):
    plan = plan_for(catalogue, {**QWEN_7B, "quantization_config": AWQ}, engine="vllm")
    assert plan.weights.id == "awq_4bit_g128"
    assert not any("replaces" in note for note in plan.notes)


def test_a_plain_config_loads_in_its_dtype_on_vllm(catalogue):
    assert plan_for(catalogue, QWEN_7B, engine="vllm").weights.id == "bf16"
    fp16 = plan_for(catalogue, {**QWEN_7B, "torch_dtype": "float16"}, engine="vllm")
    assert fp16.weights.id == "fp16"
    # vLLM's --dtype auto loads a float32 checkpoint in 16 bits
    assert plan_for(catalogue, {**QWEN_7B, "torch_dtype": "float32"}, engine="vllm").weights.id == (
        "bf16"
    )


def test_transformers_before_5_loads_plain_checkpoints_in_float32_but_awq_as_awq(catalogue):
    old = {"engine": "transformers", "engine_version": "4.57.0"}
    assert plan_for(catalogue, QWEN_7B, **old).weights.id == "fp32"
    awq = plan_for(catalogue, {**QWEN_7B, "quantization_config": AWQ}, **old)
    assert awq.weights.id == "awq_4bit_g128"


def test_gguf_engines_keep_their_own_default(catalogue):
    plan = plan_for(catalogue, {**QWEN_7B, "quantization_config": AWQ}, engine="llama.cpp")
    assert plan.weights.id == "q4_k_m"


def test_asked_weights_override_the_checkpoint_with_a_note(catalogue):
    plan = plan_for(
        catalogue, {**QWEN_7B, "quantization_config": AWQ}, engine="vllm", weights="bf16"
    )
    assert plan.weights.id == "bf16"
    assert any("AWQ 4-bit, group 128" in note and "replaces" in note for note in plan.notes)


def test_fp8_block_checkpoint_keeps_the_listed_modules_in_16_bits(catalogue):
    config = {**QWEN_7B, "quantization_config": FP8_BLOCK}
    plan = plan_for(catalogue, config, engine="vllm")
    assert plan.weights.id == "fp8_e4m3"
    arch = parse_config(config)
    by_name = {t.name: t for t in model_tensors(arch)}
    types = catalogue.storage_types
    assert tensor_storage(by_name["output.weight"], plan.weights, arch, types).id == "bf16"
    assert tensor_storage(by_name["blk.0.ffn_up.weight"], plan.weights, arch, types).id == (
        "fp8_e4m3"
    )


def test_a_group_size_without_a_catalogue_entry_is_sized_from_its_layout(catalogue):
    gptq = {"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": False, "sym": True}
    plan = plan_for(catalogue, {**QWEN_7B, "quantization_config": gptq}, engine="vllm")
    assert plan.weights.id == "gptq_4bit_g32"
    # 4 bits + a 16-bit scale and a 4-bit zero point per 32 weights
    assert plan.weights.storage.bits_per_weight == pytest.approx(4 + 20 / 32)
    assert plan.weights.storage.row_bytes(3584) == 3584 * (4 + 20 / 32) / 8


def test_per_channel_scales_cost_one_scale_per_row(catalogue):
    gptq = {"quant_method": "gptq", "bits": 8, "group_size": -1, "sym": True}
    plan = plan_for(catalogue, {**QWEN_7B, "quantization_config": gptq}, engine="vllm")
    assert plan.weights.storage.row_bytes(3584) == 3584 + (16 + 8) // 8


@pytest.mark.parametrize(
    ("quant", "format_id"),
    [
        # RedHatAI FP8-dynamic checkpoints (compressed-tensors, per-channel float 8-bit)
        (
            {
                "quant_method": "compressed-tensors",
                "format": "float-quantized",
                "config_groups": {
                    "group_0": {
                        "targets": ["Linear"],
                        "weights": {"num_bits": 8, "type": "float", "strategy": "channel"},
                    }
                },
                "ignore": ["lm_head"],
            },
            "fp8_e4m3",
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "format": "pack-quantized",
                "config_groups": {
                    "group_0": {
                        "targets": ["Linear"],
                        "weights": {
                            "num_bits": 4,
                            "type": "int",
                            "strategy": "group",
                            "group_size": 128,
                            "symmetric": True,
                        },
                    }
                },
                "ignore": ["lm_head"],
            },
            "compressed_tensors_4bit_g128",
        ),
        (
            {
                "quant_method": "bitsandbytes",
                "load_in_4bit": True,
                "bnb_4bit_quant_type": "nf4",
                "bnb_4bit_use_double_quant": True,
            },
            "nf4",
        ),
        (
            {"quant_method": "modelopt", "quant_algo": "NVFP4", "exclude_modules": ["lm_head"]},
            "nvfp4",
        ),
    ],
)
def test_each_quant_method_names_its_format(catalogue, quant, format_id):
    plan = plan_for(catalogue, {**QWEN_7B, "quantization_config": quant}, engine="vllm")
    assert plan.weights.id == format_id


def test_w4a16_is_smaller_than_awq_by_its_missing_zero_points(catalogue):
    """Symmetric compressed-tensors int4 stores a scale per group and no zero point."""
    quant = {
        "quant_method": "compressed-tensors",
        "config_groups": {"g": {"weights": {"num_bits": 4, "type": "int", "group_size": 128}}},
    }
    w4 = plan_for(catalogue, {**QWEN_7B, "quantization_config": quant}, engine="vllm")
    awq = plan_for(catalogue, {**QWEN_7B, "quantization_config": AWQ}, engine="vllm")
    assert w4.weights.storage.bits_per_weight == 4 + 16 / 128
    assert w4.weights.storage.bits_per_weight < awq.weights.storage.bits_per_weight


def test_an_unknown_quant_method_needs_the_reader_to_name_the_format(catalogue):
    config = {**QWEN_7B, "quantization_config": {"quant_method": "hqq"}}
    with pytest.raises(CalcError, match=r"quant_method 'hqq'.*pass --weights"):
        plan_for(catalogue, config, engine="vllm")
    assert plan_for(catalogue, config, engine="vllm", weights="bf16").weights.id == "bf16"
    # engines that convert the model anyway never read it
    assert plan_for(catalogue, config, engine="llama.cpp").weights.id == "q4_k_m"


@pytest.mark.parametrize(
    ("quant", "message"),
    [
        ({"quant_method": "awq", "bits": 3}, r"'bits' must be one of 4, got 3"),
        ({"quant_method": "gptq", "group_size": "128"}, r"'group_size' must be an integer"),
        ({"quant_method": "bitsandbytes"}, r"'load_in_4bit' must be true"),
        ({"quant_method": "modelopt", "quant_algo": "INT3"}, r"'quant_algo' must be FP8 or NVFP4"),
        ("awq", r"'quantization_config' must be an object"),
        ({"bits": 4}, r"needs a 'quant_method'"),
    ],
)
def test_bad_quantization_configs_name_the_key(quant, message):
    with pytest.raises(ConfigError, match=message):
        read_checkpoint({"quantization_config": quant}, where="config.json")


@pytest.mark.parametrize(
    ("module", "patterns", "kept"),
    [
        ("lm_head", ["lm_head"], True),
        ("model.layers.3.mlp.gate", ["gate"], True),
        ("model.layers.3.mlp.gate_proj", ["gate"], False),  # a whole name part, not a substring
        ("model.layers.0.mlp.down_proj", ["model.layers.0.mlp"], True),
        ("model.layers.10.mlp.down_proj", ["model.layers.1.mlp"], False),
        ("model.layers.7.self_attn.q_proj", ["model.layers.*.self_attn"], True),
        ("model.layers.7.mlp.gate", [r"re:.*mlp\.gate$"], True),
        ("model.layers.7.mlp.gate_proj", [r"re:.*mlp\.gate$"], False),
    ],
)
def test_unquantised_module_patterns(module, patterns, kept):
    assert module_kept(module, patterns) is kept


def test_parameter_counts_do_not_depend_on_the_file_format():
    plain = count_parameters(parse_config(QWEN_7B))
    assert count_parameters(parse_config({**QWEN_7B, "quantization_config": AWQ})) == plain


def test_a_wrappers_text_model_may_carry_the_quantization_config():
    """Kimi K2.5 keeps its compressed-tensors INT4 scheme inside text_config."""
    quant = {
        "quant_method": "compressed-tensors",
        "config_groups": {"g": {"weights": {"num_bits": 4, "type": "int", "group_size": 32}}},
        "ignore": ["re:.*self_attn.*"],
    }
    checkpoint = read_checkpoint({"text_config": {"quantization_config": quant}}, where="x")
    assert checkpoint is not None and checkpoint.group is not None
    assert checkpoint.group.group_size == 32


def test_qlora_on_a_bitsandbytes_checkpoint_keeps_its_skipped_modules_in_16_bits(catalogue):
    """Unsloth's dynamic 4-bit repositories are bitsandbytes checkpoints whose
    llm_int8_skip_modules name layers left unquantised: QLoRA loads them so, 16-bit."""
    from calc.api import run_finetune
    from calc.finetune import FinetuneRequest

    skipped = ["model.layers.0.mlp.down_proj", "model.layers.1.self_attn.o_proj"]
    bnb = {
        "quant_method": "bitsandbytes",
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": True,
    }

    def weights(quant):
        config = {**QWEN_7B, "quantization_config": quant} if quant else QWEN_7B
        estimate = run_finetune(catalogue, FinetuneRequest(method="qlora"), config=config)
        return estimate.devices[0].components.weights, estimate.notes

    plain, _ = weights(None)
    standard, notes = weights(bnb)  # a plain bnb-4bit checkpoint: every block linear in 4 bits
    assert standard == plain and not any("llm_int8_skip_modules" in n for n in notes)
    dynamic, notes = weights({**bnb, "llm_int8_skip_modules": skipped})
    values = 18944 * 3584 + 3584 * 3584  # one down_proj and one o_proj
    nf4 = catalogue.weight_format("nf4").storage.bits_per_weight
    assert dynamic - plain == pytest.approx(values * (2 - nf4 / 8), rel=0.01)
    assert any("model.layers.0.mlp.down_proj" in n for n in notes)
    # an 8-bit checkpoint is requantised to 4 bits by QLoRA: its list does not apply
    int8 = {"quant_method": "bitsandbytes", "load_in_8bit": True, "llm_int8_skip_modules": skipped}
    assert weights(int8)[0] == plain
