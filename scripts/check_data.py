"""Check every data file and print every problem at once.

    .venv/bin/python scripts/check_data.py

Each problem names file:line, the entry id, the field and what was expected. Parameter counts
that differ from the published figure by more than 1% are listed as warnings (the test suite
fails on them). Exit status: 0 clean, 1 problems found.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calc import (  # noqa: E402
    CalcError,
    catalogue_problems,
    count_parameters,
    load_catalogue,
    read_documents,
)

TOLERANCE = 0.01


def _closest(model: int, checkpoint: int, published: int) -> int:
    """Published figures count either the model alone or the files (with their MTP layers)."""
    return min((model, checkpoint), key=lambda n: abs(n - published))


def parameter_warnings(data_dir: Path | None = None) -> list[str]:
    catalogue = load_catalogue(data_dir)
    document = read_documents(data_dir)["models"]
    warnings = []
    for index, model in enumerate(catalogue.models.values()):
        counted = count_parameters(model.arch)
        computed = _closest(counted.total, counted.checkpoint_total, model.params_published)
        off = (computed - model.params_published) / model.params_published
        if abs(off) > TOLERANCE:
            line = document.line((index, "params_published"))
            warnings.append(
                f"{document.label}:{line}: entry {model.id!r}: params_published: "
                f"{model.params_published:,} but the config gives {computed:,} ({off:+.1%}); "
                "expected within 1% (check the config keys, or the published figure)"
            )
    return warnings


def main(argv: list[str] | None = None) -> int:
    try:
        problems = catalogue_problems()
    except CalcError as error:  # a file that cannot be read or parsed at all
        print(error)
        return 1
    for problem in problems:
        print(problem)
    if problems:
        print(f"\n{len(problems)} problem(s)")
        return 1
    warnings = parameter_warnings()
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"data files OK ({len(warnings)} warning(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
