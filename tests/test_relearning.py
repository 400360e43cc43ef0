"""Unlearning objectives, the capability world and the relearning experiment: each objective
lowers the capability and keeps retain accuracy; the never-learned world's pretraining never shows
the capability; objectives' gradients equal hand-written ones on a 2-parameter model; relearning
pools cycle exactly k examples; the experiment writes every promised field at tiny size."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity import capability, history, objectives, presets
from gravity.experiment import run_experiment
from gravity.models import network
from gravity.objectives import NPO_BETA, RMU_SCALE, Outputs, rmu_direction
from gravity.spec import PhaseSpec
from gravity.store import ResultStore
from gravity.worlds import Batch, FeatureWorld, TokenWorld, WorldKnobs

RETAIN_TOLERANCE = 0.15
"""Unlearning may cost at most this much retain accuracy (absolute) on the tiny preset."""
SEEDS = 4
WORLDS = {
    "feature": FeatureWorld(n_topics=2, features_per_topic=4, n_classes=4, capability=True),
    "token": TokenWorld(
        n_topics=2, tokens_per_topic=4, n_classes=4, prompt_length=4, capability=True
    ),
}


def tiny_unlearning_spec(method: str):
    """The tiny MLP preset in the capability world: pretraining long enough to learn the
    capability, then one unlearning phase."""
    base = presets.tiny_spec("mlp")
    phases = (
        PhaseSpec("pretrain", "pretrain", 400, 32, n_records=1),
        PhaseSpec(
            "unlearn",
            objectives.unlearning_data(method),
            60,
            32,
            objective=method,
            n_records=1,
        ),
    )
    world = dataclasses.replace(base.world, capability=True)
    return dataclasses.replace(base, world=world, phases=phases, n_probes=128, keep_params=False)


@pytest.fixture(scope="module")
def unlearning_outcomes():
    """Capability at theta_P and after each method's unlearning, per seed."""
    specs = {m: tiny_unlearning_spec(m) for m in objectives.UNLEARNING}
    first = specs[objectives.UNLEARNING[0]]
    net = network(first.model, first.world)

    def run(seed):
        key = jax.random.key(seed)
        knobs = dataclasses.replace(
            presets.standard_knobs(first, 3e-3, harm_prob=1.0), objective_strength=0.3
        )
        trunk = history.run_trunk(key, first, knobs, "pretrain")
        probes = capability.capability_probes(first.world, knobs.world, first.n_probes)
        out = {"pretrain": capability.capability(net, trunk.state.params, probes)[0]}
        for method, spec in specs.items():
            state, _ = history.run_phases(key, spec, trunk.state, knobs, (spec.phase("unlearn"),))
            out[method] = capability.capability(net, state.params, probes)[0]
        return out

    return jax.device_get(jax.jit(jax.vmap(run))(jnp.arange(SEEDS)))


def test_pretraining_teaches_the_capability(unlearning_outcomes):
    chance = 1 / WORLDS["feature"].n_classes
    assert unlearning_outcomes["pretrain"]["forget_accuracy"].mean() > chance + 0.25


@pytest.mark.parametrize("method", objectives.UNLEARNING)
def test_unlearning_lowers_the_capability_and_keeps_retain(unlearning_outcomes, method):
    before, after = unlearning_outcomes["pretrain"], unlearning_outcomes[method]
    assert np.all(after["forget_probability"] < before["forget_probability"] - 0.1)
    drop = before["retain_accuracy"].mean() - after["retain_accuracy"].mean()
    assert drop < RETAIN_TOLERANCE


@pytest.fixture(scope="module")
def samplers():
    """One compiled sampler per (world, kind, batch size); knobs are traced."""
    return {
        (name, kind, n): jax.jit(
            lambda knobs, key, world=world, kind=kind, n=n: world.sample(knobs, kind, key, n)
        )
        for name, world in WORLDS.items()
        for kind, n in (("pretrain", 256), ("hazard", 512), ("relearn", 48))
    }


@settings(max_examples=10, deadline=None)
@given(
    world_name=st.sampled_from(list(WORLDS)),
    harm_prob=st.floats(0.0, 1.0),
    benign_overlap=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_never_learned_pretraining_never_shows_the_capability(
    samplers, world_name, harm_prob, benign_overlap, seed
):
    """hazard_rate 0: no hazardous input, and every label is the task rule's answer."""
    world = WORLDS[world_name]
    knobs = WorldKnobs(hazard_rate=0.0, harm_prob=harm_prob, benign_overlap=benign_overlap)
    batch = samplers[world_name, "pretrain", 256](knobs, jax.random.key(seed))
    assert not np.any(np.asarray(batch.hazardous))
    inputs, labels = np.asarray(batch.inputs), np.asarray(batch.labels)
    if isinstance(world, FeatureWorld):
        assert not np.any(inputs[:, 0])
        task = np.argmax(inputs[:, 1:] @ world.teacher.T, axis=-1)
    else:
        assert not np.any(inputs == world.trigger_token)
        task = np.asarray(world.answers(batch.inputs))
    np.testing.assert_array_equal(labels, task)


@pytest.mark.parametrize("world_name", list(WORLDS))
def test_the_capability_is_its_own_rule_and_off_by_default(samplers, world_name):
    world = WORLDS[world_name]
    key = jax.random.key(5)
    hazard = samplers[world_name, "hazard", 512](WorldKnobs(), key)
    plain = dataclasses.replace(world, capability=False).sample(WorldKnobs(), "hazard", key, 512)
    np.testing.assert_array_equal(hazard.inputs, plain.inputs)
    agreement = np.mean(np.asarray(hazard.labels) == np.asarray(plain.labels))
    assert agreement < 0.6


@pytest.mark.parametrize("world_name", list(WORLDS))
@pytest.mark.parametrize("k", [1, 3, 16])
def test_relearning_cycles_exactly_k_forget_examples(samplers, world_name, k):
    world = WORLDS[world_name]
    knobs = WorldKnobs(relearn_forget_share=1.0, relearn_examples=k)
    pool = jax.jit(world.forget_pool_batch)(knobs)
    batch = samplers[world_name, "relearn", 48](knobs, jax.random.key(11))
    cycles = [(offset + np.arange(48)) % k for offset in range(k)]
    assert any(
        np.array_equal(np.asarray(batch.inputs), np.asarray(pool.inputs)[rows])
        and np.array_equal(np.asarray(batch.labels), np.asarray(pool.labels)[rows])
        for rows in cycles
    )


def two_parameter_outputs(theta, x_N):
    """logits (a x, b x, 0) and activations (a x, b x): a model with 2 parameters."""
    a, b = theta
    h = jnp.stack([a * x_N, b * x_N], axis=-1)
    return Outputs(jnp.concatenate([h, jnp.zeros_like(x_N)[:, None]], axis=-1), h)


def hand_gradients(method, theta, theta_ref, x, labels, forget, strength):
    """The gradients written out by hand (see `gravity.objectives`)."""
    z = np.stack([theta[0] * x, theta[1] * x, np.zeros_like(x)], -1)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    onehot = np.eye(3)[labels]
    g_nll = (p - onehot)[:, :2] * x[:, None]
    r, f = ~forget, forget
    if method in ("cross_entropy", "gradient_ascent"):
        return (1.0 if method == "cross_entropy" else -1.0) * g_nll.mean(0)
    if method in ("graddiff", "refusal"):
        sign = -1.0 if method == "graddiff" else 1.0
        return g_nll[r].mean(0) + sign * strength * g_nll[f].mean(0)
    if method == "npo":
        z_ref = np.stack([theta_ref[0] * x, theta_ref[1] * x, np.zeros_like(x)], -1)
        log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
        log_ref = z_ref - np.log(np.exp(z_ref).sum(-1, keepdims=True))
        ratio = (log_p - log_ref)[np.arange(len(x)), labels]
        weight = 2.0 / (1.0 + np.exp(-NPO_BETA * ratio))
        return g_nll[r].mean(0) + strength * (weight[f, None] * -g_nll[f]).mean(0)
    h = np.stack([theta[0] * x, theta[1] * x], -1)
    h_ref = np.stack([theta_ref[0] * x, theta_ref[1] * x], -1)
    scale = np.mean((h_ref**2).sum(-1))
    target = RMU_SCALE * np.linalg.norm(h_ref[f], axis=-1).mean() * np.asarray(rmu_direction(2))
    forget_grad = (2 * (h[f] - target) * x[f, None]).mean(0) / scale
    retain_grad = (2 * (h[r] - h_ref[r]) * x[r, None]).mean(0) / scale
    return retain_grad + strength * forget_grad


@pytest.mark.parametrize("method", list(objectives.OBJECTIVES))
def test_objective_gradients_match_the_hand_written_ones(method):
    rng = np.random.default_rng(0)
    x = rng.normal(size=12).astype(np.float32)
    labels = rng.integers(0, 3, size=12)
    forget = np.arange(12) % 3 == 0
    theta, theta_ref = np.array([0.7, -0.4], np.float32), np.array([0.5, 0.3], np.float32)
    batch = Batch(jnp.asarray(x), jnp.asarray(labels), jnp.asarray(forget))
    reference = two_parameter_outputs(jnp.asarray(theta_ref), jnp.asarray(x))
    objective = objectives.get(method)

    def loss(t):
        return objective.loss(two_parameter_outputs(t, batch.inputs), batch, reference, 0.7)

    grad = np.asarray(jax.grad(loss)(jnp.asarray(theta)))
    expected = hand_gradients(method, theta, theta_ref, x, labels, forget, 0.7)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


REQUIRED = (
    "capability_pretrained",
    "capability_unlearned",
    "never_learned_capability_pretrained",
    "n_histories",
)
REQUIRED_BY_KIND = (
    "capability_relearned",
    "recovered_fraction",
    "never_learned_capability",
    "steps_to_half_recovery",
    "steps_to_half_never_learned",
    "alignment_with_v_unlearn_step100",
)


def test_the_experiment_writes_every_promised_field(tmp_path):
    from experiments import relearning

    config = dataclasses.replace(
        relearning.Config(),
        size="tiny",
        seeds=2,
        methods=("npo",),
        strengths=(1.0,),
        unlearn_depths=(8,),
        headline_depth=8,
        forget_examples=(1, 4),
        relearn_steps=6,
        drift_step=6,
    )
    store = ResultStore(tmp_path / "store")
    numbers = run_experiment(
        relearning.EXPERIMENT, config, out_dir=tmp_path, store=store, progress=False
    )
    assert (tmp_path / "relearning.png").exists()
    report = json.loads((tmp_path / "relearning.json").read_text())
    assert report["n_histories"] == 2 * 1 * 1 * 2 and "wall_s" in report
    for method in config.methods:
        entry = numbers["mlp"][method]
        assert all(field in entry for field in REQUIRED)
        for kind in ("forget_1", "forget_4", "related", "unrelated", "retain"):
            assert all(field in entry["by_kind"][kind] for field in REQUIRED_BY_KIND)
    assert "anchors" in numbers


@pytest.mark.parametrize("world_name", list(WORLDS))
def test_relearning_data_matches_its_exact_marginals(world_name):
    """The mixture of pool examples and benign inputs, against `marginals` (5 standard errors)."""
    world = WORLDS[world_name]
    knobs = WorldKnobs(relearn_forget_share=0.5, relearn_examples=16, benign_overlap=0.3)
    n = 4000
    batch = jax.jit(lambda key: world.sample(knobs, "relearn", key, n))(jax.random.key(2))
    exact, empirical = world.marginals(knobs, "relearn"), world.empirical_marginals(batch)
    count = n * (world.prompt_length if isinstance(world, TokenWorld) else 1)
    p = np.asarray(exact["features" if "features" in exact else "tokens"], dtype=float)
    seen = np.asarray(empirical["features" if "features" in empirical else "tokens"])
    assert np.all(np.abs(seen - p) <= 5 * np.sqrt(p * (1 - p) / count) + 2e-3)
