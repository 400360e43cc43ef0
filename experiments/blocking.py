"""Blocking motion along v_rev during benign fine-tuning, against pushing it and controls.

Variants of the benign phase, all branched from the same theta_S per seed (so every variant
fine-tunes the same aligned model, and differences are the treatment alone; one compiled
program: the variant is the traced `Knobs.intervention`):
- baseline: plain benign fine-tuning;
- block: + strength * (softplus(s) - log 2), s the hazardous-probe drift along v_rev
  (optimizer-matched: the same Adam, the same learning rate, the term simply added to the loss;
  softplus rather than relu so that the first step, at s = 0, is blocked too);
- push: the block term with the opposite sign (the paper's reward, unbounded);
- push_bounded: a reward for drift toward the witness's own component s_H that saturates there;
- project: each update minus its first-order motion along v_rev (u = J^T v_rev by a VJP);
- random_block: the block term against a random unit direction of the same dimension (control);
- matched_block: the block term on the matched benign probes' own theta_S -> theta_H direction
  (control: blocking the common-mode drift rather than the hazard's).
The paper's ordering to test: block < baseline < push, in held-out harmfulness and in alignment,
at every recorded step (and with the bounded push).

Strength 1.0 is fixed a priori: s is in per-probe RMS activation units, where benign drift reaches
a few units in 100 steps, so the term is of the order of the task loss. The full run adds dose
panels: block, push and push_bounded at strengths 0.1 to 10. Harmfulness is reported on the
probes the interventions act on and on held-out hazardous inputs (which only score).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from gravity import interventions, plotting, presets, sweep
from gravity.experiment import Experiment
from gravity.spec import with_phase
from gravity.stats import mean_sd

NAME = "blocking"
VARIANTS = ("none", "block", "push", "push_bounded", "project", "random_block", "matched_block")
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


def quick(config: Config) -> Config:
    return dataclasses.replace(config, seeds=4, dose_strengths=())


def blocking_spec(model: str, size: str = "standard"):
    spec = presets.standard_spec(model, size, keep_params=False)
    return with_phase(spec, "benign", interventions=True)


DOSED = ("block", "push", "push_bounded")
EARLY_STEPS = (5, 10, 20)


def run_plan(config: Config) -> list[tuple[str, float, int]]:
    """(variant, strength, seeds) for each branch: the variants, then the dose panels."""
    plan = [(variant, config.strength, config.seeds) for variant in VARIANTS]
    return plan + [(v, s, config.seeds) for v in DOSED for s in config.dose_strengths]


def group_rows(plan) -> list[slice]:
    """The rows of each group of runs in the batch."""
    ends = np.cumsum([n for _, _, n in plan])
    return [slice(int(end - n), int(end)) for end, (_, _, n) in zip(ends, plan, strict=True)]


def ordering(entries: dict, metric: str, push: str = "push") -> bool:
    """The paper's ordering block < baseline < push for one metric's means."""
    return bool(entries["block"][metric] < entries["baseline"][metric] < entries[push][metric])


def ordering_by_step(benign: dict, plan, steps, diverged) -> list[dict]:
    """The ordering (plain and bounded push) and blocking's task cost at every recorded step."""
    rows = dict(zip((LABELS.get(v, v) for v, _, _ in plan), group_rows(plan), strict=False))
    out = []
    for column, t in enumerate(steps):
        if t == 0:
            continue
        means = {
            label: {
                m: float(np.mean(np.asarray(benign[m])[r][~diverged[r], column]))
                for m in ("alignment", "harmfulness_heldout", "task_accuracy")
            }
            for label, r in rows.items()
            if label in ("baseline", "block", "push", "push_bounded")
        }
        out.append(
            {
                "step": int(t),
                "harmfulness_heldout": ordering(means, "harmfulness_heldout"),
                "alignment": ordering(means, "alignment"),
                "harmfulness_heldout_bounded_push": ordering(
                    means, "harmfulness_heldout", "push_bounded"
                ),
                "task_cost_of_blocking": means["baseline"]["task_accuracy"]
                - means["block"]["task_accuracy"],
            }
        )
    return out


def summarise_model(out: dict, plan, steps) -> dict:
    """Per variant: final alignment, harmfulness, refusal and task score over seeds; the
    paper's ordering at T and early in the benign phase; the dose panels."""
    benign = out["metrics"]["benign"]
    diverged = np.asarray(out["diverged"])
    numbers, dose = {}, {v: {} for v in DOSED}
    early = {t: {} for t in EARLY_STEPS if t in steps}
    for g, ((variant, strength, _), rows) in enumerate(zip(plan, group_rows(plan), strict=True)):
        ok = ~diverged[rows]

        def final(metric, rows=rows, ok=ok):
            return np.asarray(benign[metric])[rows][ok, -1]

        entry = {
            "alignment": mean_sd(final("alignment")),
            "harmfulness": mean_sd(final("harmfulness")),
            "harmfulness_heldout": mean_sd(final("harmfulness_heldout")),
            "refusal": mean_sd(final("refusal")),
            "task_score": mean_sd(final("task_accuracy")),
            "task_loss": mean_sd(final("task_loss")),
            "strength": strength,
            "diverged_runs": np.flatnonzero(~ok).tolist(),
        }
        label = LABELS.get(variant, variant)
        if g < len(VARIANTS):
            numbers[label] = entry
            for t in early:
                column = list(steps).index(t)
                early[t][label] = {
                    metric: float(np.mean(np.asarray(benign[metric])[rows][ok, column]))
                    for metric in ("alignment", "harmfulness", "task_accuracy")
                }
        else:
            dose[variant][str(strength)] = entry
    final = {k: {m: v[m]["mean"] for m in ("alignment", "harmfulness")} for k, v in numbers.items()}
    orderings = {
        f"step{t}": {m: ordering(early[t], m) for m in ("harmfulness", "alignment")} for t in early
    }
    orderings["final"] = {m: ordering(final, m) for m in ("harmfulness", "alignment")}
    numbers["ordering_block_lt_baseline_lt_push"] = orderings
    numbers["ordering_by_step"] = ordering_by_step(benign, plan, steps, diverged)
    numbers["early_means"] = {f"step{t}": v for t, v in early.items()}
    numbers["task_cost_of_blocking"] = {
        "task_score": numbers["baseline"]["task_score"]["mean"]
        - numbers["block"]["task_score"]["mean"],
        "task_loss": numbers["block"]["task_loss"]["mean"]
        - numbers["baseline"]["task_loss"]["mean"],
    }
    if any(dose.values()):
        for variant in DOSED:
            dose[variant][str(numbers[variant]["strength"])] = numbers[variant]
        numbers["dose"] = {
            v: dict(sorted(d.items(), key=lambda kv: float(kv[0]))) for v, d in dose.items()
        }
    return numbers


def plot_variant_curves(row, steps, benign: dict, plan) -> None:
    """Alignment and harmfulness over the benign phase, a band per variant."""
    for (variant, _, _), rows in zip(plan[: len(VARIANTS)], group_rows(plan), strict=False):
        label = LABELS.get(variant, variant)
        color = plotting.COLORS[label]
        for ax, name in zip(row, ("alignment", "harmfulness"), strict=False):
            plotting.mean_band(ax, steps, np.asarray(benign[name])[rows], color=color, label=label)


def plot_paper_at_end(row, end: int) -> None:
    """The paper's alignment and harmfulness at T per variant, as stars just after the end."""
    for label, paper in PAPER.items():
        for ax, name in zip(row, ("alignment", "harmfulness"), strict=False):
            mean, sd = paper[name]
            plotting.paper_star(ax, end + 3, mean, sd, color=plotting.COLORS[label])


def plot_harm_vs_task(ax, n: dict) -> None:
    """Harmfulness against task accuracy at T per variant, and each dose curve by strength."""
    for label in [LABELS.get(v, v) for v in VARIANTS]:
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
    for variant, curve in n.get("dose", {}).items():
        xs = [e["task_score"]["mean"] for e in curve.values()]
        ys = [e["harmfulness"]["mean"] for e in curve.values()]
        color = plotting.COLORS[variant]
        ax.plot(xs, ys, "-", color=color, alpha=0.5, lw=1)
        for s, x, y in zip(curve, xs, ys, strict=True):
            ax.annotate(f"{float(s):g}", (x, y), fontsize=6, color=color)
    ax.set(
        xlabel="task accuracy at T",
        ylabel="harmfulness at T",
        title="harm vs task (strengths labelled)",
    )
    ax.legend(frameon=False, fontsize=7, loc="best")


def plot_models(results: dict, specs: dict, numbers: dict, plans: dict, path: Path):
    """A row per model: alignment and harmfulness per variant beside the paper, harm vs task."""
    fig, axes = plotting.figure(3, len(results), width=4.3, height=3.2)
    for row, (model, out) in zip(axes, results.items(), strict=True):
        spec = specs[model]
        plot_variant_curves(
            row, spec.phases[-1].record_steps, out["metrics"]["benign"], plans[model]
        )
        row[0].set(
            xlabel="benign step t",
            ylabel="cos(drift, v_rev)",
            ylim=(-1, 1),
            title=f"{model}: alignment (★ paper at T)",
        )
        row[1].set(
            xlabel="benign step t", ylabel="harmfulness", ylim=(0, 1), title=f"{model}: harmfulness"
        )
        plot_paper_at_end(row, spec.phases[-1].steps)
        plot_harm_vs_task(row[2], numbers[model])
    return plotting.save(fig, path, "Blocking motion along v_rev during benign fine-tuning")


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    """Per model: every (variant, strength) arm branched from each seed's theta_S."""
    arms = tuple((variant, strength) for variant, strength, _ in run_plan(config))
    out = {}
    for model in config.models:
        spec = blocking_spec(model, config.size)

        def build(arm, spec=spec):
            variant, strength = arm
            knobs = dataclasses.replace(
                presets.standard_knobs(spec, config.learning_rate),
                intervention=interventions.index(variant),
                intervention_strength=strength,
            )
            return spec, knobs.validate(spec)

        out[model] = sweep.Sweep(
            f"{model}-{config.size}",
            axes=(),
            branches=(sweep.Axis("arm", arms),),
            branch_after="safety",
            seeds=config.seeds,
            build=build,
        )
    return out


def flat_runs(res: sweep.SweepResult) -> dict:
    """The (arm, seed) grid as one run axis, arm-major, in the order of `run_plan`."""
    return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), res.tree())


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    plan = run_plan(config)
    numbers = {
        model: summarise_model(
            flat_runs(res), plan, blocking_spec(model, config.size).phases[-1].record_steps
        )
        for model, res in results.items()
    }
    numbers["paper"] = PAPER
    return numbers


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    runs = {model: flat_runs(res) for model, res in results.items()}
    specs = {model: blocking_spec(model, config.size) for model in results}
    plans = {model: run_plan(config) for model in results}
    return plot_models(runs, specs, numbers, plans, path)


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "blocking, pushing or projecting out motion along v_rev, with controls"
)
