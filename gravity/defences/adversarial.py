"""Adversarial alignment, the defence that acts before fine-tuning, in the safety phase itself.

A safety phase whose steps from `augment_from` on are adversarially
augmented against benign fine-tuning. At each such step, with theta the current parameters,
u_B(theta) the planned benign optimizer's exact first update at theta on a fresh benign batch
(`gravity.engine.objectives.first_update`, the update whose first-order drift along v_rev the
pre-flight monitor scores) and k the lookahead (in benign steps), the safety phase minimises

    1/2 [ L_S(theta) + L_S(theta + k u_B(theta)) ]

on its own safety batch, the perturbation held fixed (first order, as in SAM or first-order
MAML: the gradient at the perturbed point is applied at theta). So refusal is trained both where
the model is and where k benign steps would take it if each repeated the first (a linear
extrapolation: Adam's first update is about lr * sign(g), so for coordinates whose benign
gradient changes sign it overstates the motion). At k = 0 the step is exactly the plain safety
step (the perturbed copy is theta itself). Its threat model is optimistic for the defence: the
simulated benign batches come from the same distribution as the later fine-tuning (not the same
batches), and the planned benign optimizer and learning rate are known.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from gravity.engine.objectives import cross_entropy, first_update


def adversarial_alignment(
    net,
    params,
    safety_batch,
    benign_batch,
    optimizer: optax.GradientTransformation,
    benign_optimizer: optax.GradientTransformation,
    lookahead,
    augment_from: int,
    snapshots: tuple[int, ...],
):
    """A safety phase from `params` (theta_H) whose steps t >= `augment_from` are adversarially
    augmented with `lookahead` (k, traced; see the module docstring); steps before it, and every
    step at k = 0, are the plain safety step.

    safety_batch(t), benign_batch(t): the safety batch of step t and the benign batch its
    simulated fine-tuning step sees. optimizer: the safety phase's (one state through the whole
    phase, as the engine's); benign_optimizer: the planned fine-tuning's (fresh at every
    simulated step). Returns the parameters after each of `snapshots` (increasing step counts;
    the last is the phase's length), stacked (S, ...).
    """

    def loss(p, batch):
        return cross_entropy(net.apply(p, batch.inputs)[0], batch.labels)

    def step(carry, t):
        p, opt_state = carry
        batch = safety_batch(t)
        shift = jax.lax.stop_gradient(first_update(net, p, benign_batch(t), benign_optimizer))
        k = jnp.where(t >= augment_from, lookahead, 0.0)
        shifted = jax.tree.map(lambda a, d: a + k * d, p, shift)
        grads = jax.tree.map(
            lambda a, b: 0.5 * (a + b), jax.grad(loss)(p, batch), jax.grad(loss)(shifted, batch)
        )
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), None

    carry, kept, begin = (params, optimizer.init(params)), [], 0
    for end in snapshots:
        carry, _ = jax.lax.scan(step, carry, jnp.arange(begin, end))
        kept.append(carry[0])
        begin = end
    return jax.tree.map(lambda *xs: jnp.stack(xs), *kept)
