"""Booster, attenuating the harmful perturbation: safety alignment plus a term that penalises
how much one simulated harmful step would lower the harmful loss.

Source: Huang, Hu, Ilhan, Tekin and Liu, "Booster: Tackling Harmful Fine-tuning for Large
Language Models via Attenuating Harmful Perturbation", ICLR 2025. Booster minimises

    f(w) + lambda * [h(w) - h(w - alpha * grad h(w) / ||grad h(w)||)],

f the alignment loss and h the harmful loss (the likelihood of harmful answers on a harmful
dataset), the normalised step held fixed: its update is grad f(w) + lambda * [grad h(w) -
grad h(w - alpha d)] with d = grad h(w) / ||grad h(w)|| (their code, `meta_term`). The strength
is lambda; alpha = 0.1 is fixed, Booster's default (their scripts: lambda 5, alpha 0.1).

What the toy keeps: that term, added to the safety phase's loss (the `loss` hook; f is the
phase's own cross-entropy), h the cross-entropy of the world's "hazard" data (hazardous inputs
answered compliantly: the harmful answer, as Booster's BeaverTails harmful pairs are) on a batch
of the phase's size drawn fresh each step (`advance`, which also takes d at the parameters before
the step, where the term is evaluated). At alpha = 0 or lambda = 0 the term is exactly 0. What it
drops: LoRA, and Booster's separate harmful dataset of fixed size (ours is drawn fresh).

The variant `simulate="benign"` (registered as "booster_benign") simulates a benign step
instead: d is the normalised gradient of the cross-entropy on a fresh benign batch (the world's
"benign" data, the fine-tuning this project's reversion is about), and the term penalises how
much that step lowers the harmful loss h, the first-order reversion a benign step causes. It is
not in the paper; it is Booster's construction against this project's threat model. Its benign
batches are the world's at `simulated_overlap` (0.5, the world's default and the standard
fine-tuning's), not at the run's own benign overlap: the defender aligns before the fine-tuner
chooses its data, so a sweep over the fine-tuner's overlap (the arena) must not hand it to the
defender.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gravity.engine.defence import DrawingAlignmentDefence, Setup
from gravity.engine.objectives import cross_entropy
from gravity.validation import check_choice

SIMULATED = {"harmful": "hazard", "benign": "benign"}
"""The simulated step's kind -> the world's data kind its gradient is taken on."""
HARMFUL_STREAM, STEP_STREAM = 0, 1


class BoosterStep(NamedTuple):
    """A step's harmful batch and the simulated step's unit direction d at its parameters."""

    net: Any
    harmful: Any
    direction: Any


@dataclasses.dataclass(frozen=True)
class Booster(DrawingAlignmentDefence):
    alpha: float = 0.1
    simulate: str = "harmful"
    simulated_overlap: float = 0.5

    def __post_init__(self):
        check_choice(self.simulate, SIMULATED, "Booster.simulate")

    def advance(self, state: Setup, carried, params, step):
        """The step's harmful batch and d, the unit gradient of the simulated step's loss."""
        harmful = state.draw("hazard", step, HARMFUL_STREAM)
        simulated = harmful
        if self.simulate != "harmful":
            simulated = state.draw(
                SIMULATED[self.simulate],
                step,
                STEP_STREAM,
                benign_overlap=jnp.float32(self.simulated_overlap),
            )
        grads = jax.grad(batch_loss(state.net, simulated))(params)
        return BoosterStep(state.net, harmful, unit(grads)), carried

    def loss(self, params, state: BoosterStep, strength):
        harm = batch_loss(state.net, state.harmful)
        return strength * attenuation(harm, params, state.direction, self.alpha)


def batch_loss(net, batch):
    """The cross-entropy on `batch` as a function of the parameters."""
    return lambda p: cross_entropy(net.apply(p, batch.inputs)[0], batch.labels)


def unit(tree):
    """`tree` divided by its global norm (zero where it is zero)."""
    norm = jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(tree)))
    scale = 1.0 / jnp.where(norm > 0, norm, 1.0)
    return jax.tree.map(lambda leaf: scale * leaf, tree)


def attenuation(h, params, direction, alpha):
    """h(w) - h(w - alpha d): how much the step -alpha d lowers h (d held fixed)."""
    stepped = jax.tree.map(lambda p, d: p - alpha * d, params, jax.lax.stop_gradient(direction))
    return h(params) - h(stepped)


BOOSTER = Booster(
    "booster", "alignment + lambda [h(w) - h(w - alpha grad h/|grad h|)] (Huang et al. 2025)"
)
BOOSTER_BENIGN = Booster(
    "booster_benign",
    "Booster's term against a simulated benign step: h(w) - h(w - alpha grad b/|grad b|)",
    simulate="benign",
)
