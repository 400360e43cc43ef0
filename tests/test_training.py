"""The one training loop (`gravity.engine.training.train`) against closed forms: plain SGD on a
quadratic, the batch of step i drawn from fold_in(key, i), records before and after intervals."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.engine import training
from gravity.validation import ConfigError


def _quadratic(target, lr, steps, n_records):
    """SGD on 0.5 (p - target)^2 from p = 0: p_t = target (1 - (1 - lr)^t)."""
    return jax.jit(
        lambda: training.train(
            lambda p, batch: 0.5 * jnp.sum((p - batch) ** 2),
            lambda k: jnp.float32(target),
            optax.sgd(lr),
            jnp.zeros(()),
            jax.random.key(0),
            steps,
            n_records,
            lambda p: {"p": p},
        )
    )()


@settings(max_examples=10, deadline=None)
@given(target=st.floats(-3, 3), lr=st.floats(0.01, 0.5), n_records=st.sampled_from([1, 2, 4]))
def test_sgd_on_a_quadratic_follows_its_closed_form(target, lr, n_records):
    steps = 8
    trained = _quadratic(target, lr, steps, n_records)
    done = np.arange(n_records + 1) * (steps // n_records)
    expected = target * (1 - (1 - lr) ** done)
    np.testing.assert_allclose(trained.records["p"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(trained.params, expected[-1], rtol=1e-5, atol=1e-6)
    assert trained.losses.shape == (n_records, steps // n_records)


def test_step_i_draws_its_batch_from_fold_in_of_the_key():
    """A loss that is the batch itself (no gradient): the losses are the batches, in order."""
    key = jax.random.key(7)
    trained = training.train(
        lambda p, batch: batch + 0.0 * p,
        lambda k: jax.random.uniform(k),
        optax.sgd(0.1),
        jnp.zeros(()),
        key,
        6,
        n_records=3,
    )
    drawn = [jax.random.uniform(jax.random.fold_in(key, i)) for i in range(6)]
    np.testing.assert_array_equal(np.ravel(trained.losses), np.asarray(drawn))
    assert trained.records == {}


def test_records_must_divide_the_steps():
    with pytest.raises(ConfigError, match="n_records"):
        training.train(lambda p, b: p, lambda k: 0.0, optax.sgd(0.1), 0.0, None, 5, 2)
