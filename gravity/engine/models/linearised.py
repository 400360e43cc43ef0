"""The first-order (linearised) model of a network around an anchor, with the network's interface.

f_lin(theta, x) = f(theta_0, x) + J(theta_0, x) (theta - theta_0), for the logits and for every
named activation, with J the Jacobian in the parameters at the anchor theta_0 (one `jax.jvp`; the
Jacobian is never formed). Trained by gradient descent on a squared loss this is the empirical
neural-tangent-kernel model of Lee et al. (2019): its outputs move by -lr K(x, X) grad_f L, K =
J J^T frozen at theta_0, which is the one-step decomposition of Ren & Sutherland (ICLR 2025)
iterated with the kernel held fixed. Trained with any loss and optimizer, it is the network's
training with every nonlinearity in the parameters removed, so where the two part is where the
nonlinearity takes over. A model linear in its parameters is its own linearisation.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gravity.engine.models import ModelConfig, Network
from gravity.engine.worlds import World


def linearise(apply_fn, anchor):
    """`apply_fn(params, *args)`'s first-order model around `anchor`: a function of (params,
    *args) returning apply_fn(anchor, *args) + its JVP along params - anchor (any pytree out)."""

    def linear(params, *args):
        tangent = jax.tree.map(jnp.subtract, params, anchor)
        primal, moved = jax.jvp(lambda p: apply_fn(p, *args), (anchor,), (tangent,))
        return jax.tree.map(jnp.add, primal, moved)

    return linear


class Linearised(NamedTuple):
    """A `Network` replaced by its first-order model around `anchor` (a params pytree, traced or
    not): `apply` and `activations` as the network's, linear in the parameters."""

    network: Network
    anchor: Any

    @property
    def config(self) -> ModelConfig:
        return self.network.config

    @property
    def world(self) -> World:
        return self.network.world

    def init(self, key: jax.Array):
        return self.network.init(key)

    def apply(self, params, inputs: jax.Array, perturbations: dict | None = None):
        """Logits and every named activation of the linear model (see `Network.apply`)."""
        return linearise(self.network.apply, self.anchor)(params, inputs, perturbations)

    def activations(self, params, inputs: jax.Array) -> jax.Array:
        return self.apply(params, inputs)[1][self.config.activation_layer]
