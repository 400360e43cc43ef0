"""Tests for gravity.instruments.first_passage and .sgd_escape: censored escape statistics per
cell of a grid, against `gravity.instruments.escape`' Kaplan-Meier on each cell alone and against
synthetic escape times with known laws (Arrhenius in SGD time, a power law in lr)."""

import math
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.instruments import escape, sgd_escape
from gravity.instruments import first_passage as fp


def test_escape_times_reads_diverged_runs_as_no_time():
    steps = np.array([0, 1, 2, 4])
    harm = np.array([[0.0, 0.2, 0.6, 1.0], [0.0, 0.1, 0.1, 0.1], [0.0, np.nan, 1.0, 1.0]])
    diverged = np.array([False, False, True])
    times, escaped = fp.escape_times(steps, harm, harm[:, 0], np.ones(3), diverged)
    np.testing.assert_array_equal(times[:2], [2.0, 4.0])
    assert math.isnan(times[2])
    np.testing.assert_array_equal(escaped, [True, False, False])


def test_km_medians_per_cell_equal_kaplan_meier_of_each_cell():
    rng = np.random.default_rng(1)
    times = rng.integers(1, 50, size=(2, 3, 9)).astype(float)
    escaped = rng.random((2, 3, 9)) < 0.7
    times[0, 0, :3] = np.nan  # diverged runs are left out
    times[1, 2] = np.nan  # a cell without a time
    escaped[0, 1] = False  # a cell where nobody escapes
    medians = fp.km_medians(times, escaped)
    ok = np.isfinite(times[0, 0])
    curve = escape.kaplan_meier(times[0, 0][ok], escaped[0, 0][ok])
    assert medians[0, 0] == escape.km_median(curve)
    assert medians[0, 1] == math.inf and math.isnan(medians[1, 2])
    assert math.isnan(fp.escaped_fraction(times[1, 2], escaped[1, 2]))


def test_spread_factor_is_the_worst_ratio_along_the_axis():
    values = np.array([[[1.0, 2.0], [3.0, 2.0]], [[2.0, np.nan], [9.0, 4.0]]])  # (2, 2, 2)
    # Along axis 1, at each (i, k): 3, 1, 4.5, (one value: skipped) -> 4.5.
    assert fp.spread_factor(values, axis=1) == 4.5
    assert fp.spread_factor(values[0]) == 3.0
    assert fp.spread_factor([[1.0], [math.inf]]) == math.inf
    assert fp.spread_factor([[math.inf], [math.inf]]) is None
    assert fp.spread_factor([[1.0], [np.nan]]) is None


def test_arrhenius_cells_and_records():
    temperature = np.array([[0.5, 0.25], [0.2, 0.1]])
    times = 3.0 * np.exp(2.0 / temperature)
    observed = np.array([[True, True], [True, False]])
    fit = fp.arrhenius_cells(temperature, times, observed)
    assert fit.barrier == pytest.approx(2.0) and fit.n == 3
    assert fp.arrhenius_cells(temperature, times, observed, min_cells=4) is None
    assert fp.arrhenius_cells(np.full(4, 0.5), np.ones(4), np.ones(4, bool)) is None
    record = fp.arrhenius_record(fit, "steps", ("barrier", "n_cells"))
    assert record == {"time_unit": "steps", "barrier": fit.barrier, "n_cells": 3}
    assert list(fp.arrhenius_record(fit, "t")) == ["time_unit", *fp.ARRHENIUS_FIELDS]


def test_median_table_and_finite_or_none():
    table = fp.median_table([[1.0, math.inf], [np.nan, 2.0]], ["a", "b"], ["x", "y"])
    assert table == {"a": {"x": 1.0, "y": None}, "b": {"x": None, "y": 2.0}}


def _grid(times, escaped=None) -> sgd_escape.EscapeGrid:
    lrs, batches, depths = (0.01, 0.02, 0.04), (4, 16, 64), (25, 50)
    escaped = np.ones(times.shape, bool) if escaped is None else escaped
    return sgd_escape.EscapeGrid(lrs, batches, depths, times, escaped, 50, 16)


def test_sgd_escape_recovers_a_power_law_and_a_batch_independent_flow():
    """Escape steps ~ 2 lr^-1 depth^0.5, the same at every batch size (deterministic pull): the
    flow law recovers the exponents, the batch factor is 1 and every run escapes."""
    lr = np.array([0.01, 0.02, 0.04])[:, None, None, None]
    depth = np.array([25.0, 50.0])[None, None, :, None]
    times = 2.0 / lr * depth**0.5 * np.ones((1, 3, 1, 4))
    numbers = sgd_escape.escape_numbers(_grid(times))
    flow = numbers["flow_law"]
    assert flow["c_lr"] == pytest.approx(-1.0) and flow["c_depth"] == pytest.approx(0.5)
    assert flow["c_batch"] == pytest.approx(0.0, abs=1e-9) and flow["n_cells"] == 18
    assert numbers["max_factor_across_batch"] == pytest.approx(1.0)
    assert numbers["large_batch"]["escaped_fraction"] == 1.0
    assert numbers["medians_reference_depth"]["lr0.01"]["batch16"] == pytest.approx(200 * 50**0.5)

    def rule(arrhenius, large, factor):
        return "pull" if large >= 0.9 and factor < 2 else "other"

    judged = sgd_escape.with_verdicts(numbers, _grid(times), rule)
    assert judged["verdict"] == judged["verdict_with_time_unit_fit"] == "pull"
    post = judged["post_hoc_without_largest_lr"]
    assert post["excluded_lr"] == 0.04 and post["verdict"] == "pull"
    assert sgd_escape.reading(judged, 300).startswith("Pre-registered verdict: pull;")


def test_sgd_escape_censored_cells_are_left_out_of_the_fits():
    times = np.full((3, 3, 2, 4), 300.0)
    escaped = np.zeros(times.shape, bool)
    escaped[0] = True  # only the smallest lr escapes (at the censoring step)
    numbers = sgd_escape.escape_numbers(_grid(times, escaped))
    assert numbers["large_batch"]["escaped_fraction"] == pytest.approx(1 / 3)
    assert numbers["large_batch"]["median_steps_by_lr"] == {
        "lr0.01": 300.0,
        "lr0.02": None,
        "lr0.04": None,
    }
    assert "flow_law" in numbers and numbers["flow_law"]["n_cells"] == 6
    # One lr left: one temperature per depth at a batch size, several across batch sizes.
    assert numbers["arrhenius_time_units_all_cells"]["n_cells"] == 6


# ------------------------------------------------------------------------------------------
# Escape rates with censoring, and the paired rate ratio
# ------------------------------------------------------------------------------------------

RATE_SETTINGS = settings(max_examples=40, deadline=None)


@RATE_SETTINGS
@given(data=st.data(), n_cells=st.integers(1, 4), n_runs=st.integers(1, 8))
def test_censored_rates_are_escapes_over_time_at_risk(data, n_cells, n_runs):
    """The closed form of the censored exponential MLE, cell by cell: escapes / summed observed
    times, diverged (NaN) runs left out; the same as `escape.exponential_mle` of the cell."""
    size = n_cells * n_runs
    draw = partial(st.lists, min_size=size, max_size=size)
    times = np.array(data.draw(draw(st.integers(1, 300)))).reshape(n_cells, n_runs).astype(float)
    escaped = np.array(data.draw(draw(st.booleans()))).reshape(n_cells, n_runs)
    diverged = np.array(data.draw(draw(st.booleans()))).reshape(n_cells, n_runs)
    times[diverged] = np.nan
    rates = fp.censored_rates(times, escaped)
    for cell in range(n_cells):
        ok = ~diverged[cell]
        if not ok.any():
            assert math.isnan(rates[cell])
            continue
        expected = escaped[cell][ok].sum() / times[cell][ok].sum()
        assert rates[cell] == pytest.approx(expected, rel=1e-12)
        fit = escape.exponential_mle(times[cell][ok], escaped[cell][ok])
        assert rates[cell] == pytest.approx(fit.rate, rel=1e-12)


@pytest.mark.parametrize("rate, censor", [(0.02, 300.0), (0.5, 1.0), (2.0, 10.0)])
def test_censored_rate_of_exponential_first_passages_is_their_rate(rate, censor):
    """Exponential first-passage times at rate r (their n quantiles, no sampling noise),
    censored at c: the escaped share is 1 - exp(-r c), the mean time at risk
    (1 - exp(-r c)) / r, so escapes / time at risk is r itself."""
    n = 200_000
    times = -np.log1p(-(np.arange(n) + 0.5) / n) / rate
    escaped, observed = times <= censor, np.minimum(times, censor)
    events, exposure = fp.events_and_exposure(observed, escaped)
    share = -math.expm1(-rate * censor)
    assert events / n == pytest.approx(share, abs=1 / n)
    assert exposure / n == pytest.approx(share / rate, rel=1e-4)
    assert fp.censored_rates(observed, escaped) == pytest.approx(rate, rel=1e-4)


@RATE_SETTINGS
@given(
    rho=st.floats(0.05, 20.0),
    rates=st.lists(st.floats(0.001, 1.0), min_size=1, max_size=6),
    data=st.data(),
)
def test_mantel_haenszel_recovers_a_common_rate_ratio(rho, rates, data):
    """Columns whose rates differ but whose ratio is the same give that ratio exactly."""
    size = len(rates)
    exposures = partial(st.lists, st.floats(1.0, 1e4), min_size=size, max_size=size)
    e_a, e_b = np.array(data.draw(exposures())), np.array(data.draw(exposures()))
    r = np.array(rates)
    pooled = fp.mantel_haenszel_rate_ratio(rho * r * e_a, e_a, r * e_b, e_b)
    assert pooled == pytest.approx(rho, rel=1e-9)


def test_mantel_haenszel_columns_without_escapes_add_nothing():
    assert fp.mantel_haenszel_rate_ratio([1, 0], [10, 5], [2, 0], [10, 5]) == 0.5
    assert fp.mantel_haenszel_rate_ratio([3], [10], [0], [10]) == math.inf
    assert math.isnan(fp.mantel_haenszel_rate_ratio([0], [10], [0], [10]))


def test_paired_rate_ratio_bootstrap_redraws_the_same_seeds_in_both_arms():
    """Arm a escapes at half of arm b's time on every seed: every paired resample has the ratio
    2 exactly (an unpaired bootstrap would spread it); equal arms give 1 exactly."""
    rng = np.random.default_rng(3)
    times_b = rng.integers(2, 300, size=(3, 2, 6)).astype(float)
    escaped = np.ones(times_b.shape, bool)
    found = fp.paired_rate_ratio(times_b / 2, escaped, times_b, escaped, n_resamples=500)
    assert found["estimate"] == 2.0 and found["interval"] == [2.0, 2.0]
    assert found["n"] == 6 and found["n_columns"] == found["n_informative_columns"] == 6
    assert found["interval_excludes_1"]
    columns = found["by_column"]
    assert columns["ratio"].shape == (3, 2) and columns["interval"].shape == (3, 2, 2)
    np.testing.assert_allclose(columns["ratio"], 2.0)
    np.testing.assert_allclose(columns["rate_a"], 2 * columns["rate_b"])
    same = fp.paired_rate_ratio(times_b, escaped, times_b, escaped, n_resamples=500)
    assert same["estimate"] == 1.0 and same["interval"] == [1.0, 1.0]
    assert not same["interval_excludes_1"]
    with pytest.raises(ValueError, match="one \\(columns..., seeds\\) shape"):
        fp.paired_rate_ratio(times_b, escaped, times_b[..., :3], escaped[..., :3])


@pytest.mark.parametrize("rho", [1.0, 5.0])
def test_paired_rate_ratio_of_censored_exponential_arms(rho):
    """Exponential escapes at rate rho x r (arm a) and r (arm b), censored at 300 steps, r
    varying over 20 columns and 10 seeds: the pooled interval holds rho, and one column alone
    is far less certain than all of them."""
    rng = np.random.default_rng(int(rho))
    r = np.geomspace(0.002, 0.2, 20)[:, None]
    arms = []
    for rate in (rho * r, r):
        t = rng.exponential(1 / rate, size=(20, 10))
        arms += [np.minimum(t, 300.0), t <= 300.0]
    found = fp.paired_rate_ratio(*arms)
    low, high = found["interval"]
    assert low < rho < high and high / low < 3
    column_low, column_high = found["by_column"]["interval"][10]
    assert column_high / column_low > high / low


def test_rates_with_intervals_bootstrap_each_cell_over_its_seeds():
    times = np.array([[[5.0, 5.0, 5.0, 5.0], [2.0, 300.0, 40.0, 9.0]]])
    escaped = np.array([[[True] * 4, [True, False, True, True]]])
    found = fp.rates_with_intervals(times, escaped, n_resamples=500)
    np.testing.assert_allclose(found["rate"], [[0.2, 3 / 351]])
    assert found["interval"].shape == (1, 2, 2)
    np.testing.assert_allclose(found["interval"][0, 0], [0.2, 0.2])  # identical runs
    low, high = found["interval"][0, 1]
    assert low < 3 / 351 < high
