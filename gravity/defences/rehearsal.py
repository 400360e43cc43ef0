"""Rehearsal: safety data (hazardous -> REFUSE) mixed into the benign batches, each example
replaced with probability `strength` (the paper reports ~30% less reversion for it)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gravity.engine.defence import Defence


@dataclasses.dataclass(frozen=True)
class Rehearsal(Defence):
    def batch(self, state, world, world_knobs, key, batch, strength):
        """Safety examples drawn from the step's defence key, mixed in."""
        k_safety, k_mix = jax.random.split(key)
        safety = world.sample(world_knobs, "safety", k_safety, batch.labels.shape[0])
        return mix_rehearsal(batch, safety, k_mix, strength)


def mix_rehearsal(benign, safety, key, fraction):
    """Each benign example replaced by a safety example with probability `fraction`; at 0 the
    batch is exactly the benign one."""
    swap = jax.random.bernoulli(key, fraction, (benign.labels.shape[0],))

    def pick(a, b):
        return jnp.where(swap.reshape(-1, *([1] * (a.ndim - 1))), b, a)

    return jax.tree.map(pick, benign, safety)


REHEARSAL = Rehearsal("rehearsal", "a fraction of safety data in the benign batches")
