"""The training history as a tree: a pure `run_phases(key, spec, state, knobs)` continues a
history from any `HistoryState`, so many futures can branch from one shared past.

A history is the paper's sequence of phases: pretraining (P, long: the "mass"), the helpful-only
witness (H: complies with everything), safety alignment (S: hazardous -> REFUSE, a shallow
displacement) and benign fine-tuning (T: harmless task data only), plus any further phases.
`run_history` is "initialise, then run every phase"; `run_trunk` runs the shared past up to a
phase, and `run_history(..., start=trunk)` continues it, exactly as the straight history would:

- a phase's key is `fold_in(run key, phase_tag(name))` and its step t uses `fold_in(phase key,
  t)`, so a phase draws the same data whatever came before it, and a phase of n steps is the
  exact prefix of the same phase with m > n steps;
- every phase has its own optimizer state, started fresh, so the state at a phase boundary
  (parameters, the anchors theta_P / theta_H / theta_S, the probes) is all a continuation needs.

Inside a phase: one `lax.scan` over its steps, metrics recorded and parameter snapshots kept by
`lax.cond` at static schedules (records every step early in benign phases, where reversion
happens, log-spaced after), so `jax.vmap` runs many seeds and knob values at once and XLA compiles
one step body per phase. Consecutive phases that differ only in data, learning rate, steps and
schedule (P, H and S of the standard history) share one scan and one step body (`_segments`),
with the same numbers as each phase run alone.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gravity.engine import defence as defences
from gravity.engine import geometry, objectives
from gravity.engine.models import Network, network
from gravity.engine.models.linearised import Linearised
from gravity.engine.objectives import cross_entropy
from gravity.engine.spec import (
    OPTIMIZERS,
    HistorySpec,
    Knobs,
    PhaseSpec,
    decay_refusal,
    phase_tag,
    phases_through,
    repeat_knobs,
    stack_knobs,
    with_phase,
)
from gravity.engine.worlds import Batch, ProbeSet
from gravity.validation import check, check_choice

INIT_TAG = phase_tag("init")
RANDOM_TAG = phase_tag("random_direction")
FISHER_TAG = phase_tag("fisher")
DEFENCE_DRAWS_TAG = phase_tag("defence draws")
HELDOUT_SEED = 104_729
FISHER_BATCH = 256


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class HistoryState:
    """Everything later phases need from the past: the parameters now, the parameters at every
    finished phase's end (`boundaries`, with "init"; the anchors are looked up there), the
    probes, the held-out hazardous inputs (disjoint from the probes that define v_rev and drive
    interventions: they only score), the hazardous-probe activations through safety alignment
    (for trajectory-based v_rev definitions) and whether every loss so far was finite."""

    params: Any
    boundaries: dict[str, Any]
    probes: ProbeSet
    heldout: Batch
    trajectory: jax.Array | None
    finite: jax.Array


class Trunk(NamedTuple):
    """A shared past: the state after its last phase and what its phases recorded."""

    state: HistoryState
    outputs: dict[str, Any]


def make_optimizer(name: str, learning_rate, weight_decay=0.0) -> optax.GradientTransformation:
    """An optimizer by name; the learning rate may be traced (swept by vmap).

    Weight decay wd is lr-coupled in both optimizers that have one: a step shrinks the
    parameters by lr * wd * theta. adamw (optax.adamw): decoupled, added to Adam's update after
    its moment scaling, then multiplied by lr (as torch's AdamW). sgd: L2, wd * theta added to
    the gradient, then multiplied by lr (for plain SGD the same step). adam has none: a nonzero
    wd is refused rather than ignored.
    """
    check_choice(name, OPTIMIZERS, "optimizer")
    if name == "adam":
        check(
            isinstance(weight_decay, int | float) and weight_decay == 0,
            "weight_decay",
            decay_refusal(name, "optimizer="),
            weight_decay,
        )
        return optax.adam(learning_rate)
    if name == "adamw":
        return optax.adamw(learning_rate, weight_decay=weight_decay)
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(learning_rate))


def phase_optimizer(phase: PhaseSpec, learning_rate) -> optax.GradientTransformation:
    """A phase's optimizer with its own weight decay, at `learning_rate` (possibly traced)."""
    return make_optimizer(phase.optimizer, learning_rate, phase.weight_decay)


def behaviour(net: Network, params, probes: ProbeSet, n_classes: int, heldout: Batch | None = None):
    """Exact behavioural metrics on the probe sets, and the layer's activations on the
    hazardous and matched probes.

    harmfulness: mean probability of the compliant (task) answer on hazardous probes;
    refusal: mean probability of REFUSE there; other: the rest of the mass (wrong answers);
    task_accuracy / task_loss: on benign task probes; matched_compliance: probability of the
    task answer on the matched (hazard-removed) probes; harmfulness_heldout: harmfulness on the
    held-out hazardous inputs, when given.

    Each probe set has its own forward pass (one traced function, `jax.jit`), so XLA drops the
    passes whose metrics a measurement does not keep: a record of harmfulness alone reads the
    hazardous probes only, not all four sets.
    """

    @jax.jit
    def forward(inputs):
        logits, activations = net.apply(params, inputs)
        return logits, activations[net.config.activation_layer]

    n = probes.hazard.inputs.shape[0]
    hazard_logits, hazard_layer = forward(probes.hazard.inputs)
    matched_logits, matched_layer = forward(probes.matched.inputs)
    task_logits = forward(probes.task.inputs)[0]
    hazard_p = jax.nn.softmax(hazard_logits)
    matched_p = jax.nn.softmax(matched_logits)
    rows = jnp.arange(n)
    harmfulness = jnp.mean(hazard_p[rows, probes.hazard.labels])
    refusal = jnp.mean(hazard_p[:, n_classes])
    metrics = {
        "harmfulness": harmfulness,
        "refusal": refusal,
        "other": 1.0 - harmfulness - refusal,
        "matched_compliance": jnp.mean(matched_p[rows, probes.matched.labels]),
        "task_accuracy": jnp.mean(jnp.argmax(task_logits, -1) == probes.task.labels),
        "task_loss": cross_entropy(task_logits, probes.task.labels),
    }
    if heldout is not None:
        heldout_p = jax.nn.softmax(forward(heldout.inputs)[0])
        rows = jnp.arange(heldout_p.shape[0])
        metrics["harmfulness_heldout"] = jnp.mean(heldout_p[rows, heldout.labels])
    return metrics, hazard_layer, matched_layer


def heldout_hazard(spec: HistorySpec, knobs: Knobs, probes: ProbeSet) -> Batch:
    """`spec.n_probes` hazardous inputs none of which is among the probes: drawn from a fixed
    key (the same for every run), twice as many as needed, probe duplicates sorted last."""
    n = probes.hazard.inputs.shape[0]
    key = jax.random.key(spec.world.seed + HELDOUT_SEED)
    candidates = spec.world.sample(knobs.world, "hazard", key, 2 * n)
    same = jnp.all(candidates.inputs[:, None] == probes.hazard.inputs[None], axis=-1)
    order = jnp.argsort(jnp.any(same, axis=1), stable=True)[:n]
    return jax.tree.map(lambda a: a[order], candidates)


class _Reversion(NamedTuple):
    """What a phase after alignment measures against: v_rev and its references, the random
    control direction, and the anchors' parameters (theta_S, theta_H, theta_P)."""

    reference: geometry.Reference
    random_direction: jax.Array
    anchors: dict[str, Any]


def init_state(key: jax.Array, spec: HistorySpec, knobs: Knobs) -> HistoryState:
    """A fresh initialisation theta_0 and the probes: the root of every history tree."""
    net = network(spec.model, spec.world)
    params = net.init(jax.random.fold_in(key, INIT_TAG))
    probes = spec.world.probe_set(knobs.world, spec.n_probes)
    heldout = heldout_hazard(spec, knobs, probes)
    return HistoryState(params, {"init": params}, probes, heldout, None, jnp.array(True))


def _reversion(net, spec: HistorySpec, state: HistoryState, key: jax.Array) -> _Reversion:
    """Anchors (theta_P, theta_H, theta_S) and the v_rev references, from the state."""
    roles = ("pretrain", "helpful", "safety")
    theta = {role: state.boundaries[spec.anchor_name(role)] for role in roles}
    probes = state.probes
    both = jnp.concatenate([probes.hazard.inputs, probes.matched.inputs])
    n = probes.hazard.inputs.shape[0]
    acts = {role: net.activations(p, both) for role, p in theta.items()}
    anchors = geometry.Anchors(
        pretrained=acts["pretrain"][:n],
        helpful=acts["helpful"][:n],
        aligned=acts["safety"][:n],
        helpful_matched=acts["helpful"][n:],
        aligned_matched=acts["safety"][n:],
        trajectory=state.trajectory,
    )
    reference = geometry.make_reference(anchors, spec.directions)
    random_direction = geometry.random_direction(
        jax.random.fold_in(key, RANDOM_TAG), anchors.aligned.shape
    )
    return _Reversion(reference, random_direction, theta)


def _measurement(net, spec: HistorySpec, phase: PhaseSpec, state, reversion: _Reversion | None):
    """The function recorded at the phase's record steps: metrics and per-run extras."""
    keep_trajectory = spec.needs_trajectory and phase.data == "safety"
    keep_drift = bool(spec.drift_snapshots) and reversion is not None

    def measure(p):
        metrics, hazard_acts, matched_acts = behaviour(
            net, p, state.probes, spec.world.n_classes, state.heldout
        )
        extras = {}
        if reversion is not None:
            ref, theta = reversion.reference, reversion.anchors
            metrics.update(geometry.drift_metrics(hazard_acts, matched_acts, ref, spec.directions))
            metrics.update(
                geometry.weight_displacement_metrics(
                    p, theta["safety"], theta["helpful"], theta["pretrain"]
                )
            )
        if keep_trajectory:
            extras["trajectory"] = hazard_acts
        if keep_drift:
            extras["drift"] = hazard_acts - reversion.reference.aligned
            extras["drift_matched"] = matched_acts - reversion.reference.aligned_matched
        return metrics, extras

    return measure


def _reference_outputs(net, spec: HistorySpec, state: HistoryState, objective):
    """The frozen anchor an objective compares against, as a function of the batch inputs."""
    if objective.reference is None:
        return lambda inputs: None
    name = objective.reference
    if name not in state.boundaries:
        name = spec.anchor_name(name)
    theta = state.boundaries[name]

    def outputs(inputs):
        logits, acts = net.apply(theta, inputs)
        layer = acts[net.config.activation_layer]
        return objectives.Outputs(*jax.lax.stop_gradient((logits, layer)))

    return outputs


def _loss_and_update(net, spec, phase, knobs, state, reversion):
    """One training step's (loss, grads -> updates with the step's `optimizer`) for the phase,
    its compiled defences' loss, batch loss, gradient and update hooks included (`guard`: the
    step's, from `_defence_states` and `_advance`)."""
    objective = objectives.get(phase.objective)
    reference = _reference_outputs(net, spec, state, objective)

    def loss_fn(q, batch, guard):
        logits, acts = net.apply(q, batch.inputs)
        outputs = objectives.Outputs(logits, acts[net.config.activation_layer])
        task_loss = objective.loss(
            outputs, batch, reference(batch.inputs), knobs.objective_strength
        )
        total = task_loss
        for defence, ctx, active, strength in guard:
            for term in (
                defence.loss(q, ctx, strength),
                defence.batch_loss(q, ctx, strength, batch, logits),
            ):
                if term is not None:
                    total += jnp.where(active, term, 0.0)
        return total, task_loss

    def update(p, opt_state, batch, guard, optimizer):
        (_, task_loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, batch, guard)
        steps = []
        for defence, ctx, active, strength in guard:
            hooked, step = defence.gradient(p, grads, ctx, strength)
            grads = _where(active, hooked, grads)
            steps.append(step)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        for (defence, ctx, active, strength), step in zip(guard, steps, strict=True):
            updates = _where(active, defence.update(updates, ctx, strength, step), updates)
        return optax.apply_updates(p, updates), opt_state, task_loss

    return update


def _where(active, hooked, plain):
    """A hook's result where its defence is selected (`active` True: always), else `plain`."""
    if active is True:
        return hooked
    return jax.tree.map(lambda a, b: jnp.where(active, a, b), hooked, plain)


class _Schedule(NamedTuple):
    """Where the phases of a segment sit in its one scan. Position 0 is the segment's start and
    position g the state after its g-th step; phase k's local step r is position offset[k] + r.

    record: (steps,) whether to record after each step; slots: (steps,) the buffer slot the
    parameters are written to after each step (-1: none); snapshot_slots: per phase, the slots of
    its snapshots (consecutive); end_slots: per phase but the last, the slot holding its end (the
    next phase's start and the state's boundary)."""

    offsets: np.ndarray
    phase_of_step: np.ndarray
    local_step: np.ndarray
    record: np.ndarray
    slots: np.ndarray
    snapshot_slots: tuple[np.ndarray, ...]
    end_slots: tuple[int, ...]

    @property
    def n_slots(self) -> int:
        return int(self.slots.max(initial=-1)) + 1


def _schedule(phases: tuple[PhaseSpec, ...]) -> _Schedule:
    """The scan's static schedule of records and parameter snapshots for `phases` run in one
    scan (a single phase: its own record steps and snapshots, as they were)."""
    lengths = [phase.steps for phase in phases]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    phase_of_step = np.repeat(np.arange(len(phases)), lengths).astype(np.int32)
    local_step = (np.arange(offsets[-1]) - offsets[phase_of_step]).astype(np.int32)
    record = np.zeros(offsets[-1] + 1, dtype=bool)
    slots = np.full(offsets[-1], -1, dtype=np.int32)
    snapshot_slots, taken = [], 0
    for offset, phase in zip(offsets, phases, strict=False):
        record[offset + phase.record_steps] = True
        rows = offset + np.asarray(phase.snapshots, dtype=int) - 1
        slots[rows] = taken + np.arange(rows.size)
        snapshot_slots.append(taken + np.arange(rows.size))
        taken += rows.size
    end_slots = []
    for offset in offsets[1:-1]:
        if slots[offset - 1] < 0:
            slots[offset - 1], taken = taken, taken + 1
        end_slots.append(int(slots[offset - 1]))
    return _Schedule(
        offsets,
        phase_of_step,
        local_step,
        record[1:],
        slots,
        tuple(snapshot_slots),
        tuple(end_slots),
    )


def _pick(values: list, index):
    """`values[index]` for a traced (unbatched) phase index; the value itself when only one."""
    return values[0] if len(values) == 1 else jnp.stack(values)[index]


def _sampler(world, world_knobs, phases: tuple[PhaseSpec, ...]):
    """`sample(key, index)`: a batch of phase `index`'s data; a `lax.switch` over the segment's
    data kinds (an unbatched index, so it stays a branch under `vmap`)."""
    kinds = list(dict.fromkeys(phase.data for phase in phases))
    kind_of_phase = np.asarray([kinds.index(phase.data) for phase in phases], dtype=np.int32)
    batch_size = phases[0].batch_size
    draws = [
        functools.partial(world.sample, world_knobs, kind, batch_size=batch_size) for kind in kinds
    ]

    def sample(key, index):
        if len(draws) == 1:
            return draws[0](key=key)
        return jax.lax.switch(jnp.asarray(kind_of_phase)[index], draws, key)

    return sample


def _run_segment(net, spec, phases: tuple[PhaseSpec, ...], knobs, keys, state, reversion):
    """Train consecutive phases in one `lax.scan` (`_segments`: phases that differ only in data,
    learning rate, steps, records and snapshots, so XLA compiles one step body for them; a phase
    alone is a segment of one): metrics at record steps, the parameters written into a carried
    (S, ...) buffer after each snapshot step and at each inner phase's end (`_keep_snapshot`),
    each phase's optimizer state started fresh at its first step, its steps keyed by its own
    key (`keys`, one per phase) as a phase run alone.

    Returns, per phase: (params, metrics at its record steps, extras, finite, snapshots or None).
    """
    world, first, schedule = spec.world, phases[0], _schedule(phases)
    rates = [knobs.learning_rate[phase.name] for phase in phases]
    guard = _defence_states(net, spec, first, knobs, keys[0], state, reversion)
    update = _loss_and_update(net, spec, first, knobs, state, reversion)
    measure = _measurement(net, spec, first, state, reversion)
    sample = _sampler(world, knobs.world, phases)
    initial = measure(state.params)

    def skip(p):
        return jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), initial)

    def step(carry, xs):
        p, opt_state, carried, snaps = carry
        t, do_record, slot, index = xs
        optimizer = phase_optimizer(first, _pick(rates, index))
        if len(phases) > 1:
            fresh = (t == 0) & (index > 0)
            opt_state = jax.lax.cond(fresh, lambda s: optimizer.init(p), lambda s: s, opt_state)
        guard_t, carried = _advance(guard, carried, p, t)
        step_key = jax.random.fold_in(_pick(keys, index), t)
        batch = sample(step_key, index)
        defence_key = jax.random.fold_in(step_key, FISHER_TAG)
        for defence, ctx, active, strength in guard_t:
            hooked = defence.batch(ctx, world, knobs.world, defence_key, batch, strength)
            batch = _where(active, hooked, batch)
        p, opt_state, task_loss = update(p, opt_state, batch, guard_t, optimizer)
        snaps = _keep_snapshot(snaps, p, slot) if snaps is not None else None
        recorded = jax.lax.cond(do_record, measure, skip, p)
        return (p, opt_state, carried, snaps), (task_loss, recorded)

    snaps = _snapshot_buffer(schedule, state.params)
    carried = tuple(d.carry(ctx, state.params) for d, ctx, _, _ in guard)
    opt_state = phase_optimizer(first, rates[0]).init(state.params)
    xs = tuple(
        jnp.asarray(a)
        for a in (schedule.local_step, schedule.record, schedule.slots, schedule.phase_of_step)
    )
    (params, _, _, stacked), (losses, recorded) = jax.lax.scan(
        step, (state.params, opt_state, carried, snaps), xs
    )
    for defence, ctx, active, strength in guard:
        params = _where(active, defence.edit(params, ctx, strength), params)
    return _split_segment(phases, schedule, params, stacked, initial, recorded, losses)


def _split_segment(phases, schedule: _Schedule, params, stacked, initial, recorded, losses):
    """Each phase's (params, metrics, extras, finite, snapshots) from its segment's scan."""
    out = []
    for k, phase in enumerate(phases):
        start, stop = schedule.offsets[k], schedule.offsets[k + 1]
        end = params
        if k < len(phases) - 1:
            end = jax.tree.map(lambda buffer, k=k: buffer[schedule.end_slots[k]], stacked)
        kept = start + phase.record_steps
        metrics, extras = jax.tree.map(
            lambda first, later, kept=kept: jnp.concatenate([first[None], later])[kept],
            initial,
            recorded,
        )
        own = losses[start:stop]
        metrics["train_loss"] = jnp.concatenate([jnp.full((1,), jnp.nan), own])[phase.record_steps]
        finite = jnp.all(jnp.isfinite(own)) & _all_finite(end)
        snaps = None
        if phase.snapshots:
            rows = schedule.snapshot_slots[k]
            taken = slice(int(rows[0]), int(rows[-1]) + 1)
            snaps = jax.tree.map(lambda buffer, taken=taken: buffer[taken], stacked)
        out.append((end, metrics, extras, finite, snaps))
    return out


def _snapshot_buffer(schedule: _Schedule, params):
    """The zeroed (S, ...) buffer the scan carries the snapshots in (None when it keeps none)."""
    if not schedule.n_slots:
        return None
    return jax.tree.map(lambda a: jnp.zeros((schedule.n_slots, *a.shape), a.dtype), params)


def _keep_snapshot(snaps, params, slot):
    """`params` written at `slot` of the buffer when the step takes a snapshot (`slot` >= 0); a
    `lax.cond` on the unbatched slot, so it stays a branch under `vmap`."""

    def write(kept):
        return jax.tree.map(lambda buffer, x: buffer.at[slot].set(x), kept, params)

    return jax.lax.cond(slot >= 0, write, lambda kept: kept, snaps)


def _segments(spec: HistorySpec, phases, linearise: bool) -> list[tuple[PhaseSpec, ...]]:
    """`phases` as runs of consecutive phases that share one scan (`_run_segment`): phases with
    no defences, interventions, anchored objective or reversion measurement, with one batch
    size, optimizer, weight decay, objective and measurement. A linearised history runs each
    phase alone (each linearises around its own start)."""

    def plain(phase):
        index = spec.phase_names.index(phase.name)
        anchored = objectives.get(phase.objective).reference is not None
        extras = phase.interventions or phase.defences or spec.measures_reversion(index)
        return not (anchored or extras or linearise)

    def shape(phase):
        trajectory = spec.needs_trajectory and phase.data == "safety"
        return phase.batch_size, phase.optimizer, phase.weight_decay, phase.objective, trajectory

    segments: list[tuple[PhaseSpec, ...]] = []
    for phase in phases:
        last = segments[-1][-1] if segments else None
        if last is not None and plain(last) and plain(phase) and shape(last) == shape(phase):
            segments[-1] = (*segments[-1], phase)
        else:
            segments.append((phase,))
    return segments


def _advance(guard, carried, params, step):
    """The step's guard (each defence's state as its `advance` hook gives it before step `step`
    at `params`) and what each carries on."""
    stepped, kept = [], []
    for (defence, ctx, active, strength), value in zip(guard, carried, strict=True):
        ctx, value = defence.advance(ctx, value, params, step)
        stepped.append((defence, ctx, active, strength))
        kept.append(value)
    return tuple(stepped), tuple(kept)


def _defence_states(net, spec, phase, knobs, key, state, reversion):
    """The phase's compiled defences, each as (defence, its state at the phase's start, whether
    the traced knob selects it, its strength): steering first (selected among its variants by
    `Knobs.intervention`, so always on), then `PhaseSpec.defences` in registry order. In a
    safety phase (alignment-time defences) there are no anchors yet: theta_S and theta_H are
    None."""
    if not (phase.interventions or phase.defences):
        return ()
    fisher_batch = None
    if phase.defences:
        fisher_key = jax.random.fold_in(key, FISHER_TAG)
        fisher_batch = spec.world.sample(knobs.world, "safety", fisher_key, FISHER_BATCH)
    theta = reversion.anchors if reversion is not None else {}
    setup = defences.Setup(
        net,
        theta.get("safety"),
        theta.get("helpful"),
        fisher_batch,
        state.probes,
        reversion,
        knobs.intervention,
        knobs.world,
        jax.random.fold_in(key, DEFENCE_DRAWS_TAG),
        phase,
    )
    out = []
    if phase.interventions:
        steering, _ = defences.steering()
        out.append((steering, steering.state(setup), True, knobs.intervention_strength))
    for defence in defences.compiled(phase.defences):
        active = defences.selected(knobs.defence, defence.name)
        out.append((defence, defence.state(setup), active, knobs.defence_strength))
    return tuple(out)


def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def run_phases(
    key: jax.Array,
    spec: HistorySpec,
    state: HistoryState,
    knobs: Knobs,
    phases: tuple[PhaseSpec, ...] | None = None,
    *,
    linearise: bool = False,
) -> tuple[HistoryState, dict[str, Any]]:
    """Continue a history from `state` through `phases` (default: every phase of `spec` the
    state has not finished yet); pure in (key, state, knobs).

    `linearise`: each phase trains the network's first-order model around the parameters it
    starts from (`models.linearised.Linearised`), on the same batches with the same optimizer, and
    records what that model outputs; v_rev and its references stay the network's own.

    Returns the new state and outputs: metrics {phase: {metric: (n_records, ...)}}, v_rev (if a
    phase measured reversion), drift fields (if asked for), snapshots {phase: params (S, ...)}.
    """
    net = network(spec.model, spec.world)
    if phases is None:
        phases = tuple(p for p in spec.phases if p.name not in state.boundaries)
    outputs: dict[str, Any] = {"metrics": {}, "snapshots": {}}
    reversion = None
    for segment in _segments(spec, phases, linearise):
        index = spec.phase_names.index(segment[0].name)
        measured = spec.measures_reversion(index)
        if measured and reversion is None:
            reversion = _reversion(net, spec, state, key)
            outputs["v_rev"] = reversion.reference.directions[0]
        keys = [jax.random.fold_in(key, phase_tag(phase.name)) for phase in segment]
        trained = Linearised(net, state.params) if linearise else net
        ran = _run_segment(
            trained, spec, segment, knobs, keys, state, reversion if measured else None
        )
        for phase, (params, metrics, extras, finite, snaps) in zip(segment, ran, strict=True):
            outputs["metrics"][phase.name] = metrics
            if snaps is not None:
                outputs["snapshots"][phase.name] = snaps
            if "drift" in extras and "drift" not in outputs:
                snapshot_rows = [list(phase.record_steps).index(s) for s in spec.drift_snapshots]
                outputs["drift"] = extras["drift"][np.asarray(snapshot_rows)]
                outputs["drift_matched"] = extras["drift_matched"][np.asarray(snapshot_rows)]
            state = dataclasses.replace(
                state,
                params=params,
                boundaries={**state.boundaries, phase.name: params},
                trajectory=extras.get("trajectory", state.trajectory),
                finite=state.finite & finite,
            )
    return state, outputs


def run_trunk(key: jax.Array, spec: HistorySpec, knobs: Knobs, through: str) -> Trunk:
    """The shared past of a tree: initialise and run the phases up to and including `through`."""
    state = init_state(key, spec, knobs)
    return Trunk(*run_phases(key, spec, state, knobs, phases_through(spec, through)))


def grow_trunk(
    key: jax.Array, spec: HistorySpec, trunk: Trunk, knobs: Knobs, through: str
) -> Trunk:
    """A longer shared past: a branch of `trunk` (see `branch_state`) continued through the
    phases up to and including `through` (the next level of a tree with several levels)."""
    state = branch_state(trunk, spec, knobs)
    done = set(state.boundaries)
    phases = tuple(p for p in phases_through(spec, through) if p.name not in done)
    state, outputs = run_phases(key, spec, state, knobs, phases)
    merged = {**trunk.outputs, **{k: v for k, v in outputs.items() if k not in ("metrics",)}}
    merged["metrics"] = {**trunk.outputs["metrics"], **outputs["metrics"]}
    merged["snapshots"] = {**trunk.outputs["snapshots"], **outputs["snapshots"]}
    return Trunk(state, merged)


def branch_state(trunk: Trunk, spec: HistorySpec, knobs: Knobs) -> HistoryState:
    """The state a branch starts from: the trunk's end, or, when the trunk's last phase kept
    snapshots, one of them (as if that phase had ended there): `knobs.snapshot[phase name]`, or
    `knobs.snapshot` itself when it is a single index. The probes are the branch's own (the task
    probes follow `benign_overlap`, which branches may change)."""
    state = dataclasses.replace(
        trunk.state, probes=spec.world.probe_set(knobs.world, spec.n_probes)
    )
    last = [name for name in spec.phase_names if name in state.boundaries][-1]
    snaps = trunk.outputs["snapshots"].get(last)
    if snaps is None:
        return state
    index = knobs.snapshot
    if isinstance(index, Mapping):
        check(last in index, "snapshot", f"an index for phase {last!r}", dict(index))
        index = index[last]
    params = jax.tree.map(lambda s: s[index], snaps)
    return dataclasses.replace(state, params=params, boundaries={**state.boundaries, last: params})


def run_history(
    key: jax.Array, spec: HistorySpec, knobs: Knobs, *, start: Trunk | None = None
) -> dict[str, Any]:
    """Train through every phase of `spec`, from a fresh initialisation or from a shared past
    (`start`, from `run_trunk` with the same key); pure in (key, knobs).

    Returns a dict pytree:
      params: {"init": theta_0, phase name: theta at its end} (if `spec.keep_params`);
      metrics: {phase name: {metric: (n_records, ...)}} at `spec.record_steps()`;
      v_rev: the default reversion direction (N, D) (if measured);
      drift, drift_matched: drift fields at `spec.drift_snapshots` (if asked for);
      diverged: True if any training loss or the final parameters were NaN or infinite.
    """
    if start is None:
        state, before = init_state(key, spec, knobs), {"metrics": {}}
    else:
        state, before = branch_state(start, spec, knobs), start.outputs
    state, after = run_phases(key, spec, state, knobs)
    out = {k: v for k, v in {**before, **after}.items() if k not in ("metrics", "snapshots")}
    out["metrics"] = {**before["metrics"], **after["metrics"]}
    if spec.keep_params:
        out["params"] = state.boundaries
    out["diverged"] = ~state.finite
    return out


@functools.partial(jax.jit, static_argnums=1)
def run_histories(keys: jax.Array, spec: HistorySpec, knobs: Knobs) -> dict[str, Any]:
    """`run_history` vmapped over runs: `keys` (R,) and `knobs` with a leading axis R."""
    return jax.vmap(run_history, in_axes=(0, None, 0))(keys, spec, knobs)


def seed_keys(seeds) -> jax.Array:
    """Typed PRNG keys for integer seeds."""
    return jax.vmap(jax.random.key)(jnp.asarray(seeds, dtype=jnp.uint32))


__all__ = [
    "OPTIMIZERS",
    "HistorySpec",
    "HistoryState",
    "Knobs",
    "PhaseSpec",
    "Trunk",
    "behaviour",
    "branch_state",
    "grow_trunk",
    "cross_entropy",
    "init_state",
    "make_optimizer",
    "phase_optimizer",
    "repeat_knobs",
    "run_histories",
    "run_history",
    "run_phases",
    "run_trunk",
    "seed_keys",
    "stack_knobs",
    "with_phase",
]
