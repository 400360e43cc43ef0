"""Least-squares fits of a report's cell values: ordinary least squares with its R^2, and power
laws y = prefactor x1^c1 x2^c2 ... fitted as straight lines in log-log coordinates (e.g. how a
median escape time scales with the learning rate and the batch size). Host side, numpy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np


def least_squares(design_NxK, y_N) -> tuple[np.ndarray, float]:
    """Ordinary least squares of `y` on the columns of `design`: (coefficients (K,), R^2), R^2
    being NaN when `y` is constant."""
    design, y = np.asarray(design_NxK, dtype=float), np.asarray(y_N, dtype=float)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return coef, 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")


class PowerLawFit(NamedTuple):
    """log y = log_prefactor + sum_k exponents[k] log x_k, by least squares."""

    exponents: dict[str, float]
    log_prefactor: float
    r_squared: float
    n: int


def power_law_fit(y, factors: Mapping[str, np.ndarray]) -> PowerLawFit:
    """Fit y = prefactor prod_k x_k^c_k on positive values (each factor the same shape as y),
    as a linear regression of log y on an intercept and the log factors, in `factors`' order."""
    y = np.asarray(y, dtype=float).ravel()
    logs = [np.log(np.asarray(x, dtype=float).ravel()) for x in factors.values()]
    coef, r2 = least_squares(np.stack([np.ones(y.size), *logs], axis=1), np.log(y))
    exponents = {name: float(c) for name, c in zip(factors, coef[1:], strict=True)}
    return PowerLawFit(exponents, float(coef[0]), r2, int(y.size))
