"""EWC: strength/2 * sum F (theta - theta_S)^2, F the diagonal empirical Fisher of the safety
loss at theta_S."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gravity.engine.defence import Defence, Setup


@dataclasses.dataclass(frozen=True)
class Ewc(Defence):
    def state(self, setup: Setup):
        """theta_S and the Fisher there, on the setup's safety batch."""
        return setup.theta_s, diagonal_fisher(setup.net, setup.theta_s, setup.safety_batch)

    def loss(self, params, state, strength):
        theta_s, fisher = state
        moved = jax.tree.map(lambda p, s: p - s, params, theta_s)
        pairs = zip(jax.tree.leaves(fisher), jax.tree.leaves(moved), strict=True)
        return 0.5 * strength * sum(jnp.vdot(f * d, d) for f, d in pairs)


def diagonal_fisher(net, params, batch):
    """Mean over examples of the squared per-example gradient of the cross-entropy."""

    def example_loss(p, x, y):
        logits = net.apply(p, x[None])[0]
        return -jax.nn.log_softmax(logits)[0, y]

    grads = jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0))(
        params, batch.inputs, batch.labels
    )
    return jax.tree.map(lambda g: jnp.mean(g**2, axis=0), grads)


EWC = Ewc("ewc", "pull to theta_S weighted by the safety loss's diagonal Fisher")
