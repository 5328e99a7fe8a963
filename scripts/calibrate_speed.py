"""Fit each GPU backend's efficiencies (calc/speed.py BACKENDS) to the published speed figures.

    .venv/bin/python scripts/calibrate_speed.py

For each backend: the share of peak bandwidth and the per-layer cost that minimise the median
|error| of the decode figures, and the share of peak compute that minimises that of the prompt
figures; then the error of the fitted model by backend and by vendor. The constants in
calc/speed.py are what this prints; rerun it when measurements are added.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calc import (  # noqa: E402
    SPEEDS,
    Engine,
    Estimate,
    Measurement,
    Plan,
    WeightLayout,
    layout_for,
    load_catalogue,
    load_measurements,
    resolve,
)
from calc import speed as speed_model  # noqa: E402

BANDWIDTH_SHARES = [x / 100 for x in range(40, 101, 3)]
LAYER_SECONDS = [x * 1e-6 for x in (0, 4, 8, 12, 18, 26, 35, 50, 65, 80, 100, 125, 150, 180)]
COMPUTE_SHARES = [x / 100 for x in range(10, 101, 2)]


Row = tuple[Measurement, Plan, WeightLayout, Estimate]


def cases() -> list[Row]:
    catalogue = load_catalogue()
    found: list[Row] = []
    for m in load_measurements():
        if m.estimate_of not in SPEEDS or m.not_modelled:
            continue
        plan = resolve(catalogue, m.request())
        layout = layout_for(plan)
        estimate = plan.engine.estimate(plan, layout)
        found.append((m, plan, layout, estimate))
    return found


def errors(rows: list[Row], backend: speed_model.Backend, what: str) -> list[float]:
    """Each row's relative error with ``backend`` in place: in the shared table, and in the
    rows' engine's own table where it keeps one for that backend (MLX's Metal)."""
    saved = speed_model.BACKENDS[backend.id]
    speed_model.BACKENDS[backend.id] = backend
    owners = {type(r[1].engine) for r in rows if backend.id in r[1].engine.backends}
    kept = {owner: owner.backends for owner in owners}
    for owner in owners:
        owner.backends = {**owner.backends, backend.id: backend}
    try:
        out = []
        for m, plan, layout, estimate in rows:
            speed = speed_model.estimate_speed(plan, layout, estimate, backend=plan.backend)
            if speed is None:
                continue
            got = getattr(speed, what)
            measured = m.value
            out.append((got - measured) / measured)
        return out
    finally:
        speed_model.BACKENDS[backend.id] = saved
        for owner, table in kept.items():
            owner.backends = table


def median_abs(values: list[float]) -> float:
    return statistics.median(abs(v) for v in values) if values else float("nan")


def backend_of(row: Row) -> str:
    _, plan, _, estimate = row
    device = estimate.devices[0].device
    chosen = speed_model.backend_of(device, plan.backend)
    return chosen.id if chosen else "?"


MOE_SECONDS = [x * 1e-6 for x in (0, 10, 20, 30, 40, 60, 80, 100, 130, 160, 200)]
MOE_COMPUTE = [x / 100 for x in range(10, 101, 5)]


def _best(
    candidates: Iterable[speed_model.Backend],
    rows: list[Row],
    what: str,
    current: speed_model.Backend,
) -> speed_model.Backend:
    """The candidate with the smallest median |error| on these rows; ``current`` if none."""
    if not rows:
        return current
    return min(candidates, key=lambda cand: median_abs(errors(rows, cand, what)))


def fit(backend: speed_model.Backend, mine: list[Row]) -> speed_model.Backend:
    """Dense rows fix the bandwidth share, per-layer cost and compute share; MoE rows then fix
    the extra per MoE layer and the MoE compute share."""

    def moe(row: Row) -> bool:
        return row[1].arch.moe is not None

    decode = [r for r in mine if r[0].estimate_of == "decode_tokens_per_s"]
    prefill = [r for r in mine if r[0].estimate_of == "prefill_tokens_per_s"]
    decode_rows = [r for r in decode if not moe(r)] or decode
    best = _best(
        (
            replace(backend, bandwidth=b, layer_seconds=c)
            for b in BANDWIDTH_SHARES
            for c in LAYER_SECONDS
        ),
        decode_rows,
        "decode_tokens_per_s",
        backend,
    )
    moe_rows = [r for r in decode if moe(r)]
    best = _best((replace(best, moe_layer_seconds=x) for x in MOE_SECONDS), moe_rows,
                 "decode_tokens_per_s", best)  # fmt: skip
    prefill_rows = [r for r in prefill if not moe(r)] or prefill
    best = _best((replace(best, compute=x) for x in COMPUTE_SHARES), prefill_rows,
                 "prefill_tokens_per_s", best)  # fmt: skip
    moe_rows = [r for r in prefill if moe(r)]
    best = _best((replace(best, moe_compute=x) for x in MOE_COMPUTE), moe_rows,
                 "prefill_tokens_per_s", best)  # fmt: skip
    print(
        f"{backend.id:7} decode {len(decode):3} prefill {len(prefill):3}: bandwidth "
        f"{best.bandwidth:.2f}, per layer {best.layer_seconds * 1e6:.0f} us, per MoE layer "
        f"{best.moe_layer_seconds * 1e6:.0f} us, compute {best.compute:.2f}, MoE compute "
        f"{best.moe_compute:.2f}; median |error| decode "
        f"{median_abs(errors(decode, best, 'decode_tokens_per_s')):.1%}, prefill "
        f"{median_abs(errors(prefill, best, 'prefill_tokens_per_s')):.1%}"
    )
    return best


def own_errors(rows: list[Row], what: str) -> list[float]:
    """Each row's error under its own backend's current constants."""
    return [e for r in rows for e in errors([r], current(r), what)]


def current(row: Row) -> speed_model.Backend:
    """The constants the row's speed uses now: its engine's own for the backend, or the table's."""
    ident = backend_of(row)
    return row[1].engine.backends.get(ident) or speed_model.BACKENDS[ident]


TOKEN_SECONDS = [x * 1e-4 for x in range(0, 41)]


def fit_engine(engine: Engine[Any, Any], mine: list[Row]) -> None:
    """An engine's host time per token, on its decode figures, the backends held fixed."""
    decode = [r for r in mine if r[0].estimate_of == "decode_tokens_per_s"]
    if not decode:
        return

    def error(seconds: float) -> float:
        saved = type(engine).token_seconds
        type(engine).token_seconds = seconds
        try:
            return median_abs(own_errors(decode, "decode_tokens_per_s"))
        finally:
            type(engine).token_seconds = saved

    best = min(TOKEN_SECONDS, key=error)
    type(engine).token_seconds = best
    print(f"{engine.id:12} decode {len(decode):3}: {best * 1e3:.1f} ms per token; "
          f"median |error| {error(best):.1%}")  # fmt: skip


def fit_all(rows: list[Row]) -> None:
    """The backends on llama-bench's bare steps, then each other engine's time per token and
    its own backend constants, on its own figures."""
    reference = [r for r in rows if r[1].engine.bare_step]
    fitted = {}
    for ident, backend in speed_model.BACKENDS.items():
        fitted[ident] = fit(backend, [r for r in reference if backend_of(r) == ident])
    speed_model.BACKENDS.update(fitted)
    print("\nper-token host time of the other engines")
    others = {r[1].engine.id: r[1].engine for r in rows if not r[1].engine.bare_step}
    for engine in others.values():
        fit_engine(engine, [r for r in rows if r[1].engine is engine])
    for engine in {r[1].engine.id: r[1].engine for r in rows}.values():
        for ident, own in dict(engine.backends).items():
            mine = [r for r in rows if r[1].engine is engine and backend_of(r) == ident]
            print(f"{engine.id} on {ident}: ", end="")
            type(engine).backends = {**engine.backends, ident: fit(own, mine)}


def report(rows: list[Row], title: str, key: Callable[[Row], str]) -> None:
    """The median |error| of each quantity, by ``key`` (engine, vendor)."""
    print(f"\nby {title}")
    for group in sorted({key(r) for r in rows}):
        for what in SPEEDS:
            part = [r for r in rows if key(r) == group and r[0].estimate_of == what]
            if part:
                print(f"{group:12} {what:30} {len(part):3} median |error| "
                      f"{median_abs(own_errors(part, what)):.1%}")  # fmt: skip


def main() -> int:
    rows = cases()
    print(f"{len(rows)} speed figures")
    fit_all(rows)
    report(rows, "engine", lambda r: r[1].engine.id)
    report(rows, "vendor", lambda r: r[3].devices[0].device.vendor)
    report(rows, "backend", backend_of)
    return 0


if __name__ == "__main__":
    sys.exit(main())
