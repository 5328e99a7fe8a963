"""scripts/validate.py and the validation page: every measurement listed, the target enforced."""

from __future__ import annotations

import contextlib
import io

from calc.data_files import load_measurements
from scripts import validate
from tests.test_site import tables_of


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = validate.main(list(args))
    return code, out.getvalue()


def test_validate_prints_every_case_and_meets_the_median_target():
    code, out = run()
    measurements = load_measurements()
    for m in measurements:
        assert m.id in out
    assert "median |error|" in out
    assert code == 0  # inference within 5% median, fine-tuning within 10%


def test_validate_fails_when_the_target_is_missed():
    code, out = run("--target-median", "0.0001")
    assert code == 1
    assert "inference target: median <= 0% (MISSED)" in out
    code, out = run("--target-finetune", "0.0001")
    assert code == 1
    assert "fine-tuning target: median <= 0% (MISSED)" in out


def test_the_page_lists_every_case(site):
    tables = tables_of(site / "validation" / "index.html")
    cases = tables["every-case"][1:]
    modelled = [m for m in load_measurements() if not m.not_modelled]
    assert len(cases) == len(modelled)
    page = (site / "validation" / "index.html").read_text()
    for m in load_measurements():
        if m.not_modelled:
            assert m.id in page


def test_every_measurement_quotes_its_source():
    for m in load_measurements():
        assert m.source.startswith(("https://", "hdy,")), m.id
