"""Elasticity's statistics against closed forms: the half-way time of a known rebound curve,
censoring, and per-seed slopes that recover a known dependence on log2(amount)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.instruments import elasticity

STEPS = [0, 1, 2, 3, 4, 5, 10, 20, 50, 100]


def test_rebound_is_the_share_of_the_way_back_to_the_pretrained_harm():
    harm = np.array([[0.1, 0.3, 0.5, 0.9]])
    np.testing.assert_allclose(elasticity.rebound(harm, np.array([0.9]), 2), [0.5])


def test_rebound_time_interpolates_between_records():
    rebound = np.array([0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0, 1.0])
    assert elasticity.rebound_time(rebound, STEPS) == pytest.approx(3.5)
    late = np.array([0.0, 0, 0, 0, 0, 0.25, 0.75, 1, 1, 1])
    assert elasticity.rebound_time(late, STEPS) == pytest.approx(7.5)


def test_a_run_that_never_gets_half_way_is_censored_at_the_last_step():
    slow = np.linspace(0, 0.4, len(STEPS))
    assert elasticity.rebound_time(slow, STEPS) == 100
    assert elasticity.rebound_censored(slow) and not elasticity.rebound_censored(slow + 0.2)
    assert np.isnan(elasticity.rebound_time(np.full(len(STEPS), np.nan), STEPS))


@settings(max_examples=30, deadline=None)
@given(
    st.floats(-1.0, 1.0),
    st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3),
    st.integers(0, 1),
)
def test_slopes_by_seed_recover_a_known_slope_in_log2_amount(slope, offsets, axis):
    amounts = np.array([100, 200, 400, 800])
    others = np.array(offsets)
    seeds = np.array([0.0, 0.5])
    x = np.log2(amounts)
    values = slope * x[:, None, None] + others[None, :, None] + seeds[None, None, :]
    values = np.moveaxis(values, 0, axis)
    found = elasticity.slopes_by_seed(values, amounts, axis)
    np.testing.assert_allclose(found, [slope, slope], atol=1e-9)
