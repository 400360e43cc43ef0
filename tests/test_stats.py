"""The shared statistics and the calibration rule against closed forms and known cases."""

import itertools

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.instruments import calibration, stats


def test_reversion_fraction_and_its_undefined_gaps():
    np.testing.assert_allclose(
        stats.reversion_fraction([0.5, 0.9], [0.1, 0.1], [0.9, 0.9]), [0.5, 1.0]
    )
    assert np.isnan(stats.reversion_fraction(0.5, 0.3, 0.3))  # no gap: nothing to revert


def test_correlation_done_three_ways_separates_trend_from_within_step():
    """x and y share a trend in time but are independent within each step: the pooled
    correlation is high, the within-step and partial ones are near zero."""
    rng = np.random.default_rng(0)
    steps = np.arange(50)
    x = steps[None, :] + rng.normal(size=(40, 50))
    y = steps[None, :] + rng.normal(size=(40, 50))
    result = stats.spearman_by_step(x, y)
    assert result["pooled"] > 0.95
    assert abs(result["within_step_median"]) < 0.15
    assert abs(result["partial_step"]) < 0.1
    # And a real within-step dependence is found by all three.
    y_dependent = x + 0.3 * rng.normal(size=x.shape)
    dependent = stats.spearman_by_step(x, y_dependent)
    assert dependent["within_step_median"] > 0.8 and dependent["partial_step"] > 0.5


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=4, max_size=30), st.integers(0, 10_000))
def test_auc_is_one_minus_auc_of_the_negated_score(scores, seed):
    labels = np.random.default_rng(seed).integers(0, 2, len(scores)).astype(bool)
    auc = stats.roc_auc(scores, labels)
    if np.isnan(auc):
        assert labels.all() or not labels.any()
    else:
        assert 0.0 <= auc <= 1.0
        assert stats.roc_auc(-np.asarray(scores), labels) == pytest.approx(1.0 - auc)


def test_bootstrap_interval_of_a_mean_is_the_normal_interval_and_resamples_rows_jointly():
    """Closed form: the bootstrap distribution of a mean of n values has sd s / sqrt(n) (s the
    sample's own sd, ddof 0) and is normal for large n, so the 95% interval is mean +- 1.96 s /
    sqrt(n) (here +- 0.098); 2,000 resamples put each end within ~0.006 of it (one sd of the
    percentile's Monte Carlo error). Several arrays are resampled by the same rows: y - 2x is 0
    on every resample of (x, 2x), and on no resample if the rows were drawn apart."""
    rng = np.random.default_rng(1)
    sample = rng.normal(loc=2.0, size=400)
    low, high = stats.bootstrap_interval(np.mean, sample, n=2000)
    half = scipy.stats.norm.ppf(0.975) * sample.std() / np.sqrt(sample.size)
    assert low == pytest.approx(sample.mean() - half, abs=0.02)
    assert high == pytest.approx(sample.mean() + half, abs=0.02)
    paired = stats.bootstrap_interval(lambda x, y: np.max(np.abs(y - 2 * x)), sample, 2 * sample)
    assert paired == [0.0, 0.0]
    assert stats.bootstrap_interval(lambda x: np.nan, sample, n=10) == pytest.approx(
        [np.nan, np.nan], nan_ok=True
    )


def test_nearest_cell_is_the_least_squares_fit_and_skips_undefined_cells():
    means = {(0, 0): (0.1, 0.2), (0, 1): (0.4, 0.6), (1, 0): (np.nan, 0.64), (1, 1): (0.9, 0.9)}
    cell, distance = calibration.nearest_cell(means, (0.429, 0.647))
    assert cell == (0, 1)
    assert distance == pytest.approx((0.4 - 0.429) ** 2 + (0.6 - 0.647) ** 2)
    with pytest.raises(ValueError):
        calibration.nearest_cell({(0,): (np.nan, 1.0)}, (0.0, 0.0))


# Seed-level statistics for verdicts: exact references where a closed form exists, properties
# where it does not.

small_integers = st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=8)
pairs = st.integers(3, 12).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(-10, 10), min_size=n, max_size=n),
        st.lists(st.floats(-10, 10), min_size=n, max_size=n),
    )
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([-1.5, -0.5, 0.0, 0.5, 2.0]), min_size=1, max_size=25))
def test_sign_test_is_scipys_exact_binomial_test(differences):
    positive = sum(d > 0 for d in differences)
    negative = sum(d < 0 for d in differences)
    if positive + negative == 0:
        assert stats.sign_test(differences) == 1.0
    else:
        reference = scipy.stats.binomtest(positive, positive + negative, 0.5).pvalue
        assert stats.sign_test(differences) == pytest.approx(reference, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(small_integers)
def test_sign_flip_test_is_the_full_enumeration_on_tiny_inputs(differences):
    """Integer differences make every sum exact, so the enumeration has no rounding ties."""
    observed = abs(np.mean(differences))
    flips = [
        abs(np.dot(signs, differences)) / len(differences) >= observed
        for signs in itertools.product([-1.0, 1.0], repeat=len(differences))
    ]
    assert stats.sign_flip_test(differences) == pytest.approx(np.mean(flips))


def test_sign_flip_test_by_random_flips_approaches_the_exact_p():
    differences = [0.3, -0.1, 0.5, 0.2, -0.4, 0.6, 0.1, 0.25, -0.05, 0.35]
    exact = stats.sign_flip_test(differences)
    sampled = stats.sign_flip_test(differences, max_exact=0, n_resamples=4000, seed=3)
    assert abs(sampled - exact) < 0.03 and sampled > 0
    assert sampled == stats.sign_flip_test(differences, max_exact=0, n_resamples=4000, seed=3)


def test_paired_difference_of_a_clear_effect_and_its_edge_cases():
    control = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    differences = np.array([1.0, 1.1, 1.2, 0.9, 1.3, 1.05])
    result = stats.paired_difference(control + differences, control)
    assert result["n"] == 6 and result["interval"][0] > 0
    assert result["mean"] == pytest.approx(differences.mean())
    assert result["sign_p"] == pytest.approx(2 / 2**6)  # all six positive
    assert result["permutation_p"] == pytest.approx(2 / 2**6)  # only all-+ and all-- reach it
    assert result["effect_size"] == pytest.approx(differences.mean() / differences.std(ddof=1))
    assert stats.paired_difference([1.0, 2.0], [0.0, 1.0])["effect_size"] == np.inf
    one = stats.paired_difference([1.0, np.nan], [0.0, 1.0])  # a diverged seed drops its pair
    assert one["n"] == 1 and np.isnan(one["interval"]).all()
    with pytest.raises(ValueError, match="one value per seed"):
        stats.paired_difference([1.0, 2.0], [1.0])


@settings(max_examples=30, deadline=None)
@given(pairs, st.randoms(use_true_random=False), st.floats(-5, 5))
def test_paired_difference_properties(arms, random, shift):
    a, b = (np.asarray(x) for x in arms)
    result = stats.paired_difference(a, b, n_resamples=500)
    low, high = result["interval"]
    assert low - 1e-9 <= result["mean"] <= high + 1e-9  # the interval holds its estimate
    order = list(range(a.size))
    random.shuffle(order)  # the seeds have no order: the pairs shuffled give the same record
    np.testing.assert_equal(stats.paired_difference(a[order], b[order], n_resamples=500), result)
    shifted = stats.paired_difference(a, b + shift, n_resamples=500)  # b + c: difference - c
    assert shifted["mean"] == pytest.approx(result["mean"] - shift, abs=1e-9)
    assert shifted["interval"] == pytest.approx([low - shift, high - shift], abs=1e-9)


def test_percentile_bootstrap_is_one_vectorised_draw_of_the_loop():
    values = np.array([0.4, 0.1, 0.9, 0.3, 0.7])
    interval = stats.percentile_bootstrap(values, np.median, n_resamples=300, seed=5)
    take = np.random.default_rng(5).integers(0, 5, (300, 5))
    medians = [np.median(np.sort(values)[row]) for row in take]
    assert interval == pytest.approx(np.percentile(medians, [2.5, 97.5]).tolist())
    assert stats.percentile_bootstrap(values[::-1], np.median, n_resamples=300, seed=5) == interval
    assert np.isnan(stats.percentile_bootstrap([1.0, np.nan])).all()  # one seed: no spread


def test_hierarchical_bootstrap_counts_the_spread_between_conditions():
    """Conditions far apart with little spread inside: resampling the pooled runs as if
    independent gives a narrower interval than resampling conditions, then seeds."""
    rng = np.random.default_rng(0)
    values_CxS = np.array([[0.0], [1.0], [2.0], [3.0]]) + 0.01 * rng.normal(size=(4, 6))
    low, high = stats.hierarchical_bootstrap(values_CxS, n_resamples=1000)
    flat_low, flat_high = stats.percentile_bootstrap(values_CxS, n_resamples=1000)
    assert low < values_CxS.mean() < high
    assert high - low > 1.5 * (flat_high - flat_low)
    assert stats.hierarchical_bootstrap(np.full((3, 4), 0.25)) == [0.25, 0.25]
    assert stats.hierarchical_bootstrap(values_CxS, n_resamples=1000) == [low, high]
    with pytest.raises(ValueError, match="finite 2-d"):
        stats.hierarchical_bootstrap([[1.0, np.nan]])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, np.nan]), min_size=2, max_size=12),
    st.integers(0, 10_000),
)
def test_resampled_roc_auc_is_roc_auc_of_each_resample(scores, seed):
    """Ties, runs without a score and rows that lack a class included."""
    rng = np.random.default_rng(seed)
    scores = np.asarray(scores)
    labels = rng.random(scores.size) < 0.5
    take = rng.integers(0, scores.size, (6, int(rng.integers(1, 15))))
    expected = [stats.roc_auc(scores[row], labels[row]) for row in take]
    np.testing.assert_allclose(stats.resampled_roc_auc(scores, labels, take), expected)


def test_crossed_resamples_keep_every_run_where_drawn_conditions_and_seeds_cross():
    conditions, seeds = stats.crossed_resamples(5, 3, n_resamples=40, seed=2)
    assert conditions.shape == (40, 5) and seeds.shape == (40, 3)
    runs = stats.crossed_runs(conditions, seeds, 3)
    grid = np.arange(15).reshape(5, 3)
    for b in (0, 17, 39):
        np.testing.assert_array_equal(runs[b], grid[np.ix_(conditions[b], seeds[b])].ravel())
    counts = stats.draw_counts(seeds, 3)
    assert counts.shape == (40, 3) and (counts.sum(axis=1) == 3).all()
    np.testing.assert_array_equal(counts[7], np.bincount(seeds[7], minlength=3))
    assert np.array_equal(stats.crossed_resamples(5, 3, n_resamples=40, seed=2)[0], conditions)


def test_a_crossed_bootstrap_counts_a_seed_effect_that_nesting_averages_away():
    """Every condition ran from the same 4 seeds, each seed far from the others: drawing seeds
    anew for each condition (nested) mixes them and hides that spread; drawing them once for all
    conditions (crossed) keeps it."""
    rng = np.random.default_rng(0)
    values_CxS = np.array([[0.0, 1.0, 2.0, 3.0]]) + 0.01 * rng.normal(size=(50, 4))
    nested_low, nested_high = stats.hierarchical_bootstrap(values_CxS, n_resamples=1000)
    conditions, seeds = stats.crossed_resamples(50, 4, n_resamples=1000)
    means = values_CxS.ravel()[stats.crossed_runs(conditions, seeds, 4)].mean(axis=1)
    low, high = stats.percentile_interval(means)
    assert low < values_CxS.mean() < high
    assert high - low > 4 * (nested_high - nested_low)


def test_t_interval_from_a_stored_summary_is_scipys():
    sample = np.array([0.91, 0.93, 0.92, 0.95, 0.90])
    summary = stats.mean_sd(sample)
    reference = scipy.stats.ttest_1samp(sample, 0.0).confidence_interval(0.95)
    interval = stats.t_interval(summary["mean"], summary["sd"], summary["n"])
    assert interval == pytest.approx([reference.low, reference.high])
    assert np.isnan(stats.t_interval(0.5, 0.1, 1)).all()
