"""The basin map's readout and depth control (`gravity.instruments.basin`) on hand-made runs;
the measure itself runs end to end in tests/test_maps.py."""

import numpy as np
import pytest

from gravity.instruments import basin, effects

PRETRAIN, SAFETY = (100, 200), (8, 16)
SHAPE = (2, 2, 3)  # pretraining lengths x depths x seeds


def _outputs(harm_after: float) -> dict:
    """A `BasinMeasure`'s outputs, every run alike: h_S = 0.2, h_H = 0.8, harm after K given."""
    full = np.full
    harm = np.stack([full(SHAPE, 0.2), full(SHAPE, harm_after)], axis=-1)
    return {
        "harm_aligned": full(SHAPE, 0.2),
        "harm_helpful": full(SHAPE, 0.8),
        "harm_pretrained": full(SHAPE, 0.9),
        "benign/harmfulness": harm,
        "benign/task_accuracy": full((*SHAPE, 2), 0.7),
        "benign/weight_progress": full((*SHAPE, 2), 0.5),
        "path_losses": np.broadcast_to(np.array([1.0, 1.5, 0.4]), (*SHAPE, 3)),
        "barrier": full(SHAPE, 0.5),
        "barrier_linear": full(SHAPE, 0.6),
        "top_eigenvalues": np.broadcast_to(np.array([9.0, 3.0]), (*SHAPE, 2)),
        "benign_pull": full(SHAPE, 0.1),
        "predicted_progress": full((*SHAPE, 2), 0.4),
        "predicted_harm_gain": full((*SHAPE, 2), 0.3),
    }


def test_basin_readout_normalises_by_the_alignment_gap():
    values = basin.basin_readout(_outputs(0.5).__getitem__)
    np.testing.assert_allclose(values["reversion"], (0.5 - 0.2) / 0.6)
    np.testing.assert_allclose(values["gap"], 0.6)
    np.testing.assert_allclose(values["benign_loss_drop"], 0.6)
    np.testing.assert_allclose(values["top_eigenvalue"], 9.0)
    np.testing.assert_allclose(values["predicted_linear_harm"], 0.3 / 0.6)
    assert values["reversion"].shape == SHAPE


def _arm(reversion_by_depth) -> dict:
    """Readout arrays whose reversion depends on depth only."""
    values = basin.basin_readout(_outputs(0.5).__getitem__)
    reversion = np.broadcast_to(np.asarray(reversion_by_depth)[None, :, None], SHAPE)
    return {**values, "reversion": reversion.astype(float)}


def test_basin_map_tables_and_trends():
    grid = basin.BasinMap(PRETRAIN, SAFETY)
    values = _arm([1.0, 0.2])
    table = grid.table(effects.cell_means(values)["reversion"])
    assert table["pretrain100"] == {"safety8": 1.0, "safety16": 0.2}
    assert list(table) == ["pretrain100", "pretrain200"]
    trend = grid.trend(values["reversion"], 1, effect="depth_effect")
    assert trend["shortest_alignment"] == 1.0
    assert trend["longest_alignment"] == pytest.approx(0.2)
    assert trend["depth_effect"] == pytest.approx(0.8) and trend["spearman_rho"] == pytest.approx(
        -1.0
    )
    assert set(grid.trend(values["reversion"], 0)) == {
        "shortest_pretraining",
        "longest_pretraining",
        "spearman_rho",
    }
    mass, depth = grid.lengths(SHAPE)
    assert mass[1, 0, 2] == 200 and depth[0, 1, 0] == 16


def test_depth_control_reads_the_control_against_the_main_arm():
    grid = basin.BasinMap(PRETRAIN, SAFETY)
    rule = effects.RatioRule(0.5, 0.25, "protects", "task training", "partly", "none")
    arms = {"mixed": _arm([1.0, 0.2]), "hazard_only": _arm([1.0, 0.9])}
    control = basin.depth_control(grid, arms, {"mixed": 32.0, "hazard_only": 64.0}, rule)
    assert control["depth_effect_ratio"] == pytest.approx(0.1 / 0.8)
    assert control["reading"] == "task training"
    assert control["reversion_by_depth"]["hazard_only"] == {"safety8": 1.0, "safety16": 0.9}
    # hazard_only at 8 steps (512 refusals) against mixed at 16 steps (512 refusals).
    (pair,) = control["equal_refused_examples"]
    assert pair["refused_examples"] == 512.0
    assert (pair["hazard_only_safety_steps"], pair["mixed_safety_steps"]) == (8, 16)
    assert pair["reversion_hazard_only"] == 1.0
    assert pair["reversion_mixed"] == pytest.approx(0.2)
    alone = basin.depth_control(grid, {"mixed": arms["mixed"]}, {"mixed": 32.0}, rule)
    assert list(alone) == ["arms"]
