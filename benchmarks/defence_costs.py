"""What each defence costs in compute, for the bench to report (the experiments' numbers hold no
timings): extra cost per benign step of each defence that acts during fine-tuning, per safety
step of each that acts at alignment, and of an adversarially augmented safety step, on the
standard histories; `make bench` reports them (`bench.run_bench(..., defences=True)`, its
`defence_costs` key).

    from benchmarks.defence_costs import defence_costs
    defence_costs(("mlp",), cost=performance.flops)  # deterministic; the default times them
"""

from __future__ import annotations

from gravity.engine import presets
from gravity.run import overhead, performance


def defence_costs(
    models=("mlp", "transformer"), size: str = "standard", cost=performance.best_seconds
) -> dict:
    """Per model: "overhead", {defence: extra cost per benign step}; "alignment_overhead",
    {defence: extra cost per safety step} of those that act at alignment; and
    "safety_step_overhead_adversarial", the extra cost of an augmented safety step, by `cost`
    (a `performance.Cost`: the one timer by default, or `performance.flops`)."""
    out = {}
    for model in models:
        spec = presets.standard_spec(model, size, keep_params=False)
        knobs = presets.standard_knobs(spec)
        out[model] = {
            "overhead": overhead.defence_step_overheads(spec, knobs, cost),
            "alignment_overhead": overhead.alignment_step_overheads(spec, knobs, cost),
            "safety_step_overhead_adversarial": overhead.augmented_safety_overhead(
                spec, knobs, cost=cost
            ),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.defence_costs [--out PATH] [--models mlp,transformer]`: time every
    defence's cost alone (the one timer), with the machine and how busy its other processes
    were while it ran (`machine.Contention`, in cores: near 0 means the timing was undisturbed)."""
    import argparse
    import time
    from pathlib import Path

    from benchmarks.bench import write
    from benchmarks.machine import Contention, machine_info

    parser = argparse.ArgumentParser(prog="python -m benchmarks.defence_costs")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/defence_costs.json"))
    parser.add_argument("--models", default="mlp,transformer", help="comma-separated")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with Contention() as contention:
        costs = defence_costs(tuple(args.models.split(",")))
    out = {
        "defence_costs": costs,
        "unit": "extra wall seconds per step / plain step's (a ratio - 1), best of 3 runs",
        "others_cores": contention.others_cores,
        "machine": machine_info(),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write(out, args.out)
    print(f"wrote {args.out} ({out['wall_s']:.0f}s; other processes: {out['others_cores']} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
