"""Change one token of each rule the methodology page links to, and count the changes a test
catches. Prints figures; asserts nothing.

    .venv/bin/python scripts/mutate_rules.py [--tests tests/test_rules.py] [--limit N]

For every function linked from docs/methodology.md (``calc:`` links), each number, arithmetic
or comparison operator and ``max``/``min`` in its body (docstrings and comments aside) is
changed in turn in a scratch copy of the repository (a number n becomes n + 1, ``+`` becomes
``-``, ``*`` becomes ``//``, ``max`` becomes ``min``, ...), and the tests run against it. A
change that no test notices is listed as a survivor.
"""

from __future__ import annotations

import argparse
import ast
import io
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import tokenize
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts import code_links  # noqa: E402

SWAPS = {
    "+": "-",
    "-": "+",
    "*": "//",
    "//": "*",
    "/": "*",
    "<": "<=",
    "<=": "<",
    ">": ">=",
    ">=": ">",
    "max": "min",
    "min": "max",
}


@dataclass(frozen=True)
class Mutant:
    rule: str
    path: str
    line: int  # 1-based, in the file
    column: int
    before: str
    after: str

    def describe(self) -> str:
        return f"{self.path}:{self.line}: {self.before} -> {self.after} ({self.rule})"


def mutants(rule: str) -> list[Mutant]:
    """One-token changes in the body of ``rule``: its decorators and docstring left alone."""
    path, start, end = code_links.location(rule)
    lines = (ROOT / path).read_text().splitlines(keepends=True)
    source = textwrap.dedent("".join(lines[start - 1 : end]))
    indent = len(lines[start - 1]) - len(lines[start - 1].lstrip()) if lines else 0
    function = next(
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    )
    skip = set(range(1, function.lineno))  # decorators
    first = function.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        skip |= set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        after = _mutation(token)
        if after is None or token.start[0] in skip:
            continue
        line = start + token.start[0] - 1
        column = token.start[1] + indent
        found.append(Mutant(rule, path, line, column, token.string, after))
    return found


# Modules whose named constants (UPPER_CASE = number) the methodology's rules rely on.
CONSTANT_MODULES = (
    "calc/engines/base.py",
    "calc/engines/llama_cpp.py",
    "calc/engines/ollama.py",
    "calc/engines/vllm.py",
    "calc/finetune.py",
)


def constant_mutants() -> list[Mutant]:
    """One-token changes to the numbers in the named constants of CONSTANT_MODULES."""
    found = []
    for path in CONSTANT_MODULES:
        source = (ROOT / path).read_text()
        tree = ast.parse(source)
        for node in tree.body:
            if not isinstance(node, ast.Assign | ast.AnnAssign):
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if not names or not names[0].isupper() or node.value is None:
                continue
            for number in ast.walk(node.value):
                if isinstance(number, ast.Constant) and type(number.value) in (int, float):
                    line = source.splitlines()[number.lineno - 1]
                    text = line[number.col_offset : number.end_col_offset]
                    token = tokenize.TokenInfo(tokenize.NUMBER, text, (0, 0), (0, 0), "")
                    after = _mutation(token)
                    if after is not None:
                        where = (number.lineno, number.col_offset)
                        found.append(Mutant(names[0], path, *where, text, after))
    return found


def _mutation(token: tokenize.TokenInfo) -> str | None:
    if token.type == tokenize.NUMBER and "j" not in token.string.lower():
        value = token.string.replace("_", "")
        if "." in value or "e" in value.lower():
            return repr(float(value) * 1.5)
        return str(int(value, 0) + 1)
    if token.type in (tokenize.OP, tokenize.NAME) and token.string in SWAPS:
        return SWAPS[token.string]
    return None


def run(mutant: Mutant, tree: Path, tests: list[str]) -> bool:
    """Whether the tests catch ``mutant`` (fail, or break the import)."""
    target = tree / mutant.path
    original = target.read_text().splitlines(keepends=True)
    changed = list(original)
    row = changed[mutant.line - 1]
    col = mutant.column
    changed[mutant.line - 1] = row[:col] + mutant.after + row[col + len(mutant.before) :]
    target.write_text("".join(changed))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
            cwd=tree,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return result.returncode != 0
    finally:
        target.write_text("".join(original))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tests", nargs="+", default=["tests/test_rules.py"])
    parser.add_argument("--limit", type=int, default=0, help="at most this many mutants")
    args = parser.parse_args(argv)
    rules = sorted(set(code_links.linked_names((ROOT / "docs" / "methodology.md").read_text())))
    every = [m for rule in rules for m in mutants(rule)] + constant_mutants()
    if args.limit:
        every = every[:: max(1, len(every) // args.limit)][: args.limit]
    survivors = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch) / "tree"
        for part in ("calc", "tests", "scripts", "data", "docs", "pyproject.toml"):
            source = ROOT / part
            if source.is_dir():
                shutil.copytree(source, tree / part)
            else:
                shutil.copy(source, tree / part)
        for mutant in every:
            if not run(mutant, tree, args.tests):
                survivors.append(mutant)
    caught = len(every) - len(survivors)
    print(
        f"{len(rules)} rules and their constants, {len(every)} one-token changes, {caught} "
        f"caught by {' '.join(args.tests)}"
    )
    print(f"{100 * caught / max(len(every), 1):.1f}% caught in {time.monotonic() - started:.0f} s")
    for mutant in survivors:
        print("survived:", mutant.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
