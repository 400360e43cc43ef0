"""The three maps end to end on tiny histories: each writes its figure and a JSON with its
numbers, n_histories and wall_s; a second run of a finished configuration loads it."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import basin_depth, metastability, overlap
from gravity.engine import history, presets
from gravity.engine.spec import with_phase
from gravity.instruments import claims
from gravity.instruments.basin import BasinMeasure
from gravity.run.experiment import load as load_experiment
from gravity.run.experiment import run_experiment
from gravity.run.report import to_jsonable
from gravity.run.store import ResultStore


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ResultStore(tmp_path_factory.mktemp("store"))


def _report(out, name):
    assert (out / f"{name}.png").stat().st_size > 10_000
    report = json.loads((out / f"{name}.json").read_text())
    assert report["wall_s"] > 0 and report["provenance"]["git_commit"] is not None
    return report


def test_overlap_map(tmp_path, store):
    config = overlap.Config(overlaps=(0.0, 0.5, 1.0), seeds=2, transformer_seeds=0, size="tiny")
    numbers = run_experiment(
        overlap.EXPERIMENT, config, out_dir=tmp_path, store=store, progress=False
    )
    report = _report(tmp_path, "overlap")
    assert report["n_histories"] == 6
    grouping = report["sweeps"]["mlp"]["grouping"]
    assert grouping["branch_axes"] == ["benign_overlap"] and grouping["runs"] == 2
    assert report["sweeps"]["mlp"]["diverged_runs"] == []
    mlp = numbers["mlp"]
    assert set(mlp["per_overlap"]) == {"0", "0.5", "1"}
    # tiny world: 2 topics, hazard_rate 0.2, so pretraining has 0.2 + 0.8 / 2 = 0.6 on topic 0
    assert mlp["per_overlap"]["0"]["topic_tv_distance_to_pretraining"] == pytest.approx(0.6)
    # Reversion rises with the benign data's overlap with the hazard topic: on the tiny MLP it
    # rose 0 -> 0.5 -> 1 in every one of seeds 0-7, by 0.82 at least from 0 to 1 (per seed).
    # Two seeds that each rise give Spearman's rho >= 0.48 over the 6 runs (0.84 here).
    at = f"reversion_step{mlp['benign_steps']}"
    reversion = [mlp["per_overlap"][o][at]["mean"] for o in ("0", "0.5", "1")]
    assert reversion[0] < reversion[1] < reversion[2] and mlp["monotone_increasing_means"]
    assert mlp["reversion_at_max_overlap"] - mlp["reversion_at_min_overlap"] > 0.4
    assert mlp["spearman_overlap_vs_reversion"]["rho"] > 0.4
    # The same configuration again: loaded from the store, same numbers.
    again = run_experiment(
        overlap.EXPERIMENT, config, out_dir=tmp_path, store=store, progress=False
    )
    assert json.loads((tmp_path / "overlap.json").read_text())["sweeps"]["mlp"]["loaded_from_store"]
    assert again["mlp"]["per_overlap"] == mlp["per_overlap"]


def _run_one_program(
    experiment, config, tmp_path, store, branch_axes, n_histories=8
) -> tuple[dict, dict]:
    """Run `experiment` and check its report: `n_histories` histories (8 of the MLP), none
    diverged, the MLP's grouped into one program of 2 runs branching on `branch_axes`; returns
    the numbers and that grouping."""
    numbers = run_experiment(experiment, config, out_dir=tmp_path, store=store, progress=False)
    report = _report(tmp_path, experiment.name)
    summary = report["sweeps"]["mlp"]
    assert report["n_histories"] == n_histories and summary["diverged_runs"] == []
    assert summary["n_histories"] == 8
    grouping = summary["grouping"]
    assert grouping["programs"] == 1 and grouping["runs"] == 2
    assert grouping["branch_axes"] == branch_axes
    return numbers, grouping


def test_basin_depth_map(tmp_path, store):
    config = basin_depth.Config(
        pretrain_steps=(40,),
        safety_steps=(4, 8),
        seeds=2,
        helpful_steps=10,
        benign_steps=10,
        size="tiny",
        measure=BasinMeasure(eval_batch=32, lanczos_k=2, lanczos_iterations=8, path_points=5),
    )
    numbers, grouping = _run_one_program(
        basin_depth.EXPERIMENT,
        config,
        tmp_path,
        store,
        branch_axes=["pretrain_steps", "safety_data", "safety_steps"],
    )
    assert grouping["branch_after"] == ["pretrain", "helpful", "safety"]
    cells = numbers["cell_means"]
    assert set(cells["reversion"]["pretrain40"]) == {"safety4", "safety8"}
    # Each depth starts from its own snapshot: theta_S, hence h_S, differs between depths.
    aligned = cells["harm_aligned"]["pretrain40"]
    assert aligned["safety4"] != aligned["safety8"]
    assert all(v >= 0 for v in cells["barrier"]["pretrain40"].values())
    assert all(v > 0 for v in cells["top_eigenvalue"]["pretrain40"].values())
    assert "r2_as_predicted" in numbers["prediction_vs_reversion_cells"]
    # The depth control: both arms branch after the same helpful-only phase (theta_H, hence
    # h_H, identical), their safety phases differ (h_S differs at every depth).
    control = numbers["control"]
    assert control["hazard_only_cell_means"]["harm_helpful"] == cells["harm_helpful"]
    hazard_only = control["hazard_only_cell_means"]["harm_aligned"]["pretrain40"]
    assert all(hazard_only[d] != aligned[d] for d in aligned)
    # Equal refused examples: hazard-only at 4 steps (4 x 8 refusals) against mixed at 8.
    (pair,) = control["equal_refused_examples"]
    assert (pair["hazard_only_safety_steps"], pair["mixed_safety_steps"]) == (4, 8)
    profiles = control["arms"]
    assert pair["reversion_mixed"] == pytest.approx(
        profiles["mixed"]["by_depth"]["reversion"]["safety8"]["mean"]
    )
    effects = [profiles[arm]["reversion_vs_depth"]["depth_effect"] for arm in config.safety_data]
    ratio, reading = basin_depth.CONTROL_READING(*effects)
    assert control["reading"] == reading
    assert control["depth_effect_ratio"] == pytest.approx(ratio, nan_ok=True)


def test_basin_depth_control_safety_data_has_no_task_examples():
    """The control arm's safety data is hazardous inputs only, every one refused: no task
    example; the main arm's is half task examples (the world's exact marginals, no sampling)."""
    config = basin_depth.Config(pretrain_steps=(40,), safety_steps=(4, 8), size="tiny")
    build = basin_depth.make_sweep(config).build
    for arm, share in (("mixed", 0.5), ("hazard_only", 1.0)):
        spec, knobs = build(pretrain_steps=40, safety_data=arm, safety_steps=4)
        safety = spec.world.marginals(knobs.world, "safety")
        # Input feature 0 is the hazard: its rate is the hazardous share, and all are refused.
        assert float(safety["features"][0]) == share and float(safety["refuse"]) == share
    with pytest.raises(Exception, match="safety_data"):
        basin_depth.Config(safety_data=("hazard_only", "mixed"))


def test_basin_depth_snapshot_branch_equals_shorter_safety_phase():
    """A branch from the snapshot at step n of an m-step safety phase is the history whose
    safety phase has n steps (the depths of basin_depth and metastability rely on it)."""
    base = presets.standard_spec("mlp", "tiny")
    n, m = 4, base.phase("safety").steps
    long = with_phase(base, "safety", snapshots=(n, m))
    knobs = presets.standard_knobs(base)
    key = jax.random.key(5)

    @jax.jit
    def branched(key):
        trunk = history.run_trunk(key, long, knobs, "safety")
        snapshots = dataclasses.replace(history.repeat_knobs(knobs, 2), snapshot=jnp.arange(2))
        return jax.vmap(
            lambda k: history.run_history(key, long, k, start=trunk)["metrics"]["benign"]
        )(snapshots)

    def straight(steps):
        spec = with_phase(base, "safety", steps=steps)
        return jax.jit(lambda key: history.run_history(key, spec, knobs)["metrics"]["benign"])(key)

    tree = branched(key)
    for index, steps in enumerate((n, m)):
        expected = straight(steps)
        for name, value in expected.items():
            np.testing.assert_allclose(tree[name][index], value, rtol=0, atol=1e-6, err_msg=name)


def test_metastability_map(tmp_path, store):
    config = metastability.Config(
        learning_rates=(0.05, 0.2),
        batch_sizes=(8,),
        safety_steps=(4, 8),
        seeds=2,
        benign_steps=20,
        benign_dense_steps=5,
        benign_records=5,
        reference_depth=8,
        reference_batch=8,
        size="tiny",
        barrier_over_t=(2.5, 10 / 3),
        particles=200,
    )
    numbers, _ = _run_one_program(
        metastability.EXPERIMENT,
        config,
        tmp_path,
        store,
        branch_axes=["learning_rate", "safety_steps"],
        n_histories=8 + 2 * 2,  # and one Langevin run per well and barrier / T
    )
    # The report leads with the pre-registered verdict, computed by the rule from its inputs.
    assert list(numbers)[0] == "verdict" and numbers["reading"].startswith(
        f"Pre-registered verdict: {numbers['verdict']}"
    )
    escape = numbers["escape"]
    assert numbers["verdict"] == metastability.verdict(
        escape.get("arrhenius_all_cells", {}),
        escape["large_batch"]["escaped_fraction"],
        escape["max_factor_across_batch"],
    )
    well = numbers["langevin"]["1d"]
    assert len(well["rows"]) == 2
    # 200 particles estimate the mean first-passage time to ~7%: well within 25% of the exact one.
    assert well["max_relative_error_vs_exact_mfpt"] < 0.25


def test_metastability_arrhenius_in_time_units():
    """Escape times that follow Kramers' law in SGD time t = lr x steps: the time-unit fit
    recovers the barrier exactly, per depth and at the reference depth; the fit in steps does
    not (its prefactor absorbs 1 / lr). No training: synthetic escape times into `analyse`."""
    config = metastability.Config(
        learning_rates=(0.01, 0.02, 0.04, 0.08),
        batch_sizes=(4, 16, 64),
        safety_steps=(25, 50),
        reference_depth=25,
        reference_batch=16,
    )
    barrier = 2e-4
    lr = np.asarray(config.learning_rates)[:, None, None, None]
    batch = np.asarray(config.batch_sizes, float)[None, :, None, None]
    tau0 = np.asarray([1.0, 3.0])[None, None, :, None]
    steps = tau0 * np.exp(barrier * batch / lr) / lr * np.ones((1, 1, 1, 3))
    out = metastability.analyse(config, steps, np.ones(steps.shape, bool))
    for fit in (
        out["arrhenius_time_units_reference_depth"],
        *out["arrhenius_time_units_by_depth"].values(),
    ):
        assert fit["barrier"] == pytest.approx(barrier, rel=1e-6)
        assert fit["r_squared"] == pytest.approx(1.0, abs=1e-9)
        assert fit["barrier_ci"] == pytest.approx([barrier, barrier], rel=1e-5)
    assert out["arrhenius_time_units_by_depth"]["depth50"]["prefactor"] == pytest.approx(3.0)
    in_steps = out["arrhenius_reference_depth"]
    assert in_steps["r_squared"] < 0.99 and in_steps["barrier"] != pytest.approx(barrier)
    # Every run escapes, but the median moves x3.3 across batch sizes at lr 0.01: "mixed".
    assert out["verdict"] == out["verdict_with_time_unit_fit"] == "mixed"


RATE_CLAIMS = ("ms-pull-rate-ratio", "ms-noise-rate-ratio", "ms-pull-rate-ratio-without-lr016")


@pytest.mark.parametrize(
    "factors, verdict, claimed",
    [
        (np.ones(10), "deterministic pull", ("supported", "not supported", "supported")),
        (
            np.full(10, 8.0),
            "noise-activated escape",
            ("not supported", "supported", "not supported"),
        ),
        (np.linspace(1, 4, 10), "mixed", ("inconclusive",) * 3),
    ],
)
def test_metastability_rate_rule_gives_each_verdict(factors, verdict, claimed):
    """The post-hoc rule on fitted rates and its claims, on synthetic escape steps (no
    training): the smallest batch escapes `factors` (one per seed) times sooner than the
    largest in every (lr, depth) column. The same on every seed: the paired ratio is exactly 1
    or 8; spread over seeds around 2 (harmonic mean 2.08): the interval straddles 2."""
    config = metastability.Config(
        learning_rates=(0.01, 0.02, 0.04),
        batch_sizes=(4, 64),
        safety_steps=(25, 50),
        reference_depth=25,
        reference_batch=4,
    )
    lr = np.asarray(config.learning_rates)[:, None, None]
    depth = np.asarray(config.safety_steps, float)[None, :, None]
    largest = 0.5 / lr * depth / 25 * np.ones((1, 1, config.seeds))
    times = np.stack([largest / factors, largest], axis=1)
    escapes = metastability.analyse(config, times, np.ones(times.shape, bool))
    numbers = json.loads(json.dumps(to_jsonable({"escape": escapes}), allow_nan=False))
    rates = numbers["escape"]["post_hoc_fitted_rates"]
    assert rates["pooled"]["verdict"] == rates["without_largest_lr"]["verdict"] == verdict
    assert rates["pooled"]["n"] == config.seeds and rates["pooled"]["n_columns"] == 6
    assert np.shape(rates["rates"]["interval"]) == (3, 2, 2, 2)
    assert numbers["escape"]["runs"]["escape_step"] == times.tolist()
    claims_by_id = {claim.id: claim for claim in load_experiment("metastability").claims}
    found = [claims.evaluate(claims_by_id[i], numbers)["verdict"] for i in RATE_CLAIMS]
    assert found == list(claimed)
