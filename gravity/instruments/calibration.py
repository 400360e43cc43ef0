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
