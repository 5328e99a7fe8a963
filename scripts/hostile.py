"""Run issue 15's hostile cases as a reader would meet them and count how each class ends.

    .venv/bin/python scripts/hostile.py

Each case is a real command (the CLI, ``check_data.py``, ``add_model.py``) or a bridge request,
on a scratch copy of data/ where it breaks one. A case passes when it ends within two seconds
with what it should: a one-line error naming the problem (``error:`` on stderr, exit status 2,
or the data checker's ``file:line`` lines, exit 1), a bridge answer as JSON, or the right
answer. Prints one line per case and the counts by class; exits 1 if any case failed. The
tests run the same corpus (tests/test_hostile.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calc import Session, load_catalogue  # noqa: E402

LIMIT_S = 2.0
Outcome = tuple[bool, str]  # passed, what happened
PROBLEMS = re.compile(r"^\d+ problem\(s\)$")  # check_data.py's last line


@dataclass(frozen=True)
class Case:
    kind: str  # the class: work before validation, tracebacks, silently wrong
    name: str
    run: Callable[[Path], Outcome]


def command(args: list[str], scratch: Path, stdin: bytes | None = None) -> Outcome:
    """A command's one-line error: status 2 (the CLI) or 1 (the data scripts), no traceback."""
    env = {**os.environ, "VRAM_GUIDE_DATA": str(scratch / "data"), "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        input=stdin,
        timeout=60,
        check=False,
    )
    err = result.stderr.decode("utf-8", "replace")
    if args[0].startswith("scripts/"):  # the data scripts list their problems on stdout
        err += result.stdout.decode("utf-8", "replace")
    lines = [line for line in err.splitlines() if line.strip()]
    ok = result.returncode in (1, 2) and bool(lines) and "Traceback" not in err
    ok = ok and all(line.startswith(("error:", "data/")) or PROBLEMS.match(line) for line in lines)
    return ok, lines[0][:110] if lines else f"exit {result.returncode}, nothing on stderr"


def cli(*args: str) -> Callable[[Path], Outcome]:
    def run(scratch: Path) -> Outcome:
        ok, said = command(["-m", "calc", *args], scratch)
        return ok and len(said) > 0, said

    return run


def on_qwen(kind: str, name: str, command: str, *args: str) -> Case:
    """A command-line case on the catalogue's Qwen3 8B."""
    return Case(kind, name, cli(command, "--model", "qwen3-8b", *args))


def cli_config(config: Any, *args: str, raw: bytes | None = None) -> Callable[[Path], Outcome]:
    def run(scratch: Path) -> Outcome:
        path = scratch / "config.json"
        path.write_bytes(raw if raw is not None else json.dumps(config).encode())
        return command(["-m", "calc", "inference", "--config", str(path), *args], scratch)

    return run


def data_check(edit: Callable[[Path], None]) -> Callable[[Path], Outcome]:
    """check_data.py on a copy of data/ that ``edit`` broke: every problem as file:line."""

    def run(scratch: Path) -> Outcome:
        edit(scratch / "data")
        return command(["scripts/check_data.py"], scratch)

    return run


def add_model(config: Any) -> Callable[[Path], Outcome]:
    def run(scratch: Path) -> Outcome:
        path = scratch / "new.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        return command(
            [
                "scripts/add_model.py",
                str(path),
                "--id",
                "hostile-model",
                "--source",
                "https://huggingface.co/example/hostile/blob/main/config.json",
                "--data",
                str(scratch / "data"),
            ],
            scratch,
        )

    return run


def bridge(request: dict[str, Any]) -> Callable[[Path], Outcome]:
    """A bridge request answers with JSON: ok false and one message, never a traceback."""

    def run(scratch: Path) -> Outcome:
        answer = json.loads(_session().handle(json.dumps(request)))
        message = (answer.get("error") or {}).get("message", "")
        ok = answer.get("ok") is False and "Traceback" not in message and "\n" not in message
        return ok, message[:110]

    return run


_SESSIONS: list[Session] = []


def _session() -> Session:
    if not _SESSIONS:
        _SESSIONS.append(Session(load_catalogue(ROOT / "data")))
    return _SESSIONS[0]


def qwen(**changes: Any) -> dict[str, Any]:
    config = dict(load_catalogue(ROOT / "data").model("qwen3-8b").config)
    return {**config, **changes}


def nested(depth: int) -> str:
    return '{"model_type": "llama", "x": ' + "[" * depth + "]" * depth + "}"


def replace_in(file: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(data: Path) -> None:
        path = data / file
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{file} has no {old!r}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return edit


ALIAS_BOMB = """
- &a [x, x, x, x, x, x, x, x, x]
- &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
- &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
- &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
- &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
- &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
- &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
- &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
- &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def append(file: str, text: str) -> Callable[[Path], None]:
    def edit(data: Path) -> None:
        with (data / file).open("a", encoding="utf-8") as out:
            out.write(text)

    return edit


def broken_pipe(scratch: Path) -> Outcome:
    """``vram-calc fits ... | head -1``: the reader stops reading; no traceback, exit 0."""
    process = subprocess.Popen(
        [sys.executable, "-m", "calc", "gpus", "--model", "qwen3-8b"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()
    err = process.stderr.read().decode()
    status = process.wait(timeout=60)
    return status in (0, 120) and "Traceback" not in err, f"exit {status}, stderr {err[:60]!r}"


WORK, TRACEBACK, WRONG = "work before validation", "tracebacks", "silently wrong"
CASES = [
    on_qwen(WORK, "--gpus 1000000000", "inference", "--gpus", "1000000000"),
    Case(WORK, "config with 10^9 layers", cli_config(qwen(num_hidden_layers=10**9))),
    Case(WORK, "config with 10^6 layers", cli_config(qwen(num_hidden_layers=10**6))),
    Case(
        WORK,
        "bridge: config with 10^9 layers",
        bridge(
            {
                "action": "estimate",
                "inputs": {"config": json.dumps(qwen(num_hidden_layers=10**9))},
            }
        ),
    ),
    Case(
        WORK,
        "check_data: a 10^6-layer model",
        data_check(
            replace_in("models.yaml", "num_hidden_layers: 32", "num_hidden_layers: 1000000")
        ),
    ),
    Case(WORK, "add_model: 100,000 layers", add_model(qwen(num_hidden_layers=100_000))),
    Case(WORK, "check_data: YAML alias bomb", data_check(append("gpus.yaml", ALIAS_BOMB))),
    *(
        on_qwen(
            TRACEBACK,
            f"--tensor-split {split}",
            "inference",
            "--gpus",
            "2",
            "--tensor-split",
            split,
        )
        for split in ("nan,1", "inf,1", "1e400,1")
    ),
    on_qwen(TRACEBACK, "--gpus 2^63", "inference", "--gpus", str(2**63)),
    on_qwen(TRACEBACK, "a 5,000-digit context", "inference", "--context", "9" * 5000),
    Case(
        TRACEBACK,
        "a config that is not UTF-8",
        cli_config(None, raw=b'{"model_type": "llama", "x": "\xff\xfe"}'),
    ),
    Case(TRACEBACK, "a config nested 1,000 deep", cli_config(None, raw=nested(1000).encode())),
    Case(
        TRACEBACK,
        "hidden_size below the head count",
        cli_config(qwen(hidden_size=16, head_dim=None)),
    ),
    Case(
        TRACEBACK,
        "bridge: vLLM on 0 GPUs",
        bridge(
            {"action": "estimate", "inputs": {"model": "qwen3-8b", "engine": "vllm", "gpus": 0}}
        ),
    ),
    Case(TRACEBACK, "output cut short (| head -1)", broken_pipe),
    Case(
        TRACEBACK,
        "check_data: an entry that is a string",
        data_check(append("gpus.yaml", "\n- just a string\n")),
    ),
    Case(TRACEBACK, "add_model: a config that is a list", add_model([1, 2, 3])),
    on_qwen(
        TRACEBACK, "an unknown option: one line, not the usage", "inference", "--gpu-count", "2"
    ),
    on_qwen(WRONG, "--batch 0", "inference", "--batch", "0"),
    on_qwen(WRONG, "--n-cpu-moe on a dense model", "inference", "--n-cpu-moe", "4"),
    on_qwen(
        WRONG,
        "--tensor-split with vLLM",
        "inference",
        "--engine",
        "vllm",
        "--gpus",
        "2",
        "--tensor-split",
        "3,1",
    ),
    on_qwen(
        WRONG,
        "--tensor-split with theory",
        "inference",
        "--engine",
        "theory",
        "--tensor-split",
        "3,1",
    ),
    on_qwen(
        WRONG,
        "--lora-rank with full fine-tuning",
        "finetune",
        "--method",
        "full",
        "--lora-rank",
        "64",
    ),
    on_qwen(
        WRONG,
        "--optimizer-in-backward with LoRA",
        "finetune",
        "--method",
        "lora",
        "--optimizer-in-backward",
        "on",
    ),
    Case(
        WRONG,
        "more experts per token than experts",
        cli_config(
            qwen(
                model_type="qwen3_moe",
                num_experts=8,
                num_experts_per_tok=64,
                moe_intermediate_size=768,
            )
        ),
    ),
    Case(
        WRONG,
        "check_data: a duplicate YAML key",
        data_check(
            replace_in(
                "gpus.yaml",
                "  name: GeForce RTX 4090\n",
                "  name: GeForce RTX 4090\n  name: again\n",
            )
        ),
    ),
    Case(
        WRONG,
        "check_data: two GPUs answer to one name",
        data_check(
            replace_in("gpus.yaml", "  name: GeForce RTX 4090\n", "  name: GeForce RTX 4090D\n")
        ),
    ),
]


def run_case(case: Case) -> tuple[bool, str, float]:
    """Whether the case ended as it should, what it said, and the seconds it took."""
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copytree(ROOT / "data", Path(scratch) / "data")
        started = time.perf_counter()
        try:
            ok, said = case.run(Path(scratch))
        except subprocess.TimeoutExpired:
            ok, said = False, "still running after 60 s"
        took = time.perf_counter() - started
    return ok, said, took


def main() -> int:
    tried: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for case in CASES:
        ok, said, took = run_case(case)
        ok = ok and took <= LIMIT_S
        tried[case.kind] += 1
        failed[case.kind] += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {took:5.2f} s  {case.kind:24} {case.name}: {said}")
    print()
    for kind in tried:
        print(f"{kind:24} {tried[kind]:3} tried, {failed[kind]} failed")
    return 1 if sum(failed.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
