"""The arena's defences that act at alignment time, compiled into the safety phase (issue #23):
each term's exact math on small inputs (Vaccine's worst-case perturbation and the perturbed
forward pass, Booster's attenuation on a quadratic, RepNoise's MMD, first-order TAR's simulated
attack), then one tiny history per defence through the engine, every arm in one compiled
program: each runs, stays finite and moves theta_S away from plain alignment, and at strength 0
it is plain alignment bit for bit."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gravity import defences
from gravity.defences import booster, repnoise, tar, vaccine
from gravity.defences.arms import labelled_arms
from gravity.engine import history, presets
from gravity.engine.defence import Setup
from gravity.engine.history import run_trunk
from gravity.engine.models import network
from gravity.engine.objectives import cross_entropy
from gravity.engine.spec import phase_tag, stack_knobs, with_phase
from gravity.validation import ConfigError

NEW = ("vaccine", "booster", "booster_benign", "repnoise", "tar", "tar_benign")
STRENGTHS = {
    "vaccine": 1.0,
    "booster": 5.0,
    "booster_benign": 5.0,
    "repnoise": 1.0,
    "tar": 1.0,
    "tar_benign": 1.0,
}
MLP_SPEC = presets.standard_spec("mlp", "tiny")
MLP_KNOBS = presets.standard_knobs(MLP_SPEC)


def _leaves(tree):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]


def _allclose(a, b, **tolerance):
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        np.testing.assert_allclose(x, y, **tolerance)


def _tiny(kind, n=16):
    spec = presets.standard_spec(kind, "tiny")
    net = network(spec.model, spec.world)
    batch = spec.world.sample(presets.standard_knobs(spec).world, "safety", jax.random.key(3), n)
    return spec, net, net.init(jax.random.key(0)), batch


def _setup(spec, net, key=7):
    """A safety phase's setup (no anchors), drawing from its own key."""
    return Setup(
        net,
        None,
        None,
        world_knobs=presets.standard_knobs(spec).world,
        key=jax.random.key(key),
        phase=spec.phase("safety"),
    )


def test_alignment_defences_are_appended_after_every_existing_one():
    existing = ("none", "rehearsal", "ewc", "l2sp", "safelora", "freeze", "lisa", "resta")
    existing += ("antidote", "critical_freeze", "tokenwise")
    assert defences.names() == existing + NEW
    assert all(defences.get(name).acts_at_alignment for name in NEW)
    assert not any(defences.get(name).acts_at_alignment for name in existing[1:])


def test_only_alignment_defences_compile_into_the_safety_phase():
    with_phase(MLP_SPEC, "safety", defences=NEW)
    for refused in (("ewc",), ("vaccine", "l2sp")):
        with pytest.raises(ConfigError, match="safety.defences"):
            with_phase(MLP_SPEC, "safety", defences=refused)
    with pytest.raises(ConfigError, match="helpful.defences"):
        with_phase(MLP_SPEC, "helpful", defences=("vaccine",))
    with pytest.raises(ConfigError, match="safety.interventions"):
        with_phase(MLP_SPEC, "safety", interventions=True)


# The models' perturbation argument


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_a_zero_perturbation_is_the_plain_forward_pass(kind):
    _, net, params, batch = _tiny(kind)
    logits, acts = net.apply(params, batch.inputs)
    layer = net.config.activation_layer
    zero = {layer: jnp.zeros_like(acts[layer])}
    plain = _leaves((logits, acts))
    for a, b in zip(_leaves(net.apply(params, batch.inputs, zero)), plain, strict=True):
        np.testing.assert_array_equal(a, b)
    shift = jax.random.normal(jax.random.key(1), acts[layer].shape)
    moved_logits, moved = net.apply(params, batch.inputs, {layer: shift})
    np.testing.assert_allclose(moved[layer], acts[layer] + shift, rtol=1e-6, atol=1e-6)
    assert not np.allclose(moved_logits, logits)
    with pytest.raises(ConfigError, match="perturbations"):
        net.apply(params, batch.inputs, {"logits": jnp.zeros_like(logits)})


def test_the_mlp_perturbation_shifts_the_logits_through_the_readout():
    _, net, params, batch = _tiny("mlp")
    logits, acts = net.apply(params, batch.inputs)
    shift = jax.random.normal(jax.random.key(2), acts["hidden2"].shape)
    kernel = np.asarray(params["readout"]["kernel"].get_value())
    moved = net.apply(params, batch.inputs, {"hidden2": shift})[0]
    np.testing.assert_allclose(moved, logits + shift @ kernel, rtol=1e-5, atol=1e-5)


# Vaccine


def test_worst_case_perturbation_has_norm_rho_along_the_gradient():
    grads = {"a": jnp.asarray([[3.0, 0.0], [0.0, 4.0]]), "b": jnp.asarray([12.0])}
    eps = vaccine.worst_case_perturbation(grads, 2.0)
    np.testing.assert_allclose(eps["a"], [[6 / 13, 0.0], [0.0, 8 / 13]], rtol=1e-6)
    np.testing.assert_allclose(eps["b"], [24 / 13], rtol=1e-6)
    flat = np.concatenate([np.ravel(x) for x in _leaves(eps)])
    np.testing.assert_allclose(np.linalg.norm(flat), 2.0, rtol=1e-6)
    zero = vaccine.worst_case_perturbation(jax.tree.map(jnp.zeros_like, grads), 2.0)
    assert all(np.all(x == 0) for x in _leaves(zero))


def test_hidden_gradients_are_the_losss_gradient_at_the_layer():
    """The MLP's probe layer feeds the readout: dL/dh = (softmax - onehot) W^T / N."""
    _, net, params, batch = _tiny("mlp")
    grads = vaccine.hidden_gradients(net, params, batch, ("hidden2",))
    logits = net.apply(params, batch.inputs)[0]
    onehot = jax.nn.one_hot(batch.labels, logits.shape[-1])
    kernel = params["readout"]["kernel"].get_value()
    expected = (jax.nn.softmax(logits) - onehot) @ kernel.T / batch.labels.shape[0]
    np.testing.assert_allclose(grads["hidden2"], expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_vaccine_trains_on_the_perturbed_loss_alone(kind):
    """The phase's cross-entropy plus the hook's term is the loss under eps = rho g/|g| (value
    and gradient); at rho 0 the term is 0 with a zero gradient."""
    _, net, params, batch = _tiny(kind)
    layer = net.config.activation_layer
    rho = 0.5

    def total(p, strength):
        logits = net.apply(p, batch.inputs)[0]
        term = vaccine.VACCINE.batch_loss(p, net, strength, batch, logits)
        return cross_entropy(logits, batch.labels) + term

    grads = vaccine.hidden_gradients(net, params, batch, (layer,))
    eps = vaccine.worst_case_perturbation(grads, rho)
    np.testing.assert_allclose(np.linalg.norm(eps[layer]), rho, rtol=1e-5)

    def perturbed(p):
        return cross_entropy(net.apply(p, batch.inputs, eps)[0], batch.labels)

    value, grad = jax.value_and_grad(total)(params, rho)
    np.testing.assert_allclose(value, perturbed(params), rtol=1e-6)
    _allclose(grad, jax.grad(perturbed)(params), rtol=1e-4, atol=1e-6)
    logits = net.apply(params, batch.inputs)[0]
    assert float(perturbed(params)) > float(cross_entropy(logits, batch.labels))  # worst case

    def term(p):
        return vaccine.VACCINE.batch_loss(p, net, 0.0, batch, net.apply(p, batch.inputs)[0])

    value, grad = jax.value_and_grad(term)(params)
    assert float(value) == 0.0 and all(np.all(g == 0) for g in _leaves(grad))


# Booster


def _quadratic():
    """h(w) = 1/2 sum a (w - c)^2 on a small pytree, a point w and the curvatures a."""
    a = {"x": jnp.asarray([1.0, 3.0]), "y": jnp.asarray([[2.0]])}
    c = {"x": jnp.asarray([0.5, -1.0]), "y": jnp.asarray([[2.0]])}

    def h(w):
        return 0.5 * sum(
            jnp.sum(ai * (wi - ci) ** 2)
            for ai, wi, ci in zip(*(jax.tree.leaves(t) for t in (a, w, c)), strict=True)
        )

    return h, {"x": jnp.asarray([1.0, 1.0]), "y": jnp.asarray([[0.0]])}, a


def test_booster_attenuation_is_the_drop_of_h_along_its_unit_gradient():
    h, w, a = _quadratic()
    g = jax.grad(h)(w)  # x: [0.5, 6], y: [[-4]]
    norm = np.sqrt(0.25 + 36 + 16)
    d = booster.unit(g)
    np.testing.assert_allclose(d["x"], np.asarray([0.5, 6.0]) / norm, rtol=1e-6)
    for alpha in (0.0, 0.1, 0.7):
        stepped = jax.tree.map(lambda p, u, alpha=alpha: p - alpha * u, w, d)
        value = booster.attenuation(h, w, d, alpha)
        np.testing.assert_allclose(value, h(w) - h(stepped), rtol=1e-6)
        # Closed form: alpha |g| - alpha^2/2 sum a d^2.
        curvature = 0.5 * sum(float(jnp.sum(a[k] * d[k] ** 2)) for k in a)
        np.testing.assert_allclose(value, alpha * norm - alpha**2 * curvature, rtol=1e-5)
        grad = jax.grad(booster.attenuation, argnums=1)(h, w, d, alpha)
        expected = jax.tree.map(lambda a, b: a - b, jax.grad(h)(w), jax.grad(h)(stepped))
        _allclose(grad, expected, rtol=1e-6, atol=1e-7)
    assert float(booster.attenuation(h, w, d, 0.0)) == 0.0


def test_booster_draws_a_harmful_batch_and_its_unit_gradient_each_step():
    spec, net, params, _ = _tiny("mlp")
    setup = _setup(spec, net)
    step, _ = booster.BOOSTER.advance(setup, None, params, 3)
    harmful = step.harmful
    assert harmful.labels.shape == (spec.phase("safety").batch_size,)
    assert np.all(np.asarray(harmful.hazardous))
    assert np.all(np.asarray(harmful.labels) < spec.world.n_classes)  # complied with: harmful
    expected = booster.unit(jax.grad(booster.batch_loss(net, harmful))(params))
    _allclose(step.direction, expected, rtol=1e-6, atol=1e-8)
    other, _ = booster.BOOSTER.advance(setup, None, params, 4)
    assert not np.array_equal(other.harmful.inputs, harmful.inputs)  # fresh each step
    benign, _ = booster.BOOSTER_BENIGN.advance(setup, None, params, 3)
    np.testing.assert_array_equal(benign.harmful.inputs, harmful.inputs)
    assert not np.allclose(_leaves(benign.direction)[0], _leaves(step.direction)[0])
    loss = booster.BOOSTER.loss(params, step, 5.0)
    h = booster.batch_loss(net, harmful)
    np.testing.assert_allclose(loss, 5.0 * booster.attenuation(h, params, expected, 0.1), 1e-5)


# RepNoise


def _repnoise_reference(x, y):
    """RepNoise's MMD_loss, transcribed from its PyTorch code into numpy."""
    total = np.concatenate([x, y]).astype(np.float64)
    distances = ((total[None] - total[:, None]) ** 2).sum(-1)
    m = total.shape[0]
    bandwidth = distances.sum() / (m**2 - m) / 2.0 ** (5 // 2)
    kernels = sum(np.exp(-distances / (bandwidth * 2.0**i)) for i in range(5))
    n = x.shape[0]
    return np.mean(kernels[:n, :n] + kernels[n:, n:] - kernels[:n, n:] - kernels[n:, :n])


def test_mmd_is_zero_on_one_sample_grows_with_a_mean_shift_and_is_repnoises():
    x = jax.random.normal(jax.random.key(0), (12, 5))
    assert float(repnoise.mmd(x, x)) == 0.0
    values = [float(repnoise.mmd(x + shift, x)) for shift in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert values[0] == 0.0 and all(b > a for a, b in zip(values, values[1:], strict=False))
    y = jax.random.normal(jax.random.key(1), (12, 5)) * 2.0 + 0.3
    np.testing.assert_allclose(repnoise.mmd(x, y), _repnoise_reference(x, y), rtol=1e-5)
    assert float(repnoise.mmd(x, y)) > 0


def test_repnoise_noises_every_layer_but_the_logits_on_fresh_hazardous_inputs():
    for kind, expected in (("mlp", ("hidden1", "hidden2")), ("transformer", ("block1", "final"))):
        spec, net, params, _ = _tiny(kind)
        assert repnoise.noised_layers(net.config) == expected
        step, _ = repnoise.REPNOISE.advance(_setup(spec, net), None, params, 0)
        acts = net.apply(params, step.inputs)[1]
        assert tuple(step.noise) == expected
        assert all(step.noise[n].shape == acts[n].shape for n in expected)
        loss = repnoise.REPNOISE.loss(params, step, 2.0)
        mean = np.mean([repnoise.mmd(acts[n], step.noise[n]) for n in expected])
        np.testing.assert_allclose(loss, 2.0 * mean, rtol=1e-5)
        assert float(repnoise.REPNOISE.loss(params, step, 0.0)) == 0.0


# TAR


def test_tar_without_inner_steps_is_the_refusal_loss_at_theta():
    spec, net, params, _ = _tiny("mlp")
    plain = tar.Tar("tar_k0", "", inner_steps=0)
    step, _ = plain.advance(_setup(spec, net), None, params, 2)
    assert all(np.all(s == 0) for s in _leaves(step.shift))
    assert np.all(np.asarray(step.tamper.labels) == spec.world.n_classes)  # REFUSE

    def refusal(p):
        return cross_entropy(net.apply(p, step.tamper.inputs)[0], step.tamper.labels)

    value, grad = jax.value_and_grad(plain.loss)(params, step, 3.0)
    np.testing.assert_array_equal(value, 3.0 * refusal(params))
    _allclose(grad, jax.grad(lambda p: 3.0 * refusal(p))(params), rtol=1e-6, atol=1e-8)


def test_tar_applies_the_refusal_gradient_at_the_attacked_point():
    """theta_K is K Adam steps on the adversary's fresh batches; the term's gradient at theta
    is lambda grad L_TR(theta_K) (first order)."""
    spec, net, params, _ = _tiny("mlp")
    setup = _setup(spec, net)
    step, _ = tar.TAR.advance(setup, None, params, 5)
    batches = [setup.draw("hazard", 5, k + 1) for k in range(4)]
    assert all(np.all(np.asarray(b.hazardous)) for b in batches)
    optimizer = optax.adam(1e-3)
    theta, opt_state = params, optimizer.init(params)
    for batch in batches:
        grads = jax.grad(booster.batch_loss(net, batch))(theta)
        updates, opt_state = optimizer.update(grads, opt_state, theta)
        theta = optax.apply_updates(theta, updates)
    _allclose(jax.tree.map(lambda p, s: p + s, params, step.shift), theta, rtol=1e-6, atol=1e-7)
    grad = jax.grad(tar.TAR.loss)(params, step, 2.0)
    at_end = jax.grad(booster.batch_loss(net, step.tamper))(theta)
    _allclose(grad, jax.tree.map(lambda g: 2.0 * g, at_end), rtol=1e-4, atol=1e-6)
    benign, _ = tar.TAR_BENIGN.advance(setup, None, params, 5)
    assert not np.allclose(_leaves(benign.shift)[0], _leaves(step.shift)[0])


@pytest.mark.parametrize("defence", [booster.BOOSTER_BENIGN, tar.TAR_BENIGN], ids=str)
def test_simulated_benign_data_do_not_see_the_runs_benign_overlap(defence):
    """The defender aligns before the fine-tuner picks its data: its simulated benign batches
    are the world's at its own assumed overlap (0.5), whatever the run's knobs say, and they
    are the data a run at overlap 0.5 would draw (a sweep over the fine-tuner's overlap, the
    arena's, hands the defender nothing)."""
    spec, net, params, _ = _tiny("mlp")
    world = presets.standard_knobs(spec).world

    def advanced(overlap):
        knobs = dataclasses.replace(world, benign_overlap=jnp.float32(overlap))
        setup = dataclasses.replace(_setup(spec, net), world_knobs=knobs)
        return _leaves(defence.advance(setup, None, params, 3)[0])

    at_default = advanced(0.5)
    for overlap in (0.0, 1.0):
        for a, b in zip(advanced(overlap), at_default, strict=True):
            np.testing.assert_array_equal(a, b)
    setup = _setup(spec, net)
    for overlap in (0.0, 1.0):
        drawn = setup.draw("benign", 3, 1, benign_overlap=jnp.float32(overlap))
        replaced = dataclasses.replace(
            setup, world_knobs=dataclasses.replace(world, benign_overlap=jnp.float32(overlap))
        )
        np.testing.assert_array_equal(drawn.inputs, replaced.draw("benign", 3, 1).inputs)
    assert not np.array_equal(
        setup.draw("benign", 3, 1, benign_overlap=jnp.float32(0.0)).inputs,
        setup.draw("benign", 3, 1, benign_overlap=jnp.float32(1.0)).inputs,
    )


# End to end: every defence compiled into the safety phase, every arm in one program


SPEC = with_phase(MLP_SPEC, "safety", defences=NEW)
KNOBS = presets.standard_knobs(SPEC)


def _arms():
    return labelled_arms(KNOBS, {name: (0.0, STRENGTHS[name]) for name in NEW})


@pytest.fixture(scope="module")
def aligned():
    """theta_S of the tiny MLP for every arm (one vmapped trunk through safety alignment)."""
    arms = _arms()
    key = jax.random.key(0)
    trunks = jax.jit(jax.vmap(lambda k: run_trunk(key, SPEC, k, "safety")))(
        stack_knobs(list(arms.values()))
    )
    finals = {
        label: jax.tree.map(lambda a, i=i: np.asarray(a[i]), trunks.state.boundaries["safety"])
        for i, label in enumerate(arms)
    }
    helpful = jax.tree.map(lambda a: np.asarray(a[0]), trunks.state.boundaries["helpful"])
    return finals, helpful, trunks


def test_every_arm_stays_finite(aligned):
    _, _, trunks = aligned
    assert np.all(np.asarray(trunks.state.finite))


@pytest.mark.parametrize("name", NEW)
def test_each_defence_changes_theta_s(aligned, name):
    finals, _, _ = aligned
    moved = finals[f"{name}@{STRENGTHS[name]:g}"]
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(_leaves(moved), _leaves(finals["none"]), strict=True)
    )


@pytest.mark.parametrize("name", NEW)
def test_each_defence_at_strength_zero_is_plain_alignment(aligned, name):
    finals, _, _ = aligned
    for a, b in zip(_leaves(finals[f"{name}@0"]), _leaves(finals["none"]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_engine_runs_booster_as_its_hooks_say(aligned):
    """One safety step from theta_H in the engine is one Adam step on the safety batch's
    cross-entropy plus lambda times the attenuation, on the harmful batch the engine's setup
    draws (the phase's draws key, its batch size) and d at theta_H."""
    _, _, trunks = aligned
    spec = with_phase(SPEC, "safety", steps=1, n_records=1)
    knobs = dataclasses.replace(KNOBS, defence=defences.index("booster"), defence_strength=5.0)
    state = jax.tree.map(lambda a: a[0], trunks.state)
    boundaries = {k: v for k, v in state.boundaries.items() if k != "safety"}
    state = dataclasses.replace(state, params=boundaries["helpful"], boundaries=boundaries)
    key = jax.random.key(0)
    after, _ = jax.jit(lambda s, k: history.run_phases(key, spec, s, k, (spec.phase("safety"),)))(
        state, knobs
    )
    net = network(spec.model, spec.world)
    phase_key = jax.random.fold_in(key, phase_tag("safety"))
    setup = dataclasses.replace(
        _setup(spec, net), key=jax.random.fold_in(phase_key, history.DEFENCE_DRAWS_TAG)
    )
    theta_h = boundaries["helpful"]
    hooked, _ = booster.BOOSTER.advance(setup, None, theta_h, 0)
    batch = spec.world.sample(
        KNOBS.world, "safety", jax.random.fold_in(phase_key, 0), spec.phase("safety").batch_size
    )

    def loss(p):
        return booster.batch_loss(net, batch)(p) + booster.BOOSTER.loss(p, hooked, 5.0)

    optimizer = optax.adam(1e-3)
    updates, _ = optimizer.update(jax.grad(loss)(theta_h), optimizer.init(theta_h), theta_h)
    _allclose(after.params, optax.apply_updates(theta_h, updates), rtol=1e-5, atol=1e-7)
