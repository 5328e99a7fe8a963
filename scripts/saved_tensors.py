"""Compare the estimator's activations per token and layer with what autograd really keeps.

    python scripts/saved_tensors.py --model llama-3.1-8b qwen3-4b gemma-3-4b \\
        [--method lora|qlora|full] [--kbit-upcast] [--targets q_proj,v_proj|all-linear]
        [--tokens 128]

For each catalogue model it builds the architecture twice from the catalogue's config.json with
random weights on the CPU, with one layer and with two (a 1,024-entry vocabulary, so the loss
stays small), runs one training forward pass in bf16 (LoRA through PEFT with fp32 adapters
under autocast, as TRL runs it; QLoRA the same on bitsandbytes' NF4 layers, optionally prepared
by PEFT's prepare_model_for_kbit_training; full fine-tuning in bf16), and walks the autograd
graph from the loss, adding up every tensor its nodes saved for the backward pass, each storage
once and the weights left out. The second layer's share, per token, is what one layer keeps; it
prints that beside ``calc.finetune.layer_token_bytes`` for the same setting. No GPU is needed:
what autograd saves does not depend on the device, except for the attention kernel (the CPU's
flash kernel keeps what the CUDA ones keep, unless a model's attention dropout sends it to the
math kernel, which keeps the scores). Needs PyTorch, transformers and PEFT beside the project's
own dependencies, which do not include them: ``pip install torch transformers peft`` (and
``bitsandbytes`` for QLoRA: 0.50 runs its 4-bit layers on the CPU).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calc import (  # noqa: E402
    LORA_GROUPS,
    FinetuneRequest,
    layer_token_bytes,
    load_catalogue,
    parse_config,
)

VOCAB = 1024  # the output layer is not what is compared; a small one keeps the run quick
ALL_LINEAR = ("all-linear",)  # PEFT's every linear layer but the output layer


@dataclass(frozen=True)
class Layer:
    """One model's bytes per token and layer: as autograd kept them, and as estimated."""

    model: str
    hidden_size: int
    kept: float
    estimated: int

    @property
    def error(self) -> float:
        return self.estimated / self.kept - 1


def small_config(config: dict[str, Any], layers: int) -> dict[str, Any]:
    """The catalogue's config with ``layers`` layers, a small vocabulary and no layer list a
    longer model would need (sliding-window patterns, per-layer types); a vision-language
    model's text model alone."""
    if "text_config" in config:
        config = dict(config["text_config"])
    dropped = ("layer_types", "mlp_only_layers", "pad_token_id", "bos_token_id", "eos_token_id")
    small = {k: v for k, v in config.items() if k not in dropped}
    small.update(num_hidden_layers=layers, vocab_size=VOCAB, pad_token_id=None)
    return small


def request(method: str, targets: tuple[str, ...], kbit_upcast: bool = False) -> FinetuneRequest:
    """The estimator's request for the run this script makes."""
    if method == "full":
        return FinetuneRequest(method="full", precision="bf16")
    adapted = LORA_GROUPS["all"] if targets == ALL_LINEAR else targets
    return FinetuneRequest(
        method="qlora" if method == "qlora" else "lora",
        lora_targets=adapted,
        adapter_precision="fp32",
        kbit_upcast=kbit_upcast,
    )


def quantise(model: Any) -> None:
    """Every linear layer but the output layer as bitsandbytes' NF4 Linear4bit computing in bf16,
    as transformers' load_in_4bit builds QLoRA's base."""
    import bitsandbytes as bnb
    import torch

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear) and name != "lm_head":
                four = bnb.nn.Linear4bit(
                    child.in_features, child.out_features, bias=child.bias is not None,
                    compute_dtype=torch.bfloat16, quant_type="nf4",
                )  # fmt: skip
                four.weight = bnb.nn.Params4bit(
                    child.weight.data.clone(), requires_grad=False, quant_type="nf4"
                )
                setattr(module, name, four.to("cpu"))


def kept_bytes(
    config: dict[str, Any], method: str, targets: tuple[str, ...], tokens: int, upcast: bool
) -> int:
    """Bytes of every tensor the autograd graph of one training forward saved."""
    import torch
    import transformers

    built = transformers.AutoConfig.for_model(**config)
    built._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(built, dtype=torch.bfloat16)
    if method == "qlora":
        quantise(model)
    if method in ("lora", "qlora"):
        import peft

        if upcast:  # the classic QLoRA recipe's fp32 cast of every weight left unquantised
            model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        modules: str | list[str] = "all-linear" if targets == ALL_LINEAR else list(targets)
        model = peft.get_peft_model(model, peft.LoraConfig(r=8, target_modules=modules))
    model.train()
    weights = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    ids = torch.randint(0, VOCAB, (1, tokens))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=method != "full"):
        loss = model(input_ids=ids, labels=ids).loss
    storages: dict[int, int] = {}
    pending, seen = [loss.grad_fn], set()
    while pending:
        node = pending.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        for name in dir(node):
            if name.startswith("_saved_"):
                _add_saved(getattr(node, name, None), weights, storages)
        pending.extend(child for child, _ in node.next_functions)
    return sum(storages.values())


def _add_saved(value: Any, weights: set[int], storages: dict[int, int]) -> None:
    import torch

    for tensor in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(tensor, torch.Tensor) and tensor.numel():
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in weights:
                storages[storage.data_ptr()] = storage.nbytes()


def compare(model_id: str, config: dict[str, Any], method: str, targets: tuple[str, ...],
            tokens: int, upcast: bool = False, block: int = 1) -> Layer:  # fmt: skip
    """``block`` layers at a time: a hybrid model's repeating group (Qwen3.5: three linear
    attention layers and one full), averaged per layer."""
    one = kept_bytes(small_config(config, block), method, targets, tokens, upcast) / block
    two = kept_bytes(small_config(config, 2 * block), method, targets, tokens, upcast) / block
    if two <= one:
        raise SystemExit(
            f"error: {model_id}: a second layer kept nothing more; is it a text model?"
        )
    arch = parse_config(small_config(config, 2 * block))
    estimate = layer_token_bytes(arch, request(method, targets, upcast))
    return Layer(model_id, arch.hidden_size, (two - one) / tokens, estimate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", nargs="+", required=True, help="catalogue model ids")
    parser.add_argument("--method", choices=["lora", "qlora", "full"], default="lora")
    parser.add_argument(
        "--kbit-upcast",
        action="store_true",
        help="QLoRA through PEFT's prepare_model_for_kbit_training (needs bitsandbytes)",
    )
    parser.add_argument(
        "--targets", default="q_proj,v_proj", help="LoRA's projections, or all-linear"
    )
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument(
        "--block", type=int, default=1, help="layers per repeating group (Qwen3.5: 4)"
    )
    args = parser.parse_args(argv)
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        print(
            "error: this script needs PyTorch, transformers and PEFT: "
            "pip install torch transformers peft",
            file=sys.stderr,
        )
        return 2
    catalogue = load_catalogue()
    targets = tuple(args.targets.split(","))
    for model_id in args.model:
        config = dict(catalogue.model(model_id).config)
        try:
            layer = compare(
                model_id, config, args.method, targets, args.tokens, args.kbit_upcast, args.block
            )
        except ValueError as error:  # e.g. a model transformers runs without SDPA (Gemma 2)
            print(f"error: {model_id}: {error}", file=sys.stderr)
            return 1
        h = layer.hidden_size
        print(
            f"{model_id} ({args.method}): autograd keeps {layer.kept:,.0f} bytes per token and "
            f"layer ({layer.kept / h:.2f}h), the estimate {layer.estimated:,} "
            f"({layer.estimated / h:.2f}h): {layer.error * 100:+.1f}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
