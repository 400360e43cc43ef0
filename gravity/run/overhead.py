"""What a defence costs in compute: the extra cost per benign fine-tuning step of each defence
(its phase compiled alone, against the plain phase), the extra cost per safety step of each
defence that acts at alignment (Vaccine, Booster, RepNoise, TAR: the safety phase compiled with
it alone, against the plain safety phase), and of an adversarially augmented safety step against
the engine's plain one.

Either cost of `gravity.run.performance`: the one timer (`best_seconds`, this machine's wall
seconds) or XLA's FLOP count (`flops`, deterministic). A cost is not an experiment's number (it
depends on the machine, or on the compiler): the benchmark reports it
(`benchmarks/defence_costs.py`).
"""

from __future__ import annotations

import dataclasses

from gravity import defences
from gravity.defences import steering
from gravity.engine import history
from gravity.engine.spec import repeat_knobs, with_phase
from gravity.instruments.deeper_alignment import augmented_safety
from gravity.run import performance

FREE = ("baseline", "deeper_alignment", "adversarial_alignment", "shallower_basin")
"""Defences with no extra cost per benign step (they act before fine-tuning, or not at all)."""


def defence_variants(strength: float = 0.1) -> dict[str, tuple[dict, dict]]:
    """Every defence that acts during fine-tuning as a `performance.phase_programs` variant: the
    registered defences at `strength` (not those that act at alignment, in the safety phase),
    and the steering interventions block and project."""
    variants = {
        name: (
            {"defences": (name,)},
            {"defence": defences.index(name), "defence_strength": strength},
        )
        for name in defences.names()[1:]
        if not defences.get(name).acts_at_alignment
    }
    for name in ("block", "project"):
        variants[name] = ({"interventions": True}, {"intervention": steering.index(name)})
    return variants


def alignment_variants(strength: float = 0.1) -> dict[str, tuple[dict, dict]]:
    """Every registered defence that acts at alignment as a `performance.phase_programs` variant
    of the safety phase, at `strength`."""
    return {
        name: (
            {"defences": (name,)},
            {"defence": defences.index(name), "defence_strength": strength},
        )
        for name in defences.names()[1:]
        if defences.get(name).acts_at_alignment
    }


def alignment_step_overheads(spec, knobs, cost: performance.Cost = performance.best_seconds):
    """{defence: extra cost per safety step over the plain safety step}, for each defence that
    acts at alignment, its safety phase compiled alone (a one-off cost: alignment runs once)."""
    return performance.step_overhead(spec, knobs, "safety", alignment_variants(), cost=cost)


def defence_step_overheads(spec, knobs, cost: performance.Cost = performance.best_seconds):
    """{defence: extra cost per benign step over the plain step}, each defence's phase compiled
    alone; random_block costs as block (the same machinery), and the `FREE` ones nothing."""
    costs = performance.step_overhead(spec, knobs, "benign", defence_variants(), cost=cost)
    return {**dict.fromkeys(FREE, 0.0), **costs, "random_block": costs["block"]}


def augmented_safety_overhead(
    spec, knobs, runs: int = 8, steps: int = 20, cost: performance.Cost = performance.best_seconds
) -> float:
    """Extra cost of an adversarially augmented safety step (lookahead 1) over the engine's plain
    one: both compiled alone, `steps` steps on `runs` vmapped histories from theta_H."""
    spec = with_phase(spec, "safety", steps=steps, n_records=1)
    knobs = repeat_knobs(dataclasses.replace(knobs, defence_strength=1.0), runs)
    keys = history.seed_keys(range(runs))
    trunk = performance.compiled_vmap(
        lambda key, k: history.run_trunk(key, spec, k, "helpful"), (keys, knobs)
    )(keys, knobs)

    def plain(key, k, trunk):
        return history.run_phases(key, spec, trunk.state, k, (spec.phase("safety"),))[0].params

    def augmented(key, k, trunk):
        return augmented_safety(key, spec, k, trunk.state.params, 0, (steps,))

    args = (keys, knobs, trunk)
    programs = {
        label: (performance.compiled_vmap(function, args), args)
        for label, function in (("plain", plain), ("augmented", augmented))
    }
    return performance.relative_costs(programs, cost)["augmented"]
