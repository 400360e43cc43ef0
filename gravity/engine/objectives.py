"""What a phase minimises. A phase names its objective, so a new one is a few lines here, not a
change to the engine.

An objective sees the model's outputs on the phase's batch (`Outputs`: logits and the activations
at the v_rev layer), when it names a `reference` anchor (a finished phase of the history, e.g.
"pretrain" or "helpful"), that frozen model's outputs on the same batch (what distillation,
NPO-style and representation-misdirection objectives need), and a strength (the traced
`Knobs.objective_strength`; objectives without one ignore it).

Unlearning objectives train on forget + retain batches (data kinds "unlearn" or "safety") and
split them by `Batch.hazardous` (the forget set); the strength weighs the forget term against the
retain term, which keeps the model's behaviour elsewhere:

- graddiff: retain cross-entropy minus strength x forget cross-entropy (gradient difference);
- npo: retain cross-entropy plus strength x the negative-preference loss on the forget set,
  (2 / beta) softplus(beta log(p / p_ref)) of the forget label (Zhang et al. 2024, beta 0.1);
- rmu: representation misdirection at the probe layer (Li et al. 2024): forget activations
  pushed toward a fixed random direction scaled to `RMU_SCALE` times the reference's mean
  activation norm, retain activations held at the reference's; both terms relative to the
  reference's mean squared norm, so they are O(1) in any model;
- refusal: retain cross-entropy plus strength x forget cross-entropy, on "safety" data (forget
  inputs labelled REFUSE): today's safety phase with a weighted forget term.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from gravity.engine.worlds import Batch
from gravity.validation import check_choice

NPO_BETA = 0.1
RMU_SCALE = 4.0
RMU_DIRECTION_TAG = 0x524D55  # "RMU": the fixed random direction's key, fold_in(key(0), tag)


class Outputs(NamedTuple):
    """A model's outputs on a batch: logits (N, C) and activations at the v_rev layer (N, D)."""

    logits: jax.Array
    activations: jax.Array


Loss = Callable[[Outputs, Batch, "Outputs | None", "jax.Array | float"], jax.Array]


class Objective(NamedTuple):
    """loss(outputs, batch, reference outputs or None, strength) -> scalar; `reference` names
    the anchor (by data kind: "pretrain", "helpful", "safety", or a phase name) it needs."""

    loss: Loss
    reference: str | None = None
    description: str = ""


def cross_entropy(logits_NxC: jax.Array, labels_N: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy against integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(logits_NxC, labels_N).mean()


def first_update(net, theta, batch: Batch, optimizer: optax.GradientTransformation):
    """The optimizer's exact first update on `batch` (cross-entropy) from a fresh optimizer
    state: what one fine-tuning step would move theta by (the pre-flight monitor's and the
    adversarial alignment's look-ahead)."""

    def loss(p):
        return cross_entropy(net.apply(p, batch.inputs)[0], batch.labels)

    updates, _ = optimizer.update(jax.grad(loss)(theta), optimizer.init(theta), theta)
    return updates


def masked_mean(values_N: jax.Array, mask_N: jax.Array) -> jax.Array:
    """Mean of `values` over the rows where `mask` holds (0 when none does)."""
    weights = mask_N.astype(values_N.dtype)
    return jnp.sum(values_N * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def _label_log_probs(logits_NxC: jax.Array, labels_N: jax.Array) -> jax.Array:
    log_p = jax.nn.log_softmax(logits_NxC)
    return jnp.take_along_axis(log_p, labels_N[:, None], axis=-1)[:, 0]


def _split_cross_entropy(outputs: Outputs, batch: Batch) -> tuple[jax.Array, jax.Array]:
    """(forget, retain) cross-entropies of a mixed batch."""
    nll = -_label_log_probs(outputs.logits, batch.labels)
    return masked_mean(nll, batch.hazardous), masked_mean(nll, ~batch.hazardous)


def _cross_entropy(outputs, batch, reference, strength) -> jax.Array:
    return cross_entropy(outputs.logits, batch.labels)


def _gradient_ascent(outputs, batch, reference, strength) -> jax.Array:
    return -cross_entropy(outputs.logits, batch.labels)


def _graddiff(outputs, batch, reference, strength) -> jax.Array:
    forget, retain = _split_cross_entropy(outputs, batch)
    return retain - strength * forget


def _npo(outputs, batch, reference, strength) -> jax.Array:
    log_ratio = _label_log_probs(outputs.logits, batch.labels) - _label_log_probs(
        reference.logits, batch.labels
    )
    preference = (2.0 / NPO_BETA) * jax.nn.softplus(NPO_BETA * log_ratio)
    _, retain = _split_cross_entropy(outputs, batch)
    return retain + strength * masked_mean(preference, batch.hazardous)


def rmu_direction(dim: int) -> jax.Array:
    """The fixed random unit direction RMU pushes forget activations toward (uniform [0, 1)
    coordinates, normalised, as in RMU; the same in every run)."""
    u = jax.random.uniform(jax.random.fold_in(jax.random.key(0), RMU_DIRECTION_TAG), (dim,))
    return u / jnp.linalg.norm(u)


def _rmu(outputs, batch, reference, strength) -> jax.Array:
    acts, ref = outputs.activations, reference.activations
    ref_sq = jnp.sum(ref**2, axis=-1)
    scale = jnp.maximum(jnp.mean(ref_sq), 1e-12)
    target = (
        RMU_SCALE * masked_mean(jnp.sqrt(ref_sq), batch.hazardous) * rmu_direction(acts.shape[-1])
    )
    forget = masked_mean(jnp.sum((acts - target[None]) ** 2, axis=-1), batch.hazardous) / scale
    retain = masked_mean(jnp.sum((acts - ref) ** 2, axis=-1), ~batch.hazardous) / scale
    return retain + strength * forget


def _refusal(outputs, batch, reference, strength) -> jax.Array:
    forget, retain = _split_cross_entropy(outputs, batch)
    return retain + strength * forget


OBJECTIVES: dict[str, Objective] = {
    "cross_entropy": Objective(_cross_entropy, None, "cross-entropy on the phase's labels"),
    "gradient_ascent": Objective(
        _gradient_ascent, None, "minus the cross-entropy: unlearning by gradient ascent"
    ),
    "graddiff": Objective(
        _graddiff, None, "retain cross-entropy minus strength x forget cross-entropy"
    ),
    "npo": Objective(
        _npo, "pretrain", "retain cross-entropy plus strength x NPO on the forget set"
    ),
    "rmu": Objective(
        _rmu, "pretrain", "forget activations to a fixed random vector, retain ones held"
    ),
    "refusal": Objective(
        _refusal, None, "retain plus strength x forget cross-entropy, on safety data (REFUSE)"
    ),
}
UNLEARNING = ("graddiff", "npo", "rmu", "refusal")
"""The unlearning objectives; `refusal` trains on "safety" data, the others on "unlearn"."""


def unlearning_data(name: str) -> str:
    """The data kind an unlearning objective trains on."""
    check_choice(name, UNLEARNING, "method")
    return "safety" if name == "refusal" else "unlearn"


def check_name(name: str, field: str = "objective") -> None:
    check_choice(name, OBJECTIVES, field)


def get(name: str) -> Objective:
    check_name(name)
    return OBJECTIVES[name]
