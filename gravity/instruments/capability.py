"""A capability, measured exactly: what unlearning removes and relearning brings back.

In a world with `capability=True`, hazardous inputs have their own answer rule (a second
teacher), so the capability is answering them by that rule. Every metric is computed from the
logits on fixed probe sets drawn from the world's seed, held out from every training stream:

- forget probes: hazardous inputs labelled with the capability's answers;
  `forget_accuracy` (argmax right) and `forget_probability` (mean probability of the right
  answer: an expectation, not a sampled rate);
- related probes: the same inputs without the hazard, with their ordinary answers;
- retain probes: non-hazardous pretraining inputs (every topic), `retain_accuracy`.

In a world with `decoy_pretraining` (relearning's seen-inputs control: pretraining answered the
hazardous inputs by a decoy rule, a third teacher), `decoy_accuracy` is how often the argmax on
the forget probes is the decoy's answer: how well that control learned its own rule on them.

Relearning geometry (our definitions): v_unlearn is the activation displacement on the forget
probes from theta_U back toward theta_P (stacked over probes, as `geometry`'s default v_rev);
the drift of relearning at step t is activations(theta_t) - activations(theta_U) on the same
probes, and its alignment is their cosine (0 for a drift below `geometry.STILL` of the norm).

`RelearningMeasure` is the per-run instrument on the history P -> U -> R of
`unlearn_relearn_spec`: from theta_P it unlearns once, then relearns from every unlearning depth
on every `RelearnKind` of data, and returns the capability at each stage, the relearning
trajectory and the drift's alignment. `first_crossing` and `censored_median` (the Kaplan-Meier
median of `gravity.instruments.escape`) read the time to half recovery off its trajectories;
`gravity.instruments.recovery` has the rest of the statistics over seeds.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gravity.engine import geometry, history
from gravity.engine.models import Network, network
from gravity.engine.objectives import unlearning_data
from gravity.engine.spec import HistorySpec, PhaseSpec
from gravity.engine.worlds import Batch, World, WorldKnobs
from gravity.instruments import escape
from gravity.validation import check

RETAIN_PROBES_TAG = 0x52455441  # "RETA": fold_in(key(world seed + 1), tag), as the world's probes


class CapabilityProbes(NamedTuple):
    """The fixed evaluation sets of a capability (see the module docstring); `decoy`: the
    decoy rule's answers to the forget probes, in a world with `decoy_pretraining` (else None)."""

    forget: Batch
    related: Batch
    retain: Batch
    decoy: jax.Array | None = None


def capability_probes(world: World, knobs: WorldKnobs, n_probes: int) -> CapabilityProbes:
    """Forget and related probes are the world's hazardous and matched probes; retain probes
    are non-hazardous pretraining inputs from their own fixed key; where the world pretrains
    on a decoy rule, that rule's answers to the forget probes."""
    probes = world.probe_set(knobs, n_probes)
    key = jax.random.fold_in(jax.random.key(world.seed + 1), RETAIN_PROBES_TAG)
    retain = world.sample(knobs, "retain", key, n_probes)
    decoy = world.decoy_answers(probes.hazard.inputs) if seen_inputs_world(world) else None
    return CapabilityProbes(probes.hazard, probes.matched, retain, decoy)


def seen_inputs_world(world: World) -> bool:
    """Whether `world` pretrains on the decoy rule (`TopicWorld.decoy_pretraining`): the
    seen-inputs control's world."""
    return bool(getattr(world, "decoy_pretraining", False))


def _accuracy(logits_NxC: jax.Array, labels_N: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(logits_NxC, axis=-1) == labels_N)


def capability(
    net: Network, params, probes: CapabilityProbes
) -> tuple[dict[str, jax.Array], jax.Array]:
    """Exact capability metrics of `params`, and the probe layer's activations on the forget
    probes (N, D), for relearning geometry. With decoy answers in `probes`, also
    "decoy_accuracy": how often the argmax on the forget probes is the decoy rule's answer."""
    n = probes.forget.inputs.shape[0]
    inputs = jnp.concatenate([probes.forget.inputs, probes.related.inputs, probes.retain.inputs])
    logits, activations = net.apply(params, inputs)
    forget, related, retain = logits[:n], logits[n : 2 * n], logits[2 * n :]
    p_forget = jax.nn.softmax(forget)
    metrics = {
        "forget_accuracy": _accuracy(forget, probes.forget.labels),
        "forget_probability": jnp.mean(p_forget[jnp.arange(n), probes.forget.labels]),
        "related_accuracy": _accuracy(related, probes.related.labels),
        "retain_accuracy": _accuracy(retain, probes.retain.labels),
    }
    if probes.decoy is not None:
        metrics["decoy_accuracy"] = _accuracy(forget, probes.decoy)
    return metrics, activations[net.config.activation_layer][:n]


def relearning_alignment(
    acts_t: jax.Array, acts_unlearned: jax.Array, acts_pretrained: jax.Array
) -> jax.Array:
    """cos(drift from theta_U, v_unlearn): how much of relearning's motion on the forget probes
    points back toward theta_P (0 where the drift is below `geometry.STILL` of the norm)."""
    drift = acts_t - acts_unlearned
    moved = jnp.linalg.norm(drift) > geometry.STILL * jnp.linalg.norm(acts_unlearned)
    return jnp.where(moved, geometry.cosine(drift, acts_pretrained - acts_unlearned), 0.0)


def first_crossing(values_RxT, steps_T, threshold_R) -> np.ndarray:
    """Per run, the first recorded step at which `values` reach `threshold` (inf if never:
    right-censored at the last step; NaN where the threshold is NaN)."""
    values = np.asarray(values_RxT, dtype=float)
    threshold = np.asarray(threshold_R, dtype=float)[..., None]
    reached = values >= threshold
    first = np.where(reached.any(-1), np.asarray(steps_T)[np.argmax(reached, -1)], np.inf)
    return np.where(np.isnan(threshold[..., 0]), np.nan, first)


HALF_ROUNDING = 1e-9
"""How far from 1/2 a Kaplan-Meier survival may land by rounding and still be 1/2: the
product-limit (1 - 1/4)(1 - 1/3) is 1/2 only to within ~1e-16 in floating point."""


def km_median_midpoint(curve: escape.SurvivalCurve) -> float:
    """The Kaplan-Meier median with the usual rule for a curve flat at exactly 1/2 (R's
    `survfit`): the midpoint between the time it reaches 1/2 and the next escape time, inf
    when there is none (the median then lies beyond the censoring); otherwise `km_median`.

    With a common censoring time and no censoring before it, this is the plain median of the
    times with the censored ones counted as +inf (`np.median`, averaging the middle pair)."""
    at_half = np.flatnonzero(np.abs(curve.survival - 0.5) <= HALF_ROUNDING)
    if at_half.size == 0:
        return escape.km_median(curve)
    first, after = at_half[0], at_half[0] + 1
    if after == curve.times.size:
        return math.inf
    return float((curve.times[first] + curve.times[after]) / 2)


def censored_median(times, horizon: float) -> dict[str, float]:
    """Median of right-censored times (inf = not reached by `horizon`, the common censoring
    time, at least every reached time; NaN = not counted): the Kaplan-Meier median
    (`km_median_midpoint`) when observed, else reported as "> horizon"; with the share reached."""
    t = np.asarray(times, dtype=float).ravel()
    t = t[~np.isnan(t)]
    if t.size == 0:
        return {"median": float("nan"), "censored": True, "reached": float("nan"), "n": 0}
    reached = np.isfinite(t)
    median = km_median_midpoint(escape.kaplan_meier(np.where(reached, t, horizon), reached))
    return {
        "median": median if np.isfinite(median) else float(horizon),
        "censored": bool(not np.isfinite(median)),
        "reached": float(np.mean(reached)),
        "n": int(t.size),
    }


def censored_median_text(median: dict) -> str:
    """A `censored_median` as text: "45", or ">100" when not reached by the horizon."""
    return f">{median['median']:.0f}" if median["censored"] else f"{median['median']:.0f}"


def forget_activation_size(spec) -> int:
    """N * D: the number of coordinates a drift on the forget (hazardous) probes has, for the
    isotropic null of `relearning_alignment` (shapes only; nothing is computed)."""
    net = network(spec.model, spec.world)
    inputs = spec.world.probe_set(WorldKnobs(), spec.n_probes).hazard.inputs
    shape = jax.eval_shape(lambda: net.activations(net.init(jax.random.key(0)), inputs)).shape
    return int(np.prod(shape))


@dataclasses.dataclass(frozen=True)
class RelearnKind:
    """A relearning data set as world knobs: share of fixed forget examples, how many (k), and
    the topic mix of the rest (`benign_overlap`: 1 related, 0 unrelated)."""

    name: str
    forget_share: float
    examples: int
    benign_overlap: float


def relearn_kinds(forget_examples: tuple[int, ...], world: World) -> tuple[RelearnKind, ...]:
    """k fixed forget examples for each k ("forget_k", at most the world's forget pool), then
    three kinds without them: related (hazard-topic inputs without the hazard), unrelated
    (other topics only) and retain (the non-hazardous pretraining mixture: every topic)."""
    check(
        max(forget_examples) <= world.forget_pool,
        "forget_examples",
        f"counts up to the world's forget pool ({world.forget_pool})",
        forget_examples,
    )
    forget = tuple(RelearnKind(f"forget_{k}", 1.0, k, 0.0) for k in forget_examples)
    return forget + (
        RelearnKind("related", 0.0, 1, 1.0),
        RelearnKind("unrelated", 0.0, 1, 0.0),
        RelearnKind("retain", 0.0, 1, 1.0 / world.n_topics),
    )


def unlearn_relearn_spec(
    base: HistorySpec,
    method: str,
    unlearn_depths: tuple[int, ...],
    relearn_steps: int,
    drift_step: int,
    decoy_pretraining: bool = False,
) -> HistorySpec:
    """The history `RelearningMeasure` reads, in `base`'s world with the capability on:
    `base`'s pretraining P -> unlearning U by `method` for the deepest of `unlearn_depths`
    (increasing) steps, snapshots at the shallower ones -> relearning R for `relearn_steps`
    (a snapshot at `drift_step` when it is before R's end); every phase at P's batch size.
    `decoy_pretraining`: the seen-inputs control's history, the same but for P answering the
    hazardous inputs by the world's decoy rule (`TopicWorld.decoy_pretraining`)."""
    pretrain = base.phases[0]
    batch = pretrain.batch_size
    drift = (drift_step,) if drift_step < relearn_steps else ()
    phases = (
        pretrain,
        PhaseSpec(
            "unlearn",
            unlearning_data(method),
            unlearn_depths[-1],
            batch,
            objective=method,
            n_records=2,
            snapshots=unlearn_depths[:-1],
        ),
        PhaseSpec(
            "relearn", "relearn", relearn_steps, batch, dense_steps=16, n_records=8, snapshots=drift
        ),
    )
    world = dataclasses.replace(base.world, capability=True)
    if decoy_pretraining:
        world = dataclasses.replace(world, decoy_pretraining=True)
    return dataclasses.replace(base, world=world, phases=phases)


def kind_world_knobs(world_knobs: WorldKnobs, kinds: tuple[RelearnKind, ...]) -> WorldKnobs:
    """`world_knobs` once per kind, stacked on a leading axis (to vmap relearning over kinds)."""

    def one(kind):
        return dataclasses.replace(
            world_knobs,
            relearn_forget_share=jnp.float32(kind.forget_share),
            relearn_examples=jnp.int32(kind.examples),
            benign_overlap=jnp.float32(kind.benign_overlap),
        )

    return jax.tree.map(lambda *xs: jnp.stack(xs), *[one(k) for k in kinds])


def unlearning_depths(key: jax.Array, spec: HistorySpec, state: history.HistoryState, knobs):
    """Run the "unlearn" phase from `state`: its end state, and its parameters at every
    snapshot then at its end, stacked (the depths, shallowest first)."""
    state_u, out_u = history.run_phases(key, spec, state, knobs, (spec.phase("unlearn"),))
    snaps = out_u["snapshots"].get("unlearn")
    final = jax.tree.map(lambda a: a[None], state_u.params)
    if snaps is None:
        return state_u, final
    return state_u, jax.tree.map(lambda s, f: jnp.concatenate([s, f]), snaps, final)


@dataclasses.dataclass(frozen=True)
class RelearningMeasure:
    """Per branch (a strength, from theta_P): unlearn once, then relearn every kind from every
    depth, vmapped; capability at P, at each theta_U and after relearning, the relearning
    trajectory of the forget probability, and the drift along v_unlearn at the relearning
    phase's snapshot (its end when it keeps none). `start`: the trunk after pretraining.

    Outputs per run: "pretrained/METRIC" (), "unlearned/METRIC" (depth,), "relearned/METRIC"
    and "alignment" (depth, kind), "trajectory" (depth, kind, record), "diverged" ()."""

    kinds: tuple[RelearnKind, ...]

    def __call__(self, key, spec, knobs, start=None) -> dict:
        net = network(spec.model, spec.world)
        state = history.branch_state(start, spec, knobs)
        probes = capability_probes(spec.world, knobs.world, spec.n_probes)
        pretrained, acts_p = capability(net, state.params, probes)
        state_u, depths = unlearning_depths(key, spec, state, knobs)
        kind_knobs = kind_world_knobs(knobs.world, self.kinds)

        def from_depth(theta_u):
            unlearned, acts_u = capability(net, theta_u, probes)
            begin = dataclasses.replace(
                state_u, params=theta_u, boundaries={**state_u.boundaries, "unlearn": theta_u}
            )

            def relearn(world):
                return self.relearn(
                    key,
                    spec,
                    dataclasses.replace(knobs, world=world),
                    begin,
                    (net, probes, acts_p, acts_u),
                )

            return unlearned, jax.vmap(relearn)(kind_knobs)

        unlearned, relearned = jax.vmap(from_depth)(depths)
        finite = state_u.finite & jnp.all(relearned.pop("finite"))
        return {
            "pretrained": pretrained,
            "unlearned": unlearned,
            **relearned,
            "diverged": ~finite,
        }

    def relearn(self, key, spec, knobs, begin, context) -> dict:
        """One relearning from theta_U: capability at its end, the forget-probability
        trajectory, and the alignment of the drift at the snapshot with v_unlearn."""
        net, probes, acts_p, acts_u = context
        phase = spec.phase("relearn")
        end, out = history.run_phases(key, spec, begin, knobs, (phase,))
        snaps = out["snapshots"].get("relearn")
        at_drift = end.params if snaps is None else jax.tree.map(lambda s: s[0], snaps)
        relearned, _ = capability(net, end.params, probes)
        _, acts_t = capability(net, at_drift, probes)
        return {
            "relearned": relearned,
            "trajectory": out["metrics"]["relearn"]["harmfulness"],
            "alignment": relearning_alignment(acts_t, acts_u, acts_p),
            "finite": end.finite,
        }
