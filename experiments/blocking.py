"""Blocking motion along v_rev during benign fine-tuning, against pushing it and controls.

Variants of the benign phase (all else equal, one compiled program: the variant is a per-run
knob, see `interventions.SELECTED`):
- baseline: plain benign fine-tuning;
- block: + strength * relu(s), s the hazardous-probe drift along v_rev (optimizer-matched: the
  same Adam, the same learning rate, the term simply added to the loss);
- push: - strength * relu(s);
- project: each update minus its first-order motion along v_rev (u = J^T v_rev by a VJP);
- random_block: the block term against a random unit direction of the same dimension (control).
The paper's ordering to test: block < baseline < push, in harmfulness and in alignment.

Strength 1.0 is fixed a priori: s is in per-probe RMS activation units, where benign drift reaches
a few units in 100 steps, so the term is of the order of the task loss. The full run adds a dose
panel: block at strengths 0.1 to 10.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from gravity import interventions, plotting, presets
from gravity.history import run_histories, seed_keys, stack_knobs
from gravity.results import mean_sd, write_report

NAME = "blocking"
VARIANTS = ("none", "block", "push", "project", "random_block")
LABELS = {"none": "baseline"}
PAPER = {
    "baseline": {"alignment": (0.648, 0.009), "harmfulness": (0.190, 0.040)},
    "block": {"alignment": (-0.211, 0.021), "harmfulness": (0.085, 0.015)},
}


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 16
    models: tuple[str, ...] = presets.MODELS
    learning_rate: float = 1e-3
    strength: float = 1.0
    dose_strengths: tuple[float, ...] = (0.1, 0.3, 3.0, 10.0)
    size: str = "standard"


def make_config(quick: bool = False, seeds: int | None = None) -> Config:
    config = Config(seeds=4, dose_strengths=()) if quick else Config()
    return dataclasses.replace(config, seeds=seeds) if seeds else config


def blocking_spec(model: str, size: str = "standard"):
    spec = presets.standard_spec(model, size, keep_params=False)
    return presets.with_phase(spec, "benign", intervention=interventions.SELECTED)


def run_plan(config: Config) -> list[tuple[str, float]]:
    """(variant, strength) for each group of seeds: the variants, then the dose panel."""
    plan = [(variant, config.strength) for variant in VARIANTS]
    return plan + [("block", s) for s in config.dose_strengths]


def summarise(out: dict, plan, seeds: int) -> dict:
    """Per variant: final alignment, harmfulness, refusal and task score over seeds."""
    benign = out["metrics"]["benign"]
    diverged = np.asarray(out["diverged"]).reshape(len(plan), seeds)
    numbers, dose = {}, {}
    for g, (variant, strength) in enumerate(plan):
        rows = slice(g * seeds, (g + 1) * seeds)
        ok = ~diverged[g]

        def final(metric, rows=rows, ok=ok):
            return np.asarray(benign[metric])[rows][ok, -1]

        entry = {
            "alignment": mean_sd(final("alignment")),
            "harmfulness": mean_sd(final("harmfulness")),
            "refusal": mean_sd(final("refusal")),
            "task_score": mean_sd(final("task_accuracy")),
            "task_loss": mean_sd(final("task_loss")),
            "strength": strength,
            "diverged_runs": np.flatnonzero(~ok).tolist(),
        }
        if g < len(VARIANTS):
            numbers[LABELS.get(variant, variant)] = entry
        else:
            dose[str(strength)] = entry
    harm = {k: v["harmfulness"]["mean"] for k, v in numbers.items()}
    align = {k: v["alignment"]["mean"] for k, v in numbers.items()}
    numbers["ordering_block_lt_baseline_lt_push"] = {
        "harmfulness": bool(harm["block"] < harm["baseline"] < harm["push"]),
        "alignment": bool(align["block"] < align["baseline"] < align["push"]),
    }
    numbers["task_cost_of_blocking"] = {
        "task_score": numbers["baseline"]["task_score"]["mean"]
        - numbers["block"]["task_score"]["mean"],
        "task_loss": numbers["block"]["task_loss"]["mean"]
        - numbers["baseline"]["task_loss"]["mean"],
    }
    if dose:
        dose[str(numbers["block"]["strength"])] = numbers["block"]
        numbers["dose"] = dict(sorted(dose.items(), key=lambda kv: float(kv[0])))
    return numbers


def plot(results: dict, specs: dict, numbers: dict, plans: dict, seeds: int, path: Path):
    fig, axes = plotting.figure(3, len(results), width=4.3, height=3.2)
    for row, (model, out) in zip(axes, results.items(), strict=True):
        spec, plan, n = specs[model], plans[model], numbers[model]
        steps = spec.phases[-1].record_steps
        benign = out["metrics"]["benign"]
        for g, (variant, _) in enumerate(plan[: len(VARIANTS)]):
            label = LABELS.get(variant, variant)
            rows = slice(g * seeds, (g + 1) * seeds)
            color = plotting.COLORS[label]
            plotting.mean_band(
                row[0], steps, np.asarray(benign["alignment"])[rows], color=color, label=label
            )
            plotting.mean_band(
                row[1], steps, np.asarray(benign["harmfulness"])[rows], color=color, label=label
            )
        row[0].set(
            xlabel="benign step t",
            ylabel="cos(drift, v_rev)",
            ylim=(-1, 1),
            title=f"{model}: alignment",
        )
        row[1].set(
            xlabel="benign step t", ylabel="harmfulness", ylim=(0, 1), title=f"{model}: harmfulness"
        )
        for label, paper in PAPER.items():
            row[0].errorbar(
                spec.phases[-1].steps + 3,
                paper["alignment"][0],
                yerr=paper["alignment"][1],
                fmt="*",
                color=plotting.COLORS[label],
                mec="k",
                ms=8,
            )
            row[1].errorbar(
                spec.phases[-1].steps + 3,
                paper["harmfulness"][0],
                yerr=paper["harmfulness"][1],
                fmt="*",
                color=plotting.COLORS[label],
                mec="k",
                ms=8,
            )
        row[0].legend(frameon=False, fontsize=7, title="★ paper, T = 100", title_fontsize=7)
        ax = row[2]
        labels = [LABELS.get(v, v) for v in VARIANTS]
        for label in labels:
            e = n[label]
            ax.errorbar(
                e["task_score"]["mean"],
                e["harmfulness"]["mean"],
                xerr=e["task_score"]["sd"],
                yerr=e["harmfulness"]["sd"],
                fmt="o",
                color=plotting.COLORS[label],
                label=label,
                capsize=2,
            )
        if "dose" in n:
            xs = [e["task_score"]["mean"] for e in n["dose"].values()]
            ys = [e["harmfulness"]["mean"] for e in n["dose"].values()]
            ax.plot(xs, ys, "-", color=plotting.COLORS["block"], alpha=0.5, lw=1)
            for s, x, y in zip(n["dose"], xs, ys, strict=True):
                ax.annotate(f"{float(s):g}", (x, y), fontsize=6, color=plotting.COLORS["block"])
        ax.set(
            xlabel="task accuracy at T",
            ylabel="harmfulness at T",
            title="harm vs task cost (block dose labelled)",
        )
        ax.legend(frameon=False, fontsize=7)
    return plotting.save(fig, path, "Blocking motion along v_rev during benign fine-tuning")


def run(config: Config, out_dir: Path = Path("figures"), progress: bool = True) -> dict:
    start = time.perf_counter()
    plan = run_plan(config)
    results, specs, numbers, plans = {}, {}, {}, {}
    for model in tqdm(config.models, desc=NAME, disable=not progress):
        spec = blocking_spec(model, config.size)
        base = presets.standard_knobs(spec, config.learning_rate)
        knobs = [
            dataclasses.replace(
                base, intervention=interventions.index(variant), intervention_strength=strength
            ).validate(spec)
            for variant, strength in plan
            for _ in range(config.seeds)
        ]
        seeds = np.tile(np.arange(config.seeds), len(plan))
        out = jax.device_get(run_histories(seed_keys(seeds), spec, stack_knobs(knobs)))
        results[model], specs[model], plans[model] = out, spec, plan
        numbers[model] = summarise(out, plan, config.seeds)
    plot(results, specs, numbers, plans, config.seeds, Path(out_dir) / f"{NAME}.png")
    numbers["paper"] = PAPER
    write_report(
        out_dir, NAME, numbers, {"experiment": config, "specs": specs}, time.perf_counter() - start
    )
    return numbers
