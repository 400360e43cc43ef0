"""Tests for gravity.instruments.first_passage and .sgd_escape: censored escape statistics per
cell of a grid, against `gravity.instruments.escape`' Kaplan-Meier on each cell alone and against
synthetic escape times with known laws (Arrhenius in SGD time, a power law in lr)."""

import math

import numpy as np
import pytest

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
