"""Basin depth map: pretraining length (the "mass") x alignment length (the "depth").

The gravitational reading says a long pretraining digs a deep basin and a short alignment is a
shallow displacement from it, so reversion under benign fine-tuning should grow with the mass and
shrink with the depth. Over a 6 x 6 grid of pretraining and safety-alignment lengths, each cell
with 28 seeds (1,008 histories per arm; a control arm below), this measures per run:

- **reversion** after K = 100 benign steps: (h_K - h_S) / (h_H - h_S), the harmfulness gain as a
  fraction of the helpful-to-aligned gap (h_S at theta_S, h_H at the helpful-only witness);
- the **barrier** on the benign loss along the straight path theta_S -> theta_H
  (`landscape.barrier_height`, "max_endpoint");
- the **top Hessian eigenvalues** of the benign loss at theta_S (Lanczos on HVPs), and the benign
  gradient's pull toward theta_H (`geometry.benign_pull`);
- the **theory's prediction** (`gravity.instruments.theory`): a low-rank quadratic model of the
  benign loss at theta_S (top-8 Lanczos eigenpairs, exact gradient, flat complement) run forward in
  closed form for K gradient-descent steps at the benign learning rate, read out as the harmfulness
  proxy d_K . w / |w|^2 with w = theta_H - theta_S. It is drawn against the measured reversion (same
  0-to-1 normalisation) and against the measured weight-space progress d_K . w / |w|^2, with the
  R^2 of the prediction as it stands (no refit) and after a linear refit.

Configuration (fixed before any result was seen) and why:
- The standard MLP history on the feature world (`gravity.engine.presets`), Adam lr 1e-3 for
  pretraining, helpful-only (100 steps) and safety phases, batch 64. The MLP because the grid needs
  ~0.35M model steps plus a Lanczos Hessian per history, and the transformer costs ~8x more per
  step.
- Pretraining lengths 100 ... 3,200 (doubling) and safety lengths 8 ... 256 (doubling): both span
  a factor 32, from "barely trained" to well past the standard 1,500 / 100.
- The benign phase is plain SGD (lr 0.02, batch 64, K = 100) rather than the standard Adam,
  because the theory's closed form is for gradient descent; lr 0.02 was chosen from a pilot of
  the standard cell so that reversion at K is mid-range (neither 0 nor saturated), not to match
  any number.
- A tree with three levels, one compiled program: the pretraining lengths are snapshots of one
  3,200-step pretraining phase, each branching into its own helpful-only phase; from each theta_H
  the two safety arms (below) branch, each one 256-step safety phase whose snapshots (8 ... 256)
  are the depths, each branching into the benign phase with its landscape and theory
  measurements. A phase of n steps is the exact prefix of the same phase with more steps
  (per-step keys), so each leaf is the history with those lengths: 28 pretraining trunks, 168
  helpful-only phases, 336 safety phases, 2,016 histories (1,008 per arm).
- Landscape measurements use a fixed benign evaluation batch of 256 inputs (the same for every
  run), 11 points on the path.

The depth control (`control` in the JSON; fixed before its results were seen). In the main arm
(`safety_data = "mixed"`, the standard safety data) a safety batch is half hazardous inputs
labelled REFUSE and half non-hazardous inputs labelled with their task answer
(`align_hazard_rate` 0.5), so a longer safety phase is also more task training, and less
reversion at depth could be the task being better learned rather than a deeper alignment. The
control arm (`"hazard_only"`) is the same tree with the safety phase's data hazardous inputs
only (`align_hazard_rate` 1 in that phase; the helpful-only phase runs once per pretraining
length *before* the arms branch, so both arms share theta_P and theta_H exactly): a control
safety step trains 64 refusals and no task example, so its depth adds refusal training and no
task training. Same steps, batch, optimizer and learning rate. A control step carries twice the
refusals of a mixed step, so both comparisons are reported: at equal safety steps, and at equal
refused examples (control at d steps against mixed at 2d). Reported per arm, by depth, pooled
over pretraining lengths and seeds: reversion after K, harmfulness at theta_S and after K, the
gap h_H - h_S, task accuracy at theta_S; the depth effect (reversion at the shallowest minus the
deepest depth) and its Spearman with depth. Reading, written before the run: with r = the
control's depth effect over the main arm's, r >= 0.5 says "depth protects without task
training", r <= 0.25 says "the depth effect is mostly the safety data's task training", and
between them "partly". The headline numbers outside `control` are the main arm's, as before.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gravity.engine import presets
from gravity.engine.spec import with_phase
from gravity.engine.worlds import WorldKnobs
from gravity.instruments import basin, effects
from gravity.instruments.stats import mean_sd, spearman
from gravity.instruments.theory import r_squared
from gravity.run import plotting, sweep
from gravity.run.experiment import Experiment
from gravity.validation import check

NAME = "basin_depth"
MIN_GAP = 0.3
SAFETY_DATA = {"mixed": WorldKnobs().align_hazard_rate, "hazard_only": 1.0}
"""Hazardous share of the safety data in each arm (`align_hazard_rate` in the safety phase)."""
CONTROL_RULE = (
    "r = control depth effect / main depth effect (reversion at the shallowest minus the "
    "deepest depth, pooled over pretraining lengths and seeds); r >= 0.5: depth protects "
    "without task training; r <= 0.25: the depth effect is mostly the safety data's task "
    "training; between: partly"
)
CONTROL_READING = effects.RatioRule(
    high=0.5,
    low=0.25,
    above="depth protects without task training",
    below="the depth effect is mostly the safety data's task training",
    between="partly: depth protects less without task training",
    undefined="no depth effect in the main arm to explain",
)
"""`CONTROL_RULE` as computed: CONTROL_READING(main depth effect, control's) -> (r, reading)."""


@dataclasses.dataclass(frozen=True)
class Config:
    pretrain_steps: tuple[int, ...] = (100, 200, 400, 800, 1600, 3200)
    safety_steps: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
    seeds: int = 28
    helpful_steps: int = 100
    benign_steps: int = 100
    benign_learning_rate: float = 0.02
    learning_rate: float = 1e-3
    batch_size: int = 64
    size: str = "standard"
    measure: basin.BasinMeasure = basin.BasinMeasure()
    max_chunk: int | None = None
    safety_data: tuple[str, ...] = ("mixed", "hazard_only")

    def __post_init__(self):
        arms = tuple(self.safety_data)
        valid = arms[:1] == ("mixed",) and len(set(arms)) == len(arms)
        allowed = "'mixed' first (the helpful-only phase runs with its knobs), then any of "
        allowed += ", ".join(SAFETY_DATA)
        check(valid and set(arms) <= set(SAFETY_DATA), "safety_data", allowed, self.safety_data)


def quick(config: Config) -> Config:
    small = {"pretrain_steps": (200, 800), "safety_steps": (16, 64, 256)}
    return dataclasses.replace(config, seeds=4, **small)


def history_spec(config: Config):
    """The standard MLP history, its pretraining and safety phases as long as their longest
    length with a snapshot at every length, and an SGD benign phase."""
    spec = presets.standard_spec("mlp", config.size, keep_params=True)
    batch = config.batch_size if config.size == "standard" else spec.phases[0].batch_size
    pretrain, safety = config.pretrain_steps, config.safety_steps
    changes = {
        "pretrain": dict(steps=max(pretrain), n_records=2, snapshots=tuple(pretrain)),
        "helpful": dict(steps=config.helpful_steps),
        "safety": dict(steps=max(safety), n_records=1, snapshots=tuple(safety)),
        "benign": dict(steps=config.benign_steps, optimizer="sgd", dense_steps=0, n_records=10),
    }
    for phase, change in changes.items():
        spec = with_phase(spec, phase, batch_size=batch, **change)
    return spec


def _shares(config: Config) -> str:
    """Each arm's hazardous share of the safety data, in words."""
    return ", ".join(f"{arm} {SAFETY_DATA[arm]:g}" for arm in config.safety_data)


def make_sweep(config: Config) -> sweep.Sweep:
    """Pretraining lengths, safety arms and depths as three levels of branches: snapshots of
    one pretraining phase; each grows its helpful-only phase, from which the arms' safety phases
    branch; their snapshots are the depths."""
    spec = history_spec(config)
    rates = dict.fromkeys(("pretrain", "helpful", "safety"), config.learning_rate)
    rates["benign"] = config.benign_learning_rate

    def build(pretrain_steps, safety_data, safety_steps):
        snapshot = {"pretrain": config.pretrain_steps.index(pretrain_steps)}
        snapshot["safety"] = config.safety_steps.index(safety_steps)
        knobs = presets.standard_knobs(spec)
        world = dataclasses.replace(knobs.world, align_hazard_rate=SAFETY_DATA[safety_data])
        knobs = dataclasses.replace(knobs, learning_rate=rates, snapshot=snapshot, world=world)
        return spec, knobs.validate(spec)

    def snapshots(name, lengths, phase):
        note = f"snapshots of one {max(lengths)}-step {phase} phase"
        return sweep.Axis(name, tuple(lengths), note=note)

    arms = "safety arms branched from each theta_H: hazardous share of the safety "
    return sweep.Sweep(
        name=f"mlp-{config.size}",
        axes=(),
        branches=(
            snapshots("pretrain_steps", config.pretrain_steps, "pretraining"),
            sweep.Axis("safety_data", tuple(config.safety_data), note=arms + _shares(config)),
            snapshots("safety_steps", config.safety_steps, "safety"),
        ),
        branch_after=("pretrain", "helpful", "safety"),
        seeds=config.seeds,
        build=build,
        measure=config.measure,
        max_chunk=config.max_chunk,
    )


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    return {"mlp": make_sweep(config)}


def derived(res: sweep.SweepResult, arm: str = "mixed") -> dict[str, np.ndarray]:
    """Per-run arrays (pretrain x safety x seeds) of one safety arm, the main one by default."""
    return basin.basin_readout(res.select(safety_data=arm).valid)


CONTROL_CELLS = ("harm_helpful", *basin.BY_DEPTH, "barrier", "top_eigenvalue", "predicted")
OVERALL = ("reversion", "barrier", "barrier_linear", "benign_loss_drop", "top_eigenvalue")
REVERSION_FIT = ("predicted", "reversion")
CELL_FITS = {
    "prediction_vs_reversion_cells": REVERSION_FIT,
    "linear_harm_prediction_vs_reversion_cells": ("predicted_linear_harm", "reversion"),
    "prediction_vs_weight_progress_cells": ("predicted", "weight_progress"),
}
"""Theory against measurement over cell means: {report key: (prediction, measured)}."""


def refused_per_step(config: Config, arm: str) -> float:
    """Expected refused (hazardous) examples per safety step in an arm."""
    return history_spec(config).phase("safety").batch_size * SAFETY_DATA[arm]


def control_numbers(config: Config, res: sweep.SweepResult) -> dict:
    """The depth control: every arm by depth, side by side, and the pre-registered reading."""
    grid = basin.BasinMap(config.pretrain_steps, config.safety_steps)
    arms = {arm: derived(res, arm) for arm in config.safety_data}
    refused = {arm: refused_per_step(config, arm) for arm in config.safety_data}
    out = {
        "construction": f"arms branch from the same theta_H; the safety data's hazardous share "
        f"is {_shares(config)}; hazard_only safety steps train refusals and no task example",
        "rule": CONTROL_RULE,
        "refused_examples_per_step": refused,
        **basin.depth_control(grid, arms, refused, CONTROL_READING),
    }
    if "hazard_only" not in arms:
        return out
    cells = effects.cell_means(arms["hazard_only"])
    return out | {
        "hazard_only_cell_means": {name: grid.table(cells[name]) for name in CONTROL_CELLS},
        "hazard_only_prediction_vs_reversion_cells": r_squared(*(cells[n] for n in REVERSION_FIT)),
    }


def _aligned_only(cells: dict, rev, mass, depth) -> dict:
    """The fits and trends over the cells where alignment happened (post hoc)."""
    aligned = cells["gap"] >= MIN_GAP
    fits = ("prediction_vs_reversion_cells", "prediction_vs_weight_progress_cells")
    return {
        "rule": f"post hoc: cells whose mean gap h_H - h_S >= {MIN_GAP} (alignment happened)",
        "n_cells": int(aligned.sum()),
        **{k: r_squared(*(cells[n][aligned] for n in CELL_FITS[k])) for k in fits},
        "reversion_vs_mass_spearman": spearman(mass[aligned], rev[aligned]),
        "reversion_vs_depth_spearman": spearman(depth[aligned], rev[aligned]),
    }


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    """Cell means, trends with mass and depth, and how well the theory predicts reversion."""
    grid = basin.BasinMap(config.pretrain_steps, config.safety_steps)
    values = derived(results["mlp"])
    cells = effects.cell_means(values)
    rev, eigenvalue = values["reversion"], values["top_eigenvalue"]
    mass, depth = grid.lengths(rev.shape)
    return {
        "cell_means": {name: grid.table(cells[name]) for name in cells},
        **{f"{name}_overall": mean_sd(values[name]) for name in OVERALL},
        "barrier_max_over_runs": float(np.nanmax(values["barrier"])),
        "reversion_vs_mass": grid.trend(rev, 0),
        "reversion_vs_depth": grid.trend(rev, 1),
        "top_eigenvalue_spearman": {
            "vs_mass": spearman(mass, eigenvalue),
            "vs_depth": spearman(depth, eigenvalue),
            "vs_reversion": spearman(eigenvalue, rev),
        },
        **{key: r_squared(*(cells[n] for n in pair)) for key, pair in CELL_FITS.items()},
        "prediction_vs_reversion_runs": r_squared(values["predicted"], rev),
        "aligned_cells_only": _aligned_only(cells, rev, mass, depth),
        "control": control_numbers(config, results["mlp"]),
        "benign_steps": config.benign_steps,
    }


DEPTH, MASS = "safety-alignment steps (depth)", "pretraining steps (mass)"
ARM_STYLE = {
    "mixed": ("#1f77b4", "o", "mixed (main)"),
    "hazard_only": ("#d62728", "s", "hazard only (control)"),
}


def _cell_map(ax, config: Config, cells, title: str, marked, cmap="viridis", fmt="{:.2f}"):
    """One cell map over depth x mass with its values written in, `marked` cells crossed."""
    plotting.heatmap(ax, cells, config.safety_steps, config.pretrain_steps, cmap=cmap, fmt=fmt)
    plotting.label_axes(ax, title, DEPTH, MASS, title_size=8.5)
    plotting.mark_cells(ax, marked)


def _main_maps(axes, config: Config, cells: dict, numbers: dict) -> None:
    """The main arm's cell maps: reversion, barrier, loss drop, curvature, prediction, gap."""
    k = config.benign_steps
    barrier = f"(max over runs {numbers['barrier_max_over_runs']:.2g})"
    panels = (
        ("reversion", f"reversion after K = {k} benign steps", "viridis", "{:.2f}"),
        ("barrier", f"benign-loss barrier theta_S -> theta_H {barrier}", "magma", "{:.3f}"),
        ("benign_loss_drop", "benign loss drop L(theta_S) - L(theta_H)", "magma", "{:.2f}"),
        ("top_eigenvalue", "top Hessian eigenvalue at theta_S", "cividis", "{:.3g}"),
        ("predicted", f"theory: predicted d_K.w/|w|^2, K = {k}", "viridis", "{:.2f}"),
        ("gap", "alignment gap h_H - h_S (x: < 0.3, not aligned)", "bone", "{:.2f}"),
    )
    for ax, (name, title, cmap, fmt) in zip(axes, panels, strict=True):
        _cell_map(ax, config, cells[name], title, ~(cells["gap"] >= MIN_GAP), cmap, fmt)


def _theory_panels(axes, config: Config, cells: dict, numbers: dict) -> None:
    """Measured reversion and weight progress d_K.w/|w|^2 against the theory's prediction,
    a colour per pretraining length, with the R^2 of the fits (as predicted / refit)."""
    fit_name = "prediction_vs_reversion_cells"
    labels = [f"P={p}" for p in config.pretrain_steps]
    plotting.scatter_by_level(axes[0], cells["predicted"], cells["reversion"], labels=labels)
    plotting.scatter_by_level(axes[1], cells["predicted"], cells["weight_progress"])
    everything, aligned = (
        f"{fit['r2_as_predicted']:.2f} / {fit['r2_linear_refit']:.2f}"
        for fit in (numbers[fit_name], numbers["aligned_cells_only"][fit_name])
    )
    title = "reversion vs theory (cells), R² as predicted / refit\n"
    title += f"all: {everything}; aligned cells (x excluded): {aligned}"
    plotting.label_axes(axes[0], title, "theory's prediction", "measured reversion", title_size=7.5)
    axes[0].legend(frameon=False, fontsize=6.5)
    progress = numbers["prediction_vs_weight_progress_cells"]
    title = "weight progress vs theory (cells)\nR² as predicted {:.2f}, refit {:.2f}".format(
        progress["r2_as_predicted"], progress["r2_linear_refit"]
    )
    xlabel, ylabel = "theory: predicted d_K.w/|w|^2", "measured d_K.w/|w|^2"
    plotting.label_axes(axes[1], title, xlabel, ylabel, title_size=8)


def _control_row(axes, config: Config, control: dict) -> None:
    """The depth control by depth, per safety arm: reversion (mean ± sd) against safety steps
    and against refused examples; harmfulness (aligned, after K) and task accuracy at theta_S."""
    depths = np.asarray(config.safety_steps, float)
    refused = {arm: depths * refused_per_step(config, arm) for arm in config.safety_data}
    answers = (
        ("harm_aligned", ":", "harm at theta_S"),
        ("harm_after_benign", "-", f"harm after K = {config.benign_steps}"),
        ("task_accuracy_aligned", "--", "task acc. at theta_S"),
    )
    accuracy = []  # task accuracy at theta_S at the deepest depth, per arm
    for arm in config.safety_data:
        color, marker, label = ARM_STYLE[arm]
        by_depth, effect = (control["arms"][arm][k] for k in ("by_depth", "reversion_vs_depth"))
        deepest = list(by_depth["task_accuracy_aligned"].values())[-1]["mean"]
        accuracy.append(f"{arm} {deepest:.2f}")
        label += f": effect {effect['depth_effect']:.2f}, rho {effect['spearman_rho']:.2f}"
        style = {"fmt": "-", "marker": marker, "ms": 6, "color": color, "label": label}
        for ax, x in zip(axes[:2], (depths, refused[arm]), strict=True):
            plotting.stats_errorbar(ax, x, list(by_depth["reversion"].values()), **style)
        for name, line, what in answers:
            mean = [s["mean"] for s in by_depth[name].values()]
            label = f"{what}, {arm}"
            axes[2].plot(depths, mean, line, marker=marker, color=color, ms=4, label=label)
    ratio = control.get("depth_effect_ratio", float("nan"))
    title = f"control: reversion after K = {config.benign_steps} by depth (mean ± sd)\n"
    title += f"depth effect control / main = {ratio:.2f}:\n{control.get('reading', '')}"
    plotting.label_axes(axes[0], title, DEPTH, "reversion", title_size=7.5)
    refused_label = "refused examples in the safety phase"
    title = "the same at equal refused examples"
    plotting.label_axes(axes[1], title, refused_label, "reversion", title_size=8.5)
    title = "harmfulness and task accuracy, both arms\n"
    title += f"task accuracy at theta_S, depth {config.safety_steps[-1]}: {', '.join(accuracy)}"
    ylabel = "probability (pooled over pretraining)"
    plotting.label_axes(axes[2], title, DEPTH, ylabel, title_size=7.5)
    ticks = (depths, np.concatenate(list(refused.values())), depths)
    for ax in axes[:2]:
        ax.axhline(0, color="#999999", lw=0.6)
    for ax, x, legend_size in zip(axes, ticks, (6.5, 6.5, 5.5), strict=True):
        plotting.log_ticks(ax, sorted({int(v) for v in x}))
        ax.tick_params(axis="x", labelsize=6.5)
        ax.legend(frameon=False, fontsize=legend_size)


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    """Two rows of the main arm (maps, theory scatters) and, with two safety arms, the control's
    row."""
    res = results["mlp"]
    cells = effects.cell_means(derived(res))
    arms = len(config.safety_data)
    fig, axes = plotting.figure(4, 3 if arms > 1 else 2, width=4.1, height=3.4)
    _main_maps([*axes[0], axes[1, 0], axes[1, 1]], config, cells, numbers)
    _theory_panels(axes[1, 2:], config, cells, numbers)
    if arms > 1:
        _control_row(axes[2, :3], config, numbers["control"])
    if "hazard_only" in config.safety_data:
        control = effects.cell_means(derived(res, "hazard_only"))
        title = "control (hazard-only safety): reversion (x: gap < 0.3)"
        _cell_map(axes[2, 3], config, control["reversion"], title, control["gap"] < MIN_GAP)
    arm_note = f", {arms} safety arms" if arms > 1 else ""
    title = f"Basin depth: MLP, {int((~res.diverged).sum())} histories ({config.seeds} seeds "
    title += f"per cell{arm_note}), benign SGD lr {config.benign_learning_rate:g}; "
    return plotting.save(fig, path, title + "rows 1-2: main (mixed) arm")


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "basin depth: pretraining x alignment length -> reversion, barrier, curvature"
)
