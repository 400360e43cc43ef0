"""Calibrating the toy to the paper honestly: fit a few knobs to a few of the paper's numbers by a
rule written down first, then read every other number off the fitted regime with no further
tuning (they are predictions, not fits)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def nearest_cell(
    means: Mapping[tuple, Sequence[float]], targets: Sequence[float]
) -> tuple[tuple, float]:
    """The grid cell whose mean observables are nearest the targets (least squares, equal
    weights), and that squared distance. Cells with a non-finite observable are skipped."""
    best, distance = None, np.inf
    target = np.asarray(targets, dtype=float)
    for cell, values in means.items():
        values = np.asarray(values, dtype=float)
        if not np.all(np.isfinite(values)):
            continue
        d = float(np.sum((values - target) ** 2))
        if d < distance:
            best, distance = cell, d
    if best is None:
        raise ValueError("no cell has finite observables to fit")
    return best, distance


def distance_noise(
    per_seed_SxO, targets: Sequence[float], *, n_resamples: int = 4000, seed: int = 0
) -> float:
    """The bootstrap standard error of a cell's squared distance to the targets: its seeds drawn
    with replacement (one draw shared by every observable, as they come from the same runs), the
    mean of each observable over the finite draws, the sd (ddof 1) of the squared distance over
    the resamples. per_seed_SxO: the cell's observables per seed (NaN: a diverged run)."""
    values = np.asarray(per_seed_SxO, dtype=float)
    values = values[np.all(np.isfinite(values), axis=1)]
    if values.shape[0] < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    take_BxS = rng.integers(0, values.shape[0], (n_resamples, values.shape[0]))
    means_BxO = values[take_BxS].mean(axis=1)
    distances = np.sum((means_BxO - np.asarray(targets, dtype=float)) ** 2, axis=-1)
    return float(distances.std(ddof=1))


def within_noise(
    distances, best: tuple, per_seed_SxO, targets: Sequence[float], z: float = 1.96, **bootstrap
) -> dict:
    """The cells whose squared distance to the targets is within the best cell's bootstrap
    noise: distance <= d_best + z x SE, SE the bootstrap standard error of the best cell's
    squared distance (`distance_noise` of its per-seed observables). A flat valley has many;
    a well-determined fit, one. Returns {"edge", "bootstrap_se", "cells"}: the cells' indices
    into `distances` (a grid), nearest first; non-finite distances are never within. With
    fewer than two finite seeds there is no noise to measure: the best cell alone."""
    grid = np.asarray(distances, dtype=float)
    se = distance_noise(per_seed_SxO, targets, **bootstrap)
    edge = float(grid[best] + z * se) if np.isfinite(se) else float(grid[best])
    flat = np.where(np.isfinite(grid), grid, np.inf).ravel()
    order = np.argsort(flat, kind="stable")
    cells = [np.unravel_index(i, grid.shape) for i in order if flat[i] <= edge]
    return {"edge": edge, "bootstrap_se": se, "cells": [tuple(map(int, c)) for c in cells]}


def prediction_ranges(predictions: Sequence[Mapping]) -> dict[str, list[float]]:
    """Each prediction's [lowest, highest] over cells (`predictions`: one {name: {mean, ...}
    summary or number} per cell, e.g. every cell within the fit's noise); NaN left out."""
    names = predictions[0] if predictions else {}
    found = {}
    for name in names:
        values = [p[name]["mean"] if isinstance(p[name], Mapping) else p[name] for p in predictions]
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        found[name] = [float(values.min()), float(values.max())] if values.size else [np.nan] * 2
    return found
