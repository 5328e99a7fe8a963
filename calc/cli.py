"""Edge: the ``vram-calc`` / ``python -m calc`` command line.

    python -m calc inference (--model ID | --config PATH) [--engine NAME] [--weights FORMAT]
        [--context TOKENS] [--batch SEQUENCES] [--gpu NAME | --gpu-memory SIZE] [--gpus N]
        [...] [--json]
    python -m calc finetune (--model ID | --config PATH) [--method lora|qlora|full|freeze]
        [--seq-len N] [--micro-batch N] [--gpu NAME | --gpu-memory SIZE] [--gpus N]
        [...] [--json]

Every option comes from the input table (``calc.inputs``); ``--help`` lists them with their
defaults. Bad input ends with a one-line message on stderr and exit status 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calc import gguf, inputs
from calc._errors import CalcError, ConfigError, InputError
from calc.api import resolve, run_finetune
from calc.breakdown import Components, Estimate
from calc.engines import ENGINES, engine_by_name
from calc.estimate import LayoutMemo, estimate_inference
from calc.finetune import FinetuneEstimate, TrainComponents
from calc.inputs import Input, Mode
from calc.requests import InferenceRequest
from calc.units import GB, GIB, MIB, format_bytes

if TYPE_CHECKING:  # each command imports what it needs: an estimate loads no planner
    from calc.hints import FinetuneHint, FitHint

EXIT_BAD_INPUT = 2
COMMANDS: tuple[tuple[Mode, str, str], ...] = (
    ("inference", "inference", "memory to serve a model"),
    ("finetune", "finetune", "memory to fine-tune a model"),
    (
        "inference",
        "plan",
        "where to put a model's layers and experts: the engine's choice and the fastest that fits",
    ),
    (
        "inference",
        "chart",
        "an SVG chart of GPU memory (or generation or prompt speed) against context",
    ),
    (
        "inference",
        "gpus",
        "every catalogue GPU ranked for one model: how many of it hold the model, and the speed",
    ),
    (
        "inference",
        "fits",
        "every catalogue model ranked for these GPUs: the format, context and speed that fit",
    ),
)
# "fits" ranks the catalogue: it takes everything inference does but the model
# Options that exclude each other: a model or a config; a GPU name or a memory size.
EXCLUSIVE = (("model", "config", "gguf"), ("gpu", "gpu_memory_gib"))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line, as every other bad input gets: what is wrong, and where the help is."""
        sys.stderr.write(f"error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command``, only that command's (building all six costs a fifth of an
    estimate's start; ``vram-calc --help`` and a misspelt command get them all)."""
    parser = _Parser(
        prog="vram-calc",
        description="Estimate the GPU memory an LLM needs, per GPU, from its architecture.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for mode, name, summary in COMMANDS:
        if command in (None, name):
            sub = commands.add_parser(name, help=summary, description=summary.capitalize() + ".")
            _add_options(sub, mode, name)
    return parser


def _add_options(sub: argparse.ArgumentParser, mode: Mode, command: str) -> None:
    groups: dict[tuple[str, ...], Any] = {EXCLUSIVE[1]: sub.add_mutually_exclusive_group()}
    if command != "fits":  # an empty group breaks argparse's usage line
        groups[EXCLUSIVE[0]] = sub.add_mutually_exclusive_group(required=True)
    for item in inputs.for_mode(mode):
        if command == "fits" and item.name in EXCLUSIVE[0]:
            continue
        group = next((g for names, g in groups.items() if item.name in names), sub)
        group.add_argument(item.option, dest=item.name, **_argument(item, mode))
    if command == "chart":
        from calc.charts import WHATS

        sub.add_argument(
            "--what",
            choices=WHATS,
            default="memory",
            help="the quantity drawn (default: memory)",
        )
    else:
        sub.add_argument("--json", action="store_true", help="print one JSON object")


def _argument(item: Input, mode: Mode) -> dict[str, Any]:
    """argparse's settings for one input: its type, choices and help with the default."""
    settings: dict[str, Any] = {"default": None, "help": _help(item, mode)}
    if item.metavar:
        settings["metavar"] = item.metavar
    if item.choices:
        settings["choices"] = list(item.values)
        if all(isinstance(v, int) for v in item.values):
            settings["type"] = int
    types: dict[str, Callable[[str], Any]] = {
        "int": int,
        "fraction": float,
        "memory": parse_size,
        "split": parse_split,
        "config": Path,
        "gguf": Path,
    }
    if item.kind in types:
        settings["type"] = types[item.kind]
    return settings


def _help(item: Input, mode: Mode) -> str:
    owners = "/".join(ENGINES[e].name for e in item.engines)
    text = f"{owners}: {item.help}" if owners else item.help
    default = item.default_text(mode)
    rule = item.default_rule if default is None else str(default)
    return f"{text} (default: {rule})" if rule else text


def values_from(args: argparse.Namespace, mode: Mode) -> dict[str, Any]:
    """The options given, as the table's typed values by input name."""
    values: dict[str, Any] = {}
    for item in inputs.for_mode(mode):
        raw = getattr(args, item.name, None)  # "fits" has no model options
        if raw is None:
            continue
        if item.kind == "config":
            values[item.name] = read_config(raw)
        elif item.kind == "gguf":
            values[item.name] = read_gguf(raw)
        elif item.kind in ("switch", "targets"):
            values[item.name] = inputs.parse_value(item, raw)
        else:
            values[item.name] = raw
    return values


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


def _label(catalogue: Any, args: argparse.Namespace) -> str:
    if args.model:
        return str(catalogue.model(args.model).name)
    return str(getattr(args, "gguf", None) or args.config)


def read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text; a config.json is JSON in UTF-8") from None
    return inputs.parse_config_text(text, where=str(path))


GGUF_FIRST_READ = 8 * 2**20  # most headers (metadata, vocabulary, tensor table) fit in this


def read_gguf(path: Path) -> dict[str, Any]:
    """A GGUF file's header as calc.gguf.summary gives it, reading only the header's bytes."""
    want = GGUF_FIRST_READ
    try:
        with path.open("rb") as file:
            while True:
                file.seek(0)
                data = file.read(want)
                try:
                    return gguf.summary(gguf.read_header(data, where=str(path)))
                except gguf.NeedMoreBytes as more:
                    if len(data) < want:  # the file ended first
                        raise ConfigError(
                            f"{path}: the file ends inside its GGUF header ({len(data):,} bytes); "
                            "it is cut short or still downloading"
                        ) from None
                    want = more.at_least
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None


_COLUMNS = {
    "weights": "weights",
    "vision": "vision",
    "kv_cache": "KV cache",
    "recurrent_state": "recurrent",
    "activations": "activations",
    "runtime": "runtime",
}


def render_table(estimate: Estimate, label: str) -> str:
    """The readable form: one row per GPU, a total row, host RAM and the notes."""
    header = (
        f"{label}: {estimate.weights_format} weights, {estimate.kv_format} KV cache, "
        f"{estimate.engine}, context {estimate.context} x {estimate.batch} sequence(s)"
    )
    # the vision and recurrent columns only for the models that have them
    parts = estimate.components.as_dict()
    keys = [k for k in _COLUMNS if k not in ("vision", "recurrent_state") or parts[k]]
    columns = [*(_COLUMNS[k] for k in keys), "total"]

    def cells(c: Components, total: int) -> list[str]:
        values = c.as_dict()
        return [format_bytes(values[k], unit="GiB") for k in keys] + [
            format_bytes(total, unit="GiB")
        ]

    rows = []
    for device in estimate.devices:
        fit = ""
        if device.fits is not None:
            verdict = "fits" if device.fits else "DOES NOT FIT"
            fit = f"{verdict} ({format_bytes(device.headroom_bytes or 0, unit='GiB')} headroom)"
        name = f"GPU {device.index} {device.device.name}"
        rows.append((name, cells(device.components, device.total_bytes), fit))
    total = f"= {format_bytes(estimate.total_bytes, unit='GB')}"
    rows.append(("all GPUs", cells(estimate.components, estimate.total_bytes), total))
    width = max(len(r[0]) for r in rows)
    lines = [header, ""]
    lines.append(f"{'':{width}}  " + "  ".join(f"{h:>11}" for h in columns))
    for name, values, tail in rows:
        lines.append(f"{name:{width}}  " + "  ".join(f"{v:>11}" for v in values) + "  " + tail)
    lines.append("")
    lines.append(f"CPU RAM (host): {format_bytes(estimate.host_bytes)}")
    lines.append(
        f"parameters: {estimate.parameters.total:,} total, {estimate.parameters.active:,} active"
    )
    speed = estimate.speed
    if speed:
        line = (
            f"speed ({speed['backend']}, estimated): a {estimate.context:,}-token prompt at "
            f"{speed['prefill_tokens_per_s']:,.0f} tokens/s, generation at "
            f"{speed['decode_tokens_per_s']:,.1f} tokens/s"
        )
        if speed.get("aggregate_decode_tokens_per_s"):
            line += (
                f", {speed['aggregate_decode_tokens_per_s']:,.0f} tokens/s for all "
                f"{estimate.batch} sequences"
            )
        lines.append(f"{line} (limited by {speed['limited_by']})")
    if estimate.serving:
        lines.append(serving_line(estimate.serving))
    lines += [f"note: {note}" for note in estimate.notes]
    return "\n".join(lines)


def serving_line(serving: Mapping[str, Any]) -> str:
    """A server's capacity in words: sequences at once, their tokens, their rate together."""
    line = (
        f"serving: {serving['sequences']:,} sequence(s) at once, up to "
        f"{serving['tokens_per_sequence']:,} tokens each ({serving['kv_cache_tokens']:,} tokens "
        "of KV cache)"
    )
    rate = serving.get("aggregate_decode_tokens_per_s")
    if rate:
        line += f", generating {rate:,.0f} tokens/s together with every cache full"
    return line


def render_finetune(estimate: FinetuneEstimate, label: str) -> str:
    r = estimate.request
    method = r.method if r.method == r.trains else f"{r.method} ({r.trains})"
    lines = [
        f"{label}: {method} fine-tuning, {r.precision}, {r.optimizer}, sequence {r.seq_len} "
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
    values = values_from(args, "finetune")
    request, where = inputs.finetune_request(values)
    estimate = run_finetune(catalogue, request, **where)
    if args.json:
        print(json.dumps(estimate.to_json(), indent=2))
    else:
        label = _label(catalogue, args)
        print(render_finetune(estimate, label))
        if estimate.fits is False:
            from calc.hints import finetune_hint

            print(finetune_hint_line(finetune_hint(catalogue, request, where)))
    return 0


def _inference(args: argparse.Namespace) -> int:
    from calc.data_files import load_catalogue

    catalogue = load_catalogue()
    request = inputs.inference_request(values_from(args, "inference"))
    layouts: LayoutMemo = {}
    plan = resolve(catalogue, request, layouts=layouts)
    estimate = estimate_inference(plan, layouts=layouts)
    if args.json:
        print(json.dumps(estimate.to_json(), indent=2))
    else:
        label = _label(catalogue, args)
        print(render_table(estimate, label))
        if estimate.fits is False:
            from calc.hints import fit_hint, verified

            hint = fit_hint(catalogue, plan, layouts, estimate)
            hint = None if hint is None else verified(catalogue, request, hint)
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
        None
        if hint.pipeline is None
        else f"{hint.pipeline[0] * hint.pipeline[1]} of them with pipeline parallel "
        f"(tensor parallel {hint.pipeline[0]} x {hint.pipeline[1]} stages)",
    )


def finetune_hint_line(hint: FinetuneHint | None) -> str:
    if hint is None:
        return ""
    return _would_fit(
        "the base model loaded in bf16 (--weights-dtype bf16)"
        if hint.fits_with_bf16_base
        else None,
        None if hint.max_seq_len is None else f"sequences of up to {hint.max_seq_len:,} tokens",
        None
        if hint.gpus_needed is None
        else f"{hint.gpus_needed} of these GPUs with ZeRO-{hint.zero}",
    )


def _would_fit(*answers: str | None) -> str:
    parts = [a for a in answers if a is not None]
    return "would fit: " + ("; or ".join(parts) if parts else "nothing on these GPUs")


def _plan(args: argparse.Namespace) -> int:
    from calc.data_files import load_catalogue

    catalogue = load_catalogue()
    from calc.planner import plan_offload

    request = inputs.inference_request(values_from(args, "inference"))
    choices = plan_offload(catalogue, request)
    option = engine_by_name(request.engine).layers_option
    if args.json:
        print(json.dumps([c.to_json(option) for c in choices], indent=2))
        return 0
    for choice in choices:
        verdict = "fits" if choice.fits else "does not fit" if choice.fits is False else ""
        speed = ""
        if choice.decode_tokens_per_s is not None:
            speed = (
                f", generation {choice.decode_tokens_per_s:,.1f} tokens/s, prompt "
                f"{choice.prefill_tokens_per_s or 0:,.0f} tokens/s"
            )
        print(
            f"{choice.label}: {choice.flags(option)} ({verdict}; GPUs "
            f"{format_bytes(choice.gpu_bytes, unit='GiB')}, RAM "
            f"{format_bytes(choice.host_bytes, unit='GiB')}{speed})"
        )
    return 0


def _chart(args: argparse.Namespace) -> int:
    """The SVG on standard output (python -m calc chart ... > chart.svg)."""
    from calc.data_files import load_catalogue

    catalogue = load_catalogue()
    from calc.charts import context_curve, svg_chart

    request = inputs.inference_request(values_from(args, "inference"))
    points = context_curve(catalogue, request)
    print(svg_chart(_label(catalogue, args), points, args.what))
    return 0


def _ranking(args: argparse.Namespace) -> tuple[Any, InferenceRequest]:
    """The catalogue and the request a ranking command was given."""
    from calc.data_files import load_catalogue

    return load_catalogue(), inputs.inference_request(values_from(args, "inference"))


def _speeds(decode: float | None, prefill: float | None) -> str:
    return f"{decode or 0:>8,.1f} t/s {prefill or 0:>6,.0f} t/s"


def _gpus(args: argparse.Namespace) -> int:
    from calc.planner import rank_gpus

    catalogue, request = _ranking(args)
    ranked = rank_gpus(catalogue, request)
    if args.json:
        print(json.dumps([r.to_json() for r in ranked], indent=2))
        return 0
    print(f"{'GPU':46} {'how many':>8} {'memory':>22} {'generation':>12} {'prompt':>10}")
    for r in ranked:
        if r.count is None:
            print(f"{r.name:46} {'too small':>8}")
            continue
        speeds = _speeds(r.decode_tokens_per_s, r.prefill_tokens_per_s)
        print(f"{r.name:46} {r.count:>8} {format_bytes(r.memory_bytes):>22} {speeds}")
    return 0


def _fits(args: argparse.Namespace) -> int:
    from calc.planner import rank_models

    catalogue, request = _ranking(args)
    ranked = rank_models(catalogue, request)
    if args.json:
        print(json.dumps([r.to_json() for r in ranked], indent=2))
        return 0
    print(f"{'model':42} {'weights':>10} {'longest context':>16} {'generation':>12} {'prompt':>10}")
    for r in ranked:
        if r.weights is None:
            print(f"{r.name:42} {'does not fit':>10}")
            continue
        speeds = _speeds(r.decode_tokens_per_s, r.prefill_tokens_per_s)
        print(f"{r.name:42} {r.weights:>10} {r.max_context or 0:>16,} {speeds}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and argv[0] in {c[1] for c in COMMANDS} else None
    args = build_parser(command).parse_args(argv)
    commands = {
        "finetune": _finetune,
        "plan": _plan,
        "fits": _fits,
        "chart": _chart,
        "gpus": _gpus,
    }
    try:
        return commands.get(args.command, _inference)(args)
    except CalcError as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # the reader went away (| head): not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
