"""Steering ("anti-gravity" along a direction): blocking, pushing or projecting out motion along
v_rev during benign fine-tuning, and controls; one Defence whose variant is the traced
`Knobs.intervention` and whose strength is `Knobs.intervention_strength`.

It measures s(theta) = <activations(theta) - activations(theta_S), v> / sqrt(N) on a probe set,
the drift's signed component along a unit direction v: v_rev on the hazardous probes, a random
unit direction of the same shape (control), or the matched benign probes' own theta_S -> theta_H
direction on those probes (control: the common-mode drift). Each variant gives
- an extra loss term in s, added to the task loss with the same optimizer ("optimizer-matched"):
  block + strength * (softplus(s) - log 2), zero at theta_S with slope 1/2 there, so the first
  step is blocked too (relu's gradient at s = 0 is 0); push the same with the opposite sign
  (the paper's unbounded reward); push_bounded + strength * (softplus(s_H - s) - softplus(s_H)),
  which rewards drift toward the witness's own component s_H and saturates there;
- whether to remove from each update the part that moves s to first order (u = J^T v by a VJP).
The term's gradient is its slope in s times grad s (the `gradient` hook), and grad s from the
same probe pass is what `project` removes from the update (the `update` hook).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gravity.engine.defence import Defence, Setup, register_steering
from gravity.engine.geometry import drift_component, random_direction
from gravity.validation import check_choice

DIRECTIONS = ("v_rev", "random", "matched")


class Intervention(NamedTuple):
    direction: str
    block: float
    bounded_push: bool
    project: bool
    description: str


INTERVENTIONS: dict[str, Intervention] = {
    "none": Intervention("v_rev", 0.0, False, False, "plain benign fine-tuning (baseline)"),
    "block": Intervention("v_rev", 1.0, False, False, "penalise drift along v_rev"),
    "push": Intervention("v_rev", -1.0, False, False, "reward drift along v_rev, unbounded"),
    "project": Intervention(
        "v_rev", 0.0, False, True, "remove from each update its first-order motion along v_rev"
    ),
    "random_block": Intervention(
        "random", 1.0, False, False, "the block term against a random direction (control)"
    ),
    "push_bounded": Intervention(
        "v_rev", 0.0, True, False, "reward drift along v_rev up to the witness's own s_H"
    ),
    "matched_block": Intervention(
        "matched", 1.0, False, False, "block the matched benign probes' drift (control)"
    ),
}


def get(name: str) -> Intervention:
    check_choice(name, INTERVENTIONS, "intervention")
    return INTERVENTIONS[name]


def index(name: str) -> int:
    """The index of a steering variant, for `Knobs.intervention`."""
    get(name)
    return list(INTERVENTIONS).index(name)


class Settings(NamedTuple):
    """The traced form of the selected variant (every variant shares one program)."""

    block: jax.Array
    bounded_push: jax.Array
    project: jax.Array
    direction: jax.Array


def settings(selected_index) -> Settings:
    """The variant `selected_index` picks, as traced values."""
    table = jnp.asarray(
        [
            [i.block, float(i.bounded_push), float(i.project), float(DIRECTIONS.index(i.direction))]
            for i in INTERVENTIONS.values()
        ]
    )
    row = table[jnp.asarray(selected_index, dtype=jnp.int32)]
    return Settings(row[0], row[1] > 0, row[2] > 0, row[3].astype(jnp.int32))


def penalty(chosen: Settings, s: jax.Array, s_witness: jax.Array, strength) -> jax.Array:
    """The selected variant's loss term (see the module docstring); zero at theta_S."""
    block = chosen.block * (jax.nn.softplus(s) - math.log(2.0))
    bounded = jax.nn.softplus(s_witness - s) - jax.nn.softplus(s_witness)
    return strength * (block + jnp.where(chosen.bounded_push, bounded, 0.0))


def project_out(update, u):
    """`update` minus its component along `u` (both pytrees of the same structure)."""
    dot = sum(
        jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(update), jax.tree.leaves(u), strict=True)
    )
    norm2 = sum(jnp.vdot(b, b) for b in jax.tree.leaves(u))
    scale = dot / jnp.maximum(norm2, 1e-30)
    return jax.tree.map(lambda a, b: a - scale * b, update, u)


class Steered(NamedTuple):
    """Where the selected variant measures s: the network, its settings, the probe inputs, their
    theta_S activations, the unit direction, and the witness's own component s_H along it."""

    net: object
    chosen: Settings
    inputs: jax.Array
    aligned: jax.Array
    direction: jax.Array
    witness: jax.Array


@dataclasses.dataclass(frozen=True)
class Steering(Defence):
    def state(self, setup: Setup) -> Steered:
        """The selected direction (0 v_rev, 1 random, 2 matched benign) and its probe set."""
        chosen = settings(setup.variant)
        ref, probes = setup.reversion.reference, setup.probes
        matched = chosen.direction == 2
        inputs = jnp.where(matched, probes.matched.inputs, probes.hazard.inputs)
        aligned = jnp.where(matched, ref.aligned_matched, ref.aligned)
        helpful = jnp.where(matched, ref.helpful_matched, ref.helpful)
        unit = jnp.where(
            chosen.direction == 1,
            setup.reversion.random_direction,
            jnp.where(matched, ref.matched_direction, ref.directions[0]),
        )
        witness = drift_component(helpful, aligned, unit)
        return Steered(setup.net, chosen, inputs, aligned, unit, witness)

    def gradient(self, params, grads, state: Steered, strength):
        """The term's gradient added (slope in s times grad s); grad s kept for `update`."""

        def component(q):
            acts = state.net.activations(q, state.inputs)
            return drift_component(acts, state.aligned, state.direction)

        s, pullback = jax.vjp(component, params)
        (grad_s,) = pullback(jnp.ones_like(s))
        slope = jax.grad(penalty, argnums=1)(state.chosen, s, state.witness, strength)
        return jax.tree.map(lambda g, c: g + slope * c, grads, grad_s), grad_s

    def update(self, updates, state: Steered, strength, step=None):
        """Where the variant projects: the update minus its first-order motion along s."""
        projected = project_out(updates, step)
        return jax.tree.map(lambda a, b: jnp.where(state.chosen.project, a, b), projected, updates)


STEERING = register_steering(
    Steering("steering", "block, push or project along a direction (Knobs.intervention)"),
    tuple(INTERVENTIONS),
)

__all__ = [
    "DIRECTIONS",
    "INTERVENTIONS",
    "STEERING",
    "Intervention",
    "Settings",
    "drift_component",
    "get",
    "index",
    "penalty",
    "project_out",
    "random_direction",
    "settings",
]
