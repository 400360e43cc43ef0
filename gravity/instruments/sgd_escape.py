"""Escape of SGD runs from the aligned state over a learning rate x batch size x alignment depth
grid, read two ways (docs/design.md):

- **noise-activated escape** (Kramers / Arrhenius, Xie et al. 2021): SGD is a Langevin process
  at temperature T = lr / batch in the time t = lr x step (`escape.sgd_temperature`), so the
  log escape time is linear in 1 / T. `step_fits` fits it against the median escape *step*,
  `time_unit_fits` against the escape *time* lr x step, the unit the theory asks for (in steps
  the prefactor absorbs a factor 1 / lr);
- **deterministic pull**: the benign gradient itself leads back, so the escape time follows the
  gradient flow (t ~ 1 / lr) and barely depends on the batch size (`flow_law`, the power law
  of the median in lr, batch and depth; `batch_numbers`, how far the median moves across batch
  sizes and how many large-batch runs escape).

A cell's escape time is the Kaplan-Meier median of its runs (`first_passage.km_medians`; inf
when most runs never escape); the fits use the cells whose median is observed. `escape_numbers`
gathers all of it as a report prints it, `with_verdicts` applies a rule fixed before the runs to
it, and `reading` says it all in one paragraph.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cached_property

import numpy as np

from gravity.instruments import escape
from gravity.instruments import first_passage as fp
from gravity.instruments.fits import power_law_fit


@dataclasses.dataclass(frozen=True)
class EscapeGrid:
    """Escape times of SGD runs, (lr, batch, depth, runs) with NaN for diverged runs, on the
    grid's levels; the reference depth and batch size pick the cells of one-axis views."""

    learning_rates: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    depths: tuple[int, ...]
    times: np.ndarray
    escaped: np.ndarray
    reference_depth: int
    reference_batch: int

    @cached_property
    def medians(self) -> np.ndarray:
        """Kaplan-Meier median escape step per cell (lr, batch, depth)."""
        return fp.km_medians(self.times, self.escaped)

    @property
    def observed(self) -> np.ndarray:
        """Cells whose median escape step is observed (finite and positive)."""
        return np.isfinite(self.medians) & (self.medians > 0)

    @property
    def levels(self) -> list[np.ndarray]:
        """The lr, batch and depth of every cell (meshgrids, floats)."""
        axes = (self.learning_rates, self.batch_sizes, self.depths)
        return np.meshgrid(*(np.asarray(v, float) for v in axes), indexing="ij")

    @property
    def temperature(self) -> np.ndarray:
        """The SGD temperature lr / batch of every cell."""
        lr, batch, _ = self.levels
        return np.asarray(escape.sgd_temperature(lr, batch))

    @property
    def d_ref(self) -> int:
        return list(self.depths).index(self.reference_depth)

    @property
    def b_ref(self) -> int:
        return list(self.batch_sizes).index(self.reference_batch)

    @property
    def lr_names(self) -> list[str]:
        return [f"lr{lr:g}" for lr in self.learning_rates]


def step_fits(grid: EscapeGrid) -> dict:
    """The Arrhenius fits of the median escape step on the SGD temperature (the pre-registered
    unit): over every cell, and over the reference depth's cells."""
    out, d, t = {}, grid.d_ref, grid.temperature
    fit = fp.arrhenius_cells(t, grid.medians, grid.observed)
    if fit is not None:
        fields = ("barrier", "barrier_ci", "r_squared", "n_cells")
        unit = "benign steps (pre-registered)"
        out["arrhenius_all_cells"] = fp.arrhenius_record(fit, unit, fields)
    fit = fp.arrhenius_cells(t[..., d], grid.medians[..., d], grid.observed[..., d])
    if fit is not None:
        fields = ("barrier", "prefactor", "r_squared", "n_cells")
        out["arrhenius_reference_depth"] = fp.arrhenius_record(fit, "benign steps", fields)
    return out


def time_unit_fits(grid: EscapeGrid) -> dict:
    """Arrhenius fits of the escape time in SGD's own time t = lr x steps against T = lr / batch:
    over all cells, at the reference depth, and at each depth on its own (the depth changes the
    escape time ~100-fold, which a fit pooled over depths reads as scatter)."""
    unit, out, by_depth = "lr x benign steps", {}, {}
    t, flow_time, observed = grid.temperature, grid.medians * grid.levels[0], grid.observed
    fit = fp.arrhenius_cells(t, flow_time, observed)
    if fit is not None:
        out["arrhenius_time_units_all_cells"] = fp.arrhenius_record(fit, unit)
    for k, depth in enumerate(grid.depths):
        fit = fp.arrhenius_cells(t[..., k], flow_time[..., k], observed[..., k])
        if fit is not None:
            by_depth[f"depth{depth}"] = fp.arrhenius_record(fit, unit)
    if by_depth:
        out["arrhenius_time_units_by_depth"] = by_depth
    if f"depth{grid.reference_depth}" in by_depth:
        out["arrhenius_time_units_reference_depth"] = by_depth[f"depth{grid.reference_depth}"]
    return out


def flow_law(grid: EscapeGrid) -> dict:
    """The power law median step ~ lr^c_lr batch^c_batch (x depth^c_depth with several depths)
    over the observed cells."""
    names = ("lr", "batch", "depth")[: 3 if len(grid.depths) > 1 else 2]
    observed = grid.observed
    levels = {name: level[observed] for name, level in zip(names, grid.levels, strict=False)}
    fit = power_law_fit(grid.medians[observed], levels)
    return {
        "form": "log tau = a + c_lr log lr + c_batch log batch + c_depth log depth",
        "c_lr": fit.exponents["lr"],
        "c_batch": fit.exponents["batch"],
        "c_depth": fit.exponents.get("depth"),
        "r_squared": fit.r_squared,
        "n_cells": fit.n,
    }


def batch_numbers(grid: EscapeGrid) -> dict:
    """How escape changes with batch size: the factor across batch per lr and at worst, the flow
    time lr x median at the reference depth, the escaped fraction per batch and at the largest
    batch with its medians."""
    medians, times, escaped, names = grid.medians, grid.times, grid.escaped, grid.lr_names
    flow = np.nanmedian(medians[:, :, grid.d_ref] * np.asarray(grid.learning_rates)[:, None], 1)
    largest = np.nanmedian(medians[:, -1], axis=1)
    return {
        "batch_factor_by_lr": {n: fp.spread_factor(medians[i]) for i, n in enumerate(names)},
        "max_factor_across_batch": fp.spread_factor(medians, axis=1),
        "flow_time_lr_x_tau_reference_depth": _by_name(names, flow),
        "escaped_fraction_by_batch": {
            f"batch{int(b)}": fp.escaped_fraction(times[:, j], escaped[:, j])
            for j, b in enumerate(grid.batch_sizes)
        },
        "large_batch": {
            "batch_size": int(grid.batch_sizes[-1]),
            "escaped_fraction": fp.escaped_fraction(times[:, -1], escaped[:, -1]),
            "median_steps_by_lr": _by_name(names, largest),
        },
    }


def _by_name(names, values) -> dict:
    return {name: fp.finite_or_none(value) for name, value in zip(names, values, strict=True)}


def median_tables(grid: EscapeGrid) -> dict:
    """Median escape steps by lr and batch at the reference depth, and by lr and depth at the
    reference batch."""
    batches = [f"batch{int(b)}" for b in grid.batch_sizes]
    depths = [f"depth{int(d)}" for d in grid.depths]
    return {
        "medians_reference_depth": fp.median_table(
            grid.medians[:, :, grid.d_ref], grid.lr_names, batches
        ),
        "medians_by_depth_reference_batch": fp.median_table(
            grid.medians[:, grid.b_ref], grid.lr_names, depths
        ),
    }


def escape_numbers(grid: EscapeGrid) -> dict:
    """Every number of both readings (medians in benign steps): the Arrhenius fits in time units
    and, with three observed cells, in steps and the flow law; the batch dependence, the
    escaped fraction overall and the median tables."""
    out = time_unit_fits(grid)
    if grid.observed.sum() >= 3:
        out |= step_fits(grid)
        out["flow_law"] = flow_law(grid)
    out |= batch_numbers(grid)
    out["escaped_fraction_overall"] = fp.escaped_fraction(grid.times, grid.escaped)
    return out | median_tables(grid)


def without_largest_lr(grid: EscapeGrid) -> dict:
    """The batch-dependence numbers again without the largest learning rate (a post-hoc check:
    at a large lr many cells escape on the first step, where batch size cannot matter)."""
    large = fp.escaped_fraction(grid.times[:-1, -1], grid.escaped[:-1, -1])
    return {
        "note": "not pre-registered: the rule applied without the largest learning rate",
        "excluded_lr": float(grid.learning_rates[-1]),
        "excluded_lr_share_of_cells_escaping_on_step_1": float(np.mean(grid.medians[-1] <= 1)),
        "max_factor_across_batch": fp.spread_factor(grid.medians[:-1], axis=1),
        "large_batch_escaped_fraction": large,
    }


Rule = Callable[[dict, float, float | None], str]
"""A verdict rule fixed before the runs: (Arrhenius fit record, escaped fraction at the largest
batch, largest factor across batch sizes) -> the reading it supports."""


def with_verdicts(numbers: dict, grid: EscapeGrid, rule: Rule) -> dict:
    """`numbers` (`escape_numbers`) with the verdict `rule` draws from them with the Arrhenius fit
    in steps (`verdict`) and in time units (`verdict_with_time_unit_fit`); with three or more
    learning rates, post hoc, the rule again without the largest one (`without_largest_lr`)."""
    large, factor = numbers["large_batch"]["escaped_fraction"], numbers["max_factor_across_batch"]
    steps_fit = numbers.get("arrhenius_all_cells", {})
    time_fit = numbers.get("arrhenius_time_units_all_cells", {})
    out = numbers | {
        "verdict": rule(steps_fit, large, factor),
        "verdict_with_time_unit_fit": rule(time_fit, large, factor),
    }
    if len(grid.learning_rates) > 2:
        post = without_largest_lr(grid)
        large, factor = post["large_batch_escaped_fraction"], post["max_factor_across_batch"]
        out["post_hoc_without_largest_lr"] = post | {"verdict": rule(steps_fit, large, factor)}
    return out


def reading(escapes: dict, benign_steps: int) -> str:
    """One paragraph with the numbers that decide between the two readings, verdict first
    (`escape`: `escape_numbers` with the verdicts a rule drew from them)."""
    parts = [f"Pre-registered verdict: {escapes['verdict']}"]
    timed = escapes.get("arrhenius_time_units_all_cells")
    if timed:
        parts.append(
            f"Arrhenius fit in time units (lr x steps) against batch/lr: barrier "
            f"{timed['barrier']:.2g} (95% CI {timed['barrier_ci'][0]:.2g} .. "
            f"{timed['barrier_ci'][1]:.2g}), R^2 {timed['r_squared']:.2f} over "
            f"{timed['n_cells']} cells (verdict with it: {escapes['verdict_with_time_unit_fit']})"
        )
    flow = escapes.get("flow_law")
    if flow:
        parts.append(
            f"median escape step ~ lr^{flow['c_lr']:.2f} x batch^{flow['c_batch']:.2f}"
            + (f" x depth^{flow['c_depth']:.2f}" if flow["c_depth"] is not None else "")
            + f" (R^2 {flow['r_squared']:.2f} over {flow['n_cells']} cells)"
        )
    arrhenius = escapes.get("arrhenius_all_cells")
    if arrhenius:
        parts.append(
            f"Arrhenius fit in steps (pre-registered): barrier {arrhenius['barrier']:.2g} "
            f"(95% CI {arrhenius['barrier_ci'][0]:.2g} .. {arrhenius['barrier_ci'][1]:.2g}), "
            f"R^2 {arrhenius['r_squared']:.2f}"
        )
    large = escapes["large_batch"]
    parts.append(
        f"{100 * large['escaped_fraction']:.0f}% of batch-{large['batch_size']} runs escape "
        f"within {benign_steps} steps"
    )
    factor = escapes["max_factor_across_batch"]
    if factor is not None:
        parts.append(f"median escape varies by at most x{factor:.3g} across batch sizes")
    post = escapes.get("post_hoc_without_largest_lr")
    if post and post["max_factor_across_batch"] is not None:
        parts.append(
            f"x{post['max_factor_across_batch']:.3g} without lr {post['excluded_lr']:g} (post hoc)"
        )
    return "; ".join(parts) + "."
