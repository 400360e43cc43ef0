"""Claims as data: every rule gives each of its verdicts on synthetic estimates, and `evaluate`
reads every stored form of an estimate, says "cannot test" for missing or NaN inputs, and
returns the record the scoreboard prints."""

import math

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
def test_exceeds_control_compares_with_the_controls_value(bounds, control, verdict):
    assert claims.exceeds_control()(interval(*bounds, control=control)) == verdict


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
