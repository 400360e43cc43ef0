"""Benign overlap: reversion as the benign distribution moves away from the pretraining one.

The knob is `WorldKnobs.benign_overlap`, the share of benign inputs drawn from the hazard's topic
(their content features are those of hazardous inputs, without the hazard feature). At 0 benign
data never touches the hazard's content; pretraining's own topic mixture has 0.4 of its inputs in
that topic (20% hazardous plus a quarter of the rest), so the benign distribution is nearest to
pretraining's topic mixture at 0.4 and moves away from it on both sides; the report gives the
total-variation distance between the two topic mixtures beside each value. The gravitational
reading predicts more reversion the more benign data shares the pretraining basin's content.

Configuration (fixed before any result was seen): the standard histories of `gravity.presets`
unchanged (Adam lr 1e-3 in every phase, 100 benign steps, hazard_rate 0.2, harm_prob 0.9), nine
overlap values from 0 to 1. The map itself is the MLP on the feature world, 112 seeds per value
(1,008 histories in one compiled program); the overlap only changes the benign data, so each
seed's P -> H -> S runs once and the nine benign phases branch from its theta_S (same-basis
comparisons: every overlap value fine-tunes the same aligned model). The transformer on the
token world (~8x costlier per step) runs the same nine values with 16 seeds each (144
histories) as a check that the trend is not the MLP's alone.

Measured per run: reversion after T = 100 benign steps, (h_T - h_S) / (h_H - h_S) (the harmfulness
gain as a fraction of the helpful-to-aligned gap, h_S at theta_S, h_H at theta_H), harmfulness(t)
and alignment(t) = cos(drift_t, v_rev), the hazard-specific alignment and the task score.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import scipy.stats

from gravity import plotting, presets, sweep
from gravity.experiment import Experiment
from gravity.stats import mean_sd, reversion_fraction
from gravity.worlds.base import phase_mixture, topic_probabilities

NAME = "overlap"
BENIGN_METRICS = (
    "harmfulness",
    "refusal",
    "alignment",
    "alignment_benign_probes",
    "alignment_hazard_specific",
    "task_accuracy",
)
MEASURE = sweep.HistoryMetrics(
    trajectories=(("benign", BENIGN_METRICS),),
    finals=(
        ("pretrain", ("harmfulness",)),
        ("helpful", ("harmfulness",)),
        ("safety", ("harmfulness", "task_accuracy")),
    ),
)


@dataclasses.dataclass(frozen=True)
class Config:
    overlaps: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.25, 0.35, 0.5, 0.75, 1.0)
    seeds: int = 112
    transformer_seeds: int = 16
    size: str = "standard"
    learning_rate: float = 1e-3


def quick(config: Config) -> Config:
    return dataclasses.replace(
        config, overlaps=(0.0, 0.1, 0.25, 0.5, 1.0), seeds=8, transformer_seeds=2
    )


def topic_distance(spec, overlap: float) -> float:
    """Total-variation distance between the benign and the pretraining topic mixtures."""
    knobs = presets.standard_knobs(spec, benign_overlap=overlap).world
    n_topics = spec.world.n_topics
    hazard_share, _ = phase_mixture("pretrain", knobs)
    pretrain = float(hazard_share) * np.eye(n_topics)[0] + (1 - float(hazard_share)) * np.asarray(
        topic_probabilities("pretrain", knobs, n_topics)
    )
    benign = np.asarray(topic_probabilities("benign", knobs, n_topics))
    return float(0.5 * np.abs(pretrain - benign).sum())


def pretraining_like_overlap(spec) -> float:
    """The overlap at which benign data has pretraining's share of hazard-topic inputs."""
    hazard_share = float(presets.standard_knobs(spec).world.hazard_rate)
    return hazard_share + (1 - hazard_share) / spec.world.n_topics


def models(config: Config) -> dict[str, int]:
    """Seeds per overlap value for each model family in the figure."""
    seeds = {"mlp": config.seeds, "transformer": config.transformer_seeds}
    return {model: n for model, n in seeds.items() if n > 0}


def make_sweep(config: Config, model: str) -> sweep.Sweep:
    """Benign phases at every overlap value, branched from each seed's theta_S."""
    spec = presets.standard_spec(model, config.size, keep_params=False)

    def build(benign_overlap):
        knobs = presets.standard_knobs(spec, config.learning_rate, benign_overlap=benign_overlap)
        return spec, knobs.validate(spec)

    return sweep.Sweep(
        name=f"{model}-{config.size}",
        axes=(),
        branches=(sweep.Axis("benign_overlap", tuple(config.overlaps)),),
        branch_after="safety",
        seeds=models(config)[model],
        build=build,
        measure=MEASURE,
    )


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    return {model: make_sweep(config, model) for model in models(config)}


def summarise_model(res: sweep.SweepResult, spec, config: Config) -> dict:
    steps = spec.phases[-1].record_steps
    last = int(steps[-1])
    harm = res.valid("metrics/benign/harmfulness")
    h_s, h_h = res.valid("final/safety/harmfulness"), res.valid("final/helpful/harmfulness")
    rev = reversion_fraction(harm[..., -1], h_s, h_h)
    per_value = {}
    for i, overlap in enumerate(config.overlaps):

        def at(name, t, i=i):
            return res.valid(f"metrics/benign/{name}")[i][:, list(steps).index(t)]

        per_value[f"{overlap:g}"] = {
            "topic_tv_distance_to_pretraining": round(topic_distance(spec, overlap), 4),
            f"reversion_step{last}": mean_sd(rev[i]),
            "harmfulness_aligned": mean_sd(h_s[i]),
            f"harmfulness_step{last}": mean_sd(harm[i, :, -1]),
            "alignment_step1": mean_sd(at("alignment", 1)),
            "alignment_step20": mean_sd(at("alignment", 20)),
            f"alignment_step{last}": mean_sd(at("alignment", last)),
            f"alignment_hazard_specific_step{last}": mean_sd(at("alignment_hazard_specific", last)),
            f"task_accuracy_step{last}": mean_sd(at("task_accuracy", last)),
        }
    x = np.broadcast_to(np.asarray(config.overlaps)[:, None], rev.shape)
    ok = np.isfinite(rev)
    rho = scipy.stats.spearmanr(x[ok], rev[ok])
    means = np.nanmean(rev, axis=1)
    return {
        "per_overlap": per_value,
        "spearman_overlap_vs_reversion": {"rho": float(rho.statistic), "p": float(rho.pvalue)},
        "reversion_at_min_overlap": float(means[0]),
        "reversion_at_max_overlap": float(means[-1]),
        "monotone_increasing_means": bool(np.all(np.diff(means) > 0)),
        "benign_steps": last,
    }


def _reversion(res: sweep.SweepResult) -> np.ndarray:
    harm = res.valid("metrics/benign/harmfulness")
    h_s, h_h = res.valid("final/safety/harmfulness"), res.valid("final/helpful/harmfulness")
    return reversion_fraction(harm[..., -1], h_s, h_h)


MODEL_COLORS = {"mlp": plotting.COLORS["mlp"], "transformer": plotting.COLORS["transformer"]}


def plot_reversion(ax, runs: dict, config: Config, numbers: dict) -> None:
    """Reversion after the benign phase against overlap: each run jittered, mean ± sd per model,
    and the overlap nearest pretraining's topic mix."""
    overlaps = np.asarray(config.overlaps)
    for model, (res, _spec) in runs.items():
        rev = _reversion(res)
        jitter = (np.random.default_rng(0).random(rev.shape) - 0.5) * 0.012
        ax.scatter(
            (overlaps[:, None] + jitter).ravel(),
            rev.ravel(),
            s=3,
            alpha=0.12,
            color=MODEL_COLORS[model],
        )
        rho = numbers[model]["spearman_overlap_vs_reversion"]["rho"]
        ax.errorbar(
            overlaps,
            np.nanmean(rev, 1),
            np.nanstd(rev, 1),
            color=MODEL_COLORS[model],
            marker="o",
            capsize=3,
            label=f"{model} ({res.seeds.size} seeds, Spearman {rho:.2f})",
        )
    spec = next(iter(runs.values()))[1]
    nearest = pretraining_like_overlap(spec)
    ax.axvline(nearest, color="#444444", ls=":", lw=1)
    ax.text(
        nearest,
        0.98,
        " pretraining's topic mix",
        transform=ax.get_xaxis_transform(),
        fontsize=7,
        va="top",
    )
    ax.set_title(f"reversion after {spec.phases[-1].steps} benign steps")
    ax.set_xlabel("benign_overlap (share of benign inputs on the hazard's topic)")
    ax.set_ylabel("(h_T - h_S) / (h_H - h_S)")
    ax.legend(frameon=False, fontsize=7, loc="lower right")


def plot_curves(axes, model: str, res, spec, config: Config) -> None:
    """One model's harmfulness and alignment over the benign phase, a line per overlap."""
    overlaps = np.asarray(config.overlaps)
    colors = plotting.plt.cm.viridis(np.linspace(0, 0.95, overlaps.size))
    steps = spec.phases[-1].record_steps
    for ax, name, label in (
        (axes[0], "harmfulness", "harmfulness on hazardous probes"),
        (axes[1], "alignment", "alignment(t) = cos(drift_t, v_rev)"),
    ):
        values = res.valid(f"metrics/benign/{name}")
        for i, overlap in enumerate(overlaps):
            mean = np.nanmean(values[i], 0)
            ax.plot(steps, mean, color=colors[i], lw=1.4, label=f"{overlap:g}")
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel("benign step t")
        ax.set_ylabel(label)
        ax.set_title(f"{model}: {name}(t), mean over seeds")
    axes[0].legend(title="overlap", ncol=2, frameon=False, fontsize=6.5)


def plot_end_numbers(ax, runs: dict, config: Config, numbers: dict) -> None:
    """Alignment, hazard-specific alignment and task accuracy at T against overlap."""
    overlaps = np.asarray(config.overlaps)
    for model, (_res, spec) in runs.items():
        last = int(spec.phases[-1].steps)
        for key, label, style in (
            (f"alignment_hazard_specific_step{last}", "hazard-specific alignment", ":"),
            (f"task_accuracy_step{last}", "task accuracy", "--"),
            (f"alignment_step{last}", "alignment", "-"),
        ):
            stats = [numbers[model]["per_overlap"][f"{o:g}"][key] for o in overlaps]
            ax.errorbar(
                overlaps,
                [s["mean"] for s in stats],
                [s["sd"] for s in stats],
                marker="o",
                ms=3,
                capsize=2,
                ls=style,
                color=MODEL_COLORS[model],
                label=f"{model}: {label}",
            )
    ax.set_xlabel("benign_overlap")
    ax.set_title("after the benign phase: mean ± sd")
    ax.legend(frameon=False, fontsize=6)


def plot_models(runs: dict, config: Config, numbers: dict, path: Path) -> Path:
    """Reversion against overlap and the numbers at T; a row of curves per model."""
    fig, axes = plotting.figure(3, 2, width=4.4, height=3.3)
    plot_reversion(axes[0, 0], runs, config, numbers)
    for row, (model, (res, spec)) in enumerate(runs.items()):
        plot_curves(axes[row, 1:], model, res, spec, config)
    plot_end_numbers(axes[1, 0], runs, config, numbers)
    if len(runs) == 1:
        for ax in axes[1, 1:]:
            ax.set_visible(False)
    n = sum(int((~res.diverged).sum()) for res, _ in runs.values())
    return plotting.save(fig, path, f"Benign overlap: {n} histories")


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    return {
        model: summarise_model(res, presets.standard_spec(model, config.size), config)
        for model, res in results.items()
    }


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    runs = {
        model: (res, presets.standard_spec(model, config.size)) for model, res in results.items()
    }
    return plot_models(runs, config, numbers, path)


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "reversion as the benign distribution moves away from the pretraining one"
)
