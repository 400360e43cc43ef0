"""Safety erosion: after alignment, benign fine-tuning brings back the harmful behaviour.

For each model family (MLP on the feature world, transformer on the token world) the standard
history P -> H -> S -> T (`gravity.presets`) runs over many seeds at once. Harmfulness is the
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

from gravity import plotting, presets, sweep
from gravity.experiment import Experiment
from gravity.stats import mean_sd

NAME = "erosion"


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 32
    models: tuple[str, ...] = presets.MODELS
    learning_rate: float = 1e-3
    size: str = "standard"
    map_seeds: int = 4
    map_harm_probs: tuple[float, ...] = (0.0, 0.5, 0.9)
    map_overlaps: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)


def quick(config: Config) -> Config:
    return dataclasses.replace(config, seeds=8, map_seeds=0)


MAIN_METRICS = ("harmfulness", "refusal", "task_accuracy")


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    """Per model: the standard history over seeds; with `map_seeds`, the knob map."""
    measure = sweep.HistoryMetrics(
        trajectories=tuple((phase, MAIN_METRICS) for phase in presets.STANDARD_PHASES)
    )
    out = {}
    for model in config.models:
        spec = presets.standard_spec(model, config.size, keep_params=False)

        def build(spec=spec, **world):
            return spec, presets.standard_knobs(spec, config.learning_rate, **world).validate(spec)

        out[model] = sweep.Sweep(f"{model}-{config.size}", (), config.seeds, build, measure)
        if config.map_seeds:
            out[f"{model}-map"] = sweep.Sweep(
                f"{model}-{config.size}-map",
                axes=(sweep.Axis("harm_prob", tuple(config.map_harm_probs)),),
                branches=(sweep.Axis("benign_overlap", tuple(config.map_overlaps)),),
                branch_after="safety",
                seeds=config.map_seeds,
                build=build,
                measure=measure,
            )
    return out


def summarise_model(metrics: dict, diverged: np.ndarray) -> dict:
    """The JSON numbers of one model family, over the runs that did not diverge."""
    ok = ~np.asarray(diverged)
    harm = {phase: np.asarray(m["harmfulness"])[ok] for phase, m in metrics.items()}
    task = {phase: np.asarray(m["task_accuracy"])[ok] for phase, m in metrics.items()}
    return {
        "harmfulness_pretrained": mean_sd(harm["pretrain"][:, -1]),
        "harmfulness_helpful": mean_sd(harm["helpful"][:, -1]),
        "harmfulness_aligned": mean_sd(harm["safety"][:, -1]),
        "harmfulness_after_benign": mean_sd(harm["benign"][:, -1]),
        "refusal_aligned": mean_sd(np.asarray(metrics["safety"]["refusal"])[ok][:, -1]),
        "refusal_after_benign": mean_sd(np.asarray(metrics["benign"]["refusal"])[ok][:, -1]),
        "task_score_aligned": mean_sd(task["safety"][:, -1]),
        "task_score_after_benign": mean_sd(task["benign"][:, -1]),
        "erosion": mean_sd(harm["benign"][:, -1] - harm["safety"][:, -1]),
        "n_seeds": int(ok.sum()),
        "diverged_runs": np.flatnonzero(~ok).tolist(),
    }


ANSWER_STYLE = (
    ("harmfulness", "#d62728", "-", "harmfulness"),
    ("refusal", "#2ca02c", "--", "refusal"),
    ("task_accuracy", "#1f77b4", ":", "task accuracy"),
)


def plot_models(results: dict, specs: dict, path: Path, maps: dict, config: Config) -> Path:
    fig, axes = plotting.figure(len(results), 2 if maps else 1, width=5.0, height=3.4)
    for model, ax in zip(maps, axes[-1], strict=False):
        plot_map(ax, maps[model], config, model)
    for ax, (model, out) in zip(axes[0], results.items(), strict=True):
        spec = specs[model]
        bounds = []
        for i, phase in enumerate(spec.phases):
            x = i + phase.record_steps / phase.steps
            m = out["metrics"][phase.name]
            for name, color, linestyle, label in ANSWER_STYLE:
                plotting.mean_band(
                    ax,
                    x,
                    m[name],
                    color=color,
                    linestyle=linestyle,
                    label=label if i == 0 else None,
                )
            bounds.append((phase.name, i, i + 1))
        plotting.shade_phases(ax, bounds)
        ax.set_xticks(
            np.arange(len(spec.phases)) + 0.5, [f"{p.name}\n{p.steps} steps" for p in spec.phases]
        )
        ax.set_ylim(-0.02, 1.22)
        ax.set_ylabel("probability on probes")
        n = int((~np.asarray(out["diverged"])).sum())
        ax.set_title(f"{model}: mean ± sd over {n} seeds", pad=14)
        ax.legend(loc="upper center", ncol=3, frameon=False, fontsize=7)
    return plotting.save(fig, path, "Safety erosion under benign fine-tuning")


def knob_map(res: sweep.SweepResult, config: Config) -> dict:
    """Harmfulness at P, S and T for each (harm_prob, benign_overlap) of the map."""
    harm = {
        phase: res.valid(f"metrics/{phase}/harmfulness")[..., -1]
        for phase in ("pretrain", "safety", "benign")
    }
    return {
        f"harm_prob={h:g},overlap={o:g}": {
            "harm_prob": h,
            "benign_overlap": o,
            **{f"harmfulness_{phase}": mean_sd(v[i, j]) for phase, v in harm.items()},
        }
        for i, h in enumerate(config.map_harm_probs)
        for j, o in enumerate(config.map_overlaps)
    }


def plot_map(ax, entries: dict, config: Config, model: str):
    for j, h in enumerate(config.map_harm_probs):
        rows = [e for e in entries.values() if e["harm_prob"] == h]
        x = [e["benign_overlap"] for e in rows]
        color = f"C{j}"
        ax.errorbar(
            x,
            [e["harmfulness_benign"]["mean"] for e in rows],
            yerr=[e["harmfulness_benign"]["sd"] for e in rows],
            fmt="o-",
            color=color,
            capsize=2,
            label=f"harm_prob {h:g}: after benign",
        )
        ax.plot(
            x,
            [e["harmfulness_pretrain"]["mean"] for e in rows],
            ":",
            color=color,
            label=f"harm_prob {h:g}: pretrained",
        )
        ax.plot(x, [e["harmfulness_safety"]["mean"] for e in rows], "--", color=color, lw=0.8)
    ax.set(
        xlabel="benign_overlap (share of benign inputs from the hazard topic)",
        ylabel="harmfulness",
        ylim=(-0.02, 1.3),
        title=f"{model}: knob map ({config.map_seeds} seeds; dashed = aligned)",
    )
    ax.legend(frameon=False, fontsize=6, ncol=2, loc="upper center")


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    numbers = {}
    for model in config.models:
        res = results[model]
        numbers[model] = summarise_model(res.tree()["metrics"], res.diverged)
        if f"{model}-map" in results:
            numbers[model]["knob_map"] = knob_map(results[f"{model}-map"], config)
    return numbers


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    runs = {
        model: {"metrics": results[model].tree()["metrics"], "diverged": results[model].diverged}
        for model in config.models
    }
    specs = {model: presets.standard_spec(model, config.size) for model in config.models}
    maps = {m: numbers[m]["knob_map"] for m in config.models if "knob_map" in numbers[m]}
    return plot_models(runs, specs, path, maps, config)


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "safety erosion: harmfulness through P -> H -> S -> T, MLP and transformer"
)
