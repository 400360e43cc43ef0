"""Effects along a grid's levels (`gravity.instruments.effects`) against hand-computed values."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.instruments import effects

LEVELS = (8, 16, 32)
# 2 pretraining lengths x 3 depths x 2 seeds; reversion falls with depth.
VALUES = np.array(
    [
        [[1.0, 0.8], [0.6, 0.4], [0.2, np.nan]],
        [[0.9, 0.7], [0.5, 0.5], [0.1, 0.1]],
    ]
)


def test_cell_means_and_table():
    cells = effects.cell_means({"reversion": VALUES})["reversion"]
    np.testing.assert_allclose(cells, [[0.9, 0.5, 0.2], [0.8, 0.5, 0.1]])
    table = effects.cell_table(cells, (100, 200), LEVELS, rows="pretrain", columns="safety")
    assert table["pretrain100"] == {"safety8": 0.9, "safety16": 0.5, "safety32": 0.2}
    assert list(table) == ["pretrain100", "pretrain200"]


def test_along_labels_every_run_with_its_level():
    depth = effects.along(LEVELS, VALUES.shape, 1)
    assert depth.shape == VALUES.shape
    assert (depth[1, 2] == 32).all() and (depth[0, 0] == 8).all()


def test_by_level_pools_the_other_axes():
    profile = effects.by_level(VALUES, LEVELS, 1, "safety")
    assert list(profile) == ["safety8", "safety16", "safety32"]
    assert profile["safety8"]["mean"] == pytest.approx(0.85)
    assert profile["safety32"]["n"] == 3  # the NaN run is left out


def test_level_trend_names_its_keys():
    trend = effects.level_trend(
        VALUES, LEVELS, 1, first="shortest", last="longest", effect="depth_effect"
    )
    assert trend["shortest"] == pytest.approx(0.85)
    assert trend["longest"] == pytest.approx(0.4 / 3)
    assert trend["depth_effect"] == pytest.approx(0.85 - 0.4 / 3)
    assert trend["spearman_rho"] < -0.8
    assert "effect" not in effects.level_trend(VALUES, LEVELS, 1, effect=None)


def test_equal_dose_levels_and_table():
    # Arm a gets 64 refusals per step, arm b 32: a at 8 steps matches b at 16, a at 16 b at 32.
    assert effects.equal_dose_levels(LEVELS, 64.0, 32.0) == [(0, 1), (1, 2)]
    arms = {"a": {"reversion": VALUES}, "b": {"reversion": VALUES + 1}}
    rows = effects.equal_dose_table(
        arms, {"a": 64.0, "b": 32.0}, LEVELS, 1, ["reversion"], level="steps", dose="refused"
    )
    assert rows[0] == {
        "refused": 512.0,
        "a_steps": 8,
        "b_steps": 16,
        "reversion_a": pytest.approx(0.85),
        "reversion_b": pytest.approx(1.5),
    }
    assert len(rows) == 2


RULE = effects.RatioRule(0.5, 0.25, "above", "below", "between", "undefined")


@settings(max_examples=50, deadline=None)
@given(
    st.floats(0.01, 10, allow_nan=False),
    st.floats(-10, 10, allow_nan=False),
)
def test_ratio_rule_reads_the_bands(reference, effect):
    ratio, reading = RULE(reference, effect)
    assert ratio == pytest.approx(effect / reference)
    expected = "above" if ratio >= 0.5 else "below" if ratio <= 0.25 else "between"
    assert reading == expected


def test_ratio_rule_without_a_reference_effect():
    for reference, effect in ((0.0, 1.0), (-1.0, 1.0), (np.nan, 1.0), (1.0, np.nan)):
        ratio, reading = RULE(reference, effect)
        assert np.isnan(ratio) and reading == "undefined"
