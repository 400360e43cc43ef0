"""The linearised model against closed forms: a model linear in its parameters is its own
linearisation (trained with any loss and optimizer, to 1e-5), gradient descent on a squared loss
moves the linearised network's outputs by the empirical-NTK recursion, and the engine's
linearised phase starts where the simulated one does."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.engine import history, presets
from gravity.engine.models import network
from gravity.engine.models.linearised import Linearised, linearise
from gravity.instruments import linearised

N, D, K = 12, 5, 3


def linear_model(params, inputs):
    """Softmax regression: logits linear in the parameters."""
    return inputs @ params["w"] + params["b"][None]


def data(seed):
    keys = jax.random.split(jax.random.key(seed), 4)
    inputs = jax.random.normal(keys[0], (N, D))
    labels = jax.random.randint(keys[1], (N,), 0, K)
    params = {"w": jax.random.normal(keys[2], (D, K)), "b": jnp.zeros(K)}
    anchor = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(keys[3], p.shape), params)
    return inputs, labels, params, anchor


def train(apply_fn, params, inputs, labels, optimizer, steps):
    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(apply_fn(p, inputs), labels).mean()

    def step(carry, _):
        p, state = carry
        updates, state = optimizer.update(jax.grad(loss)(p), state, p)
        p = optax.apply_updates(p, updates)
        return (p, state), apply_fn(p, inputs)

    return jax.lax.scan(step, (params, optimizer.init(params)), None, length=steps)[1]


@pytest.mark.parametrize("optimizer", [optax.sgd(0.1), optax.adam(0.05)], ids=["sgd", "adam"])
def test_linear_model_is_its_own_linearisation(optimizer):
    inputs, labels, params, anchor = data(0)
    exact = train(linear_model, params, inputs, labels, optimizer, 50)
    predicted = train(linearise(linear_model, anchor), params, inputs, labels, optimizer, 50)
    np.testing.assert_allclose(predicted, exact, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**16), st.floats(-2.0, 2.0))
def test_linearisation_is_exact_at_the_anchor_and_linear_along_a_line(seed, scale):
    inputs, _, params, anchor = data(seed)
    model = linearise(lambda p, x: jnp.tanh(linear_model(p, x)), anchor)
    np.testing.assert_allclose(model(anchor, inputs), jnp.tanh(linear_model(anchor, inputs)))
    moved = jax.tree.map(lambda p, a: a + scale * (p - a), params, anchor)
    expected = (1 - scale) * model(anchor, inputs) + scale * model(params, inputs)
    np.testing.assert_allclose(model(moved, inputs), expected, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def tiny_trunk():
    spec = presets.standard_spec("mlp", "tiny")
    knobs = presets.standard_knobs(spec, 1e-2)
    key = jax.random.key(3)
    return spec, knobs, key, history.run_trunk(key, spec, knobs, "safety")


def test_gradient_descent_on_a_squared_loss_follows_the_empirical_ntk(tiny_trunk):
    """f_{t+1} = f_t - lr (2 / n) K (f_t - y), K = J J^T at the anchor: the closed form
    f_t = y + (I - lr (2 / n) K)^t (f_0 - y) of the linearised network's outputs."""
    spec, _, _, trunk = tiny_trunk
    net = network(spec.model, spec.world)
    theta_s = trunk.state.boundaries["safety"]
    inputs = trunk.state.probes.hazard.inputs[:8]
    targets = jax.random.normal(jax.random.key(1), (8, spec.world.n_outputs))
    model = Linearised(net, theta_s)

    def outputs(p):
        return model.apply(p, inputs)[0]

    lr, steps, n = 0.05, 30, targets.size

    def step(p, _):
        grads = jax.grad(lambda q: jnp.sum((outputs(q) - targets) ** 2) / n)(p)
        p = jax.tree.map(lambda a, g: a - lr * g, p, grads)
        return p, outputs(p)

    _, trajectory = jax.lax.scan(step, theta_s, None, length=steps)
    flat, unravel = jax.flatten_util.ravel_pytree(theta_s)
    jacobian = jax.jacobian(lambda v: net.apply(unravel(v), inputs)[0].ravel())(flat)
    kernel = jacobian @ jacobian.T
    transition = jnp.eye(n) - lr * (2.0 / n) * kernel
    gap = (net.apply(theta_s, inputs)[0] - targets).ravel()
    expected = targets.ravel() + jnp.linalg.matrix_power(transition, steps) @ gap
    np.testing.assert_allclose(trajectory[-1].ravel(), expected, atol=1e-5)


def test_the_linearised_phase_starts_where_the_simulated_one_does(tiny_trunk):
    spec, knobs, key, trunk = tiny_trunk
    out = linearised.LinearisedMeasure()(key, spec, knobs, start=trunk)
    simulated, predicted = out["simulated"]["benign"], out["linearised"]["benign"]
    for metric in linearised.METRICS:
        assert simulated[metric].shape == predicted[metric].shape
        np.testing.assert_allclose(predicted[metric][0], simulated[metric][0], atol=1e-6)
    moved = np.abs(np.asarray(predicted["weight_distance"][1:]))
    assert np.all(moved > 0) and not bool(out["diverged"])
    # a first step is a gradient step at theta_S in both: the same batch and update
    np.testing.assert_allclose(
        predicted["weight_distance"][1], simulated["weight_distance"][1], rtol=1e-4
    )


def test_horizon_is_the_last_step_before_the_error_leaves_the_tolerance():
    steps = [0, 1, 2, 5, 10, 20]
    assert linearised.horizon([0, 0.01, 0.02, 0.04, 0.06, 0.01], steps) == {
        "steps": 5,
        "censored": False,
    }
    assert linearised.horizon([0, 0.1, 0, 0, 0, 0], steps) == {"steps": 0, "censored": False}
    assert linearised.horizon([0.0] * 6, steps) == {"steps": 20, "censored": True}


def test_r_squared_at_is_one_for_an_exact_prediction_and_pools_grids():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 4)), rng.normal(size=(9, 3))
    exact = linearised.r_squared_at([(a, a), (b, b)], n_resamples=50)
    assert exact["estimate"] == pytest.approx(1.0) and exact["n"] == 15
    assert exact["interval"] == pytest.approx([1.0, 1.0])
    mean_only = linearised.r_squared_at([(np.zeros_like(a) + a.mean(), a)], n_resamples=50)
    assert mean_only["estimate"] < 0.05
