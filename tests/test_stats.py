"""The shared statistics and the calibration rule against closed forms and known cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity import calibration, stats


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


def test_bootstrap_interval_covers_the_mean_of_a_normal_sample():
    rng = np.random.default_rng(1)
    sample = rng.normal(loc=2.0, size=400)
    low, high = stats.bootstrap_interval(np.mean, sample, n=500)
    assert low < 2.0 < high and high - low < 0.3


def test_nearest_cell_is_the_least_squares_fit_and_skips_undefined_cells():
    means = {(0, 0): (0.1, 0.2), (0, 1): (0.4, 0.6), (1, 0): (np.nan, 0.64), (1, 1): (0.9, 0.9)}
    cell, distance = calibration.nearest_cell(means, (0.429, 0.647))
    assert cell == (0, 1)
    assert distance == pytest.approx((0.4 - 0.429) ** 2 + (0.6 - 0.647) ** 2)
    with pytest.raises(ValueError):
        calibration.nearest_cell({(0,): (np.nan, 1.0)}, (0.0, 0.0))
