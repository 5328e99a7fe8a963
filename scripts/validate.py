"""Compare the estimator with every published measurement in data/measurements.yaml.

    .venv/bin/python scripts/validate.py [--target-median 0.05] [--target-p90 0.10]
        [--target-finetune 0.10]

Prints one row per case (measured, estimated, signed error), the cases the estimator cannot
model yet, and the median and 90th-percentile absolute error per engine and overall. Exits 1
when the median absolute error of the inference cases exceeds --target-median, or that of the
fine-tuning cases exceeds --target-finetune.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calc import (  # noqa: E402
    GIB,
    CalcError,
    compare,
    counter_summaries,
    is_speed,
    load_catalogue,
    load_measurements,
    method_summaries,
    release_summaries,
    speed_summaries,
    summaries,
    summarise,
)


def print_table(title: str, width: int, rows: list[tuple[str, Any]]) -> None:
    """One summary table: a group per row, its case count, median and 90th percentile."""
    if not rows:
        return
    print(f"\n{title:{width}} {'cases':>5} {'median |error|':>15} {'p90 |error|':>12}")
    for name, summary in rows:
        print(
            f"{name:{width}} {summary.cases:5} {summary.median_abs_error * 100:14.1f}% "
            f"{summary.p90_abs_error * 100:11.1f}%"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target-median", type=float, default=0.05)
    parser.add_argument("--target-p90", type=float, default=0.10)
    parser.add_argument("--target-finetune", type=float, default=0.10)
    args = parser.parse_args(argv)
    try:
        catalogue = load_catalogue()
        measurements = load_measurements()
    except CalcError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    comparisons = [compare(catalogue, m) for m in measurements if not m.not_modelled]
    width = max(len(m.id) for m in measurements)
    print(
        f"{'case':{width}} {'engine':12} {'of':17} {'measured GiB':>12} {'estimate GiB':>12}"
        f" {'error':>8}"
    )
    for c in comparisons:
        m = c.measurement
        print(
            f"{m.id:{width}} {m.runs_on:12} {m.estimate_of:17} {m.measured_bytes / GIB:12.3f} "
            f"{c.estimated_bytes / GIB:12.3f} {c.error * 100:+7.1f}%"
        )
    skipped = [m for m in measurements if m.not_modelled]
    if skipped:
        print("\nnot modelled yet:")
        for m in skipped:
            print(f"  {m.id}: {m.not_modelled}")
    print_table("engine", 14, summaries(comparisons))
    print_table("fine-tuning by method", 22, method_summaries(comparisons))
    print_table("fine-tuning by counter", 22, counter_summaries(comparisons))
    print_table("inference by release", 40, release_summaries(comparisons))
    memory = [c for c in comparisons if not is_speed(c.measurement)]
    serving = summarise([c for c in memory if c.measurement.kind != "finetune"])
    print_table("speed", 40, speed_summaries(comparisons))
    tuning = summarise([c for c in comparisons if c.measurement.kind == "finetune"])
    if serving is None:
        return 1
    ok = serving.median_abs_error <= args.target_median
    print(
        f"\ninference target: median <= {args.target_median:.0%} ({'met' if ok else 'MISSED'}), "
        f"p90 <= {args.target_p90:.0%} "
        f"({'met' if serving.p90_abs_error <= args.target_p90 else 'missed'})"
    )
    if tuning is not None:
        met = tuning.median_abs_error <= args.target_finetune
        ok = ok and met
        print(
            f"fine-tuning target: median <= {args.target_finetune:.0%} "
            f"({'met' if met else 'MISSED'})"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
