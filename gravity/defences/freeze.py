"""Freeze: the parameters of the layer where v_rev is measured kept fixed (no strength)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gravity.engine.defence import Defence, Setup


@dataclasses.dataclass(frozen=True)
class Freeze(Defence):
    def state(self, setup: Setup):
        return probe_layer_mask(setup.theta_s, setup.net.config)

    def update(self, updates, state, strength, step=None):
        return jax.tree.map(lambda u, m: u * (1.0 - m), updates, state)


def probe_layer_mask(params, config):
    """1 for the parameters of the layer whose activations define v_rev, 0 elsewhere."""
    layer = config.activation_layer
    if layer.startswith("hidden"):
        prefix = ("hidden", int(layer.removeprefix("hidden")) - 1)
    elif layer.startswith("block"):
        prefix = ("blocks", int(layer.removeprefix("block")) - 1)
    else:
        prefix = ("final_norm",)

    def mask(path, leaf):
        keys = tuple(getattr(k, "key", getattr(k, "idx", None)) for k in path)
        return jnp.full_like(leaf, float(keys[: len(prefix)] == prefix))

    return jax.tree_util.tree_map_with_path(mask, params)


FREEZE = Freeze("freeze", "the probe layer's parameters fixed")
