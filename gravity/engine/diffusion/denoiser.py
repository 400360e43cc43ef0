"""The denoiser: a small MLP that predicts the noise from (x_t, time embedding, label embedding),
as a Flax NNX module split once into (graphdef, params) like `gravity.engine.models`."""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from gravity.validation import check, check_widths


@dataclasses.dataclass(frozen=True)
class DenoiserConfig:
    """Static sizes: hidden widths, the label embedding's width and the number of sinusoidal
    time frequencies (the time embedding has twice as many features)."""

    hidden: tuple[int, ...] = (64, 64)
    label_dim: int = 16
    time_frequencies: int = 8

    def __post_init__(self):
        check_widths(self.hidden, "denoiser.hidden")
        check(self.label_dim >= 1, "denoiser.label_dim", "a positive integer", self.label_dim)
        check(
            self.time_frequencies >= 1,
            "denoiser.time_frequencies",
            "a positive integer",
            self.time_frequencies,
        )

    @property
    def activation_layer(self) -> str:
        """The layer whose drift is measured: the last hidden layer."""
        return f"hidden{len(self.hidden)}"


def time_embedding(t_N: jax.Array, n_frequencies: int) -> jax.Array:
    """Sines and cosines of t at frequencies pi * 2^k, k < n_frequencies: (N, 2 n_frequencies)."""
    frequencies = jnp.pi * 2.0 ** jnp.arange(n_frequencies, dtype=jnp.float32)
    phases = t_N[:, None] * frequencies[None]
    return jnp.concatenate([jnp.sin(phases), jnp.cos(phases)], axis=-1)


class Denoiser(nnx.Module):
    """[x_t, time embedding, label embedding] -> [Linear -> SiLU] x len(hidden) -> Linear (noise);
    activations named hidden1, hidden2, ..."""

    def __init__(self, config: DenoiserConfig, n_labels: int, *, rngs: nnx.Rngs):
        self.n_frequencies = config.time_frequencies
        self.label_embedding = nnx.Embed(n_labels, config.label_dim, rngs=rngs)
        widths = (2 + 2 * config.time_frequencies + config.label_dim, *config.hidden)
        self.hidden = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.readout = nnx.Linear(widths[-1], 2, rngs=rngs)

    def __call__(self, x_Nx2, t_N, labels_N) -> tuple[jax.Array, dict[str, jax.Array]]:
        features = [x_Nx2, time_embedding(t_N, self.n_frequencies), self.label_embedding(labels_N)]
        h = jnp.concatenate(features, axis=-1)
        activations = {}
        for i, layer in enumerate(self.hidden):
            h = jax.nn.silu(layer(h))
            activations[f"hidden{i + 1}"] = h
        return self.readout(h), activations


class DenoiserNet(NamedTuple):
    """A denoiser split into its static graph and a pure `init` / `apply` pair over params."""

    config: DenoiserConfig
    n_labels: int
    graphdef: nnx.GraphDef

    def init(self, key: jax.Array) -> nnx.State:
        """Fresh params from a key; vmappable over keys."""
        return nnx.split(Denoiser(self.config, self.n_labels, rngs=nnx.Rngs(params=key)))[1]

    def apply(self, params, x_Nx2, t_N, labels_N) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Noise prediction (N, 2) and the activations of every hidden layer."""
        return nnx.merge(self.graphdef, params)(x_Nx2, t_N, labels_N)

    def epsilon_fn(self, params):
        """The noise prediction of `params` as a sampler's `eps_fn(x, t, labels)`."""
        return lambda x_Nx2, t_N, labels_N: self.apply(params, x_Nx2, t_N, labels_N)[0]

    def activations(self, params, x_Nx2, t_N, labels_N) -> jax.Array:
        """Activations of the measured layer, (N, width)."""
        return self.apply(params, x_Nx2, t_N, labels_N)[1][self.config.activation_layer]


@functools.lru_cache(maxsize=16)
def denoiser_network(config: DenoiserConfig, n_labels: int) -> DenoiserNet:
    """The `DenoiserNet` for a config and label count, built once."""
    graphdef, _ = nnx.split(Denoiser(config, n_labels, rngs=nnx.Rngs(0)))
    return DenoiserNet(config, n_labels, graphdef)
