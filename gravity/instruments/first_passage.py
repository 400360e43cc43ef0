"""Censored first-passage statistics over a grid of cells (lr x batch x depth x ... x runs).

A run's escape time is the first recorded step at which its trajectory is halfway from the
aligned level to the witness's (`gravity.instruments.escape.escape_time`), right-censored at the
last record when it never gets there; a diverged run has no time at all (NaN). Per cell the escape
times are summarised by Kaplan-Meier (`km_curve`, `km_medians`), which counts censored runs as at
risk until their censoring instead of dropping them or reading them as escapes; across cells
this module gives the escaped fraction, how far medians move along one axis (`spread_factor`),
Arrhenius fits over the cells whose median is observed (`arrhenius_cells`, `arrhenius_record`),
and the JSON shapes a report prints them in (`finite_or_none`, `median_table`). Host side, numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gravity.instruments import escape

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
