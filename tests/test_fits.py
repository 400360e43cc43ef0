"""Tests for gravity.instruments.fits: exact recovery of linear and power laws."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.instruments.fits import least_squares, power_law_fit


def test_least_squares_exact_line_and_constant_response():
    x = np.arange(5.0)
    coef, r2 = least_squares(np.stack([np.ones(5), x], axis=1), 1.5 + 2.0 * x)
    np.testing.assert_allclose(coef, [1.5, 2.0])
    assert r2 == pytest.approx(1.0)
    _, r2 = least_squares(np.ones((5, 1)), np.full(5, 3.0))
    assert math.isnan(r2)


@settings(max_examples=30, deadline=None)
@given(
    prefactor=st.floats(0.1, 10.0),
    a=st.floats(-2.0, 2.0),
    b=st.floats(-2.0, 2.0),
)
def test_power_law_fit_recovers_exponents(prefactor, a, b):
    x1, x2 = np.meshgrid([1.0, 2.0, 4.0, 8.0], [3.0, 5.0, 7.0])
    fit = power_law_fit(prefactor * x1**a * x2**b, {"x1": x1, "x2": x2})
    assert fit.exponents["x1"] == pytest.approx(a, abs=1e-9)
    assert fit.exponents["x2"] == pytest.approx(b, abs=1e-9)
    assert fit.log_prefactor == pytest.approx(math.log(prefactor), abs=1e-9)
    assert fit.n == 12 and list(fit.exponents) == ["x1", "x2"]
