"""Print which generated table cells differ between two commits, for reviewers.

    .venv/bin/python scripts/diff_tables.py BASE HEAD      # e.g. origin/main HEAD

Each commit is exported with ``git archive`` into a scratch folder and its own code renders its
own tables; the cells are then compared by table, section, row and column:

    models > Llama 3.1 8B > Q4_K_M > Total at 4,096, GiB (GB): 5.4 (5.8) -> 6.1 (6.5)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run inside each exported tree with that tree's own code (older trees kept the tables in
# scripts/guide_tables.py).
RENDER = """
import json, sys
from pathlib import Path
sys.path.insert(0, ".")
try:
    from scripts.tables import TABLES, Renderer
except ImportError:
    from scripts.guide_tables import TABLES, Renderer
renderer = Renderer.from_repository(Path("."))
print(json.dumps({name: renderer.render(name) for name in sorted(TABLES)}))
"""

Cell = tuple[str, str, str, str]  # table, section, row, column


def export(repo: Path, rev: str, target: Path) -> None:
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev], cwd=repo, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")


def render(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VRAM_GUIDE_DATA"}
    result = subprocess.run(
        [sys.executable, "-c", RENDER], cwd=tree, capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise SystemExit(f"error: rendering {tree.name} failed:\n{result.stderr[-2000:]}")
    tables: dict[str, str] = json.loads(result.stdout)
    return tables


def cells(tables: dict[str, str]) -> dict[Cell, str]:
    """Markdown tables to cells; the row is named by its first cell, sections by headings."""
    found: dict[Cell, str] = {}
    for name, markdown in tables.items():
        section, header = "", None
        for line in markdown.splitlines():
            if line.startswith("#"):
                section = _plain(re.sub(r"\{.*\}\s*$", "", line.lstrip("#")))
                header = None
            elif line.startswith("|"):
                row = [_plain(c) for c in line.strip().strip("|").split("|")]
                if header is None:
                    header = row
                elif not set(line) <= set("|-: "):
                    for column, value in zip(header[1:], row[1:], strict=False):
                        found[(name, section, row[0], column)] = value
            else:
                header = None if not line.strip() else header
    return found


def _plain(text: str) -> str:
    """Undo the Markdown escaping of the templates, for reading."""
    text = re.sub(r"&#(\d+);", lambda m: chr(int(m.group(1))), text.strip())
    return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)


def diff(old: dict[Cell, str], new: dict[Cell, str]) -> list[str]:
    lines = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before != after:
            where = " > ".join(part for part in key if part)
            lines.append(f"{where}: {before or '(none)'} -> {after or '(none)'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base")
    parser.add_argument("head")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the git checkout (default: this)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        rendered = []
        for rev in (args.base, args.head):
            tree = Path(scratch) / re.sub(r"[^A-Za-z0-9]", "_", rev)
            try:
                export(args.repo, rev, tree)
            except subprocess.CalledProcessError as error:
                print(f"error: git archive {rev}: {error.stderr.decode().strip()}", file=sys.stderr)
                return 2
            rendered.append(cells(render(tree)))
    changes = diff(*rendered)
    for line in changes:
        print(line)
    print(f"{len(changes)} table cell(s) changed between {args.base} and {args.head}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
