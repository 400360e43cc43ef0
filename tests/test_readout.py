"""Readouts of recorded metrics from a sweep result (`gravity.instruments.readout`), on a
hand-built result with exact references."""

import numpy as np
import pytest
import scipy.stats
import synthetic_results
from synthetic_results import STEPS

from gravity.instruments import readout
from gravity.instruments.stats import mean_sd, reversion_fraction
from gravity.run.sweep import Axis


@pytest.fixture(scope="module")
def res():
    diverged = np.zeros((2, 3, 4), bool)
    diverged[0, 0, 1] = True
    return synthetic_results.grid(diverged=diverged)


def test_values_at_a_step_keep_the_grid_and_summaries_drop_diverged_runs(res):
    harm = res["metrics/benign/harmfulness_heldout"]
    at_five = readout.harm_at(res, 5, held_out=True)
    assert at_five.shape == (2, 3, 4) and np.isnan(at_five[0, 0, 1])
    np.testing.assert_array_equal(at_five[1], harm[1, ..., 3])
    np.testing.assert_array_equal(
        readout.alignment_at(res, 1)[1], res["metrics/benign/alignment"][1, ..., 1]
    )
    cell = res.select(world="main", arm=("a", 1.0))
    found = readout.means_at(cell, ["harmfulness", "refusal"], [1, 10])
    assert list(found) == [
        "harmfulness_step1",
        "refusal_step1",
        "harmfulness_step10",
        "refusal_step10",
    ]
    expected = res["metrics/benign/refusal"][0, 0, [0, 2, 3], 4]
    assert found["refusal_step10"] == mean_sd(expected)
    task = res["metrics/benign/task_accuracy"][0, 0, [0, 2, 3], 2]
    assert readout.run_means(cell, ["task_accuracy"], 2) == {"task_accuracy": float(np.mean(task))}
    means = readout.means_by_cell(res, "metrics/benign/other", (0, 5))
    other = res.valid("metrics/benign/other")
    np.testing.assert_array_equal(means[..., 1], np.nanmean(other[..., 3], axis=-1))
    assert means.shape == (2, 3, 2) and np.isfinite(means).all()


def test_reversion_reads_the_finals_else_the_last_records(res):
    harm = res.valid("metrics/benign/harmfulness")[..., -1]
    expected = reversion_fraction(
        harm, res.valid("final/safety/harmfulness"), res.valid("final/helpful/harmfulness")
    )
    np.testing.assert_array_equal(readout.reversion(res), expected)
    without = synthetic_results.result(
        {k: v for k, v in res.arrays.items() if not k.startswith("final/")}
        | {"metrics/helpful/harmfulness": np.ones((2, 3, 4, 3))},
        res.axes,
        4,
        res.diverged,
    )
    aligned = res.valid("metrics/safety/harmfulness")[..., -1]
    np.testing.assert_array_equal(
        readout.reversion(without, step=2),
        reversion_fraction(res.valid("metrics/benign/harmfulness")[..., 2], aligned, 1.0),
    )


def test_refusal_shift_sends_all_lost_refusal_to_harm_when_only_harm_rises():
    shape = (1, 3, 5)
    refusal = np.linspace(0.9, 0.4, 5) * np.ones(shape)
    harm = 0.05 + (0.9 - refusal)
    other = np.full(shape, 0.05)
    arrays = {
        "metrics/benign/refusal": refusal,
        "metrics/benign/harmfulness": harm,
        "metrics/benign/harmfulness_heldout": harm,
        "metrics/benign/other": other,
        "metrics/safety/refusal": np.full((1, 3, 2), 0.9),
        "metrics/safety/harmfulness": np.full((1, 3, 2), 0.05),
        "metrics/safety/other": np.full((1, 3, 2), 0.05),
    }
    res = synthetic_results.result(arrays, (Axis("world", ("main",)),), 3).select(world="main")
    shift = readout.refusal_shift(res, 10)
    assert shift["lost_refusal_to_harmful"]["mean"] == pytest.approx(1.0)
    assert shift["lost_refusal_to_other"]["mean"] == pytest.approx(0.0)
    assert shift["refusal_aligned"]["mean"] == pytest.approx(0.9)
    assert shift["harmfulness_step10"]["mean"] == pytest.approx(0.55)


def test_alignment_harm_correlation_and_specificity(res):
    cell = res.select(world="other", arm=("b", 1.0))
    align = cell["metrics/benign/alignment"][:, 1:]
    harm = cell["metrics/benign/harmfulness"][:, 1:]
    found = readout.alignment_harm_correlation(cell, 0.5)
    assert found["run_step_pairs"] == align.size
    assert found["fraction_above_null"] == np.mean(align > 0.5)
    rho = scipy.stats.spearmanr(align.ravel(), harm.ravel()).statistic
    assert found["spearman_alignment_harmfulness"] == pytest.approx(rho)
    specific = readout.alignment_specificity(cell, ["stacked", "from_pretrained"], 10, at=(1,))
    assert specific["weight_alignment_step10"] == mean_sd(
        cell.runs("metrics/benign/weight_alignment")[:, 4]
    )
    by_definition = cell["metrics/benign/alignment_by_definition"]
    assert specific["alignment_by_definition"]["from_pretrained"]["step10"] == mean_sd(
        by_definition[:, 4, 1]
    )


def test_arm_comparisons_step_by_step(res):
    arms = res.select(world="main").split("arm")
    named = {"low": arms[("a", 1.0)], "mid": arms[("b", 1.0)], "high": arms[("a", 3.0)]}
    by_step = readout.means_by_step(named, ["task_accuracy"], STEPS)
    assert [t for t, _ in by_step] == [1, 2, 5, 10]
    for t, means in by_step:
        task = named["mid"].runs("metrics/benign/task_accuracy", step=t)
        assert means["mid"]["task_accuracy"] == float(np.mean(task))
        values = [means[a]["task_accuracy"] for a in ("low", "mid", "high")]
        assert readout.ordered(means, ("low", "mid", "high"), "task_accuracy") == (
            values[0] < values[1] < values[2]
        )
    assert readout.ordered({"a": {"x": 1.0}, "b": {"x": 1.0}}, ("a", "b"), "x") is False
    summary = readout.arm_summary(named["low"], {"score": "task_accuracy"}, 10)
    assert summary["diverged_runs"] == [1] and summary["score"]["n"] == 3


def test_per_cell_and_harm_and_alignment(res):
    table = readout.per_cell(res, lambda cell: cell["drift"].shape, "{world}-{arm[0]}{arm[1]:g}")
    assert list(table) == ["main-a1", "main-b1", "main-a3", "other-a1", "other-b1", "other-a3"]
    assert set(table.values()) == {(4, 2, 3)}
    world = readout.harm_and_alignment(res.select(world="other", arm=("a", 1.0)), 5)
    assert world["harmfulness_pretrained"] == mean_sd(
        res["metrics/pretrain/harmfulness"][1, 0, :, -1]
    )
    assert world["harmfulness_aligned"] == mean_sd(res["metrics/benign/harmfulness"][1, 0, :, 0])
    assert {"alignment_step5", "harmfulness_heldout_step5"} <= set(world)
