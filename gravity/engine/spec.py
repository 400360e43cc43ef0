"""What a history is, as data: its phases (`PhaseSpec`), the static `HistorySpec`, the traced
`Knobs`, and the spec surgery experiments use (`with_phase`, `split_at`).

What is static (changes shapes or programs: step counts, widths, which phases exist, each
phase's optimizer and weight decay) lives in `HistorySpec`; what can be swept by `vmap` (learning
rates keyed by phase name, intervention choice and strength, the world's probabilities) lives in
`Knobs`.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from gravity.engine import defence as defences
from gravity.engine import geometry, objectives
from gravity.engine.models import ModelConfig
from gravity.engine.worlds import World, WorldKnobs, check_world
from gravity.engine.worlds.base import check_data_kind
from gravity.validation import check, check_choice

OPTIMIZERS = ("adam", "adamw", "sgd")
DECAYING = ("adamw", "sgd")
"""The optimizers with a weight decay (`PhaseSpec.weight_decay`); adam has none."""


def phase_tag(name: str) -> int:
    """A stable integer for a phase name: its key is `fold_in(run key, phase_tag(name))`, so a
    phase draws the same data whatever comes before it, straight or branched."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def decay_refusal(optimizer: str, how: str) -> str:
    """What a refused weight decay is told: `optimizer` has none; `how` spells the fix
    ("optimizer=" in code, "--set phases.PHASE.optimizer=" on the command line)."""
    return (
        f"0 with optimizer {optimizer}, which has no weight decay (it would be ignored): "
        f"choose one that has, {how}adamw or {how}sgd"
    )


@dataclasses.dataclass(frozen=True)
class PhaseSpec:
    """One phase of a history.

    name: unique within the history ("pretrain", "helpful", "safety", "benign" ...); it keys the
        phase's learning rate and its random stream.
    data: the data kind it trains on (see `gravity.engine.worlds.DATA_KINDS`).
    steps: optimizer updates in the phase.
    batch_size: examples drawn fresh for every update.
    optimizer: "adam" (optax.adam), "adamw" (optax.adamw) or "sgd" (optax.sgd); each phase starts
        a fresh optimizer state; its learning rate is the traced `Knobs.learning_rate[name]`.
    weight_decay: decay rate wd >= 0, only with adamw or sgd (adam has none: a nonzero value is
        refused). Both multiply it by the learning rate: one step shrinks the parameters by
        lr * wd * theta besides the gradient step. adamw's is decoupled (added to Adam's update
        after the moment scaling, as in optax and torch's AdamW); sgd's is L2 (wd * theta added
        to the gradient), which for plain SGD is the same step.
    objective: its loss (see `gravity.engine.objectives.OBJECTIVES`).
    dense_steps: record every step for this many first steps (then `n_records` log-spaced).
    n_records: how many log-spaced record steps follow the dense ones (the phase's end is one).
    interventions: compile the intervention machinery into this phase (a benign phase after
        alignment); which intervention acts is the traced `Knobs.intervention`.
    snapshots: steps at which the parameters are kept, so later phases can branch from them
        (e.g. alignment depths as snapshots of one longer safety phase).
    defences: the defences (`gravity.defences.names()`) this phase compiles; which one acts is
        the traced `Knobs.defence`.
    """

    name: str
    data: str
    steps: int
    batch_size: int
    optimizer: str = "adam"
    weight_decay: float = 0.0
    objective: str = "cross_entropy"
    dense_steps: int = 0
    n_records: int = 8
    interventions: bool = False
    snapshots: tuple[int, ...] = ()
    defences: tuple[str, ...] = ()

    def __post_init__(self):
        check_data_kind(self.data)
        defences.check_names(self.defences, f"{self.name}.defences")
        check(self.steps >= 1, f"{self.name}.steps", "a positive integer", self.steps)
        check(
            self.batch_size >= 1, f"{self.name}.batch_size", "a positive integer", self.batch_size
        )
        check_choice(self.optimizer, OPTIMIZERS, f"{self.name}.optimizer")
        check(
            math.isfinite(self.weight_decay) and self.weight_decay >= 0,
            f"{self.name}.weight_decay",
            "a finite number >= 0",
            self.weight_decay,
        )
        check(
            self.weight_decay == 0 or self.optimizer in DECAYING,
            f"{self.name}.weight_decay",
            decay_refusal(self.optimizer, "optimizer="),
            self.weight_decay,
        )
        objectives.check_name(self.objective, f"{self.name}.objective")
        check(
            self.dense_steps >= 0, f"{self.name}.dense_steps", "an integer >= 0", self.dense_steps
        )
        check(self.n_records >= 1, f"{self.name}.n_records", "a positive integer", self.n_records)
        check(
            all(1 <= s <= self.steps for s in self.snapshots)
            and list(self.snapshots) == sorted(set(self.snapshots)),
            f"{self.name}.snapshots",
            f"increasing steps in 1..{self.steps}",
            self.snapshots,
        )

    @property
    def record_steps(self) -> np.ndarray:
        """Steps (updates done in this phase) at which metrics are recorded; 0 is the start."""
        dense = np.arange(min(self.dense_steps, self.steps) + 1)
        start = max(int(dense[-1]), 1)
        spaced = np.geomspace(start, self.steps, self.n_records + 1).round().astype(int)
        return np.unique(np.concatenate([dense, spaced, [self.steps]]))


@dataclasses.dataclass(frozen=True)
class HistorySpec:
    """The static part of a history: world, model, phases and what to measure.

    world: any registered `gravity.engine.worlds.World` whose inputs the model reads.
    directions: the v_rev definitions (`geometry.DIRECTIONS`) whose alignment is recorded in the
        benign phases; the first is *the* v_rev (used by interventions).
    drift_snapshots: benign steps at which the full drift fields are kept (for matched nulls).
    keep_params: return the parameters at every phase boundary (sweeps may switch it off).
    """

    world: World
    model: ModelConfig
    phases: tuple[PhaseSpec, ...]
    n_probes: int = 128
    directions: tuple[str, ...] = (geometry.DEFAULT_DIRECTION,)
    drift_snapshots: tuple[int, ...] = ()
    keep_params: bool = True

    def __post_init__(self):
        check_world(self.world)
        names = [phase.name for phase in self.phases]
        check(len(names) >= 1, "phases", "at least one phase", names)
        check(len(set(names)) == len(names), "phases", "phases with unique names", names)
        check("init" not in names, "phases", "no phase called 'init' (the initialisation)", names)
        check(self.n_probes >= 2, "n_probes", "an integer >= 2", self.n_probes)
        for name in self.directions:
            check_choice(name, geometry.DIRECTIONS, "directions")
        check(len(self.directions) >= 1, "directions", "at least one definition", self.directions)
        check(
            not (
                self.needs_trajectory
                and any(p.snapshots for p in self.phases if p.data == "safety")
            ),
            "directions",
            "no trajectory-based v_rev with safety snapshots (the trajectory would be the whole "
            "phase's, not the snapshot's)",
            self.directions,
        )
        for i, phase in enumerate(self.phases):
            for field in ("interventions", "defences"):
                check(
                    not getattr(phase, field)
                    or self.measures_reversion(i)
                    or (field == "defences" and aligning_defences(phase)),
                    f"{phase.name}.{field}",
                    "only in a phase after a helpful and a safety phase (or, for defences that "
                    "act at alignment, in a safety phase)",
                    getattr(phase, field),
                )
        benign = [p for i, p in enumerate(self.phases) if self.measures_reversion(i)]
        for step in self.drift_snapshots:
            check(
                bool(benign) and all(step in p.record_steps for p in benign),
                "drift_snapshots",
                "record steps of every measured benign phase",
                step,
            )

    def anchor_index(self, data: str) -> int | None:
        """Index of the anchor phase of `data`: theta_S is the last phase training on safety
        data; theta_P and theta_H are the last phases training on pretraining and helpful data
        before it (anywhere when there is no safety phase). A phase after alignment fine-tunes,
        whatever its data: fine-tuning on the pretraining distribution moves no anchor."""
        safety = [i for i, phase in enumerate(self.phases) if phase.data == "safety"]
        end = safety[-1] if safety and data != "safety" else len(self.phases)
        found = [i for i, phase in enumerate(self.phases[:end]) if phase.data == data]
        return found[-1] if found else None

    def anchor_name(self, data: str) -> str | None:
        """The name of that phase ("init" for pretraining when there is none)."""
        index = self.anchor_index(data)
        if index is None:
            return "init" if data == "pretrain" else None
        return self.phases[index].name

    def measures_reversion(self, index: int) -> bool:
        """Whether drift along v_rev is measured in phase `index`: after theta_H and theta_S."""
        helpful, safety = self.anchor_index("helpful"), self.anchor_index("safety")
        return helpful is not None and safety is not None and index > max(helpful, safety)

    @property
    def phase_names(self) -> tuple[str, ...]:
        return tuple(phase.name for phase in self.phases)

    def phase(self, name: str) -> PhaseSpec:
        check_choice(name, self.phase_names, "phase")
        return self.phases[self.phase_names.index(name)]

    def record_steps(self) -> dict[str, np.ndarray]:
        return {phase.name: phase.record_steps for phase in self.phases}

    @property
    def needs_trajectory(self) -> bool:
        return any(geometry.DIRECTIONS[name].needs_trajectory for name in self.directions)


def aligning_defences(phase: PhaseSpec) -> bool:
    """Whether `phase` is a safety phase whose defences all act at alignment (they may be
    compiled into it: they need no theta_S)."""
    return phase.data == "safety" and all(
        defences.get(name).acts_at_alignment for name in phase.defences
    )


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Knobs:
    """The numeric, vmappable knobs of a history.

    learning_rate: {phase name: learning rate}; the optimizer and its weight decay are the
        phase's (`PhaseSpec.optimizer`, `PhaseSpec.weight_decay`), static.
    intervention: index into the steering variants (`gravity.defences.steering`), acting in
        phases compiled with `interventions=True` ("none" elsewhere); intervention_strength
        scales its loss term.
    snapshot: when a history branches from a phase with snapshots, which one it starts from:
        {phase name: index into its `snapshots`}, or one index for a tree with one level.
    objective_strength: passed to every phase's objective; those with a strength (unlearning's
        forget-term weight) use it, the others ignore it.
    defence: index into `defences.names()`, acting in phases that compile it; defence_strength
        is its strength (a rehearsal fraction, a penalty weight, a SafeLoRA threshold).
    """

    learning_rate: Mapping[str, jax.Array | float]
    world: WorldKnobs = dataclasses.field(default_factory=WorldKnobs)
    intervention_strength: jax.Array | float = 1.0
    intervention: jax.Array | int = 0
    snapshot: jax.Array | int | Mapping[str, jax.Array | int] = 0
    objective_strength: jax.Array | float = 1.0
    defence: jax.Array | int = 0
    defence_strength: jax.Array | float = 0.0

    def validate(self, spec: HistorySpec) -> Knobs:
        """Check concrete values against `spec` (one line naming the field on failure)."""
        self.world.validate()
        check(
            isinstance(self.learning_rate, Mapping)
            and set(self.learning_rate) == set(spec.phase_names),
            "learning_rate",
            f"a value for each phase ({', '.join(spec.phase_names)})",
            list(self.learning_rate) if isinstance(self.learning_rate, Mapping) else None,
        )
        for name, value in self.learning_rate.items():
            lr = np.asarray(value, dtype=float)
            check(
                bool(np.all(np.isfinite(lr) & (lr > 0))),
                f"learning_rate.{name}",
                "a positive finite value",
                value,
            )
        for field in ("intervention_strength", "objective_strength", "defence_strength"):
            value = np.asarray(getattr(self, field), dtype=float)
            check(
                bool(np.all(np.isfinite(value) & (value >= 0))),
                field,
                "a finite value >= 0",
                getattr(self, field),
            )
        index = np.asarray(self.intervention)
        _, variants = defences.steering()
        check(
            bool(np.all((index >= 0) & (index < len(variants)))),
            "intervention",
            f"an index into {', '.join(variants)}",
            self.intervention,
        )
        compiled = {"none", *(d for phase in spec.phases for d in phase.defences)}
        chosen = np.atleast_1d(np.asarray(self.defence))
        check(
            all(0 <= int(i) < len(defences.names()) for i in chosen)
            and all(defences.names()[int(i)] in compiled for i in chosen),
            "defence",
            f"an index of a defence some phase compiles ({', '.join(sorted(compiled))})",
            self.defence,
        )
        return self


def stack_knobs(knobs: list[Knobs]) -> Knobs:
    """A batch of knob settings with a leading run axis, for `run_histories`."""
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *knobs)


def repeat_knobs(knobs: Knobs, n: int) -> Knobs:
    """The same knobs for `n` runs (e.g. seeds), with a leading run axis."""
    return jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (n, *jnp.shape(x))), knobs)


def with_phase(spec: HistorySpec, name: str, **changes) -> HistorySpec:
    """`spec` with one phase's fields replaced (e.g. its step count or snapshots)."""
    spec.phase(name)
    phases = tuple(
        dataclasses.replace(phase, **changes) if phase.name == name else phase
        for phase in spec.phases
    )
    return dataclasses.replace(spec, phases=phases)


def phases_through(spec: HistorySpec, name: str) -> tuple[PhaseSpec, ...]:
    """The phases up to and including `name`: the shared past of branches that start there."""
    spec.phase(name)
    return spec.phases[: spec.phase_names.index(name) + 1]
