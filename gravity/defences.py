"""Defences against reversion ("anti-gravity") that act during benign fine-tuning, compared on
one frontier by `experiments/defences.py`. Each acts in one of three places:

- the batch: **rehearsal** mixes safety data (hazardous -> REFUSE) into the benign batches, each
  example replaced with probability `strength`;
- the loss: **ewc** adds strength/2 * sum F (theta - theta_S)^2 with F the diagonal empirical
  Fisher of the safety loss at theta_S; **l2sp** adds strength/2 * |theta - theta_S|^2;
- the update: **safelora** (after Hsu et al. 2024, for full fine-tuning) replaces each weight
  matrix's update dW by dW C, C = V^T V / |V|_F with V = W_S - W_H the alignment matrix, where
  cos(dW, dW C) < strength (the update strays from the alignment subspace); **freeze** keeps the
  parameters of the layer where v_rev is measured fixed.

Which defences a phase compiles is static (`PhaseSpec.defences`); which one acts, and how
strongly, are traced knobs (`Knobs.defence`, `Knobs.defence_strength`), so every defence at
every strength shares one compiled program and branches from the same theta_S.

One defence acts earlier, in the safety phase itself: **adversarial alignment**
(`adversarial_alignment`), a safety phase whose steps from `augment_from` on are adversarially
augmented against benign fine-tuning. At each such step, with theta the current parameters,
u_B(theta) the planned benign optimizer's exact first update at theta on a fresh benign batch
(`gravity.monitor.first_update`, the update whose first-order drift along v_rev the pre-flight
monitor scores) and k the lookahead (in benign steps), the safety phase minimises

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

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gravity import monitor
from gravity.objectives import cross_entropy
from gravity.validation import check_choice

DEFENCES = ("none", "rehearsal", "ewc", "l2sp", "safelora", "freeze")


def check_names(names: tuple[str, ...], field: str) -> None:
    for name in names:
        check_choice(name, DEFENCES[1:], field)


def index(name: str) -> int:
    """The index of a defence, for `Knobs.defence`."""
    check_choice(name, DEFENCES, "defence")
    return DEFENCES.index(name)


class Context(NamedTuple):
    """What the defences compare against, built once at the branch's start (theta_S)."""

    theta_s: Any
    fisher: Any | None
    alignment: Any | None
    frozen: Any | None


def make_context(net, theta_s, theta_h, safety_batch, compiled: tuple[str, ...]) -> Context:
    """The anchors the compiled defences need (and only those)."""
    fisher = diagonal_fisher(net, theta_s, safety_batch) if "ewc" in compiled else None
    alignment = None
    if "safelora" in compiled:
        alignment = jax.tree.map(lambda s, h: s - h, theta_s, theta_h)
    frozen = probe_layer_mask(theta_s, net.config) if "freeze" in compiled else None
    return Context(theta_s, fisher, alignment, frozen)


def diagonal_fisher(net, params, batch) -> Any:
    """Mean over examples of the squared per-example gradient of the cross-entropy."""

    def example_loss(p, x, y):
        logits = net.apply(p, x[None])[0]
        return -jax.nn.log_softmax(logits)[0, y]

    grads = jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0))(
        params, batch.inputs, batch.labels
    )
    return jax.tree.map(lambda g: jnp.mean(g**2, axis=0), grads)


def probe_layer_mask(params, config) -> Any:
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


def selected(knob, name: str) -> jax.Array:
    """Whether the traced `Knobs.defence` picks `name`."""
    return jnp.asarray(knob) == DEFENCES.index(name)


def mix_rehearsal(benign, safety, key, fraction):
    """Each benign example replaced by a safety example with probability `fraction`; at 0 the
    batch is exactly the benign one."""
    swap = jax.random.bernoulli(key, fraction, (benign.labels.shape[0],))

    def pick(a, b):
        return jnp.where(swap.reshape(-1, *([1] * (a.ndim - 1))), b, a)

    return jax.tree.map(pick, benign, safety)


def penalty(params, ctx: Context, knob, strength) -> jax.Array:
    """The loss-side defences' term (EWC, L2-SP) for the selected defence; 0 otherwise."""
    moved = jax.tree.map(lambda p, s: p - s, params, ctx.theta_s)
    total = jnp.zeros(())
    if ctx.fisher is not None:
        ewc = sum(jnp.vdot(f * d, d) for f, d in zip(*_leaves(ctx.fisher, moved), strict=True))
        total += jnp.where(selected(knob, "ewc"), 0.5 * strength * ewc, 0.0)
    l2 = sum(jnp.vdot(d, d) for d in jax.tree.leaves(moved))
    return total + jnp.where(selected(knob, "l2sp"), 0.5 * strength * l2, 0.0)


def transform_update(updates, ctx: Context, knob, strength):
    """The update-side defences (SafeLoRA-style projection, freezing) for the selected one."""
    if ctx.alignment is not None:
        projected = jax.tree.map(_safelora, updates, ctx.alignment, _like(updates, strength))
        updates = _where(selected(knob, "safelora"), projected, updates)
    if ctx.frozen is not None:
        kept = jax.tree.map(lambda u, m: u * (1.0 - m), updates, ctx.frozen)
        updates = _where(selected(knob, "freeze"), kept, updates)
    return updates


def _safelora(update, alignment, threshold):
    if update.ndim != 2:
        return update
    c = alignment.T @ alignment / jnp.maximum(jnp.linalg.norm(alignment), 1e-12)
    projected = update @ c
    cos = jnp.vdot(update, projected) / jnp.maximum(
        jnp.linalg.norm(update) * jnp.linalg.norm(projected), 1e-12
    )
    return jnp.where(cos < threshold, projected, update)


def _like(tree, value):
    return jax.tree.map(lambda _: value, tree)


def _where(condition, a, b):
    return jax.tree.map(lambda x, y: jnp.where(condition, x, y), a, b)


def _leaves(*trees):
    return [jax.tree.leaves(t) for t in trees]


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
        shift = jax.lax.stop_gradient(
            monitor.first_update(net, p, benign_batch(t), benign_optimizer)
        )
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
