"""The paper's main track: benign drift acquires a component along v_rev, early and strongly.

For each model family the standard history (`gravity.presets`) runs over many seeds with the
benign phase recorded at every step t = 1..100. Measured, per run and step:
- alignment(t) = cos(drift_t, v_rev), v_rev the stacked activation displacement theta_S -> theta_H
  on hazardous probes (the default), against two nulls: the isotropic null's exact p99 in the
  stacked dimension, and the matched nulls (v_rev of an independent history; directions drawn
  from other histories' benign drifts), from drift fields kept at a few steps;
- harmfulness(t), and the Spearman correlation of alignment with harmfulness over run-steps;
- the v_rev definitions of `gravity.geometry.DIRECTIONS` side by side;
- specificity controls: the same cosine for the matched benign probes' drift, the hazard-specific
  cosine (common-mode drift removed), and where the refusal mass lost in benign fine-tuning goes.

Controls in the same basis (fixed before the results were seen): every seed's theta_S also
branches into a *control fine-tuning* on benign data from the other topics only
(`benign_overlap = 0`), whose drift is compared with the same v_rev: the p99 of its alignment
over run-steps is the same-basis null (`null_p99_same_basis`), and the p99 of its hazard-specific
cosine is the null of the hazard-specific cosine. The control is truly disjoint from the hazard
topic (`benign_disjoint = 1`: its inputs carry no hazard-topic feature or token); the earlier
control, whose inputs keep hazard-topic features at the background rate `p_off`, runs beside it
(`same_basis_background`).

Control witnesses, a same-basis null for the *direction* (construction fixed before any result
was looked at; `gravity.controls` builds them). From each seed's theta_S, four histories branch
through a phase of the witness phase's size that changes a *harmless* behaviour (the task answer
shifted by +1 or +2 on target inputs: the hazard topic without the hazard, or the other topics;
2 targets x 2 shifts), each direction taken where its activation distance from theta_S on the
hazardous probes is nearest the seed's witness distance (both reported, and the full-length
direction's numbers beside). The benign drift's cosine with these control directions at the kept
drift steps (mean, p99: `null_p99_control_witness`) is reported against its cosine with v_rev at
the same run-steps. They are computed once per seed inside the tree's program (they depend on
the shared past only), not per branch.

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
`benign_overlap` (0 ... 1) and the safety-alignment depth (25 ... 400 steps, snapshots of one
phase), are fitted to two of the paper's numbers only, the mean alignment after the first benign
update (0.429) and at step 20 (0.647), by least squares over the grid (`gravity.calibration`);
every other number of the paper's table (final alignment, held-out harmfulness without and with
blocking, blocked alignment, Spearman) is then read off that cell with no further tuning and
reported beside the paper's. The figure's last row redraws the paper's two figures in that cell
(alignment against step with the paper's points and nulls; held-out harm, baseline against
blocked): the isotropic p99 and the same-basis null of the overlap-0 branch at the fitted depth
(a control fine-tuning from the same theta_S; that sweep keeps the background rate).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np
import scipy.stats

from gravity import calibration, geometry, interventions, plotting, presets, sweep
from gravity.controls import CONTROL_SHIFTS, CONTROL_TARGET_NAMES, WithControlWitnesses
from gravity.experiment import Experiment
from gravity.models import network
from gravity.spec import with_phase
from gravity.stats import mean_sd, spearman_by_step
from gravity.worlds import WorldKnobs

NAME = "reversion"
DEFINITIONS = ("stacked", "mean", "trajectory_pca", "from_pretrained")
SNAPSHOTS = (1, 5, 20, 50, 100)
PAPER = {
    "alignment_step1": (0.429, 0.052),
    "alignment_step20": (0.647, 0.021),
    "alignment_step100": (0.648, 0.009),
}
PAPER_BLOCKED = {"alignment_step100": (-0.211, 0.021)}
PAPER_HARM = {"baseline": (0.190, 0.040), "blocked": (0.085, 0.015)}


REGIME_OVERLAPS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
REGIME_DEPTHS = (25, 50, 100, 200, 400)
REGIME_ARMS = ("none", "block")
PAPER_PREDICTED = {
    "alignment_step100": 0.648,
    "harmfulness_heldout_step100": 0.190,
    "harmfulness_heldout_blocked": 0.085,
    "alignment_blocked_step100": -0.211,
    "spearman_alignment_harmfulness": 0.958,
}

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
class Config:
    seeds: int = 16
    models: tuple[str, ...] = presets.MODELS
    learning_rate: float = 1e-3
    size: str = "standard"
    regime_seeds: int = 8
    regime_overlaps: tuple[float, ...] = REGIME_OVERLAPS
    regime_depths: tuple[int, ...] = REGIME_DEPTHS


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
        knobs = dataclasses.replace(
            knobs,
            snapshot=config.regime_depths.index(depth),
            intervention=interventions.index(arm),
        )
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


PAPER_TARGET = np.asarray([PAPER["alignment_step1"][0], PAPER["alignment_step20"][0]])


def activation_dim(spec) -> int:
    """The stacked dimension N x D of the activations v_rev lives in."""
    net = network(spec.model, spec.world)
    probes = spec.world.probe_set(WorldKnobs(), spec.n_probes).hazard.inputs
    shape = jax.eval_shape(lambda: net.activations(net.init(jax.random.key(0)), probes)).shape
    return int(np.prod(shape))


def regime_cell(config: Config, fitted: dict) -> tuple[int, int]:
    return (
        config.regime_depths.index(fitted["safety_steps"]),
        config.regime_overlaps.index(fitted["benign_overlap"]),
    )


def regime_predictions(res: sweep.SweepResult, align, cell_index) -> dict:
    """The fitted cell's numbers at T the fit did not use: alignment and held-out harm, baseline
    and blocked, and the alignment-harm rank correlation."""
    i, j = cell_index
    harm = res.valid("metrics/benign/harmfulness_heldout")[i, j]
    base_align, base_harm = align[i, j, 0], res.valid("metrics/benign/harmfulness")[i, j, 0]
    return {
        "alignment_step100": mean_sd(base_align[:, -1]),
        "harmfulness_heldout_step100": mean_sd(harm[0, :, -1]),
        "harmfulness_heldout_blocked": mean_sd(harm[1, :, -1]),
        "alignment_blocked_step100": mean_sd(align[i, j, 1, :, -1]),
        "spearman_alignment_harmfulness": spearman_by_step(base_align[:, 1:], base_harm[:, 1:])[
            "pooled"
        ],
    }


def regime_nulls(align, cell_index, config: Config) -> dict:
    """The nulls the fitted cell's figure draws: isotropic, and the overlap-0 branch at the fitted
    depth from the same theta_S when the grid has it."""
    i, j = cell_index
    nulls = {
        "null_p99_isotropic": geometry.isotropic_null_quantile(
            activation_dim(regime_spec(config)), 0.99
        )
    }
    if 0.0 in config.regime_overlaps:
        control = align[i, config.regime_overlaps.index(0.0), 0, :, 1:]
        null = float(np.nanquantile(control, 0.99))
        nulls.update(
            {
                "null_p99_same_basis_overlap0": null,
                "fraction_above_same_basis_overlap0_null": float(
                    np.mean(align[i, j, 0, :, 1:] > null)
                ),
                "alignment_overlap0_step100": mean_sd(control[:, -1]),
                "note": "the overlap-0 branch at the fitted depth, from the same theta_S; its "
                "inputs keep hazard-topic features at the background rate (benign_disjoint 0)",
            }
        )
    return nulls


def paper_regime(res: sweep.SweepResult, config: Config) -> dict:
    """Fit (depth, overlap) to the paper's alignment at steps 1 and 20; predict the rest; the
    nulls the fitted cell's figure draws."""
    align = res.valid("metrics/benign/alignment")  # (depth, overlap, arm, seeds, steps)
    means = {
        (i, j): (np.nanmean(align[i, j, 0, :, 1]), np.nanmean(align[i, j, 0, :, 20]))
        for i in range(align.shape[0])
        for j in range(align.shape[1])
    }
    depths, overlaps = range(align.shape[0]), range(align.shape[1])
    (i, j), distance = calibration.nearest_cell(means, tuple(PAPER_TARGET))
    return {
        "fitted_knobs": {
            "safety_steps": config.regime_depths[i],
            "benign_overlap": config.regime_overlaps[j],
        },
        "fit_rule": "least squares: mean alignment at steps 1 and 20 against the paper's",
        "fitted": {
            "alignment_step1": float(means[(i, j)][0]),
            "alignment_step20": float(means[(i, j)][1]),
        },
        "fitted_paper": {
            "alignment_step1": PAPER["alignment_step1"][0],
            "alignment_step20": PAPER["alignment_step20"][0],
        },
        "squared_distance": distance,
        "squared_distance_by_cell": [
            [float(np.sum((np.asarray(means[(a, b)]) - PAPER_TARGET) ** 2)) for b in overlaps]
            for a in depths
        ],
        "predicted": regime_predictions(res, align, (i, j)),
        "paper": PAPER_PREDICTED,
        "nulls": regime_nulls(align, (i, j), config),
        "n_histories": res.n_histories,
    }


def at_step(values, steps, t):
    return np.asarray(values)[:, list(steps).index(t)]


def same_basis(m: dict, control: dict, steps, last: int) -> dict:
    """The same-basis nulls of a control fine-tuning from the same theta_S."""
    after = steps >= 1
    null = float(np.nanquantile(control["alignment"][:, after], 0.99))
    specific = float(np.nanquantile(control["alignment_hazard_specific"][:, after], 0.99))
    return {
        "null_p99_same_basis": null,
        "fraction_above_same_basis_null": float(np.mean(m["alignment"][:, after] > null)),
        f"alignment_control_finetune_step{last}": mean_sd(
            at_step(control["alignment"], steps, last)
        ),
        f"harmfulness_control_finetune_step{last}": mean_sd(
            at_step(control["harmfulness_heldout"], steps, last)
        ),
        "hazard_specific_null_p99": specific,
        "fraction_hazard_specific_above_its_null": float(
            np.mean(m["alignment_hazard_specific"][:, after] > specific)
        ),
    }


def control_witness_numbers(m: dict, witnesses: dict, steps, kept) -> dict:
    """The benign drift against the control witnesses' directions, at the kept drift steps."""
    rows = [list(steps).index(t) for t in kept]
    v_rev = np.asarray(m["alignment"])[:, rows]  # (R, kept)
    align = np.asarray(witnesses["alignment"], dtype=float)  # (R, kept, K)
    full = np.asarray(witnesses["alignment_full"], dtype=float)
    p99 = float(np.nanquantile(align, 0.99))
    n_shifts = len(CONTROL_SHIFTS)
    by_target = {
        name: {
            "alignment_mean": float(np.nanmean(align[..., k * n_shifts : (k + 1) * n_shifts])),
            "alignment_p99": float(
                np.nanquantile(align[..., k * n_shifts : (k + 1) * n_shifts], 0.99)
            ),
            "distance_ratio": mean_sd(
                np.asarray(witnesses["distance"])[:, k * n_shifts : (k + 1) * n_shifts]
                / np.asarray(witnesses["witness_distance"])[:, None]
            ),
        }
        for k, name in enumerate(CONTROL_TARGET_NAMES)
    }
    witness = np.asarray(witnesses["witness_distance"], dtype=float)
    return {
        "steps": [int(t) for t in kept],
        "alignment_v_rev": mean_sd(v_rev),
        "alignment_mean": float(np.nanmean(align)),
        "alignment_sd": float(np.nanstd(align)),
        "alignment_p99": p99,
        "fraction_v_rev_above_p99": float(np.mean(v_rev > p99)),
        "fraction_v_rev_above_its_own_witnesses": float(
            np.mean(np.all(v_rev[..., None] > align, axis=-1))
        ),
        "by_step": [
            {
                "step": int(t),
                "v_rev": mean_sd(v_rev[:, s]),
                "control_witness": mean_sd(align[:, s]),
            }
            for s, t in enumerate(kept)
        ],
        "by_target": by_target,
        "full_length": {
            "alignment_mean": float(np.nanmean(full)),
            "alignment_p99": float(np.nanquantile(full, 0.99)),
        },
        "distance_witness": mean_sd(witness),
        "distance_control_witness": mean_sd(witnesses["distance"]),
        "distance_ratio": mean_sd(np.asarray(witnesses["distance"]) / witness[:, None]),
        "distance_control_witness_full_length": mean_sd(witnesses["distance_full"]),
        "matched_at_step": mean_sd(witnesses["step"]),
        "cos_control_witness_v_rev": mean_sd(witnesses["cos_v_rev"]),
        "n_directions": int(np.asarray(witnesses["distance"]).size),
    }


def other_world(world: dict, steps, kept, last: int, knobs: dict) -> dict:
    """A control world's numbers beside the main ones (its pretraining, its REFUSE mass)."""
    hazard_rate = knobs.get("hazard_rate", _DEFAULT.hazard_rate)
    harm_prob = knobs.get("harm_prob", _DEFAULT.harm_prob)
    m = world["benign"]
    numbers = {
        "hazard_rate": hazard_rate,
        "harm_prob": harm_prob,
        "pretrain_refuse_mass": hazard_rate * (1.0 - harm_prob),
        "harmfulness_pretrained": mean_sd(world["pretrain"]["harmfulness"][:, -1]),
        "harmfulness_aligned": mean_sd(m["harmfulness"][:, 0]),
        f"alignment_step{last}": mean_sd(at_step(m["alignment"], steps, last)),
        f"alignment_hazard_specific_step{last}": mean_sd(
            at_step(m["alignment_hazard_specific"], steps, last)
        ),
        f"harmfulness_step{last}": mean_sd(at_step(m["harmfulness"], steps, last)),
        f"harmfulness_heldout_step{last}": mean_sd(at_step(m["harmfulness_heldout"], steps, last)),
    }
    if "control_witness" in world:
        witnesses = control_witness_numbers(m, world["control_witness"], steps, kept)
        numbers["null_p99_control_witness"] = witnesses["alignment_p99"]
        numbers["alignment_at_kept_steps"] = witnesses["alignment_v_rev"]
    return numbers


def arrays(out: dict) -> dict:
    """One cell's arrays, runs that diverged dropped: metrics by phase, control witnesses."""
    ok = ~np.asarray(out["diverged"])
    picked = {
        phase: {k: np.asarray(v)[ok] for k, v in metrics.items()}
        for phase, metrics in out["metrics"].items()
    }
    if "control_witness" in out:
        picked["control_witness"] = {
            k: np.asarray(v)[ok] for k, v in out["control_witness"].items()
        }
    return picked


def reversion_nulls(drift, drift_matched, v_rev) -> dict:
    """The three p99 nulls for cos(drift, v_rev): isotropic in v_rev's dimension, another
    history's v_rev, and the benign drifts of a matched history."""
    dim = int(np.prod(v_rev.shape[1:]))
    return {
        "null_p99_isotropic": geometry.isotropic_null_quantile(dim, 0.99),
        "null_p99_matched": geometry.cross_history_null(drift, v_rev, 0.99),
        "null_p99_benign_drift": geometry.benign_drift_null(drift, drift_matched, 0.99),
        "null_dim": dim,
    }


def alignment_harm_numbers(m: dict, steps, threshold: float) -> dict:
    """How often alignment after step 0 clears the largest null, and how it ranks with harm."""
    after = steps >= 1
    align_all = m["alignment"][:, after]
    harm_all = m["harmfulness"][:, after]
    rho = scipy.stats.spearmanr(align_all.ravel(), harm_all.ravel()).statistic
    correlations = spearman_by_step(align_all, harm_all)
    return {
        "fraction_above_null": float(np.mean(align_all > threshold)),
        "run_step_pairs": int(align_all.size),
        "spearman_alignment_harmfulness": float(rho),
        "spearman_within_step_median": correlations["within_step_median"],
        "spearman_partial_step": correlations["partial_step"],
    }


def answer_shift_numbers(m: dict, safety: dict, steps, last: int) -> dict:
    """Answer probabilities aligned and at T, and where the refusal that was lost went."""
    refusal_lost = safety["refusal"][:, -1] - at_step(m["refusal"], steps, last)
    harm_gained = at_step(m["harmfulness"], steps, last) - safety["harmfulness"][:, -1]
    other_gained = at_step(m["other"], steps, last) - safety["other"][:, -1]
    return {
        f"harmfulness_heldout_step{last}": mean_sd(at_step(m["harmfulness_heldout"], steps, last)),
        "harmfulness_aligned": mean_sd(safety["harmfulness"][:, -1]),
        f"harmfulness_step{last}": mean_sd(at_step(m["harmfulness"], steps, last)),
        "refusal_aligned": mean_sd(safety["refusal"][:, -1]),
        f"refusal_step{last}": mean_sd(at_step(m["refusal"], steps, last)),
        "lost_refusal_to_harmful": mean_sd(harm_gained / refusal_lost),
        "lost_refusal_to_other": mean_sd(other_gained / refusal_lost),
    }


def specificity_numbers(m: dict, directions, steps, last: int) -> dict:
    """Alignment at T on benign probes, hazard-specific and in weights, and by v_rev definition."""
    by_definition = m["alignment_by_definition"]
    return {
        f"alignment_benign_probes_step{last}": mean_sd(
            at_step(m["alignment_benign_probes"], steps, last)
        ),
        f"alignment_hazard_specific_step{last}": mean_sd(
            at_step(m["alignment_hazard_specific"], steps, last)
        ),
        f"weight_alignment_step{last}": mean_sd(at_step(m["weight_alignment"], steps, last)),
        "alignment_by_definition": {
            name: {
                f"step{t}": mean_sd(at_step(by_definition[..., i], steps, t)) for t in (1, 20, last)
            }
            for i, name in enumerate(directions)
        },
    }


def witness_numbers(m: dict, out: dict, ok, steps, kept) -> dict:
    """The control-witness null and the fraction of v_rev alignments above it."""
    witnesses = {k: np.asarray(v)[ok] for k, v in out["control_witness"].items()}
    found = control_witness_numbers(m, witnesses, steps, kept)
    return {
        "null_p99_control_witness": found["alignment_p99"],
        "fraction_above_control_witness_null": found["fraction_v_rev_above_p99"],
        "control_witness": found,
    }


def summarise_model(
    out: dict,
    spec,
    control: dict | None = None,
    worlds: dict[str, dict] | None = None,
    background: dict | None = None,
) -> dict:
    """The JSON numbers of one model family (runs that diverged are excluded and named); with
    the same-basis control fine-tunings, the control witnesses and the control worlds when
    given (`worlds`: {name: that world's benign-arm cell})."""
    ok = ~np.asarray(out["diverged"])
    benign = spec.phases[-1]
    steps, last = benign.record_steps, benign.steps
    m = {k: np.asarray(v)[ok] for k, v in out["metrics"][benign.name].items()}
    safety = {k: np.asarray(v)[ok] for k, v in out["metrics"]["safety"].items()}
    nulls = reversion_nulls(
        np.asarray(out["drift"])[ok],
        np.asarray(out["drift_matched"])[ok],
        np.asarray(out["v_rev"])[ok],
    )
    threshold = max(
        nulls["null_p99_isotropic"], nulls["null_p99_matched"], nulls["null_p99_benign_drift"]
    )
    numbers = {
        f"alignment_step{t}": mean_sd(at_step(m["alignment"], steps, t))
        for t in (1, 20, last)
        if t in steps
    }
    numbers.update(nulls)
    numbers.update(alignment_harm_numbers(m, steps, threshold))
    numbers.update(answer_shift_numbers(m, safety, steps, last))
    numbers.update(specificity_numbers(m, spec.directions, steps, last))
    numbers["pretrain_refuse_mass"] = REFUSE_MASS
    numbers["n_seeds"] = int(ok.sum())
    numbers["diverged_runs"] = np.flatnonzero(~ok).tolist()
    if control is not None:
        numbers.update(same_basis(m, arrays(control)["benign"], steps, last))
    if background is not None:
        numbers["same_basis_background"] = same_basis(m, arrays(background)["benign"], steps, last)
    if "control_witness" in out:
        numbers.update(witness_numbers(m, out, ok, steps, spec.drift_snapshots))
    if worlds:
        numbers["controls"] = {
            name: other_world(arrays(cell), steps, spec.drift_snapshots, last, WORLDS[name])
            for name, cell in worlds.items()
        }
    return numbers


WORLD_STYLE = {
    "harm_prob_0": ("#9467bd", "--", "never-harmful world (harm_prob 0)"),
    "refuse_matched": ("#e377c2", "-.", "REFUSE-matched world (harm_prob 0, hazard_rate 0.02)"),
}


def plot_worlds(ax, steps, controls, model: str, metric: str, prefix: str = "") -> None:
    """One benign-phase metric of each control world (never-harmful, REFUSE-matched)."""
    for name, world in (controls or {}).get(model, {}).get("worlds", {}).items():
        color, style, label = WORLD_STYLE[name]
        if prefix:
            label = prefix + label.split(" (")[0]
        plotting.mean_band(
            ax,
            steps,
            world["metrics"]["benign"][metric],
            color=color,
            linestyle=style,
            label=label,
        )


def plot_paper_alignment(ax) -> None:
    """The paper's alignment at steps 1, 5, 20, 50 and 100 as black stars."""
    for t, (mean, sd) in PAPER.items():
        step = int(t.removeprefix("alignment_step"))
        ax.errorbar(
            step, mean, yerr=sd, fmt="k*", ms=7, capsize=2, label="paper" if step == 1 else None
        )


def plot_null_lines(ax, n: dict) -> None:
    """The isotropic, other-history and benign-drift p99 nulls as horizontal lines."""
    ax.axhline(n["null_p99_isotropic"], color="#999999", ls=":", label="isotropic null p99")
    ax.axhline(
        n["null_p99_matched"],
        color=plotting.COLORS["null"],
        ls="--",
        label="matched null p99 (other history)",
    )
    ax.axhline(
        n["null_p99_benign_drift"],
        color="#8c564b",
        ls="-.",
        label="matched null p99 (benign drifts)",
    )


def plot_same_basis(ax, steps, n: dict, control: dict) -> None:
    """The disjoint control fine-tuning's alignment and its same-basis null."""
    ax.axhline(
        n["null_p99_same_basis"],
        color="#2ca02c",
        ls="--",
        label="same-basis null p99 (disjoint control)",
    )
    plotting.mean_band(
        ax,
        steps,
        control["metrics"]["benign"]["alignment"],
        color="#2ca02c",
        linestyle=":",
        label="control fine-tuning, truly disjoint",
    )


def plot_control_witness(ax, found: dict) -> None:
    """cos(drift, control witness) at the kept steps and that null's p99."""
    ax.axhline(found["alignment_p99"], color="#e377c2", ls="--", label="control-witness null p99")
    ax.errorbar(
        found["steps"],
        [entry["control_witness"]["mean"] for entry in found["by_step"]],
        yerr=[entry["control_witness"]["sd"] for entry in found["by_step"]],
        fmt="o",
        color="#e377c2",
        ms=3.5,
        capsize=2,
        label="cos(drift, control witness)",
    )


def label_benign_axes(ax, ylabel: str, ylim, title: str, legend_at: str) -> None:
    """Labels of an alignment panel over benign steps, and its small legend at `legend_at`."""
    ax.set(xlabel="benign step t", ylabel=ylabel, ylim=ylim, title=title)
    ax.legend(frameon=False, fontsize=6, loc=legend_at)


def plot_alignment(ax, steps, m: dict, n: dict, model: str, controls) -> None:
    """Alignment with v_rev against every null, the controls and the paper's points."""
    plotting.mean_band(
        ax, steps, m["alignment"], color=plotting.COLORS[model], label="cos(drift, v_rev)"
    )
    plot_null_lines(ax, n)
    if controls is not None:
        plot_same_basis(ax, steps, n, controls[model]["control"])
    if "control_witness" in n:
        plot_control_witness(ax, n["control_witness"])
    plot_paper_alignment(ax)
    label_benign_axes(ax, "alignment", (-0.2, 1.0), f"{model}: alignment with v_rev", "lower right")


def plot_answers(ax, steps, m: dict, n: dict, model: str, controls) -> None:
    """Harmful, refusing and other answers on hazardous probes, and the worlds' held-out harm."""
    plotting.mean_band(ax, steps, m["harmfulness"], color="#d62728", label="harmfulness")
    plotting.mean_band(ax, steps, m["refusal"], color="#2ca02c", linestyle="--", label="refusal")
    plotting.mean_band(ax, steps, m["other"], color="#7f7f7f", linestyle=":", label="other answers")
    plot_worlds(ax, steps, controls, model, "harmfulness_heldout", "held-out harm, ")
    ax.set(
        xlabel="benign step t",
        ylabel="probability on hazardous probes",
        ylim=(0, 1),
        title=f"harmfulness; Spearman {n['spearman_alignment_harmfulness']:.2f}",
    )
    ax.legend(frameon=False, fontsize=6.5)


def plot_definitions(ax, steps, m: dict, directions) -> None:
    """Alignment with each definition of v_rev."""
    by_definition = np.asarray(m["alignment_by_definition"])
    for i, name in enumerate(directions):
        plotting.mean_band(ax, steps, by_definition[..., i], label=name, color=f"C{i}")
    ax.set(xlabel="benign step t", ylabel="alignment", ylim=(-0.2, 1.0), title="v_rev definitions")
    ax.legend(frameon=False, fontsize=7)


def plot_specificity(ax, steps, m: dict, model: str, controls) -> None:
    """Alignment on hazardous, matched benign and hazard-specific probes, and in control worlds."""
    plotting.mean_band(
        ax, steps, m["alignment"], color=plotting.COLORS[model], label="hazardous probes"
    )
    plotting.mean_band(
        ax,
        steps,
        m["alignment_benign_probes"],
        color="#17becf",
        linestyle="--",
        label="matched benign probes",
    )
    plotting.mean_band(
        ax,
        steps,
        m["alignment_hazard_specific"],
        color="#bcbd22",
        linestyle="-.",
        label="hazard-specific",
    )
    plot_worlds(ax, steps, controls, model, "alignment")
    ax.set(
        xlabel="benign step t",
        ylabel="cos with v_rev",
        ylim=(-0.2, 1.0),
        title="specificity controls, control worlds",
    )
    ax.legend(frameon=False, fontsize=6)


def plot_models(
    results: dict, specs: dict, numbers: dict, path: Path, controls=None, regime=None
) -> Path:
    """A row per model (alignment, answers, v_rev definitions, specificity), then the paper
    regime's row when it was run."""
    rows = len(results) + (regime is not None)
    fig, axes = plotting.figure(4, rows, width=3.9, height=3.3)
    for row, (model, out) in zip(axes, results.items(), strict=False):
        spec, n = specs[model], numbers[model]
        benign = spec.phases[-1]
        steps = benign.record_steps
        m = out["metrics"][benign.name]
        plot_alignment(row[0], steps, m, n, model, controls)
        plot_answers(row[1], steps, m, n, model, controls)
        plot_definitions(row[2], steps, m, spec.directions)
        plot_specificity(row[3], steps, m, model, controls)
    if regime is not None:
        plot_regime(axes[-1], *regime)
    return plotting.save(fig, path, "Reversion along v_rev during benign fine-tuning")


def plot_baseline_blocked(ax, steps, values_RxT_by_arm) -> None:
    """The fitted cell's baseline and v_rev-blocked arms of one metric."""
    plotting.mean_band(
        ax, steps, values_RxT_by_arm[0], color=plotting.COLORS["mlp"], label="baseline"
    )
    plotting.mean_band(
        ax, steps, values_RxT_by_arm[1], color=plotting.COLORS["block"], label="v_rev blocked"
    )


def plot_regime_alignment(ax, steps, align, cell_index, nulls: dict, config: Config) -> None:
    """Alignment in the fitted cell, baseline and blocked, with the nulls and the paper."""
    i, j = cell_index
    cell = f"overlap {config.regime_overlaps[j]}, {config.regime_depths[i]} safety steps"
    plot_baseline_blocked(ax, steps, align[i, j])
    if "null_p99_same_basis_overlap0" in nulls:
        control = align[i, config.regime_overlaps.index(0.0), 0]
        plotting.mean_band(
            ax, steps, control, color="#7f7f7f", linestyle=":", label="overlap 0, same theta_S"
        )
        ax.axhline(
            nulls["null_p99_same_basis_overlap0"],
            color="#7f7f7f",
            ls="--",
            label="its p99 (same-basis null)",
        )
    ax.axhline(nulls["null_p99_isotropic"], color="#999999", ls=":", label="isotropic null p99")
    plot_paper_alignment(ax)
    mean, sd = PAPER_BLOCKED["alignment_step100"]
    plotting.paper_star(ax, 100, mean, sd, color="#2ca02c", capsize=2, label="paper, blocked")
    title = f"paper regime (MLP, {cell})"
    label_benign_axes(ax, "cos(drift, v_rev)", (-1.0, 1.0), title, "center right")


def plot_regime_harm(ax, steps, harm_AxRxT) -> None:
    """Held-out harm in the fitted cell, baseline and blocked, with the paper's values at T."""
    plot_baseline_blocked(ax, steps, harm_AxRxT)
    for (name, (mean, sd)), color in zip(PAPER_HARM.items(), ("k", "#2ca02c"), strict=True):
        plotting.paper_star(ax, 100, mean, sd, color=color, capsize=2, label=f"paper, {name}")
    ax.set(
        xlabel="benign step t",
        ylabel="held-out harmfulness",
        ylim=(0, max(0.5, float(np.nanmax(np.nanmean(harm_AxRxT, axis=1))) + 0.05)),
        title="held-out harm, fitted cell",
    )
    ax.legend(frameon=False, fontsize=7)


def plot_regime_bars(ax, predicted: dict) -> None:
    """Held-out harm at T, baseline and blocked: the paper's bars beside the fitted cell's."""
    toy = [predicted["harmfulness_heldout_step100"], predicted["harmfulness_heldout_blocked"]]
    x = np.arange(2)
    ax.bar(
        x - 0.18,
        [v for v, _ in PAPER_HARM.values()],
        0.36,
        yerr=[s for _, s in PAPER_HARM.values()],
        color="#bbbbbb",
        capsize=3,
        label="paper",
    )
    ax.bar(
        x + 0.18,
        [v["mean"] for v in toy],
        0.36,
        yerr=[v["sd"] for v in toy],
        color=[plotting.COLORS["mlp"], plotting.COLORS["block"]],
        capsize=3,
        label="toy, fitted cell",
    )
    ax.set_xticks(x, ["baseline", "v_rev blocked"])
    ax.set(ylabel="held-out harmfulness at T = 100", title="blocking at T: paper vs toy")
    ax.legend(frameon=False, fontsize=7)


def plot_regime_fit(ax, squared_distance, cell_index, config: Config) -> None:
    """The calibration map: squared distance to the paper per cell, the fitted cell boxed."""
    i, j = cell_index
    plotting.heatmap(
        ax,
        np.asarray(squared_distance),
        config.regime_overlaps,
        config.regime_depths,
        label="squared distance to the paper (steps 1, 20)",
        fmt="{:.3f}",
    )
    ax.add_patch(plotting.plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="#d62728", lw=2))
    ax.set(xlabel="benign_overlap", ylabel="safety steps", title="the fit (fitted cell boxed)")


def plot_regime(row, res: sweep.SweepResult, found: dict, config: Config) -> None:
    """The paper's two figures redrawn in the fitted cell: alignment against step (with the
    paper's points and the nulls), and held-out harm, baseline against blocked; then the bars at
    T beside the paper's, and the calibration map the cell was fitted on."""
    i, j = regime_cell(config, found["fitted_knobs"])
    steps = regime_spec(config).phase("benign").record_steps
    align = res.valid("metrics/benign/alignment")
    harm = res.valid("metrics/benign/harmfulness_heldout")
    plot_regime_alignment(row[0], steps, align, (i, j), found["nulls"], config)
    plot_regime_harm(row[1], steps, harm[i, j])
    plot_regime_bars(row[2], found["predicted"])
    plot_regime_fit(row[3], found["squared_distance_by_cell"], (i, j), config)


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    """Per model: the three worlds (a vmapped trunk axis), each seed's theta_S branching into the
    benign run and the two same-basis control fine-tunings; the control witnesses once per
    trunk inside the same program."""
    out = {}
    for model in config.models:
        spec = reversion_spec(model, config.size)

        def build(world, arm, spec=spec):
            knobs = presets.standard_knobs(
                spec, config.learning_rate, **{**WORLDS[world], **ARMS[arm]}
            )
            return spec, knobs.validate(spec)

        out[model] = sweep.Sweep(
            f"{model}-{config.size}",
            axes=(sweep.Axis("world", tuple(WORLDS)),),
            branches=(sweep.Axis("arm", tuple(ARMS)),),
            branch_after="safety",
            seeds=config.seeds,
            build=build,
            measure=WithControlWitnesses(config.learning_rate),
        )
    if config.regime_seeds:
        out["paper_regime"] = regime_sweep(config)
    return out


def part(res: sweep.SweepResult, world: int, arm: int) -> dict:
    """One (world, arm) cell of the result as a run-major tree."""
    tree = res.tree()
    tree["diverged"] = res.diverged
    return _slice(tree, world, arm)


def _slice(tree, i, j):
    return {
        k: _slice(v, i, j) if isinstance(v, dict) else np.asarray(v)[i, j] for k, v in tree.items()
    }


def cells(res: sweep.SweepResult) -> dict:
    """The main world's arms and the control worlds' benign arms."""
    worlds, arms = list(WORLDS), list(ARMS)
    return {
        "main": part(res, 0, 0),
        "control": part(res, 0, arms.index("control")),
        "background": part(res, 0, arms.index("control_background")),
        "worlds": {name: part(res, worlds.index(name), 0) for name in worlds[1:]},
    }


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    numbers = {}
    for model, res in results.items():
        if model not in config.models:
            continue
        found = cells(res)
        numbers[model] = summarise_model(
            found["main"],
            reversion_spec(model, config.size),
            control=found["control"],
            worlds=found["worlds"],
            background=found["background"],
        )
    if "paper_regime" in results:
        numbers["paper_regime"] = paper_regime(results["paper_regime"], config)
    numbers["paper"] = {k: {"mean": m, "sd": s} for k, (m, s) in PAPER.items()}
    numbers["paper"]["spearman_alignment_harmfulness"] = 0.958
    return numbers


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    models = [m for m in results if m in config.models]
    found = {model: cells(results[model]) for model in models}
    trees = {model: found[model]["main"] for model in models}
    specs = {model: reversion_spec(model, config.size) for model in models}
    regime = None
    if "paper_regime" in results and "paper_regime" in numbers:
        regime = (results["paper_regime"], numbers["paper_regime"], config)
    return plot_models(trees, specs, numbers, path, found, regime)


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "the main track: alignment of benign drift with v_rev against nulls"
)
