"""The calibration's fit and its noise: which cells a fit cannot tell apart from the best."""

import numpy as np
import pytest

from gravity.instruments import calibration

TARGET = (0.4, 0.6)


def seeds_around(means, spread: float, seeds: int = 8, seed: int = 0) -> np.ndarray:
    """Per-seed observables (seeds, 2) scattered around `means`, centred exactly on them."""
    noise = np.random.default_rng(seed).normal(size=(seeds, 2))
    noise -= noise.mean(axis=0)
    return np.asarray(means) + spread * noise


def test_the_nearest_cell_is_the_least_squares_one_and_skips_non_finite_cells():
    cells = {(0, 0): (0.4, 0.7), (0, 1): (0.5, 0.6), (1, 0): (np.nan, 0.6), (1, 1): (0.3, 0.9)}
    best, distance = calibration.nearest_cell(cells, TARGET)
    assert best == (0, 0) and distance == pytest.approx(0.01)


def test_the_noise_of_a_distance_grows_with_the_seeds_spread_and_is_seeded():
    quiet = calibration.distance_noise(seeds_around((0.3, 0.7), 0.01), TARGET)
    loud = calibration.distance_noise(seeds_around((0.3, 0.7), 0.1), TARGET)
    assert 0 < quiet < loud
    assert calibration.distance_noise(seeds_around((0.3, 0.7), 0.1), TARGET) == loud
    # Equal seeds leave nothing to resample; one finite seed says nothing about the spread.
    assert calibration.distance_noise(np.full((8, 2), 0.5), TARGET) == pytest.approx(0, abs=1e-15)
    one = np.array([[0.5, 0.5], [np.nan, 0.5]])
    assert np.isnan(calibration.distance_noise(one, TARGET))


def test_a_flat_valley_keeps_every_cell_within_the_best_fits_noise():
    """Cells nearest first; a cell just past the edge is out; the edge is the best distance
    plus 1.96 bootstrap SE of the best cell's distance."""
    per_seed = seeds_around((0.3, 0.7), 0.1)
    se = calibration.distance_noise(per_seed, TARGET)
    best = 0.02
    grid = np.array([[best + 0.5 * se, best, np.nan], [best + 1.9 * se, best + 2.1 * se, 0.5]])
    found = calibration.within_noise(grid, (0, 1), per_seed, TARGET)
    assert found["bootstrap_se"] == se
    assert found["edge"] == pytest.approx(best + 1.96 * se)
    assert found["cells"] == [(0, 1), (0, 0), (1, 0)]


def test_a_sharp_fit_keeps_the_best_cell_alone():
    per_seed = seeds_around((0.38, 0.61), 0.01)
    grid = np.array([[0.0005, 0.05], [0.1, 0.2]])
    assert calibration.within_noise(grid, (0, 0), per_seed, TARGET)["cells"] == [(0, 0)]
    no_noise = calibration.within_noise(grid, (0, 0), per_seed[:1], TARGET)
    assert no_noise["cells"] == [(0, 0)] and np.isnan(no_noise["bootstrap_se"])


def test_a_predictions_range_is_over_the_cells_means():
    cells = [
        {"alignment": {"mean": 0.6, "sd": 0.1, "n": 8}, "spearman": 0.2},
        {"alignment": {"mean": 0.7, "sd": 0.1, "n": 8}, "spearman": np.nan},
        {"alignment": {"mean": 0.5, "sd": 0.1, "n": 8}, "spearman": -0.1},
    ]
    found = calibration.prediction_ranges(cells)
    assert found == {"alignment": [0.5, 0.7], "spearman": [-0.1, 0.2]}
    assert calibration.prediction_ranges(cells[:1])["alignment"] == [0.6, 0.6]
