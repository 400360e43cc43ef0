"""Safety erosion: after alignment, benign fine-tuning brings back the harmful behaviour.

For each model family (MLP on the feature world, transformer on the token world) the standard
history P -> H -> S -> T (`gravity.presets`) runs over many seeds at once. Harmfulness is the
exact probability of complying on hazardous probes; the claim is visible when harmfulness after
100 benign steps is clearly above its aligned level while the task score holds or improves.

The full run adds a knob map, in the same compiled program (knobs are vmapped): erosion over
pretraining's harm probability (what the basin holds) x the benign data's overlap with the hazard
topic, which shows where the phenomenon does and does not appear.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from gravity import plotting, presets
from gravity.history import run_histories, seed_keys, stack_knobs
from gravity.results import mean_sd, write_report

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


def make_config(quick: bool = False, seeds: int | None = None) -> Config:
    config = Config(seeds=8, map_seeds=0) if quick else Config()
    return dataclasses.replace(config, seeds=seeds) if seeds else config


def summarise(metrics: dict, diverged: np.ndarray) -> dict:
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


def plot(results: dict, specs: dict, path: Path, maps: dict, config: Config) -> Path:
    fig, axes = plotting.figure(len(results), 2 if maps else 1, width=5.0, height=3.4)
    for model, ax in zip(maps, axes[-1], strict=False):
        plot_map(ax, maps[model], config, model)
    for ax, (model, out) in zip(axes[0], results.items(), strict=True):
        spec = specs[model]
        bounds = []
        for i, phase in enumerate(spec.phases):
            x = i + phase.record_steps / phase.steps
            m = out["metrics"][phase.name]
            first = i == 0
            plotting.mean_band(
                ax, x, m["harmfulness"], color="#d62728", label="harmfulness" if first else None
            )
            plotting.mean_band(
                ax,
                x,
                m["refusal"],
                color="#2ca02c",
                linestyle="--",
                label="refusal" if first else None,
            )
            plotting.mean_band(
                ax,
                x,
                m["task_accuracy"],
                color="#1f77b4",
                linestyle=":",
                label="task accuracy" if first else None,
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


def map_settings(config: Config) -> list[tuple[float, float]]:
    return [(h, o) for h in config.map_harm_probs for o in config.map_overlaps]


def knob_map(out: dict, config: Config) -> dict:
    """Harmfulness at P, S and T for each (harm_prob, benign_overlap) of the map."""
    settings = map_settings(config)
    shape = (len(settings), config.map_seeds)
    metrics = out["metrics"]
    harm = {
        phase: np.asarray(metrics[phase]["harmfulness"])[:, -1].reshape(shape)
        for phase in ("pretrain", "safety", "benign")
    }
    ok = ~np.asarray(out["diverged"]).reshape(shape)
    return {
        f"harm_prob={h:g},overlap={o:g}": {
            "harm_prob": h,
            "benign_overlap": o,
            **{f"harmfulness_{phase}": mean_sd(v[i][ok[i]]) for phase, v in harm.items()},
        }
        for i, (h, o) in enumerate(settings)
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


def run(config: Config, out_dir: Path = Path("figures"), progress: bool = True) -> dict:
    start = time.perf_counter()
    results, specs, numbers, maps = {}, {}, {}, {}
    for model in tqdm(config.models, desc=NAME, disable=not progress):
        spec = presets.standard_spec(model, config.size)
        knobs = [presets.standard_knobs(spec, config.learning_rate)] * config.seeds
        seeds = list(range(config.seeds))
        for h, o in map_settings(config) if config.map_seeds else ():
            knobs += [
                presets.standard_knobs(spec, config.learning_rate, harm_prob=h, benign_overlap=o)
            ] * config.map_seeds
            seeds += list(range(config.map_seeds))
        for k in knobs[:: max(config.seeds, 1)]:
            k.validate(spec)
        out = run_histories(seed_keys(seeds), spec, stack_knobs(knobs))
        out = jax.device_get({"metrics": out["metrics"], "diverged": out["diverged"]})
        main = jax.tree.map(lambda x: x[: config.seeds], out)
        results[model], specs[model] = main, spec
        numbers[model] = summarise(main["metrics"], main["diverged"])
        if config.map_seeds:
            grid = jax.tree.map(lambda x: x[config.seeds :], out)
            maps[model] = numbers[model]["knob_map"] = knob_map(grid, config)
    plot(results, specs, Path(out_dir) / f"{NAME}.png", maps, config)
    write_report(
        out_dir, NAME, numbers, {"experiment": config, "specs": specs}, time.perf_counter() - start
    )
    return numbers
