"""Edge: the ``vram-calc`` / ``python -m calc`` command line.

    python -m calc finetune (--model ID | --config PATH) --method full|freeze|lora|qlora
        [--precision amp|bf16] [--optimizer NAME] [--lora-rank R] [--lora-targets LIST]
        [--lora-dropout P]
        [--seq-len N] [--micro-batch N] [--grad-checkpointing off|full] [--gpus N]
        [--zero 0|1|2|3] [--offload none|optimizer|all] [--json]
    python -m calc inference (--model ID | --config PATH) [--weights FORMAT]
        [--engine theory|transformers|vllm|llama.cpp|ollama] [--context TOKENS]
        [--batch SEQUENCES] [--kv-cache FORMAT] [--gpus N] [--gpu NAME | --gpu-memory SIZE]
        [--json]

Bad input ends with a one-line message on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from calc._errors import CalcError, InputError
from calc.api import InferenceRequest, resolve, run_finetune
from calc.breakdown import Estimate
from calc.engines import ENGINES
from calc.estimate import LayoutMemo, estimate_inference
from calc.finetune import (
    METHODS,
    OFFLOAD,
    OPTIMIZERS,
    PRECISIONS,
    SHARDING,
    FinetuneEstimate,
    FinetuneRequest,
    TrainComponents,
    parse_lora_targets,
)
from calc.hints import FinetuneHint, FitHint, finetune_hint, fit_hint
from calc.units import GB, GIB, MIB, format_bytes

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vram-calc",
        description="Estimate the GPU memory an LLM needs, per GPU, from its architecture.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    inference = commands.add_parser(
        "inference", help="memory to serve a model", description="Memory to serve a model."
    )
    source = inference.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="ID", help="a catalogue model id, e.g. llama-3.1-8b")
    source.add_argument(
        "--config", metavar="PATH", type=Path, help="a Hugging Face config.json file"
    )
    inference.add_argument(
        "--weights", metavar="FORMAT", help="weight format, e.g. q4_k_m, bf16, awq-int4"
    )
    inference.add_argument(
        "--engine",
        choices=list(ENGINES),
        default="llama.cpp",
        help="engine whose defaults and buffers to model (default: llama.cpp)",
    )
    inference.add_argument(
        "--context", metavar="TOKENS", type=int, help="tokens per sequence (engine default)"
    )
    inference.add_argument(
        "--batch", metavar="SEQUENCES", type=int, help="sequences served at once (default 1)"
    )
    inference.add_argument("--kv-cache", metavar="FORMAT", help="KV cache type: f16, q8_0 ...")
    inference.add_argument("--gpus", metavar="N", type=int, default=1, help="number of GPUs")
    gpu = inference.add_mutually_exclusive_group()
    gpu.add_argument(
        "--gpu",
        metavar="NAME",
        help="GPU model, e.g. 'RTX 4090D'; list several for mismatched GPUs: 'RTX 4090,RTX 3090'",
    )
    gpu.add_argument(
        "--gpu-memory", metavar="SIZE", type=parse_size, help="memory per GPU, e.g. 24GiB or 80GB"
    )
    inference.add_argument(
        "--engine-version",
        metavar="VERSION",
        help="the engine release whose defaults apply, e.g. 0.5.7 (default: the newest modelled)",
    )
    inference.add_argument(
        "--flash-attention",
        choices=["on", "off"],
        help="flash attention (default: the engine release's default)",
    )
    inference.add_argument(
        "--gpu-layers",
        metavar="N",
        type=int,
        help="llama.cpp/Ollama -ngl: layers on the GPUs (one more than the layers adds the output)",
    )
    inference.add_argument(
        "--n-cpu-moe",
        metavar="N",
        type=int,
        help="llama.cpp: keep the routed experts of the first N layers in CPU RAM",
    )
    inference.add_argument(
        "--tensor-split",
        metavar="A,B,...",
        type=parse_split,
        help="llama.cpp: share of the layers per GPU, e.g. 3,1",
    )
    inference.add_argument(
        "--gpu-memory-utilization",
        metavar="F",
        type=float,
        help="vLLM: share of each GPU it reserves (default 0.9); sets the KV capacity reported",
    )
    inference.add_argument(
        "--max-num-seqs",
        metavar="N",
        type=int,
        help="vLLM: sequences per step (default 256; 1024 on GPUs of 70 GiB or more from 0.9)",
    )
    inference.add_argument(
        "--max-num-batched-tokens",
        metavar="N",
        type=int,
        help="vLLM: tokens per step, the size of its profiling pass",
    )
    inference.add_argument("--json", action="store_true", help="print one JSON object")
    _add_finetune(commands)
    return parser


def _add_finetune(commands: Any) -> None:
    finetune = commands.add_parser(
        "finetune", help="memory to fine-tune a model", description="Memory to fine-tune a model."
    )
    source = finetune.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="ID", help="a catalogue model id")
    source.add_argument("--config", metavar="PATH", type=Path, help="a Hugging Face config.json")
    finetune.add_argument("--method", required=True, choices=METHODS)
    finetune.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="amp",
        help="amp: 16-bit compute with fp32 master weights; bf16: everything in bf16",
    )
    finetune.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    finetune.add_argument("--lora-rank", metavar="R", type=int, default=16)
    finetune.add_argument(
        "--lora-targets",
        metavar="LIST",
        default="all",
        help="attention, mlp, all, or modules: q_proj,v_proj,... embed_tokens,lm_head",
    )
    finetune.add_argument(
        "--lora-dropout",
        metavar="P",
        type=float,
        default=0.0,
        help="dropout on the adapters' input (default 0; LitGPT and ms-swift use 0.05)",
    )
    finetune.add_argument(
        "--freeze-layers",
        metavar="N",
        type=int,
        default=2,
        help="freeze: how many of the last layers train (default 2)",
    )
    finetune.add_argument("--seq-len", metavar="N", type=int, default=1024)
    finetune.add_argument("--micro-batch", metavar="N", type=int, default=1)
    finetune.add_argument("--grad-checkpointing", choices=["off", "full"], default="off")
    finetune.add_argument("--flash-attention", choices=["on", "off"], default="on")
    finetune.add_argument("--gpus", metavar="N", type=int, default=1)
    finetune.add_argument(
        "--zero", type=int, choices=SHARDING, default=0, help="ZeRO stage (3 is FSDP full sharding)"
    )
    finetune.add_argument("--offload", choices=OFFLOAD, default="none")
    savers = finetune.add_argument_group("framework features (torchtune's names)")
    for flag, meaning in (
        ("--compile", "torch.compile"),
        ("--chunked-loss", "the loss over 8 chunks"),
        ("--optimizer-in-backward", "step each parameter as its gradient arrives"),
        ("--activation-offloading", "activations wait in CPU RAM"),
        ("--fused-qkv", "q, k and v as one projection with one adapter input (LitGPT)"),
    ):
        savers.add_argument(flag, choices=["on", "off"], default="off", help=meaning)
    savers.add_argument(
        "--adapter-precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="LoRA adapters: fp32 (PEFT) or bf16 (torchtune, LitGPT bf16-true)",
    )
    gpu = finetune.add_mutually_exclusive_group()
    gpu.add_argument("--gpu", metavar="NAME", help="GPU model, e.g. 'A100 80GB'")
    gpu.add_argument("--gpu-memory", metavar="SIZE", type=parse_size, help="memory per GPU")
    finetune.add_argument("--json", action="store_true", help="print one JSON object")


_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(GiB|GB|MiB|MB)\s*$", re.IGNORECASE)
_UNITS = {"gib": GIB, "gb": GB, "mib": MIB, "mb": 1000**2}


def parse_size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a memory size; write a number and a unit, e.g. 24GiB or 80GB"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_split(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of numbers; write e.g. 3,1"
        ) from None


def read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"{path}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    if not isinstance(loaded, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(loaded).__name__}")
    return loaded


def render_table(estimate: Estimate, label: str) -> str:
    """The readable form: one row per GPU, a total row, host RAM and the notes."""
    header = (
        f"{label}: {estimate.weights_format} weights, {estimate.kv_format} KV cache, "
        f"{estimate.engine}, context {estimate.context} x {estimate.batch} sequence(s)"
    )
    columns = ("weights", "KV cache", "activations", "runtime", "total")
    rows = []
    for device in estimate.devices:
        c = device.components
        fit = ""
        if device.fits is not None:
            verdict = "fits" if device.fits else "DOES NOT FIT"
            fit = f"{verdict} ({format_bytes(device.headroom_bytes or 0, unit='GiB')} headroom)"
        rows.append(
            (
                f"GPU {device.index} {device.device.name}",
                *(format_bytes(v, unit="GiB") for v in c.as_dict().values()),
                format_bytes(device.total_bytes, unit="GiB"),
                fit,
            )
        )
    c = estimate.components
    rows.append(
        (
            "all GPUs",
            *(format_bytes(v, unit="GiB") for v in c.as_dict().values()),
            format_bytes(estimate.total_bytes, unit="GiB"),
            f"= {format_bytes(estimate.total_bytes, unit='GB')}",
        )
    )
    width = max(len(r[0]) for r in rows)
    lines = [header, ""]
    lines.append(f"{'':{width}}  " + "  ".join(f"{h:>11}" for h in columns))
    for row in rows:
        lines.append(
            f"{row[0]:{width}}  " + "  ".join(f"{v:>11}" for v in row[1:6]) + "  " + row[6]
        )
    lines.append("")
    lines.append(f"CPU RAM (host): {format_bytes(estimate.host_bytes)}")
    lines.append(
        f"parameters: {estimate.parameters.total:,} total, {estimate.parameters.active:,} active"
    )
    lines += [f"note: {note}" for note in estimate.notes]
    return "\n".join(lines)


def render_finetune(estimate: FinetuneEstimate, label: str) -> str:
    r = estimate.request
    lines = [
        f"{label}: {r.method} fine-tuning, {r.precision}, {r.optimizer}, sequence {r.seq_len} "
        f"x micro-batch {r.micro_batch}, gradient checkpointing "
        f"{'full' if r.grad_checkpointing else 'off'}, {r.gpus} GPU(s), ZeRO {r.zero}",
        "",
    ]
    keys = list(TrainComponents().as_dict())
    width = max(len(f"GPU {d.index} {d.device.name}") for d in estimate.devices)
    lines.append(f"{'':{width}}  " + "  ".join(f"{k:>11}" for k in [*keys, "total"]))
    for device in estimate.devices:
        values = [*device.components.as_dict().values(), device.total_bytes]
        fit = ""
        if device.headroom_bytes is not None:
            verdict = "fits" if device.headroom_bytes >= 0 else "DOES NOT FIT"
            fit = f"  {verdict} ({format_bytes(device.headroom_bytes, unit='GiB')} headroom)"
        name = f"GPU {device.index} {device.device.name}"
        lines.append(
            f"{name:{width}}  "
            + "  ".join(f"{format_bytes(v, unit='GiB'):>11}" for v in values)
            + fit
        )
    lines.append("")
    lines.append(f"all GPUs: {format_bytes(estimate.total_bytes)}")
    lines.append(f"CPU RAM (offloaded): {format_bytes(estimate.host.total)}")
    lines.append(
        f"parameters: {estimate.total_parameters:,} total, "
        f"{estimate.trainable_parameters:,} trainable"
    )
    lines += [f"note: {note}" for note in estimate.notes]
    return "\n".join(lines)


def _finetune(args: argparse.Namespace) -> int:
    from calc.data_files import load_catalogue

    catalogue = load_catalogue()
    config = read_config(args.config) if args.config is not None else None
    request = FinetuneRequest(
        method=args.method,
        precision=args.precision,
        optimizer=args.optimizer,
        lora_rank=args.lora_rank,
        lora_targets=parse_lora_targets(args.lora_targets),
        freeze_trainable_layers=args.freeze_layers,
        seq_len=args.seq_len,
        micro_batch=args.micro_batch,
        grad_checkpointing=args.grad_checkpointing == "full",
        flash_attention=args.flash_attention == "on",
        gpus=args.gpus,
        zero=args.zero,
        offload=args.offload,
        compiled=args.compile == "on",
        chunked_loss=args.chunked_loss == "on",
        optimizer_in_backward=args.optimizer_in_backward == "on",
        activation_offloading=args.activation_offloading == "on",
        adapter_precision=args.adapter_precision,
        lora_dropout=args.lora_dropout,
        fused_qkv=args.fused_qkv == "on",
    )
    where: dict[str, Any] = {
        "model": args.model,
        "config": config,
        "gpu": args.gpu,
        "gpu_memory_bytes": args.gpu_memory,
    }
    estimate = run_finetune(catalogue, request, **where)
    if args.json:
        print(json.dumps(estimate.to_json(), indent=2))
    else:
        label = catalogue.model(args.model).name if args.model else str(args.config)
        print(render_finetune(estimate, label))
        if estimate.fits is False:
            print(finetune_hint_line(finetune_hint(catalogue, request, where)))
    return 0


def _inference(args: argparse.Namespace) -> int:
    from calc.data_files import load_catalogue

    catalogue = load_catalogue()
    config = read_config(args.config) if args.config is not None else None
    request = InferenceRequest(
        model=args.model,
        config=config,
        weights=args.weights,
        engine=args.engine,
        context=args.context,
        batch=args.batch,
        kv_cache=args.kv_cache,
        gpus=args.gpus,
        gpu=args.gpu,
        gpu_memory_bytes=args.gpu_memory,
        engine_version=args.engine_version,
        flash_attention=None if args.flash_attention is None else args.flash_attention == "on",
        gpu_layers=args.gpu_layers,
        cpu_moe_layers=args.n_cpu_moe,
        tensor_split=args.tensor_split,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
    )
    layouts: LayoutMemo = {}
    plan = resolve(catalogue, request, layouts=layouts)
    estimate = estimate_inference(plan, layouts=layouts)
    if args.json:
        print(json.dumps(estimate.to_json(), indent=2))
    else:
        label = catalogue.model(args.model).name if args.model else str(args.config)
        print(render_table(estimate, label))
        if estimate.fits is False:
            hint = fit_hint(catalogue, plan, layouts)
            print(inference_hint_line(hint))
    return 0


def inference_hint_line(hint: FitHint | None) -> str:
    """What would fit, in words, for a setup that does not."""
    if hint is None:
        return ""
    return _would_fit(
        None
        if hint.max_context is None
        else f"a context of up to {hint.max_context:,} tokens per sequence",
        None if hint.best_weights is None else f"{hint.best_weights} weights",
        None if hint.gpus_needed is None else f"{hint.gpus_needed} of these GPUs",
    )


def finetune_hint_line(hint: FinetuneHint | None) -> str:
    if hint is None:
        return ""
    return _would_fit(
        None if hint.max_seq_len is None else f"sequences of up to {hint.max_seq_len:,} tokens",
        None
        if hint.gpus_needed is None
        else f"{hint.gpus_needed} of these GPUs with ZeRO-{hint.zero}",
    )


def _would_fit(*answers: str | None) -> str:
    parts = [a for a in answers if a is not None]
    return "would fit: " + ("; or ".join(parts) if parts else "nothing on these GPUs")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = _finetune if args.command == "finetune" else _inference
    try:
        return command(args)
    except CalcError as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
