"""The shape of the code: a public API that tools use, one home per engine, small functions."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import calc
from calc import ENGINES
from tests.conftest import ROOT

CORE = sorted(
    p
    for p in (ROOT / "calc").rglob("*.py")
    if p.name not in ("cli.py", "data_files.py", "__main__.py")
)
TOOLS = sorted([*(ROOT / "scripts").rglob("*.py"), *(ROOT / "docs" / "hooks").rglob("*.py")])
MAX_FUNCTION_LINES = 60


def test_every_public_name_resolves():
    for name in calc.__all__:
        assert getattr(calc, name) is not None, name
    assert sorted(calc.__all__) == sorted(set(calc.__all__))


def test_the_browser_package_never_loads_the_yaml_edge():
    code = "import sys, calc; print('calc.data_files' in sys.modules, 'yaml' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False"]


def test_tools_use_the_public_api_only():
    for path in TOOLS:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("calc"):
                assert node.module == "calc", f"{path.relative_to(ROOT)}: from {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("calc."), f"{path}: import {alias.name}"


def test_nothing_outside_tests_imports_the_tests():
    for path in TOOLS:
        text = path.read_text()
        assert not re.search(r"^\s*(from|import) tests\b", text, re.MULTILINE), path


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the signature to the end, less the docstring."""
    lines = (node.end_lineno or node.lineno) - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        lines -= (first.end_lineno or first.lineno) - first.lineno + 1
    return lines


def test_no_function_in_calc_is_longer_than_sixty_lines():
    long = []
    for path in sorted((ROOT / "calc").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            is_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if is_function and _body_lines(node) > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert long == []


def test_engine_rules_live_in_the_engine_modules():
    # A comparison with an engine's id ("if engine.id == 'vllm'") outside calc/engines/ is a
    # rule in the wrong home.
    ids = set(ENGINES)
    for path in CORE:
        if "engines" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    if isinstance(side, ast.Constant) and side.value in ids:
                        raise AssertionError(f"{path.relative_to(ROOT)}:{node.lineno}")
                    if isinstance(side, ast.Tuple):
                        constants = {e.value for e in side.elts if isinstance(e, ast.Constant)}
                        assert not constants & ids, f"{path.relative_to(ROOT)}:{node.lineno}"


def test_each_engine_has_its_own_module(catalogue):
    for engine in ENGINES.values():
        module = sys.modules[type(engine).__module__]
        assert Path(module.__file__ or "").parent == ROOT / "calc" / "engines"
        assert engine.history.releases, engine.id
        for release in engine.history.releases:
            assert release.source.startswith(("https://", "the seed article")), release


def test_every_module_of_calc_imports_on_its_own():
    """No import cycle that only the usual order hides: each module imported first works."""
    probe = (
        "import importlib, pathlib, sys\n"
        "names = sorted('calc.' + '.'.join(p.with_suffix('').relative_to('calc').parts)\n"
        "               for p in pathlib.Path('calc').rglob('*.py') if p.name != '__main__.py')\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m == 'calc' or m.startswith('calc.')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name.removesuffix('.__init__'))\n"
        "print(len(names))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 30
