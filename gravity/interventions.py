"""Interventions on benign fine-tuning ("anti-gravity"): blocking, pushing or projecting out
motion along v_rev, and controls.

The engine measures s(theta) = <activations(theta) - activations(theta_S), v> / sqrt(N) on the
hazardous probes, the drift's signed component along a direction v (v_rev, or a random unit
direction of the same shape for the control), and asks each intervention for
- an extra loss term in s, added to the task loss with the same optimizer ("optimizer-matched");
- whether to remove from each update the part that moves s to first order (u = J^T v by a VJP).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gravity.validation import check


class Intervention(NamedTuple):
    direction: str
    sign: float
    project: bool
    description: str


INTERVENTIONS: dict[str, Intervention] = {
    "none": Intervention("v_rev", 0.0, False, "plain benign fine-tuning (baseline)"),
    "block": Intervention(
        "v_rev", 1.0, False, "penalise positive drift along v_rev: + strength * relu(s)"
    ),
    "push": Intervention(
        "v_rev", -1.0, False, "reward positive drift along v_rev: - strength * relu(s)"
    ),
    "project": Intervention(
        "v_rev", 0.0, True, "remove from each update its first-order motion along v_rev"
    ),
    "random_block": Intervention(
        "random", 1.0, False, "the block term against a random direction (control)"
    ),
}


def get(name: str) -> Intervention:
    check(name in INTERVENTIONS, "intervention", f"one of {', '.join(INTERVENTIONS)}", name)
    return INTERVENTIONS[name]


def index(name: str) -> int:
    """The index of an intervention, for `Knobs.intervention`."""
    get(name)
    return list(INTERVENTIONS).index(name)


def settings(selected_index):
    """(sign, project, use_random) of the intervention `selected_index` picks, as traced
    values: every variant shares one compiled program and one vmapped batch."""
    table = jnp.asarray(
        [[i.sign, float(i.project), float(i.direction == "random")] for i in INTERVENTIONS.values()]
    )
    row = table[jnp.asarray(selected_index, dtype=jnp.int32)]
    return row[0], row[1] > 0, row[2] > 0


def drift_component(acts_NxD: jax.Array, aligned_NxD: jax.Array, direction_NxD: jax.Array):
    """s: the drift's signed component along a unit direction, per probe-RMS units."""
    return jnp.vdot(acts_NxD - aligned_NxD, direction_NxD) / jnp.sqrt(acts_NxD.shape[0])


def penalty(sign: jax.Array | float, s: jax.Array, strength: jax.Array) -> jax.Array:
    """The loss term sign * strength * relu(s): zero at theta_S (s = 0), linear in the positive
    part of s; `sign` is +1 to block, -1 to push, 0 for none."""
    return sign * strength * jax.nn.relu(s)


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
