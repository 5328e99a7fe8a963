"""Throw random requests at the bridge and random config.json files at the estimator, and count
how each ended: an answer, a one-line error, an internal error, or too slow.

    .venv/bin/python scripts/fuzz.py [--requests 100000] [--configs 10000] [--seed 1]

Issue 15's bar: no internal error (a traceback turned into JSON counts as one) and nothing over
two seconds. Prints the counts by class and the first few failures of each kind.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calc import CalcError, InferenceRequest, Session, load_catalogue, run_inference  # noqa: E402

SLOW = 2.0
FIELDS = [
    "model", "engine", "weights", "context", "batch", "kv_cache", "gpus", "gpu", "gpu_memory_gib",
    "ram_gib", "unified_memory_gib", "wired_limit_gib", "tensor_split", "gpu_layers",
    "cpu_moe_layers", "flash_attention", "vision", "backend", "engine_version", "method",
    "precision", "optimizer", "lora_rank", "seq_len", "micro_batch", "zero", "offload",
]  # fmt: skip
ACTIONS = ["estimate", "estimate", "estimate", "finetune", "plan", "chart", "gguf_header", "x"]


def value(rng: random.Random, known: list[str]) -> Any:
    kind = rng.randrange(9)
    if kind == 0:
        return rng.choice(known)
    if kind == 1:
        return rng.randint(-5, 5)
    if kind == 2:
        return rng.choice([0, 1, 2**31, 2**63, 10**30, -(10**30)])
    if kind == 3:
        return rng.choice([0.5, -0.0, 1e308, float("inf"), float("nan"), 1e-300])
    if kind == 4:
        return rng.choice(["", " ", "on", "off", "1,1", "nan,1", "1e400", "\u202e", "<b>x</b>"])
    if kind == 5:
        return rng.choice([None, True, False])
    if kind == 6:
        return [rng.randint(0, 3)] * rng.randint(0, 3)
    if kind == 7:
        return {"a": {"b": rng.random()}}
    return "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(rng.randint(1, 12)))


def request(rng: random.Random, known: list[str]) -> str:
    inputs = {rng.choice(FIELDS): value(rng, known) for _ in range(rng.randint(0, 8))}
    if rng.random() < 0.7:
        inputs["model"] = rng.choice(known[:40])
    body: dict[str, Any] = {"action": rng.choice(ACTIONS), "inputs": inputs}
    if body["action"] == "gguf_header":
        body["bytes_base64"] = rng.choice(["", "R0dVRg==", "!!", "AAAA" * rng.randint(0, 50)])
    if body["action"] in ("plan", "chart"):
        inputs["model"] = "qwen3-0.6b"  # the slower actions on a small model
    text = json.dumps(body)
    if rng.random() < 0.02:  # broken JSON now and then
        text = text[: rng.randint(0, len(text))]
    return text


def mutated_config(rng: random.Random, config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(config))
    keys = list(out)
    for _ in range(rng.randint(1, 4)):
        key = rng.choice(keys)
        move = rng.randrange(5)
        if move == 0:
            out.pop(key, None)
        elif move == 1:
            out[key] = value(rng, ["llama", "qwen3", "deepseek_v3"])
        elif move == 2 and isinstance(out.get(key), int) and not isinstance(out[key], bool):
            out[key] = out[key] * rng.choice([0, -1, 10**6, 10**12])
        elif move == 3:
            out[key] = [out.get(key)] * rng.randint(0, 3)
        else:
            out[
                rng.choice(["num_experts", "num_experts_per_tok", "head_dim", "sliding_window"])
            ] = rng.randint(0, 10**6)
    return out


def classify(seconds: float, answer: dict[str, Any] | None, error: str | None) -> str:
    if seconds > SLOW:
        return "slow"
    if error is not None:
        return "internal"
    assert answer is not None
    if answer.get("ok"):
        return "answer"
    message = str(answer["error"]["message"])
    return "internal" if "internal error" in message or "\n" in message else "error"


Examples = dict[str, list[str]]


def fuzz_bridge(session: Session, rng: random.Random, known: list[str], n: int,
                counts: Counter[str], examples: Examples) -> None:  # fmt: skip
    for _ in range(n):
        text = request(rng, known)
        t = time.perf_counter()
        try:
            answer, error = json.loads(session.handle(text)), None
        except Exception as exc:  # the bridge must never raise: count it
            answer, error = None, f"{type(exc).__name__}: {exc}"
        kind = classify(time.perf_counter() - t, answer, error)
        counts[f"bridge {kind}"] += 1
        if kind in ("internal", "slow"):
            examples.setdefault(f"bridge {kind}", []).append(text[:200])


def fuzz_configs(catalogue: Any, rng: random.Random, n: int, counts: Counter[str],
                 examples: Examples) -> None:  # fmt: skip
    configs = [dict(m.config) for m in catalogue.models.values()]
    for _ in range(n):
        original = rng.choice(configs)
        config = mutated_config(rng, original)
        t = time.perf_counter()
        error = None
        try:
            run_inference(catalogue, InferenceRequest(config=config))
            kind = "answer"
        except CalcError as exc:
            kind = "error" if "\n" not in str(exc) else "internal"
        except Exception as exc:
            kind, error = "internal", f"{type(exc).__name__}: {exc}"
        if time.perf_counter() - t > SLOW:
            kind = "slow"
        counts[f"config {kind}"] += 1
        if kind in ("internal", "slow"):
            changed = {
                k: config.get(k, "(removed)")
                for k in {*config, *original}
                if config.get(k, "(removed)") != original.get(k)
            }
            line = f"{error or ''} | {original.get('model_type')} | {json.dumps(changed)[:300]}"
            examples.setdefault(f"config {kind}", []).append(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--configs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    catalogue = load_catalogue()
    known = [*sorted(catalogue.models), *sorted(catalogue.gpus), *sorted(catalogue.weight_formats)]
    counts: Counter[str] = Counter()
    examples: Examples = {}
    started = time.perf_counter()
    fuzz_bridge(Session(catalogue), rng, known, args.requests, counts, examples)
    fuzz_configs(catalogue, rng, args.configs, counts, examples)
    for key in sorted(counts):
        print(f"{key:20} {counts[key]:8,}")
    print(f"{time.perf_counter() - started:.0f} s in all")
    for key, found in examples.items():
        print(f"\n{key}: {len(found)}, first ones:")
        for line in found[:5]:
            print("  ", line)
    return 1 if examples else 0


if __name__ == "__main__":
    sys.exit(main())
