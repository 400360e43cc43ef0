"""How the early-warning monitors are scored and judged (`gravity.instruments.monitor`), on
hand-made runs, and the early-warning claims' verdicts on synthetic ones."""

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.instruments import claims, monitor, stats

STEPS = [0, 1, 2, 5, 10]
CLAIMS = Path(__file__).resolve().parent.parent / "experiments" / "claims" / "early_warning.toml"


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


def _seed_only_by_pairs(labels_CxS, conditions, seeds):
    """The seed-only AUC by its definition, pair by pair over a resample's runs: a positive run
    of seed s beats a negative of seed t when s has more positives than t over the conditions
    other than the two runs' own; one seed's runs tie."""
    wins = pairs = 0.0
    for c, s in itertools.product(conditions, seeds):
        for c2, t in itertools.product(conditions, seeds):
            if not labels_CxS[c, s] or labels_CxS[c2, t]:
                continue
            keep = [k for k in range(labels_CxS.shape[0]) if k not in (c, c2)]
            gap = labels_CxS[keep, s].sum() - labels_CxS[keep, t].sum()
            pairs += 1
            wins += 0.5 if s == t else float(gap > 0) + 0.5 * (gap == 0)
    return wins / pairs if pairs else np.nan


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.floats(0, 1), st.integers(0, 10_000))
def test_seed_only_auc_is_its_pairwise_definition_on_each_resample(n_c, n_s, rate, seed):
    labels = np.random.default_rng(seed).random((n_c, n_s)) < rate
    conditions, seeds = stats.crossed_resamples(n_c, n_s, n_resamples=3, seed=seed)
    found = monitor.seed_only_auc(
        labels, stats.draw_counts(conditions, n_c), stats.draw_counts(seeds, n_s)
    )
    expected = [_seed_only_by_pairs(labels, c, s) for c, s in zip(conditions, seeds, strict=True)]
    np.testing.assert_allclose(found, expected)
    once = monitor.seed_only_auc(labels, np.ones((1, n_c)), np.ones((1, n_s)))
    np.testing.assert_allclose(once, [_seed_only_by_pairs(labels, range(n_c), range(n_s))])


def test_seed_only_auc_sees_the_seed_and_not_the_plan_where_a_leave_one_out_share_would():
    """Where the plan alone decides, the seed-only control is at chance (0.5); a per-run
    leave-one-out share of the seed would fall far below it (each positive's own condition
    is left out of its seed's share). Where the seed alone decides, it is perfect."""
    plan_decides = np.repeat(np.array([[1], [0], [1], [0], [1]], bool), 4, axis=1)
    seed_decides = np.tile(np.array([0, 0, 1, 1], bool), (5, 1))
    ones = np.ones((1, 5)), np.ones((1, 4))
    assert monitor.seed_only_auc(plan_decides, *ones)[0] == 0.5
    assert monitor.seed_only_auc(seed_decides, *ones)[0] == 1.0
    hits = plan_decides.sum(axis=0, keepdims=True) - plan_decides
    assert stats.roc_auc(hits / 4, plan_decides) == 0.0


def _crossed_card(labels_CxS, preflight_CxS, n_bootstrap=300):
    outcome = {"harmfulness_heldout_T": labels_CxS.astype(float), "reverted": labels_CxS}
    plan = {"learning_rate": np.zeros(labels_CxS.shape)}
    differences = [("preflight", "condition_share"), ("seed_share", "condition_share")]
    return monitor.crossed_scorecard(
        {"preflight": preflight_CxS}, outcome, plan, differences, n_bootstrap
    )


def test_crossed_scorecard_judges_each_score_and_its_differences_on_complete_conditions():
    rng = np.random.default_rng(3)
    labels = rng.random((30, 6)) < 0.5
    preflight = labels + rng.normal(scale=0.8, size=labels.shape)
    preflight[0, 0] = np.nan  # a score missing for one run: left out of that score's AUC
    card = _crossed_card(labels, preflight)
    aucs, differences = card["auc_over_seeds_and_conditions"], card["auc_differences"]
    assert list(aucs) == ["preflight", "learning_rate", "condition_share", "seed_share"]
    assert aucs["preflight"]["estimate"] == stats.roc_auc(preflight, labels)
    assert aucs["learning_rate"]["estimate"] == 0.5 and aucs["preflight"]["n"] == 6
    low, high = aucs["preflight"]["interval"]
    assert 0.5 < low < aucs["preflight"]["estimate"] < high
    gain = differences["preflight_minus_condition_share"]["estimate"]
    assert gain == aucs["preflight"]["estimate"] - aucs["condition_share"]["estimate"]
    np.testing.assert_allclose(card["reverted_share_by_seed"], labels.mean(axis=0))
    # A condition whose run from one seed has no outcome leaves the crossed grid whole.
    labels_missing = labels.astype(float)
    labels_missing[4, 2] = np.nan
    outcome = {"harmfulness_heldout_T": labels_missing, "reverted": labels}
    fewer = monitor.crossed_scorecard({"preflight": preflight}, outcome, {}, [], 50)
    assert fewer["n_conditions_complete"] == 29


def _world(decides: str, seen_by_preflight: str):
    """Synthetic runs (40 conditions x 8 seeds) in which the seed, the plan or both decide
    reversion, and a pre-flight score that sees it all ("everything"), nothing ("noise"), or
    ranks runs as the plan bound does ("plan_bound")."""
    rng = np.random.default_rng(0)
    plan, seed, noise = rng.normal(size=(40, 1)), rng.normal(size=(1, 8)), rng.normal(size=(40, 8))
    latent = {
        "seed": 3 * seed + 0.3 * plan + 0.3 * noise,
        "plan": 3 * plan + 0.3 * seed + 0.3 * noise,
        "both": plan + seed + noise,
    }[decides]
    labels = latent > np.median(latent)
    preflight = {
        "everything": latent,
        "noise": rng.normal(size=latent.shape),
        "plan_bound": monitor.condition_share(labels, np.ones_like(labels)),
    }[seen_by_preflight]
    return labels, preflight


@pytest.mark.parametrize(
    ("decides", "seen", "preflight_verdict", "theta_s_verdict"),
    [
        ("seed", "everything", claims.SUPPORTED, claims.SUPPORTED),
        ("plan", "noise", claims.NOT_SUPPORTED, claims.NOT_SUPPORTED),
        ("both", "plan_bound", claims.INCONCLUSIVE, claims.INCONCLUSIVE),
    ],
)
def test_the_claims_of_early_warning_give_each_verdict_on_synthetic_runs(
    decides, seen, preflight_verdict, theta_s_verdict
):
    """The claim file's rules on `crossed_scorecard`'s numbers. Pre-flight: one that sees the
    seed beats the plan bound where the seed decides; noise loses where the plan decides; one
    that ranks as the bound does ties it. Seed-only: beats the bound where the seed decides,
    loses where the plan does, and neither where both weigh alike (seed-only AUC 0.045 above
    the bound, interval about [-0.2, 0.2])."""
    card = _crossed_card(*_world(decides, seen))
    numbers = {"mlp": {**card, "auc_condition_share": 0.5}}
    judged = {
        claim.id: claims.evaluate(claim, numbers)["verdict"]
        for claim in claims.load(CLAIMS, "early_warning")
        if claim.id.endswith("-mlp")
    }
    assert judged == {
        "ew-preflight-beats-plan-mlp": preflight_verdict,
        "ew-theta-s-decides-mlp": theta_s_verdict,
    }


def test_the_claims_of_early_warning_cannot_test_without_an_interval_or_the_numbers():
    mlp = [c for c in claims.load(CLAIMS, "early_warning") if c.id.endswith("-mlp")]
    stored = {"estimate": 0.1, "interval": [None, None], "n": 16, "test": "x"}
    for claim in mlp:
        numbers = {"mlp": {"auc_differences": {claim.json_key.rsplit(".", 1)[1]: stored}}}
        assert claims.evaluate(claim, numbers)["verdict"] == claims.CANNOT_TEST
        assert claims.evaluate(claim, {"mlp": {}})["verdict"] == claims.CANNOT_TEST
