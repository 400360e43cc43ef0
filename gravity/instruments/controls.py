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

Un-refuse witnesses ask the sharper question (#22 g): benign data never holds REFUSE, so any
benign drift moves along "un-refuse"; does it follow v_rev *beyond* that? From theta_S, a
phase of the witness's size on the witness's own data, with every hazardous input answered by a
harmless answer (neither REFUSE nor pretraining's: `unrefuse_batch`), gives theta_U; its
direction theta_S -> theta_U, distance-matched as above, is an un-refuse direction. The drift's
cosine with v_rev beyond them projects both off their span (`unrefuse_alignment`);
`unrefuse_summary` compares it, seed by seed, with a same-basis control fine-tuning's, and says
what the witnesses do (harmfulness and refusal at theta_U: whether they un-refuse without harm).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gravity.engine import geometry, history, training
from gravity.engine.models import network
from gravity.engine.objectives import cross_entropy
from gravity.engine.spec import phase_tag
from gravity.engine.worlds import Batch, WorldKnobs
from gravity.instruments.nulls import fraction_above, quantile_null
from gravity.instruments.stats import mean_sd, paired_difference

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


class WitnessSetup(NamedTuple):
    """What every phase of the witness's size from theta_S shares: the network, the helpful
    phase (its steps, batch size), theta_S, the hazardous probes' inputs and activations there,
    the witness's activation distance ||a_H - a_S|| / sqrt(N), the checkpoint spacing and the
    helpful phase's optimizer."""

    net: Any
    helpful: Any
    theta_s: Any
    probes: jax.Array
    aligned: jax.Array
    witness: jax.Array
    every: int
    optimizer: Any


def witness_setup(spec, state, learning_rate: float, checkpoints: int) -> WitnessSetup:
    """The shared setup of the phases of the witness's size that branch from a tree's theta_S."""
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
    return WitnessSetup(net, helpful, theta_s, probes, aligned, witness, every, optimizer)


def witness_phase(setup: WitnessSetup, sample, stream, evaluate) -> dict:
    """A phase of the witness's size from theta_S on `sample`'s batches (step key -> Batch),
    cross-entropy, the helpful phase's optimizer; `evaluate` (params -> dict) recorded at theta_S
    and after each of its checkpoint segments."""
    net, helpful = setup.net, setup.helpful

    def loss(q, batch):
        return cross_entropy(net.apply(q, batch.inputs)[0], batch.labels)

    trained = training.train(
        loss,
        sample,
        setup.optimizer,
        setup.theta_s,
        stream,
        helpful.steps,
        n_records=helpful.steps // setup.every,
        evaluate=evaluate,
    )
    return trained.records


def matched_directions(displacement, setup: WitnessSetup) -> dict:
    """Each phase's direction at the checkpoint whose activation distance from theta_S is
    nearest the witness's, and at full length. displacement: (K, checkpoints, N, D), after each
    segment (not at theta_S)."""
    n = setup.probes.shape[0]
    distance = jnp.sqrt(jnp.sum(displacement**2, axis=(2, 3)) / n)
    chosen = jnp.argmin(jnp.abs(distance - setup.witness), axis=1)
    matched = jax.vmap(lambda d, c: d[c])(displacement, chosen)
    rows = jnp.arange(displacement.shape[0])
    return {
        "matched": matched,
        "full": displacement[:, -1],
        "distance": distance[rows, chosen],
        "distance_full": distance[:, -1],
        "step": (chosen + 1) * setup.every,
        "witness_distance": setup.witness,
        "chosen": chosen,
    }


def control_witnesses(key, spec, state, learning_rate: float, targets, shifts, checkpoints):
    """The control witnesses of one theta_S (see the module docstring): their displacements on
    the hazardous probes, distance-matched to the witness's and at full length, and distances."""
    setup = witness_setup(spec, state, learning_rate, checkpoints)
    share = WorldKnobs().align_hazard_rate

    def train(index, overlap, shift):
        def sample(step_key):
            return control_witness_batch(
                spec.world, step_key, setup.helpful.batch_size, overlap, shift, share
            )

        def displacement(q):
            return {"displacement": setup.net.activations(q, setup.probes) - setup.aligned}

        stream = jax.random.fold_in(jax.random.fold_in(key, CONTROL_WITNESS_TAG), index)
        records = witness_phase(setup, sample, stream, displacement)
        return records["displacement"][1:]  # after each segment (not at theta_S)

    displacement = jax.vmap(train)(
        jnp.arange(len(targets)),
        jnp.asarray(targets, dtype=jnp.float32),
        jnp.asarray(shifts, dtype=jnp.int32),
    )  # (K, checkpoints, N, D)
    found = matched_directions(displacement, setup)
    found.pop("chosen")
    return found


UNREFUSE_MODES = ("fixed_answer", "random_answer")
"""How an un-refuse witness answers hazardous inputs: one fixed harmless answer (class 0, or 1
where pretraining's answer is 0), or a uniformly random answer other than pretraining's, drawn
afresh for every row."""
UNREFUSE_TAG = phase_tag("unrefuse_witness")


def unrefuse_batch(world, key, batch_size: int, random_answer) -> Batch:
    """One un-refuse witness batch: the witness phase's data (the helpful mixture, hazardous
    share `align_hazard_rate`) with every hazardous input answered by a harmless answer, neither
    REFUSE nor pretraining's (harmful) one; see `UNREFUSE_MODES`. `random_answer` may be traced."""
    k_batch, k_answer = jax.random.split(key)
    batch = world.sample(WorldKnobs(), "helpful", k_batch, batch_size)
    harmful = (batch.labels - world.witness_shift) % world.n_classes  # pretraining's answer
    fixed = jnp.where(harmful == 0, 1, 0)
    offset = jax.random.randint(k_answer, harmful.shape, 1, world.n_classes)
    harmless = jnp.where(random_answer, (harmful + offset) % world.n_classes, fixed)
    return batch._replace(labels=jnp.where(batch.hazardous, harmless, batch.labels))


def probe_answers(net, q, probes, n_classes: int) -> dict:
    """Activations on the hazardous probes, and the mean probability there of pretraining's
    answer (harmfulness, as `history.behaviour` measures it) and of REFUSE."""
    logits, layers = net.apply(q, probes.inputs)
    p = jax.nn.softmax(logits)
    rows = jnp.arange(probes.inputs.shape[0])
    return {
        "activations": layers[net.config.activation_layer],
        "harmfulness": jnp.mean(p[rows, probes.labels]),
        "refusal": jnp.mean(p[:, n_classes]),
    }


def unrefuse_witnesses(key, spec, state, learning_rate: float, modes, checkpoints) -> dict:
    """The un-refuse witnesses of one theta_S: phases of the witness's size that turn REFUSE on
    hazardous inputs into a harmless answer (`unrefuse_batch`; `modes`: random_answer flags),
    their directions theta_S -> theta_U on the hazardous probes (distance-matched as the control
    witnesses', and at full length), and their harmfulness and refusal at theta_S, at the
    matched checkpoint and at full length."""
    setup = witness_setup(spec, state, learning_rate, checkpoints)
    hazard, n_classes = state.probes.hazard, spec.world.n_classes

    def train(index, random_answer):
        def sample(step_key):
            return unrefuse_batch(spec.world, step_key, setup.helpful.batch_size, random_answer)

        def evaluate(q):
            found = probe_answers(setup.net, q, hazard, n_classes)
            found["displacement"] = found.pop("activations") - setup.aligned
            return found

        stream = jax.random.fold_in(jax.random.fold_in(key, UNREFUSE_TAG), index)
        return witness_phase(setup, sample, stream, evaluate)

    records = jax.vmap(train)(jnp.arange(len(modes)), jnp.asarray(modes, dtype=bool))
    found = matched_directions(records["displacement"][:, 1:], setup)
    rows = jnp.arange(len(modes))
    for name in ("harmfulness", "refusal"):
        found[f"{name}_theta_s"] = records[name][0, 0]
        found[name] = records[name][rows, found["chosen"] + 1]
        found[f"{name}_full"] = records[name][:, -1]
    found.pop("chosen")
    return found


def complement_projector(directions_KxM, tolerance: float = 1e-4):
    """x -> x minus its projection onto the span of the rows of `directions_KxM` (an
    orthonormal basis by Gram-Schmidt, twice over for float32; a row within `tolerance` of the
    span of the earlier ones, relative to its norm, adds nothing)."""
    basis = []
    for row in directions_KxM:
        rest = row
        for _ in range(2):
            for q in basis:
                rest = rest - (rest @ q) * q
        norm = jnp.linalg.norm(rest)
        new = norm > tolerance * jnp.linalg.norm(row)
        basis.append(jnp.where(new, rest / jnp.where(new, norm, 1.0), 0.0))
    q = jnp.stack(basis, axis=1)  # (M, K)

    def project(x):
        return x - (x @ q) @ q.T

    return project


def unrefuse_alignment(drift_TxM, v_rev_M, witnesses: dict) -> dict:
    """The benign drift (unit rows at the kept steps) against the un-refuse directions: cos with
    each, v_rev's cos with each, and the drift's cosine with v_rev *beyond* them, both projected
    onto the complement of the directions' span (matched and full-length; and each direction
    alone), with how much of v_rev that complement keeps."""
    matched, full = unit_rows(witnesses["matched"]), unit_rows(witnesses["full"])

    def beyond(directions):
        project = complement_projector(directions)
        return unit_rows(project(drift_TxM)) @ geometry.unit(project(v_rev_M))

    alone = jax.vmap(lambda u: beyond(u[None]), out_axes=-1)(matched)
    out = {
        "alignment": drift_TxM @ matched.T,
        "alignment_full": drift_TxM @ full.T,
        "cos_v_rev": matched @ v_rev_M,
        "beyond": beyond(matched),
        "beyond_full": beyond(full),
        "beyond_each": alone,
        "v_rev_kept": jnp.linalg.norm(complement_projector(matched)(v_rev_M)),
    }
    kept = ("distance", "distance_full", "step", "harmfulness", "refusal")
    out.update({name: witnesses[name] for name in witnesses if name.startswith(kept)})
    return out


@dataclasses.dataclass(frozen=True)
class WithControlWitnesses:
    """The tree's measurement: everything `run_history` returns (no parameters), plus the benign
    drift's cosines with the control witnesses' directions at the kept drift steps, and against
    the un-refuse witnesses' (`unrefuse`: a random_answer flag per witness, in `UNREFUSE_MODES`
    order; empty: none)."""

    learning_rate: float
    targets: tuple[float, ...] = CONTROL_TARGETS
    shifts: tuple[int, ...] = CONTROL_SHIFTS
    checkpoints: int = CONTROL_CHECKPOINTS
    unrefuse: tuple[bool, ...] = ()

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
        if self.unrefuse:
            found = unrefuse_witnesses(
                key, spec, start.state, self.learning_rate, self.unrefuse, self.checkpoints
            )
            out["unrefuse_witness"] = unrefuse_alignment(drift, v_rev[0], found)
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


UNREFUSE = "unrefuse_witness"


def _seed_means(cell, name: str, column: int | None = None) -> np.ndarray:
    """An un-refuse cosine of a tree cell's drift (one column per kept step; `column`: one
    direction's), each seed's mean over the kept steps; diverged runs NaN, so the seeds stay
    aligned across the arms of one tree (they share theta_S, hence the directions)."""
    values = cell.valid(f"{UNREFUSE}/{name}")
    return np.mean(values if column is None else values[..., column], axis=1)


def _seed_lists(treated, control, name: str, column: int | None = None) -> dict:
    """`_seed_means` of the treated arm against the same-basis control on the same seeds: both
    per-seed lists, their summaries and the paired difference."""
    mine, theirs = (_seed_means(cell, name, column) for cell in (treated, control))
    return {
        "per_seed": mine.tolist(),
        "control_per_seed": theirs.tolist(),
        "mean": mean_sd(mine),
        "control": mean_sd(theirs),
        "minus_control": paired_difference(mine, theirs),
    }


def _answers(cell, modes) -> dict:
    """Harmfulness and refusal on the hazardous probes at theta_S and, per un-refuse mode, at
    the matched checkpoint (with `other`, the rest of the mass) and at full length."""
    at = {name: cell.valid(f"{UNREFUSE}/{name}") for name in ("harmfulness", "refusal")}
    found = {"theta_s": {n: mean_sd(cell.valid(f"{UNREFUSE}/{n}_theta_s")) for n in at}}
    for k, mode in enumerate(modes):
        found[mode] = {
            "harmfulness": mean_sd(at["harmfulness"][:, k]),
            "refusal": mean_sd(at["refusal"][:, k]),
            "other": mean_sd(1.0 - at["harmfulness"][:, k] - at["refusal"][:, k]),
            **{
                f"{n}_full": mean_sd(cell.valid(f"{UNREFUSE}/{n}_full")[:, k])
                for n in ("harmfulness", "refusal")
            },
        }
    return found


def _by_mode(treated, control, v_rev_S, modes) -> dict:
    """Per un-refuse direction: cos(drift, u) per seed, cos(drift, v_rev) minus it seed by seed,
    cos(v_rev, u), the drift's cosine with v_rev beyond that direction alone against the
    control's, and how far the witness went (distance over the witness's, matched step)."""
    witness = treated.valid("control_witness/witness_distance")
    found = {}
    for k, mode in enumerate(modes):
        toward = _seed_means(treated, "alignment", k)
        found[mode] = {
            "alignment_per_seed": toward.tolist(),
            "v_rev_minus_unrefuse": paired_difference(v_rev_S, toward),
            "cos_v_rev_unrefuse": mean_sd(treated.valid(f"{UNREFUSE}/cos_v_rev")[:, k]),
            "beyond_alone": _seed_lists(treated, control, "beyond_each", k),
            "distance_ratio": mean_sd(treated.valid(f"{UNREFUSE}/distance")[:, k] / witness),
            "matched_at_step": mean_sd(treated.valid(f"{UNREFUSE}/step")[:, k]),
        }
    return found


def unrefuse_summary(treated, control, kept_steps, modes=UNREFUSE_MODES, alignment=None) -> dict:
    """The benign drift against the un-refuse witnesses (tree cells measured by
    `WithControlWitnesses` with `unrefuse`; `control`: the same-basis control fine-tuning from
    the same theta_S). `beyond` is the statistic the claim reads: each seed's cosine of the
    drift with v_rev beyond the un-refuse directions (both projected off their span), mean over
    the kept drift steps, treated against control on the same seeds. Beside it: its same-basis
    null (the p99 of the control's run-steps), the full-length directions' version, per mode
    the comparisons of `_by_mode`, how much of v_rev the projection keeps, and what the
    witnesses do (`_answers`)."""
    alignment = alignment or "metrics/benign/alignment"
    v_rev = np.mean(treated.valid(alignment, step=kept_steps), axis=1)
    beyond_t, beyond_c = (cell.valid(f"{UNREFUSE}/beyond") for cell in (treated, control))
    null = quantile_null(beyond_c)
    return {
        "steps": [int(t) for t in kept_steps],
        "beyond": _seed_lists(treated, control, "beyond"),
        "beyond_full": _seed_lists(treated, control, "beyond_full"),
        "null_p99_same_basis_beyond": null,
        "fraction_above_same_basis_beyond_null": fraction_above(beyond_t, null),
        "beyond_by_step": [
            {"step": int(t), "benign": mean_sd(beyond_t[:, s]), "control": mean_sd(beyond_c[:, s])}
            for s, t in enumerate(kept_steps)
        ],
        "alignment_v_rev_per_seed": v_rev.tolist(),
        "v_rev_kept": mean_sd(treated.valid(f"{UNREFUSE}/v_rev_kept")),
        "by_mode": _by_mode(treated, control, v_rev, modes),
        "answers": _answers(treated, modes),
    }
