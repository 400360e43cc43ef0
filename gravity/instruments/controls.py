"""Control witnesses: a same-basis null for the *direction* of benign drift.

v_rev is the activation displacement theta_S -> theta_H on the hazardous probes: the helpful-only
witness un-teaches refusal. Is benign drift aligned with it because v_rev is special, or because
any phase of that size, starting from theta_S, moves the activations that way? A control witness
answers it. From the same theta_S, a phase of the witness phase's size (its steps, batch size,
optimizer and learning rate) changes a *harmless* behaviour instead: half of each batch is the
retain mixture (non-hazardous inputs of all topics with their task answers), half is target
inputs answered with the task answer shifted by `shift` (mod n_classes), as the helpful phase
mixes its hazardous share with the rest. Targets are benign inputs with hazard-topic share
`overlap` and no hazard-topic content otherwise (`benign_disjoint = 1`).

Each control direction is theta_S -> control witness measured like v_rev (activations on the
same hazardous probes, stacked), matched on activation distance: the phase keeps `checkpoints`
equally spaced checkpoints and the direction is taken at the one whose distance
||a_CW - a_S|| / sqrt(N) is nearest the witness's ||a_H - a_S|| / sqrt(N); the full-length
direction is returned beside it. `WithControlWitnesses` is a tree sweep's measurement: the
history's outputs plus the benign drift's cosines with these directions (computed once per
shared past: they depend on the trunk only, so `jax.vmap` over branches does not repeat them);
`control_witness_summary` reads them as a null beside cos(drift, v_rev).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from gravity.engine import geometry, history, training
from gravity.engine.models import network
from gravity.engine.objectives import cross_entropy
from gravity.engine.spec import phase_tag
from gravity.engine.worlds import Batch, WorldKnobs
from gravity.instruments.stats import mean_sd

CONTROL_TARGETS = (1.0, 0.0)
"""`benign_overlap` of each control witness's target inputs (truly disjoint otherwise): the hazard
topic without the hazard, the other topics."""
CONTROL_TARGET_NAMES = ("hazard_topic", "other_topics")
CONTROL_SHIFTS = (1, 2)
CONTROL_CHECKPOINTS = 10
CONTROL_WITNESS_TAG = phase_tag("control_witness")


def control_witness_batch(world, key, batch_size: int, overlap, shift, share) -> Batch:
    """One control witness batch: the retain mixture (task answers), with a share `share` of its
    rows replaced by target inputs (benign inputs of hazard-topic share `overlap`, no
    hazard-topic content otherwise) answered with the task answer shifted by `shift`."""
    k_base, k_target, k_mix = jax.random.split(key, 3)
    base = world.sample(WorldKnobs(), "retain", k_base, batch_size)
    target_knobs = WorldKnobs(benign_overlap=overlap, benign_disjoint=1.0)
    target = world.sample(target_knobs, "benign", k_target, batch_size)
    take = jax.random.bernoulli(k_mix, share, (batch_size,))
    rows = take.reshape(-1, *([1] * (base.inputs.ndim - 1)))
    inputs = jnp.where(rows, target.inputs, base.inputs)
    labels = jnp.where(take, (target.labels + shift) % world.n_classes, base.labels)
    return Batch(inputs, labels, jnp.zeros_like(take))


def checkpoint_interval(steps: int, checkpoints: int) -> int:
    """The smallest divisor of `steps` that leaves at most `checkpoints` equal segments."""
    return next(d for d in range(1, steps + 1) if steps % d == 0 and steps // d <= checkpoints)


def unit_rows(x):
    """Each row of `x` (flattened past its first axis) scaled to unit norm (`geometry.unit`)."""
    return jax.vmap(geometry.unit)(x.reshape(x.shape[0], -1))


def control_witnesses(key, spec, state, learning_rate: float, targets, shifts, checkpoints):
    """The control witnesses of one theta_S (see the module docstring): their displacements on
    the hazardous probes, distance-matched to the witness's and at full length, and distances."""
    net = network(spec.model, spec.world)
    helpful = spec.phases[spec.anchor_index("helpful")]
    theta_s = state.boundaries[spec.anchor_name("safety")]
    theta_h = state.boundaries[spec.anchor_name("helpful")]
    probes = state.probes.hazard.inputs
    n = probes.shape[0]
    aligned = net.activations(theta_s, probes)
    witness = jnp.linalg.norm(net.activations(theta_h, probes) - aligned) / math.sqrt(n)
    every = checkpoint_interval(helpful.steps, checkpoints)
    optimizer = history.phase_optimizer(helpful, learning_rate)
    share = WorldKnobs().align_hazard_rate

    def train(index, overlap, shift):
        def sample(step_key):
            return control_witness_batch(
                spec.world, step_key, helpful.batch_size, overlap, shift, share
            )

        def loss(q, batch):
            return cross_entropy(net.apply(q, batch.inputs)[0], batch.labels)

        def displacement(q):
            return {"displacement": net.activations(q, probes) - aligned}

        stream = jax.random.fold_in(jax.random.fold_in(key, CONTROL_WITNESS_TAG), index)
        trained = training.train(
            loss,
            sample,
            optimizer,
            theta_s,
            stream,
            helpful.steps,
            n_records=helpful.steps // every,
            evaluate=displacement,
        )
        return trained.records["displacement"][1:]  # after each segment (not at theta_S)

    displacement = jax.vmap(train)(
        jnp.arange(len(targets)),
        jnp.asarray(targets, dtype=jnp.float32),
        jnp.asarray(shifts, dtype=jnp.int32),
    )  # (K, checkpoints, N, D)
    distance = jnp.sqrt(jnp.sum(displacement**2, axis=(2, 3)) / n)
    chosen = jnp.argmin(jnp.abs(distance - witness), axis=1)
    matched = jax.vmap(lambda d, c: d[c])(displacement, chosen)
    rows = jnp.arange(len(targets))
    return {
        "matched": matched,
        "full": displacement[:, -1],
        "distance": distance[rows, chosen],
        "distance_full": distance[:, -1],
        "step": (chosen + 1) * every,
        "witness_distance": witness,
    }


@dataclasses.dataclass(frozen=True)
class WithControlWitnesses:
    """The tree's measurement: everything `run_history` returns (no parameters), plus the benign
    drift's cosines with the control witnesses' directions at the kept drift steps."""

    learning_rate: float
    targets: tuple[float, ...] = CONTROL_TARGETS
    shifts: tuple[int, ...] = CONTROL_SHIFTS
    checkpoints: int = CONTROL_CHECKPOINTS

    def __call__(self, key, spec, knobs, start=None) -> dict:
        if start is None:
            raise ValueError("control witnesses branch from a shared past: a tree sweep only")
        out = history.run_history(key, spec, knobs, start=start)
        out.pop("params", None)
        targets = [t for t in self.targets for _ in self.shifts]
        shifts = [s for _ in self.targets for s in self.shifts]
        witnesses = control_witnesses(
            key, spec, start.state, self.learning_rate, targets, shifts, self.checkpoints
        )
        drift = unit_rows(out["drift"])  # (kept steps, N * D)
        matched, full = unit_rows(witnesses["matched"]), unit_rows(witnesses["full"])
        v_rev = unit_rows(out["v_rev"][None])
        out["control_witness"] = {
            "alignment": drift @ matched.T,
            "alignment_full": drift @ full.T,
            "cos_v_rev": (v_rev @ matched.T)[0],
            "distance": witnesses["distance"],
            "distance_full": witnesses["distance_full"],
            "step": witnesses["step"],
            "witness_distance": witnesses["witness_distance"],
        }
        return out


def control_witness_summary(
    alignment_v_rev_RxS,
    witnesses: dict,
    kept_steps,
    targets: tuple[str, ...] = CONTROL_TARGET_NAMES,
    n_shifts: int = len(CONTROL_SHIFTS),
) -> dict:
    """The benign drift against the control witnesses' directions at the kept drift steps: the
    control-witness null (the p99 of cos(drift, control witness) over runs, steps and
    directions) beside cos(drift, v_rev) at the same run-steps, by step and by target, the
    full-length directions' cosines, and how well the distance match held.

    alignment_v_rev_RxS: cos(drift, v_rev) of the runs at `kept_steps`; witnesses: those runs'
    `WithControlWitnesses` outputs, directions ordered target-major (`targets` x `n_shifts`).
    """
    v_rev = np.asarray(alignment_v_rev_RxS)
    align = np.asarray(witnesses["alignment"], dtype=float)  # (R, kept, K)
    full = np.asarray(witnesses["alignment_full"], dtype=float)
    witness = np.asarray(witnesses["witness_distance"], dtype=float)
    distance = np.asarray(witnesses["distance"])
    p99 = float(np.nanquantile(align, 0.99))
    return {
        "steps": [int(t) for t in kept_steps],
        "alignment_v_rev": mean_sd(v_rev),
        "alignment_mean": float(np.nanmean(align)),
        "alignment_sd": float(np.nanstd(align)),
        "alignment_p99": p99,
        "fraction_v_rev_above_p99": float(np.mean(v_rev > p99)),
        "fraction_v_rev_above_its_own_witnesses": float(
            np.mean(np.all(v_rev[..., None] > align, axis=-1))
        ),
        "by_step": [
            {"step": int(t), "v_rev": mean_sd(v_rev[:, s]), "control_witness": mean_sd(align[:, s])}
            for s, t in enumerate(kept_steps)
        ],
        "by_target": {
            name: _target_summary(
                align,
                distance,
                witnesses["witness_distance"],
                slice(k * n_shifts, (k + 1) * n_shifts),
            )
            for k, name in enumerate(targets)
        },
        "full_length": {
            "alignment_mean": float(np.nanmean(full)),
            "alignment_p99": float(np.nanquantile(full, 0.99)),
        },
        "distance_witness": mean_sd(witness),
        "distance_control_witness": mean_sd(distance),
        "distance_ratio": mean_sd(distance / witness[:, None]),
        "distance_control_witness_full_length": mean_sd(witnesses["distance_full"]),
        "matched_at_step": mean_sd(witnesses["step"]),
        "cos_control_witness_v_rev": mean_sd(witnesses["cos_v_rev"]),
        "n_directions": int(distance.size),
    }


def _target_summary(align, distance, witness, directions: slice) -> dict:
    """One target's control witnesses (its shifts): mean and p99 cosine, distance ratio."""
    return {
        "alignment_mean": float(np.nanmean(align[..., directions])),
        "alignment_p99": float(np.nanquantile(align[..., directions], 0.99)),
        "distance_ratio": mean_sd(distance[:, directions] / np.asarray(witness)[:, None]),
    }


def control_witness_null(result, kept_steps, alignment: str = "metrics/benign/alignment") -> dict:
    """The control-witness null of a result's runs that did not diverge (one cell of a tree
    measured by `WithControlWitnesses`): its p99, the share of cos(drift, v_rev) above it at
    the kept drift steps, and the full `control_witness_summary`."""
    found = control_witness_summary(
        result.runs(alignment, step=kept_steps), result.runs_under("control_witness"), kept_steps
    )
    return {
        "null_p99_control_witness": found["alignment_p99"],
        "fraction_above_control_witness_null": found["fraction_v_rev_above_p99"],
        "control_witness": found,
    }
