"""Lisa, lazy safety alignment: benign fine-tuning alternates with alignment steps, each state
held near where it began by a proximal term.

Source: Huang, Hu, Ilhan, Tekin and Liu, "Lisa: Lazy Safety Alignment for Large Language Models
against Harmful Fine-tuning Attack", NeurIPS 2024. The fine-tuning service alternates two states
(Bi-State Optimisation): K1 steps on alignment data, then K2 steps on the user's data, and so on,
starting with alignment (their code: K1 = 100, K2 = 900, proximal factor rho = 1). Lisa adds
rho/2 |theta - theta_switch|^2 to each state's loss, theta_switch the parameters at the last
switch between the states (the other state's last iterate), against the "excess drift" that
undoes the other state's progress. The strength is rho; at rho = 0 this is plain Bi-State
Optimisation (not the baseline: the alignment steps remain).

What the toy keeps: the alternation (alignment steps train on the world's safety data, hazardous
inputs labelled REFUSE, in place of the benign batch: `batch`), Lisa's alignment share
K1 / (K1 + K2) = 10% (2 alignment then 18 benign steps, so the standard 100-step phase has five
cycles, as Lisa's runs have several), one optimizer state through both states (as Lisa's single
trainer), and the proximal term to the last switch point, carried from step to step (`carry`,
`advance`): the anchor is the phase's starting parameters (theta_S in the standard history) until
the first switch. Why the switch point and not theta_S: that is Lisa's term, and what separates
it from L2-SP plus rehearsal; pulled to theta_S it would be both of those at once. What it drops:
the proximal term's warm-up (Lisa's code applies it only after the first 10% of steps), LoRA
(the toy fine-tunes every parameter), and the harmful share of the user data (ours is benign).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gravity.engine.defence import Defence
from gravity.validation import check


class LisaStep(NamedTuple):
    """What a step's hooks see: whether it is an alignment step, and the proximal anchor."""

    aligning: jax.Array
    anchor: Any


@dataclasses.dataclass(frozen=True)
class Lisa(Defence):
    align_steps: int = 2
    benign_steps: int = 18

    def __post_init__(self):
        for field in ("align_steps", "benign_steps"):
            value = getattr(self, field)
            check(value >= 1, f"Lisa.{field}", "a positive integer", value)

    def carry(self, state, params):
        """The proximal anchor at the phase's start: its initial parameters."""
        return params

    def advance(self, state, carried, params, step):
        """At a switch the anchor becomes the parameters before the step."""
        anchor = switched_anchor(carried, params, step, self.align_steps, self.benign_steps)
        return LisaStep(aligning(step, self.align_steps, self.benign_steps), anchor), anchor

    def batch(self, state: LisaStep, world, world_knobs, key, batch, strength):
        """An alignment step trains on a safety batch of the same size instead."""
        safety = world.sample(world_knobs, "safety", key, batch.labels.shape[0])
        return jax.tree.map(lambda s, b: jnp.where(state.aligning, s, b), safety, batch)

    def loss(self, params, state: LisaStep, strength):
        moved = jax.tree.map(lambda p, a: p - a, params, state.anchor)
        return 0.5 * strength * sum(jnp.vdot(d, d) for d in jax.tree.leaves(moved))


def aligning(step, align_steps: int, benign_steps: int) -> jax.Array:
    """Whether step `step` (0-based) is an alignment step: each cycle is `align_steps`
    alignment steps, then `benign_steps` benign ones."""
    return jnp.asarray(step) % (align_steps + benign_steps) < align_steps


def switched_anchor(anchor, params, step, align_steps: int, benign_steps: int):
    """The proximal anchor for step `step`: `params` (the parameters before it) where the step
    begins a state (the first of a cycle's alignment or benign steps), else `anchor`."""
    phase = jnp.asarray(step) % (align_steps + benign_steps)
    switch = (phase == 0) | (phase == align_steps)
    return jax.tree.map(lambda p, a: jnp.where(switch, p, a), params, anchor)


LISA = Lisa(
    "lisa", "alignment steps alternate with benign ones, each pulled to the last switch point"
)
