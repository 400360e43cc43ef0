"""The transformer's `readout_only` layout computes the same function as every position's."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gravity.engine import presets
from gravity.engine.history import cross_entropy
from gravity.engine.models import ModelConfig, network
from gravity.validation import ConfigError


@pytest.fixture(scope="module", params=["tiny", "standard"])
def pair(request):
    """(every-position network, readout-only network, world, batch) of one size's transformer."""
    spec = presets.standard_spec("transformer", request.param)
    knobs = presets.standard_knobs(spec)
    assert spec.model.readout_only  # the presets' transformer; compared with every position
    full = network(dataclasses.replace(spec.model, readout_only=False), spec.world)
    readout = network(spec.model, spec.world)
    batch = spec.world.sample(knobs.world, spec.phases[0].data, jax.random.key(3), 16)
    return full, readout, spec, batch


def test_the_same_parameters_and_draws(pair):
    full, readout, _, _ = pair
    a, b = full.init(jax.random.key(0)), readout.init(jax.random.key(0))
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_outputs_equal_to_rounding_with_and_without_a_perturbation(pair):
    full, readout, spec, batch = pair
    params = full.init(jax.random.key(1))
    layer = spec.model.hidden_layers[-1]
    push = {
        layer: jax.random.normal(jax.random.key(4), (batch.inputs.shape[0], spec.model.d_model))
    }
    for perturbations in (None, push):
        logits_a, acts_a = jax.jit(full.apply)(params, batch.inputs, perturbations)
        logits_b, acts_b = jax.jit(readout.apply)(params, batch.inputs, perturbations)
        assert acts_a.keys() == acts_b.keys()
        for name in acts_a:
            np.testing.assert_allclose(acts_a[name], acts_b[name], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(logits_a, logits_b, rtol=1e-5, atol=1e-5)
    # the perturbation moved the readout, so the comparison above was not vacuous
    assert not np.allclose(logits_a, jax.jit(full.apply)(params, batch.inputs)[0], atol=1e-3)


def test_gradients_equal_to_rounding(pair):
    full, readout, _, batch = pair
    params = full.init(jax.random.key(2))

    def gradient(net):
        loss = lambda q: cross_entropy(net.apply(q, batch.inputs)[0], batch.labels)  # noqa: E731
        return jax.jit(jax.grad(loss))(params)

    a, b = gradient(full), gradient(readout)
    scale = max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(a))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-5 * scale)


def test_readout_only_computes_less():
    spec = presets.standard_spec("transformer", "standard")
    tokens = jnp.zeros((8, spec.world.input_shape[-1]), jnp.int32)

    def flops(config):
        net = network(config, spec.world)
        params = net.init(jax.random.key(0))
        cost = jax.jit(net.apply).lower(params, tokens).compile().cost_analysis()
        return (cost if isinstance(cost, dict) else cost[0])["flops"]

    every_position = dataclasses.replace(spec.model, readout_only=False)
    assert flops(spec.model) < 0.8 * flops(every_position)


def test_readout_only_is_a_boolean():
    with pytest.raises(ConfigError, match="readout_only"):
        ModelConfig(kind="transformer", readout_only="yes")


def test_readout_only_is_refused_for_an_mlp():
    with pytest.raises(ConfigError, match="no positions"):
        ModelConfig(kind="mlp", readout_only=True)
