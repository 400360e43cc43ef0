"""The theory experiment end to end at tiny size: every part of its report is there and
finite, the linearised prediction starts where the simulation does, and its claims are judged."""

import dataclasses
import json

import numpy as np
import pytest

from experiments import experiment
from gravity.instruments import claims
from gravity.run.experiment import run_experiment
from gravity.run.store import ResultStore


@pytest.fixture(scope="module")
def tiny_theory(tmp_path_factory):
    out = tmp_path_factory.mktemp("theory")
    chosen = experiment("theory")
    config = dataclasses.replace(
        chosen.quick(chosen.config()),
        size="tiny",
        overlaps=(0.0, 1.0),
        overlap_seeds=2,
        depth_pretrain_steps=(20, 40),
        depth_safety_steps=(4, 8),
        metastability_safety_steps=(4, 8),
        horizon_steps=30,
        mlp_pretrain_steps=(20, 40),
        safety_steps=(4, 8),
        bootstrap=50,
    )
    numbers = run_experiment(
        chosen, config, out_dir=out, store=ResultStore(out / "store"), progress=False
    )
    return chosen, config, numbers, out


def test_every_part_is_reported(tiny_theory):
    _, _, numbers, out = tiny_theory
    assert set(numbers) >= {"linearised", "horizon", "elasticity", "safety_basin"}
    fit = numbers["linearised"]["mlp"]
    assert set(fit["by_grid"]) == {"overlap", "basin_depth", "metastability"}
    assert np.isfinite(fit["r2_harm_at_T"]["estimate"])
    for grid in fit["by_grid"].values():
        assert grid["mean_absolute_error"][0] == pytest.approx(0.0, abs=1e-6)
    for name in ("sgd", "adam"):
        for found in numbers["horizon"]["mlp"][name].values():
            assert 0 <= found["steps"] <= 30
    rebound = numbers["elasticity"]["mlp"]["pretrain"]
    assert len(rebound["slope_pretraining"]) == 2 and len(rebound["by_alignment"]) == 2
    basin = numbers["safety_basin"]["mlp"]
    assert len(basin["width"]) == 2 and 0 <= basin["auc"]["narrow_basin"]["estimate"] <= 1
    report = json.loads((out / "theory.json").read_text())
    assert (out / "theory.png").stat().st_size > 10_000 and report["n_histories"] > 0


def test_its_claims_are_judged_on_its_numbers(tiny_theory):
    chosen, _, numbers, _ = tiny_theory
    judged = {c.id: claims.evaluate(c, numbers) for c in chosen.claims}
    mlp = [v for k, v in judged.items() if k.endswith("-mlp")]
    assert len(mlp) == 6 and all(v["verdict"] in claims.VERDICTS for v in mlp)
    assert all(v["reason"] for k, v in judged.items() if k.endswith("-transformer"))
