"""Early warning: will a benign fine-tuning run revert, before (pre-flight) or just after it
starts (online)?

- **pre-flight** (`preflight`): at theta_S, before any update, the first-order predicted drift of
  the hazardous probes' activations along v_rev over the run's first update: s = <J dtheta,
  v_rev> / sqrt(N), with dtheta the optimizer's exact first update on a sample of the candidate
  benign data (a Jacobian-vector product: no training step is taken).
- **online** (`online_alarm`): from the first k benign steps, the recorded alignment cos(drift,
  v_rev) at step k and the drift along v_rev per step (its slope).
The naive monitor it is compared against watches harmfulness itself.

Usage on one's own aligned toy model (theta_S, the witness theta_H, hazardous probe inputs):

    score = preflight(net, theta_s, theta_h, hazard_inputs, benign_batch, optax.adam(1e-3))
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import optax

from gravity import geometry, interventions
from gravity.objectives import cross_entropy
from gravity.worlds import Batch


class Preflight(NamedTuple):
    """The pre-flight scores: predicted first-step drift along v_rev (probe-RMS units) and the
    predicted cosine of the first-step drift with v_rev."""

    drift_along_v_rev: jax.Array
    alignment: jax.Array


def first_update(net, theta, batch: Batch, optimizer: optax.GradientTransformation):
    """The optimizer's exact first update on `batch` from a fresh optimizer state."""

    def loss(p):
        return cross_entropy(net.apply(p, batch.inputs)[0], batch.labels)

    updates, _ = optimizer.update(jax.grad(loss)(theta), optimizer.init(theta), theta)
    return updates


def preflight(
    net, theta_s, theta_h, hazard_inputs, batch: Batch, optimizer: optax.GradientTransformation
) -> Preflight:
    """The pre-flight scores of fine-tuning theta_S on data like `batch` with `optimizer`;
    v_rev is the default (stacked) theta_S -> theta_H activation displacement."""
    aligned = net.activations(theta_s, hazard_inputs)
    v_rev = geometry.unit(net.activations(theta_h, hazard_inputs) - aligned)

    def acts(p):
        return net.activations(p, hazard_inputs)

    _, moved = jax.jvp(acts, (theta_s,), (first_update(net, theta_s, batch, optimizer),))
    return Preflight(
        interventions.drift_component(aligned + moved, aligned, v_rev),
        geometry.cosine(moved, v_rev),
    )


class OnlineAlarm(NamedTuple):
    """Online scores after k benign steps: alignment at k and drift along v_rev per step."""

    alignment: jax.Array
    slope: jax.Array


def online_alarm(alignment_T, drift_along_v_rev_T, steps_T, k: int) -> OnlineAlarm:
    """The online scores at step k from a run's recorded benign metrics (k must be recorded)."""
    column = list(steps_T).index(k)
    return OnlineAlarm(alignment_T[..., column], drift_along_v_rev_T[..., column] / k)
