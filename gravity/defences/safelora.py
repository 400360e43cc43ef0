"""SafeLoRA (after Hsu et al. 2024, for full fine-tuning): each weight matrix's update dW is
replaced by dW C, C = V^T V / |V|_F with V = W_S - W_H the alignment matrix, where
cos(dW, dW C) < strength (the update strays from the alignment subspace)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gravity.engine.defence import Defence, Setup


@dataclasses.dataclass(frozen=True)
class SafeLora(Defence):
    def state(self, setup: Setup):
        """The alignment matrices W_S - W_H (every leaf; only matrices are used)."""
        return jax.tree.map(lambda s, h: s - h, setup.theta_s, setup.theta_h)

    def update(self, updates, state, strength, step=None):
        return jax.tree.map(lambda u, v: project(u, v, strength), updates, state)


def project(update, alignment, threshold):
    """A matrix's update projected onto its alignment subspace where their cosine is below
    `threshold`; vectors (biases, norms) unchanged."""
    if update.ndim != 2:
        return update
    c = alignment.T @ alignment / jnp.maximum(jnp.linalg.norm(alignment), 1e-12)
    projected = update @ c
    cos = jnp.vdot(update, projected) / jnp.maximum(
        jnp.linalg.norm(update) * jnp.linalg.norm(projected), 1e-12
    )
    return jnp.where(cos < threshold, projected, update)


SAFELORA = SafeLora("safelora", "updates projected onto the alignment matrices")
