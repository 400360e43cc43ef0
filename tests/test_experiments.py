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
