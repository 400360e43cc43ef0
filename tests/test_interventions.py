"""Interventions on benign fine-tuning: projection removes first-order motion along v_rev, the
block term is zero at theta_S and, one step on it alone, reduces positive drift along v_rev."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gravity.defences import steering
from gravity.engine.models import ModelConfig, network
from gravity.engine.worlds import FeatureWorld, WorldKnobs

WORLD = FeatureWorld(n_topics=2, features_per_topic=4, n_classes=4)
NET = network(ModelConfig(kind="mlp", hidden=(16, 16)), WORLD)


@pytest.fixture(scope="module")
def setting():
    """theta_S (a fresh init), hazardous probes, a unit v_rev field and a benign batch."""
    k_init, k_dir, k_batch = jax.random.split(jax.random.key(0), 3)
    theta_s = NET.init(k_init)
    probes = WORLD.probe_set(WorldKnobs(), 16)
    aligned = NET.activations(theta_s, probes.hazard.inputs)
    v_rev = steering.random_direction(k_dir, aligned.shape)
    batch = WORLD.sample(WorldKnobs(), "benign", k_batch, 32)
    return theta_s, probes.hazard.inputs, aligned, v_rev, batch


def component(theta, inputs, aligned, v_rev):
    return steering.drift_component(NET.activations(theta, inputs), aligned, v_rev)


def benign_update(theta, batch):
    def loss(p):
        logits, _ = NET.apply(p, batch.inputs)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch.labels).mean()

    optimizer = optax.adam(1e-2)
    updates, _ = optimizer.update(jax.grad(loss)(theta), optimizer.init(theta), theta)
    return updates


def test_projected_update_has_no_first_order_motion_along_v_rev(setting):
    theta_s, inputs, aligned, v_rev, batch = setting
    # Start a little away from theta_S, as after a few benign steps.
    theta = jax.tree.map(lambda a, b: a + b, theta_s, benign_update(theta_s, batch))
    update = benign_update(theta, batch)
    u = jax.grad(component)(theta, inputs, aligned, v_rev)
    projected = steering.project_out(update, u)

    def motion(direction):
        return jax.jvp(lambda p: component(p, inputs, aligned, v_rev), (theta,), (direction,))[1]

    before, after = float(motion(update)), float(motion(projected))
    assert abs(before) > 1e-4
    assert abs(after) <= 1e-5 * abs(before)
    # The projection removes only that one direction: the rest of the update is kept.
    kept = sum(
        jnp.vdot(a, b)
        for a, b in zip(jax.tree.leaves(update), jax.tree.leaves(projected), strict=True)
    )
    assert float(kept) > 0.5 * float(sum(jnp.vdot(a, a) for a in jax.tree.leaves(update)))


def test_block_term_is_zero_at_theta_s_and_one_step_reduces_positive_drift(setting):
    theta_s, inputs, aligned, v_rev, _ = setting

    def term(theta):
        chosen = steering.settings(steering.index("block"))
        return steering.penalty(chosen, component(theta, inputs, aligned, v_rev), 0.0, 1.0)

    assert float(term(theta_s)) == 0.0
    u = jax.grad(component)(theta_s, inputs, aligned, v_rev)
    theta = jax.tree.map(lambda p, g: p + 0.05 * g, theta_s, u)  # drift with s > 0
    s_before = float(component(theta, inputs, aligned, v_rev))
    assert s_before > 0 and float(term(theta)) > 0
    stepped = jax.tree.map(lambda p, g: p - 0.01 * g, theta, jax.grad(term)(theta))
    assert float(component(stepped, inputs, aligned, v_rev)) < s_before


def test_penalties_vanish_at_theta_s_and_block_the_first_step():
    """Every term is 0 at s = 0; block's slope there is strength / 2 (the first step is
    blocked), push's is the opposite, the bounded push saturates beyond the witness's s_H."""
    terms = {
        name: (
            lambda s, name=name: steering.penalty(
                steering.settings(steering.index(name)), s, 2.0, 3.0
            )
        )
        for name in steering.INTERVENTIONS
    }
    for name, term in terms.items():
        assert float(term(jnp.asarray(0.0))) == 0.0, name
    slope = {name: float(jax.grad(term)(jnp.asarray(0.0))) for name, term in terms.items()}
    assert slope["block"] == pytest.approx(1.5) and slope["push"] == pytest.approx(-1.5)
    assert slope["none"] == 0.0 and slope["project"] == 0.0
    assert slope["push_bounded"] < 0  # rewards drift toward the witness
    far = float(jax.grad(terms["push_bounded"])(jnp.asarray(50.0)))
    assert abs(far) < 1e-6  # saturated: no reward for drifting past s_H
    for name in steering.INTERVENTIONS:
        chosen = steering.settings(steering.index(name))
        spec = steering.get(name)
        assert bool(chosen.project) == spec.project
        assert int(chosen.direction) == steering.DIRECTIONS.index(spec.direction)


def test_random_direction_is_unit_and_seeded():
    a = steering.random_direction(jax.random.key(4), (5, 3))
    b = steering.random_direction(jax.random.key(4), (5, 3))
    np.testing.assert_array_equal(a, b)
    assert float(jnp.linalg.norm(a)) == pytest.approx(1.0, abs=1e-6)
