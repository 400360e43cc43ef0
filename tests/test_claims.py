"""Claims as data: every rule gives each of its verdicts on synthetic estimates, and `evaluate`
reads every stored form of an estimate, says "cannot test" for missing or NaN inputs, and
returns the record the scoreboard prints."""

import math
import re
import types
from pathlib import Path

import numpy as np
import pytest

from gravity.instruments import claims
from gravity.instruments.claims import CANNOT_TEST, INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Estimate
from gravity.validation import ConfigError

NAN = float("nan")


def interval(low, high, control=None):
    return Estimate((low + high) / 2, (low, high), 8, "synthetic", control)


@pytest.mark.parametrize(
    "bounds, verdict",
    [((0.6, 0.8), SUPPORTED), ((0.2, 0.4), NOT_SUPPORTED), ((0.4, 0.6), INCONCLUSIVE)],
)
def test_exceeds_and_below_are_mirror_images(bounds, verdict):
    assert claims.exceeds(0.5)(interval(*bounds)) == verdict
    mirrored = {SUPPORTED: NOT_SUPPORTED, NOT_SUPPORTED: SUPPORTED}.get(verdict, verdict)
    assert claims.below(0.5)(interval(*bounds)) == mirrored
    assert claims.exceeds(0.5)(interval(NAN, 0.8)) == CANNOT_TEST


@pytest.mark.parametrize(
    "bounds, verdict",
    [((0.01, 0.2), SUPPORTED), ((-0.3, -0.1), NOT_SUPPORTED), ((-0.1, 0.2), INCONCLUSIVE)],
)
def test_beats_control_reads_the_paired_difference_against_zero(bounds, verdict):
    assert claims.beats_control()(interval(*bounds)) == verdict
    assert claims.beats_control(margin=0.5)(interval(0.01, 0.2)) == NOT_SUPPORTED


@pytest.mark.parametrize(
    "bounds, control, verdict",
    [
        ((0.9, 0.95), 0.8, SUPPORTED),
        ((0.6, 0.7), 0.8, NOT_SUPPORTED),
        ((0.75, 0.85), 0.8, INCONCLUSIVE),
        ((0.9, 0.95), None, CANNOT_TEST),
        ((0.9, 0.95), NAN, CANNOT_TEST),
    ],
)
def test_exceeds_and_below_control_compare_with_the_controls_value(bounds, control, verdict):
    estimate = interval(*bounds, control=control)
    assert claims.exceeds_control()(estimate) == verdict
    mirrored = {SUPPORTED: NOT_SUPPORTED, NOT_SUPPORTED: SUPPORTED}.get(verdict, verdict)
    assert claims.below_control()(estimate) == mirrored
    assert claims.below_control().words == "interval below the control's value"


@pytest.mark.parametrize(
    "bounds, verdict",
    [
        ((0.64, 0.66), SUPPORTED),
        ((0.80, 0.90), NOT_SUPPORTED),
        ((0.40, 0.55), NOT_SUPPORTED),
        ((0.66, 0.75), INCONCLUSIVE),
        ((NAN, NAN), CANNOT_TEST),
    ],
)
def test_within_a_band_around_the_papers_number(bounds, verdict):
    assert claims.within(0.6, 0.7)(interval(*bounds)) == verdict


@pytest.mark.parametrize(
    "bounds, verdict",
    [
        ((0.63, 0.66), SUPPORTED),
        ((0.90, 0.95), NOT_SUPPORTED),
        ((0.10, 0.99), INCONCLUSIVE),
        ((NAN, 0.66), CANNOT_TEST),
    ],
)
def test_covers_the_papers_number_unless_the_interval_is_too_loose(bounds, verdict):
    assert claims.covers(0.648, max_width=0.5)(interval(*bounds)) == verdict


def test_rules_say_in_words_what_they_decide():
    assert claims.exceeds(0.5).words == "interval above 0.5"
    assert claims.within(0.6, 0.7).words == "interval inside [0.6, 0.7]"
    with pytest.raises(ConfigError, match="low <= high"):
        claims.within(0.7, 0.6)


NUMBERS = {
    "mlp": {
        "alignment_step100": {"mean": 0.92, "sd": 0.01, "n": 4},
        "null_p99_same_basis": 0.80,
        "auc": 0.75,
        "auc_ci95": [0.6, 0.9],
        "harm_block": [0.20, 0.25, 0.22, 0.30, 0.18, 0.21],
        "harm_none": [0.70, 0.72, 0.69, 0.75, 0.71, 0.70],
        "stored": {"estimate": 0.4, "interval": [0.3, 0.5], "n": 6, "test": "bootstrap"},
        "by_condition": [[0.1, 0.2], [0.3, 0.4], [0.2, 0.25]],
        "cut.0.05": 0.8,
        "diverged": None,
        "one_seed": {"mean": 0.5, "sd": 0.0, "n": 1},
        "defences": [{"name": "baseline", "harm": 0.7}],
    }
}


def claim(json_key="mlp.alignment_step100", rule=None, **fields):
    fields = {"preregistered": True, "experiment": "toy", "statement": "a toy claim", **fields}
    return claims.Claim(id="c", json_key=json_key, rule=rule or claims.exceeds(0.5), **fields)


def test_value_at_reads_dotted_names_lists_and_names_with_dots():
    assert claims.value_at(NUMBERS, "mlp.cut.0.05") == 0.8
    assert claims.value_at(NUMBERS, "mlp.defences.0.name") == "baseline"
    assert claims.value_at(NUMBERS, "mlp.diverged") is None
    assert not claims.has_key(NUMBERS, "mlp.defences.1.name")
    with pytest.raises(claims.MissingInput, match="mlp.nowhere is not in the JSON"):
        claims.value_at(NUMBERS, "mlp.nowhere")


def test_a_stored_summary_is_judged_on_its_t_interval_against_the_control():
    control = claims.Control("same-basis null p99", "mlp.null_p99_same_basis")
    record = claims.evaluate(claim(rule=claims.exceeds_control(), control=control), NUMBERS)
    assert record["verdict"] == SUPPORTED and record["n"] == 4
    assert record["control_value"] == 0.80 and record["control"] == "same-basis null p99"
    assert record["interval"][0] < 0.92 < record["interval"][1]
    assert set(record) == {
        *("id", "experiment", "statement", "paper", "estimate", "interval", "n", "test"),
        *("rule", "control", "control_value", "verdict", "preregistered", "json_key", "reason"),
    }


@pytest.mark.parametrize(
    "json_key, estimate, n",
    [
        ("mlp.auc", 0.75, None),  # a number with its KEY_ci95 sibling
        ("mlp.stored", 0.4, 6),  # an Estimate's stored form
        ("mlp.harm_none", np.mean(NUMBERS["mlp"]["harm_none"]), 6),  # per-seed values
        ("mlp.by_condition", 0.2416666, 6),  # conditions x seeds
    ],
)
def test_every_stored_form_of_an_estimate_is_read(json_key, estimate, n):
    record = claims.evaluate(claim(json_key, rule=claims.exceeds(0.0)), NUMBERS)
    assert record["estimate"] == pytest.approx(estimate) and record["n"] == n
    assert record["verdict"] == SUPPORTED and record["reason"] == ""


def test_a_paired_statistic_compares_arms_on_the_same_seeds():
    """Blocking lowers harmfulness: control - treatment is positive on every seed."""
    statistic = claims.paired("mlp.harm_block", "mlp.harm_none", better="lower")
    paired = claim("mlp.harm_block", rule=claims.beats_control(), statistic=statistic)
    record = claims.evaluate(paired, NUMBERS)
    assert record["verdict"] == SUPPORTED and record["n"] == 6 and record["estimate"] > 0.4
    assert record["control_value"] == pytest.approx(np.mean(NUMBERS["mlp"]["harm_none"]))
    assert "sign p = 0.031" in record["test"]  # 2 / 2^6
    assert claims.keys_read(paired) == ("mlp.harm_block", "mlp.harm_none")
    higher = claims.evaluate(claim(statistic=claims.paired(*statistic.keys)), NUMBERS)
    assert higher["estimate"] == pytest.approx(-record["estimate"])


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"json_key": "mlp.null_p99_same_basis"}, "no interval: one number"),
        ({"json_key": "mlp.diverged"}, "the estimate is missing or NaN"),
        ({"json_key": "mlp.one_seed"}, "no interval: mean of 1 seeds"),
        ({"json_key": "mlp.nowhere"}, "mlp.nowhere is not in the JSON"),
        (
            {"rule": claims.exceeds_control(), "control": claims.Control("a null", "mlp.gone")},
            "control: mlp.gone is not in the JSON",
        ),
    ],
)
def test_missing_or_nan_inputs_cannot_be_tested(fields, reason):
    record = claims.evaluate(claim(**fields), NUMBERS)
    assert record["verdict"] == CANNOT_TEST and record["reason"].startswith(reason)


def test_an_exact_number_is_its_own_interval():
    exact = claim("mlp.null_p99_same_basis", statistic=claims.exact_at("mlp.null_p99_same_basis"))
    record = claims.evaluate(exact, NUMBERS)
    assert record["interval"] == [0.8, 0.8] and record["verdict"] == SUPPORTED


def test_a_claim_is_checked_when_it_is_written_and_a_rule_must_give_a_verdict():
    with pytest.raises(ConfigError, match="Claim.statement"):
        claim(statement="")
    with pytest.raises(ConfigError, match="Claim.preregistered"):
        claim(preregistered="yes")
    with pytest.raises(ConfigError, match="the rule of claim c"):
        claims.evaluate(claim(rule=lambda estimate: "true"), NUMBERS)
    assert math.isnan(claims.as_estimate(None).value)


# The statistics and rules that claim files name (experiments/claims/*.toml).


def test_an_untested_claim_carries_its_reason_to_the_scoreboard():
    untested = claim(statistic=claims.untested("needs 784-pixel inputs"))
    record = claims.evaluate(untested, NUMBERS)
    assert record["verdict"] == CANNOT_TEST and record["reason"].endswith("784-pixel inputs")
    assert claims.keys_read(untested) == ("mlp.alignment_step100",)


def test_values_at_expands_stars_in_order_and_fixed_part_is_what_must_exist():
    table = {"t": {"row1": {"a": 1, "b": 2}, "row2": {"a": 3, "b": 4}}, "steps": [{"ok": True}]}
    assert claims.values_at(table, "t.*.*") == [1, 2, 3, 4]
    assert claims.values_at(table, "t.*.b") == [2, 4]
    assert claims.values_at(table, "steps.*.ok") == [True]
    assert claims.values_at(table, "t.row1.a") == [1]
    assert claims.fixed_part("t.*.b") == "t" and claims.fixed_part("t.row1") == "t.row1"


FIT = {"fit": {"barrier": 0.4, "barrier_ci": [0.1, 0.7], "n_cells": 90}}


def test_a_stored_fit_takes_its_interval_and_count_from_named_siblings():
    found = claims.stored_fit("fit.barrier", "barrier_ci", "n_cells", "OLS")(FIT)
    assert (found.value, found.interval, found.n, found.test) == (0.4, (0.1, 0.7), 90, "OLS")
    assert claims.stored_fit("fit.barrier", "barrier_ci").keys == ("fit.barrier", "fit.barrier_ci")
    assert claims.exceeds(0)(found) == SUPPORTED and claims.exceeds(0.5)(found) == INCONCLUSIVE


def test_a_binomial_share_is_exact_and_needs_the_grid_its_count_holds_for():
    numbers = {"share": 0.9, "by_lr": {"a": 1, "b": 2}}
    found = claims.binomial_share("share", 200, "by_lr", 2)(numbers)
    assert found.n == 200 and found.interval[0] < 0.9 < found.interval[1]
    assert claims.below(0.5)(found) == NOT_SUPPORTED and claims.exceeds(0.8)(found) == SUPPORTED
    assert found.interval == pytest.approx(claims.binomial_interval(0.9, 200))
    other_grid = claims.binomial_share("share", 200, "by_lr", 5)(numbers)
    assert other_grid.value == 0.9 and np.isnan(other_grid.interval).all()


def test_fisher_z_counts_units_from_a_pattern_and_matches_bonett_wright():
    numbers = {"rho": 0.5, "cells": {"0": {"n": 20}, "0.5": {"n": 20}}}
    found = claims.fisher_z("rho", "cells.*.n")(numbers)
    half = 1.96 * math.sqrt((1 + 0.25 / 2) / 37)
    expected = (math.tanh(math.atanh(0.5) - half), math.tanh(math.atanh(0.5) + half))
    assert found.n == 40 and found.interval == pytest.approx(expected)
    assert claims.exceeds(0)(found) == SUPPORTED
    assert claims.exceeds(0)(claims.fisher_z("rho", 5)({"rho": 0.5})) == INCONCLUSIVE


def test_a_ratio_of_sweep_effects_has_a_delta_method_interval():
    def summaries(first, last):
        return {"d1": {"mean": first, "sd": 0.3, "n": 10}, "d4": {"mean": last, "sd": 0.3, "n": 10}}

    effect, variance = claims.sweep_effect(summaries(1.0, 0.2))
    assert effect == pytest.approx(0.8) and variance == pytest.approx(2 * 0.09 / 9)
    ratio, (low, high) = claims.delta_method_ratio(0.2, 0.01, 0.8, 0.0)
    assert ratio == 0.25 and (low, high) == pytest.approx((0.25 - 1.96 * 0.125, 0.25 + 0.25 * 0.98))
    numbers = {"control": summaries(0.5, 0.4), "main": summaries(1.0, 0.2)}
    found = claims.ratio_of_effects("control", "main")(numbers)
    assert found.value == pytest.approx(0.125) and found.n is None
    assert claims.below(0.5)(found) == SUPPORTED and claims.exceeds(0.5)(found) == NOT_SUPPORTED


def test_a_stored_r2_is_bootstrapped_over_the_cells_it_kept():
    rng = np.random.default_rng(0)
    measured = rng.normal(size=(4, 5))
    tables = {"m": measured, "p": measured + 0.05 * rng.normal(size=(4, 5))}
    tables["gap"] = np.r_[np.ones((3, 5)), np.zeros((1, 5))]
    cells = {
        name: {f"r{i}": {f"c{j}": float(v) for j, v in enumerate(row)} for i, row in enumerate(t)}
        for name, t in tables.items()
    }
    numbers = {"cells": cells, "r2": 0.99}
    everything = claims.r_squared_bootstrap("r2", "cells.p.*.*", "cells.m.*.*")(numbers)
    kept = claims.r_squared_bootstrap("r2", "cells.p.*.*", "cells.m.*.*", "cells.gap.*.*", 0.5)
    assert everything.n == 20 and kept(numbers).n == 15 and kept(numbers).value == 0.99
    assert claims.exceeds(0)(everything) == SUPPORTED
    assert kept.keys == ("r2", "cells.p", "cells.m", "cells.gap")


def frontier_point(name, strength, harm, task, sd=0.01):
    summary = {"sd": sd, "n": 8}
    return {
        "name": name,
        "strength": strength,
        "harmfulness_heldout_T": {"mean": harm, **summary},
        "task_accuracy_T": {"mean": task, **summary},
    }


POINTS = [
    frontier_point("baseline", 0.0, 0.7, 0.95),
    frontier_point("block", 1.0, 0.2, 0.95),
    frontier_point("random_block", 1.0, 0.6, 0.95),
    frontier_point("rehearsal", 0.5, 0.05, 0.95),
    frontier_point("shallower_basin", 0.0, 0.001, 0.95),  # the world that never complied
]


def test_the_best_point_at_equal_task_cost_leaves_the_changed_world_out():
    numbers = {"mlp": {"defences": POINTS}}
    best = claims.best_point("mlp.defences", "block@1", ["shallower_basin"])(numbers)
    assert best.value == pytest.approx(0.05) and best.control == pytest.approx(0.2)
    assert claims.below_control()(best) == SUPPORTED
    block = claims.point("mlp.defences", "block@1", "random_block@1")(numbers)
    assert block.value == pytest.approx(0.2) and claims.below_control()(block) == SUPPORTED


def test_a_point_the_json_lacks_cannot_be_tested():
    statistic = claims.point("mlp.defences", "block@1", "random_block@1")
    lacking = claim("mlp.defences", rule=claims.below_control(), statistic=statistic)
    record = claims.evaluate(lacking, {"mlp": {"defences": POINTS[:2]}})
    assert record["verdict"] == CANNOT_TEST and "random_block@1" in record["reason"]


def summary(mean: float, sd: float = 0.01, n: int = 16) -> dict:
    return {"mean": mean, "sd": sd, "n": n}


def witness_cell(p_witness: float, p_pretrained: float, returned: float, share: float) -> dict:
    helpful = {"witness_answer": summary(p_witness), "pretrained_answer": summary(p_pretrained)}
    return {
        "answers": {"helpful": helpful},
        "returned_to_pretrained_answer": summary(returned * share),
        "returned_to_witness_answer": summary(returned * (1 - share)),
        "share_to_pretrained_answer": summary(share),
    }


WITNESS_GATES = [
    {"difference": ["answers.helpful.witness_answer", "answers.helpful.pretrained_answer"]}
    | {"above": 0.1},
    {"sum": ["returned_to_pretrained_answer", "returned_to_witness_answer"], "above": 0.05},
]


def test_the_first_passing_cell_is_read_only_where_every_gate_passes():
    """The witness gate: the witness learned its answer, and mass returns; longest
    pretraining first."""
    cells = {
        "pretrain2400_witness100": witness_cell(0.29, 0.32, 0.1, 0.92),  # did not learn
        "pretrain2400_witness400": witness_cell(0.76, 0.07, 0.003, 0.3),  # nothing returns
        "pretrain200_witness400": witness_cell(0.50, 0.11, 0.4, 0.85),
        "pretrain800_witness400": witness_cell(0.60, 0.10, 0.3, 0.90),
    }
    gated = claims.first_passing_cell(
        "by_cell", "share_to_pretrained_answer", WITNESS_GATES, (-1, 1), "none learned"
    )
    found = gated({"by_cell": cells})
    assert found.value == 0.90 and found.test.startswith("pretrain800_witness400")
    assert claims.exceeds(0.5)(found) == SUPPORTED
    del cells["pretrain800_witness400"], cells["pretrain200_witness400"]
    nothing = gated({"by_cell": cells})
    assert math.isnan(nothing.value) and nothing.test == "none learned"
    assert claims.lower_bound(summary(0.5), summary(0.2), -1) < 0.3


def test_a_gate_is_a_sum_or_a_difference_with_a_threshold():
    with pytest.raises(ConfigError, match="a gate"):
        claims.first_passing_cell("k", "v", [{"product": ["a", "b"], "above": 0}])


def regime_numbers(distances) -> dict:
    regime = {
        "fitted": {"alignment_step1": 0.305, "alignment_step20": 0.741},
        "fitted_paper": {"alignment_step1": 0.429, "alignment_step20": 0.647},
        "squared_distance_by_cell": distances,
        "predicted": {"alignment_step100": summary(0.649, 0.056, 8)},
    }
    main = {"alignment_step1": summary(0.656, 0.07), "alignment_step20": summary(0.86, 0.014)}
    return {"paper_regime": regime, "mlp": main}


def test_a_best_fit_is_read_only_where_no_other_cell_fits_within_noise():
    statistic = claims.unique_best_fit(
        "paper_regime.predicted.alignment_step100",
        "paper_regime.squared_distance_by_cell",
        "paper_regime.fitted",
        "paper_regime.fitted_paper",
        "mlp",
        "paper_regime.predicted.alignment_step100.n",
    )
    unique = claims.as_estimate(statistic(regime_numbers([[0.024, 0.2], [0.3, 0.4]])))
    assert unique.value == 0.649 and claims.covers(0.648)(unique) == SUPPORTED
    flat = statistic(regime_numbers([[0.024, 0.026], [0.3, 0.4]]))
    assert math.isnan(flat.value) and flat.test.startswith("2 of 4 cells")


def regime_cells(*means) -> dict:
    """A calibration's cells within noise, each predicting `means` (a summary each), the first
    the best fit's."""
    cells = [{"predicted": {"alignment_step100": summary(m, 0.05, 8)}} for m in means]
    predicted = cells[0]["predicted"] if cells else {"alignment_step100": summary(NAN)}
    return {"paper_regime": {"within_noise": {"cells": cells}, "predicted": predicted}}


CELL_RANGE = claims.cell_range(
    "paper_regime.within_noise.cells.*.predicted.alignment_step100",
    "paper_regime.predicted.alignment_step100",
)


@pytest.mark.parametrize(
    "means, rule, verdict",
    [
        ((0.70, 0.60, 0.66), claims.covers(0.648), SUPPORTED),
        ((0.70, 0.66, 0.75), claims.covers(0.648), NOT_SUPPORTED),
        ((0.70, 0.40, 0.90), claims.covers(0.648, max_width=0.2), INCONCLUSIVE),
        ((0.70,), claims.covers(0.648), NOT_SUPPORTED),  # one cell: a point
    ],
)
def test_a_calibrations_prediction_is_its_range_over_the_cells_within_noise(means, rule, verdict):
    found = CELL_RANGE(regime_cells(*means))
    assert found.value == 0.70 and found.n == len(means)
    assert found.interval == (min(means), max(means))
    assert rule(found) == verdict
    assert CELL_RANGE.keys == (
        "paper_regime.within_noise.cells",
        "paper_regime.predicted.alignment_step100",
    )


def test_a_calibration_without_a_finite_cell_cannot_be_tested():
    claim = claims.Claim(
        id="regime",
        experiment="reversion",
        statement="s",
        statistic=CELL_RANGE,
        rule=claims.covers(0.648),
        preregistered=False,
        json_key="paper_regime.predicted.alignment_step100",
    )
    assert claims.evaluate(claim, regime_cells(NAN))["verdict"] == CANNOT_TEST
    spearman = claims.cell_range("cells.*", "best")({"cells": [0.2, 0.5, None], "best": 0.5})
    assert spearman.interval == (0.2, 0.5) and spearman.n == 2


def unrefuse_numbers(benign, control, other=0.7, harm=0.05) -> dict:
    """Per-seed cosines beyond the un-refuse directions, and what the witness does at theta_U."""
    answers = {
        "theta_s": {"harmfulness": summary(0.04), "refusal": summary(0.95)},
        "fixed_answer": {
            "harmfulness": summary(harm),
            "refusal": summary(1 - other - harm),
            "other": summary(other),
        },
    }
    beyond = {"per_seed": list(benign), "control_per_seed": list(control)}
    return {"mlp": {"unrefuse_witness": {"beyond": beyond, "answers": answers}}}


ANSWERS = "mlp.unrefuse_witness.answers"
GATED = claims.gated_paired(
    "mlp.unrefuse_witness.beyond.per_seed",
    "mlp.unrefuse_witness.beyond.control_per_seed",
    [
        {"difference": [f"{ANSWERS}.fixed_answer.other", f"{ANSWERS}.fixed_answer.refusal"]}
        | {"above": 0.0},
        {"difference": [f"{ANSWERS}.theta_s.harmfulness", f"{ANSWERS}.fixed_answer.harmfulness"]}
        | {"above": -0.05},
    ],
    otherwise="did not un-refuse",
)
"""The claim file's gates: harmless answers over REFUSE at theta_U, and at most 0.05 harm
added to theta_S's."""


@pytest.mark.parametrize(
    "benign, verdict",
    [
        ((0.5, 0.6, 0.55, 0.7, 0.5, 0.65), SUPPORTED),
        ((0.1, 0.2, 0.15, 0.0, 0.1, 0.05), NOT_SUPPORTED),
        ((0.2, 0.6, 0.1, 0.5, 0.2, 0.45), INCONCLUSIVE),
    ],
)
def test_beyond_unrefuse_is_a_paired_gain_over_the_control(benign, verdict):
    control = (0.3, 0.35, 0.3, 0.4, 0.25, 0.35)
    found = GATED(unrefuse_numbers(benign, control))
    assert found.n == 6 and found.control == pytest.approx(np.mean(control))
    assert found.value == pytest.approx(np.mean(benign) - np.mean(control))
    assert claims.beats_control()(found) == verdict


@pytest.mark.parametrize("other, harm", [(0.3, 0.05), (0.7, 0.2)])
def test_beyond_unrefuse_cannot_be_tested_where_the_witness_did_not_unrefuse(other, harm):
    """More REFUSE than harmless answers at theta_U, or harm added: the direction is not
    un-refuse without harm, so nothing is judged."""
    numbers = unrefuse_numbers((0.5,) * 6, (0.3,) * 6, other=other, harm=harm)
    found = GATED(numbers)
    assert math.isnan(found.value) and found.test.startswith("did not un-refuse")
    assert GATED.keys[:3] == (
        "mlp.unrefuse_witness.beyond.per_seed",
        "mlp.unrefuse_witness.beyond.control_per_seed",
        f"{ANSWERS}.fixed_answer.other",
    )


def test_an_exact_share_counts_the_true_entries():
    steps = [{"harmfulness_heldout": ordered} for ordered in (True, True, False, True)]
    found = claims.exact_share("mlp.steps.*.harmfulness_heldout")({"mlp": {"steps": steps}})
    assert found.value == 0.75 and found.interval == (0.75, 0.75)
    assert claims.covers(1.0)(found) == NOT_SUPPORTED and claims.exact_share("a.*").keys == ("a",)


# Claim files.

CLAIM_FILE = """
[[claim]]
id = "toy-above-null"
statement = "drift aligns with v_rev above the null"
paper = 0.648
key = "mlp.alignment_step100"
control = { words = "same-basis null p99", value = "mlp.null_p99_same_basis" }
rule = { name = "exceeds_control" }
preregistered = true
note = "why: the rule is the docstring's"

[[claim]]
id = "toy-band"
statement = "the AUC lies in the band"
key = "mlp.auc"
statistic = { name = "stored_fit", interval = "auc_ci95" }
rule = { name = "within", low = 0.5, high = 1 }
preregistered = false

[[claim]]
id = "toy-module"
statement = "a module's own statistic"
key = "mlp.harm_block"
statistic = { function = "mean_of", scale = 2 }
rule = { name = "exceeds", threshold = 0.1 }
preregistered = false

[claim.control]
words = "none"
"""


def mean_of(numbers, scale=1):
    return scale * np.asarray(claims.value_at(numbers, "mlp.harm_block"))


ToyModule = types.ModuleType("toy", "stands for an experiment module")
ToyModule.mean_of = mean_of


def write_claims(tmp_path, text=CLAIM_FILE, name="toy"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_a_claim_file_reads_as_claims_of_the_experiment_it_is_named_after(tmp_path):
    loaded = claims.load(write_claims(tmp_path), module=ToyModule)
    assert [c.experiment for c in loaded] == ["toy"] * 3
    first, band, own = loaded
    assert first.paper_value == 0.648 and first.note.startswith("why")
    assert first.control == claims.Control("same-basis null p99", "mlp.null_p99_same_basis")
    assert claims.evaluate(first, NUMBERS)["verdict"] == SUPPORTED
    assert band.statistic == claims.stored_fit("mlp.auc", "auc_ci95")  # key: the claim's
    assert claims.evaluate(band, NUMBERS)["verdict"] == SUPPORTED
    assert claims.evaluate(own, NUMBERS)["estimate"] == pytest.approx(2 * 0.21, rel=0.1)
    assert claims.load(write_claims(tmp_path), "other", ToyModule)[0].experiment == "other"


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('key = "mlp.auc"', 'kye = "mlp.auc"', "field = 'kye'.*did you mean key"),
        ('name = "within"', 'name = "withn"', "rule name = 'withn'.*did you mean within"),
        ('"stored_fit"', '"stored_fits"', "statistic name.*did you mean stored_fit"),
        ("low = 0.5", "lo = 0.5", "parameter = 'lo'.*did you mean low"),
        ("low = 0.5, ", "", "parameters = \\['low'\\] is invalid: all of low, high"),
        ('"mean_of"', '"mean_off"', "function of toy = 'mean_off'.*did you mean mean_of"),
        ('[claim.control]\nwords = "none"', '[claim.control]\nwords = "none"\nvalu = 1', "valu"),
        ("preregistered = false\n", "", "fields = \\['preregistered'\\] is invalid"),
        ('[[claim]]\nid = "toy-band"', '[[claims]]\nid = "toy-band"', "top-level table"),
        ('id = "toy-band"', 'id = "toy-above-null"', "claim ids = \\['toy-above-null'\\]"),
        ("[[claim]]", "[[claim]", "cannot be read as a claim file"),
    ],
)
def test_a_claim_file_is_refused_in_one_line_naming_the_valid_choices(tmp_path, old, new, message):
    assert old in CLAIM_FILE
    path = write_claims(tmp_path, CLAIM_FILE.replace(old, new, 1))
    with pytest.raises(ConfigError, match=message) as refused:
        claims.load(path, module=ToyModule)
    assert "\n" not in str(refused.value)


def test_a_function_statistic_needs_a_module_and_takes_only_its_parameters(tmp_path):
    with pytest.raises(ConfigError, match="a module to look in"):
        claims.load(write_claims(tmp_path))
    path = write_claims(tmp_path, CLAIM_FILE.replace("scale = 2", "factor = 2"))
    with pytest.raises(ConfigError, match="statistic mean_of: parameter = 'factor'"):
        claims.load(path, module=ToyModule)


def test_a_papers_number_is_a_number(tmp_path):
    path = write_claims(tmp_path, CLAIM_FILE.replace("paper = 0.648", 'paper = "high"'))
    with pytest.raises(ConfigError, match="paper = 'high' is invalid: a number"):
        claims.load(path)


def test_the_registries_name_what_the_docs_list():
    docs = (Path(__file__).resolve().parent.parent / "docs" / "verdicts.md").read_text()
    for name in [*claims.RULES, *claims.STATISTICS]:
        assert f"`{name}" in docs, f"docs/verdicts.md does not list {name}"


def test_the_claim_file_that_docs_verdicts_shows_loads(tmp_path):
    docs = (Path(__file__).resolve().parent.parent / "docs" / "verdicts.md").read_text()
    (example,) = re.findall(r"```toml\n(.*?)```", docs, re.S)
    loaded = claims.load(write_claims(tmp_path, example, "reversion"))
    assert [claim.experiment for claim in loaded] == ["reversion", "reversion"]
    assert loaded[1].statistic == claims.binomial_share(
        "escape.large_batch.escaped_fraction", 200, "escape.batch_factor_by_lr", 5
    )
