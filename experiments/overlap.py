"""Benign overlap: reversion as the benign distribution moves away from the pretraining one.

The knob is `WorldKnobs.benign_overlap`, the share of benign inputs drawn from the hazard's topic
(their content features are those of hazardous inputs, without the hazard feature). At 0 benign
data never touches the hazard's content; pretraining's own topic mixture has 0.4 of its inputs in
that topic (20% hazardous plus a quarter of the rest), so the benign distribution is nearest to
pretraining's topic mixture at 0.4 and moves away from it on both sides; the report gives the
total-variation distance between the two topic mixtures beside each value. The gravitational
reading predicts more reversion the more benign data shares the pretraining basin's content.

Configuration (fixed before any result was seen): the standard histories of `gravity.engine.presets`
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

from gravity.engine import presets
from gravity.engine.worlds import WorldKnobs
from gravity.instruments import knob_response, readout, topics
from gravity.instruments.stats import mean_sd
from gravity.run import plotting, sweep
from gravity.run.experiment import Experiment

NAME = "overlap"
BENIGN_METRICS = ("harmfulness", "refusal", "alignment", "task_accuracy")
BENIGN_METRICS += ("alignment_benign_probes", "alignment_hazard_specific")
HARM = ("harmfulness",)
MEASURE = sweep.HistoryMetrics(
    trajectories=(("benign", BENIGN_METRICS),),
    finals=(("pretrain", HARM), ("helpful", HARM), ("safety", (*HARM, "task_accuracy"))),
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


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    """Per model family with seeds: benign phases at every overlap value, branched from each
    seed's theta_S."""
    seeds = {"mlp": config.seeds, "transformer": config.transformer_seeds}
    overlaps = (sweep.Axis("benign_overlap", tuple(config.overlaps)),)
    out = {}
    for model in (m for m, n in seeds.items() if n > 0):
        spec = presets.standard_spec(model, config.size, keep_params=False)

        def build(spec=spec, **world):
            return spec, presets.standard_knobs(spec, config.learning_rate, **world).validate(spec)

        tree = {"branches": overlaps, "branch_after": "safety"}
        out[model] = sweep.Sweep(f"{model}-{config.size}", (), seeds[model], build, MEASURE, **tree)
    return out


def at_overlap(overlap: float, cell: sweep.SweepResult, spec) -> dict:
    """One overlap value's numbers: its topic distance from the benign to the pretraining
    mixture; mean and sd over seeds of reversion, harmfulness and alignment at fixed steps."""
    last, benign = int(spec.phases[-1].record_steps[-1]), WorldKnobs(benign_overlap=overlap)
    at_last = ["harmfulness", "alignment", "alignment_hazard_specific", "task_accuracy"]
    distance = topics.mixture_distance("pretrain", "benign", benign, spec.world.n_topics)
    return {
        "topic_tv_distance_to_pretraining": round(distance, 4),
        f"reversion_step{last}": mean_sd(readout.reversion(cell)),
        "harmfulness_aligned": mean_sd(readout.anchor_harm(cell, "safety")),
        **readout.means_at(cell, ["alignment"], 1),
        **readout.means_at(cell, ["alignment"], 20),
        **readout.means_at(cell, at_last, last),
    }


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    """Per model: `at_overlap` per overlap value; over runs, how reversion moves with the
    overlap (`knob_response.monotone_response`)."""
    numbers = {}
    for model, res in results.items():
        spec = presets.standard_spec(model, config.size)
        trend = knob_response.monotone_response(readout.reversion(res), config.overlaps)
        cells = res.split("benign_overlap").items()
        numbers[model] = {
            "per_overlap": {f"{o:g}": at_overlap(o, cell, spec) for o, cell in cells},
            "spearman_overlap_vs_reversion": trend["spearman"],
            "reversion_at_min_overlap": trend["mean_first"],
            "reversion_at_max_overlap": trend["mean_last"],
            "monotone_increasing_means": trend["monotone_increasing"],
            "benign_steps": int(spec.phases[-1].record_steps[-1]),
        }
    return numbers


def plot_reversion(ax, runs: dict, config: Config, numbers: dict) -> None:
    """Reversion after the benign phase against overlap: each run jittered, mean ± sd per model,
    and the overlap at which benign data matches pretraining's topic mix."""
    overlaps = np.asarray(config.overlaps)
    for model, (res, _spec) in runs.items():
        rho, color = numbers[model]["spearman_overlap_vs_reversion"]["rho"], plotting.COLORS[model]
        label = f"{model} ({res.seeds.size} seeds, Spearman {rho:.2f})"
        plotting.runs_and_mean(ax, overlaps, readout.reversion(res), color=color, label=label)
    spec = next(iter(runs.values()))[1]
    matching = topics.matching_overlap(WorldKnobs(), spec.world.n_topics)
    plotting.vertical_marker(ax, matching, "pretraining's topic mix")
    xlabel = "benign_overlap (share of benign inputs on the hazard's topic)"
    title = f"reversion after {spec.phases[-1].steps} benign steps"
    plotting.finish(ax, xlabel, "(h_T - h_S) / (h_H - h_S)", title, fontsize=7, loc="lower right")


def plot_end_numbers(ax, runs: dict, config: Config, numbers: dict) -> None:
    """Alignment, hazard-specific alignment and task accuracy at T against overlap."""
    for model, (_res, spec) in runs.items():
        last, color = int(spec.phases[-1].steps), plotting.COLORS[model]
        for name, label, style in (
            ("alignment_hazard_specific", "hazard-specific alignment", ":"),
            ("task_accuracy", "task accuracy", "--"),
            ("alignment", "alignment", "-"),
        ):
            per_overlap = numbers[model]["per_overlap"]
            stats = [per_overlap[f"{o:g}"][f"{name}_step{last}"] for o in config.overlaps]
            style = dict(ms=3, capsize=2, ls=style, color=color, label=f"{model}: {label}")
            plotting.stats_errorbar(ax, np.asarray(config.overlaps), stats, **style)
    ax.set(xlabel="benign_overlap", title="after the benign phase: mean ± sd")
    ax.legend(frameon=False, fontsize=6)


def plot_curves(axes, model: str, res, spec, config: Config) -> None:
    """One model's harmfulness and alignment over the benign phase, a line per overlap."""
    colors = plotting.colour_ramp("viridis", len(config.overlaps), 0.95)
    labels, steps = [f"{overlap:g}" for overlap in config.overlaps], spec.phases[-1].record_steps
    for ax, name, label in (
        (axes[0], "harmfulness", "harmfulness on hazardous probes"),
        (axes[1], "alignment", "alignment(t) = cos(drift_t, v_rev)"),
    ):
        means = np.nanmean(res.valid(readout.metric("benign", name)), axis=1)
        plotting.line_family(ax, steps, means, labels, colors, fmt="-", lw=1.4)
        ax.set_xscale("symlog", linthresh=1)
        ax.set(xlabel="benign step t", ylabel=label, title=f"{model}: {name}(t), mean over seeds")
    axes[0].legend(title="overlap", ncol=2, frameon=False, fontsize=6.5)


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    """Reversion against overlap and the numbers at T; a row of curves per model."""
    runs = {m: (res, presets.standard_spec(m, config.size)) for m, res in results.items()}
    fig, axes = plotting.figure(3, 2, width=4.4, height=3.3)
    plot_reversion(axes[0, 0], runs, config, numbers)
    for row, (model, (res, spec)) in enumerate(runs.items()):
        plot_curves(axes[row, 1:], model, res, spec, config)
    plot_end_numbers(axes[1, 0], runs, config, numbers)
    for ax in axes[1, 1:] if len(runs) == 1 else ():
        ax.set_visible(False)
    n = sum(int((~res.diverged).sum()) for res, _ in runs.values())
    return plotting.save(fig, path, f"Benign overlap: {n} histories")


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "reversion as the benign distribution moves away from the pretraining one"
)
