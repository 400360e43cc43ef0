"""RESTA, re-alignment by a safety vector: after fine-tuning, add gamma * (theta_S - theta_H).

Source: Bhardwaj, Anh and Poria, "Language Models are Homer Simpson! Safety Re-Alignment of
Fine-tuned Language Models through Task Arithmetic", ACL 2024. RESTA adds a safety vector, the
aligned model minus an unaligned one, to the fine-tuned model's weights, scaled by a
coefficient; the strength here is that coefficient, gamma.

What the toy keeps: the weight arithmetic itself, theta_T + gamma * (theta_S - theta_H), applied
once at the end of benign fine-tuning (the `edit` hook), to every parameter; the safety vector
from two models the defender already has. What it drops: the unaligned model is our helpful-only
witness theta_H, from which safety alignment started (RESTA's unaligned model is the aligned one
fine-tuned on harmful data, so its vector points back along the same axis but is learned the
other way round); RESTA's optional DARE step (dropping and rescaling the fine-tuning delta before
the addition) is left out. In the toy the safety vector is exactly the displacement safety
alignment made, so gamma = 1 re-applies the whole of it on top of the fine-tuned model.
"""

from __future__ import annotations

import dataclasses

import jax

from gravity.engine.defence import Defence, Setup


@dataclasses.dataclass(frozen=True)
class Resta(Defence):
    def state(self, setup: Setup):
        """The safety vector theta_S - theta_H."""
        return safety_vector(setup.theta_s, setup.theta_h)

    def edit(self, params, state, strength):
        return add_safety_vector(params, state, strength)


def safety_vector(theta_s, theta_h):
    """theta_S - theta_H, leaf by leaf."""
    return jax.tree.map(lambda s, h: s - h, theta_s, theta_h)


def add_safety_vector(params, vector, gamma):
    """params + gamma * vector: at gamma 0 exactly `params`."""
    return jax.tree.map(lambda p, v: p + gamma * v, params, vector)


RESTA = Resta("resta", "after fine-tuning, gamma * (theta_S - theta_H) added to the weights")
