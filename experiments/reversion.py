"""The paper's main track: benign drift acquires a component along v_rev, early and strongly.

For each model family the standard history (`gravity.engine.presets`) runs over many seeds with the
benign phase recorded at every step t = 1..100. Measured, per run and step:
- alignment(t) = cos(drift_t, v_rev), v_rev the stacked activation displacement theta_S -> theta_H
  on hazardous probes (the default), against two nulls: the isotropic null's exact p99 in the
  stacked dimension, and the matched nulls (v_rev of an independent history; directions drawn
  from other histories' benign drifts), from drift fields kept at a few steps;
- harmfulness(t), and the Spearman correlation of alignment with harmfulness over run-steps;
- the v_rev definitions of `gravity.engine.geometry.DIRECTIONS` side by side;
- specificity controls: the same cosine for the matched benign probes' drift, the hazard-specific
  cosine (common-mode drift removed), and where the refusal mass lost in benign fine-tuning goes.

Controls in the same basis (post hoc: added after the first alignment result was written up,
as were the control witnesses and the REFUSE-matched world): every seed's theta_S also
branches into a *control fine-tuning* on benign data from the other topics only
(`benign_overlap = 0`), whose drift is compared with the same v_rev: the p99 of its alignment
over run-steps is the same-basis null (`null_p99_same_basis`), and the p99 of its hazard-specific
cosine is the null of the hazard-specific cosine. The control is truly disjoint from the hazard
topic (`benign_disjoint = 1`: its inputs carry no hazard-topic feature or token); the earlier
control, whose inputs keep hazard-topic features at the background rate `p_off`, runs beside it
(`same_basis_background`).

Control witnesses, a same-basis null for the *direction* (post hoc, as above; its construction
was fixed before its own result; `gravity.instruments.controls` builds them). From each seed's
theta_S, four histories branch through a phase of the witness phase's size that changes a
*harmless* behaviour (the task answer shifted by +1 or +2 on target inputs: the hazard topic
without the hazard, or the other topics; 2 targets x 2 shifts), each direction taken where its
activation distance from theta_S on the hazardous probes is nearest the seed's witness distance
(both reported, and the full-length direction's numbers beside). The benign drift's cosine with
these control directions at the kept drift steps (mean, p99: `null_p99_control_witness`) is
reported against its cosine with v_rev at the same run-steps. They are computed once per seed
inside the tree's program (they depend on the shared past only), not per branch.

Un-refuse witnesses (#22 g; pre-registered: built, and their claim's statistic, gates and rule
written, before any of their results, quick or full). Benign data never holds REFUSE, so any
benign drift may move along "un-refuse". From each seed's theta_S two more histories branch
through a phase of the witness phase's size on the witness's data with every hazardous input
answered by a harmless answer, neither REFUSE nor pretraining's: one fixed answer (class 0, 1
where pretraining's is 0), or a random other answer drawn per row
(`gravity.instruments.controls.unrefuse_batch`). Their directions theta_S -> theta_U on the
hazardous probes, distance-matched as the control witnesses', span the un-refuse directions.
The statistic: cos(drift, v_rev) *beyond* them (both projected off that span), each seed's
mean over the kept drift steps, against the same theta_S's truly disjoint control fine-tuning
under the same projection, seed by seed (`unrefuse_witness.beyond`; its same-basis null, the
p99 of the control's run-steps, beside). "v_rev is special" is supported only where the
paired interval lies above 0, and judged only where each un-refuse witness, at theta_U, puts
more mass on harmless answers than on REFUSE and adds at most 0.05 harmfulness (claim
reversion-special-beyond-unrefuse, per model). Beside it, per direction: cos(drift, v_rev)
minus cos(drift, u) seed by seed, cos(v_rev, u), the drift beyond that direction alone; and
the control worlds' versions.

Worlds beside the main one (each its own pretraining, the same phases otherwise): a
*never-harmful world* (pretraining never complies: `harm_prob = 0`): if alignment rises there
while harmfulness does not, alignment alone is no evidence of harm returning. That world gets
ten times the main world's REFUSE training in pretraining (all its hazardous inputs refused), so
a *REFUSE-matched world* runs too: `harm_prob = 0` with `hazard_rate` scaled to 0.2 x 0.1 = 0.02,
so its pretraining's REFUSE mass, hazard_rate x (1 - harm_prob), equals the main world's (it sees
hazardous inputs ten times less often: the two cannot both be matched while nothing complies).
Harmfulness is reported on the probes that define v_rev and on held-out hazardous inputs.
Correlations of alignment with harmfulness are reported pooled over run-steps (what the paper
reports), as the median over steps of the across-run correlation, and partial on the step.

Configuration: the standard histories unchanged (lr 1e-3 Adam everywhere, benign_overlap 0.5);
nothing here was tuned toward the paper's numbers.

The paper's regime, calibrated honestly (MLP; rule written before looking): two knobs,
`benign_overlap` (0 ... 1) and the safety-alignment depth (25 ... 1,600 steps, snapshots of one
phase), are fitted to two of the paper's numbers only, the mean alignment after the first benign
update (0.429) and at step 20 (0.647), by least squares over the grid
(`gravity.instruments.calibration`); every other number of the paper's table (final alignment,
held-out harmfulness without and with blocking, blocked alignment, Spearman) is then read off that
cell with no further tuning and reported beside the paper's. The fit is a flat valley, so
(post hoc, #22 a) every cell whose squared distance is within the best fit's bootstrap noise
(at most the minimum + 1.96 x the bootstrap SE of the best cell's distance over its seeds,
`calibration.within_noise`) is kept with its predictions, and a prediction is each number's
range over those cells: the claims ask whether the paper's number lies inside it. The
depths 25 ... 400 are the same snapshots of a longer phase (each step's data key depends on
the step alone, and no schedule depends on the phase's length; checked bit for bit at the
standard size, 2 seeds x 2 overlaps, against the 400-step phase). The figure's last row redraws the
paper's two figures in that cell (alignment against step with the paper's points and nulls; held-out
harm, baseline against blocked): the isotropic p99 and the same-basis null of the overlap-0 branch
at the fitted depth (a control fine-tuning from the same theta_S; that sweep keeps the background
rate).

What runs can be cut down (`--set`), for a fast look or to time this figure at the content it
had before the controls were added (`benchmarks.figures`): `worlds` (the main world first, then
any of the control worlds), `arms` (the benign run first, then any of the same-basis control
fine-tunings) and `witnesses` (false: neither kind of witness is trained). The numbers, bands
and null lines of what was not run are left out of the JSON and the figure, so `gravity
verdicts` refuses that JSON where a claim reads what was left out, rather than judging the
claim without its control.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gravity.defences import steering
from gravity.engine import presets
from gravity.engine.spec import with_phase
from gravity.engine.worlds import WorldKnobs
from gravity.instruments import calibration, nulls, published, readout
from gravity.instruments.controls import (
    UNREFUSE_MODES,
    WithControlWitnesses,
    control_witness_null,
    unrefuse_summary,
)
from gravity.instruments.readout import alignment_at, harm_at, means_at
from gravity.instruments.stats import mean_sd, spearman_by_step
from gravity.run import plotting, sweep
from gravity.run.experiment import Experiment
from gravity.validation import check

NAME = "reversion"
DEFINITIONS = ("stacked", "mean", "trajectory_pca", "from_pretrained")
SNAPSHOTS = (1, 5, 20, 50, 100)
PAPER = published.ALIGNMENT
PAPER_POINTS = {int(name.removeprefix("alignment_step")): value for name, value in PAPER.items()}
ALIGNMENT = "metrics/benign/alignment"
HELD_OUT = "metrics/benign/harmfulness_heldout"
DEFINITION = "metrics/benign/alignment_by_definition"


REGIME_OVERLAPS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
REGIME_DEPTHS = (25, 50, 100, 200, 400, 800, 1600)
REGIME_ARMS = ("none", "block")

UNREFUSE = tuple(mode == "random_answer" for mode in UNREFUSE_MODES)
"""The un-refuse witnesses each theta_S branches into: a random_answer flag per mode."""

_DEFAULT = WorldKnobs()
REFUSE_MASS = _DEFAULT.hazard_rate * (1.0 - _DEFAULT.harm_prob)
WORLDS = {
    "main": {},
    "harm_prob_0": {"harm_prob": 0.0},
    "refuse_matched": {"harm_prob": 0.0, "hazard_rate": round(REFUSE_MASS, 6)},
}
"""The pretraining worlds (a trunk axis): the main one, the never-harmful one, and the
never-harmful one matched on the main world's pretraining REFUSE mass."""

ARMS = {
    "benign": {},
    "control": {"benign_overlap": 0.0, "benign_disjoint": 1.0},
    "control_background": {"benign_overlap": 0.0},
}
"""The branches from each theta_S: the benign run, the truly disjoint control fine-tuning, and
the earlier control whose inputs keep hazard-topic features at the background rate."""


@dataclasses.dataclass(frozen=True)
class Config(presets.StandardConfig):
    regime_seeds: int = 8
    regime_overlaps: tuple[float, ...] = REGIME_OVERLAPS
    regime_depths: tuple[int, ...] = REGIME_DEPTHS
    worlds: tuple[str, ...] = tuple(WORLDS)
    arms: tuple[str, ...] = tuple(ARMS)
    witnesses: bool = True

    def __post_init__(self):
        for field, names in (("worlds", WORLDS), ("arms", ARMS)):
            chosen, first = tuple(getattr(self, field)), next(iter(names))
            valid = chosen[:1] == (first,) and len(set(chosen)) == len(chosen)
            allowed = f"{first!r} first, then any of {', '.join(list(names)[1:])}, each once"
            check(valid and set(chosen) <= set(names), field, allowed, getattr(self, field))
        check(isinstance(self.witnesses, bool), "witnesses", "true or false", self.witnesses)


def quick(config: Config) -> Config:
    return dataclasses.replace(config, seeds=4, regime_seeds=0)


def reversion_spec(model: str, size: str = "standard"):
    """The standard history with the benign phase recorded at every step and drift kept."""
    spec = presets.standard_spec(model, size, directions=DEFINITIONS, keep_params=False)
    benign = spec.phases[-1]
    spec = with_phase(spec, benign.name, dense_steps=benign.steps)
    snapshots = tuple(s for s in SNAPSHOTS if s <= benign.steps)
    return dataclasses.replace(spec, drift_snapshots=snapshots)


def regime_spec(config: Config):
    """The MLP history with the benign phase recorded every step, interventions compiled, and
    one safety phase as long as the deepest depth with a snapshot at each."""
    spec = presets.standard_spec("mlp", config.size, keep_params=False)
    spec = with_phase(spec, "benign", dense_steps=spec.phase("benign").steps, interventions=True)
    depths = config.regime_depths
    return with_phase(spec, "safety", steps=max(depths), snapshots=depths)


def regime_sweep(config: Config) -> sweep.Sweep:
    spec = regime_spec(config)

    def build(depth, benign_overlap, arm):
        knobs = presets.standard_knobs(spec, config.learning_rate, benign_overlap=benign_overlap)
        snapshot, intervention = config.regime_depths.index(depth), steering.index(arm)
        knobs = dataclasses.replace(knobs, snapshot=snapshot, intervention=intervention)
        return spec, knobs.validate(spec)

    return sweep.Sweep(
        f"paper-regime-{config.size}",
        axes=(),
        branches=(
            sweep.Axis("depth", tuple(config.regime_depths)),
            sweep.Axis("benign_overlap", tuple(config.regime_overlaps)),
            sweep.Axis("arm", REGIME_ARMS),
        ),
        branch_after="safety",
        seeds=config.regime_seeds,
        build=build,
        measure=sweep.HistoryMetrics(
            trajectories=(("benign", ("alignment", "harmfulness", "harmfulness_heldout")),)
        ),
    )


FITTED = ("alignment_step1", "alignment_step20")
PAPER_TARGET = np.asarray([PAPER[name][0] for name in FITTED])


def regime_predictions(cell: sweep.SweepResult) -> dict:
    """The fitted cell's numbers at T the fit did not use: alignment and held-out harm, baseline
    and blocked, and the alignment-harm rank correlation."""
    base, blocked = cell.select(arm="none"), cell.select(arm="block")
    last = int(base.record_steps(ALIGNMENT)[-1])
    return {
        "alignment_step100": mean_sd(alignment_at(base, last)),
        "harmfulness_heldout_step100": mean_sd(harm_at(base, last, held_out=True)),
        "harmfulness_heldout_blocked": mean_sd(harm_at(blocked, last, held_out=True)),
        "alignment_blocked_step100": mean_sd(alignment_at(blocked, last)),
        "spearman_alignment_harmfulness": spearman_by_step(
            base.valid(ALIGNMENT)[:, 1:], base.valid("metrics/benign/harmfulness")[:, 1:]
        )["pooled"],
    }


def regime_nulls(res: sweep.SweepResult, fitted: dict, config: Config) -> dict:
    """The nulls the fitted cell's figure draws: isotropic, and the overlap-0 branch at the fitted
    depth from the same theta_S when the grid has it."""
    isotropic = {"null_p99_isotropic": nulls.isotropic_null(regime_spec(config))}
    if 0.0 not in config.regime_overlaps:
        return isotropic
    control = res.select(depth=fitted["depth"], benign_overlap=0.0, arm="none").valid(ALIGNMENT)
    treated = res.select(**fitted, arm="none").valid(ALIGNMENT)[:, 1:]
    null = nulls.quantile_null(control[:, 1:])
    return {
        **isotropic,
        "null_p99_same_basis_overlap0": null,
        "fraction_above_same_basis_overlap0_null": nulls.fraction_above(treated, null),
        "alignment_overlap0_step100": mean_sd(control[:, -1]),
        "note": "the overlap-0 branch at the fitted depth, from the same theta_S; its "
        "inputs keep hazard-topic features at the background rate (benign_disjoint 0)",
    }


def paper_regime(res: sweep.SweepResult, config: Config) -> dict:
    """Fit (depth, overlap) to the paper's alignment at steps 1 and 20 (least squares over the
    cells' mean baseline alignment); predict the rest; every cell within the fit's noise with its
    predictions, and each prediction's range over them; the nulls the fitted cell's figure
    draws."""
    base = res.select(arm="none")
    means = readout.means_by_cell(base, ALIGNMENT, (1, 20))
    cells = {cell: tuple(means[cell]) for cell in np.ndindex(means.shape[:2])}
    (i, j), distance = calibration.nearest_cell(cells, tuple(PAPER_TARGET))
    depth, overlap = config.regime_depths[i], config.regime_overlaps[j]
    fitted = {"depth": depth, "benign_overlap": overlap}
    squared_distance = np.sum((means - PAPER_TARGET) ** 2, axis=-1)
    per_seed = np.stack([base.valid(ALIGNMENT, step=t) for t in (1, 20)], axis=-1)
    near = calibration.within_noise(squared_distance, (i, j), per_seed[i, j], PAPER_TARGET)
    return {
        "fitted_knobs": {"safety_steps": depth, "benign_overlap": overlap},
        "fit_rule": "least squares: mean alignment at steps 1 and 20 against the paper's",
        "fitted": dict(zip(FITTED, map(float, means[i, j]), strict=True)),
        "fitted_paper": {name: PAPER[name][0] for name in FITTED},
        "squared_distance": distance,
        "squared_distance_by_cell": squared_distance.tolist(),
        "predicted": regime_predictions(res.select(**fitted)),
        "within_noise": regime_within_noise(res, means, squared_distance, near, config),
        "paper": published.AT_T,
        "nulls": regime_nulls(res, fitted, config),
        "n_histories": res.n_histories,
    }


def regime_within_noise(res, means, squared_distance, near: dict, config: Config) -> dict:
    """Every cell whose squared distance to the paper is within the best fit's bootstrap noise
    (`calibration.within_noise`: the minimum + 1.96 bootstrap SE over the fitted cell's seeds),
    nearest first, each with its fitted observables and its predictions; and each prediction's
    range [lowest, highest] over those cells."""
    found = []
    for a, b in near["cells"]:
        depth, overlap = config.regime_depths[a], config.regime_overlaps[b]
        found.append(
            {
                "safety_steps": depth,
                "benign_overlap": overlap,
                "squared_distance": float(squared_distance[a, b]),
                "fitted": dict(zip(FITTED, map(float, means[a, b]), strict=True)),
                "predicted": regime_predictions(res.select(depth=depth, benign_overlap=overlap)),
            }
        )
    return {
        "rule": "squared distance <= the fitted cell's + 1.96 x its bootstrap SE over seeds",
        "edge": near["edge"],
        "bootstrap_se": near["bootstrap_se"],
        "n_cells": len(found),
        "n_grid": int(squared_distance.size),
        "cells": found,
        "predicted_range": calibration.prediction_ranges([c["predicted"] for c in found]),
    }


def other_world(res: sweep.SweepResult, name: str, spec) -> dict:
    """A control world's numbers beside the main ones (its pretraining, its REFUSE mass), and
    its benign drift beyond the un-refuse directions against its own same-basis control."""
    knobs = dataclasses.replace(_DEFAULT, **WORLDS[name])
    world = res.select(world=name, arm="benign")
    numbers = {
        "hazard_rate": knobs.hazard_rate,
        "harm_prob": knobs.harm_prob,
        "pretrain_refuse_mass": knobs.hazard_rate * (1.0 - knobs.harm_prob),
        **readout.harm_and_alignment(world, spec.phases[-1].steps),
    }
    if not witnessed(res):
        return numbers
    witnesses = control_witness_null(world, spec.drift_snapshots)["control_witness"]
    numbers["null_p99_control_witness"] = witnesses["alignment_p99"]
    numbers["alignment_at_kept_steps"] = witnesses["alignment_v_rev"]
    if "control" in ran(res, "arm"):
        control = res.select(world=name, arm="control")
        numbers["unrefuse_witness"] = unrefuse_summary(world, control, spec.drift_snapshots)
    return numbers


def ran(res: sweep.SweepResult, axis: str) -> list[str]:
    """The worlds or arms this result holds (all of them unless `--set` cut them down)."""
    return [str(value) for value in res.axis_values(axis)]


def witnessed(res: sweep.SweepResult) -> bool:
    """Whether the witnesses were trained (`witnesses`), their cosines among the outputs."""
    return any(name.startswith("control_witness/") for name in res.arrays)


def summarise_model(res: sweep.SweepResult, spec) -> dict:
    """The JSON numbers of one model family (runs that diverged are excluded and named): the
    main world's benign run against its nulls, the same-basis control fine-tunings, the control
    witnesses and the control worlds (those that ran: the config can leave them out)."""
    main = res.select(world="main", arm="benign")
    last = spec.phases[-1].steps
    steps = [t for t in (1, 20, last) if t in main.record_steps(ALIGNMENT)]
    numbers = means_at(main, ["alignment"], steps)
    found = nulls.drift_nulls(main.runs("drift"), main.runs("drift_matched"), main.runs("v_rev"))
    numbers.update(found)
    numbers.update(readout.alignment_harm_correlation(main, nulls.strictest(found)))
    numbers.update(readout.refusal_shift(main, last))
    numbers.update(readout.alignment_specificity(main, spec.directions, last))
    numbers["pretrain_refuse_mass"] = REFUSE_MASS
    numbers["n_seeds"] = int((~main.diverged).sum())
    numbers["diverged_runs"] = np.flatnonzero(main.diverged).tolist()
    arms, witnesses = ran(res, "arm"), witnessed(res)
    control = res.select(world="main", arm="control") if "control" in arms else None
    if control is not None:
        numbers.update(nulls.same_basis_nulls(main, control, last))
    if "control_background" in arms:
        background = res.select(world="main", arm="control_background")
        numbers["same_basis_background"] = nulls.same_basis_nulls(main, background, last)
    if witnesses:
        numbers.update(control_witness_null(main, spec.drift_snapshots))
    if witnesses and control is not None:
        numbers["unrefuse_witness"] = unrefuse_summary(main, control, spec.drift_snapshots)
    numbers["controls"] = {name: other_world(res, name, spec) for name in ran(res, "world")[1:]}
    return numbers


WORLD_STYLE = {
    "harm_prob_0": ("#9467bd", "--", "never-harmful world (harm_prob 0)"),
    "refuse_matched": ("#e377c2", "-.", "REFUSE-matched world (harm_prob 0, hazard_rate 0.02)"),
}
NULL_STYLE = {
    "null_p99_isotropic": ("isotropic null p99", "#999999", ":"),
    "null_p99_matched": ("matched null p99 (other history)", plotting.COLORS["null"], "--"),
    "null_p99_benign_drift": ("matched null p99 (benign drifts)", "#8c564b", "-."),
    "null_p99_same_basis": ("same-basis null p99 (disjoint control)", "#2ca02c", "--"),
}
ANSWER_STYLE = (
    ("harmfulness", "harmfulness", "#d62728", "-"),
    ("refusal", "refusal", "#2ca02c", "--"),
    ("other", "other answers", "#7f7f7f", ":"),
)
PROBE_STYLE = (
    ("alignment_benign_probes", "matched benign probes", "#17becf", "--"),
    ("alignment_hazard_specific", "hazard-specific", "#bcbd22", "-."),
)
STEP = "benign step t"


def bands(res: sweep.SweepResult, styles, world: str = "main", arm: str = "benign") -> list:
    """Benign-phase metrics of one (world, arm) cell, every run, as band lines: styles hold
    (metric, label, color, linestyle)."""
    cell = res.select(world=world, arm=arm)
    return [(cell[f"metrics/benign/{metric}"], *style) for metric, *style in styles]


def world_bands(res: sweep.SweepResult, metric: str, prefix: str = "") -> list:
    """One benign-phase metric of each control world (never-harmful, REFUSE-matched) as band
    lines, labelled in full or, after a `prefix`, by the world's short name."""
    return [
        bands(res, [(metric, prefix + label.split(" (")[0] if prefix else label, *style)], name)[0]
        for name, (*style, label) in WORLD_STYLE.items()
        if name in ran(res, "world")
    ]


def plot_alignment(ax, steps, res, n: dict, model: str) -> None:
    """Alignment with v_rev against every null, the disjoint control fine-tuning, the control
    witnesses (at the kept steps) and the paper's points."""
    v_rev = ("alignment", "cos(drift, v_rev)", plotting.COLORS[model], "-")
    plotting.mean_bands(ax, steps, bands(res, [v_rev]))
    controlled = "control" in ran(res, "arm")
    drawn = [name for name in NULL_STYLE if controlled or name != "null_p99_same_basis"]
    plotting.null_lines(ax, [(n[name], *NULL_STYLE[name]) for name in drawn])
    if controlled:
        control = ("alignment", "control fine-tuning, truly disjoint", "#2ca02c", ":")
        plotting.mean_bands(ax, steps, bands(res, [control], arm="control"))
    if "control_witness" in n:
        plot_witnesses(ax, n["control_witness"])
    plotting.published_points(ax, PAPER_POINTS)
    title = f"{model}: alignment with v_rev"
    plotting.finish(ax, STEP, "alignment", title, fontsize=6, loc="lower right")
    ax.set_ylim(-0.2, 1.0)


def plot_witnesses(ax, found: dict) -> None:
    """The benign drift's cosine with the control witnesses at the kept steps, and their p99."""
    plotting.null_lines(ax, [(found["alignment_p99"], "control-witness null p99", "#e377c2", "--")])
    by_step = [entry["control_witness"] for entry in found["by_step"]]
    label = "cos(drift, control witness)"
    plotting.stats_errorbar(
        ax, found["steps"], by_step, ls="none", color="#e377c2", ms=3.5, capsize=2, label=label
    )


def plot_answers(ax, steps, res, n: dict) -> None:
    """Harmful, refusing and other answers on hazardous probes, and the worlds' held-out harm."""
    lines = [*bands(res, ANSWER_STYLE), *world_bands(res, "harmfulness_heldout", "held-out harm, ")]
    title = f"harmfulness; Spearman {n['spearman_alignment_harmfulness']:.2f}"
    ylabel = "probability on hazardous probes"
    plotting.band_panel(ax, steps, lines, STEP, ylabel, title, ylim=(0, 1), fontsize=6.5)


def plot_definitions(ax, steps, res, directions) -> None:
    """Alignment with each definition of v_rev."""
    by_definition = np.asarray(res.select(world="main", arm="benign")[DEFINITION])
    lines = [(by_definition[..., i], name, f"C{i}", "-") for i, name in enumerate(directions)]
    title = "v_rev definitions"
    plotting.band_panel(ax, steps, lines, STEP, "alignment", title, ylim=(-0.2, 1.0), fontsize=7)


def plot_specificity(ax, steps, res, model: str) -> None:
    """Alignment on hazardous, matched benign and hazard-specific probes, and in control worlds."""
    hazardous = ("alignment", "hazardous probes", plotting.COLORS[model], "-")
    lines = [*bands(res, [hazardous, *PROBE_STYLE]), *world_bands(res, "alignment")]
    title = "specificity controls" + (", control worlds" if len(ran(res, "world")) > 1 else "")
    plotting.band_panel(ax, steps, lines, STEP, "cos with v_rev", title, ylim=(-0.2, 1), fontsize=6)


def arm_bands(cell: sweep.SweepResult, name: str) -> list:
    """The fitted cell's baseline and v_rev-blocked arms of one output as band lines."""
    arms = [("none", "baseline", "mlp"), ("block", "v_rev blocked", "block")]
    return [
        (cell.select(arm=a).valid(name), label, plotting.COLORS[c], "-") for a, label, c in arms
    ]


def plot_regime_alignment(ax, steps, res, fitted: dict, found: dict) -> None:
    """Alignment in the fitted cell, baseline and blocked, with the nulls and the paper."""
    plotting.mean_bands(ax, steps, arm_bands(res.select(**fitted), ALIGNMENT))
    if "null_p99_same_basis_overlap0" in found:
        control = res.select(depth=fitted["depth"], benign_overlap=0.0, arm="none")
        label = "overlap 0, same theta_S"
        plotting.mean_bands(ax, steps, [(control.valid(ALIGNMENT), label, "#7f7f7f", ":")])
        same_basis = (found["null_p99_same_basis_overlap0"], "its p99 (same-basis null)")
        plotting.null_lines(ax, [(*same_basis, "#7f7f7f", "--")])
    plotting.null_lines(ax, [(found["null_p99_isotropic"], *NULL_STYLE["null_p99_isotropic"])])
    plotting.published_points(ax, PAPER_POINTS)
    mean, sd = published.ALIGNMENT_BLOCKED
    plotting.paper_star(ax, 100, mean, sd, color="#2ca02c", capsize=2, label="paper, blocked")
    cell = f"overlap {fitted['benign_overlap']}, {fitted['depth']} safety steps"
    title = f"paper regime (MLP, {cell})"
    plotting.finish(ax, STEP, "cos(drift, v_rev)", title, fontsize=6, loc="center right")
    ax.set_ylim(-1.0, 1.0)


def plot_regime_harm(ax, steps, cell: sweep.SweepResult) -> None:
    """Held-out harm in the fitted cell, baseline and blocked, with the paper's values at T."""
    plotting.mean_bands(ax, steps, arm_bands(cell, HELD_OUT))
    plotting.paper_stars(
        ax, 100, published.HELD_OUT_HARM, {"baseline": "k", "blocked": "#2ca02c"}, capsize=2
    )
    top = float(np.nanmax(np.nanmean(cell.valid(HELD_OUT), axis=1))) + 0.05
    title = "held-out harm, fitted cell"
    plotting.finish(ax, STEP, "held-out harmfulness", title, fontsize=7)
    ax.set_ylim(0, max(0.5, top))


def plot_regime_bars(ax, predicted: dict) -> None:
    """Held-out harm at T, baseline and blocked: the paper's bars beside the fitted cell's."""
    toy = [predicted["harmfulness_heldout_step100"], predicted["harmfulness_heldout_blocked"]]
    paper = ("paper", *zip(*published.HELD_OUT_HARM.values(), strict=True), "#bbbbbb")
    colors = [plotting.COLORS["mlp"], plotting.COLORS["block"]]
    fitted = ("toy, fitted cell", [v["mean"] for v in toy], [v["sd"] for v in toy], colors)
    plotting.bar_groups(ax, ["baseline", "v_rev blocked"], [paper, fitted])
    ax.set(ylabel="held-out harmfulness at T = 100", title="blocking at T: paper vs toy")
    ax.legend(frameon=False, fontsize=7)


def plot_regime_fit(ax, found: dict, fitted: dict, config: Config) -> None:
    """The calibration map: squared distance to the paper per cell, the fitted cell boxed, the
    other cells within the fit's noise boxed dashed."""
    overlaps, depths = config.regime_overlaps, config.regime_depths
    label = "squared distance to the paper (steps 1, 20)"
    grid = np.asarray(found["squared_distance_by_cell"])
    plotting.heatmap(ax, grid, overlaps, depths, label=label, fmt="{:.3f}")
    for cell in found["within_noise"]["cells"]:
        i = depths.index(cell["safety_steps"])
        j = overlaps.index(cell["benign_overlap"])
        best = (cell["safety_steps"], cell["benign_overlap"]) == tuple(fitted.values())
        style = {"ls": "-", "lw": 2} if best else {"ls": "--", "lw": 1}
        box = plotting.plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="#d62728", **style)
        ax.add_patch(box)
    title = f"the fit (boxed; dashed: {found['within_noise']['n_cells'] - 1} more within noise)"
    ax.set(xlabel="benign_overlap", ylabel="safety steps", title=title)


def plot_regime(row, res: sweep.SweepResult, found: dict, config: Config) -> None:
    """The paper's two figures redrawn in the fitted cell: alignment against step (with the
    paper's points and the nulls), and held-out harm, baseline against blocked; then the bars at
    T beside the paper's, and the calibration map the cell was fitted on."""
    knobs = found["fitted_knobs"]
    fitted = {"depth": knobs["safety_steps"], "benign_overlap": knobs["benign_overlap"]}
    steps = regime_spec(config).phase("benign").record_steps
    plot_regime_alignment(row[0], steps, res, fitted, found["nulls"])
    plot_regime_harm(row[1], steps, res.select(**fitted))
    plot_regime_bars(row[2], found["predicted"])
    plot_regime_fit(row[3], found, fitted, config)


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    """Per model: the three worlds (a vmapped trunk axis), each seed's theta_S branching into the
    benign run and the two same-basis control fine-tunings; the control witnesses once per
    trunk inside the same program (fewer where `worlds`, `arms` or `witnesses` say so)."""
    out = {}
    for model in config.models:
        spec = reversion_spec(model, config.size)

        def build(world, arm, spec=spec):
            world_knobs = {**WORLDS[world], **ARMS[arm]}
            return spec, presets.standard_knobs(spec, config.learning_rate, **world_knobs).validate(
                spec
            )

        witnesses = WithControlWitnesses(config.learning_rate, unrefuse=UNREFUSE)
        out[model] = sweep.Sweep(
            f"{model}-{config.size}",
            axes=(sweep.Axis("world", tuple(config.worlds)),),
            branches=(sweep.Axis("arm", tuple(config.arms)),),
            branch_after="safety",
            seeds=config.seeds,
            build=build,
            measure=witnesses if config.witnesses else None,
        )
    if config.regime_seeds:
        out["paper_regime"] = regime_sweep(config)
    return out


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    numbers = {
        model: summarise_model(res, reversion_spec(model, config.size))
        for model, res in results.items()
        if model in config.models
    }
    if "paper_regime" in results:
        numbers["paper_regime"] = paper_regime(results["paper_regime"], config)
    numbers["paper"] = {k: {"mean": m, "sd": s} for k, (m, s) in PAPER.items()}
    numbers["paper"]["spearman_alignment_harmfulness"] = published.SPEARMAN_ALIGNMENT_HARM
    return numbers


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    """A row per model (alignment, answers, v_rev definitions, specificity), then the paper
    regime's row when it was run."""
    models = [m for m in results if m in config.models]
    regime = "paper_regime" in results and "paper_regime" in numbers
    fig, axes = plotting.figure(4, len(models) + regime, width=3.9, height=3.3)
    for row, model in zip(axes, models, strict=False):
        spec, res, n = reversion_spec(model, config.size), results[model], numbers[model]
        steps = spec.phases[-1].record_steps
        plot_alignment(row[0], steps, res, n, model)
        plot_answers(row[1], steps, res, n)
        plot_definitions(row[2], steps, res, spec.directions)
        plot_specificity(row[3], steps, res, model)
    if regime:
        plot_regime(axes[-1], results["paper_regime"], numbers["paper_regime"], config)
    return plotting.save(fig, path, "Reversion along v_rev during benign fine-tuning")


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "the main track: alignment of benign drift with v_rev against nulls"
)
