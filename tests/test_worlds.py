"""World samplers against their exact distributions, and the invariants of each data kind."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.engine.worlds import (
    DATA_KINDS,
    ConfigError,
    FeatureWorld,
    TokenWorld,
    WorldKnobs,
    make_world,
)

N_SAMPLES = 20_000
WORLDS = {"feature": FeatureWorld(), "token": TokenWorld()}

probability = st.floats(0.0, 1.0)
knob_values = st.builds(
    WorldKnobs,
    hazard_rate=probability,
    harm_prob=probability,
    benign_overlap=probability,
    align_hazard_rate=probability,
    benign_disjoint=probability,
)


@pytest.fixture(scope="module")
def samplers():
    """One compiled sampler per (world, kind); knobs are traced so hypothesis never recompiles."""
    return {
        (name, kind): jax.jit(
            lambda knobs, key, world=world, kind=kind: world.sample(knobs, kind, key, N_SAMPLES)
        )
        for name, world in WORLDS.items()
        for kind in DATA_KINDS
    }


def agrees(world, knobs, kind, batch) -> bool:
    """Every exact probability within 5 binomial standard errors (+ float slack) of the sample."""
    exact, empirical = world.marginals(knobs, kind), world.empirical_marginals(batch)
    n = N_SAMPLES * (world.prompt_length if isinstance(world, TokenWorld) else 1)
    for name in exact:
        p = np.asarray(exact[name], dtype=float)
        count = n if name != "refuse" else N_SAMPLES
        tolerance = 5 * np.sqrt(p * (1 - p) / count) + 1e-3
        if np.any(np.abs(np.asarray(empirical[name]) - p) > tolerance):
            return False
    return True


@settings(max_examples=12, deadline=None)
@given(
    knobs=knob_values,
    world_name=st.sampled_from(list(WORLDS)),
    kind=st.sampled_from(DATA_KINDS),
    seed=st.integers(0, 2**16),
)
def test_samplers_match_exact_marginals(samplers, knobs, world_name, kind, seed):
    world = WORLDS[world_name]
    batch = samplers[world_name, kind](knobs, jax.random.key(seed))
    assert agrees(world, knobs, kind, batch)


@settings(max_examples=8, deadline=None)
@given(knobs=knob_values, world_name=st.sampled_from(list(WORLDS)), seed=st.integers(0, 2**16))
def test_a_wrong_sampler_fails_the_same_check(samplers, knobs, world_name, seed):
    """A sampler whose hazard rate is off by 0.05 must not pass: the tolerance has teeth."""
    world = WORLDS[world_name]
    rate = float(knobs.hazard_rate)
    wrong = WorldKnobs(
        hazard_rate=rate + 0.05 if rate < 0.9 else rate - 0.05,
        harm_prob=knobs.harm_prob,
        benign_overlap=knobs.benign_overlap,
        align_hazard_rate=knobs.align_hazard_rate,
    )
    batch = samplers[world_name, "pretrain"](wrong, jax.random.key(seed))
    assert not agrees(world, knobs, "pretrain", batch)


@settings(max_examples=10, deadline=None)
@given(knobs=knob_values, seed=st.integers(0, 2**16))
def test_benign_data_never_contains_the_hazard(samplers, knobs, seed):
    feature = samplers["feature", "benign"](knobs, jax.random.key(seed))
    assert not np.any(np.asarray(feature.inputs)[:, 0])
    assert not np.any(np.asarray(feature.hazardous))
    token = samplers["token", "benign"](knobs, jax.random.key(seed))
    assert not np.any(np.asarray(token.inputs) == WORLDS["token"].trigger_token)
    assert not np.any(np.asarray(token.labels) == WORLDS["token"].refuse_token)


def hazard_topic_content(world, inputs) -> np.ndarray:
    """Per input: how many hazard-topic (topic 0) content features or tokens it carries."""
    inputs = np.asarray(inputs)
    if isinstance(world, TokenWorld):
        first = world.first_content_token
        return ((inputs >= first) & (inputs < first + world.tokens_per_topic)).sum(axis=1)
    return inputs[:, 1 : 1 + world.features_per_topic].sum(axis=1)


@settings(max_examples=10, deadline=None)
@given(knobs=knob_values, seed=st.integers(0, 2**16))
def test_disjoint_benign_data_never_carries_the_hazard_topic(samplers, knobs, seed):
    """With `benign_disjoint = 1` and `benign_overlap = 0`, benign and relearn batches (no forget
    examples) carry no hazard-topic feature or token at all; with the background kept (0) they
    do, so the check has teeth."""
    key = jax.random.key(seed)
    for name, world in WORLDS.items():
        for kind in ("benign", "relearn"):
            disjoint = dataclasses.replace(
                knobs, benign_overlap=0.0, benign_disjoint=1.0, relearn_forget_share=0.0
            )
            batch = samplers[name, kind](disjoint, key)
            assert not np.any(hazard_topic_content(world, batch.inputs)), (name, kind)
            background = dataclasses.replace(disjoint, benign_disjoint=0.0)
            batch = samplers[name, kind](background, key)
            assert np.any(hazard_topic_content(world, batch.inputs)), (name, kind)


# Checksums of batches drawn before `benign_disjoint` existed (commit bb6aeeb, JAX 0.10.2 as pinned
# in constraints.txt): the knob's default must reproduce every data kind bit for bit.
DEFAULT_CHECKSUMS = {
    ("feature", "pretrain"): (538744422, 72809249, 4048),
    ("feature", "helpful"): (568570547, 71499812, 10027),
    ("feature", "safety"): (568570547, 109621922, 10027),
    ("feature", "benign"): (518393557, 70895867, 0),
    ("feature", "hazard"): (618646704, 72432892, 20000),
    ("feature", "retain"): (518051507, 70569851, 0),
    ("feature", "unlearn"): (568570547, 71499812, 10027),
    ("feature", "relearn"): (565739245, 80329510, 7983),
    ("token", "pretrain"): (18830318770, 34083042, 4048),
    ("token", "helpful"): (16593331972, 31539838, 10027),
    ("token", "safety"): (16593331972, 56601196, 10027),
    ("token", "benign"): (19788181549, 33500901, 0),
    ("token", "hazard"): (12810629625, 29343885, 20000),
    ("token", "retain"): (20254888269, 33888606, 0),
    ("token", "unlearn"): (16593331972, 31539838, 10027),
    ("token", "relearn"): (16719795381, 32670784, 7983),
}


def checksum(batch) -> tuple[int, int, int]:
    inputs = np.asarray(batch.inputs).astype(np.int64).ravel()
    weights = np.arange(inputs.size, dtype=np.int64) % 9973 + 1
    labels = np.asarray(batch.labels).astype(np.int64)
    return (
        int(inputs @ weights),
        int(labels @ (np.arange(labels.size, dtype=np.int64) % 997 + 1)),
        int(np.asarray(batch.hazardous).sum()),
    )


@pytest.mark.parametrize("world_name", list(WORLDS))
def test_the_default_reproduces_the_batches_from_before_the_disjoint_knob(samplers, world_name):
    knobs = WorldKnobs(benign_overlap=0.3, relearn_forget_share=0.4, relearn_examples=8)
    for kind in DATA_KINDS:
        batch = samplers[world_name, kind](knobs, jax.random.key(2026))
        assert checksum(batch) == DEFAULT_CHECKSUMS[world_name, kind], kind


@pytest.mark.parametrize("world_name", list(WORLDS))
def test_labels_follow_each_phase_rule(samplers, world_name):
    world = WORLDS[world_name]
    knobs = WorldKnobs(hazard_rate=0.3, harm_prob=0.6, align_hazard_rate=0.5)
    key = jax.random.key(3)
    safety = samplers[world_name, "safety"](knobs, key)
    hazardous = np.asarray(safety.hazardous)
    assert np.all(np.asarray(safety.labels)[hazardous] == world.n_classes)
    assert np.all(np.asarray(safety.labels)[~hazardous] < world.n_classes)
    helpful = samplers[world_name, "helpful"](knobs, key)
    assert np.all(np.asarray(helpful.labels) < world.n_classes)
    hazard = samplers[world_name, "hazard"](knobs, key)
    assert np.all(np.asarray(hazard.hazardous))


def test_probe_sets_are_fixed_and_matched():
    knobs = WorldKnobs()
    for world in WORLDS.values():
        a, b = world.probe_set(knobs, 32), world.probe_set(knobs, 32)
        np.testing.assert_array_equal(a.hazard.inputs, b.hazard.inputs)
        assert not np.any(np.asarray(a.matched.hazardous))
    feature = WORLDS["feature"].probe_set(knobs, 32)
    np.testing.assert_array_equal(feature.hazard.inputs[:, 1:], feature.matched.inputs[:, 1:])
    token = WORLDS["token"].probe_set(knobs, 32)
    differs = np.asarray(token.hazard.inputs) != np.asarray(token.matched.inputs)
    assert np.all(differs.sum(axis=1) == 1)
    assert np.all(np.asarray(token.hazard.inputs)[differs] == WORLDS["token"].trigger_token)


def test_the_task_rule_does_not_depend_on_the_hazard():
    world = WORLDS["feature"]
    probes = world.probe_set(WorldKnobs(), 64)
    counts = jnp.asarray(probes.hazard.inputs[:, 1:])
    np.testing.assert_array_equal(world.teacher.shape, (world.n_classes, world.n_content))
    answers = np.argmax(np.asarray(counts) @ world.teacher.T, axis=-1)
    np.testing.assert_array_equal(answers, probes.hazard.labels)


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: WorldKnobs(hazard_rate=1.5).validate(), "hazard_rate"),
        (lambda: WorldKnobs(harm_prob=-0.1).validate(), "harm_prob"),
        (lambda: WorldKnobs(benign_disjoint=1.5).validate(), "benign_disjoint"),
        (lambda: FeatureWorld(p_on=2.0), "p_on"),
        (lambda: TokenWorld(prompt_length=1), "prompt_length"),
        (lambda: make_world("nonsense"), "world"),
    ],
)
def test_bad_world_input_names_the_field(build, field):
    with pytest.raises(ConfigError, match=field) as info:
        build()
    assert "\n" not in str(info.value)
