"""Interventions on benign fine-tuning ("anti-gravity"): blocking, pushing or projecting out
motion along v_rev, and controls.

The engine measures s(theta) = <activations(theta) - activations(theta_S), v> / sqrt(N) on a probe
set, the drift's signed component along a unit direction v: v_rev on the hazardous probes, a
random unit direction of the same shape (control), or the matched benign probes' own
theta_S -> theta_H direction on those probes (control: the common-mode drift). Each
intervention gives
- an extra loss term in s, added to the task loss with the same optimizer ("optimizer-matched"):
  block + strength * (softplus(s) - log 2), zero at theta_S with slope 1/2 there, so the first
  step is blocked too (relu's gradient at s = 0 is 0); push the same with the opposite sign
  (the paper's unbounded reward); push_bounded + strength * (softplus(s_H - s) - softplus(s_H)),
  which rewards drift toward the witness's own component s_H and saturates there;
- whether to remove from each update the part that moves s to first order (u = J^T v by a VJP).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

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
    """The index of an intervention, for `Knobs.intervention`."""
    get(name)
    return list(INTERVENTIONS).index(name)


class Settings(NamedTuple):
    """The traced form of the selected intervention (every variant shares one program)."""

    block: jax.Array
    bounded_push: jax.Array
    project: jax.Array
    direction: jax.Array


def settings(selected_index) -> Settings:
    """The intervention `selected_index` picks, as traced values."""
    table = jnp.asarray(
        [
            [i.block, float(i.bounded_push), float(i.project), float(DIRECTIONS.index(i.direction))]
            for i in INTERVENTIONS.values()
        ]
    )
    row = table[jnp.asarray(selected_index, dtype=jnp.int32)]
    return Settings(row[0], row[1] > 0, row[2] > 0, row[3].astype(jnp.int32))


def drift_component(acts_NxD: jax.Array, aligned_NxD: jax.Array, direction_NxD: jax.Array):
    """s: the drift's signed component along a unit direction, per probe-RMS units."""
    return jnp.vdot(acts_NxD - aligned_NxD, direction_NxD) / jnp.sqrt(acts_NxD.shape[0])


def penalty(chosen: Settings, s: jax.Array, s_witness: jax.Array, strength) -> jax.Array:
    """The selected intervention's loss term (see the module docstring); zero at theta_S."""
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


def random_direction(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """A uniformly random unit direction of the given shape."""
    g = jax.random.normal(key, shape)
    return g / jnp.linalg.norm(g)
