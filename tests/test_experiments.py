"""Experiments end to end on tiny histories through the one runner, sharded equals unsharded,
and the CLI's handling of bad input."""

import dataclasses
import json
import os
import sys
import textwrap

import forced_devices
import numpy as np
import pytest

from experiments import EXPERIMENTS, experiment
from gravity.run import verdicts
from gravity.run.cli import main
from gravity.run.experiment import Experiment, run_experiment
from gravity.run.store import ResultStore
from gravity.run.sweep import Axis, SweepResult


def tiny(name, **changes):
    """An experiment's quick config at the tiny preset with 2 seeds."""
    chosen = experiment(name)
    config = chosen.quick(chosen.config())
    return dataclasses.replace(config, seeds=2, size="tiny", **changes)


def run_tiny(name, out, **changes):
    store = ResultStore(out / "store")
    return run_experiment(
        experiment(name), tiny(name, **changes), out_dir=out, store=store, progress=False
    )


TWO_DEVICES = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import jax
    from pathlib import Path
    from test_experiments import run_tiny
    assert len(jax.devices()) == 2, jax.devices()
    run_tiny("erosion", Path({out!r}), models=("mlp",))
    """
)


@pytest.fixture(scope="module")
def erosion_on_two_devices(tmp_path_factory):
    """The tiny MLP erosion run over 2 forced CPU devices, started now, collected when needed."""
    out = tmp_path_factory.mktemp("two_devices")
    code = TWO_DEVICES.format(tests=os.path.dirname(__file__), out=str(out))
    with forced_devices.started(code, devices=2) as proc:
        yield proc, out


@pytest.fixture(scope="module")
def erosion_report(tmp_path_factory, erosion_on_two_devices):
    out = tmp_path_factory.mktemp("figures")
    numbers = run_tiny("erosion", out, models=("mlp",))
    return out, numbers


def test_every_experiment_declares_the_protocol():
    for name in EXPERIMENTS:
        chosen = experiment(name)
        assert isinstance(chosen, Experiment) and chosen.name == name
        quick = chosen.make_config(quick=True, seeds=3)
        assert quick.seeds == 3
        assert 0 < chosen.n_histories(quick) <= chosen.n_histories(chosen.config())


def test_two_devices_equal_one_device(erosion_report, erosion_on_two_devices):
    """The same experiment through the runner, its run axis sharded over 2 CPU devices."""
    proc, out = erosion_on_two_devices
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-3000:]
    sharded = json.loads((out / "erosion.json").read_text())
    assert len(sharded["sweeps"]["mlp"]["devices"]) == 2
    one = erosion_report[1]["mlp"]
    for key, value in sharded["numbers"]["mlp"].items():
        if isinstance(value, dict) and "mean" in value:
            np.testing.assert_allclose(value["mean"], one[key]["mean"], atol=1e-5, err_msg=key)


def test_erosion_writes_figure_and_numbers(erosion_report):
    out, numbers = erosion_report
    assert (out / "erosion.png").stat().st_size > 10_000
    report = json.loads((out / "erosion.json").read_text())
    entry = report["numbers"]["mlp"]
    for key in ("harmfulness_aligned", "harmfulness_after_benign", "task_score_after_benign"):
        assert entry[key]["n"] == 2, key
    # Erosion: benign fine-tuning raises harmfulness above the aligned model's. On the tiny MLP
    # it rose in every one of seeds 0-7, by 0.007 to 0.011 (0.008 in the mean of seeds 0, 1);
    # the margin is half the smallest rise.
    rise = entry["harmfulness_after_benign"]["mean"] - entry["harmfulness_aligned"]["mean"]
    assert rise > 0.0035
    assert report["provenance"]["packages"]["jax"]
    assert report["config"]["seeds"] == 2
    assert report["n_histories"] == 2 and report["wall_s"] > 0


def test_numbers_are_identical_whether_computed_or_loaded(erosion_report):
    """The same run again loads its sweeps from the store: every JSON number is equal, not
    close (assembled arrays are contiguous, so reductions sum in one order either way)."""
    out, computed = erosion_report
    loaded = run_tiny("erosion", out, models=("mlp",))
    report = json.loads((out / "erosion.json").read_text())
    assert report["sweeps"]["mlp"]["loaded_from_store"]
    assert json.dumps(loaded, sort_keys=True) == json.dumps(computed, sort_keys=True)


def test_cli_lists_every_experiment(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in EXPERIMENTS)


@pytest.mark.parametrize(
    "argv, field",
    [
        (["run", "nonsense"], "experiment"),
        (["run", "erosion", "--seeds", "0"], "--seeds"),
        (["run", "erosion", "--quick", "--out", "/proc/gravity"], "--out"),
    ],
)
def test_cli_bad_input_is_one_line_and_status_2(capsys, argv, field):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert field in err and "\n" not in err and "Traceback" not in err


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """The main track on the tiny MLP (the transformer runs in the full figures only): each
    experiment's JSON report, and the sweep results its numbers were summarised from."""
    out = tmp_path_factory.mktemp("main_track")
    reports, results = {}, {}
    for name in ("reversion", "blocking"):
        chosen = experiment(name)

        def summarise(config, outcome, chosen=chosen, name=name):
            results[name] = outcome
            return chosen.summarise(config, outcome)

        spied = dataclasses.replace(chosen, summarise=summarise)
        store = ResultStore(out / "store")
        config = tiny(name, models=("mlp",))
        run_experiment(spied, config, out_dir=out, store=store, progress=False)
        reports[name] = json.loads((out / f"{name}.json").read_text())
        assert (out / f"{name}.png").stat().st_size > 10_000
    return reports, results


@pytest.fixture(scope="module")
def tiny_reports(tiny_runs):
    return tiny_runs[0]


def test_reversion_reports_its_controls(tiny_reports):
    numbers = tiny_reports["reversion"]["numbers"]
    entry = numbers["mlp"]
    last = 20  # the tiny benign phase's length
    for key in (
        "alignment_step1",
        f"alignment_step{last}",
        f"harmfulness_heldout_step{last}",
        f"alignment_control_finetune_step{last}",
    ):
        assert entry[key]["n"] == 2, key
    # The nulls are ordered as their construction says: the isotropic one is the weakest, and
    # the same-basis control fine-tunings (truly disjoint, and with the background rate kept)
    # really are drifts from the same theta_S.
    assert entry["null_p99_isotropic"] < entry["null_p99_same_basis"]
    background = entry["same_basis_background"]
    assert entry["null_p99_isotropic"] < background["null_p99_same_basis"]
    assert background[f"alignment_control_finetune_step{last}"]["n"] == 2
    # Control witnesses: 2 targets x 2 shifts per seed, distance-matched within the phase, the
    # drift compared with them at the kept drift steps (1, 5, 20 in the tiny history).
    witnesses = entry["control_witness"]
    assert witnesses["n_directions"] == 2 * 4
    assert witnesses["steps"] == [1, 5, 20]
    assert witnesses["distance_witness"]["mean"] > 0
    assert witnesses["distance_control_witness"]["n"] == 2 * 4
    assert 1 <= witnesses["matched_at_step"]["mean"] <= 10  # the tiny helpful phase's length
    assert set(witnesses["by_target"]) == {"hazard_topic", "other_topics"}
    controls = entry["controls"]
    never, matched = controls["harm_prob_0"], controls["refuse_matched"]
    # Pretraining that never complied leaves (almost) nothing to revert to.
    assert never[f"harmfulness_step{last}"]["mean"] < entry[f"harmfulness_step{last}"]["mean"]
    # The REFUSE-matched world gets the main world's pretraining REFUSE mass, the never-harmful
    # one ten times more.
    assert matched["pretrain_refuse_mass"] == pytest.approx(entry["pretrain_refuse_mass"])
    assert never["pretrain_refuse_mass"] == pytest.approx(10 * entry["pretrain_refuse_mass"])
    for world in (never, matched):
        for key in (f"alignment_step{last}", f"harmfulness_heldout_step{last}"):
            assert world[key]["n"] == 2, key
        assert world["harm_prob"] == 0.0
    assert set(entry["alignment_by_definition"]) == {
        "stacked",
        "mean",
        "trajectory_pca",
        "from_pretrained",
    }


def test_reversion_cut_down_runs_the_main_world_alone(tiny_reports, tmp_path, capsys):
    """`worlds`, `arms` and `witnesses` cut reversion down to the main world's benign runs (the
    content it had before its controls): one history per seed, the same main-world numbers as
    the whole run (a smaller vmap may round differently), the controls' numbers left out, so
    `gravity verdicts` refuses that JSON rather than judging a claim without its control."""
    cut = {"worlds": ("main",), "arms": ("benign",), "witnesses": False}
    numbers = run_tiny("reversion", tmp_path, models=("mlp",), **cut)["mlp"]
    report = json.loads((tmp_path / "reversion.json").read_text())
    assert report["n_histories"] == 2
    whole = tiny_reports["reversion"]["numbers"]["mlp"]
    left_out = {"null_p99_same_basis", "same_basis_background", "control_witness"}
    assert left_out <= set(whole) - set(numbers) and numbers["controls"] == {}
    for key in ("alignment_step1", "alignment_step20", "harmfulness_heldout_step20"):
        assert numbers[key]["mean"] == pytest.approx(whole[key]["mean"], abs=1e-6), key
    assert numbers["null_p99_matched"] == pytest.approx(whole["null_p99_matched"], abs=1e-6)
    assert verdicts.main(["--figures", str(tmp_path), "reversion"]) == 2
    refused = capsys.readouterr().err
    assert "mlp.null_p99_same_basis" in refused and "mlp.null_p99_control_witness" in refused


def test_reversion_numbers_are_the_runs_own(tiny_runs):
    """Hand-computed from the main world's benign runs (what the sweep returned): the drift's
    alignment at steps 1 and 20 is the mean over seeds; the control-witness null is the 0.99
    quantile of every cos(drift, control witness) over runs, kept drift steps and directions,
    and the share above it is that of cos(drift, v_rev) at the same run-steps. (On the tiny MLP
    the drift does not beat this null: an exact check, not a direction.)"""
    reports, results = tiny_runs
    entry = reports["reversion"]["numbers"]["mlp"]
    main = results["reversion"]["mlp"].select(world="main", arm="benign")
    assert not main.diverged.any()
    alignment = np.asarray(main["metrics/benign/alignment"], dtype=float)  # (seeds, records)
    steps = list(main.record_steps("metrics/benign/alignment"))
    for step in (1, 20):
        column = alignment[:, steps.index(step)]
        assert entry[f"alignment_step{step}"]["mean"] == pytest.approx(column.mean(), abs=1e-12)
    kept = [steps.index(t) for t in entry["control_witness"]["steps"]]
    cosines = np.asarray(main["control_witness/alignment"], dtype=float)  # (seeds, kept, K)
    assert cosines.shape == (2, len(kept), 2 * 2)  # 2 targets x 2 shifts per seed
    null = np.quantile(cosines, 0.99)
    assert entry["null_p99_control_witness"] == pytest.approx(null, abs=1e-12)
    above = np.mean(alignment[:, kept] > null)
    assert entry["fraction_above_control_witness_null"] == pytest.approx(above, abs=1e-12)


def test_reversion_unrefuse_numbers_are_the_runs_own(tiny_runs):
    """The un-refuse witnesses (#22 g), from the main world's runs: each seed's cosine beyond
    the un-refuse directions is its mean over the kept drift steps, paired with the disjoint
    control's on the same seed; the witnesses, trained on harmless answers to hazardous
    inputs, refuse less than theta_S in every run (a first-order effect of their labels)."""
    reports, results = tiny_runs
    entry = reports["reversion"]["numbers"]["mlp"]["unrefuse_witness"]
    res = results["reversion"]["mlp"]
    main, control = (res.select(world="main", arm=arm) for arm in ("benign", "control"))
    for cell, name in ((main, "per_seed"), (control, "control_per_seed")):
        beyond = np.asarray(cell["unrefuse_witness/beyond"], dtype=float)  # (seeds, kept)
        assert beyond.shape == (2, len(entry["steps"]))
        np.testing.assert_allclose(entry["beyond"][name], beyond.mean(axis=1), atol=1e-12)
    differences = np.asarray(entry["beyond"]["per_seed"]) - entry["beyond"]["control_per_seed"]
    assert entry["beyond"]["minus_control"]["mean"] == pytest.approx(differences.mean())
    refusal = np.asarray(main["unrefuse_witness/refusal_full"], dtype=float)  # (seeds, modes)
    before = np.asarray(main["unrefuse_witness/refusal_theta_s"], dtype=float)
    assert refusal.shape == (2, 2) and np.all(refusal < before[:, None])
    assert set(entry["by_mode"]) == {"fixed_answer", "random_answer"}


def regime_result(seeds: int = 4):
    """A hand-built paper-regime sweep (no training): 2 depths x 3 overlaps x 2 arms, benign
    records at steps 0, 1, 20, 100. Baseline alignment at steps 1 and 20 is the paper's in the
    cell (50, 0.5), 0.02 off it in (100, 0.5), far elsewhere; seeds scatter by +-0.05."""
    axes = (
        Axis("depth", (50, 100)),
        Axis("benign_overlap", (0.0, 0.5, 1.0)),
        Axis("arm", ("none", "block")),
    )
    steps = np.array([0, 1, 20, 100])
    shape = (2, 3, 2, seeds, steps.size)
    alignment = np.zeros(shape)
    alignment[..., 1], alignment[..., 2], alignment[..., 3] = 0.1, 0.2, 0.3
    alignment[0, 1, :, :, 1:3] = (0.429, 0.647)
    alignment[1, 1, :, :, 1:3] = (0.449, 0.667)
    alignment[:, :, :, :, 3] += np.arange(6).reshape(2, 3, 1, 1) / 10
    alignment[..., 1:] += 0.05 * np.where(np.arange(seeds) % 2, 1, -1)[:, None]
    harm = np.broadcast_to(np.linspace(0, 0.3, steps.size), shape).copy()
    harm[1] += 0.1
    arrays = {
        "metrics/benign/alignment": alignment,
        "metrics/benign/harmfulness": harm,
        "metrics/benign/harmfulness_heldout": harm,
    }
    lead = ("depth", "benign_overlap", "arm", "seed")
    dims = {name: (*lead, "step_benign") for name in arrays} | {"__diverged__": lead}
    coords = {axis.name: np.asarray(axis.values) for axis in axes}
    coords |= {"seed": np.arange(seeds), "step_benign": steps}
    diverged = np.zeros(shape[:-1], bool)
    return SweepResult(axes, np.arange(seeds), arrays, diverged, {}, dims, coords)


def test_the_paper_regime_reports_every_cell_within_the_fits_noise():
    """The best cell and the one 0.02 off at both steps (squared distance 0.0008, well inside
    1.96 bootstrap SE of +-0.05 seeds) are within noise, nearest first; the far cells are not;
    each prediction's range is over those two cells, as the claim reads it."""
    module = experiment("reversion")
    config = dataclasses.replace(
        module.config(), size="tiny", regime_depths=(50, 100), regime_overlaps=(0.0, 0.5, 1.0)
    )
    found = sys.modules["experiments.reversion"].paper_regime(regime_result(), config)
    assert found["fitted_knobs"] == {"safety_steps": 50, "benign_overlap": 0.5}
    near = found["within_noise"]
    assert [(c["safety_steps"], c["benign_overlap"]) for c in near["cells"]] == [
        (50, 0.5),
        (100, 0.5),
    ]
    assert near["n_cells"] == 2 and near["n_grid"] == 6
    assert near["cells"][1]["squared_distance"] == pytest.approx(0.0008)
    assert near["cells"][0]["predicted"] == found["predicted"]
    final = [c["predicted"]["alignment_step100"]["mean"] for c in near["cells"]]
    assert final == pytest.approx([0.4, 0.7])
    assert near["predicted_range"]["alignment_step100"] == pytest.approx([0.4, 0.7])
    assert near["predicted_range"]["harmfulness_heldout_step100"] == pytest.approx([0.3, 0.4])
    claim = {c.id: c for c in module.claims}["reversion-regime-predicts-alignment_step100"]
    estimate = claim.statistic({"paper_regime": found})
    assert estimate.interval == pytest.approx((0.4, 0.7)) and estimate.value == pytest.approx(0.4)


def test_blocking_lowers_harm_more_than_its_random_control(tiny_reports):
    """On the tiny MLP, block cut the probes' harmfulness below the baseline in every one of
    seeds 0-7 (by 0.005 to 0.015); the random block's cut was 0.15 of block's over seeds 0-7, 0.3
    of it at most in the mean of any two consecutive seeds (0.04 in seeds 0, 1). So block's cut
    must be twice the random block's at least. (Not that the random block leaves harm alone:
    in the full run it moves harm by 0.12-0.13.)"""
    entry = tiny_reports["blocking"]["numbers"]["mlp"]
    baseline = entry["baseline"]["harmfulness"]["mean"]
    cut = baseline - entry["block"]["harmfulness"]["mean"]
    random_cut = baseline - entry["random_block"]["harmfulness"]["mean"]
    assert cut > 0 and random_cut < 0.5 * cut
    # Projection keeps the drift's v_rev component at zero to first order.
    assert abs(entry["project"]["alignment"]["mean"]) < abs(entry["baseline"]["alignment"]["mean"])
    steps = [row["step"] for row in entry["ordering_by_step"]]
    assert steps == list(range(1, 6)) + steps[5:] and steps[-1] == 20
