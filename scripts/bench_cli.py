"""Time the command line against a bare Python start (issue 15's target: one estimate within 5x).

    .venv/bin/python scripts/bench_cli.py [--runs 7]

Prints the median wall time of ``python -c pass``, of one ``python -m calc inference`` with an
empty catalogue cache (YAML read and checked) and with a warm one, and their ratios. Bytecode
is written as on a reader's machine (PYTHONDONTWRITEBYTECODE is unset for the runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ESTIMATE = ["-m", "calc", "inference", "--model", "llama-3.1-70b", "--gpu", "RTX 4090D"]


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as cache:
        env["VRAM_GUIDE_CACHE"] = cache
        timed(ESTIMATE, env)  # bytecode written, cache filled
        bare = statistics.median(timed(["-c", "pass"], env) for _ in range(runs))
        warm = statistics.median(timed(ESTIMATE, env) for _ in range(runs))
        cold = []
        for _ in range(runs):
            for old in Path(cache).glob("catalogue-*.json"):
                old.unlink()
            cold.append(timed(ESTIMATE, env))
    print(f"bare python start      {bare * 1000:7.0f} ms")
    print(f"estimate, warm cache   {warm * 1000:7.0f} ms  ({warm / bare:.1f}x bare)")
    print(f"estimate, cold cache   {statistics.median(cold) * 1000:7.0f} ms  "
          f"({statistics.median(cold) / bare:.1f}x bare)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
