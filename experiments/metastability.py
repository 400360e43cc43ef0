"""Metastability: how long the aligned state holds under benign fine-tuning, and why it ends.

Two readings of the gravitational hypothesis make different predictions (docs/design.md):
- **noise-activated escape** (Kramers / Arrhenius, Xie et al. 2021): the aligned state is a
  shallow well, SGD noise at temperature T = lr / batch carries the model over a barrier, so
  log(escape time) grows linearly in batch / lr and (near) full-batch descent does not escape;
- **deterministic gravitational pull**: the benign gradient itself points back toward the
  pretrained basin, so the escape time is set by the gradient flow (time ~ 1 / lr), barely depends
  on the batch size, and large-batch descent reverts too.

The escape time of a run is the first recorded benign step at which harmfulness is halfway from
its aligned level h_S to its helpful-only level h_H (`escape.escape_time`; censored at the last
step when it never gets there, and handled by Kaplan-Meier). Over a full factorial grid of
benign learning rate x batch size x alignment depth this measures the escape-time distributions,
fits the Arrhenius law log tau = log tau0 + barrier / T with T = lr / batch, and fits the flow
law log tau = a - beta log lr + gamma log batch.

Units of the Arrhenius fit. SGD is a Langevin process in the time t = step x lr
(`escape.sgd_temperature`), so Kramers' law holds for the escape *time* t, not for the step
count: fitted against steps while lr varies, the prefactor absorbs a factor 1 / lr and the fit
mixes the flow's 1 / lr with the temperature. The fit in time units (`arrhenius_time_units_*`:
log(lr x median escape step) against batch / lr) is the one the theory asks for; the
pre-registered rule below was written with the fit in steps (`arrhenius_all_cells`), which is
kept beside it, and the verdict is reported under both (`verdict`, the pre-registered one, and
`verdict_with_time_unit_fit`). The time-unit fits were added after the first full run (the
issue that asked for them); their construction (all cells; the reference depth; each depth on
its own; the same Kaplan-Meier medians and the same censored cells left out) was fixed before
they were computed. The calibration panel runs the same statistics
on overdamped Langevin particles in a gravity well (`escape.DoubleWell`, `GravityWell2D`),
where escape *is* noise-activated, against Kramers' and Langer's formulas and the exact mean
first-passage time; the particles run as a sweep of their own (`langevin`: one run per well and
barrier / T, `escape.escape_measure`).

Configuration (fixed before any result was seen) and why:
- The standard MLP history (`gravity.engine.presets`: Adam lr 1e-3, 1,500 pretraining and 100
  helpful steps, batch 64) on the feature world; the MLP because ~0.4M model steps are needed (300k
  of them benign, at batches up to 1,024) and the transformer costs ~8x more per step.
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
  Kramers times: the settings the dynamics tests validate. They run as a sweep of 2 x 4 runs, so
  the report's `n_histories` is 1,008: 1,000 MLP histories and 8 Langevin runs.

Post hoc (issue #22 i, written after the full run's medians were seen): the pre-registered
rule's pull branch needs a ratio of 10-seed integer medians, some of them 1 step, to stay below
2 in every column, and its "mixed" rests on one cell (lr 0.16, batch 4) and a 0.905 escaped share
against 0.90. `RATE_RULE` reads the batch dependence from fitted escape *rates* with intervals
instead: per cell the censored exponential MLE (escapes / benign steps at risk), per (lr, depth)
column the smallest batch's rate over the largest's, pooled over the columns by Mantel-Haenszel,
with a paired bootstrap over the seeds (`first_passage.paired_rate_ratio`; `escape.runs` holds
every run's escape step, the input). It is reported beside the pre-registered verdict
(`post_hoc_verdict_with_fitted_rates`), never instead of it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gravity.engine import presets
from gravity.engine.spec import with_phase
from gravity.instruments import escape, first_passage, sgd_escape
from gravity.run import plotting, sweep
from gravity.run.experiment import Experiment
from gravity.validation import check_one_of

NAME = "metastability"
MEASURE = sweep.HistoryMetrics(
    trajectories=(("benign", ("harmfulness", "alignment")),),
    finals=(("pretrain", ("harmfulness",)), ("helpful", ("harmfulness",))),
)
WELL = escape.DoubleWell.from_barrier(1.0, 1.0, 2.0)
WELLS = {"1d": WELL, "2d": escape.GravityWell2D(WELL, 8.0, 1.0)}
"""The calibration's wells: barrier 1, widths 1 and 2; in 2-D transverse curvatures 8 -> 1."""


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
    depths = config.safety_steps
    base = with_phase(base, "safety", steps=max(depths), n_records=1, snapshots=depths)
    return with_phase(
        base,
        "benign",
        steps=config.benign_steps,
        batch_size=batch_size,
        optimizer="sgd",
        dense_steps=config.benign_dense_steps,
        n_records=config.benign_records,
    )


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


def langevin_sweep(config: Config) -> sweep.Sweep:
    """The calibration: one run of `config.particles` Langevin particles per well and barrier / T,
    each observed for three Kramers (Langer) times."""

    def build(well, barrier_over_t):
        # Noise stream 10 i + 2 of key 2026 at the i-th barrier / T, in both wells (common random
        # numbers): the draws of the calibration before it ran as a sweep.
        stream = 10 * config.barrier_over_t.index(barrier_over_t) + 2
        temperature = float(WELL.barrier()) / barrier_over_t
        return escape.escape_point(
            WELLS[well], temperature, n_particles=config.particles, dt=config.dt, stream=stream
        )

    return sweep.Sweep(
        name="langevin",
        axes=(
            sweep.Axis("well", tuple(WELLS)),
            sweep.Axis("barrier_over_t", tuple(config.barrier_over_t)),
        ),
        seeds=1,
        first_seed=2026,
        build=build,
        measure=escape.escape_measure,
    )


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    return {"mlp": make_sweep(config), "langevin": langevin_sweep(config)}


# --------------------------------------------------------------------------------------------
# Escape statistics (`gravity.instruments.sgd_escape`) and the verdict
# --------------------------------------------------------------------------------------------


def benign_steps(config: Config) -> np.ndarray:
    """The benign phase's record steps (the same at every batch size)."""
    return history_spec(config, config.batch_sizes[0]).phase("benign").record_steps


def escape_grid(config: Config, res: sweep.SweepResult) -> sgd_escape.EscapeGrid:
    """The runs' escape times on the (lr, batch, depth, seeds) grid; diverged runs NaN / False.

    The sweep's arrays are (batch, lr, depth, seeds, ...): batch sizes are its programs."""
    harm = res.valid("metrics/benign/harmfulness")
    helpful = res.valid("final/helpful/harmfulness")
    steps = benign_steps(config)
    times, escaped = first_passage.escape_times(steps, harm, harm[..., 0], helpful, res.diverged)
    return grid_of(config, np.swapaxes(times, 0, 1), np.swapaxes(escaped, 0, 1))


def grid_of(config: Config, times: np.ndarray, escaped: np.ndarray) -> sgd_escape.EscapeGrid:
    """Escape times (lr, batch, depth, seeds) on `config`'s grid, with its reference cells."""
    levels = (config.learning_rates, config.batch_sizes, config.safety_steps)
    references = (config.reference_depth, config.reference_batch)
    return sgd_escape.EscapeGrid(*levels, times, escaped, *references)


def analyse(config: Config, times: np.ndarray, escaped: np.ndarray) -> dict:
    """Both readings' numbers (`sgd_escape.escape_numbers`, medians in benign steps), the
    verdicts the rule draws from them (`sgd_escape.with_verdicts`), the runs' escape steps they
    come from, and with two or more batch sizes the post-hoc rule on fitted rates."""
    grid = grid_of(config, times, escaped)
    out = sgd_escape.with_verdicts(sgd_escape.escape_numbers(grid), grid, verdict)
    out["runs"] = {"axes": list(RUN_AXES), "escape_step": grid.times, "escaped": grid.escaped}
    if len(grid.batch_sizes) > 1:
        out["post_hoc_fitted_rates"] = fitted_rates(grid)
    return out


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


RUN_AXES = ("learning_rate", "batch_size", "safety_steps", "seed")
"""The axes of the runs' escape steps in the JSON (`escape.runs`; NaN, null there: diverged)."""
RATE_BAND = (0.5, 2.0)
"""The batch-rate ratios the deterministic pull allows: VERDICT_RULE's x2, both ways."""
RATE_RULE = (
    "post hoc (issue #22 i, written after the full run's medians were seen): per (lr, depth) "
    "column the censored exponential escape rate (escapes / benign steps at risk) at the "
    "smallest batch over that at the largest, pooled over the columns (Mantel-Haenszel), with a "
    "95% paired bootstrap over seeds; noise-activated escape if the interval lies above 2 (the "
    "hotter SGD escapes faster), deterministic pull if it lies inside [1/2, 2], otherwise mixed"
)


def rate_verdict(interval) -> str:
    """`RATE_RULE` applied to the pooled rate ratio's interval ("no estimate" without one)."""
    low, high = (float(x) for x in interval)
    if np.isnan(low) or np.isnan(high):
        return "no estimate"
    if low > RATE_BAND[1]:
        return "noise-activated escape"
    if RATE_BAND[0] <= low and high <= RATE_BAND[1]:
        return "deterministic pull"
    return "mixed"


def rate_ratio_record(
    grid: sgd_escape.EscapeGrid, lrs: slice = slice(None), *, columns: bool = True
) -> dict:
    """The smallest batch's escape rate over the largest's at the learning rates `lrs`, pooled
    over their (lr, depth) columns (`first_passage.paired_rate_ratio`), with `RATE_RULE`'s
    verdict and, with `columns`, each column's ratio and interval by lr and depth."""
    arms = (grid.times[lrs, 0], grid.escaped[lrs, 0], grid.times[lrs, -1], grid.escaped[lrs, -1])
    found = first_passage.paired_rate_ratio(*arms)
    by_column = found.pop("by_column")
    if columns:
        found["by_column"] = _column_table(by_column, grid.lr_names[lrs], grid.depths)
    return found | {"verdict": rate_verdict(found["interval"])}


def _column_table(by_column: dict, lr_names: list[str], depths) -> dict:
    """{lr: {depth: {"ratio", "interval"}}} of `paired_rate_ratio`'s (lr, depth) arrays."""
    return {
        lr: {
            f"depth{depth}": {
                "ratio": by_column["ratio"][i, k],
                "interval": by_column["interval"][i, k],
            }
            for k, depth in enumerate(depths)
        }
        for i, lr in enumerate(lr_names)
    }


def fitted_rates(grid: sgd_escape.EscapeGrid) -> dict:
    """The post-hoc rule on fitted escape rates (`RATE_RULE`): the rate ratio pooled over every
    column, per learning rate (over its depths) and, with three or more learning rates, without
    the largest; every cell's fitted rate with its seed-bootstrap interval."""
    lrs = [slice(i, i + 1) for i in range(len(grid.learning_rates))]
    out = {
        "note": "not pre-registered: a rule on fitted escape rates, after the full run was seen",
        "rule": RATE_RULE,
        "smallest_batch": int(grid.batch_sizes[0]),
        "largest_batch": int(grid.batch_sizes[-1]),
        "pooled": rate_ratio_record(grid),
        "by_lr": {
            name: rate_ratio_record(grid, one, columns=False)
            for name, one in zip(grid.lr_names, lrs, strict=True)
        },
    }
    if len(grid.learning_rates) > 2:
        excluded = {"excluded_lr": float(grid.learning_rates[-1])}
        out["without_largest_lr"] = rate_ratio_record(grid, slice(None, -1)) | excluded
    rates = first_passage.rates_with_intervals(grid.times, grid.escaped)
    out["rates"] = {"axes": list(RUN_AXES[:-1]), "unit": "escapes per benign step", **rates}
    return out


def langevin_numbers(config: Config, res: sweep.SweepResult) -> dict:
    """The calibration's escape times in each well against Kramers / Langer and the exact MFPT."""
    out: dict = {"barrier": float(WELL.barrier()), "dt": config.dt, "particles": config.particles}
    for i, name in enumerate(res.axis_values("well")):
        steps, escaped = res["steps"][i, :, 0], res["escaped"][i, :, 0]
        out[name] = escape.kramers_calibration(
            WELLS[name], config.barrier_over_t, steps, escaped, config.dt
        )
    return out


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    """Escape statistics, the two readings' fits, the verdict and the Langevin calibration."""
    grid = escape_grid(config, results["mlp"])
    escapes = analyse(config, grid.times, grid.escaped)
    return {
        "verdict": escapes["verdict"],
        "verdict_rule": VERDICT_RULE,
        "reading": sgd_escape.reading(escapes, config.benign_steps),
        "arrhenius_time_units": escapes.get("arrhenius_time_units_all_cells"),
        "verdict_with_time_unit_fit": escapes["verdict_with_time_unit_fit"],
        "escape": escapes,
        "post_hoc_verdict_with_fitted_rates": _rate_verdict_of(escapes),
        "langevin": langevin_numbers(config, results["langevin"]),
        "benign_steps": config.benign_steps,
        "censoring_step": int(benign_steps(config)[-1]),
    }


def _rate_verdict_of(escapes: dict) -> str | None:
    """The post-hoc verdict on fitted rates (`RATE_RULE`), None with a single batch size."""
    return escapes.get("post_hoc_fitted_rates", {}).get("pooled", {}).get("verdict")


def _lr_lines(grid: sgd_escape.EscapeGrid) -> tuple[list[str], np.ndarray]:
    """Labels and colours of one line per learning rate."""
    labels = [f"lr {lr:g}" for lr in grid.learning_rates]
    return labels, plotting.colour_ramp("plasma", len(labels), 0.85)


def _survival_panels(axes, grid: sgd_escape.EscapeGrid):
    """Still-aligned fractions (Kaplan-Meier) over learning rates and over batch sizes."""
    lrs, batches, mid = grid.learning_rates, grid.batch_sizes, len(grid.learning_rates) // 2
    families = (
        ("lr", "plasma", 0.85, [(i, grid.b_ref) for i in range(len(lrs))], lrs),
        ("batch", "viridis", 0.9, [(mid, j) for j in range(len(batches))], batches),
    )
    held = (f"batch {grid.reference_batch}", f"lr {lrs[mid]:g}")
    for ax, (name, cmap, stop, cells, levels), fixed in zip(axes, families, held, strict=True):
        colors = plotting.colour_ramp(cmap, len(cells), stop)
        for (i, j), level, color in zip(cells, levels, colors, strict=True):
            cell = (i, j, grid.d_ref)
            curve = first_passage.km_curve(grid.times[cell], grid.escaped[cell])
            plotting.survival_curve(ax, curve, color=color, label=f"{level:g}")
        ax.set_title(f"still aligned (KM), {fixed}, depth {grid.reference_depth}")
        ax.legend(title=name, frameon=False, fontsize=7)
        ax.set_xscale("symlog", linthresh=1)
        ax.set(xlabel="benign step", ylabel="fraction of runs not yet escaped")


def _arrhenius_panels(axes, grid: sgd_escape.EscapeGrid, escapes: dict):
    """Escape *time* (lr x median step: the fit `escape.sgd_temperature` asks for) and the
    median step (the pre-registered fit) per lr against batch / lr (1 / SGD temperature) at the
    reference depth, each with its Arrhenius fit."""
    lrs, depth = np.asarray(grid.learning_rates)[:, None], grid.reference_depth
    steps, x = grid.medians[:, :, grid.d_ref], np.asarray(grid.batch_sizes) / lrs
    timed = escapes.get("arrhenius_time_units_reference_depth")
    plotting.arrhenius_lines(
        axes[0], x, steps * lrs, *_lr_lines(grid), timed, f"fit, depth {depth}"
    )
    fit = escapes.get("arrhenius_reference_depth")
    plotting.arrhenius_lines(axes[1], x, steps, *_lr_lines(grid), fit, "Arrhenius fit")
    title = "Arrhenius in time units t = lr x steps"
    for label, record in (
        (f"depth {depth}", timed),
        ("all cells", escapes.get("arrhenius_time_units_all_cells")),
    ):
        if record:
            low, high = record["barrier_ci"]
            title += f"\n{label}: barrier {record['barrier']:.2g} [{low:.2g}, {high:.2g}], "
            title += f"R² {record['r_squared']:.2f}"
    axes[0].set_title(title, fontsize=8)
    if fit:
        axes[1].set_title(
            f"Arrhenius in steps (pre-registered), depth {depth}:\n"
            f"barrier {fit['barrier']:.2g} per (batch/lr), R² {fit['r_squared']:.2f}",
            fontsize=8,
        )
    ylabels = ("lr x median escape step (KM)", "median escape step (KM)")
    for ax, ylabel in zip(axes, ylabels, strict=True):
        ax.set(xlabel="batch / lr  (1 / SGD temperature)", ylabel=ylabel)
        ax.legend(frameon=False, fontsize=7)


def _flow_panels(axes, grid: sgd_escape.EscapeGrid, escapes: dict):
    """Flow time (lr x median escape) against batch size, and escape against depth."""
    flow_time = grid.medians[:, :, grid.d_ref] * np.asarray(grid.learning_rates)[:, None]
    plotting.line_family(axes[0], grid.batch_sizes, flow_time, *_lr_lines(grid))
    plotting.line_family(axes[1], grid.depths, grid.medians[:, grid.b_ref], *_lr_lines(grid))
    for ax, ticks in zip(axes, (grid.batch_sizes, grid.depths), strict=True):
        ax.set_yscale("log")
        plotting.log_ticks(ax, ticks)
    flow = {"c_lr": np.nan, "c_batch": np.nan, "r_squared": np.nan} | escapes.get("flow_law", {})
    axes[0].set(xlabel="batch size", ylabel="lr x median escape step (flow time)")
    axes[0].set_title(
        f"flow law: c_lr {flow['c_lr']:.2f}, c_batch {flow['c_batch']:.2f}, "
        f"R² {flow['r_squared']:.2f}"
    )
    axes[1].set(xlabel="safety-alignment steps (depth)", ylabel="median escape step (KM)")
    axes[1].set_title(f"escape vs alignment depth, batch {grid.reference_batch}")


def _verdict_panel(ax, escapes: dict):
    """The pre-registered rule and the numbers it was applied to."""
    steps_r2 = escapes.get("arrhenius_all_cells", {}).get("r_squared", float("nan"))
    time_r2 = escapes.get("arrhenius_time_units_all_cells", {}).get("r_squared", float("nan"))
    large, factor = escapes["large_batch"], escapes["max_factor_across_batch"]
    lines = [
        f"Pre-registered verdict: {escapes['verdict']}",
        f"(with the time-unit fit: {escapes['verdict_with_time_unit_fit']})",
        "",
        "noise-activated if barrier > 0, R² >= 0.8",
        "  and <= 50% of largest-batch runs escape;",
        "deterministic pull if >= 90% escape and",
        "  median escape varies < x2 across batch",
        "  at every lr; otherwise mixed.",
        "",
        f"largest batch ({large['batch_size']}) escaped: {100 * large['escaped_fraction']:.0f}%",
        "max factor across batch: " + (f"x{factor:.3g}" if factor is not None else "n/a"),
        f"Arrhenius R², steps: {steps_r2:.2f}; time units: {time_r2:.2f}",
    ]
    rates = escapes.get("post_hoc_fitted_rates")
    if rates:
        pooled, (low, high) = rates["pooled"], rates["pooled"]["interval"]
        lines += [
            "",
            f"Post hoc, fitted rates: {pooled['verdict']}",
            f"rate batch {rates['smallest_batch']} / batch {rates['largest_batch']}: "
            f"x{pooled['estimate']:.3g} [{low:.3g}, {high:.3g}]",
            "(noise if above x2, pull if inside [1/2, 2])",
        ]
    plotting.text_panel(ax, lines)


def _calibration_panel(ax, cal: dict):
    """Langevin escape times in the 1-D and 2-D wells against Kramers / Langer and the MFPT."""
    for name, color, marker in (("1d", "#1f77b4", "o"), ("2d", "#d62728", "s")):
        rows = cal[name]["rows"]
        inv_t = np.array([1 / r["temperature"] for r in rows])
        mean = np.array([r["mean_escape"] for r in rows])
        error = np.abs(np.array([r["mean_ci"] for r in rows]).T - mean)
        label = f"Langevin {name} (barrier fit {cal[name]['arrhenius_barrier']:.2f})"
        ax.errorbar(inv_t, mean, yerr=error, fmt=marker, color=color, capsize=3, label=label)
        curves = [("kramers", "-", f"Kramers/Langer {name}")]
        curves += [("exact_mfpt", ":", "exact MFPT 1d")] if name == "1d" else []
        for key, style, label in curves:
            ax.plot(inv_t, [r[key] for r in rows], style, color=color, lw=1, label=label)
    ax.set_yscale("log")
    ax.set(xlabel="1 / T", ylabel="mean escape time")
    ax.set_title(f"calibration: gravity well, true barrier {cal['barrier']:.2f}")
    ax.legend(frameon=False, fontsize=6.5)


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    grid, escapes = escape_grid(config, results["mlp"]), numbers["escape"]
    fig, axes = plotting.figure(4, 2, width=4.4, height=3.4)
    _survival_panels(axes[0, :2], grid)
    _arrhenius_panels(axes[0, 2:], grid, escapes)
    _flow_panels(axes[1, :2], grid, escapes)
    _calibration_panel(axes[1, 2], numbers["langevin"])
    _verdict_panel(axes[1, 3], escapes)
    title = f"Pre-registered verdict: {escapes['verdict']}. "
    title += f"Metastability: MLP, {int((~results['mlp'].diverged).sum())} histories, benign SGD"
    if "post_hoc_without_largest_lr" in escapes:
        post = escapes["post_hoc_without_largest_lr"]
        title += f"; without lr {post['excluded_lr']:g} (post hoc): {post['verdict']}"
    return plotting.save(fig, path, title)


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "escape times vs lr, batch and depth; Kramers fit; Langevin check"
)
