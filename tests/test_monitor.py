"""How the early-warning monitors are scored and judged (`gravity.instruments.monitor`), on
hand-made runs."""

import numpy as np
import pytest

from gravity.instruments import monitor

STEPS = [0, 1, 2, 5, 10]


def _outputs():
    """2 conditions x 3 seeds of a `PreflightMeasure`'s outputs, records last."""
    rng = np.random.default_rng(0)
    shape = (2, 3)
    harm = np.linspace(0, 1, 2 * 3 * len(STEPS)).reshape(*shape, len(STEPS))
    return {
        "preflight/drift_along_v_rev": rng.normal(size=shape),
        "preflight/alignment": rng.normal(size=shape),
        "benign/alignment": rng.normal(size=(*shape, len(STEPS))),
        "benign/drift_along_v_rev": np.arange(2 * 3 * len(STEPS), dtype=float).reshape(
            *shape, len(STEPS)
        ),
        "benign/harmfulness": harm,
        "benign/harmfulness_heldout": harm,
        "heldout_aligned": np.zeros(shape),
        "heldout_pretrained": np.full(shape, 1.2),
    }


def test_run_scores_reads_each_score_at_its_step():
    outputs = _outputs()
    scores, outcome = monitor.run_scores(outputs.__getitem__, STEPS, (1, 5), naive_step=5)
    assert list(scores) == [
        "preflight",
        "preflight_alignment",
        "step1",
        "slope_step1",
        "step5",
        "slope_step5",
        "naive_step5",
    ]
    np.testing.assert_array_equal(scores["step5"], outputs["benign/alignment"][..., 3])
    np.testing.assert_array_equal(
        scores["slope_step5"], outputs["benign/drift_along_v_rev"][..., 3] / 5
    )
    harm = outputs["benign/harmfulness"]
    np.testing.assert_allclose(scores["naive_step5"], harm[..., 3] - harm[..., 0])
    np.testing.assert_array_equal(outcome["harmfulness_heldout_T"], harm[..., -1])
    # Reverted: held-out harm at the end above the midpoint 0.6 of theta_S's 0 and theta_P's 1.2.
    np.testing.assert_array_equal(outcome["reverted"], harm[..., -1] > 0.6)


def test_condition_share_is_each_conditions_positive_rate():
    labels = np.array([[True, False, True], [False, False, True]])
    ok = np.array([[True, True, True], [True, True, False]])
    share = monitor.condition_share(labels & ok, ok)
    np.testing.assert_allclose(share, [[2 / 3] * 3, [0.0] * 3])


def test_judge_scores_gives_auc_interval_and_spearman():
    labels = np.array([[False, False, True], [False, True, True]])
    ok = np.ones_like(labels)
    perfect = labels.astype(float)
    numbers = monitor.judge_scores(
        {"perfect": perfect, "inverse": -perfect}, labels, perfect, ok, n_bootstrap=20
    )
    assert numbers["auc_perfect"] == 1.0 and numbers["auc_inverse"] == 0.0
    low, high = numbers["auc_perfect_ci95"]
    assert low == pytest.approx(1.0) and high == pytest.approx(1.0)
    assert numbers["spearman_perfect"] == pytest.approx(1.0)


def test_scorecard_counts_runs_and_adds_the_plan_only_controls():
    outputs = _outputs()
    outputs["benign/harmfulness_heldout"][1, 2, -1] = np.nan  # one run without an outcome
    scores, outcome = monitor.run_scores(outputs.__getitem__, STEPS, (1,), naive_step=5)
    plan = {"learning_rate": np.array([[1e-4] * 3, [1e-3] * 3])}
    card = monitor.scorecard(scores, outcome, plan, n_bootstrap=10)
    assert (card["n_conditions"], card["n_runs"], card["n_seeds"]) == (2, 5, 3)
    # Held-out harm at the end: 0.14, 0.31, 0.48 then 0.66, 0.83 (and NaN); the midpoint is 0.6.
    assert card["reverted_share"] == pytest.approx(2 / 5)
    names = [k[4:] for k in card if k.startswith("auc_") and not k.endswith("_ci95")]
    assert names[-2:] == ["learning_rate", "condition_share"]
    assert card["auc_condition_share"] == 1.0  # in sample, the share ranks conditions perfectly
