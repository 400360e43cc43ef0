"""Vaccine, perturbation-aware alignment: safety alignment trained under the worst-case
perturbation of the hidden state, so the aligned behaviour survives the embedding drift
fine-tuning will cause.

Source: Huang, Hu and Liu, "Vaccine: Perturbation-aware Alignment for Large Language Models
against Harmful Fine-tuning Attack", NeurIPS 2024. Each alignment step takes two passes: the
first finds the gradient of the alignment loss L with respect to every layer's output hidden
state, g = grad_h L; the second adds eps = rho * g / ||g|| (||g|| the norm over every layer and
token of the batch at once, their code) to those outputs and trains on the loss there, the
perturbation held fixed (as SAM holds its weight perturbation): min_w L(w; h + eps). The
strength is rho.

What the toy keeps: the two passes and the perturbation's form, on the safety phase's own batch
(hazardous inputs labelled REFUSE and benign ones with their task answers, as Vaccine's
alignment data is harmful prompts with safe answers), injected through the model's
`perturbations` argument (`Network.apply`) at the probe layer (`ModelConfig.activation_layer`;
`layers` names others, the norm then taken over all of them, as Vaccine's), so the update is
exactly the gradient of the perturbed loss: the `batch_loss` hook adds L(w; h + eps) - L(w) to
the phase's cross-entropy L(w), whose own gradient cancels. At rho = 0 the term is exactly 0.
What it drops: Vaccine perturbs every decoder layer at every token; ours perturbs the probe layer
(the transformer's at the last position, the one its activations record: at the last block that
is the same, the earlier positions' gradient being zero there), and LoRA (every parameter
trains). The cancellation assumes the phase's objective is the cross-entropy (the safety
phase's); under another objective the term still adds the perturbed-minus-plain cross-entropy.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from gravity.engine.defence import Defence, Setup
from gravity.engine.objectives import cross_entropy


@dataclasses.dataclass(frozen=True)
class Vaccine(Defence):
    """`layers`: the hidden layers perturbed (empty: the probe layer)."""

    acts_at_alignment: ClassVar[bool] = True
    layers: tuple[str, ...] = ()

    def state(self, setup: Setup):
        """The network (the perturbation is found on each step's own batch)."""
        return setup.net

    def batch_loss(self, params, state, strength, batch, logits):
        net = state
        layers = self.layers or (net.config.activation_layer,)
        eps = worst_case_perturbation(hidden_gradients(net, params, batch, layers), strength)
        perturbed = net.apply(params, batch.inputs, jax.lax.stop_gradient(eps))[0]
        term = cross_entropy(perturbed, batch.labels) - cross_entropy(logits, batch.labels)
        return jnp.where(strength > 0, term, 0.0)


def hidden_gradients(net, params, batch, layers: tuple[str, ...]) -> dict[str, jax.Array]:
    """{layer: grad of the batch's cross-entropy with respect to its activations} at `params`
    (through a zero perturbation there: the plain forward pass)."""
    shapes = jax.eval_shape(net.apply, params, batch.inputs)[1]
    zeros = {name: jnp.zeros(shapes[name].shape, shapes[name].dtype) for name in layers}

    def loss(perturbations):
        return cross_entropy(net.apply(params, batch.inputs, perturbations)[0], batch.labels)

    return jax.grad(loss)(zeros)


def worst_case_perturbation(grads: dict[str, jax.Array], rho) -> dict[str, jax.Array]:
    """rho * g / ||g||, the norm over every layer's gradient at once (zero where g is)."""
    norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads)))
    scale = rho / jnp.where(norm > 0, norm, 1.0)
    return jax.tree.map(lambda g: scale * g, grads)


VACCINE = Vaccine(
    "vaccine", "alignment under the worst-case hidden-state perturbation (Huang et al. 2024)"
)
