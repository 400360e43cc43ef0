"""Read-outs of erased-concept histories (`gravity.engine.diffusion.run_resurgence`), in plain
numpy: the concept's mass at theta_P, at theta_E and after each benign arm, how much of it came back
(resurgence), and the drift of the concept probes against its nulls.

`ConceptRuns` is one cell of a sweep of such histories (one erasure method, one pretraining) as
per-seed arrays, diverged runs NaN. Arms are named as `ResurgenceSpec.arm_names` ("d1" the
benign arm on the concept's neighbours, "d4" the far one, "d1+block", "d1+random_block"); a
learned concept's cell is read beside the never-learned one's (the same history with the concept
absent from pretraining), its control.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from gravity.engine.geometry import isotropic_null_quantile
from gravity.instruments.stats import mean_sd, reversion_fraction

MIN_GAP = 0.05
"""Resurgence is undefined (NaN) where erasure removed less mass than this (m_P - m_E)."""
DETECTION_FLOOR = 0.01
"""The smallest mean return of mass (m_T - m_E) that counts as detected."""
STAGES = ("pretrained", "erased")
PRETRAINING = ("concept", "never_learned")
"""A sweep's `pretraining` axis: the concept learned in pretraining, or absent (the control)."""


@dataclasses.dataclass(frozen=True)
class ConceptRuns:
    """One cell of an erased-concept sweep: `result` selected down to its seeds (e.g.
    `res.select(method="esd", pretraining="concept")`), read with the history's `spec`."""

    result: Any
    spec: Any

    def get(self, name: str) -> np.ndarray:
        """An output per seed, diverged runs NaN."""
        return self.result.valid(name)

    def arm(self, name: str) -> int:
        return self.spec.arm_names.index(name)

    def at(self, name: str, stage: str, arm: str | None = None) -> np.ndarray:
        """A summary output ("concept_mass", ...) at "pretrained", "erased" or an arm's end."""
        if arm is None:
            return self.get(f"summary/{stage}/{name}")
        return self.get(f"summary/benign/{name}")[:, self.arm(arm)]

    def trajectory(self, name: str, arm: str, step: int | None = None) -> np.ndarray:
        """A recorded output of an arm over its benign steps (seeds x steps), or at one step."""
        values = self.get(f"trajectory/{name}")[:, self.arm(arm)]
        return values if step is None else values[:, list(self.spec.record_steps).index(step)]


def learned_and_never(res, spec, method: str) -> tuple[ConceptRuns, ConceptRuns]:
    """A method's runs with the concept pretrained and its never-learned control, from a sweep
    with a `method` axis and a `pretraining` axis of `PRETRAINING`."""
    learned, never = (res.select(method=method, pretraining=p) for p in PRETRAINING)
    return ConceptRuns(learned, spec), ConceptRuns(never, spec)


def resurgence_fraction(runs: ConceptRuns, arm: str, min_gap: float = MIN_GAP) -> np.ndarray:
    """(m_T - m_E) / (m_P - m_E) per seed: the share of the erased mass back after the arm."""
    m_p, m_e = runs.at("concept_mass", "pretrained"), runs.at("concept_mass", "erased")
    return reversion_fraction(runs.at("concept_mass", "benign", arm), m_e, m_p, min_gap)


def mean_clears(values, floor: float) -> bool:
    """Whether the mean of the finite `values` exceeds both `floor` and twice its standard error
    (False with fewer than two values)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return False
    return bool(values.mean() > max(floor, 2 * values.std(ddof=1) / np.sqrt(values.size)))


def resurgence_detected(runs: ConceptRuns, arm: str, floor: float = DETECTION_FLOOR) -> bool:
    """The fixed criterion: the mean of m_T - m_E over seeds clears `floor` (`mean_clears`)."""
    gain = runs.at("concept_mass", "benign", arm) - runs.at("concept_mass", "erased")
    return mean_clears(gain, floor)


def resurgence_numbers(runs, never, near: str, far: str, end: int, step: int = 100) -> dict:
    """The headline numbers of one erasure method in its `near` arm, and its controls
    (`mass_controls`, `drift_controls`); `never` is the never-learned cell, `end` the last
    benign step, `step` the one the alignment is read at."""
    return {
        "concept_mass_pretrained": mean_sd(runs.at("concept_mass", "pretrained")),
        "concept_mass_erased": mean_sd(runs.at("concept_mass", "erased")),
        "concept_mass_after_benign": mean_sd(runs.at("concept_mass", "benign", near)),
        "resurgence_fraction": mean_sd(resurgence_fraction(runs, near)),
        "never_learned_concept_mass_after_benign": mean_sd(
            never.at("concept_mass", "benign", near)
        ),
        f"alignment_step{step}": mean_sd(runs.trajectory("alignment", near, step)),
        "concept_mass_blocked": mean_sd(runs.at("concept_mass", "benign", f"{near}+block")),
        "resurgence_detected": resurgence_detected(runs, near),
        "controls": {
            **mass_controls(runs, never, near, far, step),
            **drift_controls(runs, never, near, far, end, step),
        },
    }


def resurgence_report(res, spec, methods, near: str, far: str) -> dict:
    """`resurgence_numbers` of every erasure method of a sweep (`learned_and_never` cells) as
    {number: {method: value}}, so each is read beside its value for every method; with the
    isotropic null's p99 for the drift alignment (`geometry.isotropic_null_quantile` in the
    concept probes' n_probes x last-hidden-width dimensions), the benign steps and the arm."""
    per_method = {
        method: resurgence_numbers(
            *learned_and_never(res, spec, method), near, far, spec.benign_steps
        )
        for method in methods
    }
    keys = next(iter(per_method.values()))
    numbers = {key: {method: per_method[method][key] for method in methods} for key in keys}
    dim = spec.n_probes * spec.denoiser.hidden[-1]
    numbers["isotropic_null_p99"] = isotropic_null_quantile(dim, 0.99)
    numbers["benign_steps"] = spec.benign_steps
    numbers["headline_arm"] = near
    return numbers


def mass_controls(runs, never, near: str, far: str, step: int = 100) -> dict:
    """The concept's mass in every arm and against the never-learned model (paired by seed),
    with its likelihood mass and the other labels' fidelity beside it."""
    block = f"{near}+block"
    mass = {name: runs.at("concept_mass", "benign", name) for name in runs.spec.arm_names}
    never_mass = {name: never.at("concept_mass", "benign", name) for name in (near, far, block)}
    paired = np.isfinite(mass[near]) & np.isfinite(never_mass[near])
    return {
        "concept_mass_after_benign_by_arm": {k: mean_sd(v) for k, v in mass.items()},
        "resurgence_fraction_far": mean_sd(resurgence_fraction(runs, far)),
        "concept_mass_random_blocked": mean_sd(mass[f"{near}+random_block"]),
        f"concept_mass_step{step}": mean_sd(runs.trajectory("concept_mass", near, step)),
        "paired_near_minus_far": mean_sd(mass[near] - mass[far]),
        "paired_blocked_minus_baseline": mean_sd(mass[block] - mass[near]),
        "never_learned_concept_mass": {
            **{k: mean_sd(never.at("concept_mass", k)) for k in STAGES},
            **{f"after_benign_{k}": mean_sd(v) for k, v in never_mass.items()},
        },
        "paired_minus_never_learned": mean_sd(mass[near] - never_mass[near]),
        "share_of_seeds_above_never_learned": float(
            np.mean(mass[near][paired] > never_mass[near][paired])
        ),
        "median_concept_mass_after_benign": float(np.nanmedian(mass[near])),
        "median_never_learned_after_benign": float(np.nanmedian(never_mass[near])),
        "likelihood_mass": likelihood_controls(runs, never, near, far),
        "fidelity_other_labels": {
            **{k: mean_sd(runs.at("fidelity", k)) for k in STAGES},
            "after_benign": mean_sd(runs.at("fidelity", "benign", near)),
        },
    }


def likelihood_controls(runs, never, near: str, far: str) -> dict:
    """The concept's likelihood mass (its ODE density over the basin) at theta_P, theta_E and
    after the near, far and blocked arms, and the never-learned model's after the near arm."""
    return {
        **{k: mean_sd(runs.at("likelihood_mass", k)) for k in STAGES},
        **{
            f"after_benign_{k}": mean_sd(runs.at("likelihood_mass", "benign", k))
            for k in (near, far, f"{near}+block")
        },
        "never_learned_after_benign": mean_sd(never.at("likelihood_mass", "benign", near)),
    }


def drift_controls(runs, never, near: str, far: str, end: int, step: int = 100) -> dict:
    """The near arm's drift alignment at `step` against its nulls and the other arms, and how
    far the activations came back by `end` (drift along v_rev over the erasure's distance)."""

    def alignment(name, arm, cell=runs):
        return mean_sd(cell.trajectory(name, arm, step))

    drift_end = runs.trajectory("drift_along_v_rev", near, end)
    return {
        f"alignment_null_step{step}": alignment("alignment_null", near),
        f"alignment_specific_step{step}": alignment("alignment_specific", near),
        f"alignment_far_step{step}": alignment("alignment", far),
        f"alignment_blocked_step{step}": alignment("alignment", f"{near}+block"),
        f"alignment_never_learned_step{step}": alignment("alignment", near, never),
        "alignment_control_erasure": mean_sd(runs.get("alignment_control_erasure")),
        "activation_return_fraction": mean_sd(drift_end / runs.get("erasure_distance")),
    }
