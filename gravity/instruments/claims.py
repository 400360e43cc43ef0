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

An experiment's claims are data, `experiments/claims/NAME.toml`, which `load` reads: each claim
names its rule from `RULES` and its statistic from `STATISTICS` (or a function of the
experiment's module), with their parameters.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import scipy.stats

from gravity.instruments import frontier, stats
from gravity.instruments.theory import r_squared
from gravity.validation import ConfigError, check, check_choice

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
    "mlp.alignment_step100"); note: why it is pre-registered or post hoc, and the caveats of its
    statistic. Keyword-only, so a claim reads as a filled-in form.
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
    note: str = ""

    def __post_init__(self):
        for field in ("id", "experiment", "statement", "json_key"):
            value = getattr(self, field)
            check(isinstance(value, str) and value.strip() != "", f"Claim.{field}", "text", value)
        check(isinstance(self.note, str), "Claim.note", "text", self.note)
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
class BelowControl:
    """Supported when the interval lies below the control's value (less harm than the control
    arm), not supported when above it; cannot test without that value."""

    @property
    def words(self) -> str:
        return "interval below the control's value"

    def __call__(self, estimate: Estimate) -> str:
        control = NAN if estimate.control is None else float(estimate.control)
        return Below(control)(estimate)


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


def below_control() -> BelowControl:
    """The rule "the interval lies below the control's value"."""
    return BelowControl()


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


def values_at(numbers: Mapping[str, Any], pattern: str) -> list[Any]:
    """The values at a dotted key whose parts may be `*`: every entry of the mapping or list
    there, in its order ("cell_means.gap.*.*" flattens a table row by row; "mlp.per_overlap.*
    .reversion_step100.n" reads one field of every cell). A key without `*` gives one value.
    Raises MissingInput where a part is absent."""
    parts = pattern.split(".")
    if "*" not in parts:
        return [value_at(numbers, pattern)]
    star = parts.index("*")
    node = value_at(numbers, ".".join(parts[:star])) if star else numbers
    entries = node.values() if isinstance(node, Mapping) else node
    rest = ".".join(parts[star + 1 :])
    return [found for entry in entries for found in (values_at(entry, rest) if rest else [entry])]


def fixed_part(pattern: str) -> str:
    """The part of a dotted key before its first `*` (the key itself where it has none): what a
    JSON must hold for the pattern to be read."""
    parts = pattern.split(".")
    return ".".join(parts[: parts.index("*")]) if "*" in parts else pattern


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


# Statistics for claims that a stored number alone cannot judge: each reads the JSON layout
# an experiment writes and gives the number an interval (or says why it cannot).

Z95 = 1.96
"""The normal quantile of a two-sided 95% interval, as the experiments' intervals use it."""


def _sibling(key: str, name: str) -> str:
    """The key of `name` in the mapping that holds `key` ("a.b.value", "ci" -> "a.b.ci")."""
    return ".".join([*key.split(".")[:-1], name])


def _count(numbers: Mapping[str, Any], n: int | str) -> int:
    """A count given as a number, or read from a key (a key with `*` parts: their sum)."""
    return n if isinstance(n, int) else int(sum(values_at(numbers, n)))


@dataclasses.dataclass(frozen=True)
class Untested:
    """A claim that cannot be tested yet (a control not run, a score not computed): no
    estimate, and `reason`, which the scoreboard prints."""

    reason: str

    @property
    def keys(self) -> tuple[str, ...]:
        return ()

    def __call__(self, numbers: Mapping[str, Any]) -> Estimate:
        return Estimate(NAN, test=self.reason)


@dataclasses.dataclass(frozen=True)
class StoredFit:
    """A fitted number stored with its 95% interval beside it: the value at `key`, the interval
    [low, high] at `interval` and the count at `n` (names in the mapping that holds `key`)."""

    key: str
    interval: str
    n: str | None = None
    test: str = "a stored fit, its stored interval"

    @property
    def keys(self) -> tuple[str, ...]:
        names = (self.interval,) if self.n is None else (self.interval, self.n)
        return (self.key, *(_sibling(self.key, name) for name in names))

    def __call__(self, numbers: Mapping[str, Any]) -> Estimate:
        low, high = (_number(x) for x in value_at(numbers, _sibling(self.key, self.interval)))
        n = None if self.n is None else value_at(numbers, _sibling(self.key, self.n))
        return Estimate(_number(value_at(numbers, self.key)), (low, high), n, self.test)


@dataclasses.dataclass(frozen=True)
class BinomialShare:
    """A share of runs at `key` with its exact (Clopper-Pearson) binomial interval over `runs`.
    The JSON stores no count, so `runs` holds for one grid only: where `grid_key` is named, the
    count is trusted only when the entries there number `grid_size` (else: cannot test)."""

    key: str
    runs: int
    grid_key: str | None = None
    grid_size: int | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,) if self.grid_key is None else (self.key, self.grid_key)

    def __call__(self, numbers: Mapping[str, Any]) -> Estimate:
        share = value_at(numbers, self.key)
        if self.grid_key is not None and len(value_at(numbers, self.grid_key)) != self.grid_size:
            return Estimate(share, test="not the full-size grid: the count is unknown")
        interval = binomial_interval(share, self.runs)
        return Estimate(share, interval, self.runs, "share of runs, exact binomial")


def binomial_interval(share: float, runs: int) -> tuple[float, float]:
    """The exact (Clopper-Pearson) 95% interval of a share of `runs` runs."""
    found = scipy.stats.binomtest(round(share * runs), runs).proportion_ci()
    return (found.low, found.high)


@dataclasses.dataclass(frozen=True)
class FisherZ:
    """A stored Spearman rho at `key` with a Fisher-z interval over `n` units (a count, or a
    key whose values sum to it), se by Bonett and Wright (2000)."""

    key: str
    n: int | str

    @property
    def keys(self) -> tuple[str, ...]:
        extra = () if isinstance(self.n, int) else (fixed_part(self.n),)
        return (self.key, *extra)

    def __call__(self, numbers: Mapping[str, Any]) -> Estimate:
        rho, n = value_at(numbers, self.key), _count(numbers, self.n)
        return Estimate(rho, fisher_z_interval(rho, n), n, f"Spearman over {n}, Fisher z")


def fisher_z_interval(rho: float, n: int) -> tuple[float, float]:
    """The 95% interval of a Spearman correlation over n units: tanh(atanh(rho) +- 1.96 se),
    se = sqrt((1 + rho^2 / 2) / (n - 3)) (Bonett and Wright 2000)."""
    half = Z95 * np.sqrt((1 + rho**2 / 2) / (n - 3))
    low, high = np.tanh(np.arctanh(rho) + np.array([-half, half]))
    return (float(low), float(high))


def sweep_effect(summaries: Mapping[str, Any] | list) -> tuple[float, float]:
    """The effect across a sweep, from its {mean, sd, n} summaries in sweep order: the first's
    mean minus the last's, and that difference's variance (the two unpaired; sd has ddof 0, so
    a mean's variance is sd^2 / (n - 1))."""
    first, *_, last = summaries.values() if isinstance(summaries, Mapping) else summaries
    variance = sum(c["sd"] ** 2 / (c["n"] - 1) for c in (first, last))
    return first["mean"] - last["mean"], variance


def delta_method_ratio(
    numerator: float, numerator_variance: float, denominator: float, denominator_variance: float
) -> tuple[float, tuple[float, float]]:
    """A ratio r = a / b of two independent estimates and its 95% delta-method interval:
    r +- 1.96 sqrt(var a + r^2 var b) / |b|."""
    ratio = numerator / denominator
    half = Z95 * np.sqrt(numerator_variance + ratio**2 * denominator_variance) / abs(denominator)
    return ratio, (ratio - half, ratio + half)


@dataclasses.dataclass(frozen=True)
class RatioOfEffects:
    """The ratio of two effects across a sweep (`sweep_effect` of the summaries at
    `numerator` and `denominator`) with a delta-method interval, unpaired."""

    numerator: str
    denominator: str

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.numerator, self.denominator)

    def __call__(self, numbers: Mapping[str, Any]) -> Estimate:
        top, bottom = (sweep_effect(value_at(numbers, k)) for k in self.keys)
        ratio, interval = delta_method_ratio(*top, *bottom)
        return Estimate(ratio, interval, None, "delta method over runs, unpaired")


@dataclasses.dataclass(frozen=True)
class RSquaredBootstrap:
    """A stored R^2 of a prediction as it stands (`key`) with a percentile bootstrap interval
    over cells: `predicted` and `measured` are keys with `*` parts that read the cells in one
    order; where `subset` is named, only the cells whose value there is >= `at_least` count.
    n: the cells (the JSON keeps no per-seed cells to resample seeds)."""

    key: str
    predicted: str
    measured: str
    subset: str | None = None
    at_least: float = -math.inf

    @property
    def keys(self) -> tuple[str, ...]:
        patterns = (self.predicted, self.measured, self.subset)
        return (self.key, *(fixed_part(p) for p in patterns if p is not None))

    def __call__(self, numbers: Mapping[str, Any]) -> Estimate:
        predicted, measured = (
            np.asarray(values_at(numbers, p), dtype=float) for p in (self.predicted, self.measured)
        )
        keep = np.ones(predicted.shape, bool)
        if self.subset is not None:
            keep = np.asarray(values_at(numbers, self.subset), dtype=float) >= self.at_least
        interval = stats.bootstrap_interval(_r2_as_predicted, predicted[keep], measured[keep])
        test = "cells, bootstrap"
        return Estimate(value_at(numbers, self.key), tuple(interval), int(keep.sum()), test)


def _r2_as_predicted(predicted, measured) -> float:
    return r_squared(predicted, measured)["r2_as_predicted"]


@dataclasses.dataclass(frozen=True)
class LabelledPoint:
    """One point of the list of frontier points at `key` (`frontier.frontier_point`), picked by
    its label "name@strength", or with `label` None the best at equal cost
    (`frontier.best_at_equal_cost`, leaving out the names in `exclude`): its `field` summary
    (t interval over seeds) beside the point labelled `beside`, whose mean is the control.
    Unpaired: the JSON keeps each point's {mean, sd, n}."""

    key: str
    label: str | None
    beside: str
    exclude: tuple[str, ...] = ()
    field: str = frontier.HARM

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)

    def __call__(self, numbers: Mapping[str, Any]) -> Estimate:
        points = value_at(numbers, self.key)
        summaries = {frontier.point_label(p): p[self.field] for p in points}
        label = self.label
        if label is None:
            best = frontier.best_at_equal_cost(points, self.exclude, lower=self.field)
            label = (best or {}).get("label")
        if label not in summaries or self.beside not in summaries:
            raise MissingInput(f"{self.key} lacks {label} or {self.beside}")
        found = from_summary(summaries[label])
        return dataclasses.replace(found, control=summaries[self.beside]["mean"])


@dataclasses.dataclass(frozen=True)
class Gate:
    """A condition a cell must meet: the conservative 95% lower bound of first + sign x second
    (two {mean, sd, n} summaries at keys inside the cell) above `above`."""

    first: str
    second: str
    sign: int
    above: float

    def passes(self, cell: Mapping[str, Any]) -> bool:
        first, second = value_at(cell, self.first), value_at(cell, self.second)
        return lower_bound(first, second, self.sign) > self.above


def lower_bound(first: Mapping, second: Mapping, sign: int) -> float:
    """A conservative 95% lower bound of first + sign x second from {mean, sd, n} summaries:
    the t interval with the sum of the sds (the sd of a sum is at most the sum of the sds)."""
    mean = first["mean"] + sign * second["mean"]
    return stats.t_interval(mean, first["sd"] + second["sd"], first["n"])[0]


@dataclasses.dataclass(frozen=True)
class FirstPassingCell:
    """The summary at `value` of the first cell, of the mapping of cells at `key`, that passes
    every gate; the cells are ordered by the integers in their names, each times its sign in
    `order` ([-1, 1]: the first number descending, then the second ascending). No cell passes:
    cannot test, for `otherwise`."""

    key: str
    value: str
    gates: tuple[Gate, ...]
    order: tuple[int, ...] = ()
    otherwise: str = "no cell passes the gates"

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)

    def _rank(self, name: str) -> tuple[int, ...]:
        found = map(int, re.findall(r"\d+", name))
        return tuple(sign * number for sign, number in zip(self.order, found, strict=False))

    def __call__(self, numbers: Mapping[str, Any]) -> Estimate:
        cells = value_at(numbers, self.key)
        for name in sorted(cells, key=self._rank):
            if all(gate.passes(cells[name]) for gate in self.gates):
                found = from_summary(value_at(cells[name], self.value))
                return dataclasses.replace(found, test=f"{name}, {found.test}")
        return Estimate(NAN, test=self.otherwise)


@dataclasses.dataclass(frozen=True)
class UniqueBestFit:
    """A calibration's prediction at `key`, read only where its best-fit cell is the only one
    within noise. A cell is within noise when its squared distance to the target (the grid at
    `distances`) is within 1.96 SE of the minimum; SE by the delta method from the best cell's
    fitted values (`fitted`: {name: value}) minus the target's (`target`: {name: value}), each
    name's per-seed sd (the summary at `noise`.name) and the cells' seeds (`seeds`, a count or
    a key): SE^2 = 4 sum (f - t)^2 sd^2 / seeds. More than one cell within noise: cannot test."""

    key: str
    distances: str
    fitted: str
    target: str
    noise: str
    seeds: int | str

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key, self.distances, self.fitted, self.target)

    def __call__(self, numbers: Mapping[str, Any]) -> Any:
        fitted, target = value_at(numbers, self.fitted), value_at(numbers, self.target)
        error = np.asarray([fitted[name] for name in fitted]) - [target[name] for name in fitted]
        sd = np.asarray([value_at(numbers, f"{self.noise}.{name}")["sd"] for name in fitted])
        distance = np.asarray(value_at(numbers, self.distances))
        seeds = _count(numbers, self.seeds)
        edge = distance.min() + Z95 * 2 * np.sqrt(np.sum((error * sd) ** 2) / seeds)
        near = int(np.sum(distance <= edge))
        if near == 1:
            return value_at(numbers, self.key)
        name = self.key.rsplit(".", 1)[-1]
        test = f"{near} of {distance.size} cells within noise (distance <= {edge:.4f}); {name} "
        return Estimate(NAN, test=test + "is kept for the fitted one only")


@dataclasses.dataclass(frozen=True)
class CellRange:
    """A calibration's prediction over the cells it cannot tell apart: the values at `key` (a
    `*` key, one {mean, ...} summary or number per cell within noise of the best fit) as the
    range [lowest mean, highest mean], the value at `best` (the best-fit cell's) as the
    estimate, n the number of cells. The range is over cells, not a sampling interval over
    seeds; one cell gives a point. No finite cell: cannot test."""

    key: str
    best: str

    @property
    def keys(self) -> tuple[str, ...]:
        return (fixed_part(self.key), self.best)

    def __call__(self, numbers: Mapping[str, Any]) -> Estimate:
        means = np.asarray([_mean_of(v) for v in values_at(numbers, self.key)], dtype=float)
        means = means[np.isfinite(means)]
        if means.size == 0:
            return Estimate(NAN, test="no cell within noise has a finite value")
        low, high = float(means.min()), float(means.max())
        test = (
            f"range over the {means.size} cells within noise (their means; width {high - low:.3g})"
        )
        return Estimate(_mean_of(value_at(numbers, self.best)), (low, high), int(means.size), test)


def _mean_of(value: Any) -> float:
    """A summary's mean, or a number itself (null: NaN)."""
    return _number(value["mean"] if isinstance(value, Mapping) else value)


@dataclasses.dataclass(frozen=True)
class GatedPaired:
    """`Paired` (the treatment's gain over the control on the same seeds), judged only where
    every gate holds (`Gate`, keys from the JSON's top: e.g. the control really is what it is
    built to be); a gate that fails: cannot test, for `otherwise`."""

    treatment_key: str
    control_key: str
    gates: tuple[Gate, ...]
    better: str = "higher"
    otherwise: str = "a gate fails"

    @property
    def keys(self) -> tuple[str, ...]:
        gated = [key for gate in self.gates for key in (gate.first, gate.second)]
        return (self.treatment_key, self.control_key, *gated)

    def __call__(self, numbers: Mapping[str, Any]) -> Estimate:
        failed = [i for i, gate in enumerate(self.gates) if not gate.passes(numbers)]
        if failed:
            return Estimate(NAN, test=f"{self.otherwise} (gate {', '.join(map(str, failed))})")
        treatment = value_at(numbers, self.treatment_key)
        return from_paired(treatment, value_at(numbers, self.control_key), self.better)


@dataclasses.dataclass(frozen=True)
class ExactShare:
    """The share of true values at `key` (a key with `*` parts, e.g. one flag of every
    recorded step), exact: a count over a fixed set, with no sampling to resample."""

    key: str

    @property
    def keys(self) -> tuple[str, ...]:
        return (fixed_part(self.key),)

    def __call__(self, numbers: Mapping[str, Any]) -> Estimate:
        return exact(np.mean(values_at(numbers, self.key)))


def untested(reason: str) -> Untested:
    """The statistic of a claim that cannot be tested yet, and why."""
    check(isinstance(reason, str) and reason.strip() != "", "untested(reason)", "text", reason)
    return Untested(reason)


def stored_fit(
    key: str, interval: str, n: str | None = None, test: str = "a stored fit, its stored interval"
) -> StoredFit:
    """The statistic "the fitted value at `key` with its interval stored beside it"."""
    return StoredFit(key, interval, n, test)


def binomial_share(
    key: str, runs: int, grid_key: str | None = None, grid_size: int | None = None
) -> BinomialShare:
    """The statistic "a share of `runs` runs, exact binomial interval"."""
    check(isinstance(runs, int) and runs >= 1, "binomial_share(runs)", "a positive count", runs)
    return BinomialShare(key, runs, grid_key, grid_size)


def fisher_z(key: str, n: int | str) -> FisherZ:
    """The statistic "a stored Spearman rho over n units, Fisher-z interval"."""
    return FisherZ(key, n)


def ratio_of_effects(numerator: str, denominator: str) -> RatioOfEffects:
    """The statistic "one effect across a sweep over another, delta-method interval"."""
    return RatioOfEffects(numerator, denominator)


def r_squared_bootstrap(
    key: str,
    predicted: str,
    measured: str,
    subset: str | None = None,
    at_least: float = -math.inf,
) -> RSquaredBootstrap:
    """The statistic "a stored R^2 as predicted, bootstrap over the cells"."""
    return RSquaredBootstrap(key, predicted, measured, subset, float(at_least))


def point(key: str, label: str, beside: str, field: str = frontier.HARM) -> LabelledPoint:
    """The statistic "the frontier point labelled `label` beside the one labelled `beside`"."""
    return LabelledPoint(key, label, beside, (), field)


def best_point(
    key: str, beside: str, exclude: tuple[str, ...] = (), field: str = frontier.HARM
) -> LabelledPoint:
    """The statistic "the best frontier point at equal cost beside the one labelled `beside`"
    (picked from the data it is judged on, so its interval is optimistic)."""
    return LabelledPoint(key, None, beside, tuple(exclude), field)


def first_passing_cell(
    key: str,
    value: str,
    gates: list[Mapping[str, Any]],
    order: tuple[int, ...] = (),
    otherwise: str = "no cell passes the gates",
) -> FirstPassingCell:
    """The statistic "the first cell that passes every gate": each gate a mapping
    {"sum": [first, second], "above": x} or {"difference": [first, second], "above": x}."""
    built = tuple(_gate(gate) for gate in gates)
    return FirstPassingCell(key, value, built, tuple(order), otherwise)


def _gate(gate: Mapping[str, Any]) -> Gate:
    signs = {"sum": 1, "difference": -1}
    combine = [name for name in gate if name in signs]
    allowed = "{sum or difference = [first, second], above = number}"
    valid = len(combine) == 1 and set(gate) == {combine[0], "above"}
    check(valid and len(gate[combine[0]]) == 2, "a gate", allowed, dict(gate))
    first, second = gate[combine[0]]
    return Gate(first, second, signs[combine[0]], float(gate["above"]))


def unique_best_fit(
    key: str, distances: str, fitted: str, target: str, noise: str, seeds: int | str
) -> UniqueBestFit:
    """The statistic "a calibration's prediction, where one cell alone fits within noise"."""
    return UniqueBestFit(key, distances, fitted, target, noise, seeds)


def cell_range(key: str, best: str) -> CellRange:
    """The statistic "a calibration's prediction as the range over the cells within noise"."""
    return CellRange(key, best)


def gated_paired(
    treatment_key: str,
    control_key: str,
    gates: list[Mapping[str, Any]],
    better: str = "higher",
    otherwise: str = "a gate fails",
) -> GatedPaired:
    """The statistic "the treatment's gain over the control on the same seeds, where every gate
    holds": each gate {"sum" or "difference": [first, second], "above": x} on {mean, sd, n}
    summaries at JSON keys (the conservative lower bound of first +- second above x)."""
    check(better in ("higher", "lower"), "gated_paired(better)", "'higher' or 'lower'", better)
    built = tuple(_gate(gate) for gate in gates)
    return GatedPaired(treatment_key, control_key, built, better, otherwise)


def exact_share(key: str) -> ExactShare:
    """The statistic "the share of true values at `key`, exact"."""
    return ExactShare(key)


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


# Claim files: one experiment's claims as data (experiments/claims/NAME.toml, docs/verdicts.md).

RULES: dict[str, Callable[..., Callable[[Estimate], str]]] = {
    "exceeds": exceeds,
    "below": below,
    "beats_control": beats_control,
    "exceeds_control": exceeds_control,
    "below_control": below_control,
    "within": within,
    "covers": covers,
}
"""The rules a claim file names, by name; a rule's parameters are its function's arguments."""

STATISTICS: dict[str, Callable[..., Callable[[Mapping[str, Any]], Any]]] = {
    "reported": reported,
    "paired": paired,
    "exact_at": exact_at,
    "untested": untested,
    "stored_fit": stored_fit,
    "binomial_share": binomial_share,
    "fisher_z": fisher_z,
    "ratio_of_effects": ratio_of_effects,
    "r_squared_bootstrap": r_squared_bootstrap,
    "point": point,
    "best_point": best_point,
    "first_passing_cell": first_passing_cell,
    "unique_best_fit": unique_best_fit,
    "exact_share": exact_share,
    "cell_range": cell_range,
    "gated_paired": gated_paired,
}
"""The statistics a claim file names, by name; a statistic's parameters are its function's
arguments. `{ function = "NAME" }` names a function of the experiment's module instead."""

FIELDS = (
    *("id", "statement", "paper", "key", "statistic", "control", "rule", "preregistered"),
    "note",
)
"""The fields of a claim file's `[[claim]]` table."""
REQUIRED = ("id", "statement", "key", "rule", "preregistered")
"""The fields every claim must fill in."""


def load(
    path: str | Path, experiment: str | None = None, module: ModuleType | None = None
) -> tuple[Claim, ...]:
    """The claims of a claim file (TOML, one `[[claim]]` table per claim; docs/verdicts.md),
    each of `experiment` (default: the file's name, experiments/claims/NAME.toml). `module`
    holds the functions that `statistic = { function = "NAME" }` names. An unknown or missing
    field, rule, statistic or parameter is refused in one line that lists the valid ones."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path} cannot be read as a claim file: {error}") from None
    for name in document:
        check_choice(name, ["claim"], f"{path}: a top-level table")
    entries = document.get("claim", [])
    check(isinstance(entries, list) and entries != [], f"{path}: claim", "[[claim]] tables", path)
    found = tuple(
        _claim(entry, f"{path}: claim {i + 1}", experiment or path.stem, module)
        for i, entry in enumerate(entries)
    )
    ids = [claim.id for claim in found]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    check(not repeated, f"{path}: claim ids", "unique", repeated)
    return found


def _claim(
    entry: Mapping[str, Any], where: str, experiment: str, module: ModuleType | None
) -> Claim:
    """One `[[claim]]` table as a Claim."""
    where = f"{where} ({entry.get('id', 'no id')})"
    for name in entry:
        check_choice(name, FIELDS, f"{where}: field")
    missing = [name for name in REQUIRED if name not in entry]
    check(not missing, f"{where}: fields", f"all of {', '.join(REQUIRED)}", missing)
    paper = entry.get("paper")
    check(paper is None or _is_number(paper), f"{where}: paper", "a number", paper)
    statistic, key = entry.get("statistic"), entry["key"]
    return Claim(
        id=entry["id"],
        experiment=experiment,
        statement=entry["statement"],
        paper_value=None if paper is None else float(paper),
        statistic=None if statistic is None else _statistic(statistic, where, module, key),
        control=_control(entry.get("control"), where),
        rule=_made(entry["rule"], RULES, f"{where}: rule"),
        preregistered=entry["preregistered"],
        json_key=key,
        note=entry.get("note", ""),
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _control(table: Any, where: str) -> Control:
    """`control = { words = "...", value = number or "json.key" }` (value optional)."""
    if table is None:
        return NO_CONTROL
    check(isinstance(table, dict) and "words" in table, f"{where}: control", "{ words }", table)
    for name in table:
        check_choice(name, ["words", "value"], f"{where}: control field")
    value = table.get("value")
    check(
        value is None or isinstance(value, str) or _is_number(value),
        f"{where}: control value",
        "a number or a JSON key",
        value,
    )
    return Control(table["words"], float(value) if _is_number(value) else value)


def _statistic(table: Any, where: str, module: ModuleType | None, key: str) -> Callable:
    """A statistic from the registry (`{ name = ..., parameters }`; a `key` it takes defaults
    to the claim's) or a function of the experiment's module (`{ function = ..., parameters }`,
    called as f(numbers, **parameters))."""
    if not (isinstance(table, dict) and "function" in table):
        named = STATISTICS.get(str(table.get("name"))) if isinstance(table, dict) else None
        if isinstance(table, dict) and "key" in _parameters(named):
            table = {"key": key, **table}
        return _made(table, STATISTICS, f"{where}: statistic")
    check("name" not in table, f"{where}: statistic", "a name or a function, not both", table)
    check(module is not None, f"{where}: statistic function", "a module to look in", table)
    functions = [n for n, f in vars(module).items() if callable(f) and not n.startswith("_")]
    check_choice(table["function"], functions, f"{where}: statistic function of {module.__name__}")
    parameters = {name: value for name, value in table.items() if name != "function"}
    function = getattr(module, table["function"])
    _check_parameters(function, parameters, f"{where}: statistic {table['function']}", skip=1)
    return _Bound(function, parameters)


@dataclasses.dataclass(frozen=True)
class _Bound:
    """A module function with its parameters from a claim file: numbers -> f(numbers, **p)."""

    function: Callable
    parameters: Mapping[str, Any]

    def __call__(self, numbers: Mapping[str, Any]) -> Any:
        return self.function(numbers, **self.parameters)


def _made(table: Any, registry: Mapping[str, Callable], where: str) -> Callable:
    """`{ name = NAME, parameter = value, ... }` -> registry[NAME](**parameters)."""
    check(isinstance(table, dict) and "name" in table, where, "{ name = ..., parameters }", table)
    check_choice(table["name"], registry, f"{where} name")
    parameters = {key: value for key, value in table.items() if key != "name"}
    factory = registry[table["name"]]
    _check_parameters(factory, parameters, f"{where} {table['name']}")
    try:
        return factory(**parameters)
    except (TypeError, ValueError) as error:  # a parameter of the wrong type
        raise ConfigError(f"{where} {table['name']}: {error}") from None


def _parameters(function: Callable | None) -> list[str]:
    """The names of the parameters `function` takes (none for None)."""
    return [] if function is None else list(inspect.signature(function).parameters)


def _check_parameters(function: Callable, given: Mapping[str, Any], where: str, skip=0) -> None:
    """Refuse a parameter `function` does not take, or a required one that is missing."""
    accepted = list(inspect.signature(function).parameters.values())[skip:]
    for name in given:
        check_choice(name, [p.name for p in accepted], f"{where}: parameter")
    needed = [p.name for p in accepted if p.default is inspect.Parameter.empty]
    missing = [name for name in needed if name not in given]
    check(not missing, f"{where}: parameters", f"all of {', '.join(needed)}", missing)
