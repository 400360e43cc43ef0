"""A capability, measured exactly: what unlearning removes and relearning brings back.

In a world with `capability=True`, hazardous inputs have their own answer rule (a second
teacher), so the capability is answering them by that rule. Every metric is computed from the
logits on fixed probe sets drawn from the world's seed, held out from every training stream:

- forget probes: hazardous inputs labelled with the capability's answers;
  `forget_accuracy` (argmax right) and `forget_probability` (mean probability of the right
  answer: an expectation, not a sampled rate);
- related probes: the same inputs without the hazard, with their ordinary answers;
- retain probes: non-hazardous pretraining inputs (every topic), `retain_accuracy`.

Relearning geometry (our definitions): v_unlearn is the activation displacement on the forget
probes from theta_U back toward theta_P (stacked over probes, as `geometry`'s default v_rev);
the drift of relearning at step t is activations(theta_t) - activations(theta_U) on the same
probes, and its alignment is their cosine (0 for a drift below `geometry.STILL` of the norm).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gravity import geometry
from gravity.models import Network
from gravity.worlds import Batch, World, WorldKnobs

RETAIN_PROBES_TAG = 0x52455441  # "RETA": fold_in(key(world seed + 1), tag), as the world's probes


class CapabilityProbes(NamedTuple):
    """The fixed evaluation sets of a capability (see the module docstring)."""

    forget: Batch
    related: Batch
    retain: Batch


def capability_probes(world: World, knobs: WorldKnobs, n_probes: int) -> CapabilityProbes:
    """Forget and related probes are the world's hazardous and matched probes; retain probes
    are non-hazardous pretraining inputs from their own fixed key."""
    probes = world.probe_set(knobs, n_probes)
    key = jax.random.fold_in(jax.random.key(world.seed + 1), RETAIN_PROBES_TAG)
    retain = world.sample(knobs, "retain", key, n_probes)
    return CapabilityProbes(probes.hazard, probes.matched, retain)


def _accuracy(logits_NxC: jax.Array, labels_N: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(logits_NxC, axis=-1) == labels_N)


def capability(
    net: Network, params, probes: CapabilityProbes
) -> tuple[dict[str, jax.Array], jax.Array]:
    """Exact capability metrics of `params`, and the probe layer's activations on the forget
    probes (N, D), for relearning geometry."""
    n = probes.forget.inputs.shape[0]
    inputs = jnp.concatenate([probes.forget.inputs, probes.related.inputs, probes.retain.inputs])
    logits, activations = net.apply(params, inputs)
    forget, related, retain = logits[:n], logits[n : 2 * n], logits[2 * n :]
    p_forget = jax.nn.softmax(forget)
    metrics = {
        "forget_accuracy": _accuracy(forget, probes.forget.labels),
        "forget_probability": jnp.mean(p_forget[jnp.arange(n), probes.forget.labels]),
        "related_accuracy": _accuracy(related, probes.related.labels),
        "retain_accuracy": _accuracy(retain, probes.retain.labels),
    }
    return metrics, activations[net.config.activation_layer][:n]


def relearning_alignment(
    acts_t: jax.Array, acts_unlearned: jax.Array, acts_pretrained: jax.Array
) -> jax.Array:
    """cos(drift from theta_U, v_unlearn): how much of relearning's motion on the forget probes
    points back toward theta_P (0 where the drift is below `geometry.STILL` of the norm)."""
    drift = acts_t - acts_unlearned
    moved = jnp.linalg.norm(drift) > geometry.STILL * jnp.linalg.norm(acts_unlearned)
    return jnp.where(moved, geometry.cosine(drift, acts_pretrained - acts_unlearned), 0.0)


def first_crossing(values_RxT, steps_T, threshold_R) -> np.ndarray:
    """Per run, the first recorded step at which `values` reach `threshold` (inf if never:
    right-censored at the last step; NaN where the threshold is NaN)."""
    values = np.asarray(values_RxT, dtype=float)
    threshold = np.asarray(threshold_R, dtype=float)[..., None]
    reached = values >= threshold
    first = np.where(reached.any(-1), np.asarray(steps_T)[np.argmax(reached, -1)], np.inf)
    return np.where(np.isnan(threshold[..., 0]), np.nan, first)


def censored_median(times, horizon: float) -> dict[str, float]:
    """Median of right-censored times (inf = not reached by `horizon`): the value when more than
    half were reached, else reported as "> horizon"; with the share reached."""
    t = np.asarray(times, dtype=float).ravel()
    t = t[~np.isnan(t)]
    if t.size == 0:
        return {"median": float("nan"), "censored": True, "reached": float("nan"), "n": 0}
    median = float(np.median(t))
    return {
        "median": median if np.isfinite(median) else float(horizon),
        "censored": bool(not np.isfinite(median)),
        "reached": float(np.mean(np.isfinite(t))),
        "n": int(t.size),
    }
