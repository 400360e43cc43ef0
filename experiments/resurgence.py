"""Resurgence: does a concept erased from a toy diffusion model come back after benign
fine-tuning on other modes, as erased concepts do in Stable Diffusion (Suriyakumar et al. 2024)?

World and model (`gravity.engine.diffusion`): a label-conditioned DDPM on 8 Gaussian modes on a ring
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
docs/results/resurgence.md):
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

from gravity.engine import diffusion
from gravity.engine.diffusion.history import gallery_labels
from gravity.engine.diffusion.spec import BenignArm
from gravity.instruments.erased_concept import PRETRAINING, learned_and_never, resurgence_report
from gravity.run import plotting, sweep
from gravity.run.experiment import Experiment
from gravity.validation import check

NAME = "resurgence"
HEADLINE = 1
FAR = 4
NEAR, FAR_ARM = f"d{HEADLINE}", f"d{FAR}"
"""The headline arm (benign data on the concept's neighbours) and the far control's."""
RED, BLUE = "#d62728", "#1f77b4"
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
        methods = ", ".join(diffusion.METHODS)
        arms = f"{HEADLINE} (headline) and {FAR} (far control)"
        known = set(self.methods) <= set(diffusion.METHODS)
        check(known, "methods", f"a subset of {methods}", self.methods)
        both = HEADLINE in self.distances and FAR in self.distances
        check(both, "distances", f"ring distances including {arms}", self.distances)
        at_100 = 100 in self.record_steps
        check(at_100, "record_steps", "steps including 100 (alignment_step100)", self.record_steps)


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


KNOB_FIELDS = ("learning_rate", "guidance", "retain_weight", "block_strength")
"""Config fields passed to `diffusion.make_knobs` by name."""


def resurgence_spec(config: Config) -> diffusion.ResurgenceSpec:
    """The history; its benign arms: each distance, then d = 1 blocked and random-blocked."""
    plain = tuple(BenignArm(d) for d in config.distances)
    blocked = (BenignArm(HEADLINE, "block"), BenignArm(HEADLINE, "random_block"))
    return diffusion.ResurgenceSpec(
        arms=(*plain, *blocked),
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
    settings = {field: getattr(config, field) for field in KNOB_FIELDS}

    def build(method, pretraining):
        concept = pretraining == "concept"
        return spec, diffusion.make_knobs(spec, method, concept_pretrained=concept, **settings)

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


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    spec, res = resurgence_spec(config), results["histories"]
    return {**resurgence_report(res, spec, config.methods, NEAR, FAR_ARM), "anchor": ANCHOR}


def draw_trajectories(ax, res, spec, method: str):
    """The concept's mass over benign steps (mean +- sd over seeds) in the main arms."""
    learned, never = learned_and_never(res, spec, method)
    lines = (
        (learned, NEAR, f"near (d={HEADLINE})", RED, "-"),
        (learned, FAR_ARM, f"far (d={FAR})", BLUE, "-"),
        (learned, f"{NEAR}+block", "near, blocked", plotting.COLORS["block"], "--"),
        (never, NEAR, "never learned, near", "#444444", ":"),
    )
    bands = [(r.trajectory("concept_mass", arm), *style) for r, arm, *style in lines]
    plotting.mean_bands(ax, np.asarray(spec.record_steps), bands)
    pretrained = np.nanmean(learned.at("concept_mass", "pretrained"))
    ax.axhline(pretrained, color=RED, lw=0.8, ls="-.", label=f"at theta_P ({pretrained:.2f})")
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_ylim(0, 1.2)
    title = f"{method}: the concept's mass while fine-tuning"
    plotting.finish(ax, "benign step", "concept mass (share of samples)", title, fontsize=6.5)


def draw_alignment(ax, res, spec, numbers, method: str):
    """cos(drift_t, v_rev) in the near arm against its nulls."""
    runs, _ = learned_and_never(res, spec, method)
    lines = (
        ("alignment", NEAR, "near: cos(drift, v_rev)", RED),
        ("alignment_specific", NEAR, "near: concept-specific", "#9467bd"),
        ("alignment_null", NEAR, "near: cos(drift, theta_E -> theta_C)", plotting.COLORS["null"]),
        ("alignment", FAR_ARM, "far: cos(drift, v_rev)", BLUE),
    )
    bands = [(runs.trajectory(name, arm)[:, 1:], *style, "-") for name, arm, *style in lines]
    plotting.mean_bands(ax, np.asarray(spec.record_steps)[1:], bands)
    p99 = numbers["isotropic_null_p99"]
    ax.axhline(p99, color="#444444", lw=0.8, ls=":", label="isotropic p99")
    title = f"{method}: drift of the concept probes"
    plotting.finish(ax, "benign step", "cosine", title, fontsize=6.5)


def draw_galleries(axes, res, spec, method: str, benign_steps: int):
    """Seed 0's samples at theta_P, theta_E and after the near arm (the concept's label red)."""
    gallery = learned_and_never(res, spec, method)[0].result.arrays  # seed 0, even if diverged
    near = gallery["summary/benign/gallery"][0, spec.arm_names.index(NEAR)]
    stages = (
        (gallery["summary/pretrained/gallery"][0], "theta_P"),
        (gallery["summary/erased/gallery"][0], "erased (theta_E)"),
        (near, f"after {benign_steps} benign steps (d={HEADLINE})"),
    )
    mixture, labels = spec.mixture, ("other labels", "concept label")
    basin = (mixture.means()[mixture.concept], mixture.basin_radius)
    concept, limit = gallery_labels(spec) == mixture.concept, mixture.radius + 1.0
    for ax, (samples, stage) in zip(axes, stages, strict=True):
        plotting.highlighted_samples(ax, samples, concept, basin, limit, labels=labels)
        ax.set_title(f"{method}: {stage}")


def plot(config: Config, results: dict[str, sweep.SweepResult], numbers: dict, path: Path):
    res, spec = results["histories"], resurgence_spec(config)
    methods = config.methods
    fig, axes = plotting.figure(3, len(methods) + 1, width=3.6, height=3.4)
    for m, method in enumerate(methods):
        draw_galleries(axes[m], res, spec, method, config.benign_steps)
    axes[0, 0].legend(frameon=False, fontsize=6.5, loc="lower left")
    for m, method in enumerate(methods[:2]):
        draw_trajectories(axes[-1, m], res, spec, method)
    if len(methods) < 2:
        axes[-1, 1].set_visible(False)
    draw_alignment(axes[-1, 2], res, spec, numbers, methods[0])
    title = f"Resurgence in a toy diffusion model: {res.n_histories} histories (seed 0 shown)"
    return plotting.save(fig, path, title)


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "an erased mode returns in a toy diffusion model after benign fine-tuning"
)
