"""A ReLU MLP that returns its logits and the activations at every hidden layer."""

from __future__ import annotations

import jax
from flax import nnx


class MLP(nnx.Module):
    """input -> [Linear -> ReLU] x len(hidden) -> Linear; activations named hidden1, hidden2, ..."""

    def __init__(self, input_dim: int, hidden: tuple[int, ...], output_dim: int, *, rngs: nnx.Rngs):
        widths = (input_dim, *hidden)
        self.hidden = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.readout = nnx.Linear(widths[-1], output_dim, rngs=rngs)

    def __call__(
        self, inputs_NxD: jax.Array, perturbations: dict[str, jax.Array] | None = None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """`perturbations`: {hidden layer name: (N, width)} added to that layer's activations
        before the layers after it read them (Vaccine's perturbed forward pass)."""
        activations = {}
        h = inputs_NxD
        for i, layer in enumerate(self.hidden):
            h = jax.nn.relu(layer(h))
            name = f"hidden{i + 1}"
            if perturbations is not None and name in perturbations:
                h = h + perturbations[name]
            activations[name] = h
        logits = self.readout(h)
        activations["logits"] = logits
        return logits, activations
