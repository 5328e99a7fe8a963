"""The seed article's rule: every parameter at the format's bits, and nothing else."""

from __future__ import annotations

from math import ceil

from calc.breakdown import Components, DeviceEstimate, Estimate
from calc.engines.base import Engine, estimate_of
from calc.engines.history import History, Release
from calc.layout import WeightLayout
from calc.placement import split_layers
from calc.plan import EngineOptions, Plan

SOURCE = "the seed article's rule: parameters x bytes per parameter"


class Theory(Engine[Release, EngineOptions]):
    id = "theory"
    name = "theory (parameters x bytes)"
    source = SOURCE
    # The context is unused: the theory counts no KV cache.
    history = History("theory", Release(version="0", source=SOURCE))
    default_weights = "fp16"
    default_kv = "f16"
    weights_only = True

    def estimate(self, plan: Plan, layout: WeightLayout) -> Estimate:
        params = layout.parameters
        bits = plan.weights.storage.bits_per_weight
        total = ceil(params.total * bits / 8)
        n = len(plan.devices)
        shares = [total // n + (1 if i < total % n else 0) for i in range(n)]
        ranges = split_layers(list(range(plan.arch.num_layers)), plan.devices)
        devices = [
            DeviceEstimate(index=i, device=d, layers=r, components=Components(weights=s))
            for i, (d, r, s) in enumerate(zip(plan.devices, ranges, shares, strict=True))
        ]
        note = (
            f"theory: {params.total:,} parameters x {bits:g} bits; no KV cache, buffers or runtime"
        )
        return estimate_of(plan, layout, devices, Components(), [note])
