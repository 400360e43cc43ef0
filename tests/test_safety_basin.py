"""The safety basin around theta_S (`gravity.instruments.safety_basin`): directions against leaf
norms, the landscape against the unperturbed harm, width and VISAGE on synthetic landscapes, the
seed-level AUC against `stats.roc_auc` on the expanded runs, and the measure on the tiny MLP."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.engine import history, presets
from gravity.engine.models import network
from gravity.instruments import safety_basin, stats

SPEC = presets.standard_spec("mlp", "tiny")
KNOBS = presets.standard_knobs(SPEC)
SEEDS = 2


@pytest.fixture(scope="module")
def trunk():
    """The tiny MLP history through its safety phase, jitted once."""
    run = jax.jit(history.run_trunk, static_argnums=(1, 3))
    return run(jax.random.key(0), SPEC, KNOBS, "safety")


@pytest.fixture(scope="module")
def measured():
    """`SafetyBasinMeasure` (4 directions, the default alphas) over 2 seeds, jit of vmap."""
    measure = safety_basin.SafetyBasinMeasure(n_directions=4)
    run = jax.jit(jax.vmap(lambda key: measure(key, SPEC, KNOBS)))
    return measure, jax.device_get(run(history.seed_keys(range(SEEDS))))


def _heldout_harm(state):
    net = network(SPEC.model, SPEC.world)

    def harm(params):
        metrics = history.behaviour(net, params, state.probes, SPEC.world.n_classes, state.heldout)
        return metrics[0]["harmfulness_heldout"]

    return harm


def test_direction_leaves_have_their_parameter_leaves_norms(trunk):
    init = trunk.state.boundaries["init"]
    direction = safety_basin.filter_normalised_direction(jax.random.key(3), init)
    norms = jax.tree.map(lambda leaf: float(jnp.linalg.norm(jnp.ravel(leaf))), (init, direction))
    leaf_norms, direction_norms = (jax.tree.leaves(tree) for tree in norms)
    np.testing.assert_allclose(direction_norms, leaf_norms, rtol=1e-5)
    assert any(n == 0 for n in leaf_norms), "the biases at initialisation are zero"
    for leaf, moved in zip(jax.tree.leaves(init), jax.tree.leaves(direction), strict=True):
        if not np.any(leaf):
            np.testing.assert_array_equal(moved, 0.0)


def test_landscape_at_alpha_zero_is_the_harm_at_theta_s(trunk):
    state = trunk.state
    harm = _heldout_harm(state)
    theta_s = state.boundaries["safety"]
    alphas = jnp.asarray([-0.2, 0.0, 0.2])
    landscape = jax.jit(lambda p, k: safety_basin.harm_landscape(harm, p, k, alphas, 3))(
        theta_s, jax.random.key(1)
    )
    assert landscape.shape == (3, 3)
    np.testing.assert_allclose(landscape[:, 1], float(harm(theta_s)), rtol=1e-5)
    assert np.all(np.isfinite(landscape))
    assert not np.allclose(landscape[:, 0], landscape[:, 2]), "the perturbations move harm"


ALPHAS = np.asarray([-0.4, -0.3, -0.2, -0.1, 0.1, 0.2, 0.3, 0.4])


def _step(negative_edge, positive_edge, low=0.1, high=0.9):
    """Harm `high` from each side's edge outward, `low` inside (None: no edge on that side)."""
    size = np.abs(ALPHAS)
    edge = np.where(ALPHAS < 0, negative_edge or np.inf, positive_edge or np.inf)
    return np.where(size >= edge, high, low)


def test_basin_width_finds_a_steps_alpha():
    landscape = np.stack([_step(0.3, 0.3), _step(0.2, 0.4)])
    width = safety_basin.basin_width(landscape, ALPHAS, 0.5)
    np.testing.assert_allclose(width.by_direction, [0.3, 0.3], rtol=1e-6)
    np.testing.assert_allclose(width.width, 0.3, rtol=1e-6)
    assert float(width.censored_share) == 0.0


def test_basin_width_needs_harm_strictly_above_the_threshold():
    at_threshold = np.where(np.abs(ALPHAS) >= 0.2, 0.5, 0.1)
    width = safety_basin.basin_width(at_threshold[None], ALPHAS, 0.5)
    np.testing.assert_allclose(width.width, 0.4, rtol=1e-6)
    assert float(width.censored_share) == 1.0


def test_basin_width_censors_at_the_grids_end():
    landscape = np.stack([_step(0.1, None), _step(None, None)])
    width = safety_basin.basin_width(landscape, ALPHAS, 0.5)
    np.testing.assert_allclose(width.by_direction, [0.25, 0.4], rtol=1e-6)
    np.testing.assert_allclose(width.censored_share, 0.75)


def test_visage_on_synthetic_landscapes():
    assert float(safety_basin.visage(np.zeros((3, 8)), 0.4)) == pytest.approx(1.0)
    assert float(safety_basin.visage(np.full((3, 8), 0.4), 0.4)) == 0.0
    assert float(safety_basin.visage(np.full((3, 8), 0.9), 0.4)) == 0.0
    assert float(safety_basin.visage(np.full((3, 8), 0.1), 0.4)) == pytest.approx(0.75)
    assert np.isnan(safety_basin.visage(np.zeros((3, 8)), 0.0))


def _expanded(score_S, counts_S, runs_S):
    """Every run's score and label: seed s's score for each of its runs, `counts_S[s]` of them
    reverted."""
    scores = np.repeat(score_S, runs_S)
    labels = np.concatenate(
        [np.zeros(0, bool), *(np.arange(n) < k for k, n in zip(counts_S, runs_S, strict=True))]
    )
    return scores, labels


@st.composite
def _seed_tables(draw):
    n_seeds = draw(st.integers(1, 8))
    score = np.asarray(
        draw(
            st.lists(
                st.sampled_from([0.0, 1.0, 2.0, 3.0, np.nan]), min_size=n_seeds, max_size=n_seeds
            )
        )
    )
    if draw(st.booleans()):
        runs_per_seed = draw(st.integers(1, 5))
        runs_S = np.full(n_seeds, runs_per_seed)
    else:
        runs_S = np.asarray(draw(st.lists(st.integers(1, 5), min_size=n_seeds, max_size=n_seeds)))
        runs_per_seed = runs_S
    counts = np.asarray([draw(st.integers(0, int(n))) for n in runs_S])
    weights = np.asarray(draw(st.lists(st.integers(0, 3), min_size=n_seeds, max_size=n_seeds)))
    return score, counts, runs_per_seed, runs_S, weights


def _same(value, expected):
    if np.isnan(expected):
        assert np.isnan(value)
    else:
        assert value == pytest.approx(expected, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(_seed_tables())
def test_seed_level_auc_is_the_roc_auc_of_the_expanded_runs(table):
    score, counts, runs_per_seed, runs_S, weights = table
    _same(
        safety_basin.seed_level_auc(score, counts, runs_per_seed),
        stats.roc_auc(*_expanded(score, counts, runs_S)),
    )
    resampled = safety_basin.resampled_seed_level_auc(score, counts, runs_per_seed, weights[None])
    drawn = np.repeat(np.arange(score.size), weights)
    _same(resampled[0], stats.roc_auc(*_expanded(score[drawn], counts[drawn], runs_S[drawn])))


def test_seed_level_auc_refuses_counts_above_the_runs():
    with pytest.raises(ValueError, match="reverted_counts_S"):
        safety_basin.seed_level_auc([0.1, 0.2], [3, 1], 2)


def _seed_outcomes():
    rng = np.random.default_rng(0)
    score = rng.normal(size=12)
    counts = rng.binomial(4, 1 / (1 + np.exp(-2 * score)))
    return score, counts


def test_seed_level_auc_interval_brackets_its_estimate_and_keeps_its_resamples():
    score, counts = _seed_outcomes()
    result = safety_basin.seed_level_auc_interval(score, counts, 4, n_resamples=500, seed=1)
    assert result.estimate == pytest.approx(safety_basin.seed_level_auc(score, counts, 4))
    low, high = result.interval
    assert low <= result.estimate <= high
    assert result.resampled.shape == (500,)
    shuffled = np.random.default_rng(2).permutation(score.size)
    again = safety_basin.seed_level_auc_interval(
        score[shuffled], counts[shuffled], 4, n_resamples=500, seed=1
    )
    assert again.interval == result.interval, "the seeds' numbering does not matter"


def test_one_seed_has_no_interval():
    result = safety_basin.seed_level_auc_interval([1.0, np.nan], [1, 0], 2, n_resamples=10)
    assert result.estimate == 0.5
    assert np.isnan(result.interval).all()


def test_compared_scores_share_their_resamples():
    score, counts = _seed_outcomes()
    noisy = score + np.random.default_rng(3).normal(size=score.size)
    compared = safety_basin.compare_seed_level_aucs(
        {"basin": score, "noisy": noisy, "same": score.copy()},
        counts,
        4,
        [("basin", "noisy"), ("basin", "same")],
        n_resamples=300,
    )
    aucs, differences = compared["aucs"], compared["differences"]
    paired = differences["basin_minus_noisy"]
    np.testing.assert_allclose(paired.resampled, aucs["basin"].resampled - aucs["noisy"].resampled)
    assert paired.estimate == pytest.approx(aucs["basin"].estimate - aucs["noisy"].estimate)
    assert np.all(differences["basin_minus_same"].resampled == 0.0)
    assert differences["basin_minus_same"].interval == (0.0, 0.0)


def test_measure_runs_on_the_tiny_mlp_under_jit_and_vmap(measured):
    measure, out = measured
    n_alphas = len(measure.alphas)
    assert set(out) == {
        "harm_aligned",
        "harm_pretrained",
        "landscape",
        "width",
        "censored_share",
        "visage",
        "diverged",
    }
    assert out["landscape"].shape == (SEEDS, measure.n_directions, n_alphas)
    for name in ("harm_aligned", "harm_pretrained", "width", "censored_share", "visage"):
        assert out[name].shape == (SEEDS,), name
        assert np.all(np.isfinite(out[name])), name
    assert np.all(np.isfinite(out["landscape"]))
    assert not np.any(out["diverged"])
    assert np.all((out["width"] > 0) & (out["width"] <= max(measure.alphas)))
    assert np.all((out["visage"] >= 0) & (out["visage"] <= 1))


def test_measure_from_a_trunk_equals_the_straight_measure(measured, trunk):
    measure, out = measured
    from_trunk = jax.jit(lambda key, start: measure(key, SPEC, KNOBS, start=start))
    again = jax.device_get(from_trunk(jax.random.key(0), trunk))
    for name, value in again.items():
        np.testing.assert_allclose(value, out[name][0], rtol=1e-5, atol=1e-6, err_msg=name)


def test_non_refusal_is_at_least_compliance_everywhere(measured, trunk):
    _, out = measured
    measure = safety_basin.SafetyBasinMeasure(n_directions=4, harm="non_refusal")
    run = jax.jit(lambda key, start: measure(key, SPEC, KNOBS, start=start))
    refusing = jax.device_get(run(jax.random.key(0), trunk))
    assert refusing["landscape"].shape == out["landscape"][0].shape
    for name in ("harm_aligned", "harm_pretrained", "landscape"):
        assert np.all(refusing[name] >= out[name][0] - 1e-6), name
    assert np.all(np.isfinite(refusing["landscape"]))


def test_measure_refuses_a_one_sided_grid_and_an_unknown_harm():
    with pytest.raises(ValueError, match="alphas"):
        safety_basin.SafetyBasinMeasure(alphas=(0.1, 0.2))
    with pytest.raises(ValueError, match="harm"):
        safety_basin.SafetyBasinMeasure(harm="asr")
