"""Geometry against closed forms: the isotropic null, alignment's invariances, v_rev registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import OPTIMISED
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.engine import geometry

MC_SAMPLES = {2: 200_000, 16: 200_000, 128: 100_000, 4096: 40_000}


@pytest.mark.parametrize("dim", sorted(MC_SAMPLES))
def test_isotropic_p99_matches_monte_carlo(dim):
    """The share of random cosines above the closed-form p99 is 1% within 4 binomial sd. (The
    sampler is bound by run time: compiled with XLA's backend optimisation, `OPTIMISED`.)"""
    n, chunk = MC_SAMPLES[dim], 10_000
    keys = jax.random.split(jax.random.key(dim), n // chunk)
    sample = jax.jit(geometry.isotropic_null_samples, static_argnums=(1, 2))
    sample = sample.lower(keys[0], dim, chunk).compile(OPTIMISED)
    cos = np.concatenate([np.asarray(sample(k)) for k in keys])
    p99 = geometry.isotropic_null_quantile(dim, 0.99)
    exceed = np.mean(cos > p99)
    assert abs(exceed - 0.01) < 4 * np.sqrt(0.01 * 0.99 / n)


def test_isotropic_quantile_closed_forms():
    # In 2-D the angle is uniform: P(cos <= c) = 1 - arccos(c) / pi.
    c = geometry.isotropic_null_quantile(2, 0.99)
    assert 1 - np.arccos(c) / np.pi == pytest.approx(0.99, abs=1e-9)
    # In 3-D cos is uniform on [-1, 1] (Archimedes): the p99 is 0.98.
    assert geometry.isotropic_null_quantile(3, 0.99) == pytest.approx(0.98, abs=1e-9)
    with pytest.raises(ValueError, match="dim"):
        geometry.isotropic_null_quantile(1)


vectors = st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=12, max_size=12)


@settings(max_examples=50, deadline=None)
@given(drift=vectors, direction=vectors, scale=st.floats(0.01, 100))
def test_alignment_is_scale_invariant_and_flips_with_v_rev(drift, direction, scale):
    drift = jnp.asarray(drift, jnp.float32).reshape(3, 4)
    direction = jnp.asarray(direction, jnp.float32).reshape(3, 4)
    if float(jnp.linalg.norm(drift)) < 1e-3 or float(jnp.linalg.norm(direction)) < 1e-3:
        return
    base = float(geometry.alignment(drift, direction))
    assert float(geometry.alignment(scale * drift, direction)) == pytest.approx(base, abs=1e-5)
    assert float(geometry.alignment(drift, scale * direction)) == pytest.approx(base, abs=1e-5)
    assert float(geometry.alignment(drift, -direction)) == pytest.approx(-base, abs=1e-5)
    assert -1 - 1e-6 <= base <= 1 + 1e-6


def anchors_on_a_line(key, n=6, d=5, k=7):
    """Anchors where alignment moved theta_H's activations straight to theta_S's."""
    k1, k2, k3 = jax.random.split(key, 3)
    helpful = jax.random.normal(k1, (n, d))
    aligned = helpful + jax.random.normal(k2, (n, d))
    fractions = jnp.linspace(0, 1, k)[:, None, None]
    trajectory = helpful[None] + fractions * (aligned - helpful)[None]
    return geometry.Anchors(
        pretrained=jax.random.normal(k3, (n, d)),
        helpful=helpful,
        aligned=aligned,
        helpful_matched=helpful * 0.5,
        aligned_matched=aligned * 0.5,
        trajectory=trajectory,
    )


def test_every_registered_direction_is_a_unit_field_pointing_back():
    anchors = anchors_on_a_line(jax.random.key(0))
    back = anchors.helpful - anchors.aligned
    for name, definition in geometry.DIRECTIONS.items():
        v = geometry.reversion_direction(name, anchors)
        assert v.shape == anchors.aligned.shape
        if definition.reduce == "mean":
            np.testing.assert_allclose(np.linalg.norm(v[0]), 1.0, rtol=1e-5)
        else:
            np.testing.assert_allclose(np.linalg.norm(v), 1.0, rtol=1e-5)
        if name != "from_pretrained":
            assert float(geometry.alignment(back, v, definition.reduce)) > 0


def test_trajectory_pca_of_a_straight_path_is_the_stacked_direction():
    anchors = anchors_on_a_line(jax.random.key(1))
    pca = geometry.reversion_direction("trajectory_pca", anchors)
    stacked = geometry.reversion_direction("stacked", anchors)
    np.testing.assert_allclose(pca, stacked, atol=1e-5)


def test_drift_metrics_on_known_drifts():
    anchors = anchors_on_a_line(jax.random.key(2))
    names = ("stacked", "mean")
    reference = geometry.make_reference(anchors, names)
    # Moving all the way back to theta_H on both probe sets: alignment 1 everywhere.
    metrics = geometry.drift_metrics(anchors.helpful, anchors.helpful_matched, reference, names)
    assert float(metrics["alignment"]) == pytest.approx(1.0, abs=1e-5)
    assert float(metrics["alignment_benign_probes"]) == pytest.approx(1.0, abs=1e-5)
    assert float(metrics["alignment_hazard_specific"]) == pytest.approx(1.0, abs=1e-5)
    # A common-mode drift (the same on hazardous and matched probes) cancels in the
    # hazard-specific cosine: only the extra hazardous drift counts.
    shift = 0.3 * (anchors.helpful - anchors.aligned)
    specific = reference.specific_direction
    other = jax.random.normal(jax.random.key(3), specific.shape)
    other = other - jnp.vdot(other, specific) * specific
    for extra, expected in ((specific, 1.0), (other, 0.0)):
        metrics = geometry.drift_metrics(
            anchors.aligned + shift + 0.5 * extra, anchors.aligned_matched + shift, reference, names
        )
        assert float(metrics["alignment_hazard_specific"]) == pytest.approx(expected, abs=1e-4)


def test_matched_nulls_separate_own_from_foreign_directions():
    rng = np.random.default_rng(0)
    runs, snaps, n, d = 8, 3, 10, 20
    v_rev = rng.standard_normal((runs, n, d))
    noise = rng.standard_normal((runs, snaps, n, d))
    drift = 0.8 * v_rev[:, None] / np.linalg.norm(v_rev[0]) * np.sqrt(n * d) + noise
    null = geometry.cross_history_null(drift, v_rev)
    own = [
        np.dot(drift[i, s].ravel(), v_rev[i].ravel())
        / np.linalg.norm(drift[i, s])
        / np.linalg.norm(v_rev[i])
        for i in range(runs)
        for s in range(snaps)
    ]
    assert min(own) > null
    # Independent random directions: the matched null is close to the isotropic one.
    iso = geometry.isotropic_null_quantile(n * d)
    assert abs(null - iso) < 0.1
    benign = geometry.benign_drift_null(drift, noise)
    assert benign < min(own)


def test_weight_metrics_and_pull_on_a_quadratic():
    theta_s = {"w": jnp.array([1.0, 2.0]), "b": jnp.array([0.5])}
    theta_h = {"w": jnp.array([0.0, 1.0]), "b": jnp.array([-0.5])}
    theta_p = {"w": jnp.array([0.0, 3.0]), "b": jnp.array([0.0])}
    at_h = geometry.weight_displacement_metrics(theta_h, theta_s, theta_h, theta_p)
    assert float(at_h["weight_alignment"]) == pytest.approx(1.0, abs=1e-6)
    assert float(at_h["weight_progress"]) == pytest.approx(1.0, abs=1e-6)

    def benign_loss(theta):  # minimised at theta_H with identity curvature
        diff = geometry.tree_vector(theta) - geometry.tree_vector(theta_h)
        return 0.5 * jnp.vdot(diff, diff)

    assert float(geometry.benign_pull(benign_loss, theta_s, theta_h)) == pytest.approx(1.0, 1e-6)
