"""Linearised reversion: the first-order model of the network around theta_S, trained on the same
benign batches with the same optimizer, predicts harmfulness(t) and alignment(t) of each run, and
the statistics that score the prediction against the simulated run.

The prediction (`LinearisedMeasure`) is `history.run_phases(..., linearise=True)` from the
branch's theta_S: the network replaced by f(theta_S) + J (theta - theta_S)
(`gravity.engine.models.linearised`). For SGD this is the exact linear (empirical-NTK) dynamics
of Lee et al. (2019), the one-step decomposition of Ren & Sutherland (ICLR 2025) iterated with the
kernel frozen at theta_S; for Adam the stated choice is Adam itself run on the linear model (its
moments follow the linear model's gradients), not a preconditioner frozen after one step. Nothing
is fitted: the prediction is scored as it stands.

Scoring (fixed before any result was seen, #24):
- `r_squared_at`: R^2 of the predicted against the simulated cell means (each cell: one grid
  point, its mean over seeds) of a metric at one record, as predicted (no refit), with a
  percentile bootstrap over seeds (the seeds are shared by every cell of a grid, so a resample
  draws seeds and keeps every cell);
- `error_by_step`: the mean absolute error of the per-run prediction at every record;
- `horizon`: the last record step up to which that error stays within `TOLERANCE` (0.05 in
  harmfulness, a twentieth of its range), and the same in lr x steps (the distance an SGD run
  travels scales with lr x steps, so a horizon set by the nonlinearity should be constant there).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from gravity.engine import history
from gravity.instruments import theory
from gravity.instruments.stats import percentile_interval

TOLERANCE = 0.05
"""The stated error within which a prediction counts as holding (harmfulness units)."""
METRICS = (
    "harmfulness",
    "harmfulness_heldout",
    "alignment",
    "drift_along_v_rev",
    "weight_distance",
    "task_accuracy",
)
"""The phase's metrics a `LinearisedMeasure` keeps, simulated and predicted, at every record."""


@dataclasses.dataclass(frozen=True)
class LinearisedMeasure:
    """A branch's fine-tuning phase as simulated and as its linearised model around the branch's
    start (theta_S) predicts it, on the same batches, with the anchors' held-out harmfulness.

    Returns {"simulated": {phase: {metric: (records,)}}, "linearised": {phase: {metric:
    (records,)}}, "heldout_aligned", "heldout_helpful", "heldout_pretrained", "diverged"}."""

    phase: str = "benign"
    metrics: tuple[str, ...] = METRICS

    def __call__(self, key, spec, knobs, start=None) -> dict:
        out = history.run_history(key, spec, knobs, start=start)
        state = history.branch_state(start, spec, knobs)
        phases = (spec.phase(self.phase),)
        _, linear = history.run_phases(key, spec, state, knobs, phases, linearise=True)
        simulated, predicted = out["metrics"][self.phase], linear["metrics"][self.phase]
        final = {
            name: out["metrics"][spec.anchor_name(role)]["harmfulness_heldout"][-1]
            for name, role in (
                ("heldout_aligned", "safety"),
                ("heldout_helpful", "helpful"),
                ("heldout_pretrained", "pretrain"),
            )
        }
        diverged = out["diverged"] | ~jax.numpy.isfinite(predicted["harmfulness_heldout"]).all()
        return {
            "simulated": {self.phase: {m: simulated[m] for m in self.metrics}},
            "linearised": {self.phase: {m: predicted[m] for m in self.metrics}},
            **final,
            "diverged": diverged,
        }


def r_squared(predicted, measured) -> float:
    """R^2 as predicted (no refit) over the finite pairs (`theory.r_squared`)."""
    return theory.r_squared(predicted, measured)["r2_as_predicted"]


def cell_means(values_CxS: np.ndarray, seeds: np.ndarray | None = None) -> np.ndarray:
    """Each cell's mean over seeds (NaN runs left out), over the seeds `seeds` if given."""
    values = values_CxS if seeds is None else values_CxS[:, seeds]
    return np.nanmean(values, axis=1)


def r_squared_at(
    grids: list[tuple[np.ndarray, np.ndarray]], n_resamples: int = 1000, seed: int = 0
) -> dict:
    """R^2 as predicted of the cell means, pooled over grids, each grid a (predicted, simulated)
    pair of cells x seeds arrays; a percentile bootstrap over seeds, drawn per grid.

    Returns {"estimate", "interval", "n" (cells), "test"}."""

    def pooled(draws):
        pairs = [
            (cell_means(p, d), cell_means(s, d)) for (p, s), d in zip(grids, draws, strict=True)
        ]
        return r_squared(
            np.concatenate([p for p, _ in pairs]), np.concatenate([s for _, s in pairs])
        )

    draws = [
        np.random.default_rng(seed + i).integers(0, p.shape[1], (n_resamples, p.shape[1]))
        for i, (p, _) in enumerate(grids)
    ]
    resampled = np.array([pooled([d[b] for d in draws]) for b in range(n_resamples)])
    cells = sum(p.shape[0] for p, _ in grids)
    seeds = "+".join(str(p.shape[1]) for p, _ in grids)
    return {
        "estimate": pooled([None] * len(grids)),
        "interval": list(percentile_interval(resampled[np.isfinite(resampled)])),
        "n": int(cells),
        "test": f"R^2 as predicted (no refit) over {cells} cell means; 95% percentile bootstrap "
        f"over seeds ({seeds} seeds per grid), {n_resamples} resamples",
    }


def error_by_step(predicted_RxT: np.ndarray, simulated_RxT: np.ndarray) -> np.ndarray:
    """The mean absolute error of the per-run prediction at every record (finite runs)."""
    return np.nanmean(np.abs(predicted_RxT - simulated_RxT), axis=0)


def horizon(error_T: np.ndarray, steps_T, tolerance: float = TOLERANCE) -> dict:
    """The last record step up to which the error stays within `tolerance` (0 if the first
    record after the start exceeds it) and whether it never left (`censored`)."""
    steps = np.asarray(steps_T)
    over = np.flatnonzero(np.asarray(error_T) > tolerance)
    if over.size == 0:
        return {"steps": int(steps[-1]), "censored": True}
    first = over[0]
    return {"steps": int(steps[first - 1]) if first > 0 else 0, "censored": False}


def horizons_by(
    group_C, predicted_CxSxT, simulated_CxSxT, steps_T, rate_of, tolerance: float = TOLERANCE
):
    """The horizon of each group of cells (e.g. each learning rate), in steps and in lr x steps
    (`rate_of(group)`: its learning rate), from the mean absolute error over the group's runs."""
    group_C = np.asarray(group_C)
    out = {}
    for group in dict.fromkeys(group_C.tolist()):
        rows = group_C == group
        error = error_by_step(
            predicted_CxSxT[rows].reshape(-1, len(steps_T)),
            simulated_CxSxT[rows].reshape(-1, len(steps_T)),
        )
        found = horizon(error, steps_T, tolerance)
        lr = float(rate_of(group))
        out[str(group)] = {**found, "learning_rate": lr, "lr_x_steps": lr * found["steps"]}
    return out


def scored_grid(predicted_CxSxT: np.ndarray, simulated_CxSxT: np.ndarray, steps_T) -> dict:
    """One grid's prediction scored: the runs' mean absolute error and the R^2 of the cell means
    (as predicted) at every record, the horizon, and the mean signed error, simulated and
    predicted means at T."""
    runs = (-1, len(steps_T))
    error = error_by_step(predicted_CxSxT.reshape(runs), simulated_CxSxT.reshape(runs))
    at_T = predicted_CxSxT[..., -1], simulated_CxSxT[..., -1]
    means = cell_means(predicted_CxSxT), cell_means(simulated_CxSxT)
    return {
        "steps": [int(s) for s in steps_T],
        "mean_absolute_error": error.tolist(),
        "r_squared_by_step": [r_squared(means[0][:, t], means[1][:, t]) for t in range(runs[1])],
        "horizon": horizon(error, steps_T),
        "signed_error_at_T": float(np.nanmean(at_T[0] - at_T[1])),
        "simulated_harm_at_T": float(np.nanmean(at_T[1])),
        "predicted_harm_at_T": float(np.nanmean(at_T[0])),
        "n_cells": int(predicted_CxSxT.shape[0]),
        "n_seeds": int(predicted_CxSxT.shape[1]),
    }


def horizon_run(
    predicted_RxT: np.ndarray,
    simulated_RxT: np.ndarray,
    distance_RxT: np.ndarray,
    steps_T,
    learning_rate: float,
) -> dict:
    """The runs of one optimizer and learning rate: their horizon in steps and in lr x steps,
    how far the simulated runs had moved from theta_S there (`distance`: |theta - theta_S|),
    and the mean trajectories the horizon was read from."""
    steps = [int(s) for s in steps_T]
    error = error_by_step(predicted_RxT, simulated_RxT)
    found = horizon(error, steps)
    distance = np.nanmean(distance_RxT, axis=0)
    return {
        **found,
        "learning_rate": learning_rate,
        "lr_x_steps": learning_rate * found["steps"],
        "weight_distance_at_horizon": float(distance[steps.index(found["steps"])]),
        "mean_absolute_error": error.tolist(),
        "simulated_harm": np.nanmean(simulated_RxT, axis=0).tolist(),
        "predicted_harm": np.nanmean(predicted_RxT, axis=0).tolist(),
        "weight_distance": distance.tolist(),
    }
