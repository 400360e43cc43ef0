"""Deeper alignment as a per-run measure: a longer or adversarially augmented safety phase from
theta_H, then benign fine-tuning from several of its depths.

The safety phase runs to the deepest depth; its steps after the first depth are adversarially
augmented with lookahead `Knobs.defence_strength` (`gravity.defences.adversarial_alignment`;
lookahead 0 is the plain, longer phase, the engine's own safety step). Benign fine-tuning then
starts from each depth's snapshot, vmapped, so every depth of one history shares its data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from gravity import defences
from gravity.engine import history
from gravity.engine.models import network
from gravity.engine.spec import phase_tag

LOOKAHEAD_TAG = phase_tag("adversarial_lookahead")
"""The key stream of the simulated benign batches (never the fine-tuning's own batches)."""


def augmented_safety(key, spec, knobs, params, augment_from: int, snapshots: tuple[int, ...]):
    """The safety phase from `params`, adversarially augmented from step `augment_from` on with
    lookahead `knobs.defence_strength`: the parameters at `snapshots`, stacked.

    Safety batches are the engine's (the safety phase's key and step index), so every lookahead
    sees the same data; the simulated benign batches have their own stream (`LOOKAHEAD_TAG`).
    """
    net = network(spec.model, spec.world)
    world, safety, benign = spec.world, spec.phase("safety"), spec.phase("benign")
    safety_key = jax.random.fold_in(key, phase_tag(safety.name))
    lookahead_key = jax.random.fold_in(key, LOOKAHEAD_TAG)

    def safety_batch(t):
        step_key = jax.random.fold_in(safety_key, t)
        return world.sample(knobs.world, safety.data, step_key, safety.batch_size)

    def benign_batch(t):
        step_key = jax.random.fold_in(lookahead_key, t)
        return world.sample(knobs.world, benign.data, step_key, benign.batch_size)

    return defences.adversarial_alignment(
        net,
        params,
        safety_batch,
        benign_batch,
        history.phase_optimizer(safety, knobs.learning_rate[safety.name]),
        history.phase_optimizer(benign, knobs.learning_rate[benign.name]),
        knobs.defence_strength,
        augment_from,
        snapshots,
    )


@dataclasses.dataclass(frozen=True)
class AlignmentMeasure:
    """Deeper alignment from theta_H (a trunk through the helpful phase): the safety phase to
    the deepest of `depths`, augmented after the first depth (`augmented_safety`), then
    `fine_tune` (a per-run measure, e.g. `gravity.run.sweep.HistoryMetrics`) from each depth's
    snapshot, vmapped: each run's outputs gain a leading depth axis; `diverged` is any depth's."""

    depths: tuple[int, ...]
    fine_tune: Callable

    def __call__(self, key, spec, knobs, start=None) -> dict:
        snapshots = augmented_safety(
            key, spec, knobs, start.state.params, self.depths[0], self.depths
        )

        def fine_tune(params):
            state = dataclasses.replace(
                start.state, params=params, boundaries={**start.state.boundaries, "safety": params}
            )
            return self.fine_tune(key, spec, knobs, start=history.Trunk(state, start.outputs))

        out = jax.vmap(fine_tune)(snapshots)
        out["diverged"] = jnp.any(out["diverged"])
        return out
