"""Defences and early warning: the penalties vanish at theta_S with zero gradient, rehearsal at
fraction 0 is exactly the baseline, the adversarially augmented safety phase's plain steps are
the engine's safety phase, the pre-flight score is the first step's first-order drift (finite
differences), AUCs against closed forms, and both experiments end to end (tiny)."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import early_warning, experiment
from gravity import defences
from gravity.engine import presets
from gravity.engine.history import run_history, run_trunk
from gravity.engine.models import network
from gravity.engine.spec import stack_knobs, with_phase
from gravity.instruments import monitor, stats
from gravity.run.experiment import run_experiment
from gravity.run.store import ResultStore

SPEC = with_phase(
    presets.standard_spec("mlp", "tiny", keep_params=False),
    "benign",
    defences=defences.names()[1:],
)
KNOBS = presets.standard_knobs(SPEC)
NET = network(SPEC.model, SPEC.world)


@pytest.fixture(scope="module")
def anchors():
    """theta_S and theta_H of one tiny history (its trunk through safety alignment)."""
    trunk = jax.jit(run_trunk, static_argnums=(1, 3))(jax.random.key(0), SPEC, KNOBS, "safety")
    return trunk


def test_ewc_and_l2sp_vanish_at_theta_s_with_zero_gradient(anchors):
    theta_s, theta_h = anchors.state.boundaries["safety"], anchors.state.boundaries["helpful"]
    batch = SPEC.world.sample(KNOBS.world, "safety", jax.random.key(1), 32)
    setup = defences.Setup(NET, theta_s, theta_h, batch)
    for name in ("ewc", "l2sp"):
        defence = defences.get(name)
        state = defence.state(setup)
        value, grad = jax.value_and_grad(defence.loss)(theta_s, state, 3.0)
        assert float(value) == 0.0
        assert all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree.leaves(grad))
        moved = jax.tree.map(lambda p: p + 0.01, theta_s)
        assert float(defence.loss(moved, state, 3.0)) > 0.0
    # The Fisher is a mean of squares: non-negative, and non-zero somewhere.
    _, fisher = defences.get("ewc").state(setup)
    assert all(float(jnp.min(f)) >= 0 for f in jax.tree.leaves(fisher))
    assert max(float(jnp.max(f)) for f in jax.tree.leaves(fisher)) > 0


def test_rehearsal_at_fraction_zero_is_exactly_the_baseline(anchors):
    arms = [
        KNOBS,
        dataclasses.replace(KNOBS, defence=defences.index("rehearsal"), defence_strength=0.0),
        dataclasses.replace(KNOBS, defence=defences.index("rehearsal"), defence_strength=0.5),
    ]
    key = jax.random.key(0)
    out = jax.jit(jax.vmap(lambda k: run_history(key, SPEC, k, start=anchors)))(stack_knobs(arms))
    harm = np.asarray(out["metrics"]["benign"]["harmfulness"])
    np.testing.assert_array_equal(harm[0], harm[1])
    assert not np.array_equal(harm[0], harm[2])


def test_freeze_keeps_the_probe_layer_and_safelora_projects_matrices(anchors):
    theta_s = anchors.state.boundaries["safety"]
    mask = defences.freeze.probe_layer_mask(theta_s, SPEC.model)
    frozen = {
        jax.tree_util.keystr(k): float(v.max())
        for k, v in jax.tree_util.tree_flatten_with_path(mask)[0]
    }
    assert {k for k, v in frozen.items() if v == 1.0} == {
        "['hidden'][1]['bias'].value",
        "['hidden'][1]['kernel'].value",
    }
    v = jnp.asarray([[1.0, 0.0], [0.0, 0.0]])
    update = jnp.asarray([[0.0, 1.0], [0.0, 0.0]])  # orthogonal to the alignment matrix
    assert float(jnp.abs(defences.safelora.project(update, v, 0.5)).max()) == 0.0
    assert jnp.array_equal(
        defences.safelora.project(update, v, -1.0), update
    )  # threshold never met


def test_preflight_equals_finite_differences_of_the_first_step(anchors):
    theta_s, theta_h = anchors.state.boundaries["safety"], anchors.state.boundaries["helpful"]
    probes = SPEC.world.probe_set(KNOBS.world, SPEC.n_probes)
    batch = SPEC.world.sample(KNOBS.world, "benign", jax.random.key(5), 64)
    optimizer = optax.adam(1e-3)
    score = monitor.preflight(NET, theta_s, theta_h, probes.hazard.inputs, batch, optimizer)
    update = monitor.first_update(NET, theta_s, batch, optimizer)
    aligned = NET.activations(theta_s, probes.hazard.inputs)
    v_rev = NET.activations(theta_h, probes.hazard.inputs) - aligned
    v_rev = v_rev / jnp.linalg.norm(v_rev)

    def s(h):
        moved = jax.tree.map(lambda p, u: p + h * u, theta_s, update)
        return jnp.vdot(NET.activations(moved, probes.hazard.inputs) - aligned, v_rev) / 4.0

    h = 1e-2
    finite_difference = (s(h) - s(-h)) / (2 * h)
    np.testing.assert_allclose(float(score.drift_along_v_rev), float(finite_difference), rtol=2e-2)
    # The actual first step's drift (h = 1) agrees to first order.
    np.testing.assert_allclose(float(score.drift_along_v_rev), float(s(1.0)), rtol=0.2)


def test_roc_auc_matches_closed_forms():
    assert stats.roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert stats.roc_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert stats.roc_auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    assert np.isnan(stats.roc_auc([0.1, 0.2], [1, 1]))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=400), rng.normal(loc=1.0, size=400)
    # For two unit-variance normals one mean apart, AUC = Phi(1 / sqrt 2) = 0.760.
    auc = stats.roc_auc(np.concatenate([x, y]), np.r_[np.zeros(400), np.ones(400)])
    assert abs(auc - 0.7602) < 0.04


@pytest.fixture(scope="module")
def tiny_reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("defences")
    store = ResultStore(out / "store")
    chosen = experiment("defences")
    config = dataclasses.replace(
        chosen.quick(chosen.config()),
        seeds=2,
        size="tiny",
        strengths=(
            ("block", (1.0,)),
            ("rehearsal", (0.5,)),
            ("ewc", (100.0,)),
            ("l2sp", (1.0,)),
            ("safelora", (0.5,)),
        ),
        depths=(10, 20),
        adversarial_depth=20,
    )
    run_experiment(chosen, config, out_dir=out, store=store, progress=False)
    warning = experiment("early_warning")
    config = dataclasses.replace(
        warning.quick(warning.config()), seeds=2, size="tiny", batch_sizes=(8,), bootstrap=50
    )
    run_experiment(warning, config, out_dir=out, store=store, progress=False)
    return {
        name: json.loads((out / f"{name}.json").read_text())
        for name in ("defences", "early_warning")
    }


def test_defences_report_the_frontier(tiny_reports):
    numbers = tiny_reports["defences"]["numbers"]["mlp"]
    names = {e["name"] for e in numbers["defences"]}
    assert names >= {"baseline", "block", "rehearsal", "ewc", "l2sp", "safelora", "freeze"}
    assert {"deeper_alignment", "adversarial_alignment", "shallower_basin"} <= names
    assert {"project", "random_block"} <= names
    # The deeper-alignment sweep runs its own safety phase from theta_H: its plain steps are the
    # engine's (its standard-depth branch ends where the engine's baseline does), and the
    # augmented steps (lookahead 10, from step 10 to 20) lead elsewhere than the plain ones.
    assert numbers["baseline_agreement"]["max_abs_difference"] < 1e-4
    cells = numbers["alignment_by_depth"]
    assert set(cells) == {"lookahead=0", "lookahead=10"}
    plain, augmented = (cells[k]["20"]["harmfulness_heldout_aligned"]["mean"] for k in cells)
    assert abs(plain - augmented) > 1e-6
    assert set(numbers["rehearsal_cut_in_cumulative_reversion"]) == {"0.5"}
    front = numbers["pareto"]
    assert front and all("@" in label for label in front)
    labels = {f"{e['name']}@{e['strength']:g}": e for e in numbers["defences"]}
    for label in front:  # nothing on the frontier is beaten on both axes
        h, a = (
            labels[label]["harmfulness_heldout_T"]["mean"],
            labels[label]["task_accuracy_T"]["mean"],
        )
        assert not any(
            e["harmfulness_heldout_T"]["mean"] < h and e["task_accuracy_T"]["mean"] > a
            for e in numbers["defences"]
        )


def test_early_warning_reports_every_score(tiny_reports):
    """On the tiny MLP, over seeds 0-7 two at a time: held-out harmfulness at T rose with the
    planned learning rate and with the naive score (the probes' harm rise after 5 steps), rank
    correlations 0.44-0.87 and 0.40-0.90 (0.87 and 0.90 for seeds 0, 1); the pre-flight scores'
    ranged over 0.13-0.83, so no direction is asked of them. Every run of seeds 0, 1 reverted:
    an AUC is undefined (NaN, null in the JSON) exactly when one label is missing."""
    numbers = tiny_reports["early_warning"]["numbers"]["mlp"]
    for key in ("auc_preflight", "auc_step1", "auc_step5", "auc_naive_step5", "spearman_preflight"):
        assert key in numbers
    assert numbers["n_conditions"] == 3 * 2 and numbers["n_runs"] == 2 * 3 * 2
    assert numbers["spearman_learning_rate"] > 0.3 and numbers["spearman_naive_step5"] > 0.3
    one_label = numbers["reverted_share"] in (0.0, 1.0)
    aucs = {
        key[4:]: value
        for key, value in numbers.items()
        if key.startswith("auc_") and "ci95" not in key and not isinstance(value, dict)
    }
    assert len(aucs) == 11 and all((auc is None) == one_label for auc in aucs.values())
    # Over seeds and conditions: the same AUCs (all conditions are complete), the seed-only
    # control beside them, and the paired differences the claims read.
    crossed = numbers["auc_over_seeds_and_conditions"]
    assert set(crossed) == {*aucs, "seed_share"} and numbers["n_conditions_complete"] == 6
    for name, auc in aucs.items():
        assert crossed[name]["estimate"] == (auc if auc is None else pytest.approx(auc, rel=1e-12))
    assert all(judged["n"] == 2 for judged in crossed.values())
    pairs = {f"{a}_minus_{b}" for a, b in early_warning.DIFFERENCES}
    assert set(numbers["auc_differences"]) == pairs
    assert len(numbers["reverted_share_by_seed"]) == 2
