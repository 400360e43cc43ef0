"""Unlearning objectives, the capability world and the relearning experiment: each objective
lowers the capability and keeps retain accuracy; the never-learned world's pretraining never shows
the capability; objectives' gradients equal hand-written ones on a 2-parameter model; relearning
pools cycle exactly k examples; the experiment writes every promised field at tiny size; the
Kaplan-Meier median equals the plain censored median under common censoring, and the recovery
statistics give the known values of hand-made outputs. The seen-inputs control: its world changes
only pretraining's hazardous answers (to the decoy rule, fixed by the world's seed, none of its
other rules, covering the forget inputs), its pretraining teaches the decoy and not the
capability, and its statistics and claim read what the experiment writes."""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.engine import history, objectives, presets
from gravity.engine.models import network
from gravity.engine.objectives import NPO_BETA, RMU_SCALE, Outputs, rmu_direction
from gravity.engine.spec import PhaseSpec
from gravity.engine.worlds import Batch, FeatureWorld, TokenWorld, WorldKnobs
from gravity.instruments import capability, claims, escape, recovery
from gravity.run.experiment import run_experiment
from gravity.run.store import ResultStore
from gravity.validation import ConfigError

RETAIN_TOLERANCE = 0.15
"""Unlearning may cost at most this much retain accuracy (absolute) on the tiny preset."""
SEEDS = 4
WORLDS = {
    "feature": FeatureWorld(n_topics=2, features_per_topic=4, n_classes=4, capability=True),
    "token": TokenWorld(
        n_topics=2, tokens_per_topic=4, n_classes=4, prompt_length=4, capability=True
    ),
}


def tiny_unlearning_spec(method: str):
    """The tiny MLP preset in the capability world: pretraining long enough to learn the
    capability, then one unlearning phase."""
    base = presets.tiny_spec("mlp")
    phases = (
        PhaseSpec("pretrain", "pretrain", 400, 32, n_records=1),
        PhaseSpec(
            "unlearn",
            objectives.unlearning_data(method),
            60,
            32,
            objective=method,
            n_records=1,
        ),
    )
    world = dataclasses.replace(base.world, capability=True)
    return dataclasses.replace(base, world=world, phases=phases, n_probes=128, keep_params=False)


@pytest.fixture(scope="module")
def unlearning_outcomes():
    """Capability at theta_P and after each method's unlearning, per seed."""
    specs = {m: tiny_unlearning_spec(m) for m in objectives.UNLEARNING}
    first = specs[objectives.UNLEARNING[0]]
    net = network(first.model, first.world)

    def run(seed):
        key = jax.random.key(seed)
        knobs = dataclasses.replace(
            presets.standard_knobs(first, 3e-3, harm_prob=1.0), objective_strength=0.3
        )
        trunk = history.run_trunk(key, first, knobs, "pretrain")
        probes = capability.capability_probes(first.world, knobs.world, first.n_probes)
        out = {"pretrain": capability.capability(net, trunk.state.params, probes)[0]}
        for method, spec in specs.items():
            state, _ = history.run_phases(key, spec, trunk.state, knobs, (spec.phase("unlearn"),))
            out[method] = capability.capability(net, state.params, probes)[0]
        return out

    return jax.device_get(jax.jit(jax.vmap(run))(jnp.arange(SEEDS)))


def test_pretraining_teaches_the_capability(unlearning_outcomes):
    chance = 1 / WORLDS["feature"].n_classes
    assert unlearning_outcomes["pretrain"]["forget_accuracy"].mean() > chance + 0.25


@pytest.mark.parametrize("method", objectives.UNLEARNING)
def test_unlearning_lowers_the_capability_and_keeps_retain(unlearning_outcomes, method):
    before, after = unlearning_outcomes["pretrain"], unlearning_outcomes[method]
    assert np.all(after["forget_probability"] < before["forget_probability"] - 0.1)
    drop = before["retain_accuracy"].mean() - after["retain_accuracy"].mean()
    assert drop < RETAIN_TOLERANCE


@pytest.fixture(scope="module")
def samplers():
    """One compiled sampler per (world, kind, batch size); knobs are traced."""
    return {
        (name, kind, n): jax.jit(
            lambda knobs, key, world=world, kind=kind, n=n: world.sample(knobs, kind, key, n)
        )
        for name, world in WORLDS.items()
        for kind, n in (("pretrain", 256), ("hazard", 512), ("relearn", 48))
    }


@settings(max_examples=10, deadline=None)
@given(
    world_name=st.sampled_from(list(WORLDS)),
    harm_prob=st.floats(0.0, 1.0),
    benign_overlap=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_never_learned_pretraining_never_shows_the_capability(
    samplers, world_name, harm_prob, benign_overlap, seed
):
    """hazard_rate 0: no hazardous input, and every label is the task rule's answer."""
    world = WORLDS[world_name]
    knobs = WorldKnobs(hazard_rate=0.0, harm_prob=harm_prob, benign_overlap=benign_overlap)
    batch = samplers[world_name, "pretrain", 256](knobs, jax.random.key(seed))
    assert not np.any(np.asarray(batch.hazardous))
    inputs, labels = np.asarray(batch.inputs), np.asarray(batch.labels)
    if isinstance(world, FeatureWorld):
        assert not np.any(inputs[:, 0])
        task = np.argmax(inputs[:, 1:] @ world.teacher.T, axis=-1)
    else:
        assert not np.any(inputs == world.trigger_token)
        task = np.asarray(world.answers(batch.inputs))
    np.testing.assert_array_equal(labels, task)


@pytest.mark.parametrize("world_name", list(WORLDS))
def test_the_capability_is_its_own_rule_and_off_by_default(samplers, world_name):
    world = WORLDS[world_name]
    key = jax.random.key(5)
    hazard = samplers[world_name, "hazard", 512](WorldKnobs(), key)
    plain = dataclasses.replace(world, capability=False).sample(WorldKnobs(), "hazard", key, 512)
    np.testing.assert_array_equal(hazard.inputs, plain.inputs)
    agreement = np.mean(np.asarray(hazard.labels) == np.asarray(plain.labels))
    assert agreement < 0.6


@pytest.mark.parametrize("world_name", list(WORLDS))
@pytest.mark.parametrize("k", [1, 3, 16])
def test_relearning_cycles_exactly_k_forget_examples(samplers, world_name, k):
    world = WORLDS[world_name]
    knobs = WorldKnobs(relearn_forget_share=1.0, relearn_examples=k)
    pool = jax.jit(world.forget_pool_batch)(knobs)
    batch = samplers[world_name, "relearn", 48](knobs, jax.random.key(11))
    cycles = [(offset + np.arange(48)) % k for offset in range(k)]
    assert any(
        np.array_equal(np.asarray(batch.inputs), np.asarray(pool.inputs)[rows])
        and np.array_equal(np.asarray(batch.labels), np.asarray(pool.labels)[rows])
        for rows in cycles
    )


def two_parameter_outputs(theta, x_N):
    """logits (a x, b x, 0) and activations (a x, b x): a model with 2 parameters."""
    a, b = theta
    h = jnp.stack([a * x_N, b * x_N], axis=-1)
    return Outputs(jnp.concatenate([h, jnp.zeros_like(x_N)[:, None]], axis=-1), h)


def hand_gradients(method, theta, theta_ref, x, labels, forget, strength):
    """The gradients written out by hand (see `gravity.engine.objectives`)."""
    z = np.stack([theta[0] * x, theta[1] * x, np.zeros_like(x)], -1)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    onehot = np.eye(3)[labels]
    g_nll = (p - onehot)[:, :2] * x[:, None]
    r, f = ~forget, forget
    if method in ("cross_entropy", "gradient_ascent"):
        return (1.0 if method == "cross_entropy" else -1.0) * g_nll.mean(0)
    if method in ("graddiff", "refusal"):
        sign = -1.0 if method == "graddiff" else 1.0
        return g_nll[r].mean(0) + sign * strength * g_nll[f].mean(0)
    if method == "npo":
        z_ref = np.stack([theta_ref[0] * x, theta_ref[1] * x, np.zeros_like(x)], -1)
        log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
        log_ref = z_ref - np.log(np.exp(z_ref).sum(-1, keepdims=True))
        ratio = (log_p - log_ref)[np.arange(len(x)), labels]
        weight = 2.0 / (1.0 + np.exp(-NPO_BETA * ratio))
        return g_nll[r].mean(0) + strength * (weight[f, None] * -g_nll[f]).mean(0)
    h = np.stack([theta[0] * x, theta[1] * x], -1)
    h_ref = np.stack([theta_ref[0] * x, theta_ref[1] * x], -1)
    scale = np.mean((h_ref**2).sum(-1))
    target = RMU_SCALE * np.linalg.norm(h_ref[f], axis=-1).mean() * np.asarray(rmu_direction(2))
    forget_grad = (2 * (h[f] - target) * x[f, None]).mean(0) / scale
    retain_grad = (2 * (h[r] - h_ref[r]) * x[r, None]).mean(0) / scale
    return retain_grad + strength * forget_grad


@pytest.mark.parametrize("method", list(objectives.OBJECTIVES))
def test_objective_gradients_match_the_hand_written_ones(method):
    rng = np.random.default_rng(0)
    x = rng.normal(size=12).astype(np.float32)
    labels = rng.integers(0, 3, size=12)
    forget = np.arange(12) % 3 == 0
    theta, theta_ref = np.array([0.7, -0.4], np.float32), np.array([0.5, 0.3], np.float32)
    batch = Batch(jnp.asarray(x), jnp.asarray(labels), jnp.asarray(forget))
    reference = two_parameter_outputs(jnp.asarray(theta_ref), jnp.asarray(x))
    objective = objectives.get(method)

    def loss(t):
        return objective.loss(two_parameter_outputs(t, batch.inputs), batch, reference, 0.7)

    grad = np.asarray(jax.grad(loss)(jnp.asarray(theta)))
    expected = hand_gradients(method, theta, theta_ref, x, labels, forget, 0.7)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


REQUIRED = (
    "capability_pretrained",
    "capability_unlearned",
    "never_learned_capability_pretrained",
    "n_histories",
)
REQUIRED_BY_KIND = (
    "capability_relearned",
    "recovered_fraction",
    "never_learned_capability",
    "steps_to_half_recovery",
    "steps_to_half_never_learned",
    "alignment_with_v_unlearn_step100",
)


def tiny_relearning_config(config):
    """The relearning experiment at tiny size: 2 seeds, NPO at strength 1 only, 8 unlearning
    steps, k = 1 and 64, 6 relearning steps."""
    return dataclasses.replace(
        config,
        size="tiny",
        seeds=2,
        methods=("npo",),
        strengths=(1.0,),
        unlearn_depths=(8,),
        headline_depth=8,
        forget_examples=(1, 64),
        relearn_steps=6,
        drift_step=6,
    )


def test_the_experiment_writes_every_promised_field_computed_from_its_runs(tmp_path):
    """End to end at tiny size, checked exactly against the runs' own outputs (what the sweep
    returned to `summarise`): world 0 learned the capability, world 1 never did, and every
    number pairs them by seed. No direction is asserted: the tiny preset's 40 pretraining steps
    leave the capability barely learned (forget accuracy 0.19-0.63 over seeds 0-7, beside the
    never-learned model's), and unlearning and relearning move its probability by < 0.01."""
    from experiments import relearning

    seen = {}

    def summarise(config, results):
        seen.update(results)
        return relearning.summarise(config, results)

    store = ResultStore(tmp_path / "store")
    spied = dataclasses.replace(relearning.EXPERIMENT, summarise=summarise)
    config = tiny_relearning_config(relearning.Config())
    numbers = run_experiment(spied, config, out_dir=tmp_path, store=store, progress=False)
    assert (tmp_path / "relearning.png").exists()
    report = json.loads((tmp_path / "relearning.json").read_text())
    assert report["n_histories"] == (2 + 1) * 1 * 1 * 2 and "wall_s" in report
    kinds = ("forget_1", "forget_64", "related", "unrelated", "retain")
    entry = numbers["mlp"]["npo"]
    assert all(field in entry for field in REQUIRED)
    for kind in kinds:
        assert all(field in entry["by_kind"][kind] for field in REQUIRED_BY_KIND)
    assert "anchors" in numbers
    res = seen["mlp"]  # (world, method, strength, seed[, depth[, kind]])
    assert res.axis_values("world").tolist() == ["capability", "never_learned"]
    assert not res.diverged.any()

    def raw(name):  # (world, seed[, depth[, kind]]) of the one method and strength
        return np.asarray(res[name], dtype=float)[:, 0, 0]

    acc_p = raw("pretrained/forget_accuracy")
    acc_u = raw("unlearned/forget_accuracy")[:, :, 0]
    acc_r = raw("relearned/forget_accuracy")[:, :, 0]  # (world, seed, kind)
    means = {
        "capability_pretrained.accuracy": acc_p[0],
        "never_learned_capability_pretrained": acc_p[1],
        "capability_unlearned.accuracy": acc_u[0],
    }
    for k, kind in enumerate(kinds):
        relearned, never = acc_r[0, :, k], acc_r[1, :, k]
        means[f"by_kind.{kind}.capability_relearned.accuracy"] = relearned
        means[f"by_kind.{kind}.never_learned_capability.accuracy"] = never
        means[f"by_kind.{kind}.recovered_fraction"] = relearned / acc_p[0]
        means[f"by_kind.{kind}.advantage_over_never_learned"] = relearned - never
    for path, values in means.items():
        reported = functools.reduce(dict.__getitem__, path.split("."), entry)["mean"]
        assert reported == pytest.approx(values.mean(), abs=1e-12), path
    # The unrelated relearning is the same-basis null: its own excess over it is exactly 0.
    assert entry["by_kind"]["unrelated"]["alignment_minus_unrelated_null"]["mean"] == 0.0
    control = seen[relearning.seen_inputs_label("mlp")]
    assert control.axis_values("world").tolist() == [relearning.SEEN_INPUTS]
    assert numbers["mlp"]["seen_inputs_n_histories"] == 2
    check_seen_inputs_control(entry["seen_inputs_control"], res, control, kinds)
    check_hidden_capability_claim(relearning, numbers, res, control, kinds.index("forget_64"))


def check_seen_inputs_control(entry, res, control, kinds) -> None:
    """The seen-inputs control's numbers against the runs' own outputs, paired by seed with the
    unlearned model and the never-learned control of the main sweep."""
    assert not control.diverged.any()
    main = np.asarray(res["relearned/forget_accuracy"], dtype=float)[:, 0, 0, :, 0]
    decoy = {n: np.asarray(control[n], dtype=float)[0, 0, 0] for n in control.arrays}
    acc_p = np.asarray(res["pretrained/forget_accuracy"], dtype=float)[0, 0, 0]
    means = {
        "capability_pretrained": decoy["pretrained/forget_accuracy"],
        "decoy_accuracy_pretrained": decoy["pretrained/decoy_accuracy"],
        "capability_unlearned": decoy["unlearned/forget_accuracy"][:, 0],
    }
    for k, kind in enumerate(kinds):
        unlearned, never, seen = main[0, :, k], main[1, :, k], decoy["relearned/forget_accuracy"]
        seen = seen[:, 0, k]
        row = entry["by_kind"][kind]
        assert row["accuracy_per_seed"] == {
            "unlearned": unlearned.tolist(),
            "never_learned": never.tolist(),
            "seen_inputs": seen.tolist(),
        }
        means[f"by_kind.{kind}.capability_relearned.accuracy"] = seen
        means[f"by_kind.{kind}.fraction"] = seen / acc_p
        means[f"by_kind.{kind}.advantage_of_unlearned"] = unlearned - seen
        means[f"by_kind.{kind}.seen_inputs_minus_never_learned"] = seen - never
    for path, values in means.items():
        reported = functools.reduce(dict.__getitem__, path.split("."), entry)["mean"]
        assert reported == pytest.approx(values.mean(), abs=1e-12), path


def check_hidden_capability_claim(relearning, numbers, res, control, kind: int) -> None:
    """The claim file's hidden-capability claim reads the per-seed lists the experiment writes:
    its estimate is the mean paired difference unlearned - seen-inputs at k = 64."""
    claim = {c.id: c for c in relearning.EXPERIMENT.claims}["relearning-hidden-capability-npo"]
    record = claims.evaluate(claim, numbers)
    unlearned = np.asarray(res["relearned/forget_accuracy"], dtype=float)[0, 0, 0, :, 0, kind]
    seen = np.asarray(control["relearned/forget_accuracy"], dtype=float)[0, 0, 0, :, 0, kind]
    assert record["estimate"] == pytest.approx(np.mean(unlearned - seen), abs=1e-12)
    assert record["n"] == 2 and record["preregistered"]


@pytest.mark.parametrize("world_name", list(WORLDS))
def test_relearning_data_matches_its_exact_marginals(world_name):
    """The mixture of pool examples and benign inputs, against `marginals` (5 standard errors)."""
    world = WORLDS[world_name]
    knobs = WorldKnobs(relearn_forget_share=0.5, relearn_examples=16, benign_overlap=0.3)
    n = 4000
    batch = jax.jit(lambda key: world.sample(knobs, "relearn", key, n))(jax.random.key(2))
    exact, empirical = world.marginals(knobs, "relearn"), world.empirical_marginals(batch)
    count = n * (world.prompt_length if isinstance(world, TokenWorld) else 1)
    p = np.asarray(exact["features" if "features" in exact else "tokens"], dtype=float)
    seen = np.asarray(empirical["features" if "features" in empirical else "tokens"])
    assert np.all(np.abs(seen - p) <= 5 * np.sqrt(p * (1 - p) / count) + 2e-3)


# -- the relearning instrument's statistics (`gravity.instruments.capability`,
# `gravity.instruments.recovery`)


def plain_censored_median(times):
    """The reference: `np.median` with not-reached times as +inf (the middle pair averaged)."""
    t = np.asarray(times, dtype=float)
    t = t[~np.isnan(t)]
    return float(np.median(t)) if t.size else float("nan")


@settings(max_examples=200, deadline=None)
@given(
    times=st.lists(
        st.one_of(st.integers(1, 100).map(float), st.just(np.inf), st.just(np.nan)),
        min_size=1,
        max_size=40,
    )
)
def test_kaplan_meier_median_equals_the_plain_median_under_common_censoring(times):
    """Every run censored at the same horizon (the end of relearning): the Kaplan-Meier median
    is the plain median whenever that is observed, and censored exactly when it is not."""
    out = capability.censored_median(times, horizon=100.0)
    plain = plain_censored_median(times)
    if np.isnan(plain):
        assert out["n"] == 0 and out["censored"]
    elif np.isinf(plain):
        assert out["censored"] and out["median"] == 100.0
    else:
        assert not out["censored"] and out["median"] == plain


def test_km_median_midpoint_hand_examples():
    flat_then_escape = escape.kaplan_meier([10.0, 20.0, 30.0, 40.0], [True] * 4)
    assert capability.km_median_midpoint(flat_then_escape) == 25.0
    flat_to_the_end = escape.kaplan_meier([10.0, 20.0, 100.0, 100.0], [True, True, False, False])
    assert capability.km_median_midpoint(flat_to_the_end) == np.inf
    through_half = escape.kaplan_meier([10.0, 20.0, 20.0, 30.0, 40.0], [True] * 5)
    assert capability.km_median_midpoint(through_half) == 20.0


def test_first_crossing_is_the_first_record_at_or_past_the_threshold():
    values = np.array([[0.1, 0.5, 0.9], [0.1, 0.2, 0.3], [0.9, 0.9, 0.9]])
    times = capability.first_crossing(values, [1, 4, 16], [0.5, 0.5, np.nan])
    np.testing.assert_array_equal(times, [4, np.inf, np.nan])
    assert capability.censored_median_text(capability.censored_median(times, 16)) == ">16"


def test_relearn_kinds_and_their_history():
    world = WORLDS["feature"]
    kinds = capability.relearn_kinds((1, 4), world)
    assert [k.name for k in kinds] == ["forget_1", "forget_4", "related", "unrelated", "retain"]
    assert kinds[-1].benign_overlap == 1 / world.n_topics
    with pytest.raises(ConfigError, match="forget_examples"):
        capability.relearn_kinds((world.forget_pool + 1,), world)
    spec = capability.unlearn_relearn_spec(presets.tiny_spec("mlp"), "npo", (3, 8), 6, 2)
    assert spec.phase_names == ("pretrain", "unlearn", "relearn") and spec.world.capability
    assert spec.phase("unlearn").snapshots == (3,) and spec.phase("relearn").snapshots == (2,)
    assert spec.phase("relearn").steps == 6 and spec.phase("unlearn").objective == "npo"


def test_forget_activation_size_is_the_forget_probes_activations():
    spec = capability.unlearn_relearn_spec(presets.tiny_spec("mlp"), "npo", (3,), 4, 4)
    net = network(spec.model, spec.world)
    probes = capability.capability_probes(spec.world, WorldKnobs(), spec.n_probes)
    _, acts = capability.capability(net, net.init(jax.random.key(0)), probes)
    assert capability.forget_activation_size(spec) == acts.size


def test_wilcoxon_p_needs_five_nonzero_pairs():
    assert np.isnan(recovery.wilcoxon_p([0.1, 0.2, 0.0, np.nan, 0.3, 0.4]))
    d = [0.1, 0.25, -0.05, 0.3, 0.4, 0.2]
    assert recovery.wilcoxon_p(d) == pytest.approx(scipy.stats.wilcoxon(d).pvalue)


def synthetic_relearning(seeds: int = 3) -> dict:
    """`RelearningMeasure`-shaped outputs (world, strength 1, seed, depth 1[, kind 2[, record]])
    with known values: P 0.8, U 0.2; relearning reaches 0.6 (learned) or 0.3 (never learned)."""
    shape = (2, 1, seeds)
    trajectory = np.broadcast_to([0.2, 0.4, 0.6], (*shape, 1, 2, 3)).copy()
    trajectory[1] = 0.25
    relearned = np.stack([np.full((1, seeds, 1, 2), 0.6), np.full((1, seeds, 1, 2), 0.3)])
    return {
        **{f"pretrained/{m}": np.full(shape, 0.8) for m in METRICS},
        **{f"unlearned/{m}": np.full((*shape, 1), 0.2) for m in METRICS},
        **{f"relearned/{m}": relearned for m in METRICS},
        "trajectory": trajectory,
        "alignment": np.broadcast_to([0.9, 0.5], (*shape, 1, 2)),
    }


METRICS = ("forget_accuracy", "forget_probability", "related_accuracy", "retain_accuracy")


KINDS = (
    capability.RelearnKind("forget_4", 1.0, 4, 0.0),
    capability.RelearnKind("unrelated", 0.0, 1, 0.0),
)


def test_recovery_numbers_on_known_outputs():
    steps = np.array([1, 2, 4])
    out = recovery.method_recovery(synthetic_relearning(), steps, KINDS, (1.0,), (10,), (0, 0))
    forget = out["by_kind"]["forget_4"]
    assert forget["recovered_fraction"]["mean"] == pytest.approx(0.75)
    assert forget["never_learned_fraction"]["mean"] == pytest.approx(0.375)
    assert forget["recovered_gap_fraction"]["mean"] == pytest.approx(4 / 6)
    assert forget["steps_to_half_recovery"]["median"] == 4.0
    assert forget["steps_to_half_never_learned"]["censored"]
    assert forget["alignment_minus_unrelated_null"]["mean"] == pytest.approx(0.4)
    assert out["n_histories"] == 6
    grid = out["grid"]["strength=1,steps=10"]["recovered_fraction"]
    assert grid == {"forget_4": pytest.approx(0.75), "unrelated": pytest.approx(0.75)}


def test_resistance_ranking_puts_the_least_recovered_first():
    def method(fraction):
        return {"by_kind": {k.name: {"recovered_fraction": {"mean": fraction}} for k in KINDS}}

    ranking = recovery.resistance_ranking({"a": method(0.7), "b": method(0.1)}, KINDS)
    assert [row["method"] for row in ranking] == ["b", "a"]
    assert ranking[0]["recovered_fraction_unrelated"] == 0.1


# -- the seen-inputs control: pretraining answers the forget inputs by a decoy rule

SEEN_WORLDS = {name: dataclasses.replace(w, decoy_pretraining=True) for name, w in WORLDS.items()}
KINDS_DATA = ("pretrain", "unlearn", "relearn", "retain", "hazard")


@pytest.mark.parametrize("world_name", list(WORLDS))
@pytest.mark.parametrize("kind", KINDS_DATA)
def test_the_decoy_changes_only_pretrainings_hazardous_answers(world_name, kind):
    """Same key and knobs: every data kind gives the capability world's inputs; pretraining's
    hazardous inputs (and only they) are answered by the decoy rule, every one of them."""
    world, decoy = WORLDS[world_name], SEEN_WORLDS[world_name]
    knobs = WorldKnobs(harm_prob=1.0, relearn_forget_share=0.5, relearn_examples=16)
    plain, seen = (w.sample(knobs, kind, jax.random.key(3), 256) for w in (world, decoy))
    np.testing.assert_array_equal(np.asarray(plain.inputs), np.asarray(seen.inputs))
    hazardous = np.asarray(plain.hazardous)
    np.testing.assert_array_equal(hazardous, np.asarray(seen.hazardous))
    expected = np.asarray(plain.labels)
    if kind == "pretrain":
        assert hazardous.any() and not hazardous.all()
        expected = np.where(hazardous, np.asarray(decoy.decoy_answers(plain.inputs)), expected)
        assert np.any(np.asarray(seen.labels)[hazardous] != np.asarray(plain.labels)[hazardous])
    np.testing.assert_array_equal(np.asarray(seen.labels), expected)


def test_the_decoy_rule_is_fixed_by_the_world_seed_and_is_none_of_its_other_rules():
    world = WORLDS["feature"]
    again = FeatureWorld(n_topics=2, features_per_topic=4, n_classes=4, capability=True)
    np.testing.assert_array_equal(world.decoy_teacher, again.decoy_teacher)
    other_seed = dataclasses.replace(world, seed=1).decoy_teacher
    for other in (other_seed, world.capability_teacher, world.teacher):
        assert not np.allclose(world.decoy_teacher, other)


@pytest.mark.parametrize("model", ["mlp", "transformer"])
def test_the_experiments_decoy_differs_from_the_capability_and_covers_the_forget_inputs(model):
    """In the relearning experiment's world: on the forget probes and the forget pool the decoy
    agrees with the capability's answer about as often as chance (at most 2 / n_classes), and
    answers every input with a task answer, using at least half the classes."""
    from experiments import relearning

    spec = relearning.history_spec(relearning.Config(), model, "npo", seen_inputs=True)
    world, knobs = spec.world, WorldKnobs()
    assert world.capability and world.decoy_pretraining
    probes = capability.capability_probes(world, knobs, spec.n_probes)
    pool = world.forget_pool_batch(knobs)
    decoy = np.asarray(world.decoy_answers(probes.forget.inputs))
    np.testing.assert_array_equal(decoy, np.asarray(probes.decoy))
    for batch in (probes.forget, pool):  # labelled by the capability's rule
        answers = np.asarray(world.decoy_answers(batch.inputs))
        assert np.mean(answers == np.asarray(batch.labels)) <= 2 / world.n_classes
        assert answers.min() >= 0 and answers.max() < world.n_classes
        assert np.unique(answers).size >= world.n_classes // 2


def test_only_the_seen_inputs_world_has_decoy_probes_and_accuracy():
    spec = capability.unlearn_relearn_spec(presets.tiny_spec("mlp"), "npo", (3,), 4, 4)
    seen_spec = capability.unlearn_relearn_spec(
        presets.tiny_spec("mlp"), "npo", (3,), 4, 4, decoy_pretraining=True
    )
    assert spec.world == dataclasses.replace(seen_spec.world, decoy_pretraining=False)
    net = network(spec.model, spec.world)
    params = net.init(jax.random.key(0))
    plain = capability.capability_probes(spec.world, WorldKnobs(), spec.n_probes)
    seen = capability.capability_probes(seen_spec.world, WorldKnobs(), spec.n_probes)
    assert (
        plain.decoy is None and "decoy_accuracy" not in capability.capability(net, params, plain)[0]
    )
    for field in ("forget", "related", "retain"):
        for a, b in zip(getattr(plain, field), getattr(seen, field), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    metrics = capability.capability(net, params, seen)[0]
    logits, _ = net.apply(params, seen.forget.inputs)
    expected = np.mean(np.argmax(np.asarray(logits), -1) == np.asarray(seen.decoy))
    assert float(metrics["decoy_accuracy"]) == pytest.approx(expected)


def test_the_seen_inputs_pretraining_teaches_the_decoy_not_the_capability():
    """The tiny preset pretrained as in `tiny_unlearning_spec`, in the capability world and in
    its seen-inputs world, same seeds: each learns its own rule on the forget probes."""
    spec = tiny_unlearning_spec("npo")
    seen_world = dataclasses.replace(spec.world, decoy_pretraining=True)
    net = network(spec.model, spec.world)
    knobs = presets.standard_knobs(spec, 3e-3, harm_prob=1.0)

    def run(seed, world):
        this = dataclasses.replace(spec, world=world)
        trunk = history.run_trunk(jax.random.key(seed), this, knobs, "pretrain")
        probes = capability.capability_probes(seen_world, knobs.world, spec.n_probes)
        return capability.capability(net, trunk.state.params, probes)[0]

    seeds = jnp.arange(SEEDS)
    learned = jax.device_get(jax.jit(jax.vmap(lambda s: run(s, spec.world)))(seeds))
    seen = jax.device_get(jax.jit(jax.vmap(lambda s: run(s, seen_world)))(seeds))
    chance = 1 / spec.world.n_classes
    assert np.all(seen["decoy_accuracy"] > learned["decoy_accuracy"] + 0.2)
    assert np.all(learned["forget_accuracy"] > seen["forget_accuracy"] + 0.2)
    assert seen["decoy_accuracy"].mean() > chance + 0.25


def synthetic_arm(acc_r, trajectory, acc_p=0.8, acc_u=0.2, decoy=None) -> dict:
    """One arm of `seen_inputs_recovery` (seed, depth 1[, kind 2[, record 3]]), 3 seeds, with
    per-seed relearned accuracy `acc_r` on both kinds and a trajectory of the forget
    probability (the same on both kinds); metrics other than forget accuracy copy it."""
    acc_r = np.asarray(acc_r, dtype=float)
    arm = {
        **{f"pretrained/{m}": np.full(3, acc_p) for m in METRICS},
        **{f"unlearned/{m}": np.full((3, 1), acc_u) for m in METRICS},
        **{f"relearned/{m}": np.repeat(acc_r[:, None, None], 2, 2) for m in METRICS},
        "trajectory": np.broadcast_to(trajectory, (3, 1, 2, 3)).copy(),
    }
    if decoy is not None:
        arm["pretrained/decoy_accuracy"] = np.full(3, decoy)
        arm["unlearned/decoy_accuracy"] = np.full((3, 1), decoy / 2)
        arm["relearned/decoy_accuracy"] = np.full((3, 1, 2), decoy / 4)
    return arm


def test_seen_inputs_recovery_on_known_outputs():
    """Unlearned 0.6-0.7, never-learned 0.3, seen-inputs 0.4 after relearning; half recovery
    (0.5, between P 0.8 and U 0.2) at step 2 unlearned, step 4 seen-inputs."""
    steps = np.array([1, 2, 4])
    arms = {
        "unlearned": synthetic_arm([0.6, 0.7, 0.6], [0.2, 0.5, 0.6]),
        "never_learned": synthetic_arm([0.3, 0.3, 0.3], [0.2, 0.2, 0.3]),
        "seen_inputs": synthetic_arm([0.4, 0.4, 0.4], [0.2, 0.3, 0.5], acc_p=0.1, decoy=0.8),
    }
    out = recovery.seen_inputs_recovery(arms, steps, KINDS, depth=0)
    assert out["capability_pretrained"]["mean"] == pytest.approx(0.1)
    assert out["decoy_accuracy_pretrained"]["mean"] == pytest.approx(0.8)
    assert out["decoy_accuracy_unlearned"]["mean"] == pytest.approx(0.4)
    kind = out["by_kind"]["forget_4"]
    assert kind["fraction"]["mean"] == pytest.approx(0.5)
    assert kind["decoy_accuracy_relearned"]["mean"] == pytest.approx(0.2)
    assert kind["steps_to_half"]["median"] == 4.0 and not kind["steps_to_half"]["censored"]
    assert kind["advantage_of_unlearned"]["mean"] == pytest.approx(7 / 30)
    assert kind["advantage_of_unlearned"]["n"] == 3
    assert kind["seen_inputs_minus_never_learned"]["mean"] == pytest.approx(0.1)
    assert kind["accuracy_per_seed"]["unlearned"] == [0.6, 0.7, 0.6]
    estimate = claims.from_paired(
        kind["accuracy_per_seed"]["unlearned"], kind["accuracy_per_seed"]["seen_inputs"]
    )
    assert estimate.value == pytest.approx(7 / 30) and estimate.interval[0] > 0
    assert claims.beats_control()(estimate) == claims.SUPPORTED
