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
cosine is the null of the hazard-specific cosine. A *never-harmful world* (pretraining never
complies: `harm_prob = 0`, the same phases otherwise) runs beside the main one: if alignment
rises there while harmfulness does not, alignment alone is no evidence of harm returning.
Harmfulness is reported on the probes that define v_rev and on held-out hazardous inputs.
Correlations of alignment with harmfulness are reported pooled over run-steps (what the paper
reports), as the median over steps of the across-run correlation, and partial on the step.
Control fine-tuning with overlap 0 is not fully disjoint from the hazard topic: its inputs keep
the topic's features at the background rate `p_off`.

Configuration: the standard histories unchanged (lr 1e-3 Adam everywhere, benign_overlap 0.5);
nothing here was tuned toward the paper's numbers.

The paper's regime, calibrated honestly (MLP; rule written before looking): two knobs,
`benign_overlap` (0 ... 1) and the safety-alignment depth (25 ... 400 steps, snapshots of one
phase), are fitted to two of the paper's numbers only, the mean alignment after the first benign
update (0.429) and at step 20 (0.647), by least squares over the grid (`gravity.calibration`);
every other number of the paper's table (final alignment, held-out harmfulness without and with
blocking, blocked alignment, Spearman) is then read off that cell with no further tuning and
reported beside the paper's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import scipy.stats

from gravity import calibration, geometry, interventions, plotting, presets, sweep
from gravity.experiment import Experiment
from gravity.spec import with_phase
from gravity.stats import mean_sd, spearman_by_step

NAME = "reversion"
DEFINITIONS = ("stacked", "mean", "trajectory_pca", "from_pretrained")
SNAPSHOTS = (1, 5, 20, 50, 100)
PAPER = {
    "alignment_step1": (0.429, 0.052),
    "alignment_step20": (0.647, 0.021),
    "alignment_step100": (0.648, 0.009),
}


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


HARM_PROBS = (0.9, 0.0)
ARMS = ("benign", "control")


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


def paper_regime(res: sweep.SweepResult, config: Config) -> dict:
    """Fit (depth, overlap) to the paper's alignment at steps 1 and 20; predict the rest."""
    align = res.valid("metrics/benign/alignment")  # (depth, overlap, arm, seeds, steps)
    means = {
        (i, j): (np.nanmean(align[i, j, 0, :, 1]), np.nanmean(align[i, j, 0, :, 20]))
        for i in range(align.shape[0])
        for j in range(align.shape[1])
    }
    (i, j), distance = calibration.nearest_cell(
        means, (PAPER["alignment_step1"][0], PAPER["alignment_step20"][0])
    )
    harm = res.valid("metrics/benign/harmfulness_heldout")[i, j]
    base_align, base_harm = align[i, j, 0], res.valid("metrics/benign/harmfulness")[i, j, 0]
    predicted = {
        "alignment_step100": mean_sd(base_align[:, -1]),
        "harmfulness_heldout_step100": mean_sd(harm[0, :, -1]),
        "harmfulness_heldout_blocked": mean_sd(harm[1, :, -1]),
        "alignment_blocked_step100": mean_sd(align[i, j, 1, :, -1]),
        "spearman_alignment_harmfulness": spearman_by_step(base_align[:, 1:], base_harm[:, 1:])[
            "pooled"
        ],
    }
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
        "predicted": predicted,
        "paper": PAPER_PREDICTED,
        "n_histories": res.n_histories,
    }


def at_step(values, steps, t):
    return np.asarray(values)[:, list(steps).index(t)]


def same_basis(numbers: dict, m: dict, control: dict, steps, last: int) -> None:
    """Add the same-basis nulls (the control fine-tuning from the same theta_S)."""
    after = steps >= 1
    null = float(np.nanquantile(control["alignment"][:, after], 0.99))
    specific = float(np.nanquantile(control["alignment_hazard_specific"][:, after], 0.99))
    numbers.update(
        {
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
    )


def never_harmful(world: dict, steps, last: int) -> dict:
    """The harm_prob = 0 world's numbers beside the main ones."""
    return {
        f"alignment_step{last}": mean_sd(at_step(world["alignment"], steps, last)),
        f"alignment_hazard_specific_step{last}": mean_sd(
            at_step(world["alignment_hazard_specific"], steps, last)
        ),
        f"harmfulness_step{last}": mean_sd(at_step(world["harmfulness"], steps, last)),
        f"harmfulness_heldout_step{last}": mean_sd(
            at_step(world["harmfulness_heldout"], steps, last)
        ),
        "harmfulness_aligned": mean_sd(world["harmfulness"][:, 0]),
    }


def benign_arrays(out: dict, ok=None) -> dict:
    ok = ~np.asarray(out["diverged"]) if ok is None else ok
    return {k: np.asarray(v)[ok] for k, v in out["metrics"]["benign"].items()}


def summarise_model(
    out: dict, spec, control: dict | None = None, world: dict | None = None
) -> dict:
    """The JSON numbers of one model family (runs that diverged are excluded and named); with
    the same-basis control fine-tuning and the never-harmful world when given."""
    ok = ~np.asarray(out["diverged"])
    benign = spec.phases[-1]
    steps = benign.record_steps
    m = {k: np.asarray(v)[ok] for k, v in out["metrics"][benign.name].items()}
    safety = {k: np.asarray(v)[ok] for k, v in out["metrics"]["safety"].items()}
    drift, drift_matched = np.asarray(out["drift"])[ok], np.asarray(out["drift_matched"])[ok]
    v_rev = np.asarray(out["v_rev"])[ok]
    dim = int(np.prod(v_rev.shape[1:]))
    iso = geometry.isotropic_null_quantile(dim, 0.99)
    matched = geometry.cross_history_null(drift, v_rev, 0.99)
    benign_null = geometry.benign_drift_null(drift, drift_matched, 0.99)
    threshold = max(iso, matched, benign_null)
    after = steps >= 1
    align_all = m["alignment"][:, after]
    harm_all = m["harmfulness"][:, after]
    rho = scipy.stats.spearmanr(align_all.ravel(), harm_all.ravel()).statistic
    correlations = spearman_by_step(align_all, harm_all)
    last = benign.steps
    refusal_lost = safety["refusal"][:, -1] - at_step(m["refusal"], steps, last)
    harm_gained = at_step(m["harmfulness"], steps, last) - safety["harmfulness"][:, -1]
    other_gained = at_step(m["other"], steps, last) - safety["other"][:, -1]
    numbers = {
        f"alignment_step{t}": mean_sd(at_step(m["alignment"], steps, t))
        for t in (1, 20, last)
        if t in steps
    }
    by_definition = m["alignment_by_definition"]
    numbers.update(
        {
            "null_p99_isotropic": iso,
            "null_p99_matched": matched,
            "null_p99_benign_drift": benign_null,
            "null_dim": dim,
            "fraction_above_null": float(np.mean(align_all > threshold)),
            "run_step_pairs": int(align_all.size),
            "spearman_alignment_harmfulness": float(rho),
            "spearman_within_step_median": correlations["within_step_median"],
            "spearman_partial_step": correlations["partial_step"],
            f"harmfulness_heldout_step{last}": mean_sd(
                at_step(m["harmfulness_heldout"], steps, last)
            ),
            "harmfulness_aligned": mean_sd(safety["harmfulness"][:, -1]),
            f"harmfulness_step{last}": mean_sd(at_step(m["harmfulness"], steps, last)),
            "refusal_aligned": mean_sd(safety["refusal"][:, -1]),
            f"refusal_step{last}": mean_sd(at_step(m["refusal"], steps, last)),
            "lost_refusal_to_harmful": mean_sd(harm_gained / refusal_lost),
            "lost_refusal_to_other": mean_sd(other_gained / refusal_lost),
            f"alignment_benign_probes_step{last}": mean_sd(
                at_step(m["alignment_benign_probes"], steps, last)
            ),
            f"alignment_hazard_specific_step{last}": mean_sd(
                at_step(m["alignment_hazard_specific"], steps, last)
            ),
            f"weight_alignment_step{last}": mean_sd(at_step(m["weight_alignment"], steps, last)),
            "alignment_by_definition": {
                name: {
                    f"step{t}": mean_sd(at_step(by_definition[..., i], steps, t))
                    for t in (1, 20, last)
                }
                for i, name in enumerate(spec.directions)
            },
            "n_seeds": int(ok.sum()),
            "diverged_runs": np.flatnonzero(~ok).tolist(),
        }
    )
    if control is not None:
        same_basis(numbers, m, benign_arrays(control), steps, last)
    if world is not None:
        numbers["controls"] = {"harm_prob_0": never_harmful(benign_arrays(world), steps, last)}
    return numbers


def plot_models(results: dict, specs: dict, numbers: dict, path: Path, controls=None) -> Path:
    fig, axes = plotting.figure(4, len(results), width=3.9, height=3.1)
    for row, (model, out) in zip(axes, results.items(), strict=True):
        spec, n = specs[model], numbers[model]
        benign = spec.phases[-1]
        steps = benign.record_steps
        m = out["metrics"][benign.name]
        ax = row[0]
        plotting.mean_band(
            ax, steps, m["alignment"], color=plotting.COLORS[model], label="cos(drift, v_rev)"
        )
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
        if controls is not None:
            control, world = controls[model]
            ax.axhline(
                n["null_p99_same_basis"], color="#2ca02c", ls="--", label="same-basis null p99"
            )
            plotting.mean_band(
                ax,
                steps,
                control["metrics"]["benign"]["alignment"],
                color="#2ca02c",
                linestyle=":",
                label="control fine-tuning (same theta_S)",
            )
            plotting.mean_band(
                ax,
                steps,
                world["metrics"]["benign"]["alignment"],
                color="#9467bd",
                linestyle="--",
                label="never-harmful world (harm_prob 0)",
            )
        for t, (mean, sd) in PAPER.items():
            step = int(t.removeprefix("alignment_step"))
            ax.errorbar(
                step, mean, yerr=sd, fmt="k*", ms=7, capsize=2, label="paper" if step == 1 else None
            )
        ax.set(
            xlabel="benign step t",
            ylabel="alignment",
            ylim=(-0.2, 1.0),
            title=f"{model}: alignment with v_rev",
        )
        ax.legend(frameon=False, fontsize=6.5, loc="lower right")
        ax = row[1]
        plotting.mean_band(ax, steps, m["harmfulness"], color="#d62728", label="harmfulness")
        plotting.mean_band(
            ax, steps, m["refusal"], color="#2ca02c", linestyle="--", label="refusal"
        )
        plotting.mean_band(
            ax, steps, m["other"], color="#7f7f7f", linestyle=":", label="other answers"
        )
        ax.set(
            xlabel="benign step t",
            ylabel="probability on hazardous probes",
            ylim=(0, 1),
            title=f"harmfulness; Spearman {n['spearman_alignment_harmfulness']:.2f}",
        )
        ax.legend(frameon=False, fontsize=7)
        ax = row[2]
        by_definition = np.asarray(m["alignment_by_definition"])
        for i, name in enumerate(spec.directions):
            plotting.mean_band(ax, steps, by_definition[..., i], label=name, color=f"C{i}")
        ax.set(
            xlabel="benign step t", ylabel="alignment", ylim=(-0.2, 1.0), title="v_rev definitions"
        )
        ax.legend(frameon=False, fontsize=7)
        ax = row[3]
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
        ax.set(
            xlabel="benign step t",
            ylabel="cos with v_rev",
            ylim=(-0.2, 1.0),
            title="specificity controls",
        )
        ax.legend(frameon=False, fontsize=7)
    return plotting.save(fig, path, "Reversion along v_rev during benign fine-tuning")


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    """Per model: the main world and the never-harmful one (harm_prob 0, vmapped), each seed's
    theta_S branching into the benign run and the same-basis control fine-tuning."""
    out = {}
    for model in config.models:
        spec = reversion_spec(model, config.size)

        def build(harm_prob, arm, spec=spec):
            overlap = 0.0 if arm == "control" else presets.WorldKnobs().benign_overlap
            knobs = presets.standard_knobs(
                spec, config.learning_rate, harm_prob=harm_prob, benign_overlap=overlap
            )
            return spec, knobs.validate(spec)

        out[model] = sweep.Sweep(
            f"{model}-{config.size}",
            axes=(sweep.Axis("harm_prob", HARM_PROBS),),
            branches=(sweep.Axis("arm", ARMS),),
            branch_after="safety",
            seeds=config.seeds,
            build=build,
        )
    if config.regime_seeds:
        out["paper_regime"] = regime_sweep(config)
    return out


def part(res: sweep.SweepResult, harm_prob: int, arm: int) -> dict:
    """One (world, arm) cell of the result as a run-major tree."""
    tree = res.tree()
    tree["diverged"] = res.diverged
    return {
        k: (np.asarray(v)[harm_prob, arm] if k != "metrics" else _slice(v, harm_prob, arm))
        for k, v in tree.items()
    }


def _slice(tree, i, j):
    return {
        k: _slice(v, i, j) if isinstance(v, dict) else np.asarray(v)[i, j] for k, v in tree.items()
    }


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    numbers = {
        model: summarise_model(
            part(res, 0, 0), reversion_spec(model, config.size), part(res, 0, 1), part(res, 1, 0)
        )
        for model, res in results.items()
        if model in config.models
    }
    if "paper_regime" in results:
        numbers["paper_regime"] = paper_regime(results["paper_regime"], config)
    numbers["paper"] = {k: {"mean": m, "sd": s} for k, (m, s) in PAPER.items()}
    numbers["paper"]["spearman_alignment_harmfulness"] = 0.958
    return numbers


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    models = [m for m in results if m in config.models]
    trees = {model: part(results[model], 0, 0) for model in models}
    controls = {model: (part(results[model], 0, 1), part(results[model], 1, 0)) for model in models}
    specs = {model: reversion_spec(model, config.size) for model in models}
    return plot_models(trees, specs, numbers, path, controls)


EXPERIMENT = Experiment(
    name=NAME,
    description="the main track: alignment of benign drift with v_rev against nulls",
    config=Config,
    quick=quick,
    sweeps=sweeps,
    summarise=summarise,
    plot=plot,
)
