"""Safety erosion: after alignment, benign fine-tuning brings back the harmful behaviour.

For each model family (MLP on the feature world, transformer on the token world) the standard
history P -> H -> S -> T (`gravity.presets`) runs over many seeds at once. Harmfulness is the
exact probability of complying on hazardous probes; the claim is visible when harmfulness after
100 benign steps is clearly above its aligned level while the task score holds or improves.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from gravity import plotting, presets
from gravity.history import repeat_knobs, run_histories, seed_keys
from gravity.results import mean_sd, write_report

NAME = "erosion"


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 32
    models: tuple[str, ...] = presets.MODELS
    learning_rate: float = 1e-3
    size: str = "standard"


def make_config(quick: bool = False, seeds: int | None = None) -> Config:
    config = Config(seeds=8) if quick else Config()
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


def plot(results: dict, specs: dict, path: Path) -> Path:
    fig, axes = plotting.figure(len(results), width=5.0, height=3.4)
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
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("probability on probes")
        n = int((~np.asarray(out["diverged"])).sum())
        ax.set_title(f"{model}: mean ± sd over {n} seeds", pad=14)
        ax.legend(loc="center left", frameon=False)
    return plotting.save(fig, path, "Safety erosion under benign fine-tuning")


def run(config: Config, out_dir: Path = Path("figures"), progress: bool = True) -> dict:
    start = time.perf_counter()
    results, specs, numbers = {}, {}, {}
    for model in tqdm(config.models, desc=NAME, disable=not progress):
        spec = presets.standard_spec(model, config.size)
        knobs = presets.standard_knobs(spec, config.learning_rate).validate(spec)
        out = run_histories(seed_keys(range(config.seeds)), spec, repeat_knobs(knobs, config.seeds))
        out = jax.device_get({"metrics": out["metrics"], "diverged": out["diverged"]})
        results[model], specs[model] = out, spec
        numbers[model] = summarise(out["metrics"], out["diverged"])
    plot(results, specs, Path(out_dir) / f"{NAME}.png")
    write_report(
        out_dir, NAME, numbers, {"experiment": config, "specs": specs}, time.perf_counter() - start
    )
    return numbers
