"""Claims as data: what a claim says (the paper's or the anchor's words and number), the
statistic that measures it per seed, the control it is compared with, and the rule, written
before the run that judges it, that turns the estimate and its 95% interval into a verdict.
Prose explains a verdict; it never decides one (docs/verdicts.md).

A claim reads the experiment's JSON numbers (`figures/NAME.json`'s "numbers"). Its statistic
returns an `Estimate`, or something `as_estimate` turns into one: a {"mean", "sd", "n"} summary
(t interval), a list of per-seed values (percentile bootstrap over seeds), a conditions x seeds
list (bootstrap over conditions, then seeds), a stored estimate {"estimate", "interval", "n"}
or a paired comparison from `gravity.instruments.stats.paired_difference`. A bare number has no
interval, so a rule cannot judge it ("cannot test"); `exact` marks a number that has no sampling
noise.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gravity.instruments import stats
from gravity.validation import check

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
CANNOT_TEST = "cannot test"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, CANNOT_TEST)

NAN = float("nan")
_ABSENT = object()


class MissingInput(KeyError):
    """A number a claim needs is not in the experiment's JSON."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class Estimate:
    """What a statistic measured: the estimate, its 95% interval, how many seeds (None where the
    JSON does not say), how the interval was made, and the control's value where the statistic
    found one (a paired comparison knows the mean of its control arm)."""

    value: float
    interval: tuple[float, float] = (NAN, NAN)
    n: int | None = None
    test: str = ""
    control: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The stored form ({"estimate", "interval", "n", "test"}) that `as_estimate` reads."""
        return {
            "estimate": self.value,
            "interval": list(self.interval),
            "n": self.n,
            "test": self.test,
        }


@dataclasses.dataclass(frozen=True)
class Control:
    """What a claim is compared with, in words, and the control's value: a number, a JSON key
    to read it from (a summary's mean where the key holds one), or None for the value the
    statistic itself found (a paired comparison's control arm) or for no number at all."""

    words: str
    value: float | str | None = None


NO_CONTROL = Control("none")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Claim:
    """One claim an experiment tests.

    id: a short unique name; experiment: whose figures/NAME.json holds its numbers; statement:
    the paper's or the anchor's words with its number; paper_value: that number (None for a
    qualitative claim); statistic: numbers -> an Estimate or what `as_estimate` reads (None: the
    value stored at json_key); control: what it is compared with; rule: Estimate -> verdict;
    preregistered: True if the rule was committed before the run that judges it, False for post
    hoc; json_key: where the estimate lives under the JSON's "numbers" (a dotted key such as
    "mlp.alignment_step100"). Keyword-only, so a claim reads as a filled-in form.
    """

    id: str
    experiment: str
    statement: str
    paper_value: float | None = None
    statistic: Callable[[Mapping[str, Any]], Any] | None = None
    control: Control = NO_CONTROL
    rule: Callable[[Estimate], str]
    preregistered: bool
    json_key: str

    def __post_init__(self):
        for field in ("id", "experiment", "statement", "json_key"):
            value = getattr(self, field)
            check(isinstance(value, str) and value.strip() != "", f"Claim.{field}", "text", value)
        check(callable(self.rule), "Claim.rule", "a function of an Estimate", self.rule)
        check(
            self.statistic is None or callable(self.statistic),
            "Claim.statistic",
            "None or a function of the JSON numbers",
            self.statistic,
        )
        check(isinstance(self.preregistered, bool), "Claim.preregistered", "a bool", self.id)
        check(isinstance(self.control, Control), "Claim.control", "a Control", self.control)


# Rules: an estimate and its interval (and the control's value) -> a verdict. Each says in
# `words` what it decides, for the scoreboard.


def _side(interval: tuple[float, float], threshold: float) -> str:
    """Above `threshold` (the whole interval): supported; below: not supported; across it:
    inconclusive; no interval or no threshold: cannot test."""
    low, high = interval
    if not all(math.isfinite(x) for x in (low, high, threshold)):
        return CANNOT_TEST
    if low > threshold:
        return SUPPORTED
    if high < threshold:
        return NOT_SUPPORTED
    return INCONCLUSIVE


@dataclasses.dataclass(frozen=True)
class Exceeds:
    """Supported when the interval lies above `threshold`, not supported when below it."""

    threshold: float

    @property
    def words(self) -> str:
        return f"interval above {self.threshold:g}"

    def __call__(self, estimate: Estimate) -> str:
        return _side(estimate.interval, self.threshold)


@dataclasses.dataclass(frozen=True)
class Below:
    """Supported when the interval lies below `threshold`, not supported when above it."""

    threshold: float

    @property
    def words(self) -> str:
        return f"interval below {self.threshold:g}"

    def __call__(self, estimate: Estimate) -> str:
        low, high = estimate.interval
        return _side((-high, -low), -self.threshold)


@dataclasses.dataclass(frozen=True)
class BeatsControl:
    """For a paired difference (treatment - control on the same seeds, signed so that positive
    is the claimed direction): supported when its interval lies above `margin`."""

    margin: float = 0.0

    @property
    def words(self) -> str:
        return f"paired difference's interval above {self.margin:g}"

    def __call__(self, estimate: Estimate) -> str:
        return _side(estimate.interval, self.margin)


@dataclasses.dataclass(frozen=True)
class ExceedsControl:
    """Supported when the interval lies above the control's value (a null's 99th percentile,
    a never-harmful model's number); cannot test without that value."""

    @property
    def words(self) -> str:
        return "interval above the control's value"

    def __call__(self, estimate: Estimate) -> str:
        control = NAN if estimate.control is None else float(estimate.control)
        return _side(estimate.interval, control)


@dataclasses.dataclass(frozen=True)
class Within:
    """Supported when the interval lies inside [low, high] (the band that reproduces the
    paper's number), not supported when it misses the band, inconclusive when it straddles
    an edge."""

    low: float
    high: float

    @property
    def words(self) -> str:
        return f"interval inside [{self.low:g}, {self.high:g}]"

    def __call__(self, estimate: Estimate) -> str:
        low, high = estimate.interval
        if not all(math.isfinite(x) for x in (low, high)):
            return CANNOT_TEST
        if self.low <= low and high <= self.high:
            return SUPPORTED
        if high < self.low or low > self.high:
            return NOT_SUPPORTED
        return INCONCLUSIVE


@dataclasses.dataclass(frozen=True)
class Covers:
    """Supported when our interval contains `value` (the paper's number), not supported when
    it does not; inconclusive when the interval is wider than `max_width` (too loose to say)."""

    value: float
    max_width: float = math.inf

    @property
    def words(self) -> str:
        width = "" if math.isinf(self.max_width) else f", width <= {self.max_width:g}"
        return f"interval contains {self.value:g}{width}"

    def __call__(self, estimate: Estimate) -> str:
        low, high = estimate.interval
        if not all(math.isfinite(x) for x in (low, high)):
            return CANNOT_TEST
        if high - low > self.max_width:
            return INCONCLUSIVE
        return SUPPORTED if low <= self.value <= high else NOT_SUPPORTED


def exceeds(threshold: float) -> Exceeds:
    """The rule "the interval lies above `threshold`"."""
    return Exceeds(float(threshold))


def below(threshold: float) -> Below:
    """The rule "the interval lies below `threshold`"."""
    return Below(float(threshold))


def beats_control(margin: float = 0.0) -> BeatsControl:
    """The rule "the paired difference's interval lies above `margin`" (0: any improvement)."""
    return BeatsControl(float(margin))


def exceeds_control() -> ExceedsControl:
    """The rule "the interval lies above the control's value"."""
    return ExceedsControl()


def within(low: float, high: float) -> Within:
    """The rule "the interval lies inside [low, high]", the band that reproduces a number."""
    check(low <= high, "within(low, high)", "low <= high", (low, high))
    return Within(float(low), float(high))


def covers(value: float, max_width: float = math.inf) -> Covers:
    """The rule "the interval contains `value`" (the paper's number inside our range)."""
    return Covers(float(value), float(max_width))


# Reading the JSON numbers.


def value_at(numbers: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted `key` ("mlp.alignment_step100", "mlp.defences.0.name"). Names may
    themselves hold dots ("rehearsal_cut_in_reversion.0.05"): the longest name that leads to
    the rest of the key wins. Raises MissingInput if nothing matches."""
    found = _resolve(numbers, key.split("."))
    if found is _ABSENT:
        raise MissingInput(f"{key} is not in the JSON numbers")
    return found


def has_key(numbers: Mapping[str, Any], key: str) -> bool:
    """Whether `value_at(numbers, key)` finds a value."""
    return _resolve(numbers, key.split(".")) is not _ABSENT


def _resolve(node: Any, parts: list[str]) -> Any:
    if not parts:
        return node
    for cut in range(len(parts), 0, -1):
        child = _child(node, ".".join(parts[:cut]))
        if child is not _ABSENT:
            found = _resolve(child, parts[cut:])
            if found is not _ABSENT:
                return found
    return _ABSENT


def _child(node: Any, name: str) -> Any:
    if isinstance(node, Mapping):
        return node.get(name, _ABSENT)
    if isinstance(node, list) and name.isdigit() and int(name) < len(node):
        return node[int(name)]
    return _ABSENT


def _number(value: Any) -> float:
    """A JSON number as a float; null (how the JSON writes NaN) as NaN."""
    return NAN if value is None else float(value)


# Estimates from what a statistic returns.


def exact(value: float, test: str = "exact: no sampling noise") -> Estimate:
    """A number without sampling noise (a closed form, a count): its interval is itself."""
    value = _number(value)
    return Estimate(value, (value, value), None, test)


def from_summary(summary: Mapping[str, Any]) -> Estimate:
    """A {"mean", "sd" (ddof = 0), "n"} summary (`stats.mean_sd`) with its t interval."""
    mean, sd, n = _number(summary["mean"]), _number(summary["sd"]), summary["n"]
    interval = stats.t_interval(mean, sd, n)
    return Estimate(mean, tuple(interval), n, f"mean of {n} seeds, t interval")


def from_seeds(values_S) -> Estimate:
    """The mean of per-seed values (non-finite ones dropped: diverged runs) with a percentile
    bootstrap interval over seeds."""
    values = np.asarray(values_S, dtype=float).ravel()
    values = values[np.isfinite(values)]
    mean = float(values.mean()) if values.size else NAN
    interval = stats.percentile_bootstrap(values)
    return Estimate(
        mean, tuple(interval), int(values.size), f"mean of {values.size} seeds, bootstrap"
    )


def from_conditions(values_CxS) -> Estimate:
    """The mean over a conditions x seeds array with a bootstrap over conditions, then seeds."""
    values = np.asarray(values_CxS, dtype=float)
    if not np.isfinite(values).all():
        return Estimate(NAN, test="conditions x seeds hold non-finite runs: drop or impute them")
    n_conditions, n_seeds = values.shape
    interval = stats.hierarchical_bootstrap(values)
    test = f"mean of {n_conditions} conditions x {n_seeds} seeds, bootstrap of both"
    return Estimate(float(values.mean()), tuple(interval), int(values.size), test)


def from_paired(treatment_S, control_S, better: str = "higher") -> Estimate:
    """The treatment's gain over the control on shared seeds (`stats.paired_difference`):
    treatment - control where higher is better, control - treatment where lower is (as for
    harmfulness), so a positive estimate always favours the treatment. The control's value
    is its mean on the paired seeds."""
    check(better in ("higher", "lower"), "better", "'higher' or 'lower'", better)
    treatment = np.asarray(treatment_S, dtype=float).ravel()
    control = np.asarray(control_S, dtype=float).ravel()
    both = np.isfinite(treatment) & np.isfinite(control)
    control_mean = float(control[both].mean()) if both.any() else NAN
    arms = (treatment, control) if better == "higher" else (control, treatment)
    return dataclasses.replace(_paired(stats.paired_difference(*arms)), control=control_mean)


def _paired(result: Mapping[str, Any]) -> Estimate:
    """A stored paired comparison ({"mean", "interval", "n", "sign_p", ...}) as an Estimate."""
    words = [f"paired difference over {result.get('n')} seeds, bootstrap"]
    for key, name in (("sign_p", "sign p"), ("permutation_p", "sign-flip p")):
        if result.get(key) is not None:
            words.append(f"{name} = {_number(result[key]):.2g}")
    if result.get("effect_size") is not None:
        words.append(f"effect {_number(result['effect_size']):.2g} sd")
    low, high = (_number(x) for x in result["interval"])
    return Estimate(_number(result["mean"]), (low, high), result.get("n"), "; ".join(words))


def as_estimate(result: Any) -> Estimate:
    """An Estimate from what a statistic returned (see the module's docstring for the forms)."""
    if isinstance(result, Estimate):
        return result
    if result is None:
        return Estimate(NAN, test="null in the JSON")
    if isinstance(result, Mapping):
        return _from_mapping(result)
    if isinstance(result, int | float | np.number) and not isinstance(result, bool):
        return Estimate(float(result), test="one number; store per-seed values or an interval")
    values = np.asarray(result, dtype=float)
    if values.ndim == 1:
        return from_seeds(values)
    if values.ndim == 2:
        return from_conditions(values)
    raise ValueError(f"a statistic returned an array of shape {values.shape}: 1-d or 2-d only")


def _from_mapping(result: Mapping[str, Any]) -> Estimate:
    if "estimate" in result:
        low, high = (_number(x) for x in (result.get("interval") or (None, None)))
        test = result.get("test") or "as stored"
        return Estimate(_number(result["estimate"]), (low, high), result.get("n"), test)
    if {"mean", "sd", "n"} <= result.keys():
        return from_summary(result)
    if {"mean", "interval"} <= result.keys():
        return _paired(result)
    raise ValueError(f"cannot read an estimate from a mapping with keys {sorted(result)}")


# Statistics that read the JSON numbers.


@dataclasses.dataclass(frozen=True)
class Reported:
    """The value stored at `key`, read by `as_estimate`; a bare number with a "KEY_ci95"
    sibling ([low, high], as early_warning writes its AUCs) takes that as its interval."""

    key: str

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)

    def __call__(self, numbers: Mapping[str, Any]) -> Any:
        value = value_at(numbers, self.key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if has_key(numbers, f"{self.key}_ci95"):
                low, high = (_number(x) for x in value_at(numbers, f"{self.key}_ci95"))
                return Estimate(float(value), (low, high), None, "as reported, with its interval")
        return value


@dataclasses.dataclass(frozen=True)
class Paired:
    """The treatment's gain over the control, seed by seed, from the per-seed values at
    `treatment_key` and `control_key` (`from_paired`; `better`: "higher" or "lower")."""

    treatment_key: str
    control_key: str
    better: str = "higher"

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.treatment_key, self.control_key)

    def __call__(self, numbers: Mapping[str, Any]) -> Estimate:
        treatment = value_at(numbers, self.treatment_key)
        return from_paired(treatment, value_at(numbers, self.control_key), self.better)


@dataclasses.dataclass(frozen=True)
class ExactAt:
    """The number at `key`, taken as exact (no sampling noise: a closed form, a count)."""

    key: str

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)

    def __call__(self, numbers: Mapping[str, Any]) -> Estimate:
        return exact(value_at(numbers, self.key))


def reported(key: str) -> Reported:
    """The statistic "the value stored at `key`" (what a claim uses when it names none)."""
    return Reported(key)


def paired(treatment_key: str, control_key: str, *, better: str = "higher") -> Paired:
    """The statistic "the treatment's gain over the control on the same seeds" from two
    per-seed lists; `better="lower"` where less is better (harmfulness)."""
    check(better in ("higher", "lower"), "paired(better)", "'higher' or 'lower'", better)
    return Paired(treatment_key, control_key, better)


def exact_at(key: str) -> ExactAt:
    """The statistic "the number at `key`, exact"."""
    return ExactAt(key)


# Judging.


def keys_read(claim: Claim) -> tuple[str, ...]:
    """The JSON keys `claim` reads: its json_key, its control's key, and its statistic's
    `keys` where it declares them (a JSON without one of them is stale)."""
    keys = [claim.json_key, *getattr(claim.statistic, "keys", ())]
    if isinstance(claim.control.value, str):
        keys.append(claim.control.value)
    return tuple(dict.fromkeys(keys))


def evaluate(claim: Claim, numbers: Mapping[str, Any]) -> dict[str, Any]:
    """The verdict record of `claim` on an experiment's JSON numbers: {"id", "experiment",
    "statement", "paper", "estimate", "interval", "n", "test", "rule", "control",
    "control_value", "verdict", "preregistered", "json_key", "reason"}. Missing or NaN inputs,
    no interval, or a control value the rule needs and lacks give "cannot test" and a reason."""
    statistic = claim.statistic or reported(claim.json_key)
    try:
        estimate = as_estimate(statistic(numbers))
    except MissingInput as missing:
        return _record(claim, Estimate(NAN), CANNOT_TEST, str(missing))
    estimate, control_note = _with_control(claim.control, estimate, numbers)
    reason = _untestable(estimate)
    if reason:
        return _record(claim, estimate, CANNOT_TEST, reason)
    verdict = claim.rule(estimate)
    check(verdict in VERDICTS, f"the rule of claim {claim.id}", f"one of {VERDICTS}", verdict)
    if verdict == CANNOT_TEST:
        reason = control_note or f"the rule could not be applied ({_words(claim.rule)})"
    return _record(claim, estimate, verdict, reason)


def _untestable(estimate: Estimate) -> str:
    """Why no rule can judge `estimate` (no number, no interval), or "" if one can."""
    if not math.isfinite(estimate.value):
        return f"the estimate is missing or NaN: {estimate.test or 'no statistic'}"
    if not all(math.isfinite(x) for x in estimate.interval):
        return f"no interval: {estimate.test}"
    return ""


def _with_control(
    control: Control, estimate: Estimate, numbers: Mapping[str, Any]
) -> tuple[Estimate, str]:
    """The estimate with the control's value from the claim (a number or a JSON key) where it
    names one; a key not in the JSON leaves NaN and says so."""
    if control.value is None:
        return estimate, ""
    if not isinstance(control.value, str):
        return dataclasses.replace(estimate, control=float(control.value)), ""
    try:
        value = value_at(numbers, control.value)
    except MissingInput as missing:
        return dataclasses.replace(estimate, control=NAN), f"control: {missing}"
    value = value["mean"] if isinstance(value, Mapping) else value
    return dataclasses.replace(estimate, control=_number(value)), ""


def _words(rule: Callable) -> str:
    return getattr(rule, "words", None) or getattr(rule, "__name__", repr(rule))


def _record(claim: Claim, estimate: Estimate, verdict: str, reason: str) -> dict[str, Any]:
    return {
        "id": claim.id,
        "experiment": claim.experiment,
        "statement": claim.statement,
        "paper": claim.paper_value,
        "estimate": estimate.value,
        "interval": list(estimate.interval),
        "n": estimate.n,
        "test": estimate.test,
        "rule": _words(claim.rule),
        "control": claim.control.words,
        "control_value": estimate.control,
        "verdict": verdict,
        "preregistered": claim.preregistered,
        "json_key": claim.json_key,
        "reason": reason,
    }
