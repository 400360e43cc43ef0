"""Nulls for cos(drift, v_rev) (`gravity.instruments.nulls`): exact references on small
arrays and hand-built results, and the isotropic null's dimension from a spec alone."""

import numpy as np
import pytest
import synthetic_results
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.engine import geometry, presets
from gravity.instruments import nulls
from gravity.run.sweep import Axis


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=1, max_size=50), st.floats(-1, 1))
def test_a_null_is_a_quantile_and_values_are_read_against_it(values, threshold):
    assert nulls.quantile_null(values) == pytest.approx(float(np.quantile(values, 0.99)))
    assert nulls.fraction_above(values, threshold) == np.mean(np.asarray(values) > threshold)
    assert nulls.fraction_above([np.nan, 2.0], 0.0) == 0.5


def test_drift_nulls_are_the_geometry_nulls_in_v_rev_dimension():
    rng = np.random.default_rng(0)
    drift, matched = rng.normal(size=(4, 3, 5, 2)), rng.normal(size=(4, 3, 5, 2))
    v_rev = rng.normal(size=(4, 5, 2))
    found = nulls.drift_nulls(drift, matched, v_rev)
    assert found["null_dim"] == 10
    assert found["null_p99_isotropic"] == geometry.isotropic_null_quantile(10, 0.99)
    # (the matched nulls' matrix products may differ in the last bit from call to call)
    matched_null = geometry.cross_history_null(drift, v_rev, 0.99)
    assert found["null_p99_matched"] == pytest.approx(matched_null, rel=1e-12)
    benign_null = geometry.benign_drift_null(drift, matched, 0.99)
    assert found["null_p99_benign_drift"] == pytest.approx(benign_null, rel=1e-12)
    assert nulls.strictest(found) == max(v for k, v in found.items() if k.startswith("null_p99"))


def test_same_basis_nulls_read_the_treated_run_against_its_control_branch():
    rows = np.zeros((1, 2, 4, synthetic_results.STEPS.size))
    rows[0, 0], rows[0, 1] = np.linspace(0.0, 0.9, 5), np.linspace(0.0, 0.5, 5)
    names = ("alignment", "alignment_hazard_specific", "harmfulness_heldout")
    arrays = {f"metrics/benign/{name}": rows for name in names}
    axes = (Axis("world", ("main",)), Axis("arm", ("benign", "control")))
    res = synthetic_results.result(arrays, axes, 4)
    found = nulls.same_basis_nulls(
        res.select(world="main", arm="benign"), res.select(world="main", arm="control"), 10
    )
    assert found["null_p99_same_basis"] == pytest.approx(0.5)
    # treated after step 0: 0.225, 0.45, 0.675, 0.9; the last two clear the control's 0.5
    assert found["fraction_above_same_basis_null"] == 0.5
    assert found["hazard_specific_null_p99"] == found["null_p99_same_basis"]
    assert found["alignment_control_finetune_step10"]["mean"] == pytest.approx(0.5)


def test_the_isotropic_null_of_a_spec_is_in_its_stacked_activation_dimension():
    spec = presets.standard_spec("mlp", "tiny", keep_params=False)
    dim = nulls.activation_dim(spec)
    assert dim > 1
    assert nulls.isotropic_null(spec) == geometry.isotropic_null_quantile(dim, 0.99)
