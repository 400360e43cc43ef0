"""The training history: phases, and the pure, vmappable `run_history(key, spec, knobs)`.

A history is the paper's sequence of phases: pretraining (P, long: the "mass"), the helpful-only
witness (H: complies with everything), safety alignment (S: hazardous -> REFUSE, a shallow
displacement) and benign fine-tuning (T: harmless task data only), plus any further phases
(unlearning, relearning ...). Each phase has its own optimizer, learning rate, batch size and step
count. A whole history is one `jit`: a `lax.scan` per phase, metrics recorded inside the scan on a
static schedule (every step early in benign phases, where reversion happens, log-spaced after),
so `jax.vmap` runs many seeds and knob values at once.

What is static (changes shapes or programs) lives in `HistorySpec`; what can be swept by `vmap`
(learning rates, weight decay, intervention strength, the world's probabilities) lives in `Knobs`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gravity import geometry, interventions
from gravity.models import ModelConfig, Network, network
from gravity.worlds import World, WorldKnobs
from gravity.validation import check
from gravity.worlds.base import check_data_kind

OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclasses.dataclass(frozen=True)
class PhaseSpec:
    """One phase of a history.

    name: unique within the history ("pretrain", "helpful", "safety", "benign" ...).
    data: the data kind it trains on (see `gravity.worlds.DATA_KINDS`).
    dense_steps: record every step for this many first steps (then `n_records` log-spaced).
    intervention: for benign phases after alignment, one of `interventions.INTERVENTIONS`, or
        "selected" to pick it per run with `Knobs.intervention` (one program for all variants).
    """

    name: str
    data: str
    steps: int
    batch_size: int
    optimizer: str = "adam"
    dense_steps: int = 0
    n_records: int = 8
    intervention: str = "none"

    def __post_init__(self):
        check_data_kind(self.data)
        check(self.steps >= 1, f"{self.name}.steps", "a positive integer", self.steps)
        check(
            self.batch_size >= 1, f"{self.name}.batch_size", "a positive integer", self.batch_size
        )
        check(
            self.optimizer in OPTIMIZERS,
            f"{self.name}.optimizer",
            f"one of {', '.join(OPTIMIZERS)}",
            self.optimizer,
        )
        check(
            self.dense_steps >= 0, f"{self.name}.dense_steps", "an integer >= 0", self.dense_steps
        )
        check(self.n_records >= 1, f"{self.name}.n_records", "a positive integer", self.n_records)
        interventions.check_name(self.intervention)

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
        names = [phase.name for phase in self.phases]
        check(len(names) >= 1, "phases", "at least one phase", names)
        check(len(set(names)) == len(names), "phases", "phases with unique names", names)
        check(self.n_probes >= 2, "n_probes", "an integer >= 2", self.n_probes)
        for name in self.directions:
            check(
                name in geometry.DIRECTIONS,
                "directions",
                f"names from {', '.join(geometry.DIRECTIONS)}",
                name,
            )
        check(len(self.directions) >= 1, "directions", "at least one definition", self.directions)
        for i, phase in enumerate(self.phases):
            if phase.intervention != "none":
                check(
                    self.measures_reversion(i),
                    f"{phase.name}.intervention",
                    "only in a phase after a helpful and a safety phase",
                    phase.intervention,
                )
        benign = [p for i, p in enumerate(self.phases) if self.measures_reversion(i)]
        for step in self.drift_snapshots:
            check(
                bool(benign) and all(0 <= step <= p.steps for p in benign),
                "drift_snapshots",
                "steps within every measured benign phase",
                step,
            )

    def anchor_index(self, data: str) -> int | None:
        """Index of the last phase training on `data` (the anchor theta_P, theta_H or theta_S)."""
        found = [i for i, phase in enumerate(self.phases) if phase.data == data]
        return found[-1] if found else None

    def measures_reversion(self, index: int) -> bool:
        """Whether drift along v_rev is measured in phase `index`: after theta_H and theta_S."""
        helpful, safety = self.anchor_index("helpful"), self.anchor_index("safety")
        return helpful is not None and safety is not None and index > max(helpful, safety)

    @property
    def phase_names(self) -> tuple[str, ...]:
        return tuple(phase.name for phase in self.phases)

    def record_steps(self) -> dict[str, np.ndarray]:
        return {phase.name: phase.record_steps for phase in self.phases}

    @property
    def needs_trajectory(self) -> bool:
        return any(geometry.DIRECTIONS[name].needs_trajectory for name in self.directions)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Knobs:
    """The numeric, vmappable knobs of a history.

    learning_rate: one per phase, in the order of `HistorySpec.phases`.
    """

    learning_rate: jax.Array
    world: WorldKnobs = dataclasses.field(default_factory=WorldKnobs)
    weight_decay: jax.Array | float = 0.0
    intervention_strength: jax.Array | float = 1.0
    intervention: jax.Array | int = 0

    def validate(self, spec: HistorySpec) -> Knobs:
        """Check concrete values against `spec` (one line naming the field on failure)."""
        self.world.validate()
        lr = np.asarray(self.learning_rate, dtype=float)
        check(
            lr.shape[-1:] == (len(spec.phases),),
            "learning_rate",
            f"one value per phase ({len(spec.phases)})",
            lr.shape,
        )
        check(bool(np.all(lr > 0)), "learning_rate", "positive values", self.learning_rate)
        check(
            bool(np.all(np.asarray(self.weight_decay) >= 0)),
            "weight_decay",
            "a value >= 0",
            self.weight_decay,
        )
        check(
            bool(np.all(np.asarray(self.intervention_strength) >= 0)),
            "intervention_strength",
            "a value >= 0",
            self.intervention_strength,
        )
        index = np.asarray(self.intervention)
        check(
            bool(np.all((index >= 0) & (index < len(interventions.INTERVENTIONS)))),
            "intervention",
            f"an index into {', '.join(interventions.INTERVENTIONS)}",
            self.intervention,
        )
        return self


def stack_knobs(knobs: list[Knobs]) -> Knobs:
    """A batch of knob settings with a leading run axis, for `run_histories`."""
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x, jnp.float32) for x in xs]), *knobs)


def repeat_knobs(knobs: Knobs, n: int) -> Knobs:
    """The same knobs for `n` runs (e.g. seeds), with a leading run axis."""
    return jax.tree.map(
        lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), (n, *jnp.shape(x))), knobs
    )


def make_optimizer(name: str, learning_rate, weight_decay) -> optax.GradientTransformation:
    """The phase's optimizer; learning rate and weight decay may be traced (swept by vmap)."""
    if name == "adam":
        return optax.adam(learning_rate)
    if name == "adamw":
        return optax.adamw(learning_rate, weight_decay=weight_decay)
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(learning_rate))


def cross_entropy(logits_NxC: jax.Array, labels_N: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits_NxC, labels_N).mean()


def behaviour(net: Network, params, probes, n_classes: int):
    """Exact behavioural metrics on the probe sets, and the layer's activations on the
    hazardous and matched probes.

    harmfulness: mean probability of the compliant (task) answer on hazardous probes;
    refusal: mean probability of REFUSE there; other: the rest of the mass (wrong answers);
    task_accuracy / task_loss: on benign task probes; matched_compliance: probability of the
    task answer on the matched (hazard-removed) probes.
    """
    n = probes.hazard.inputs.shape[0]
    inputs = jnp.concatenate([probes.hazard.inputs, probes.matched.inputs, probes.task.inputs])
    logits, activations = net.apply(params, inputs)
    layer = activations[net.config.activation_layer]
    hazard_logits, matched_logits, task_logits = logits[:n], logits[n : 2 * n], logits[2 * n :]
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
    return metrics, layer[:n], layer[n : 2 * n]


@dataclasses.dataclass(frozen=True)
class _Context:
    """Per-run arrays every phase can see: the probes and, after alignment, the references."""

    probes: Any
    reference: geometry.Reference | None = None
    random_direction: jax.Array | None = None
    anchors_params: dict | None = None


def _run_phase(net, spec, phase, index, knobs, key, params, ctx: _Context):
    """Train one phase with `lax.scan`; metrics recorded (by `lax.cond`) at its record steps."""
    world = spec.world
    n_classes = world.n_classes
    measured = spec.measures_reversion(index)
    sign, project, use_random = interventions.settings(phase.intervention, knobs.intervention)
    optimizer = make_optimizer(phase.optimizer, knobs.learning_rate[index], knobs.weight_decay)
    opt_state = optimizer.init(params)
    record = np.zeros(phase.steps + 1, dtype=bool)
    record[phase.record_steps] = True
    snapshots = np.zeros(phase.steps + 1, dtype=bool)
    if measured:
        snapshots[list(spec.drift_snapshots)] = True
    trajectory = spec.needs_trajectory and phase.data == "safety"

    steer = None
    if measured:
        steer = jnp.where(use_random, ctx.random_direction, ctx.reference.directions[0])

    def hazard_component(p):
        acts = net.activations(p, ctx.probes.hazard.inputs)
        return interventions.drift_component(acts, ctx.reference.aligned, steer)

    def measure(p):
        metrics, hazard_acts, matched_acts = behaviour(net, p, ctx.probes, n_classes)
        if measured:
            metrics.update(
                geometry.drift_metrics(hazard_acts, matched_acts, ctx.reference, spec.directions)
            )
            metrics.update(
                geometry.weight_displacement_metrics(
                    p,
                    ctx.anchors_params["safety"],
                    ctx.anchors_params["helpful"],
                    ctx.anchors_params["pretrain"],
                )
            )
        extras = {}
        if trajectory:
            extras["trajectory"] = hazard_acts
        if spec.drift_snapshots and measured:
            extras["drift"] = hazard_acts - ctx.reference.aligned
            extras["drift_matched"] = matched_acts - ctx.reference.aligned_matched
        return metrics, extras

    def skip(p):
        return jax.tree.map(jnp.zeros_like, jax.eval_shape(measure, p))

    def step(carry, xs):
        p, opt_state = carry
        step_key, do_record = xs
        batch = world.sample(knobs.world, phase.data, step_key, phase.batch_size)

        def loss_fn(q):
            logits, _ = net.apply(q, batch.inputs)
            task_loss = cross_entropy(logits, batch.labels)
            if not isinstance(sign, float) or sign:
                term = interventions.penalty(sign, hazard_component(q), knobs.intervention_strength)
                return task_loss + term, task_loss
            return task_loss, task_loss

        (_, task_loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        if not isinstance(project, bool) or project:
            u = jax.grad(hazard_component)(p)
            projected = interventions.project_out(updates, u)
            updates = jax.tree.map(lambda a, b: jnp.where(project, a, b), projected, updates)
        p = optax.apply_updates(p, updates)
        recorded = jax.lax.cond(do_record, measure, skip, p)
        return (p, opt_state), (task_loss, recorded)

    initial = measure(params)
    keys = jax.random.split(key, phase.steps)
    (params, _), (losses, per_step) = jax.lax.scan(
        step, (params, opt_state), (keys, jnp.asarray(record[1:]))
    )
    stacked = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), initial, per_step)
    metrics, extras = stacked
    metrics = {name: values[phase.record_steps] for name, values in metrics.items()}
    loss_at = jnp.concatenate([jnp.full((1,), jnp.nan), losses])
    metrics["train_loss"] = loss_at[phase.record_steps]
    extras = {
        "trajectory": extras["trajectory"][phase.record_steps] if "trajectory" in extras else None,
        "drift": extras["drift"][snapshots] if "drift" in extras else None,
        "drift_matched": extras["drift_matched"][snapshots] if "drift_matched" in extras else None,
    }
    finite = jnp.all(jnp.isfinite(losses))
    return params, metrics, extras, finite


def run_history(key: jax.Array, spec: HistorySpec, knobs: Knobs) -> dict[str, Any]:
    """Train from a fresh initialisation through every phase of `spec`; pure in (key, knobs).

    Returns a dict pytree:
      params: {"init": theta_0, phase name: theta at its end} (if `spec.keep_params`);
      metrics: {phase name: {metric: (n_records, ...)}} at `spec.record_steps()`;
      v_rev: the default reversion direction (N, D) (if measured);
      drift, drift_matched: drift fields at `spec.drift_snapshots` (if asked for);
      diverged: True if any training loss was NaN or infinite.
    """
    net = network(spec.model, spec.world)
    k_init, k_random, *phase_keys = jax.random.split(key, 2 + len(spec.phases))
    params = net.init(k_init)
    probes = spec.world.probe_set(knobs.world, spec.n_probes)
    boundaries = {"init": params}
    metrics, out = {}, {}
    finite = jnp.array(True)
    anchors_acts: dict[str, jax.Array] = {}
    trajectory = None
    ctx = _Context(probes=probes, anchors_params={})
    for index, phase in enumerate(spec.phases):
        if spec.measures_reversion(index) and ctx.reference is None:
            ctx = _reference_context(
                net, spec, probes, boundaries, anchors_acts, trajectory, k_random
            )
        params, metrics[phase.name], extras, phase_finite = _run_phase(
            net, spec, phase, index, knobs, phase_keys[index], params, ctx
        )
        finite &= phase_finite
        boundaries[phase.name] = params
        if extras["trajectory"] is not None:
            trajectory = extras["trajectory"]
        if extras["drift"] is not None and "drift" not in out:
            out["drift"], out["drift_matched"] = extras["drift"], extras["drift_matched"]
    if ctx.reference is not None:
        out["v_rev"] = ctx.reference.directions[0]
    if spec.keep_params:
        out["params"] = boundaries
    out["metrics"] = metrics
    out["diverged"] = ~finite
    return out


def _reference_context(net, spec, probes, boundaries, anchors_acts, trajectory, key) -> _Context:
    """Anchors (theta_P, theta_H, theta_S) and the v_rev references, built after alignment."""
    names = {
        "pretrain": spec.phases[spec.anchor_index("pretrain") or 0].name
        if spec.anchor_index("pretrain") is not None
        else "init",
        "helpful": spec.phases[spec.anchor_index("helpful")].name,
        "safety": spec.phases[spec.anchor_index("safety")].name,
    }
    theta = {role: boundaries[name] for role, name in names.items()}
    both = jnp.concatenate([probes.hazard.inputs, probes.matched.inputs])
    n = probes.hazard.inputs.shape[0]
    acts = {role: net.activations(p, both) for role, p in theta.items()}
    anchors = geometry.Anchors(
        pretrained=acts["pretrain"][:n],
        helpful=acts["helpful"][:n],
        aligned=acts["safety"][:n],
        helpful_matched=acts["helpful"][n:],
        aligned_matched=acts["safety"][n:],
        trajectory=trajectory,
    )
    reference = geometry.make_reference(anchors, spec.directions)
    random_direction = interventions.random_direction(key, anchors.aligned.shape)
    return _Context(probes, reference, random_direction, theta)


@functools.partial(jax.jit, static_argnums=1)
def run_histories(keys: jax.Array, spec: HistorySpec, knobs: Knobs) -> dict[str, Any]:
    """`run_history` vmapped over runs: `keys` (R,) and `knobs` with a leading axis R."""
    return jax.vmap(run_history, in_axes=(0, None, 0))(keys, spec, knobs)


def seed_keys(seeds) -> jax.Array:
    """Typed PRNG keys for integer seeds."""
    return jax.vmap(jax.random.key)(jnp.asarray(seeds, dtype=jnp.uint32))
