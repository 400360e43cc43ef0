"""Safety erosion: after alignment, benign fine-tuning brings back the harmful behaviour.

For each model family (MLP on the feature world, transformer on the token world) the standard
history P -> H -> S -> T (`gravity.engine.presets`) runs over many seeds at once. Harmfulness is the
exact probability of complying on hazardous probes; the claim is visible when harmfulness after
100 benign steps is clearly above its aligned level while the task score holds or improves.

The full run adds a knob map: erosion over pretraining's harm probability (what the basin holds)
x the benign data's overlap with the hazard topic, which shows where the phenomenon does and does
not appear. Harm probability changes pretraining, so it is a vmapped grid axis; overlap only
changes the benign data, so the four overlap values branch from each (harm_prob, seed)'s theta_S.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gravity.engine import presets
from gravity.instruments.stats import mean_sd
from gravity.run import plotting, sweep
from gravity.run.experiment import Experiment

NAME = "erosion"


@dataclasses.dataclass(frozen=True)
class Config(presets.StandardConfig):
    seeds: int = 32
    map_seeds: int = 4
    map_harm_probs: tuple[float, ...] = (0.0, 0.5, 0.9)
    map_overlaps: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)


def quick(config: Config) -> Config:
    return dataclasses.replace(config, seeds=8, map_seeds=0)


ANSWER_STYLE = (
    ("harmfulness", "#d62728", "-", "harmfulness"),
    ("refusal", "#2ca02c", "--", "refusal"),
    ("task_accuracy", "#1f77b4", ":", "task accuracy"),
)
"""The metrics every history keeps at each record, and how the figure draws them."""


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    """Per model: the standard history over seeds; with `map_seeds`, the knob map."""
    metrics = tuple(style[0] for style in ANSWER_STYLE)
    measure = sweep.HistoryMetrics(tuple((p, metrics) for p in presets.STANDARD_PHASES))
    out = {}
    for model in config.models:
        spec = presets.standard_spec(model, config.size, keep_params=False)

        def build(spec=spec, **world):
            return spec, presets.standard_knobs(spec, config.learning_rate, **world).validate(spec)

        out[model] = sweep.Sweep(f"{model}-{config.size}", (), config.seeds, build, measure)
        if config.map_seeds:
            grid = (sweep.Axis("harm_prob", tuple(config.map_harm_probs)),)
            overlap = sweep.Axis("benign_overlap", tuple(config.map_overlaps))
            tree = {"branches": (overlap,), "branch_after": "safety"}
            name = f"{model}-{config.size}-map"
            out[f"{model}-map"] = sweep.Sweep(name, grid, config.map_seeds, build, measure, **tree)
    return out


AT = {"pretrain": "pretrained", "helpful": "helpful", "safety": "aligned", "benign": "after_benign"}
"""Each phase's name in the numbers: a metric at its end is `{metric}_{AT[phase]}`."""
MAP_PHASES = ("pretrain", "safety", "benign")


def final(res: sweep.SweepResult, phase: str, metric: str = "harmfulness") -> np.ndarray:
    """A metric at the phase's last record, per run (diverged runs NaN)."""
    return res.valid(f"metrics/{phase}/{metric}")[..., -1]


def summarise_model(res: sweep.SweepResult) -> dict:
    """The JSON numbers of one model family, over the runs that did not diverge."""
    aligned = ("safety", "benign")
    return {
        **{f"harmfulness_{AT[p]}": mean_sd(final(res, p)) for p in AT},
        **{f"refusal_{AT[p]}": mean_sd(final(res, p, "refusal")) for p in aligned},
        **{f"task_score_{AT[p]}": mean_sd(final(res, p, "task_accuracy")) for p in aligned},
        "erosion": mean_sd(final(res, "benign") - final(res, "safety")),
        "n_seeds": int((~res.diverged).sum()),
        "diverged_runs": np.flatnonzero(res.diverged).tolist(),
    }


def knob_map(res: sweep.SweepResult) -> dict:
    """Harmfulness at P, S and T for each (harm_prob, benign_overlap) of the map."""
    return {
        f"harm_prob={h:g},overlap={o:g}": {
            "harm_prob": h,
            "benign_overlap": o,
            **{f"harmfulness_{p}": mean_sd(final(cell, p)) for p in MAP_PHASES},
        }
        for h, row in res.split("harm_prob").items()
        for o, cell in row.split("benign_overlap").items()
    }


def plot_map(ax, entries: dict, config: Config, model: str):
    """Harmfulness after benign fine-tuning over the benign overlap, one line per harm_prob,
    with the pretrained (dotted) and aligned (dashed) levels."""
    for j, h in enumerate(config.map_harm_probs):
        rows = [e for e in entries.values() if e["harm_prob"] == h]
        x, color = [e["benign_overlap"] for e in rows], f"C{j}"
        benign = [e["harmfulness_benign"] for e in rows]
        label = f"harm_prob {h:g}: after benign"
        plotting.stats_errorbar(ax, x, benign, fmt="-", ms=6, capsize=2, color=color, label=label)
        pretrained = [e["harmfulness_pretrain"]["mean"] for e in rows]
        ax.plot(x, pretrained, ":", color=color, label=f"harm_prob {h:g}: pretrained")
        ax.plot(x, [e["harmfulness_safety"]["mean"] for e in rows], "--", color=color, lw=0.8)
    ax.set(xlabel="benign_overlap (share of benign inputs from the hazard topic)")
    ax.set(ylabel="harmfulness", ylim=(-0.02, 1.3))
    ax.set_title(f"{model}: knob map ({config.map_seeds} seeds; dashed = aligned)")
    ax.legend(frameon=False, fontsize=6, ncol=2, loc="upper center")


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    numbers = {model: summarise_model(results[model]) for model in config.models}
    for model in config.models:
        if f"{model}-map" in results:
            numbers[model]["knob_map"] = knob_map(results[f"{model}-map"])
    return numbers


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    """Each model's history (top row) and, in the full run, its knob map (bottom row)."""
    maps = {m: numbers[m]["knob_map"] for m in config.models if "knob_map" in numbers[m]}
    fig, axes = plotting.figure(len(config.models), 2 if maps else 1, width=5.0, height=3.4)
    for model, ax in zip(maps, axes[-1], strict=False):
        plot_map(ax, maps[model], config, model)
    for ax, model in zip(axes[0], config.models, strict=True):
        spec, res = presets.standard_spec(model, config.size), results[model]
        plotting.phase_trajectories(ax, spec.phases, res.tree()["metrics"], ANSWER_STYLE)
        ax.set(ylim=(-0.02, 1.22), ylabel="probability on probes")
        ax.set_title(f"{model}: mean ± sd over {int((~res.diverged).sum())} seeds", pad=14)
        ax.legend(loc="upper center", ncol=3, frameon=False, fontsize=7)
    return plotting.save(fig, path, "Safety erosion under benign fine-tuning")


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "safety erosion: harmfulness through P -> H -> S -> T, MLP and transformer"
)
