"""TAR, tampering attack resistance, first order: safety alignment meta-learned against
simulated fine-tuning, its refusal trained where K adversary steps from the current parameters
would take the model.

Source: Tamirisa, Bharathi, Phan, Zhou, Gatti, Suresh, Lin, Wang, Wang, Arel, Zou, Song, Li,
Hendrycks and Mazeika, "Tamper-Resistant Safeguards for Open-Weight LLMs", ICLR 2025. Each outer
step samples an attack, runs it for K inner steps from the current parameters theta (theta_K),
and adds lambda_TR * grad L_TR at the attacked parameters to the retain gradient applied at
theta: first-order meta-learning (the inner updates are not differentiated through). For
harmful-request refusal their adversary fine-tunes on harmful completions and L_TR is a DPO loss
preferring refusals (their config: K = 64 inner steps, lambda_TR = 0.1, the TR loss taken every
4th inner step with a weighting schedule). The strength is lambda_TR.

What the toy keeps: each safety step adds lambda * L_TR(theta + sg(theta_K - theta)) to the phase's
loss (the `loss` hook; its gradient is exactly grad L_TR at theta_K, applied at theta), L_TR the
cross-entropy of REFUSE on a fresh batch of hazardous inputs (the refusal the safety phase
trains; the toy has no preference pairs), theta_K after K = 4 steps (fixed) of Adam at lr 1e-3
(the standard fine-tuning's optimizer and rate, one optimizer state through the K steps, fresh
each outer step) from the parameters before the step, each on a fresh batch of the phase's size
(`advance`). The adversary: `adversary="harmful"` ("tar", the paper's) fine-tunes on the world's
"hazard" data (hazardous inputs answered harmfully); `adversary="benign"` ("tar_benign") on its
"benign" data, the fine-tuning whose reversion this project studies. Both are registered because
the choice is the question: TAR trained against harmful tampering, judged against benign
fine-tuning, against TAR trained against the benign fine-tuner itself. At K = 0 the term is
lambda times the refusal loss at theta; at lambda = 0 it is exactly 0. What it drops: the
distribution over attacks (learning rates, schedules, datasets), the TR loss along the inner
trajectory (ours: its end only), its DPO form, the retain representation term, and K = 64 (every
inner step costs a forward and backward pass per safety step). The adversary's data are the
world's at `adversary_overlap` (0.5, the world's default and the standard fine-tuning's), not at
the run's own benign overlap: the defender aligns before the fine-tuner chooses its data, so a
sweep over the fine-tuner's overlap (the arena) must not hand it to the defender.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gravity.engine.defence import DrawingAlignmentDefence, Setup
from gravity.engine.objectives import cross_entropy
from gravity.validation import check, check_choice

ADVERSARIES = {"harmful": "hazard", "benign": "benign"}
"""The simulated adversary -> the world's data kind it fine-tunes on."""
TAMPER_STREAM = 0
"""The stream of the hazardous inputs L_TR is taken on; inner step k draws from stream k + 1."""


class TarStep(NamedTuple):
    """A step's hazardous inputs labelled REFUSE and the simulated attack's displacement."""

    net: Any
    tamper: Any
    shift: Any


@dataclasses.dataclass(frozen=True)
class Tar(DrawingAlignmentDefence):
    inner_steps: int = 4
    inner_learning_rate: float = 1e-3
    adversary: str = "harmful"
    adversary_overlap: float = 0.5

    def __post_init__(self):
        check(self.inner_steps >= 0, "Tar.inner_steps", "an integer >= 0", self.inner_steps)
        check_choice(self.adversary, ADVERSARIES, "Tar.adversary")

    def advance(self, state: Setup, carried, params, step):
        """The attack's displacement theta_K - theta from `params`, and L_TR's batch."""
        batches = [
            state.draw(
                ADVERSARIES[self.adversary],
                step,
                TAMPER_STREAM + 1 + k,
                benign_overlap=jnp.float32(self.adversary_overlap),
            )
            for k in range(self.inner_steps)
        ]
        attacked = simulated_attack(
            state.net, params, batches, optax.adam(self.inner_learning_rate)
        )
        shift = jax.tree.map(lambda a, p: a - p, attacked, params)
        tamper = refusals(state.draw("hazard", step, TAMPER_STREAM), state.net.world.n_classes)
        return TarStep(state.net, tamper, shift), carried

    def loss(self, params, state: TarStep, strength):
        return strength * tamper_loss(state.net, params, state.shift, state.tamper)


def simulated_attack(net, params, batches, optimizer: optax.GradientTransformation):
    """The parameters after one optimizer step (cross-entropy) on each of `batches` in turn,
    from `params` and a fresh optimizer state (no batches: `params`)."""
    opt_state = optimizer.init(params)
    for batch in batches:

        def loss(p, batch=batch):
            return cross_entropy(net.apply(p, batch.inputs)[0], batch.labels)

        updates, opt_state = optimizer.update(jax.grad(loss)(params), opt_state, params)
        params = optax.apply_updates(params, updates)
    return params


def refusals(batch, refuse: int):
    """`batch` with every label REFUSE."""
    return batch._replace(labels=jnp.full_like(batch.labels, refuse))


def tamper_loss(net, params, shift, batch):
    """L_TR at the attacked point params + shift, the shift held fixed (first order: its
    gradient in `params` is L_TR's gradient at the attacked point)."""
    attacked = jax.tree.map(lambda p, s: p + s, params, jax.lax.stop_gradient(shift))
    return cross_entropy(net.apply(attacked, batch.inputs)[0], batch.labels)


TAR = Tar("tar", "refusal trained at the end of K simulated harmful fine-tuning steps (TAR)")
TAR_BENIGN = Tar(
    "tar_benign",
    "refusal trained at the end of K simulated benign fine-tuning steps (TAR's construction)",
    adversary="benign",
)
