"""Readouts of a history's recorded metrics from a sweep result (`gravity.run.sweep.SweepResult`,
or one cell of it from `select`): values at a record step, reversion, the answers' shift over
fine-tuning, alignment's specificity and its correlation with harm; arms compared by their
means (at T, step by step, in a pre-registered order), and a grid's cells read one by one.

Names follow the engine's outputs ("metrics/PHASE/METRIC"); `phase` is the fine-tuning phase
read (the benign one by default). Functions that return arrays keep the grid and set diverged
runs to NaN (`valid`); functions that return numbers summarise the runs that did not diverge
(`runs`), so a diverged history is left out and named by the caller.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import scipy.stats

from gravity.instruments.stats import mean_sd, reversion_fraction, spearman_by_step


def metric(phase: str, name: str) -> str:
    """The output name of a phase's recorded metric."""
    return f"metrics/{phase}/{name}"


def harm_at(result, step: int, phase: str = "benign", held_out: bool = False) -> np.ndarray:
    """Harmfulness at a record step of `phase` (on the probes, or on held-out hazardous inputs),
    every history of the grid, diverged ones NaN."""
    return result.valid(metric(phase, "harmfulness_heldout" if held_out else "harmfulness"), step)


def alignment_at(result, step: int, phase: str = "benign") -> np.ndarray:
    """cos(drift, v_rev) at a record step of `phase`, every history, diverged ones NaN."""
    return result.valid(metric(phase, "alignment"), step)


def reversion(result, step: int | None = None, phase: str = "benign") -> np.ndarray:
    """How much of the harmfulness that safety alignment removed has come back by `step` (the
    phase's last record by default): `stats.reversion_fraction` of the harm then, against the
    aligned model's and the helpful-only witness's, per history (diverged ones NaN)."""
    steps = result.record_steps(metric(phase, "harmfulness"))
    harm = harm_at(result, int(steps[-1]) if step is None else step, phase)
    return reversion_fraction(harm, anchor_harm(result, "safety"), anchor_harm(result, "helpful"))


def anchor_harm(result, phase: str) -> np.ndarray:
    """Harmfulness at the end of `phase` (the `HistoryMetrics` final when kept, else the last
    record), every history, diverged ones NaN."""
    final = f"final/{phase}/harmfulness"
    return result.valid(final) if final in result.arrays else harm_at_end(result, phase)


def harm_at_end(result, phase: str) -> np.ndarray:
    """Harmfulness at the last record of `phase`, every history, diverged ones NaN."""
    return result.valid(metric(phase, "harmfulness"))[..., -1]


def means_at(result, names: Sequence[str], steps: int | Sequence[int], phase="benign") -> dict:
    """{f"{name}_step{t}": mean and sd over the runs} of a phase's metrics at a record step t
    (or at each of several, step-major)."""
    return {
        f"{name}_step{t}": mean_sd(result.runs(metric(phase, name), step=t))
        for t in (steps if isinstance(steps, Sequence) else [steps])
        for name in names
    }


def after_start(result, name: str) -> np.ndarray:
    """An output's runs at every record step after step 0 (runs x steps)."""
    return result.runs(name)[:, result.record_steps(name) >= 1]


def alignment_harm_correlation(result, null: float, phase: str = "benign") -> dict:
    """How often alignment after step 0 clears `null`, and how it ranks with harmfulness over
    run-steps: pooled (what the paper reports), within step and partial on the step."""
    align = after_start(result, metric(phase, "alignment"))
    harm = after_start(result, metric(phase, "harmfulness"))
    correlations = spearman_by_step(align, harm)
    return {
        "fraction_above_null": float(np.mean(align > null)),
        "run_step_pairs": int(align.size),
        "spearman_alignment_harmfulness": float(
            scipy.stats.spearmanr(align.ravel(), harm.ravel()).statistic
        ),
        "spearman_within_step_median": correlations["within_step_median"],
        "spearman_partial_step": correlations["partial_step"],
    }


def refusal_shift(result, step: int, phase: str = "benign", aligned: str = "safety") -> dict:
    """Answer probabilities on the hazardous probes at the end of the `aligned` phase and at
    `step` of `phase`, and where the refusal lost in between went: the share of it that became
    the harmful answer, and the share that became other answers."""

    def at_end(name):
        return result.runs(metric(aligned, name))[:, -1]

    def at_step(name):
        return result.runs(metric(phase, name), step=step)

    refusal_lost = at_end("refusal") - at_step("refusal")
    return {
        **means_at(result, ["harmfulness_heldout"], step, phase),
        "harmfulness_aligned": mean_sd(at_end("harmfulness")),
        **means_at(result, ["harmfulness"], step, phase),
        "refusal_aligned": mean_sd(at_end("refusal")),
        **means_at(result, ["refusal"], step, phase),
        "lost_refusal_to_harmful": mean_sd(
            (at_step("harmfulness") - at_end("harmfulness")) / refusal_lost
        ),
        "lost_refusal_to_other": mean_sd((at_step("other") - at_end("other")) / refusal_lost),
    }


def alignment_specificity(
    result, directions: Sequence[str], step: int, phase: str = "benign", at=(1, 20)
) -> dict:
    """Is the drift's alignment specific to the hazard? Alignment at `step` on the matched
    benign probes, hazard-specific (common-mode drift removed) and in weight space; and with
    each definition of v_rev (`geometry.DIRECTIONS`) at steps `at` and `step`."""
    by_definition = metric(phase, "alignment_by_definition")
    names = ["alignment_benign_probes", "alignment_hazard_specific", "weight_alignment"]
    return {
        **means_at(result, names, step, phase),
        "alignment_by_definition": {
            name: {
                f"step{t}": mean_sd(result.runs(by_definition, step=t)[:, i]) for t in (*at, step)
            }
            for i, name in enumerate(directions)
        },
    }


def harm_and_alignment(result, step: int, phase: str = "benign") -> dict:
    """A world's reversion at a glance: harmfulness after pretraining and when aligned (the
    start of `phase`), and at `step` alignment (all and hazard-specific) and harmfulness (on
    the probes and held out); mean and sd over the runs."""
    harm = result.runs(metric(phase, "harmfulness"))
    return {
        "harmfulness_pretrained": mean_sd(result.runs(metric("pretrain", "harmfulness"))[:, -1]),
        "harmfulness_aligned": mean_sd(harm[:, 0]),
        **means_at(result, ["alignment", "alignment_hazard_specific"], step, phase),
        **means_at(result, ["harmfulness", "harmfulness_heldout"], step, phase),
    }


def means_by_cell(result, name: str, steps: Sequence[int]) -> np.ndarray:
    """An output's mean over seeds at each of `steps`, per grid cell (diverged runs left out):
    shape (*grid, len(steps)), e.g. the observables a calibration fits cells by."""
    return np.stack([np.nanmean(result.valid(name, step=t), axis=-1) for t in steps], axis=-1)


def run_means(result, names: Sequence[str], step: int, phase: str = "benign") -> dict:
    """{name: mean over the runs} of a phase's metrics at a record step (plain floats, for
    comparing arms)."""
    return {name: float(np.mean(result.runs(metric(phase, name), step=step))) for name in names}


def ordered(means: dict, chain: Sequence[str], name: str) -> bool:
    """Whether the arms' means of `name` rise strictly along `chain` (e.g. the paper's
    block < baseline < push); means: {arm: {name: mean}}."""
    values = [means[arm][name] for arm in chain]
    return bool(all(a < b for a, b in zip(values, values[1:], strict=False)))


def means_by_step(arms: dict, names: Sequence[str], steps, phase: str = "benign") -> list:
    """(t, {arm: {name: mean over its runs}}) at every record step t after step 0, for arms
    ({label: result}) compared step by step."""
    return [
        (int(t), {label: run_means(arm, names, t, phase) for label, arm in arms.items()})
        for t in steps
        if t != 0
    ]


def arm_summary(result, names: dict, step: int, phase: str = "benign") -> dict:
    """One arm of a comparison at a record step: {key: mean and sd over its runs of the phase's
    metric `names[key]`}, and the seeds that diverged (left out), by index."""
    return {
        **{
            key: mean_sd(result.runs(metric(phase, name), step=step)) for key, name in names.items()
        },
        "diverged_runs": np.flatnonzero(result.diverged).tolist(),
    }


def per_cell(result, read, name: str) -> dict:
    """{name.format(**cell): read(the result at that cell)} for every cell of the result's grid,
    the last axis varying fastest (e.g. name "pretrain{pretrain_steps}_witness{witness_steps}")."""
    cells = itertools.product(*([(axis.name, v) for v in axis.values] for axis in result.axes))
    return {name.format(**dict(cell)): read(result.select(**dict(cell))) for cell in cells}
