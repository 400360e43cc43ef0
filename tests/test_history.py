"""The history engine: vmapped equals sequential, determinism, recording, divergence, bad input,
histories as trees (branched equals straight, a phase of n steps is a prefix of m > n), and
phases that share one scan (equal to each run alone)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.engine.history import (
    HistorySpec,
    Knobs,
    PhaseSpec,
    _schedule,
    _segments,
    init_state,
    repeat_knobs,
    run_histories,
    run_history,
    run_phases,
    run_trunk,
    seed_keys,
    stack_knobs,
    with_phase,
)
from gravity.engine.models import ModelConfig
from gravity.engine.worlds import FeatureWorld, TokenWorld, WorldKnobs
from gravity.validation import ConfigError


def tiny_phases(batch_size=8):
    return (
        PhaseSpec("pretrain", "pretrain", 30, batch_size, n_records=3),
        PhaseSpec("helpful", "helpful", 8, batch_size, n_records=2),
        PhaseSpec("safety", "safety", 8, batch_size, n_records=2),
        PhaseSpec("benign", "benign", 10, batch_size, dense_steps=4, n_records=3),
    )


TINY = {
    "mlp": HistorySpec(
        world=FeatureWorld(n_topics=2, features_per_topic=4, n_classes=4),
        model=ModelConfig(kind="mlp", hidden=(16, 16)),
        phases=tiny_phases(),
        n_probes=16,
        drift_snapshots=(1, 10),
    ),
    "transformer": HistorySpec(
        world=TokenWorld(n_topics=2, tokens_per_topic=4, n_classes=4, prompt_length=4),
        model=ModelConfig(kind="transformer", d_model=8, n_layers=1, n_heads=2, d_ff=16),
        phases=tiny_phases(),
        n_probes=16,
    ),
}
PHASES = ("pretrain", "helpful", "safety", "benign")


def rates(*values):
    """Learning rates keyed by phase name (one value for all, or one per phase)."""
    values = values * 4 if len(values) == 1 else values
    return {name: jnp.float32(v) for name, v in zip(PHASES, values, strict=True)}


KNOBS = Knobs(learning_rate=rates(3e-3))
SEEDS = 4


@pytest.fixture(scope="module", params=list(TINY))
def model_kind(request):
    return request.param


@pytest.fixture(scope="module")
def single():
    return jax.jit(run_history, static_argnums=1)


def run_seeds(spec):
    return jax.device_get(run_histories(seed_keys(range(SEEDS)), spec, repeat_knobs(KNOBS, SEEDS)))


@pytest.fixture(scope="module")
def batched_runs(model_kind):
    return run_seeds(TINY[model_kind])


@pytest.fixture(scope="module")
def mlp_runs():
    """The MLP's runs again: the compiled program is cached, so this costs only run time."""
    return run_seeds(TINY["mlp"])


def assert_trees_close(a, b, atol):
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


def test_vmapped_equals_single_runs(model_kind, batched_runs, single):
    spec = TINY[model_kind]
    for seed in range(SEEDS):
        one = jax.device_get(single(jax.random.key(seed), spec, KNOBS))
        mine = jax.tree.map(lambda x, s=seed: x[s], batched_runs)
        assert_trees_close(mine["metrics"], one["metrics"], atol=1e-5)
        if "v_rev" in one:
            np.testing.assert_allclose(mine["v_rev"], one["v_rev"], atol=1e-5)


def test_same_key_gives_identical_results(model_kind, batched_runs):
    spec = TINY[model_kind]
    again = jax.device_get(run_histories(seed_keys(range(SEEDS)), spec, repeat_knobs(KNOBS, SEEDS)))
    assert_trees_close(batched_runs["metrics"], again["metrics"], atol=0.0)


def test_different_seeds_differ(model_kind, batched_runs):
    harm = np.asarray(batched_runs["metrics"]["benign"]["harmfulness"])
    assert np.ptp(harm[:, -1]) > 0


def test_records_follow_the_schedule(model_kind, batched_runs):
    spec = TINY[model_kind]
    for phase in spec.phases:
        steps = phase.record_steps
        assert steps[0] == 0 and steps[-1] == phase.steps
        harm = np.asarray(batched_runs["metrics"][phase.name]["harmfulness"])
        assert harm.shape == (SEEDS, len(steps))
        assert np.all((harm >= 0) & (harm <= 1))
    benign = spec.phases[-1].record_steps
    np.testing.assert_array_equal(benign[:5], np.arange(5))
    align = np.asarray(batched_runs["metrics"]["benign"]["alignment"])
    assert np.all(align[:, 0] == 0) and np.all(np.abs(align) <= 1 + 1e-6)


def test_phase_boundaries_chain(model_kind, batched_runs):
    """A phase's first record is its predecessor's last: theta is handed on unchanged."""
    spec = TINY[model_kind]
    metrics = batched_runs["metrics"]
    for before, after in zip(spec.phases[:-1], spec.phases[1:], strict=True):
        np.testing.assert_allclose(
            metrics[before.name]["task_loss"][:, -1],
            metrics[after.name]["task_loss"][:, 0],
            atol=1e-6,
        )
    params = batched_runs["params"]
    assert set(params) == {"init", *spec.phase_names}


def test_drift_snapshots_match_the_recorded_alignment(mlp_runs):
    batched_runs = mlp_runs
    spec = TINY["mlp"]
    drift = np.asarray(batched_runs["drift"])
    v_rev = np.asarray(batched_runs["v_rev"])
    assert drift.shape[:2] == (SEEDS, len(spec.drift_snapshots))
    steps = list(spec.phases[-1].record_steps)
    recorded = np.asarray(batched_runs["metrics"]["benign"]["alignment"])
    for j, step in enumerate(spec.drift_snapshots):
        flat, v = drift[:, j].reshape(SEEDS, -1), v_rev.reshape(SEEDS, -1)
        cos = (flat * v).sum(1) / np.linalg.norm(flat, axis=1) / np.linalg.norm(v, axis=1)
        np.testing.assert_allclose(cos, recorded[:, steps.index(step)], atol=1e-5)


def test_vmapping_a_knob_equals_single_runs(single):
    """Four settings, so the vmapped program is the one compiled for the four seeds."""
    spec = TINY["mlp"]
    settings = [
        Knobs(learning_rate=rates(lr), world=WorldKnobs(benign_overlap=overlap))
        for lr, overlap in [(1e-3, 0.1), (5e-3, 0.9), (2e-3, 0.0), (3e-3, 1.0)]
    ]
    keys = seed_keys([0, 0, 0, 0])
    batched = jax.device_get(run_histories(keys, spec, stack_knobs(settings)))
    for i, knobs in enumerate(settings):
        one = jax.device_get(single(jax.random.key(0), spec, knobs))
        mine = jax.tree.map(lambda x, i=i: x[i], batched["metrics"])
        assert_trees_close(mine, one["metrics"], atol=1e-5)


def test_without_jit_equals_jit(single):
    """Every output (metrics, parameters, drift, v_rev), with the spec the other tests compile."""
    spec = TINY["mlp"]
    eager = jax.device_get(run_history(jax.random.key(1), spec, KNOBS))
    jitted = jax.device_get(single(jax.random.key(1), spec, KNOBS))
    assert_trees_close(eager, jitted, atol=1e-5)


def test_a_divergent_run_is_flagged_and_leaves_neighbours_unchanged(mlp_runs):
    spec = TINY["mlp"]
    sane = Knobs(learning_rate=rates(3e-3))
    wild = Knobs(learning_rate=rates(3e-3, 3e-3, 3e-3, 1e30))
    knobs = stack_knobs([sane, wild, sane, sane])
    out = jax.device_get(run_histories(seed_keys(range(4)), spec, knobs))
    assert out["diverged"].tolist() == [False, True, False, False]
    for seed in (0, 2, 3):
        mine = jax.tree.map(lambda x, s=seed: x[s], out["metrics"])
        reference = jax.tree.map(lambda x, s=seed: x[s], mlp_runs["metrics"])
        assert_trees_close(mine, reference, atol=0.0)


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: PhaseSpec("p", "pretrain", 0, 8), "p.steps"),
        (lambda: PhaseSpec("p", "pretrain", 5, 0), "p.batch_size"),
        (lambda: PhaseSpec("p", "nonsense", 5, 8), "data"),
        (lambda: PhaseSpec("p", "pretrain", 5, 8, optimizer="lbfgs"), "p.optimizer"),
        (lambda: PhaseSpec("p", "benign", 5, 8, objective="magic"), "p.objective"),
        (lambda: PhaseSpec("p", "safety", 5, 8, snapshots=(6,)), "p.snapshots"),
        (lambda: ModelConfig(kind="rnn"), "model.kind"),
        (lambda: Knobs(learning_rate=rates(-1.0)).validate(TINY["mlp"]), "learning_rate.pretrain"),
        (lambda: Knobs(learning_rate={"pretrain": 1.0}).validate(TINY["mlp"]), "learning_rate"),
        (
            lambda: PhaseSpec("p", "pretrain", 5, 8, optimizer="adamw", weight_decay=float("nan")),
            "p.weight_decay",
        ),
        (lambda: PhaseSpec("p", "pretrain", 5, 8, weight_decay=0.1), "p.weight_decay"),
        (
            lambda: dataclasses.replace(
                TINY["mlp"], phases=(PhaseSpec("t", "benign", 5, 8, interventions=True),)
            ),
            "t.interventions",
        ),
    ],
)
def test_bad_history_input_names_the_field(build, field):
    with pytest.raises(ConfigError, match=field) as info:
        build()
    assert "\n" not in str(info.value)


# Histories as trees ----------------------------------------------------------------------------

TREE_SPEC = with_phase(TINY["mlp"], "benign", interventions=True)


@pytest.fixture(scope="module")
def continued():
    """`run_history` continued from a trunk, jitted once (its trunk is an argument)."""
    return jax.jit(lambda key, knobs, trunk: run_history(key, TREE_SPEC, knobs, start=trunk))


@pytest.fixture(scope="module")
def trunk_fn():
    return jax.jit(run_trunk, static_argnums=(1, 3))


def max_abs_difference(a, b) -> float:
    diffs = jax.tree.map(
        lambda x, y: float(np.max(np.abs(np.asarray(x, float) - np.asarray(y, float)), initial=0)),
        a,
        b,
    )
    assert jax.tree.structure(a) == jax.tree.structure(b)
    return max(jax.tree.leaves(diffs))


def test_straight_equals_branched_at_theta_s(single, continued, trunk_fn):
    key = jax.random.key(7)
    straight = jax.device_get(single(key, TREE_SPEC, KNOBS))
    trunk = trunk_fn(key, TREE_SPEC, KNOBS, "safety")
    branched = jax.device_get(continued(key, KNOBS, trunk))
    assert max_abs_difference(straight, branched) <= 1e-6
    assert set(branched["params"]) == {"init", *PHASES}


def test_k_branches_from_one_prefix_equal_k_straight_histories(single, continued, trunk_fn):
    """Block, push and project from one theta_S equal three straight histories, same key."""
    key = jax.random.key(3)
    variants = [
        dataclasses.replace(KNOBS, intervention=i, intervention_strength=s)
        for i, s in ((1, 1.0), (2, 0.5), (3, 1.0))
    ]
    trunk = trunk_fn(key, TREE_SPEC, KNOBS, "safety")
    branches = jax.device_get(
        jax.jit(jax.vmap(lambda k: run_history(key, TREE_SPEC, k, start=trunk)))(
            stack_knobs(variants)
        )
    )
    for i, knobs in enumerate(variants):
        straight = jax.device_get(single(key, TREE_SPEC, knobs))
        mine = jax.tree.map(lambda x, i=i: x[i], branches)
        assert max_abs_difference(straight, mine) <= 1e-6
    harm = branches["metrics"]["benign"]["harmfulness"][:, -1]
    assert len(np.unique(harm)) == 3  # the interventions really differ


def test_a_phase_of_n_steps_is_the_prefix_of_one_with_m_steps(trunk_fn):
    """Safety for 8 steps = the first 8 steps of safety for 16 (parameters and the records at
    steps 0, 1, 3, 8). The short one is the trunk the tests above compiled."""
    key = jax.random.key(11)
    short = TREE_SPEC
    long = with_phase(short, "safety", steps=16, snapshots=(8, 16), n_records=16)
    a = trunk_fn(key, long, KNOBS, "safety")
    b = trunk_fn(key, short, KNOBS, "safety")
    snapshot = jax.tree.map(lambda s: s[0], a.outputs["snapshots"]["safety"])
    assert max_abs_difference(snapshot, b.state.params) <= 1e-6
    long_steps = list(long.phase("safety").record_steps)
    rows = [long_steps.index(t) for t in short.phase("safety").record_steps]
    for name, values in b.outputs["metrics"]["safety"].items():
        np.testing.assert_allclose(
            np.asarray(a.outputs["metrics"]["safety"][name])[rows], values, atol=1e-6, err_msg=name
        )


def test_behaviour_on_hand_set_weights_is_exact():
    """All weights 0 and readout bias b: every input's logits are b, so each metric is a closed
    form of softmax(b) and the probes' labels."""
    from gravity.engine.history import behaviour
    from gravity.engine.models import network

    spec = TINY["mlp"]
    net = network(spec.model, spec.world)
    params = jax.tree.map(jnp.zeros_like, net.init(jax.random.key(0)))
    bias = jnp.asarray([0.5, -1.0, 2.0, 0.0, 1.0])  # 4 answers, then REFUSE
    params["readout"]["bias"][...] = bias
    probes = spec.world.probe_set(WorldKnobs(), spec.n_probes)
    metrics, _, _ = behaviour(net, params, probes, spec.world.n_classes, probes.hazard)
    p = np.exp(np.asarray(bias)) / np.exp(np.asarray(bias)).sum()
    hazard_labels = np.asarray(probes.hazard.labels)
    np.testing.assert_allclose(metrics["harmfulness"], p[hazard_labels].mean(), rtol=1e-6)
    np.testing.assert_allclose(metrics["harmfulness_heldout"], p[hazard_labels].mean(), rtol=1e-6)
    np.testing.assert_allclose(metrics["refusal"], p[4], rtol=1e-6)
    task_labels = np.asarray(probes.task.labels)
    np.testing.assert_allclose(metrics["task_accuracy"], np.mean(task_labels == 2), rtol=1e-6)
    np.testing.assert_allclose(metrics["task_loss"], -np.log(p[task_labels]).mean(), rtol=1e-5)


def test_a_record_computes_only_the_probe_sets_its_metrics_read():
    """Each probe set has its own forward pass, so XLA drops the passes whose metrics are not
    kept: harmfulness alone reads the hazardous probes (one pass of the network's three matmuls),
    with task accuracy the task probes too (two), every metric all three sets (no held-out set
    here: one equal to a probe set would share its pass)."""
    from gravity.engine.history import behaviour
    from gravity.engine.models import network

    spec = TINY["mlp"]
    net = network(spec.model, spec.world)
    params = net.init(jax.random.key(0))
    probes = spec.world.probe_set(WorldKnobs(), spec.n_probes)

    def matmuls(kept):
        def record(p):
            metrics = behaviour(net, p, probes, spec.world.n_classes)[0]
            return {name: metrics[name] for name in kept} if kept else metrics

        return jax.jit(record).lower(params).compile().as_text().count(" dot(")

    layers = len(spec.model.hidden) + 1
    assert matmuls(("harmfulness",)) == layers
    assert matmuls(("harmfulness", "task_accuracy")) == 2 * layers
    assert matmuls(()) == 3 * layers


# Phases sharing one scan -----------------------------------------------------------------------


def segment_names(spec, linearise=False):
    return [
        [phase.name for phase in segment] for segment in _segments(spec, spec.phases, linearise)
    ]


@pytest.mark.parametrize(
    "change",
    [{"batch_size": 4}, {"optimizer": "sgd"}, {"objective": "refusal"}, {"defences": ("vaccine",)}],
)
def test_plain_phases_share_a_scan_and_a_different_one_runs_alone(change):
    """P, H and S share one scan, T (which measures reversion) runs alone; a safety phase with
    another batch size, optimizer, objective or a defence splits from P and H."""
    spec = TINY["mlp"]
    assert segment_names(spec) == [["pretrain", "helpful", "safety"], ["benign"]]
    assert segment_names(spec, linearise=True) == [[name] for name in PHASES]
    other = with_phase(spec, "safety", **change)
    assert segment_names(other) == [["pretrain", "helpful"], ["safety"], ["benign"]]


phase_plans = st.lists(
    st.tuples(st.integers(1, 12), st.integers(0, 4), st.integers(1, 4), st.data()),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(phase_plans)
def test_a_segment_schedule_places_every_record_and_snapshot(plans):
    """Records at each phase's own record steps (its step 0 = the previous phase's end), a
    distinct buffer slot per snapshot, and each inner phase's end kept; nothing else."""
    phases = []
    for k, (steps, dense, n_records, data) in enumerate(plans):
        snapshots = data.draw(st.sets(st.integers(1, steps)))
        phase = PhaseSpec(
            f"p{k}",
            "pretrain",
            steps,
            8,
            dense_steps=dense,
            n_records=n_records,
            snapshots=tuple(sorted(snapshots)),
        )
        phases.append(phase)
    schedule = _schedule(tuple(phases))
    offsets = schedule.offsets
    expected = np.zeros(offsets[-1] + 1, dtype=bool)
    for offset, phase in zip(offsets, phases, strict=False):
        expected[offset + phase.record_steps] = True
    np.testing.assert_array_equal(schedule.record, expected[1:])
    kept = []
    for k, phase in enumerate(phases):
        rows = offsets[k] + np.asarray(phase.snapshots, dtype=int) - 1
        np.testing.assert_array_equal(schedule.slots[rows], schedule.snapshot_slots[k])
        kept += list(schedule.snapshot_slots[k])
    for k, slot in enumerate(schedule.end_slots):
        assert schedule.slots[offsets[k + 1] - 1] == slot
        kept.append(slot)
    taken = schedule.slots[schedule.slots >= 0]
    assert len(set(taken)) == taken.size == schedule.n_slots == len(set(kept))
    if len(phases) == 1:
        np.testing.assert_array_equal(
            schedule.snapshot_slots[0], np.arange(len(phases[0].snapshots))
        )
    assert np.all(np.diff(schedule.local_step)[np.diff(schedule.phase_of_step) == 0] == 1)


@pytest.fixture(scope="module")
def shared_and_alone(model_kind):
    """P, H and S in one scan and each run alone, same key: per-phase learning rates, and a
    snapshot at the helpful phase's last step (its end slot is that snapshot's)."""
    spec = with_phase(TINY[model_kind], "helpful", snapshots=(3, 8))
    knobs = Knobs(learning_rate=rates(3e-3, 1e-2, 2e-3, 3e-3))
    trunk = spec.phases[:3]

    def shared(key):
        return run_phases(key, spec, init_state(key, spec, knobs), knobs, trunk)

    def alone(key):
        state, outputs = init_state(key, spec, knobs), {"metrics": {}, "snapshots": {}}
        for phase in trunk:
            state, out = run_phases(key, spec, state, knobs, (phase,))
            for part in ("metrics", "snapshots"):
                outputs[part] |= out[part]
        return state, outputs

    key = jax.random.key(5)
    return jax.device_get(jax.jit(shared)(key)), jax.device_get(jax.jit(alone)(key))


def test_phases_in_one_scan_equal_each_phase_run_alone(shared_and_alone):
    """Fresh optimizer state, learning rate, data and key per phase; records, snapshots,
    boundaries. (Up to float rounding of fused kernels: train_loss may differ by an ulp.)"""
    (state, outputs), (state_alone, outputs_alone) = shared_and_alone
    assert max_abs_difference(state.boundaries, state_alone.boundaries) <= 1e-6
    assert max_abs_difference(outputs, outputs_alone) <= 1e-6
    assert bool(state.finite) and bool(state_alone.finite)
    assert set(outputs["snapshots"]) == {"helpful"}
    last = jax.tree.map(lambda s: s[-1], outputs["snapshots"]["helpful"])
    assert max_abs_difference(last, state.boundaries["helpful"]) == 0


def test_a_trunk_of_plain_phases_compiles_one_loop():
    """The trunk through safety lowers to as many loops as the trunk through pretraining."""
    spec, knobs = TINY["mlp"], KNOBS

    def loops(through):
        lowered = jax.jit(lambda key: run_trunk(key, spec, knobs, through)).lower(jax.random.key(0))
        return lowered.as_text().count("stablehlo.while")

    assert loops("safety") == loops("pretrain") >= 1
