"""Censored first-passage statistics over a grid of cells (lr x batch x depth x ... x runs).

A run's escape time is the first recorded step at which its trajectory is halfway from the
aligned level to the witness's (`gravity.instruments.escape.escape_time`), right-censored at the
last record when it never gets there; a diverged run has no time at all (NaN). Per cell the escape
times are summarised by Kaplan-Meier (`km_curve`, `km_medians`), which counts censored runs as at
risk until their censoring instead of dropping them or reading them as escapes; across cells
this module gives the escaped fraction, how far medians move along one axis (`spread_factor`),
Arrhenius fits over the cells whose median is observed (`arrhenius_cells`, `arrhenius_record`),
and the JSON shapes a report prints them in (`finite_or_none`, `median_table`).

Escape *rates* (`censored_rates`): per cell the censored exponential MLE, escapes / time at
risk (`escape.exponential_mle` of each cell alone). Two arms of paired runs (the same seeds
under two settings, e.g. the smallest and the largest batch size) are compared by their rate
ratio per column and pooled over columns (`mantel_haenszel_rate_ratio`), with intervals from one
bootstrap over the seeds that every column shares (`paired_rate_ratio`). Host side, numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gravity.instruments import escape, stats

ARRHENIUS_FIELDS = ("barrier", "barrier_ci", "r_squared", "prefactor", "n_cells")
"""What `arrhenius_record` reports of a fit, by default all of it."""


def escape_times(steps, trajectory, aligned, helpful, diverged) -> tuple[np.ndarray, np.ndarray]:
    """(time, escaped) of every run: `escape.escape_time` of `trajectory` (..., T) recorded at
    `steps` between the `aligned` and `helpful` levels (...), with diverged runs NaN / False."""
    time_, escaped = escape.escape_time(steps, np.nan_to_num(trajectory), aligned, helpful)
    time_ = np.array(time_, dtype=float)
    time_[diverged] = np.nan
    return time_, np.asarray(escaped) & ~np.asarray(diverged)


def km_curve(times, escaped) -> escape.SurvivalCurve:
    """Kaplan-Meier curve of the runs that have a time (NaN: diverged runs, left out)."""
    times, escaped = np.asarray(times, dtype=float), np.asarray(escaped)
    ok = np.isfinite(times)
    return escape.kaplan_meier(times[ok], escaped[ok])


def km_medians(times, escaped) -> np.ndarray:
    """Kaplan-Meier median escape time of every cell, over the last axis (the runs): inf when
    most runs never escape, NaN when a cell has no run with a time."""
    times = np.asarray(times, dtype=float)
    medians = np.full(times.shape[:-1], np.nan)
    for index in np.ndindex(*times.shape[:-1]):
        if np.isfinite(times[index]).any():
            medians[index] = escape.km_median(km_curve(times[index], escaped[index]))
    return medians


def escaped_fraction(times, escaped) -> float:
    """Share of the runs with a time (not diverged) that escaped; NaN when there are none."""
    ok = np.isfinite(np.asarray(times, dtype=float))
    return float(np.asarray(escaped)[ok].mean()) if ok.any() else float("nan")


def spread_factor(values, axis: int = 0) -> float | None:
    """How far cell values (e.g. medians) move along `axis`: max / min along it, at the worst
    position of the other axes. NaN cells are left out and a position needs two values, at
    least one finite; inf when some are censored (inf) or zero; None when no position counts."""
    values = np.moveaxis(np.asarray(values, dtype=float), axis, 0)
    worst = None
    for column in values.reshape(values.shape[0], -1).T:
        column = column[~np.isnan(column)]
        if column.size < 2 or not np.isfinite(column).any():
            continue
        factor = float(column.max() / column.min()) if column.min() > 0 else float("inf")
        worst = factor if worst is None else max(worst, factor)
    return worst


def arrhenius_cells(temperature, times, observed, min_cells: int = 3) -> escape.ArrheniusFit | None:
    """`escape.arrhenius_fit` of the `observed` cells' times on their temperatures; None with
    fewer than `min_cells` of them or a single temperature (no slope to fit)."""
    observed = np.asarray(observed, dtype=bool)
    temperature, times = np.asarray(temperature)[observed], np.asarray(times)[observed]
    if observed.sum() < min_cells or np.ptp(temperature) <= 0:
        return None
    return escape.arrhenius_fit(temperature, times)


def arrhenius_record(
    fit: escape.ArrheniusFit, time_unit: str, fields: Sequence[str] = ARRHENIUS_FIELDS
) -> dict:
    """An Arrhenius fit as a report prints it: the time unit it was fitted in, then `fields`."""
    values = {
        "barrier": fit.barrier,
        "barrier_ci": list(fit.barrier_ci),
        "r_squared": fit.r_squared,
        "prefactor": fit.prefactor,
        "n_cells": fit.n,
    }
    return {"time_unit": time_unit, **{name: values[name] for name in fields}}


def finite_or_none(value) -> float | None:
    """A number for a JSON report: the float, or None where it is not finite (a censored
    median, an empty cell)."""
    return float(value) if np.isfinite(value) else None


def median_table(values_RxC, rows: Sequence[str], columns: Sequence[str]) -> dict:
    """{row: {column: value or None}} of a rows x columns array of medians."""
    values = np.asarray(values_RxC, dtype=float)
    return {
        row: {column: finite_or_none(values[i, j]) for j, column in enumerate(columns)}
        for i, row in enumerate(rows)
    }


# Escape rates with censoring, and the rate ratio of two arms of paired runs


def events_and_exposure(times, escaped) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, over the last axis (the runs): the number of escapes and the time at risk, every
    run's observed time summed (an escaped run's escape time, a censored run's censoring time).
    Runs without a time (NaN: diverged) are left out."""
    times = np.asarray(times, dtype=float)
    has_time = np.isfinite(times)
    events = (np.asarray(escaped, dtype=bool) & has_time).sum(axis=-1)
    return events, np.where(has_time, times, 0.0).sum(axis=-1)


def censored_rates(times, escaped) -> np.ndarray:
    """The censored exponential MLE of the escape rate per cell, escapes / time at risk over the
    last axis (`escape.exponential_mle`'s rate, every cell at once): 0 where no run escapes,
    NaN where no run has time at risk. Under a constant hazard it estimates the hazard; under any
    law it is the escapes per unit of observed time, the inverse of the censored mean time."""
    events, exposure = events_and_exposure(times, escaped)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(exposure > 0, events / exposure, np.nan)


def rates_with_intervals(
    times,
    escaped,
    *,
    n_resamples: int = stats.N_RESAMPLES,
    level: float = stats.LEVEL,
    seed: int = 0,
) -> dict:
    """`censored_rates` of every cell of a (cells..., seeds) grid with a percentile bootstrap
    interval that redraws the seeds, one draw for every cell: {"rate": (cells...),
    "interval": (cells..., 2)}. A resample whose runs all lack a time gives no rate and is
    left out."""
    times, escaped = np.asarray(times, dtype=float), np.asarray(escaped, dtype=bool)
    n_seeds = times.shape[-1]
    take_BxS = np.random.default_rng(seed).integers(0, n_seeds, (n_resamples, n_seeds))
    rates_CxB = censored_rates(times[..., take_BxS], escaped[..., take_BxS])
    rates_CxB = rates_CxB.reshape(-1, n_resamples)
    intervals = np.array([resampled_interval(rates, level) for rates in rates_CxB])
    return {
        "rate": censored_rates(times, escaped),
        "interval": intervals.reshape(*times.shape[:-1], 2),
    }


def mantel_haenszel_rate_ratio(events_a, exposure_a, events_b, exposure_b) -> np.ndarray:
    """The rate ratio of arm a over arm b pooled over columns (the last axis) by Mantel and
    Haenszel's estimator for person-time data, sum(d_a E_b / E) / sum(d_b E_a / E) with
    E = E_a + E_b per column. A column where neither arm escapes adds nothing; a zero count in
    one arm needs no correction. inf where arm b never escapes and a does, NaN where neither
    does. Leading axes (bootstrap resamples) are kept."""
    counts = (events_a, exposure_a, events_b, exposure_b)
    d_a, e_a, d_b, e_b = (np.asarray(x, dtype=float) for x in counts)
    total = e_a + e_b
    with np.errstate(divide="ignore", invalid="ignore"):
        top = np.where(total > 0, d_a * e_b / total, 0.0).sum(axis=-1)
        bottom = np.where(total > 0, d_b * e_a / total, 0.0).sum(axis=-1)
        return top / bottom


def resampled_interval(values, level: float = stats.LEVEL) -> list[float]:
    """The central `level` interval of resampled rates or rate ratios, read off the order
    statistics (no interpolation, so an infinite ratio, an arm without escapes, stays
    infinite); resamples with no value (0 / 0, NaN) are left out; [NaN, NaN] when none is left."""
    values = np.asarray(values, dtype=float).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        return [float("nan"), float("nan")]
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail], method="inverted_cdf")
    return [float(low), float(high)]


def paired_rate_ratio(
    times_a,
    escaped_a,
    times_b,
    escaped_b,
    *,
    n_resamples: int = stats.N_RESAMPLES,
    level: float = stats.LEVEL,
    seed: int = 0,
) -> dict:
    """Arm a's escape rate over arm b's, per column and pooled over the columns.

    Each arm's arrays are (columns..., seeds), the same seed at the same position in both arms
    and in every column (runs that share a seed share their history up to the split). Rates are
    `censored_rates`; the pooled ratio is `mantel_haenszel_rate_ratio` over every column; the
    95% intervals come from one percentile bootstrap that redraws the seeds, the same draw in
    every column and arm (a paired bootstrap over seeds), read by `resampled_interval`.
    Returns {"estimate", "interval", "n" (seeds), "test", "n_columns", "n_informative_columns"
    (some escape in either arm), "interval_excludes_1", "by_column": {"ratio", "interval",
    "rate_a", "rate_b"}, arrays of the columns' shape (the intervals with a last axis of 2)}.
    """
    arms = [np.asarray(x) for x in (times_a, escaped_a, times_b, escaped_b)]
    shapes = {x.shape for x in arms}
    if len(shapes) != 1 or arms[0].ndim < 2:
        raise ValueError(f"both arms need one (columns..., seeds) shape, got {sorted(shapes)}")
    shape, n_seeds = arms[0].shape[:-1], arms[0].shape[-1]
    arms_CxS = [x.reshape(-1, n_seeds) for x in arms]
    take_BxS = np.random.default_rng(seed).integers(0, n_seeds, (n_resamples, n_seeds))
    counts_C = _arm_counts(arms_CxS)
    counts_BxC = [x.T for x in _arm_counts([x[:, take_BxS] for x in arms_CxS])]
    interval = resampled_interval(mantel_haenszel_rate_ratio(*counts_BxC), level)
    n_columns = len(counts_C[0])
    return {
        "estimate": float(mantel_haenszel_rate_ratio(*counts_C)),
        "interval": interval,
        "n": n_seeds,
        "test": (
            f"Mantel-Haenszel ratio of censored exponential rates over {n_columns} columns, "
            f"paired bootstrap over {n_seeds} seeds"
        ),
        "n_columns": n_columns,
        "n_informative_columns": int(((counts_C[0] + counts_C[2]) > 0).sum()),
        "interval_excludes_1": bool(interval[0] > 1 or interval[1] < 1),
        "by_column": _by_column(counts_C, counts_BxC, level, shape),
    }


def _arm_counts(arms) -> list[np.ndarray]:
    """[events, exposure] of arm a, then of arm b, per column (and resample): `arms` holds
    (times, escaped) of arm a, then of arm b."""
    times_a, escaped_a, times_b, escaped_b = arms
    return [*events_and_exposure(times_a, escaped_a), *events_and_exposure(times_b, escaped_b)]


def _rate_ratio(events_a, exposure_a, events_b, exposure_b) -> np.ndarray:
    """Arm a's censored rate over arm b's, elementwise (inf, NaN where a rate is 0 or none)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (events_a / exposure_a) / (events_b / exposure_b)


def _by_column(counts_C, counts_BxC, level: float, shape: tuple[int, ...]) -> dict:
    """Each column's two rates and their ratio, with the ratio's bootstrap interval."""
    d_a, e_a, d_b, e_b = counts_C
    ratios_BxC = _rate_ratio(*counts_BxC)
    intervals_Cx2 = np.array([resampled_interval(ratios, level) for ratios in ratios_BxC.T])
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_a, rate_b = d_a / e_a, d_b / e_b
    return {
        "ratio": _rate_ratio(*counts_C).reshape(shape),
        "interval": intervals_Cx2.reshape(*shape, 2),
        "rate_a": rate_a.reshape(shape),
        "rate_b": rate_b.reshape(shape),
    }
