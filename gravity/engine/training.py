"""One training loop for the models trained outside a history: a `lax.scan` of optimizer steps.

The digits teacher (`gravity.engine.digits.train_teacher`) and every distilled student
(`gravity.engine.distill.distill`) train the same way: batch i is drawn from `fold_in(key, i)`, one
gradient of the batch's loss, one optimizer update. `train` is that loop once, with records:
the steps run in `n_records` equal intervals (an inner `lax.scan` per interval, inside an outer
one), `evaluate(params)` is recorded before the first step and after every interval, so a
vmapped student records its metrics without a `lax.cond` per step.

The phases of a history (`gravity.engine.history.run_phases`) have their own loop: their batches
come from a world, their objectives compare against the history's anchors and their defences hook
the gradient and the update, none of which these models have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gravity.validation import check

Params = Any
Batch = Any


class Trained(NamedTuple):
    """What `train` returns: the final parameters, every loss (n_records, steps / n_records)
    and `evaluate`'s records {name: (n_records + 1, ...)} (before any step first)."""

    params: Params
    losses: jax.Array
    records: dict


def train(
    loss: Callable[[Params, Batch], jax.Array],
    sample: Callable[[jax.Array], Batch],
    optimizer: optax.GradientTransformation,
    params: Params,
    key: jax.Array,
    steps: int,
    n_records: int = 1,
    evaluate: Callable[[Params], dict] | None = None,
) -> Trained:
    """`steps` updates of `optimizer` on `loss(params, sample(fold_in(key, i)))` at step i.

    sample: step key -> batch; whatever it computes (inputs, labels, a frozen teacher's targets)
        is outside the gradient. evaluate: params -> dict of arrays, recorded before the first
        step and after each of the `n_records` intervals (`steps` must divide evenly).
    """
    check(
        n_records >= 1 and steps % n_records == 0,
        "n_records",
        f"a positive divisor of steps = {steps}",
        n_records,
    )
    evaluate = evaluate or (lambda p: {})
    per_record = steps // n_records

    def step(carry, index):
        p, opt_state = carry
        batch = sample(jax.random.fold_in(key, index))
        value, grads = jax.value_and_grad(loss)(p, batch)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), value

    def interval(carry, record):
        carry, losses = jax.lax.scan(step, carry, record * per_record + jnp.arange(per_record))
        return carry, (losses, evaluate(carry[0]))

    carry = (params, optimizer.init(params))
    (params, _), (losses, later) = jax.lax.scan(interval, carry, jnp.arange(n_records))
    records = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), evaluate(carry[0]), later)
    return Trained(params, losses, records)


__all__ = ["Trained", "train"]
