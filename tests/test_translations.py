"""The Chinese edition: every page translated and current, every generated text and calculator
string in the catalogue, and the checks that fail the build when they are not."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from calc.bridge import Session
from scripts import messages, translations
from scripts.tables import environment
from tests.test_checkpoint import QWEN_7B

ROOT = Path(__file__).resolve().parent.parent
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_page_has_a_current_translation():
    assert translations.problems() == []
    pages = list(translations.source_pages())
    assert len(pages) >= 15
    for page in pages:
        text = translations.translation_of(page).read_text(encoding="utf-8")
        assert len(CJK.findall(text)) > 50, page


@pytest.fixture
def docs_copy(tmp_path: Path) -> Path:
    target = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", target, ignore=shutil.ignore_patterns("assets"))
    return target


def test_a_changed_english_page_makes_its_translation_stale_until_stamped(docs_copy):
    page = docs_copy / "guide" / "formats.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nOne more sentence.\n", encoding="utf-8")
    [problem] = translations.problems(docs_copy)
    assert problem.startswith("docs/guide/formats.zh.md: translates an older docs/guide/formats.md")
    translations.stamp(docs_copy / "guide" / "formats.zh.md")
    assert translations.problems(docs_copy) == []


def test_a_missing_translation_or_heading_id_is_named(docs_copy):
    (docs_copy / "guide" / "multi-gpu.zh.md").unlink()
    engines = docs_copy / "guide" / "engines.zh.md"
    engines.write_text(
        engines.read_text(encoding="utf-8").replace(" {#engines-and-their-defaults}", ""), "utf-8"
    )
    assert translations.problems(docs_copy) == [
        "docs/guide/engines.zh.md: headings without the English ids engines-and-their-defaults "
        "(write '## 标题 {#id}')",
        "docs/guide/multi-gpu.md: no translation (docs/guide/multi-gpu.zh.md)",
    ]


def test_the_build_stops_on_a_stale_translation(docs_copy):
    from mkdocs.exceptions import PluginError

    from docs.hooks import generate

    page = docs_copy / "validation.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nChanged.\n", encoding="utf-8")
    config = SimpleNamespace(theme={"language": "en"}, docs_dir=str(docs_copy))
    with pytest.raises(PluginError, match=r"docs/validation.zh.md: translates an older"):
        generate.on_pre_build(config)


def test_heading_ids_follow_the_toc_extension():
    text = "# Title\n\n## KV cache {#kv}\n\n```\n# not a heading\n```\n\n## Same\n\n## Same\n"
    assert translations.heading_ids(text) == ["title", "kv", "same", "same_1"]


def test_chinese_lines_are_joined_without_a_space():
    from docs.hooks.generate import join_cjk_lines

    text = "显存由权重\n和缓存组成。\n- 列表\nGPU 的\nEnglish line\n"
    assert join_cjk_lines(text) == "显存由权重和缓存组成。\n- 列表\nGPU 的\nEnglish line\n"


# The catalogue


@pytest.fixture(scope="module")
def zh() -> messages.Messages:
    return messages.Messages("zh")


def test_every_template_text_has_a_translation(zh):
    env = environment(ROOT / "docs" / "templates")
    missing = []
    for template in sorted((ROOT / "docs" / "templates").glob("*.j2")):
        for _line, _function, found in env.extract_translations(template.read_text("utf-8")):
            message = found[0] if isinstance(found, tuple) else found  # _("...", name=value)
            if message not in zh.catalogue["pages"]:
                missing.append(f"{template.name}: {message}")
    for module in sorted((ROOT / "scripts" / "tables").glob("*.py")):
        for match in re.finditer(r'\btext\(\s*"((?:[^"\\]|\\.)*)"', module.read_text("utf-8")):
            if match.group(1) not in zh.catalogue["pages"]:
                missing.append(f"{module.name}: {match.group(1)}")
    assert missing == []


def test_every_calculator_text_has_a_translation(zh):
    script = (ROOT / "docs" / "assets" / "calculator" / "calculator.js").read_text("utf-8")
    found = set()
    for call in re.finditer(
        r'\bt\(\s*(?:gpus > 1 \? )?"((?:[^"\\]|\\.)*)"(?:\s*:\s*"((?:[^"\\]|\\.)*)")?', script
    ):
        found.update(json.loads(f'"{text}"') for text in call.groups() if text)
    labels = re.findall(r'\["\w+", "([A-Z][^"]+)"\]', script)  # the components' names
    for head in re.findall(r"head: \[([^\]]*)\]", script):  # the rankings' columns
        labels += json.loads(f"[{head}]")
    assert len(found) > 40 and len(labels) > 20
    assert sorted(t for t in {*found, *labels} if t not in zh.catalogue["calculator"]) == []


def test_every_input_label_and_help_has_a_translation(zh):
    from scripts.site_assets import inputs_json

    texts = [i[k] for i in json.loads(inputs_json()) for k in ("label", "help") if i.get(k)]
    assert [t for t in texts if t not in zh.catalogue["inputs"]] == []


def test_a_translation_must_keep_its_placeholders(tmp_path):
    (tmp_path / "xx.yaml").write_text(
        'pages:\n  "Total at %(tokens)s": "总计"\ncalculator:\n  "{n} GPUs": "{n} 块 GPU"\n',
        encoding="utf-8",
    )
    with pytest.raises(
        messages.MissingTranslation, match=r"must keep the placeholders %\(tokens\)s"
    ):
        messages.Messages("xx", tmp_path)
    assert messages.catalogue_problems(json.loads('{"pages": {"a": "b"}}'), tmp_path) == []


def test_a_missing_template_text_stops_the_chinese_build(tmp_path):
    (tmp_path / "zh.yaml").write_text("pages: {}\n", encoding="utf-8")
    with pytest.raises(messages.MissingTranslation, match="no translation for 'Weights'"):
        messages.Messages("zh", tmp_path).gettext("Weights")


def translate_note(patterns: dict[str, str], note: str) -> str | None:
    """What calculator.js's tNote does: a catalogue sentence with {holes}, matched whole; a
    hole named *_list or *_items holds comma-separated items translated in turn."""
    specific_first = sorted(patterns.items(), key=lambda e: -len(re.sub(r"\{\w+\}", "", e[0])))
    for english, translated in specific_first:
        parts = re.split(r"\{(\w+)\}", english)  # text, name, text, name, ..., text
        names = parts[1::2]
        lists = [n.endswith(("_list", "_items")) for n in names]
        source = re.escape(parts[0]) + "".join(
            ("(.+)" if is_list else "(.+?)") + re.escape(text)
            for is_list, text in zip(lists, parts[2::2], strict=True)
        )
        found = re.fullmatch(source, note)
        if found is None:
            continue
        result = translated
        for name, is_list, value in zip(names, lists, found.groups(), strict=True):
            if is_list:
                items = [translate_note(patterns, item) for item in value.split(", ")]
                if None in items:
                    return None
                value = ("\u3001" if name.endswith("_items") else "\uff0c").join(map(str, items))
            else:
                value = translate_note(patterns, value) or value
            result = result.replace("{" + name + "}", value)
        return result
    return None


SWEEP = (
    [
        ("estimate", {"model": model, "engine": engine, "gpu": gpu, "gpus": gpus})
        for model in ("qwen3-32b", "deepseek-r1", "gpt-oss-120b", "gemma-3-27b", "llama-3.1-8b")
        for engine in ("ollama", "llama.cpp", "vllm", "transformers", "theory")
        for gpu, gpus in (("rtx-4090", 1), ("rtx-4090", 2), ("h100-sxm-80gb", 4))
    ]
    + [
        ("finetune", {"model": "qwen2.5-7b", "method": method, "gpu": "h100-sxm-80gb", **extra})
        for method in ("full", "freeze", "lora", "qlora")
        for extra in (
            {},
            {"gpus": 4, "zero": 3},
            {"gpus": 4, "zero": 3, "sharding": "fsdp"},
            {"gpus": 4, "zero": 1, "sharding": "megatron", "tensor_parallel": 2},
            {"gpus": 2},
            {"zero": 2},
            {"fused_loss": True},
            {"fused_loss": True, "loss_chunk_gib": 4},
            {"gpus": 2, "zero": 3, "sharding": "fsdp", "flat_parameters": True},
            {
                "gpus": 2,
                "zero": 3,
                "sharding": "fsdp",
                "grad_accumulation": 4,
                "accumulate_unsharded": True,
            },
        )
    ]
    + [
        ("finetune", {"model": "qwen2.5-7b", "method": method, "gpu": "h100-sxm-80gb", **extra})
        for method in ("dpo", "orpo", "kto", "grpo", "ppo")
        for extra in ({}, {"tuning": "full"}, {"tuning": "qlora"}, {"selective_logprobs": False})
    ]
    + [
        (
            "finetune",
            {"model": "qwen2.5-7b", "method": "grpo", "colocate_vllm": 0.3, "kl_beta": 0.1},
        ),
        (
            "finetune",
            {"model": "qwen2.5-7b", "method": "grpo", "colocate_vllm": 0.3, "vllm_sleep": True},
        ),
        ("finetune", {"model": "qwen2.5-7b", "method": "dpo", "precompute_ref": True}),
        (
            "finetune",
            {"model": "qwen2.5-3b", "method": "full", "fused_loss": True, "foreach_step": True},
        ),
        (
            "finetune",
            {
                "config": json.dumps(
                    {
                        **QWEN_7B,
                        "quantization_config": {
                            "quant_method": "bitsandbytes",
                            "load_in_4bit": True,
                            "bnb_4bit_quant_type": "nf4",
                            "llm_int8_skip_modules": ["lm_head", "model.layers.0.mlp.down_proj"],
                        },
                    }
                ),
                "method": "qlora",
            },
        ),
        (
            "finetune",
            {
                "model": "qwen2.5-7b",
                "method": "dpo",
                "tuning": "full",
                "gpus": 4,
                "zero": 1,
                "sharding": "megatron",
                "tensor_parallel": 2,
                "reference_grad_buffer": True,
            },
        ),
        ("finetune", {"model": "qwen2.5-7b", "method": "qlora", "kbit_upcast": True}),
        ("finetune", {"model": "qwen2.5-7b", "method": "qlora", "weights_dtype": "fp32"}),
        (
            "finetune",
            {
                "model": "qwen2.5-7b",
                "method": "qlora",
                "trainer": "litgpt",
                "bnb_version": "0.42.0",
                "grad_checkpointing": "off",
            },
        ),
    ]
    + [
        ("finetune", {"model": "qwen2.5-7b", "method": "qlora", "trainer": name})
        for name in (
            "trl",
            "unsloth",
            "llama-factory",
            "torchtune",
            "axolotl",
            "ms-swift",
            "litgpt",
        )
    ]
    + [
        (
            "finetune",
            {
                "model": "qwen2.5-7b",
                "method": "lora",
                "trainer": "trl",
                "trainer_version": "0.22.0",
            },
        )
    ]
)


def test_the_estimators_notes_are_translated(zh):
    from scripts.tables import Renderer

    session = Session.from_json(Renderer.from_repository(ROOT).catalogue_json(), checked=True)
    untranslated, notes = set(), 0
    for action, inputs in SWEEP:
        answer = json.loads(session.handle(json.dumps({"action": action, "inputs": inputs})))
        for note in answer["result"]["notes"] if answer["ok"] else []:
            notes += 1
            translated = translate_note(zh.catalogue["estimator"], note)
            if translated is None or not CJK.search(translated):
                untranslated.add(note)
    assert notes > 100
    assert sorted(untranslated) == []


MISTAKES = [
    {"model": "qwen9-999b"},
    {"model": "llama-3.1-8b", "gpu": "rtx-9999"},
    {"model": "llama-3.1-8b", "context": -5},
    {"model": "llama-3.1-8b", "context": "abc"},
    {"model": "llama-3.1-8b", "engine": "vllm", "gpus": 3, "gpu": "rtx-4090"},
    {"config": "{bad json"},
    {"config": "{}"},
    {"model": "llama-3.1-8b", "tensor_split": "1,2", "engine": "vllm"},
    {"model": "llama-3.1-8b", "engine": "ollama", "engine_version": "0.0.1"},
]


def test_the_commonest_mistakes_are_explained_in_chinese(zh):
    from scripts.tables import Renderer

    session = Session.from_json(Renderer.from_repository(ROOT).catalogue_json(), checked=True)
    shown = {}
    for inputs in MISTAKES:
        answer = json.loads(session.handle(json.dumps({"action": "estimate", "inputs": inputs})))
        assert not answer["ok"], inputs
        message = answer["error"]["message"]
        shown[message] = translate_note(zh.catalogue["estimator"], message)
    assert [m for m, t in shown.items() if t is None or not CJK.search(t)] == []
    assert shown[
        "unknown model 'qwen9-999b'; did you mean 'qwen3.5-9b' or 'qwen3-8b' or 'qwen3-4b'?"
    ] == ("未知模型 'qwen9-999b'；你要找的是不是 'qwen3.5-9b' or 'qwen3-8b' or 'qwen3-4b'？")
