"""The arena's defences that act during or after benign fine-tuning (issue #23): each hook's exact
math on small pytrees (RESTA's safety vector, Antidote's Wanda pruning and its exact layer
inputs, the safety-critical freezing order, Lisa's alternation and anchor, Qi et al.'s
constrained loss), then one tiny history per defence through the engine, every arm in one
compiled program: each runs and moves the final parameters away from plain fine-tuning, and at
strength 0 (where that is the identity) it is plain fine-tuning bit for bit."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gravity import defences
from gravity.defences import critical, lisa, pruning, resta, tokenwise
from gravity.defences.arms import labelled_arms
from gravity.engine import history, presets
from gravity.engine.defence import Defence
from gravity.engine.history import run_history, run_trunk
from gravity.engine.models import network
from gravity.engine.spec import phase_tag, stack_knobs, with_phase

NEW = ("lisa", "resta", "antidote", "critical_freeze", "tokenwise")
IDENTITY_AT_ZERO = ("resta", "antidote", "critical_freeze", "tokenwise")
STRENGTHS = {"lisa": 1.0, "resta": 1.0, "antidote": 0.3, "critical_freeze": 0.3, "tokenwise": 2.0}


def test_new_defences_are_appended_after_the_existing_ones():
    existing = ("none", "rehearsal", "ewc", "l2sp", "safelora", "freeze")
    assert defences.names()[: len(existing)] == existing
    assert defences.names()[len(existing) : len(existing) + len(NEW)] == NEW


def test_default_hooks_carry_nothing_and_add_no_batch_loss():
    plain = Defence("plain", "no hooks")
    state = {"a": jnp.ones(2)}
    assert plain.carry(state, state) is None
    assert plain.advance(state, None, state, 3) == (state, None)
    assert plain.batch_loss(state, state, 1.0, None, None) is None


# RESTA


def test_resta_adds_exactly_gamma_times_the_safety_vector():
    theta_s = {"w": jnp.asarray([[1.0, 2.0], [3.0, 4.0]]), "b": jnp.asarray([0.5, -0.5])}
    theta_h = {"w": jnp.asarray([[0.0, 2.5], [1.0, 4.0]]), "b": jnp.asarray([0.25, 0.0])}
    tuned = {"w": jnp.asarray([[0.3, 0.1], [0.7, -2.0]]), "b": jnp.asarray([1.0, 2.0])}
    vector = resta.RESTA.state(defences.Setup(None, theta_s, theta_h))
    same = resta.RESTA.edit(tuned, vector, 0.0)
    for a, b in zip(jax.tree.leaves(same), jax.tree.leaves(tuned), strict=True):
        np.testing.assert_array_equal(a, b)
    added = resta.RESTA.edit(tuned, vector, 1.0)
    expected = jax.tree.map(lambda t, s, h: t + (s - h), tuned, theta_s, theta_h)
    for a, b in zip(jax.tree.leaves(added), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(a, b)
    half = resta.RESTA.edit(tuned, vector, 0.5)
    np.testing.assert_allclose(half["w"], tuned["w"] + 0.5 * (theta_s["w"] - theta_h["w"]))


# Antidote (pruning)


def test_top_mask_zeroes_the_floor_count_of_the_largest_scores():
    score = jnp.asarray([[0.1, 0.9, 0.5], [0.7, 0.2, 0.8], [0.3, 0.6, 0.4], [1.0, 0.0, 0.05]])
    for sparsity in (0.0, 0.25, 0.5, 0.7, 1.0):
        mask = np.asarray(pruning.top_mask(score, sparsity))
        count = math.floor(sparsity * score.size)
        assert mask.sum() == count
        if 0 < count < score.size:  # exactly the top scores
            assert np.asarray(score)[mask].min() > np.asarray(score)[~mask].max()
    ranks = pruning.descending_ranks(jnp.asarray([2.0, 5.0, 2.0, 1.0]))
    np.testing.assert_array_equal(ranks, [1, 0, 2, 3])  # ties by position


def test_prune_zeroes_only_the_top_scored_kernel_entries_of_each_matrix():
    params = {
        "a": {"kernel": jnp.arange(1.0, 13.0).reshape(3, 4), "bias": jnp.ones(4)},
        "b": {"kernel": jnp.arange(1.0, 9.0).reshape(2, 2, 2), "bias": jnp.ones(2)},
    }
    scores = {("a",): params["a"]["kernel"], ("b",): -params["b"]["kernel"]}
    pruned = pruning.prune(params, scores, 0.5)
    np.testing.assert_array_equal(pruned["a"]["bias"], params["a"]["bias"])
    np.testing.assert_array_equal(pruned["b"]["bias"], params["b"]["bias"])
    a, b = np.asarray(pruned["a"]["kernel"]), np.asarray(pruned["b"]["kernel"])
    assert (a == 0).sum() == 6 and np.all(a.reshape(-1)[6:] == 0) and np.all(a.reshape(-1)[:6] > 0)
    assert (b == 0).sum() == 4 and np.all(b.reshape(-1)[:4] == 0) and np.all(b.reshape(-1)[4:] > 0)
    unpruned = pruning.prune(params, scores, 0.0)
    for x, y in zip(jax.tree.leaves(unpruned), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(x, y)


def _tiny_net(kind, **model_changes):
    spec = presets.standard_spec(kind, "tiny")
    net = network(dataclasses.replace(spec.model, **model_changes), spec.world)
    probes = spec.world.probe_set(presets.standard_knobs(spec).world, spec.n_probes)
    return net, net.init(jax.random.key(0)), probes.hazard.inputs


def _rows(a):
    return np.asarray(a, dtype=np.float64).reshape(-1, a.shape[-1])


def test_layer_input_norms_are_each_dense_layers_input_norms():
    """The MLP's layer inputs are its input and hidden activations; the transformer's are read
    off the layers before them (captured), over every token a layer reads: with `readout_only`
    (the presets') the last block's query reads the last token alone."""
    net, params, inputs = _tiny_net("mlp")
    norms = jax.jit(lambda p: pruning.layer_input_norms(net, p, inputs))(params)
    _, acts = net.apply(params, inputs)
    expected = {
        ("hidden", 0): inputs,
        ("hidden", 1): acts["hidden1"],
        ("readout",): acts["hidden2"],
    }
    assert set(norms) == set(expected)
    for path, layer_input in expected.items():
        np.testing.assert_allclose(
            norms[path], np.linalg.norm(_rows(layer_input), axis=0), rtol=1e-5, atol=1e-6
        )
    for readout_only in (False, True):
        net, params, inputs = _tiny_net("transformer", readout_only=readout_only)
        norms = jax.jit(
            lambda p, net=net, inputs=inputs: pruning.layer_input_norms(net, p, inputs)
        )(params)
        model = nnx.merge(net.graphdef, params)
        _, captured = nnx.capture(model, nnx.Intermediate, method_outputs=nnx.Intermediate)(inputs)
        block = captured["blocks"][0]

        def out(node):
            return node["__call__"].get_value()[0]

        read = (lambda a: a[:, -1:]) if readout_only else (lambda a: a)  # noqa: E731
        expected = {
            ("unembed",): out(captured["final_norm"]),
            ("blocks", 0, "attention", "query"): read(out(block["attention_norm"])),
            ("blocks", 0, "mlp_in"): out(block["mlp_norm"]),
            ("blocks", 0, "mlp_out"): jax.nn.gelu(out(block["mlp_in"])),
        }
        assert len(norms) == 7 and norms[("blocks", 0, "attention", "out")].shape == (2, 4)
        for path, layer_input in expected.items():
            np.testing.assert_allclose(
                norms[path],
                np.linalg.norm(_rows(layer_input), axis=0),
                rtol=1e-4,
                atol=1e-5,
                err_msg=f"{path}, readout_only={readout_only}",
            )


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_reading_layer_outputs_patches_no_class(kind, monkeypatch):
    """The sweep runner traces two programs at once in threads: reading a layer's output must
    leave every class's `__call__` as it is while it runs (`nnx.capture`'s method outputs wrap
    the class, and the other thread's modules then fail to sow: the arena's guard program died
    of it)."""
    net, params, inputs = _tiny_net(kind)
    original = nnx.Linear.__call__
    unpatched = []

    def spy(self, *args, **kwargs):
        unpatched.append(nnx.Linear.__call__ is spy)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(nnx.Linear, "__call__", spy)
    pruning.layer_input_norms(net, params, inputs)
    assert unpatched and all(unpatched)


def test_wanda_scores_are_weight_magnitude_times_input_norm():
    net, params, inputs = _tiny_net("mlp")
    scores = pruning.wanda_scores(net, params, inputs)
    _, acts = net.apply(params, inputs)
    kernel = params["hidden"][1]["kernel"].get_value()
    expected = np.abs(kernel) * np.linalg.norm(_rows(acts["hidden1"]), axis=0)[:, None]
    np.testing.assert_allclose(scores[("hidden", 1)], expected, rtol=1e-5, atol=1e-6)


# Safety-critical weights frozen


def test_freeze_ranks_put_utility_critical_weights_last_and_freeze_the_ceiling_count():
    safety = {"m": {"kernel": jnp.asarray([[0.9, 0.8], [0.1, 0.7], [0.6, 0.2]])}, "v": jnp.ones(3)}
    utility = {"m": {"kernel": jnp.asarray([[5.0, 0.0], [0.0, 4.0], [0.0, 0.0]])}, "v": jnp.ones(3)}
    plain = critical.freeze_ranks(safety, utility, 0.0)  # by safety score alone
    np.testing.assert_array_equal(plain["m"]["kernel"], [[0, 1], [5, 2], [3, 4]])
    isolated = critical.freeze_ranks(safety, utility, 2 / 6)  # the top 2 by utility go last
    np.testing.assert_array_equal(isolated["m"]["kernel"], [[4, 0], [3, 5], [1, 2]])
    np.testing.assert_array_equal(isolated["v"], [critical.UNSCORED] * 3)
    updates = {"m": {"kernel": jnp.ones((3, 2))}, "v": jnp.ones(3)}
    for share in (0.0, 0.1, 0.34, 0.5, 1.0):
        frozen = critical.CRITICAL_FREEZE.update(updates, isolated, share)
        zeroed = np.asarray(frozen["m"]["kernel"]) == 0
        assert zeroed.sum() == math.ceil(share * 6)
        assert np.all(np.asarray(isolated["m"]["kernel"])[zeroed] < math.ceil(share * 6))
        np.testing.assert_array_equal(frozen["v"], updates["v"])


def test_snip_scores_split_the_safety_batch_into_hazardous_and_other_rows():
    net, params, _ = _tiny_net("mlp")
    spec = presets.standard_spec("mlp", "tiny")
    batch = spec.world.sample(presets.standard_knobs(spec).world, "safety", jax.random.key(3), 64)
    assert 0 < int(batch.hazardous.sum()) < 64
    safety, utility = critical.snip_scores(net, params, batch)
    hazardous = jax.tree.map(lambda a: a[batch.hazardous], batch)

    def loss(p):
        logits = net.apply(p, hazardous.inputs)[0]
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(logits)), hazardous.labels])

    expected = jax.tree.map(lambda p, g: jnp.abs(p * g), params, jax.grad(loss)(params))
    for a, b in zip(jax.tree.leaves(safety), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    readout = [np.asarray(s["readout"]["kernel"].get_value()) for s in (safety, utility)]
    assert not np.allclose(*readout)


# Lisa


def test_lisa_alternates_alignment_and_benign_steps_and_anchors_at_each_switch():
    steps = np.arange(12)
    np.testing.assert_array_equal(lisa.aligning(steps, 2, 3), [1, 1, 0, 0, 0] * 2 + [1, 1])
    defence = lisa.Lisa("lisa_test", "", align_steps=2, benign_steps=3)
    anchor = defence.carry(None, {"w": jnp.asarray(-1.0)})
    anchors, aligning = [], []
    for t in steps:
        state, anchor = defence.advance(None, anchor, {"w": jnp.asarray(float(t))}, t)
        anchors.append(float(state.anchor["w"]))
        aligning.append(bool(state.aligning))
    # Switches at steps 0 (the phase's start), 2, 5, 7, 10: the parameters before the step.
    assert anchors == [0, 0, 2, 2, 2, 5, 5, 7, 7, 7, 10, 10]
    assert aligning == [True, True, False, False, False] * 2 + [True, True]


def test_lisa_swaps_in_a_safety_batch_on_alignment_steps_and_pulls_to_its_anchor():
    spec = presets.standard_spec("mlp", "tiny")
    world, knobs = spec.world, presets.standard_knobs(spec).world
    benign = world.sample(knobs, "benign", jax.random.key(0), 16)
    key = jax.random.key(1)
    anchor = {"w": jnp.asarray([1.0, 2.0])}
    for flag, expected in ((True, world.sample(knobs, "safety", key, 16)), (False, benign)):
        state = lisa.LisaStep(jnp.asarray(flag), anchor)
        swapped = lisa.LISA.batch(state, world, knobs, key, benign, 1.0)
        for a, b in zip(jax.tree.leaves(swapped), jax.tree.leaves(expected), strict=True):
            np.testing.assert_array_equal(a, b)
    state = lisa.LisaStep(jnp.asarray(True), anchor)
    assert float(lisa.LISA.loss(anchor, state, 3.0)) == 0.0
    grad = jax.grad(lisa.LISA.loss)({"w": jnp.asarray([2.0, 0.0])}, state, 3.0)
    np.testing.assert_allclose(grad["w"], [3.0, -6.0])


# Token-wise constraint


def test_tokenwise_penalty_turns_cross_entropy_into_qi_et_als_constrained_loss():
    logits = jax.random.normal(jax.random.key(0), (6, 5))
    reference = jax.random.normal(jax.random.key(1), (6, 5))
    labels = jnp.asarray([0, 1, 2, 3, 4, 0])

    def cross_entropy(x):
        return -jnp.mean(jax.nn.log_softmax(x)[jnp.arange(6), labels])

    for beta in (0.1, 0.5, 2.0):
        penalised = jax.grad(
            lambda x, b=beta: (
                cross_entropy(x) + tokenwise.constraint_penalty(x, reference, labels, b)
            )
        )(logits)
        constrained = jax.grad(tokenwise.constrained_loss)(logits, reference, labels, beta)
        np.testing.assert_allclose(penalised, constrained, rtol=1e-5, atol=1e-6)
    assert float(tokenwise.constraint_penalty(logits, reference, labels, 0.0)) == 0.0
    assert float(tokenwise.constraint_penalty(reference, reference, labels, 2.0)) == 0.0
    zero_grad = jax.grad(tokenwise.constraint_penalty)(logits, reference, labels, 0.0)
    assert float(jnp.max(jnp.abs(zero_grad))) == 0.0
    assert float(tokenwise.constraint_penalty(logits, reference, labels, 2.0)) > 0.0


# End to end: one tiny history per defence, every arm in one compiled program


SPEC = with_phase(presets.standard_spec("mlp", "tiny"), "benign", defences=NEW)
KNOBS = presets.standard_knobs(SPEC)


def _arms():
    return labelled_arms(KNOBS, {name: (0.0, STRENGTHS[name]) for name in NEW})


@pytest.fixture(scope="module")
def histories():
    """The tiny MLP's trunk through safety alignment and every arm's benign phase from it."""
    key = jax.random.key(0)
    trunk = jax.jit(run_trunk, static_argnums=(1, 3))(key, SPEC, KNOBS, "safety")
    arms = _arms()
    out = jax.jit(jax.vmap(lambda k: run_history(key, SPEC, k, start=trunk)))(
        stack_knobs(list(arms.values()))
    )
    finals = {
        label: jax.tree.map(lambda a, i=i: np.asarray(a[i]), out["params"]["benign"])
        for i, label in enumerate(arms)
    }
    assert not np.asarray(out["diverged"]).any()
    return trunk.state.boundaries, finals, out


def _leaves(tree):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]


def _differ(a, b) -> bool:
    return any(not np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b), strict=True))


@pytest.mark.parametrize("name", NEW)
def test_each_defence_changes_the_final_parameters(histories, name):
    _, finals, _ = histories
    moved = finals[f"{name}@{STRENGTHS[name]:g}"]
    assert _differ(moved, finals["none"])


@pytest.mark.parametrize("name", IDENTITY_AT_ZERO)
def test_each_defence_at_strength_zero_is_plain_fine_tuning(histories, name):
    _, finals, _ = histories
    for a, b in zip(_leaves(finals[f"{name}@0"]), _leaves(finals["none"]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_lisa_at_rho_zero_still_alternates(histories):
    """Bi-State Optimisation (rho = 0) is not plain fine-tuning, and the proximal term acts."""
    _, finals, _ = histories
    bso, lisa_rho = finals["lisa@0"], finals["lisa@1"]
    assert _differ(bso, finals["none"]) and _differ(bso, lisa_rho)


def test_resta_in_the_engine_adds_the_safety_vector_to_the_same_run(histories):
    boundaries, finals, _ = histories
    vector = resta.safety_vector(boundaries["safety"], boundaries["helpful"])
    expected = jax.tree.map(lambda p, v: p + v, finals["resta@0"], vector)
    for a, b in zip(_leaves(finals["resta@1"]), _leaves(expected), strict=True):
        np.testing.assert_array_equal(a, b)


def _kernels(tree):
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
        pruning.path_keys(p): np.asarray(v) for p, v in flat if pruning.path_keys(p)[-1] == "kernel"
    }


def _share_count(share, n, rounding):
    """floor or ceil of share * n, in float32 as the traced strength is."""
    return int(rounding(np.float32(share) * np.float32(n)))


def test_antidote_in_the_engine_prunes_the_top_wanda_scores_of_the_same_run(histories):
    """The sparsity-0.3 run is the sparsity-0 run with, in each matrix, floor(0.3 n) entries
    zeroed: those of largest Wanda score at its fine-tuned parameters on the hazardous probes."""
    _, finals, _ = histories
    plain, pruned = _kernels(finals["antidote@0"]), _kernels(finals["antidote@0.3"])
    inputs = SPEC.world.probe_set(KNOBS.world, SPEC.n_probes).hazard.inputs
    tuned = jax.tree.map(jnp.asarray, finals["antidote@0"])
    scores = pruning.wanda_scores(network(SPEC.model, SPEC.world), tuned, inputs)
    assert len(plain) == 3
    for path, kernel in plain.items():
        changed = pruned[path] != kernel
        assert changed.sum() == _share_count(0.3, kernel.size, np.floor)
        assert np.all(pruned[path][changed] == 0)
        np.testing.assert_array_equal(changed, pruning.top_mask(scores[path[:-1]], 0.3))


def test_critical_freeze_in_the_engine_keeps_the_ceiling_count_at_theta_s(histories):
    """The entries the state ranks first (from the engine's own safety batch at theta_S),
    ceil(0.3 n) per matrix, end the run exactly at theta_S (others may too: a weight into a dead
    unit gets no gradient, frozen or not)."""
    boundaries, finals, _ = histories
    phase_key = jax.random.fold_in(jax.random.key(0), phase_tag("benign"))
    fisher_key = jax.random.fold_in(phase_key, history.FISHER_TAG)
    batch = SPEC.world.sample(KNOBS.world, "safety", fisher_key, history.FISHER_BATCH)
    setup = defences.Setup(
        network(SPEC.model, SPEC.world), boundaries["safety"], boundaries["helpful"], batch
    )
    ranks = _kernels(critical.CRITICAL_FREEZE.state(setup))
    aligned, frozen = _kernels(boundaries["safety"]), _kernels(finals["critical_freeze@0.3"])
    free = _kernels(finals["none"])
    for path, kernel in aligned.items():
        mask = np.asarray(critical.frozen(ranks[path], 0.3))
        assert mask.sum() == _share_count(0.3, kernel.size, np.ceil)
        assert np.all(frozen[path][mask] == kernel[mask])
        assert (frozen[path] == kernel).sum() > (free[path] == kernel).sum()
