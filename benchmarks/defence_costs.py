"""What each defence of `experiments/defences.py` costs in compute, for the bench to report
(the experiment's numbers hold no timings): extra cost per benign step of each defence, and of an
adversarially augmented safety step, on the standard histories; `make bench` reports them
(`bench.run_bench(..., defences=True)`, its `defence_costs` key).

    from benchmarks.defence_costs import defence_costs
    defence_costs(("mlp",), cost=performance.flops)  # deterministic; the default times them
"""

from __future__ import annotations

from gravity.engine import presets
from gravity.run import overhead, performance


def defence_costs(
    models=("mlp", "transformer"), size: str = "standard", cost=performance.best_seconds
) -> dict:
    """Per model: "overhead", {defence: extra cost per benign step}, and
    "safety_step_overhead_adversarial", the extra cost of an augmented safety step, by `cost`
    (a `performance.Cost`: the one timer by default, or `performance.flops`)."""
    out = {}
    for model in models:
        spec = presets.standard_spec(model, size, keep_params=False)
        knobs = presets.standard_knobs(spec)
        out[model] = {
            "overhead": overhead.defence_step_overheads(spec, knobs, cost),
            "safety_step_overhead_adversarial": overhead.augmented_safety_overhead(
                spec, knobs, cost=cost
            ),
        }
    return out
