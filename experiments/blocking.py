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

from gravity.defences.arms import arm_knobs
from gravity.engine import presets
from gravity.engine.spec import with_phase
from gravity.instruments import published
from gravity.instruments.readout import arm_summary, means_by_step, metric, ordered, run_means
from gravity.run import plotting, sweep
from gravity.run.experiment import Experiment

NAME = "blocking"
VARIANTS = ("none", "block", "push", "push_bounded", "project", "random_block", "matched_block")
LABELS = {"none": "baseline"}
PAPER = published.BLOCKING
DOSED = ("block", "push", "push_bounded")
EARLY_STEPS = (5, 10, 20)
CHAIN, BOUNDED = ("block", "baseline", "push"), ("block", "baseline", "push_bounded")
"""The paper's ordering, lowest first, with the plain and with the bounded push."""
FINAL = {m: m for m in ("alignment", "harmfulness", "harmfulness_heldout", "refusal")}
FINAL.update(task_score="task_accuracy", task_loss="task_loss")
"""What each arm reports at T: {key: the benign phase's metric}."""
EARLY = ("alignment", "harmfulness", "task_accuracy")


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


def ordering_by_step(arms: dict[str, sweep.SweepResult], steps) -> list[dict]:
    """The ordering (plain and bounded push) and blocking's task cost at every recorded step."""
    names, compared = ("alignment", "harmfulness_heldout", "task_accuracy"), (*CHAIN, BOUNDED[-1])
    return [
        {
            "step": t,
            "harmfulness_heldout": ordered(means, CHAIN, "harmfulness_heldout"),
            "alignment": ordered(means, CHAIN, "alignment"),
            "harmfulness_heldout_bounded_push": ordered(means, BOUNDED, "harmfulness_heldout"),
            "task_cost_of_blocking": means["baseline"]["task_accuracy"]
            - means["block"]["task_accuracy"],
        }
        for t, means in means_by_step({a: arms[a] for a in compared}, names, steps)
    ]


def summarise_model(res: sweep.SweepResult, config: Config) -> dict:
    """Per variant: final alignment, harmfulness, refusal and task score over seeds; the
    paper's ordering at T and early in the benign phase; the dose panels."""
    steps = res.record_steps(metric("benign", "alignment"))
    by_arm, last = res.split("arm"), int(steps[-1])
    arms = {LABELS.get(v, v): by_arm[(v, config.strength)] for v in VARIANTS}
    numbers = {label: arm_numbers(arm, config.strength, last) for label, arm in arms.items()}
    early = {
        f"step{t}": {label: run_means(arm, EARLY, t) for label, arm in arms.items()}
        for t in EARLY_STEPS
        if t in steps
    }
    final = {k: {m: e[m]["mean"] for m in ("alignment", "harmfulness")} for k, e in numbers.items()}
    numbers["ordering_block_lt_baseline_lt_push"] = {
        at: {m: ordered(means, CHAIN, m) for m in ("harmfulness", "alignment")}
        for at, means in {**early, "final": final}.items()
    }
    numbers["ordering_by_step"] = ordering_by_step(arms, steps)
    numbers["early_means"] = early
    baseline, block = numbers["baseline"], numbers["block"]
    numbers["task_cost_of_blocking"] = {
        "task_score": baseline["task_score"]["mean"] - block["task_score"]["mean"],
        "task_loss": block["task_loss"]["mean"] - baseline["task_loss"]["mean"],
    }
    strengths = sorted({*config.dose_strengths, config.strength})
    dose = {v: {str(s): arm_numbers(by_arm[(v, s)], s, last) for s in strengths} for v in DOSED}
    return {**numbers, "dose": dose} if config.dose_strengths else numbers


def arm_numbers(arm: sweep.SweepResult, strength: float, last: int) -> dict:
    """One arm at T: each `FINAL` metric over seeds, its strength, its diverged seeds."""
    return {**arm_summary(arm, FINAL, last), "strength": strength}


def plot_arms(row, spec, res: sweep.SweepResult, model: str, config: Config) -> None:
    """Alignment and harmfulness over the benign phase, a band per variant, and the paper's
    values at T as stars just after the end."""
    steps, end = spec.phases[-1].record_steps, spec.phases[-1].steps
    labels = {(v, config.strength): LABELS.get(v, v) for v in VARIANTS}
    styles = {arm: (label, plotting.COLORS[label], "-") for arm, label in labels.items()}
    for ax, name in zip(row, ("alignment", "harmfulness"), strict=False):
        plotting.bands_by(ax, steps, res, metric("benign", name), "arm", styles)
        at_end = {label: paper[name] for label, paper in PAPER.items()}
        plotting.paper_stars(ax, end + 3, at_end, plotting.COLORS, label=None)
    title = f"{model}: alignment (★ paper at T)"
    row[0].set(xlabel="benign step t", ylabel="cos(drift, v_rev)", ylim=(-1, 1), title=title)
    title = f"{model}: harmfulness"
    row[1].set(xlabel="benign step t", ylabel="harmfulness", ylim=(0, 1), title=title)


def plot_harm_vs_task(ax, n: dict) -> None:
    """Harmfulness against task accuracy at T per variant, and each dose curve by strength."""
    variants = {label: n[label] for label in (LABELS.get(v, v) for v in VARIANTS)}
    plotting.stats_points(ax, variants, "task_score", "harmfulness", plotting.COLORS)
    plotting.dose_curves(ax, n.get("dose", {}), "task_score", "harmfulness", plotting.COLORS)
    title = "harm vs task (strengths labelled)"
    plotting.finish(ax, "task accuracy at T", "harmfulness at T", title, fontsize=7, loc="best")


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    """Per model: every (variant, strength) arm branched from each seed's theta_S."""
    out = {}
    for model in config.models:
        spec = blocking_spec(model, config.size)

        def build(arm, spec=spec):
            knobs = arm_knobs(presets.standard_knobs(spec, config.learning_rate), arm)
            return spec, knobs.validate(spec)

        dosed = tuple((variant, s) for variant in DOSED for s in config.dose_strengths)
        arms = (sweep.Axis("arm", tuple((v, config.strength) for v in VARIANTS) + dosed),)
        out[model] = sweep.Sweep(
            f"{model}-{config.size}", (), config.seeds, build, branches=arms, branch_after="safety"
        )
    return out


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    numbers = {model: summarise_model(res, config) for model, res in results.items()}
    return {**numbers, "paper": PAPER}


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    """A row per model: alignment and harmfulness per variant beside the paper, harm vs task."""
    fig, axes = plotting.figure(3, len(results), width=4.3, height=3.2)
    for row, (model, res) in zip(axes, results.items(), strict=True):
        plot_arms(row, blocking_spec(model, config.size), res, model, config)
        plot_harm_vs_task(row[2], numbers[model])
    return plotting.save(fig, path, "Blocking motion along v_rev during benign fine-tuning")


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "blocking, pushing or projecting out motion along v_rev, with controls"
)
