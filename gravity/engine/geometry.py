"""The geometry of reversion: v_rev, drift alignment, nulls, weight-space displacements.

Definitions (the paper is silent on details; these are ours):
- Activations are taken at one layer on the fixed hazardous probes, an (N, D) array per model.
- v_rev (default, "stacked"): the per-probe activation displacement from the safety-aligned
  theta_S toward the helpful-only witness theta_H, stacked over probes and normalised.
- drift_t = activations(theta_t) - activations(theta_S) on the same probes;
  alignment(t) = cos(drift_t, v_rev) over the stacked N * D coordinates.
- A "mean" direction compares the probe-averaged drift with the probe-averaged displacement.
- Benign-probe alignment uses the matched probes (the hazardous prompts with the hazard removed);
  the hazard-specific alignment is cos(hazard drift - matched drift, v_rev_raw - its matched
  counterpart), which cancels the common-mode drift that benign fine-tuning causes everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

EPS = 1e-12
STILL = 1e-5


def cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    """Cosine between two arrays of the same shape, flattened; 0 where either is zero."""
    a, b = jnp.ravel(a), jnp.ravel(b)
    return jnp.dot(a, b) / jnp.maximum(jnp.linalg.norm(a) * jnp.linalg.norm(b), EPS)


def unit(v: jax.Array) -> jax.Array:
    return v / jnp.maximum(jnp.linalg.norm(jnp.ravel(v)), EPS)


class Anchors(NamedTuple):
    """Activations (N, D) at the history's anchors on the hazardous and matched probes.

    trajectory: hazardous-probe activations through safety alignment, (K, N, D), or None when
    no registered direction needs it.
    """

    pretrained: jax.Array
    helpful: jax.Array
    aligned: jax.Array
    helpful_matched: jax.Array
    aligned_matched: jax.Array
    trajectory: jax.Array | None = None


def _stacked(anchors: Anchors) -> jax.Array:
    return unit(anchors.helpful - anchors.aligned)


def _mean(anchors: Anchors) -> jax.Array:
    mean_D = jnp.mean(anchors.helpful - anchors.aligned, axis=0)
    return jnp.broadcast_to(unit(mean_D), anchors.aligned.shape)


def _from_pretrained(anchors: Anchors) -> jax.Array:
    return unit(anchors.pretrained - anchors.aligned)


def leading_direction(points_KxM: jax.Array, toward: jax.Array) -> jax.Array:
    """The leading principal direction of a set of points, oriented to have positive overlap
    with `toward`."""
    centred = points_KxM - jnp.mean(points_KxM, axis=0, keepdims=True)
    _, _, vt = jnp.linalg.svd(centred, full_matrices=False)
    direction = vt[0]
    return direction * jnp.where(jnp.dot(direction, jnp.ravel(toward)) < 0, -1.0, 1.0)


def _trajectory_pca(anchors: Anchors) -> jax.Array:
    points = anchors.trajectory.reshape(anchors.trajectory.shape[0], -1)
    toward = anchors.helpful - anchors.aligned
    return leading_direction(points, toward).reshape(anchors.aligned.shape)


class Direction(NamedTuple):
    """A registered definition of v_rev: how to build it, and how drift is compared with it."""

    build: Callable[[Anchors], jax.Array]
    reduce: str
    needs_trajectory: bool
    description: str


DIRECTIONS: dict[str, Direction] = {
    "stacked": Direction(
        _stacked, "stacked", False, "theta_S -> theta_H per probe, stacked (default)"
    ),
    "mean": Direction(_mean, "mean", False, "theta_S -> theta_H averaged over probes"),
    "trajectory_pca": Direction(
        _trajectory_pca,
        "stacked",
        True,
        "leading principal direction of the activations through alignment, toward theta_H",
    ),
    "from_pretrained": Direction(
        _from_pretrained, "stacked", False, "theta_S -> theta_P per probe, stacked"
    ),
}
DEFAULT_DIRECTION = "stacked"


def reversion_direction(name: str, anchors: Anchors) -> jax.Array:
    """v_rev under a registered definition, as an (N, D) field of unit norm (or unit rows)."""
    return DIRECTIONS[name].build(anchors)


def alignment(drift_NxD: jax.Array, direction_NxD: jax.Array, reduce: str = "stacked"):
    """cos(drift, v_rev): stacked over probes, or between probe means for "mean" directions."""
    if reduce == "mean":
        return cosine(jnp.mean(drift_NxD, axis=0), direction_NxD[0])
    return cosine(drift_NxD, direction_NxD)


class Reference(NamedTuple):
    """What the benign phase measures drift against; built once, right after alignment."""

    aligned: jax.Array
    aligned_matched: jax.Array
    directions: jax.Array
    specific_direction: jax.Array
    helpful: jax.Array
    helpful_matched: jax.Array
    matched_direction: jax.Array


def make_reference(anchors: Anchors, names: tuple[str, ...]) -> Reference:
    directions = jnp.stack([reversion_direction(name, anchors) for name in names])
    matched = anchors.helpful_matched - anchors.aligned_matched
    specific = (anchors.helpful - anchors.aligned) - matched
    return Reference(
        anchors.aligned,
        anchors.aligned_matched,
        directions,
        unit(specific),
        anchors.helpful,
        anchors.helpful_matched,
        unit(matched),
    )


def drift_metrics(
    hazard_NxD: jax.Array, matched_NxD: jax.Array, reference: Reference, names: tuple[str, ...]
) -> dict[str, jax.Array]:
    """Alignment of the current drift with each v_rev, plus the specificity controls.

    A drift below `STILL` of the aligned activations' norm (theta_t = theta_S, up to float
    rounding) has no direction: its cosines are defined as 0, not as the angle of rounding noise.
    """
    drift = hazard_NxD - reference.aligned
    drift_matched = matched_NxD - reference.aligned_matched
    v_rev = reference.directions[0]
    moved = jnp.linalg.norm(drift) > STILL * jnp.linalg.norm(reference.aligned)
    moved_matched = jnp.linalg.norm(drift_matched) > STILL * jnp.linalg.norm(
        reference.aligned_matched
    )
    per_direction = jnp.stack(
        [
            alignment(drift, reference.directions[i], DIRECTIONS[name].reduce)
            for i, name in enumerate(names)
        ]
    )
    specific = cosine(drift - drift_matched, reference.specific_direction)
    return {
        "alignment": jnp.where(moved, per_direction[0], 0.0),
        "alignment_by_definition": jnp.where(moved, per_direction, 0.0),
        "alignment_benign_probes": jnp.where(moved_matched, alignment(drift_matched, v_rev), 0.0),
        "alignment_hazard_specific": jnp.where(moved | moved_matched, specific, 0.0),
        "drift_along_v_rev": jnp.vdot(drift, v_rev) / jnp.sqrt(drift.shape[0]),
        "drift_norm": jnp.linalg.norm(drift) / jnp.sqrt(drift.shape[0]),
    }


def isotropic_null_quantile(dim: int, q: float = 0.99) -> float:
    """The q-quantile of cos(fixed direction, uniformly random direction) in `dim` dimensions.

    cos^2 ~ Beta(1/2, (dim - 1)/2) and cos is symmetric about 0, so for q > 1/2 the quantile is
    sqrt(Beta.ppf(2q - 1)).
    """
    if dim < 2:
        raise ValueError(f"dim = {dim} is invalid: the null needs at least 2 dimensions")
    if not 0.5 < q < 1.0:
        raise ValueError(f"q = {q} is invalid: a quantile in (0.5, 1)")
    return float(np.sqrt(scipy.stats.beta.ppf(2 * q - 1, 0.5, (dim - 1) / 2)))


def isotropic_null_samples(key: jax.Array, dim: int, n: int) -> jax.Array:
    """Monte Carlo cosines between e_1 and `n` uniformly random directions in `dim` dimensions."""
    g = jax.random.normal(key, (n, dim))
    return g[:, 0] / jnp.linalg.norm(g, axis=1)


def cross_history_null(
    drifts_RxSxNxD: np.ndarray, directions_RxNxD: np.ndarray, q: float = 0.99
) -> float:
    """Matched null: the q-quantile of cos(drift of run i, v_rev of run j) over all i != j.

    v_rev from an independent history has the same statistics as the run's own (same world,
    same phases) but no causal tie to its drift, so a trajectory that beats this null is aligned
    with *its own* history, not with generic drift.
    """
    drifts = np.asarray(drifts_RxSxNxD, dtype=np.float64)
    runs = drifts.shape[0]
    if runs < 2:
        raise ValueError("the cross-history null needs at least 2 histories")
    flat = drifts.reshape(runs, drifts.shape[1], -1)
    flat /= np.maximum(np.linalg.norm(flat, axis=-1, keepdims=True), EPS)
    dirs = np.asarray(directions_RxNxD, dtype=np.float64).reshape(runs, -1)
    dirs /= np.maximum(np.linalg.norm(dirs, axis=-1, keepdims=True), EPS)
    cos_RxSxR = np.einsum("ism,jm->isj", flat, dirs)
    off_diagonal = ~np.eye(runs, dtype=bool)
    values = cos_RxSxR.transpose(0, 2, 1)[off_diagonal]
    return float(np.quantile(values, q))


def benign_drift_null(
    drifts_RxSxNxD: np.ndarray, benign_drifts_RxSxNxD: np.ndarray, q: float = 0.99
) -> float:
    """Matched null: the q-quantile of cos(hazard drift of run i, a benign-probe drift of run j),
    i != j, i.e. directions drawn from the distribution of benign drifts rather than uniformly."""
    runs = np.asarray(drifts_RxSxNxD).shape[0]
    benign = np.asarray(benign_drifts_RxSxNxD)
    directions = benign.reshape(runs * benign.shape[1], *benign.shape[2:])
    owner = np.repeat(np.arange(runs), benign.shape[1])
    flat = np.asarray(drifts_RxSxNxD, dtype=np.float64).reshape(runs, -1, directions[0].size)
    flat /= np.maximum(np.linalg.norm(flat, axis=-1, keepdims=True), EPS)
    dirs = directions.reshape(len(owner), -1).astype(np.float64)
    dirs /= np.maximum(np.linalg.norm(dirs, axis=-1, keepdims=True), EPS)
    cos = np.einsum("ism,km->isk", flat, dirs)
    foreign = owner[None, None, :] != np.arange(runs)[:, None, None]
    return float(np.quantile(cos[np.broadcast_to(foreign, cos.shape)], q))


def tree_vector(tree) -> jax.Array:
    """All leaves of a pytree as one flat vector."""
    return jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)])


def weight_displacement_metrics(theta_t, theta_s, theta_h, theta_p) -> dict[str, jax.Array]:
    """Weight-space distances and cosines of theta_t - theta_S against the witness displacements
    theta_H - theta_S and theta_P - theta_S (the weight-space v_rev variants)."""
    moved = tree_vector(theta_t) - tree_vector(theta_s)
    to_helpful = tree_vector(theta_h) - tree_vector(theta_s)
    to_pretrained = tree_vector(theta_p) - tree_vector(theta_s)
    return {
        "weight_distance": jnp.linalg.norm(moved),
        "weight_alignment": cosine(moved, to_helpful),
        "weight_alignment_pretrained": cosine(moved, to_pretrained),
        "weight_progress": jnp.vdot(moved, to_helpful)
        / jnp.maximum(jnp.vdot(to_helpful, to_helpful), EPS),
    }


def benign_pull(benign_loss: Callable, theta_s, theta_h) -> jax.Array:
    """cos(-grad of the benign loss at theta_S, theta_H - theta_S): the g_rev share of a benign
    step, i.e. how much the first benign update points back toward the witness."""
    grad = tree_vector(jax.grad(benign_loss)(theta_s))
    return cosine(-grad, tree_vector(theta_h) - tree_vector(theta_s))


def drift_component(acts_NxD: jax.Array, aligned_NxD: jax.Array, direction_NxD: jax.Array):
    """s: the drift's signed component along a unit direction, per probe-RMS units."""
    return jnp.vdot(acts_NxD - aligned_NxD, direction_NxD) / jnp.sqrt(acts_NxD.shape[0])


def random_direction(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """A uniformly random unit direction of the given shape."""
    g = jax.random.normal(key, shape)
    return g / jnp.linalg.norm(g)
