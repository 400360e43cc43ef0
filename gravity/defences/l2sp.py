"""L2-SP: strength/2 * |theta - theta_S|^2, a plain pull back to the aligned parameters."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gravity.engine.defence import Defence, Setup


@dataclasses.dataclass(frozen=True)
class L2sp(Defence):
    def state(self, setup: Setup):
        return setup.theta_s

    def loss(self, params, state, strength):
        moved = jax.tree.map(lambda p, s: p - s, params, state)
        return 0.5 * strength * sum(jnp.vdot(d, d) for d in jax.tree.leaves(moved))


L2SP = L2sp("l2sp", "pull to theta_S")
