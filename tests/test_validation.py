"""scripts/validate.py and the validation page: every measurement listed, the target enforced."""

from __future__ import annotations

import contextlib
import io

import pytest

from calc import CalcError
from calc.data_files import load_measurements
from scripts import validate
from tests.conftest import ROOT
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


def test_fine_tuning_is_summarised_by_method_and_by_the_counter_read():
    from calc import compare, counter_summaries, load_catalogue, method_summaries

    catalogue = load_catalogue()
    comparisons = [compare(catalogue, m) for m in load_measurements() if not m.not_modelled]
    tuned = [c for c in comparisons if c.measurement.kind == "finetune"]
    by_counter = dict(counter_summaries(comparisons))
    assert {"allocated or active", "reserved", "not stated"} <= set(by_counter)
    assert sum(s.cases for s in by_counter.values()) == len(tuned)  # every case in one group
    assert sum(s.cases for _, s in method_summaries(comparisons)) == len(tuned)
    _, out = run()
    assert "fine-tuning by counter" in out and "allocated or active" in out


def test_a_fine_tuning_measurement_must_say_what_it_counted():
    import yaml

    from calc.measurements import parse_measurement

    docs = yaml.safe_load((ROOT / "data" / "measurements.yaml").read_text())
    entry = next(d for d in docs if d.get("kind") == "finetune")
    with pytest.raises(CalcError, match="states the counter its figure was read from") as error:
        parse_measurement({k: v for k, v in entry.items() if k != "counter"})
    assert error.value.field == "counter"
