"""What a program costs (`gravity.run.performance`): the one timer, XLA's FLOP count against a
closed form, relative costs; a defence's cost per step (`gravity.run.overhead`) by the
deterministic count at tiny size; and the augmented safety phase at lookahead 0 is the engine's
own safety phase (`gravity.instruments.deeper_alignment`)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from gravity.engine import history, presets
from gravity.instruments import deeper_alignment
from gravity.run import overhead, performance

N = 64


def matmul(x):
    return x @ x


def test_flops_of_a_matmul_is_its_closed_form_and_the_timer_is_positive():
    x = jnp.ones((N, N))
    program = jax.jit(matmul).lower(x).compile()
    assert performance.flops(program) == 2 * N**3
    seconds = performance.best_seconds(program, (x,), repeats=2)
    assert 0 < seconds < 10


def test_relative_costs_divide_by_the_reference():
    costs = {"plain": 2.0, "double": 4.0, "same": 2.0}
    programs = {label: (label, ()) for label in costs}
    relative = performance.relative_costs(programs, cost=lambda program, args: costs[program])
    assert relative == {"double": 1.0, "same": 0.0}


SPEC = presets.standard_spec("mlp", "tiny", keep_params=False)
KNOBS = presets.standard_knobs(SPEC)


def test_a_defence_costs_extra_flops_per_step_and_the_free_ones_nothing(monkeypatch):
    every = overhead.defence_variants()
    assert set(every) == {
        *("rehearsal", "ewc", "l2sp", "safelora", "freeze", "block", "project"),
        *("lisa", "resta", "antidote", "critical_freeze", "tokenwise"),
    }
    chosen = {name: every[name] for name in ("ewc", "block")}  # two compiled, to stay quick
    monkeypatch.setattr(overhead, "defence_variants", lambda: chosen)
    costs = overhead.defence_step_overheads(SPEC, KNOBS, cost=performance.flops)
    assert set(costs) == {*overhead.FREE, "ewc", "block", "random_block"}
    assert all(costs[name] == 0.0 for name in overhead.FREE)
    assert costs["random_block"] == costs["block"] and costs["block"] > 0 and costs["ewc"] > 0


def test_an_alignment_defence_costs_extra_flops_per_safety_step(monkeypatch):
    every = overhead.alignment_variants()
    assert set(every) == {"vaccine", "booster", "booster_benign", "repnoise", "tar", "tar_benign"}
    monkeypatch.setattr(overhead, "alignment_variants", lambda: {"vaccine": every["vaccine"]})
    costs = overhead.alignment_step_overheads(SPEC, KNOBS, cost=performance.flops)
    assert set(costs) == {"vaccine"} and costs["vaccine"] > 0


def test_augmented_safety_costs_more_than_the_plain_step():
    extra = overhead.augmented_safety_overhead(SPEC, KNOBS, runs=2, steps=3, cost=performance.flops)
    assert extra > 0


def test_augmented_safety_at_lookahead_zero_is_the_engines_safety_phase():
    """From theta_H (the trunk's helpful boundary) with the same key: the engine's safety phase
    is the rest of the same trunk (one compiled program, no second run of the phase)."""
    key = jax.random.key(3)
    trunk = jax.jit(history.run_trunk, static_argnums=(1, 3))(key, SPEC, KNOBS, "safety")
    steps = SPEC.phase("safety").steps
    plain = dataclasses.replace(KNOBS, defence_strength=0.0)
    theta_h = trunk.state.boundaries["helpful"]
    snapshots = deeper_alignment.augmented_safety(key, SPEC, plain, theta_h, 0, (steps,))
    for ours, theirs in zip(
        jax.tree.leaves(snapshots), jax.tree.leaves(trunk.state.params), strict=True
    ):
        np.testing.assert_allclose(np.asarray(ours)[0], np.asarray(theirs), rtol=1e-5, atol=1e-6)
