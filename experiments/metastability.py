"""Metastability: how long the aligned state holds under benign fine-tuning, and why it ends.

Two readings of the gravitational hypothesis make different predictions (docs/design.md):
- **noise-activated escape** (Kramers / Arrhenius, Xie et al. 2021): the aligned state is a
  shallow well, SGD noise at temperature T = lr / batch carries the model over a barrier, so
  log(escape time) grows linearly in batch / lr and (near) full-batch descent does not escape;
- **deterministic gravitational pull**: the benign gradient itself points back toward the
  pretrained basin, so the escape time is set by the gradient flow (time ~ 1 / lr), barely depends
  on the batch size, and large-batch descent reverts too.

The escape time of a run is the first recorded benign step at which harmfulness is halfway from
its aligned level h_S to its helpful-only level h_H (`dynamics.escape_time`; censored at the last
step when it never gets there, and handled by Kaplan-Meier). Over a full factorial grid of
benign learning rate x batch size x alignment depth this measures the escape-time distributions,
fits the Arrhenius law log tau = log tau0 + barrier / T with T = lr / batch, and fits the flow
law log tau = a - beta log lr + gamma log batch.

Units of the Arrhenius fit. SGD is a Langevin process in the time t = step x lr
(`dynamics.sgd_temperature`), so Kramers' law holds for the escape *time* t, not for the step
count: fitted against steps while lr varies, the prefactor absorbs a factor 1 / lr and the fit
mixes the flow's 1 / lr with the temperature. The fit in time units (`arrhenius_time_units_*`:
log(lr x median escape step) against batch / lr) is the one the theory asks for; the
pre-registered rule below was written with the fit in steps (`arrhenius_all_cells`), which is
kept beside it, and the verdict is reported under both (`verdict`, the pre-registered one, and
`verdict_with_time_unit_fit`). The time-unit fits were added after the first full run (the
issue that asked for them); their construction (all cells; the reference depth; each depth on
its own; the same Kaplan-Meier medians and the same censored cells left out) was fixed before
they were computed. The calibration panel runs the same statistics
on overdamped Langevin particles in a gravity well (`dynamics.DoubleWell`, `GravityWell2D`),
where escape *is* noise-activated, against Kramers' and Langer's formulas and the exact mean
first-passage time.

Configuration (fixed before any result was seen) and why:
- The standard MLP history (`gravity.presets`: Adam lr 1e-3, 1,500 pretraining and 100 helpful
  steps, batch 64) on the feature world; the MLP because ~0.4M model steps are needed (300k of
  them benign, at batches up to 1,024) and the transformer costs ~8x more per step.
- Benign phase: plain SGD (the setting of the SGD-temperature theory; Adam rescales the noise),
  300 steps, recorded every step for 10 steps then at 40 log-spaced steps (~9% resolution).
- Learning rates 0.01 ... 0.16 (doubling): a pilot showed that SGD above ~0.3 overshoots on its
  first step, and below 0.01 escapes need more than 300 steps. Batch sizes 4 ... 1,024 (x4): a
  256-fold range of gradient-noise variance at every lr; 1,024 stands for the large-batch
  (near full-batch) limit, since the world's benign distribution is not a finite set to take a
  full batch of. Safety-alignment depths 25 ... 200 steps (doubling) are snapshots of one
  200-step safety phase. The batch size changes shapes, so each is its own program (five); in
  each, every (batch size, seed) runs P -> H -> S once and its 5 learning rates x 4 depths
  benign phases branch from the snapshots (a phase of n steps is the exact prefix of the same
  phase with more steps, so each branch is the history whose safety phase has n steps). 10 seeds
  per cell: 5 x 5 x 4 x 10 = 1,000 histories from 50 trunks. h_S is the harmfulness at the
  branch's theta_S (the benign phase's record 0).
- Verdict rule, written before the runs: "noise-activated" if the Arrhenius fit over the grid has
  a positive barrier with R^2 >= 0.8 and at most half of the large-batch runs escape; "deterministic
  pull" if at least 90% of the large-batch runs escape and the median escape time changes by less
  than a factor 2 across the 256-fold batch range at every learning rate; otherwise "mixed".
- Langevin: `DoubleWell.from_barrier(1, 1, 2)` (and its 2-D gravity well with transverse
  curvatures 8 -> 1) at barrier / T = 2.5, 3.33, 4.17, 5, 2,000 particles, dt = 0.01, horizon three
  Kramers times: the settings the dynamics tests validate.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import jax
import numpy as np

from gravity import dynamics, plotting, presets, sweep
from gravity.experiment import Experiment
from gravity.validation import check_one_of

NAME = "metastability"
MEASURE = sweep.HistoryMetrics(
    trajectories=(("benign", ("harmfulness", "alignment")),),
    finals=(("pretrain", ("harmfulness",)), ("helpful", ("harmfulness",))),
)


@dataclasses.dataclass(frozen=True)
class Config:
    learning_rates: tuple[float, ...] = (0.01, 0.02, 0.04, 0.08, 0.16)
    batch_sizes: tuple[int, ...] = (4, 16, 64, 256, 1024)
    safety_steps: tuple[int, ...] = (25, 50, 100, 200)
    seeds: int = 10
    benign_steps: int = 300
    benign_dense_steps: int = 10
    benign_records: int = 40
    reference_depth: int = 100
    reference_batch: int = 64
    learning_rate: float = 1e-3
    size: str = "standard"
    barrier_over_t: tuple[float, ...] = (2.5, 10 / 3, 25 / 6, 5.0)
    particles: int = 2000
    dt: float = 0.01
    max_chunk: int | None = None

    def __post_init__(self):
        check_one_of(self.reference_depth, self.safety_steps, "reference_depth", "safety_steps")
        check_one_of(self.reference_batch, self.batch_sizes, "reference_batch", "batch_sizes")


def quick(config: Config) -> Config:
    return dataclasses.replace(
        config,
        learning_rates=(0.02, 0.08),
        batch_sizes=(16, 256),
        safety_steps=(50, 100),
        reference_batch=16,
        seeds=4,
        benign_steps=150,
        particles=500,
    )


def history_spec(config: Config, batch_size: int):
    """The standard MLP history, one safety phase with a snapshot at every depth, and an SGD
    benign phase at this batch size."""
    base = presets.standard_spec("mlp", config.size, keep_params=False)
    pretrain, helpful, safety, benign = base.phases
    phases = (
        pretrain,
        helpful,
        dataclasses.replace(
            safety, steps=max(config.safety_steps), n_records=1, snapshots=config.safety_steps
        ),
        dataclasses.replace(
            benign,
            steps=config.benign_steps,
            batch_size=batch_size,
            optimizer="sgd",
            dense_steps=config.benign_dense_steps,
            n_records=config.benign_records,
        ),
    )
    return dataclasses.replace(base, phases=phases)


def make_sweep(config: Config) -> sweep.Sweep:
    """Batch sizes as programs; learning rates x depths branch from each seed's safety phase."""
    specs = {b: history_spec(config, b) for b in config.batch_sizes}

    def build(batch_size, learning_rate, safety_steps):
        spec = specs[batch_size]
        rates = {"pretrain": config.learning_rate, "helpful": config.learning_rate}
        rates |= {"safety": config.learning_rate, "benign": learning_rate}
        knobs = dataclasses.replace(
            presets.standard_knobs(spec),
            learning_rate=rates,
            snapshot=config.safety_steps.index(safety_steps),
        )
        return spec, knobs.validate(spec)

    return sweep.Sweep(
        name=f"mlp-{config.size}",
        axes=(sweep.Axis("batch_size", tuple(config.batch_sizes)),),
        branches=(
            sweep.Axis("learning_rate", tuple(config.learning_rates)),
            sweep.Axis(
                "safety_steps",
                tuple(config.safety_steps),
                note=f"snapshots of one {max(config.safety_steps)}-step safety phase",
            ),
        ),
        branch_after="safety",
        seeds=config.seeds,
        build=build,
        measure=MEASURE,
        max_chunk=config.max_chunk,
    )


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    return {"mlp": make_sweep(config)}


# --------------------------------------------------------------------------------------------
# Escape statistics
# --------------------------------------------------------------------------------------------


def escape_times(res: sweep.SweepResult, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time, escaped) per run, (lr, batch, depth, seeds); diverged runs are NaN / False.

    The sweep's arrays are (batch, lr, depth, seeds, ...): batch sizes are its programs."""
    harm = res.valid("metrics/benign/harmfulness")
    h_s, h_h = harm[..., 0], res.valid("final/helpful/harmfulness")
    time_, escaped = dynamics.escape_time(steps, np.nan_to_num(harm), h_s, h_h)
    time_, escaped = np.asarray(time_, float), np.asarray(escaped) & ~res.diverged
    time_[res.diverged] = np.nan
    return np.swapaxes(time_, 0, 1), np.swapaxes(escaped, 0, 1)


def cell_medians(times: np.ndarray, escaped: np.ndarray) -> np.ndarray:
    """Kaplan-Meier median escape time per cell (inf when most runs never escape)."""
    medians = np.full(times.shape[:-1], np.nan)
    for index in np.ndindex(*times.shape[:-1]):
        t, e = times[index], escaped[index]
        ok = np.isfinite(t)
        if ok.any():
            medians[index] = dynamics.km_median(dynamics.kaplan_meier(t[ok], e[ok]))
    return medians


def _least_squares(design: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return coef, 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")


def arrhenius_step_fits(temperature, medians, finite, d_ref: int) -> dict:
    """The pre-registered Arrhenius fits of the median escape step on the SGD temperature: over
    every cell, and over the reference depth's cells."""
    fit = dynamics.arrhenius_fit(temperature[finite], medians[finite])
    out = {
        "arrhenius_all_cells": {
            "time_unit": "benign steps (pre-registered)",
            "barrier": fit.barrier,
            "barrier_ci": list(fit.barrier_ci),
            "r_squared": fit.r_squared,
            "n_cells": fit.n,
        }
    }
    ref = finite[..., d_ref]
    if ref.sum() >= 3:
        fit = dynamics.arrhenius_fit(temperature[..., d_ref][ref], medians[..., d_ref][ref])
        out["arrhenius_reference_depth"] = {
            "time_unit": "benign steps",
            "barrier": fit.barrier,
            "prefactor": fit.prefactor,
            "r_squared": fit.r_squared,
            "n_cells": fit.n,
        }
    return out


def flow_law(medians, finite, grids, n_depths: int) -> dict:
    """The power law log tau = a + c_lr log lr + c_batch log batch (+ c_depth log depth) fitted
    over the finite cells (`grids`: the lr, batch and depth meshgrids)."""
    lr_grid, b_grid, d_grid = grids
    design = np.stack(
        [np.ones(finite.sum()), np.log(lr_grid[finite]), np.log(b_grid[finite])]
        + ([np.log(d_grid[finite])] if n_depths > 1 else []),
        axis=1,
    )
    coef, r2 = _least_squares(design, np.log(medians[finite]))
    return {
        "form": "log tau = a + c_lr log lr + c_batch log batch + c_depth log depth",
        "c_lr": float(coef[1]),
        "c_batch": float(coef[2]),
        "c_depth": float(coef[3]) if n_depths > 1 else None,
        "r_squared": r2,
        "n_cells": int(finite.sum()),
    }


def batch_numbers(config: Config, times, escaped, medians, d_ref: int) -> dict:
    """How escape changes with batch size: the factor across batch per lr, the flow time at the
    reference depth, the escaped fraction per batch and at the largest batch."""
    lrs, batches = config.learning_rates, config.batch_sizes
    factors = {f"lr{lr:g}": batch_factor(medians[i]) for i, lr in enumerate(lrs)}
    return {
        "batch_factor_by_lr": factors,
        "max_factor_across_batch": _max_or_none(factors.values()),
        "flow_time_lr_x_tau_reference_depth": {
            f"lr{lr:g}": _finite_or_none(np.nanmedian(medians[i, :, d_ref] * lr))
            for i, lr in enumerate(lrs)
        },
        "escaped_fraction_by_batch": {
            f"batch{int(b)}": _escaped_fraction(times[:, j], escaped[:, j])
            for j, b in enumerate(batches)
        },
        "large_batch": {
            "batch_size": int(batches[-1]),
            "escaped_fraction": _escaped_fraction(times[:, -1], escaped[:, -1]),
            "median_steps_by_lr": {
                f"lr{lr:g}": _finite_or_none(np.nanmedian(medians[i, -1]))
                for i, lr in enumerate(lrs)
            },
        },
    }


def median_tables(config: Config, medians, d_ref: int) -> dict:
    """Median escape steps by lr and batch at the reference depth, and by lr and depth at the
    reference batch."""
    lrs, batches, depths = config.learning_rates, config.batch_sizes, config.safety_steps
    b_ref = list(batches).index(config.reference_batch)
    return {
        "medians_reference_depth": {
            f"lr{lr:g}": {
                f"batch{int(b)}": _finite_or_none(medians[i, j, d_ref])
                for j, b in enumerate(batches)
            }
            for i, lr in enumerate(lrs)
        },
        "medians_by_depth_reference_batch": {
            f"lr{lr:g}": {
                f"depth{int(d)}": _finite_or_none(medians[i, b_ref, k])
                for k, d in enumerate(depths)
            }
            for i, lr in enumerate(lrs)
        },
    }


def without_largest_lr(out: dict, config: Config, times, escaped, medians) -> dict:
    """The verdict rule applied again without the largest learning rate (post hoc)."""
    keep = slice(0, len(config.learning_rates) - 1)
    factor = _max_or_none(list(out["batch_factor_by_lr"].values())[keep])
    large = _escaped_fraction(times[keep, -1], escaped[keep, -1])
    return {
        "note": "not pre-registered: the rule applied without the largest learning rate",
        "excluded_lr": float(config.learning_rates[-1]),
        "excluded_lr_share_of_cells_escaping_on_step_1": float(np.mean(medians[-1] <= 1)),
        "max_factor_across_batch": factor,
        "large_batch_escaped_fraction": large,
        "verdict": verdict(out.get("arrhenius_all_cells", {}), large, factor),
    }


def analyse(config: Config, times: np.ndarray, escaped: np.ndarray) -> dict:
    """The two readings' fits and the verdict (medians in benign steps)."""
    lrs = np.asarray(config.learning_rates, float)
    batches = np.asarray(config.batch_sizes, float)
    depths = np.asarray(config.safety_steps, float)
    medians = cell_medians(times, escaped)
    d_ref = list(config.safety_steps).index(config.reference_depth)
    grids = np.meshgrid(lrs, batches, depths, indexing="ij")
    finite = np.isfinite(medians) & (medians > 0)
    out: dict = {}
    temperature = np.asarray(dynamics.sgd_temperature(grids[0], grids[1]))
    flow_time = medians * grids[0]  # t = step x lr, the Langevin time of SGD
    out |= time_unit_fits(config, temperature, flow_time, finite)
    if finite.sum() >= 3:
        out |= arrhenius_step_fits(temperature, medians, finite, d_ref)
        out["flow_law"] = flow_law(medians, finite, grids, depths.size)
    out |= batch_numbers(config, times, escaped, medians, d_ref)
    out["escaped_fraction_overall"] = float(escaped[np.isfinite(times)].mean())
    out |= median_tables(config, medians, d_ref)
    for key, fits in (
        ("verdict", "arrhenius_all_cells"),
        ("verdict_with_time_unit_fit", "arrhenius_time_units_all_cells"),
    ):
        out[key] = verdict(
            out.get(fits, {}),
            out["large_batch"]["escaped_fraction"],
            out["max_factor_across_batch"],
        )
    if lrs.size > 2:
        out["post_hoc_without_largest_lr"] = without_largest_lr(
            out, config, times, escaped, medians
        )
    return out


def _fit_record(fit: dynamics.ArrheniusFit) -> dict:
    return {
        "time_unit": "lr x benign steps",
        "barrier": fit.barrier,
        "barrier_ci": list(fit.barrier_ci),
        "r_squared": fit.r_squared,
        "prefactor": fit.prefactor,
        "n_cells": fit.n,
    }


def time_unit_fits(
    config: Config, temperature: np.ndarray, flow_time: np.ndarray, finite: np.ndarray
) -> dict:
    """Arrhenius fits of the escape time in SGD's own time t = lr x steps against
    T = lr / batch: over all cells, at the reference depth, and at each depth on its own (the
    depth changes the escape time ~100-fold, which a fit pooled over depths reads as scatter)."""
    out: dict = {}
    if finite.sum() >= 3 and np.ptp(temperature[finite]) > 0:
        fit = dynamics.arrhenius_fit(temperature[finite], flow_time[finite])
        out["arrhenius_time_units_all_cells"] = _fit_record(fit)
    by_depth = {}
    for k, depth in enumerate(config.safety_steps):
        ok = finite[..., k]
        if ok.sum() >= 3 and np.ptp(temperature[..., k][ok]) > 0:
            fit = dynamics.arrhenius_fit(temperature[..., k][ok], flow_time[..., k][ok])
            by_depth[f"depth{depth}"] = _fit_record(fit)
    if by_depth:
        out["arrhenius_time_units_by_depth"] = by_depth
    ref = f"depth{config.reference_depth}"
    if ref in by_depth:
        out["arrhenius_time_units_reference_depth"] = by_depth[ref]
    return out


def batch_factor(medians_BxD: np.ndarray) -> float | None:
    """max / min median escape time over batch sizes, at the worst depth (None if all censored);
    inf when some batch sizes escape and others are censored."""
    worst = None
    for column in np.asarray(medians_BxD, float).T:
        column = column[~np.isnan(column)]
        if column.size < 2 or not np.isfinite(column).any():
            continue
        factor = float(column.max() / column.min()) if column.min() > 0 else math.inf
        worst = factor if worst is None else max(worst, factor)
    return worst


def _max_or_none(values) -> float | None:
    values = [v for v in values if v is not None]
    return max(values) if values else None


def _escaped_fraction(times: np.ndarray, escaped: np.ndarray) -> float:
    ok = np.isfinite(times)
    return float(escaped[ok].mean()) if ok.any() else float("nan")


def _finite_or_none(value) -> float | None:
    return float(value) if np.isfinite(value) else None


VERDICT_RULE = (
    "noise-activated escape: Arrhenius barrier > 0 with R^2 >= 0.8 and at most half of the "
    "largest-batch runs escape; deterministic pull: at least 90% of the largest-batch runs escape "
    "and the median escape time changes by less than x2 across batch sizes at every learning "
    "rate; otherwise mixed (fixed before the runs)"
)


def verdict(arrhenius: dict, large_batch_escaped: float, batch_factor: float | None) -> str:
    """The rule fixed in the module docstring, applied to the fitted numbers."""
    noise = arrhenius.get("barrier", 0) > 0 and arrhenius.get("r_squared", 0) >= 0.8
    if noise and large_batch_escaped <= 0.5:
        return "noise-activated escape"
    if large_batch_escaped >= 0.9 and batch_factor is not None and batch_factor < 2.0:
        return "deterministic pull"
    return "mixed"


def reading(escape: dict, config: Config) -> str:
    """One paragraph with the numbers that decide between the two readings, verdict first."""
    parts = [f"Pre-registered verdict: {escape['verdict']}"]
    timed = escape.get("arrhenius_time_units_all_cells")
    if timed:
        parts.append(
            f"Arrhenius fit in time units (lr x steps) against batch/lr: barrier "
            f"{timed['barrier']:.2g} (95% CI {timed['barrier_ci'][0]:.2g} .. "
            f"{timed['barrier_ci'][1]:.2g}), R^2 {timed['r_squared']:.2f} over "
            f"{timed['n_cells']} cells (verdict with it: {escape['verdict_with_time_unit_fit']})"
        )
    flow = escape.get("flow_law")
    if flow:
        parts.append(
            f"median escape step ~ lr^{flow['c_lr']:.2f} x batch^{flow['c_batch']:.2f}"
            + (f" x depth^{flow['c_depth']:.2f}" if flow["c_depth"] is not None else "")
            + f" (R^2 {flow['r_squared']:.2f} over {flow['n_cells']} cells)"
        )
    arrhenius = escape.get("arrhenius_all_cells")
    if arrhenius:
        parts.append(
            f"Arrhenius fit in steps (pre-registered): barrier {arrhenius['barrier']:.2g} "
            f"(95% CI {arrhenius['barrier_ci'][0]:.2g} .. {arrhenius['barrier_ci'][1]:.2g}), "
            f"R^2 {arrhenius['r_squared']:.2f}"
        )
    large = escape["large_batch"]
    parts.append(
        f"{100 * large['escaped_fraction']:.0f}% of batch-{large['batch_size']} runs escape "
        f"within {config.benign_steps} steps"
    )
    factor = escape["max_factor_across_batch"]
    if factor is not None:
        parts.append(f"median escape varies by at most x{factor:.3g} across batch sizes")
    post = escape.get("post_hoc_without_largest_lr")
    if post and post["max_factor_across_batch"] is not None:
        parts.append(
            f"x{post['max_factor_across_batch']:.3g} without lr {post['excluded_lr']:g} (post hoc)"
        )
    return "; ".join(parts) + "."


# --------------------------------------------------------------------------------------------
# Langevin calibration
# --------------------------------------------------------------------------------------------


def langevin_calibration(config: Config) -> dict:
    """Escape times of Langevin particles in the 1-D and 2-D gravity wells against Kramers."""
    well = dynamics.DoubleWell.from_barrier(1.0, 1.0, 2.0)
    wells = {"1d": well, "2d": dynamics.GravityWell2D(well, 8.0, 1.0)}
    out: dict = {"barrier": float(well.barrier()), "dt": config.dt, "particles": config.particles}
    for name, potential in wells.items():
        rows = []
        for i, ratio in enumerate(config.barrier_over_t):
            temperature = float(well.barrier()) / ratio
            kramers = float(potential.kramers_time(temperature))
            steps, escaped = dynamics.langevin_escape(
                jax.random.fold_in(jax.random.key(2026), 10 * i + len(name)),
                potential,
                temperature,
                n_particles=config.particles,
                dt=config.dt,
                max_steps=int(3 * kramers / config.dt),
            )
            fit = dynamics.exponential_mle(np.asarray(steps) * config.dt, np.asarray(escaped))
            rows.append(
                {
                    "barrier_over_t": ratio,
                    "temperature": temperature,
                    "mean_escape": fit.mean,
                    "mean_ci": list(fit.mean_ci),
                    "escaped": fit.n_events,
                    "kramers": kramers,
                    "exact_mfpt": dynamics.mfpt_1d(well, temperature) if name == "1d" else None,
                }
            )
        fit = dynamics.arrhenius_fit(
            [r["temperature"] for r in rows],
            [r["mean_escape"] for r in rows],
            weights=[r["escaped"] for r in rows],
        )
        out[name] = {
            "rows": rows,
            "arrhenius_barrier": fit.barrier,
            "arrhenius_barrier_ci": list(fit.barrier_ci),
            "arrhenius_r_squared": fit.r_squared,
            "max_relative_error_vs_kramers": max(
                abs(r["mean_escape"] / r["kramers"] - 1) for r in rows
            ),
            "max_relative_error_vs_exact_mfpt": max(
                abs(r["mean_escape"] / r["exact_mfpt"] - 1) for r in rows
            )
            if name == "1d"
            else None,
        }
    return out


# --------------------------------------------------------------------------------------------
# Figure
# --------------------------------------------------------------------------------------------


def _survival(ax, times, escaped, color, label):
    ok = np.isfinite(times)
    curve = dynamics.kaplan_meier(times[ok], escaped[ok])
    x = np.concatenate([[0.0], curve.times])
    y = np.concatenate([[1.0], curve.survival])
    ax.step(x, y, where="post", color=color, label=label, lw=1.4)


def _survival_panels(axes, config, times, escaped):
    """Still-aligned fractions (Kaplan-Meier) over learning rates and over batch sizes."""
    lrs, batches = config.learning_rates, config.batch_sizes
    d_ref = list(config.safety_steps).index(config.reference_depth)
    b_ref = list(batches).index(config.reference_batch)
    lr_colors = plotting.plt.cm.plasma(np.linspace(0, 0.85, len(lrs)))
    b_colors = plotting.plt.cm.viridis(np.linspace(0, 0.9, len(batches)))
    ax = axes[0]
    for i, lr in enumerate(lrs):
        _survival(ax, times[i, b_ref, d_ref], escaped[i, b_ref, d_ref], lr_colors[i], f"{lr:g}")
    ax.set_title(
        f"still aligned (KM), batch {config.reference_batch}, depth {config.reference_depth}"
    )
    ax.legend(title="lr", frameon=False, fontsize=7)
    lr_mid = len(lrs) // 2
    ax = axes[1]
    for j, b in enumerate(batches):
        _survival(ax, times[lr_mid, j, d_ref], escaped[lr_mid, j, d_ref], b_colors[j], f"{b}")
    ax.set_title(f"still aligned (KM), lr {lrs[lr_mid]:g}, depth {config.reference_depth}")
    ax.legend(title="batch", frameon=False, fontsize=7)
    for ax in axes:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel("benign step")
        ax.set_ylabel("fraction of runs not yet escaped")


def _arrhenius_time_panel(ax, config, medians, escape: dict):
    """Escape *time* (lr x median escape step) against batch / lr, with the time-unit fit at
    the reference depth (the fit `dynamics.sgd_temperature` asks for)."""
    lrs, batches = config.learning_rates, config.batch_sizes
    d_ref = list(config.safety_steps).index(config.reference_depth)
    lr_colors = plotting.plt.cm.plasma(np.linspace(0, 0.85, len(lrs)))
    for i, lr in enumerate(lrs):
        x = np.asarray(batches) / lr
        ax.plot(x, medians[i, :, d_ref] * lr, "o-", color=lr_colors[i], label=f"lr {lr:g}")
    fit = escape.get("arrhenius_time_units_reference_depth")
    title = "Arrhenius in time units t = lr x steps"
    if fit:
        xs = np.geomspace(min(batches) / max(lrs), max(batches) / min(lrs), 50)
        line = fit["prefactor"] * np.exp(np.clip(fit["barrier"] * xs, -50, 50))
        ax.plot(xs, line, "--", color="#444444", lw=1, label=f"fit, depth {config.reference_depth}")
        title += (
            f"\ndepth {config.reference_depth}: barrier {fit['barrier']:.2g} "
            f"[{fit['barrier_ci'][0]:.2g}, {fit['barrier_ci'][1]:.2g}], R² {fit['r_squared']:.2f}"
        )
    pooled = escape.get("arrhenius_time_units_all_cells")
    if pooled:
        title += (
            f"\nall cells: barrier {pooled['barrier']:.2g} "
            f"[{pooled['barrier_ci'][0]:.2g}, {pooled['barrier_ci'][1]:.2g}], "
            f"R² {pooled['r_squared']:.2f}"
        )
    ax.set_title(title, fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch / lr  (1 / SGD temperature)")
    ax.set_ylabel("lr x median escape step (KM)")
    ax.legend(frameon=False, fontsize=7)


def _verdict_panel(ax, escape: dict):
    """The pre-registered rule and the numbers it was applied to."""
    ax.axis("off")
    steps_fit = escape.get("arrhenius_all_cells", {})
    time_fit = escape.get("arrhenius_time_units_all_cells", {})
    large = escape["large_batch"]
    factor = escape["max_factor_across_batch"]
    lines = [
        f"Pre-registered verdict: {escape['verdict']}",
        f"(with the time-unit fit: {escape['verdict_with_time_unit_fit']})",
        "",
        "noise-activated if barrier > 0, R² >= 0.8",
        "  and <= 50% of largest-batch runs escape;",
        "deterministic pull if >= 90% escape and",
        "  median escape varies < x2 across batch",
        "  at every lr; otherwise mixed.",
        "",
        f"largest batch ({large['batch_size']}) escaped: {100 * large['escaped_fraction']:.0f}%",
        "max factor across batch: " + (f"x{factor:.3g}" if factor is not None else "n/a"),
        f"Arrhenius R², steps: {steps_fit.get('r_squared', float('nan')):.2f}; "
        f"time units: {time_fit.get('r_squared', float('nan')):.2f}",
    ]
    ax.text(0.02, 0.98, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=8)


def _arrhenius_panel(ax, config, medians, escape: dict):
    """Median escape step against batch / lr (1 / temperature), with the Arrhenius fit."""
    lrs, batches = config.learning_rates, config.batch_sizes
    d_ref = list(config.safety_steps).index(config.reference_depth)
    lr_colors = plotting.plt.cm.plasma(np.linspace(0, 0.85, len(lrs)))
    for i, lr in enumerate(lrs):
        x = np.asarray(batches) / lr
        ax.plot(x, medians[i, :, d_ref], "o-", color=lr_colors[i], label=f"lr {lr:g}")
    fit = escape.get("arrhenius_reference_depth")
    if fit:
        xs = np.geomspace(min(batches) / max(lrs), max(batches) / min(lrs), 50)
        line = fit["prefactor"] * np.exp(np.clip(fit["barrier"] * xs, -50, 50))
        ax.plot(xs, line, "--", color="#444444", lw=1, label="Arrhenius fit")
        ax.set_title(
            f"Arrhenius in steps (pre-registered), depth {config.reference_depth}:\n"
            f"barrier {fit['barrier']:.2g} per (batch/lr), R² {fit['r_squared']:.2f}",
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch / lr  (1 / SGD temperature)")
    ax.set_ylabel("median escape step (KM)")
    ax.legend(frameon=False, fontsize=7)


def _flow_panels(axes, config, medians, escape: dict):
    """Flow time (lr x median escape) against batch size, and escape against depth."""
    lrs, batches = config.learning_rates, config.batch_sizes
    d_ref = list(config.safety_steps).index(config.reference_depth)
    b_ref = list(batches).index(config.reference_batch)
    lr_colors = plotting.plt.cm.plasma(np.linspace(0, 0.85, len(lrs)))
    ax = axes[0]
    for i, lr in enumerate(lrs):
        ax.plot(batches, medians[i, :, d_ref] * lr, "o-", color=lr_colors[i], label=f"lr {lr:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.minorticks_off()
    ax.set_xlabel("batch size")
    ax.set_ylabel("lr x median escape step (flow time)")
    flow = {"c_lr": np.nan, "c_batch": np.nan, "r_squared": np.nan}
    flow |= escape.get("flow_law", {})
    ax.set_title(
        f"flow law: c_lr {flow['c_lr']:.2f}, c_batch {flow['c_batch']:.2f}, "
        f"R² {flow['r_squared']:.2f}"
    )
    ax = axes[1]
    for i, lr in enumerate(lrs):
        ax.plot(
            config.safety_steps, medians[i, b_ref], "o-", color=lr_colors[i], label=f"lr {lr:g}"
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(config.safety_steps, [str(d) for d in config.safety_steps])
    ax.minorticks_off()
    ax.set_xlabel("safety-alignment steps (depth)")
    ax.set_ylabel("median escape step (KM)")
    ax.set_title(f"escape vs alignment depth, batch {config.reference_batch}")


def _calibration_panel(ax, cal: dict):
    """Langevin escape times in the 1-D and 2-D wells against Kramers / Langer and the MFPT."""
    for name, color, marker in (("1d", "#1f77b4", "o"), ("2d", "#d62728", "s")):
        rows = cal[name]["rows"]
        inv_t = np.array([1 / r["temperature"] for r in rows])
        mean = np.array([r["mean_escape"] for r in rows])
        ci = np.array([r["mean_ci"] for r in rows]).T
        ax.errorbar(
            inv_t,
            mean,
            yerr=np.abs(ci - mean),
            fmt=marker,
            color=color,
            capsize=3,
            label=f"Langevin {name} (barrier fit {cal[name]['arrhenius_barrier']:.2f})",
        )
        curves = [("kramers", "-", f"Kramers/Langer {name}")]
        if name == "1d":
            curves.append(("exact_mfpt", ":", "exact MFPT 1d"))
        for key, style, label in curves:
            ax.plot(inv_t, [r[key] for r in rows], style, color=color, lw=1, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("1 / T")
    ax.set_ylabel("mean escape time")
    ax.set_title(f"calibration: gravity well, true barrier {cal['barrier']:.2f}")
    ax.legend(frameon=False, fontsize=6.5)


def record_steps(config: Config) -> np.ndarray:
    """The benign phase's record steps (the same at every batch size)."""
    return history_spec(config, config.batch_sizes[0]).phase("benign").record_steps


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    """Escape statistics, the two readings' fits, the verdict and the Langevin calibration."""
    steps = record_steps(config)
    times, escaped = escape_times(results["mlp"], steps)
    escape = analyse(config, times, escaped)
    return {
        "verdict": escape["verdict"],
        "verdict_rule": VERDICT_RULE,
        "reading": reading(escape, config),
        "arrhenius_time_units": escape.get("arrhenius_time_units_all_cells"),
        "verdict_with_time_unit_fit": escape["verdict_with_time_unit_fit"],
        "escape": escape,
        "langevin": langevin_calibration(config),
        "benign_steps": config.benign_steps,
        "censoring_step": int(steps[-1]),
    }


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    res = results["mlp"]
    times, escaped = escape_times(res, record_steps(config))
    medians = cell_medians(times, escaped)
    escape = numbers["escape"]
    fig, axes = plotting.figure(4, 2, width=4.4, height=3.4)
    _survival_panels(axes[0, :2], config, times, escaped)
    _arrhenius_time_panel(axes[0, 2], config, medians, escape)
    _arrhenius_panel(axes[0, 3], config, medians, escape)
    _flow_panels(axes[1, :2], config, medians, escape)
    _calibration_panel(axes[1, 2], numbers["langevin"])
    _verdict_panel(axes[1, 3], escape)
    title = f"Pre-registered verdict: {escape['verdict']}. "
    title += f"Metastability: MLP, {int((~res.diverged).sum())} histories, benign SGD"
    if "post_hoc_without_largest_lr" in escape:
        post = escape["post_hoc_without_largest_lr"]
        title += f"; without lr {post['excluded_lr']:g} (post hoc): {post['verdict']}"
    return plotting.save(fig, path, title)


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "escape times vs lr, batch and depth; Kramers fit; Langevin check"
)

__all__ = [
    "EXPERIMENT",
    "Config",
    "analyse",
    "escape_times",
    "langevin_calibration",
    "make_sweep",
    "quick",
    "sweeps",
]
