"""Resurgence: does a concept erased from a toy diffusion model come back after benign
fine-tuning on other modes, as erased concepts do in Stable Diffusion (Suriyakumar et al. 2024)?

World and model (`gravity.diffusion`): a label-conditioned DDPM on 8 Gaussian modes on a ring
(mode 0 is the concept; a null label as in classifier-free guidance), an MLP denoiser with time
and label embeddings, a deterministic probability-flow ODE sampler (DPM-Solver++(2M), 16 steps).

History per run (Adam, lr 1e-3 in every phase, batch 128): pretraining, 2,000 steps -> erasure
of the concept, 100 steps, with a retain term on the other modes (method "retarget": the
concept's label trained on its neighbour's data; method "esd": negative guidance against frozen
theta_P) -> benign fine-tuning from theta_E, 200 steps, in parallel arms: on the concept's two
neighbours (d = 1, the headline), on the modes two steps away (d = 2), on the opposite mode
(d = 4, far), and d = 1 with the main track's block (+ 1.0 relu(s), s the drift along v_rev)
or the same block against a random direction (its control). The label embeddings are frozen
after pretraining: erasure and fine-tuning edit the denoiser, as in SD, whose text encoder stays
fixed. The sweep: method x pretraining ("concept", or "never_learned": the same history with the
concept absent from pretraining) x seeds, one compiled program.

Analysis (fixed before the full run; the smoke runs that shaped the design are reported in
docs/resurgence.md):
- concept mass: the share of 4,096 samples of the concept's label inside the concept's basin
  (the disc of half the neighbour spacing) at theta_P, theta_E and after benign fine-tuning (the
  curve over benign steps uses the first 1,024 of the same noise), with beside it the likelihood
  mass (the ODE density integrated over the basin) and the other labels' fidelity;
- resurgence_fraction = (m_T - m_E) / (m_P - m_E) per run (NaN where m_P - m_E < 0.05);
  resurgence counts as detected for a method when the mean of m_T - m_E exceeds both 0.01 and
  twice its standard error, and it is read beside the never-learned model's m_T and the far arm;
- alignment_step100 = cos(drift_100, v_rev) in the d = 1 arm (drift of the concept probes' last
  hidden layer from theta_E; v_rev = theta_E -> theta_P), beside the same-basis null
  cos(drift_100, theta_E -> theta_C) (theta_C: the same erasure applied to the opposite, harmless
  mode, from theta_E), the isotropic p99, the far arm's alignment and the concept-specific
  alignment (the null-label probes' drift removed);
- blocking: the d = 1 arm's concept mass with the block against v_rev and against a random
  direction. Every number is mean +- sd over seeds, per erasure method.
Added after the first full run, from the same arrays: the paired comparison with the
never-learned model (mean difference, share of seeds above it), medians, and the never-learned
model's blocked arm.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gravity import diffusion, geometry, plotting, sweep
from gravity.diffusion.history import gallery_labels
from gravity.diffusion.spec import BenignArm
from gravity.experiment import Experiment
from gravity.stats import mean_sd, reversion_fraction
from gravity.validation import check

NAME = "resurgence"
PRETRAINING = ("concept", "never_learned")
HEADLINE = 1
FAR = 4
MIN_GAP = 0.05
ANCHOR = "Suriyakumar et al. 2024, concept resurgence in Stable Diffusion v1.4 / v2.1"


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 16
    methods: tuple[str, ...] = tuple(diffusion.METHODS)
    distances: tuple[int, ...] = (HEADLINE, 2, FAR)
    pretrain_steps: int = 2000
    erase_steps: int = 100
    benign_steps: int = 200
    record_steps: tuple[int, ...] = (0, 10, 25, 50, 100, 200)
    learning_rate: float = 1e-3
    guidance: float = 1.0
    retain_weight: float = 1.0
    block_strength: float = 1.0
    n_samples: int = 4096
    trajectory_samples: int = 1024
    hidden: tuple[int, ...] = (64, 64)
    max_chunk: int | None = 64

    def __post_init__(self):
        check(
            set(self.methods) <= set(diffusion.METHODS),
            "methods",
            f"a subset of {', '.join(diffusion.METHODS)}",
            self.methods,
        )
        check(
            HEADLINE in self.distances and FAR in self.distances,
            "distances",
            f"ring distances including {HEADLINE} (headline) and {FAR} (far control)",
            self.distances,
        )
        check(
            100 in self.record_steps,
            "record_steps",
            "steps including 100 (alignment_step100)",
            self.record_steps,
        )


def quick(config: Config) -> Config:
    """Four seeds, shorter pretraining and benign phases, no d = 2 arm."""
    return dataclasses.replace(
        config,
        seeds=4,
        distances=(HEADLINE, FAR),
        pretrain_steps=1000,
        benign_steps=100,
        record_steps=(0, 10, 25, 50, 100),
    )


def arms(config: Config) -> tuple[BenignArm, ...]:
    """The benign arms: each distance, then d = 1 blocked and random-blocked."""
    plain = tuple(BenignArm(d) for d in config.distances)
    return (*plain, BenignArm(HEADLINE, "block"), BenignArm(HEADLINE, "random_block"))


def resurgence_spec(config: Config) -> diffusion.ResurgenceSpec:
    return diffusion.ResurgenceSpec(
        arms=arms(config),
        pretrain_steps=config.pretrain_steps,
        erase_steps=config.erase_steps,
        benign_steps=config.benign_steps,
        record_steps=config.record_steps,
        n_samples=config.n_samples,
        trajectory_samples=config.trajectory_samples,
        denoiser=diffusion.DenoiserConfig(hidden=config.hidden),
    )


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    spec = resurgence_spec(config)

    def build(method, pretraining):
        knobs = diffusion.make_knobs(
            spec,
            method,
            concept_pretrained=pretraining == "concept",
            learning_rate=config.learning_rate,
            guidance=config.guidance,
            retain_weight=config.retain_weight,
            block_strength=config.block_strength,
        )
        return spec, knobs

    histories = sweep.Sweep(
        name="histories",
        axes=(sweep.Axis("method", config.methods), sweep.Axis("pretraining", PRETRAINING)),
        seeds=config.seeds,
        build=build,
        measure=diffusion.run_resurgence,
        max_chunk=config.max_chunk,
        version=f"1-{diffusion.engine_digest()}",
    )
    return {"histories": histories}


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------


class Runs:
    """Per-run arrays of one (method, pretraining) cell, diverged runs as NaN."""

    def __init__(self, res: sweep.SweepResult, spec, method: int, pretraining: int):
        self.res, self.spec, self.cell = res, spec, (method, pretraining)
        self.steps = list(spec.record_steps)

    def get(self, name: str) -> np.ndarray:
        return self.res.valid(name)[self.cell]

    def arm(self, name: str) -> int:
        return self.spec.arm_names.index(name)

    def at(self, name: str, stage: str, arm: str | None = None) -> np.ndarray:
        """A summary output ("concept_mass", ...) at "pretrained", "erased" or an arm's end."""
        if arm is None:
            return self.get(f"summary/{stage}/{name}")
        return self.get(f"summary/benign/{name}")[:, self.arm(arm)]

    def trajectory(self, name: str, arm: str, step: int | None = None) -> np.ndarray:
        values = self.get(f"trajectory/{name}")[:, self.arm(arm)]
        return values if step is None else values[:, self.steps.index(step)]


def resurgence(runs: Runs, arm: str) -> np.ndarray:
    m_p, m_e = runs.at("concept_mass", "pretrained"), runs.at("concept_mass", "erased")
    return reversion_fraction(runs.at("concept_mass", "benign", arm), m_e, m_p, MIN_GAP)


def detected(runs: Runs, arm: str) -> bool:
    """The fixed criterion: mean m_T - m_E above 0.01 and above twice its standard error."""
    gain = runs.at("concept_mass", "benign", arm) - runs.at("concept_mass", "erased")
    gain = gain[np.isfinite(gain)]
    if gain.size < 2:
        return False
    return bool(gain.mean() > max(0.01, 2 * gain.std(ddof=1) / np.sqrt(gain.size)))


def method_numbers(runs: Runs, never: Runs, config: Config) -> dict:
    """The headline numbers of one erasure method (the near arm), and its controls."""
    near = f"d{HEADLINE}"
    return {
        "concept_mass_pretrained": mean_sd(runs.at("concept_mass", "pretrained")),
        "concept_mass_erased": mean_sd(runs.at("concept_mass", "erased")),
        "concept_mass_after_benign": mean_sd(runs.at("concept_mass", "benign", near)),
        "resurgence_fraction": mean_sd(resurgence(runs, near)),
        "never_learned_concept_mass_after_benign": mean_sd(
            never.at("concept_mass", "benign", near)
        ),
        "alignment_step100": mean_sd(runs.trajectory("alignment", near, 100)),
        "concept_mass_blocked": mean_sd(runs.at("concept_mass", "benign", f"{near}+block")),
        "resurgence_detected": detected(runs, near),
        "controls": {
            **mass_controls(runs, never),
            **drift_controls(runs, never, config),
        },
    }


def mass_controls(runs: Runs, never: Runs) -> dict:
    """The concept's mass in every arm, against the never-learned model, and its likelihood
    mass and the other labels' fidelity beside it."""
    near, far, block = f"d{HEADLINE}", f"d{FAR}", f"d{HEADLINE}+block"
    mass = {name: runs.at("concept_mass", "benign", name) for name in runs.spec.arm_names}
    never_mass = {name: never.at("concept_mass", "benign", name) for name in (near, far, block)}
    paired = np.isfinite(mass[near]) & np.isfinite(never_mass[near])
    stages = ("pretrained", "erased")
    return {
        "concept_mass_after_benign_by_arm": {k: mean_sd(v) for k, v in mass.items()},
        "resurgence_fraction_far": mean_sd(resurgence(runs, far)),
        "concept_mass_random_blocked": mean_sd(mass[f"{near}+random_block"]),
        "concept_mass_step100": mean_sd(runs.trajectory("concept_mass", near, 100)),
        "paired_near_minus_far": mean_sd(mass[near] - mass[far]),
        "paired_blocked_minus_baseline": mean_sd(mass[block] - mass[near]),
        "never_learned_concept_mass": {
            **{k: mean_sd(never.at("concept_mass", k)) for k in stages},
            **{f"after_benign_{k}": mean_sd(v) for k, v in never_mass.items()},
        },
        "paired_minus_never_learned": mean_sd(mass[near] - never_mass[near]),
        "share_of_seeds_above_never_learned": float(
            np.mean(mass[near][paired] > never_mass[near][paired])
        ),
        "median_concept_mass_after_benign": float(np.nanmedian(mass[near])),
        "median_never_learned_after_benign": float(np.nanmedian(never_mass[near])),
        "likelihood_mass": {
            **{k: mean_sd(runs.at("likelihood_mass", k)) for k in stages},
            **{
                f"after_benign_{k}": mean_sd(runs.at("likelihood_mass", "benign", k))
                for k in (near, far, block)
            },
            "never_learned_after_benign": mean_sd(never.at("likelihood_mass", "benign", near)),
        },
        "fidelity_other_labels": {
            **{k: mean_sd(runs.at("fidelity", k)) for k in stages},
            "after_benign": mean_sd(runs.at("fidelity", "benign", near)),
        },
    }


def drift_controls(runs: Runs, never: Runs, config: Config) -> dict:
    """The near arm's drift at step 100 against the nulls and the other arms."""
    near, far = f"d{HEADLINE}", f"d{FAR}"
    drift_end = runs.trajectory("drift_along_v_rev", near, config.benign_steps)
    return {
        "alignment_null_step100": mean_sd(runs.trajectory("alignment_null", near, 100)),
        "alignment_specific_step100": mean_sd(runs.trajectory("alignment_specific", near, 100)),
        "alignment_far_step100": mean_sd(runs.trajectory("alignment", far, 100)),
        "alignment_blocked_step100": mean_sd(runs.trajectory("alignment", f"{near}+block", 100)),
        "alignment_never_learned_step100": mean_sd(never.trajectory("alignment", near, 100)),
        "alignment_control_erasure": mean_sd(runs.get("alignment_control_erasure")),
        "activation_return_fraction": mean_sd(drift_end / runs.get("erasure_distance")),
    }


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    res = results["histories"]
    spec = resurgence_spec(config)
    learned, never = PRETRAINING.index("concept"), PRETRAINING.index("never_learned")
    per_method = {
        method: method_numbers(Runs(res, spec, m, learned), Runs(res, spec, m, never), config)
        for m, method in enumerate(config.methods)
    }
    headline = [k for k in next(iter(per_method.values())) if k != "controls"]
    numbers = {key: {method: per_method[method][key] for method in per_method} for key in headline}
    numbers["controls"] = {method: per_method[method]["controls"] for method in per_method}
    dim = spec.n_probes * spec.denoiser.hidden[-1]
    numbers["isotropic_null_p99"] = geometry.isotropic_null_quantile(dim, 0.99)
    numbers["benign_steps"] = config.benign_steps
    numbers["headline_arm"] = f"d{HEADLINE}"
    numbers["anchor"] = ANCHOR
    return numbers


# --------------------------------------------------------------------------------------------
# Figure
# --------------------------------------------------------------------------------------------


def draw_gallery(ax, spec, samples_Gx2, title: str):
    """One model's samples, the concept's label in red, its basin as a circle."""
    mixture = spec.mixture
    labels = gallery_labels(spec)
    concept = labels == mixture.concept
    ax.scatter(
        *samples_Gx2[~concept].T, s=3, color="#9a9a9a", alpha=0.5, lw=0, label="other labels"
    )
    ax.scatter(*samples_Gx2[concept].T, s=7, color="#d62728", lw=0, label="concept label")
    centre = mixture.means()[mixture.concept]
    ax.add_patch(
        plotting.plt.Circle(centre, mixture.basin_radius, fill=False, ls="--", color="#d62728")
    )
    limit = mixture.radius + 1.0
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_title(title)


def draw_trajectories(ax, config, res, spec, method: int, name: str):
    """The concept's mass over benign steps (mean +- sd over seeds) in the main arms."""
    steps = np.asarray(spec.record_steps)
    learned, never = Runs(res, spec, method, 0), Runs(res, spec, method, 1)
    lines = (
        (learned, f"d{HEADLINE}", f"near (d={HEADLINE})", "#d62728", "-"),
        (learned, f"d{FAR}", f"far (d={FAR})", "#1f77b4", "-"),
        (learned, f"d{HEADLINE}+block", "near, blocked", plotting.COLORS["block"], "--"),
        (never, f"d{HEADLINE}", "never learned, near", "#444444", ":"),
    )
    for runs, arm, label, color, style in lines:
        plotting.mean_band(
            ax,
            steps,
            runs.trajectory("concept_mass", arm),
            label=label,
            color=color,
            linestyle=style,
        )
    pretrained = np.nanmean(learned.at("concept_mass", "pretrained"))
    ax.axhline(pretrained, color="#d62728", lw=0.8, ls="-.", label=f"at theta_P ({pretrained:.2f})")
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_ylim(0, 1.2)
    ax.set_xlabel("benign step")
    ax.set_ylabel("concept mass (share of samples)")
    ax.set_title(f"{name}: the concept's mass while fine-tuning")
    ax.legend(frameon=False, fontsize=6.5)


def draw_alignment(ax, res, spec, numbers, method: int, name: str):
    """cos(drift_t, v_rev) in the near arm against its nulls."""
    steps = np.asarray(spec.record_steps)
    runs = Runs(res, spec, method, 0)
    near = f"d{HEADLINE}"
    lines = (
        ("alignment", near, "near: cos(drift, v_rev)", "#d62728"),
        ("alignment_specific", near, "near: concept-specific", "#9467bd"),
        ("alignment_null", near, "near: cos(drift, theta_E -> theta_C)", plotting.COLORS["null"]),
        ("alignment", f"d{FAR}", "far: cos(drift, v_rev)", "#1f77b4"),
    )
    for metric, arm, label, color in lines:
        plotting.mean_band(
            ax, steps[1:], runs.trajectory(metric, arm)[:, 1:], label=label, color=color
        )
    ax.axhline(
        numbers["isotropic_null_p99"], color="#444444", lw=0.8, ls=":", label="isotropic p99"
    )
    ax.set_xlabel("benign step")
    ax.set_ylabel("cosine")
    ax.set_title(f"{name}: drift of the concept probes")
    ax.legend(frameon=False, fontsize=6.5)


def plot(config: Config, results: dict[str, sweep.SweepResult], numbers: dict, path: Path):
    res = results["histories"]
    spec = resurgence_spec(config)
    methods = list(config.methods)
    fig, axes = plotting.figure(3, len(methods) + 1, width=3.6, height=3.4)
    near = spec.arm_names.index(f"d{HEADLINE}")
    for m, method in enumerate(methods):
        gallery = {k: res.arrays[f"summary/{k}/gallery"][m, 0, 0] for k in ("pretrained", "erased")}
        after = res.arrays["summary/benign/gallery"][m, 0, 0, near]
        stages = (
            (gallery["pretrained"], f"{method}: theta_P"),
            (gallery["erased"], f"{method}: erased (theta_E)"),
            (after, f"{method}: after {config.benign_steps} benign steps (d={HEADLINE})"),
        )
        for ax, (samples, title) in zip(axes[m], stages, strict=True):
            draw_gallery(ax, spec, samples, title)
    axes[0, 0].legend(frameon=False, fontsize=6.5, loc="lower left")
    for m, method in enumerate(methods[:2]):
        draw_trajectories(axes[-1, m], config, res, spec, m, method)
    if len(methods) < 2:
        axes[-1, 1].set_visible(False)
    draw_alignment(axes[-1, 2], res, spec, numbers, 0, methods[0])
    title = f"Resurgence in a toy diffusion model: {res.n_histories} histories (seed 0 shown)"
    return plotting.save(fig, path, title)


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "an erased mode returns in a toy diffusion model after benign fine-tuning"
)
