"""What a resurgence history is: its static spec (world, model, phase lengths, benign arms,
what is measured) and its numeric, vmappable knobs."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from gravity.engine.diffusion.denoiser import DenoiserConfig
from gravity.engine.diffusion.mixture import RingMixture
from gravity.engine.diffusion.sampler import Schedule
from gravity.validation import check, check_choice

METHODS = {"retarget": 0.0, "esd": 1.0}
"""Erasure methods, as the value of the `esd_weight` knob that selects them."""
ARM_INTERVENTIONS = ("none", "block", "random_block")
PHASE_NAMES = ("pretrain", "erase", "benign")
"""The phases with their own learning rate (the control erasure uses erase's)."""


@dataclasses.dataclass(frozen=True)
class BenignArm:
    """One benign fine-tuning from theta_E: on the modes `distance` ring steps from the concept,
    with an optional intervention ("block" v_rev, or "random_block" as its control)."""

    distance: int
    intervention: str = "none"

    def __post_init__(self):
        check_choice(self.intervention, ARM_INTERVENTIONS, "arm.intervention")

    @property
    def name(self) -> str:
        suffix = "" if self.intervention == "none" else f"+{self.intervention}"
        return f"d{self.distance}{suffix}"


@dataclasses.dataclass(frozen=True)
class ResurgenceSpec:
    """The static part of a history: world, model, phase lengths, arms, what is measured."""

    mixture: RingMixture = RingMixture()
    schedule: Schedule = Schedule()
    denoiser: DenoiserConfig = DenoiserConfig()
    arms: tuple[BenignArm, ...] = (BenignArm(1), BenignArm(4))
    pretrain_steps: int = 2000
    erase_steps: int = 100
    benign_steps: int = 200
    batch_size: int = 128
    null_prob: float = 0.1
    record_steps: tuple[int, ...] = (0, 10, 25, 50, 100, 200)
    n_samples: int = 4096
    trajectory_samples: int = 1024
    sampler_steps: int = 16
    likelihood_steps: int = 32
    gallery_per_label: int = 64
    n_probes: int = 64
    tune_label_embeddings: bool = False

    def __post_init__(self):
        for field in ("pretrain_steps", "erase_steps", "benign_steps", "batch_size", "n_probes"):
            check(getattr(self, field) >= 1, field, "a positive integer", getattr(self, field))
        check(len(self.arms) >= 1, "arms", "at least one benign arm", self.arms)
        for arm in self.arms:
            check(
                1 <= arm.distance <= self.mixture.n_modes // 2,
                "arm.distance",
                f"a ring distance in [1, {self.mixture.n_modes // 2}]",
                arm.distance,
            )
        check(
            self.record_steps[:1] == (0,)
            and all(0 < s <= self.benign_steps for s in self.record_steps[1:])
            and list(self.record_steps) == sorted(set(self.record_steps)),
            "record_steps",
            f"increasing steps starting at 0, within benign_steps = {self.benign_steps}",
            self.record_steps,
        )
        check(self.n_samples >= 1, "n_samples", "a positive integer", self.n_samples)
        check(
            1 <= self.trajectory_samples <= self.n_samples,
            "trajectory_samples",
            f"an integer in [1, n_samples = {self.n_samples}]",
            self.trajectory_samples,
        )
        check(0 <= self.null_prob < 1, "null_prob", "a probability in [0, 1)", self.null_prob)

    @property
    def control_mode(self) -> int:
        """The harmless mode the control erasure changes: the one opposite the concept."""
        return (self.mixture.concept + self.mixture.n_modes // 2) % self.mixture.n_modes

    @property
    def arm_names(self) -> tuple[str, ...]:
        return tuple(arm.name for arm in self.arms)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ArmKnobs:
    """Per-arm knobs, each with a leading arm axis (A, ...)."""

    benign_weights: jax.Array
    block_strength: jax.Array
    block_random: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ResurgenceKnobs:
    """The numeric, vmappable knobs of a history.

    learning_rate: Adam's, per phase of `PHASE_NAMES`; pretrain_weights: mode shares of the
    pretraining data; esd_weight: 0 retarget, 1 negative guidance; guidance: ESD's eta;
    retain_weight: the retain term's weight in the erasure loss.
    """

    learning_rate: jax.Array
    pretrain_weights: jax.Array
    esd_weight: jax.Array | float
    guidance: jax.Array | float
    retain_weight: jax.Array | float
    arms: ArmKnobs

    def validate(self, spec: ResurgenceSpec) -> ResurgenceKnobs:
        """Check concrete values against `spec` (one line naming the field on failure)."""
        lr = np.asarray(self.learning_rate, dtype=float)
        check(lr.shape == (len(PHASE_NAMES),), "learning_rate", "one per phase", lr.shape)
        check(bool(np.all(lr > 0)), "learning_rate", "positive values", lr.tolist())
        weights = np.asarray(self.pretrain_weights, dtype=float)
        check(
            weights.shape == (spec.mixture.n_modes,) and bool(np.all(weights >= 0)),
            "pretrain_weights",
            f"{spec.mixture.n_modes} non-negative mode weights",
            weights.tolist(),
        )
        for field in ("esd_weight", "guidance", "retain_weight"):
            value = float(getattr(self, field))
            check(value >= 0, field, "a value >= 0", value)
        check(
            np.shape(self.arms.benign_weights) == (len(spec.arms), spec.mixture.n_modes),
            "arms.benign_weights",
            "one row of mode weights per arm",
            np.shape(self.arms.benign_weights),
        )
        return self


def make_knobs(
    spec: ResurgenceSpec,
    method: str = "retarget",
    concept_pretrained: bool = True,
    learning_rate: float = 1e-3,
    guidance: float = 1.0,
    retain_weight: float = 1.0,
    block_strength: float = 1.0,
) -> ResurgenceKnobs:
    """Knobs for one history: the erasure `method`, whether pretraining saw the concept, one
    learning rate for every phase, and the arms' data and interventions from `spec.arms`."""
    check_choice(method, METHODS, "method")
    mixture = spec.mixture
    weights = np.ones(mixture.n_modes) if concept_pretrained else mixture.without(mixture.concept)
    arms = ArmKnobs(
        benign_weights=np.stack([mixture.modes_at(arm.distance) for arm in spec.arms]),
        block_strength=np.asarray(
            [block_strength * (arm.intervention != "none") for arm in spec.arms]
        ),
        block_random=np.asarray([float(arm.intervention == "random_block") for arm in spec.arms]),
    )
    knobs = ResurgenceKnobs(
        learning_rate=np.full(len(PHASE_NAMES), learning_rate),
        pretrain_weights=weights / weights.sum(),
        esd_weight=METHODS[method],
        guidance=guidance,
        retain_weight=retain_weight,
        arms=arms,
    )
    return knobs.validate(spec)
