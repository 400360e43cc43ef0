"""Experiments end to end on tiny histories, and the CLI's handling of bad input."""

import json

import pytest

from experiments import EXPERIMENTS, load
from gravity.cli import main


@pytest.fixture(scope="module")
def erosion_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    module = load("erosion")
    numbers = module.run(module.Config(seeds=2, size="tiny"), out_dir=out, progress=False)
    return out, numbers


def test_erosion_writes_figure_and_numbers(erosion_report):
    out, numbers = erosion_report
    assert (out / "erosion.png").stat().st_size > 10_000
    report = json.loads((out / "erosion.json").read_text())
    for model in ("mlp", "transformer"):
        entry = report["numbers"][model]
        for key in (
            "harmfulness_pretrained",
            "harmfulness_helpful",
            "harmfulness_aligned",
            "harmfulness_after_benign",
            "task_score_aligned",
            "task_score_after_benign",
        ):
            assert set(entry[key]) >= {"mean", "sd"}
            assert 0.0 <= entry[key]["mean"] <= 1.0
    assert report["provenance"]["packages"]["jax"]
    assert report["config"]["experiment"]["seeds"] == 2


def test_cli_lists_every_experiment(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in EXPERIMENTS)


@pytest.mark.parametrize(
    "argv, field",
    [
        (["run", "nonsense"], "experiment"),
        (["run", "erosion", "--seeds", "0"], "--seeds"),
    ],
)
def test_cli_bad_input_is_one_line_and_status_2(capsys, argv, field):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert field in err and "\n" not in err and "Traceback" not in err


@pytest.fixture(scope="module")
def tiny_reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("main_track")
    reports = {}
    for name in ("reversion", "blocking"):
        module = load(name)
        config = module.Config(seeds=2, size="tiny")
        module.run(config, out_dir=out, progress=False)
        reports[name] = json.loads((out / f"{name}.json").read_text())
        assert (out / f"{name}.png").stat().st_size > 10_000
    return reports


def test_reversion_reports_every_key(tiny_reports):
    numbers = tiny_reports["reversion"]["numbers"]
    last = 20  # the tiny benign phase's length
    for model in ("mlp", "transformer"):
        entry = numbers[model]
        for key in (
            "alignment_step1",
            "alignment_step20",
            "harmfulness_aligned",
            f"harmfulness_step{last}",
            f"alignment_benign_probes_step{last}",
            f"alignment_hazard_specific_step{last}",
        ):
            assert set(entry[key]) >= {"mean", "sd"}, key
        assert 0 < entry["null_p99_isotropic"] < entry["null_p99_matched"] + 1
        assert 0 <= entry["fraction_above_null"] <= 1
        assert -1 <= entry["spearman_alignment_harmfulness"] <= 1
        assert set(entry["alignment_by_definition"]) == {
            "stacked",
            "mean",
            "trajectory_pca",
            "from_pretrained",
        }
    assert numbers["paper"]["alignment_step1"]["mean"] == 0.429


def test_blocking_reports_every_variant(tiny_reports):
    numbers = tiny_reports["blocking"]["numbers"]
    for model in ("mlp", "transformer"):
        entry = numbers[model]
        for variant in ("baseline", "block", "push", "project", "random_block"):
            for metric in ("alignment", "harmfulness", "task_score"):
                assert set(entry[variant][metric]) >= {"mean", "sd"}
        assert "final" in entry["ordering_block_lt_baseline_lt_push"]
        # Projection keeps the drift's v_rev component at zero to first order: final alignment
        # stays near zero, while the baseline's drift is free to align.
        assert abs(entry["project"]["alignment"]["mean"]) < 0.1
