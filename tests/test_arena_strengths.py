"""experiments/arena_strengths.py: the alignment-stage defences at several strengths, on the
arena's grid and analysis; one tiny run end to end."""

from __future__ import annotations

import dataclasses
import json

import pytest

from gravity.instruments import claims
from gravity.validation import ConfigError


def test_every_arm_is_a_scale_times_its_arena_strength_and_has_its_claim():
    from experiments import arena, arena_strengths, experiment

    config = arena_strengths.Config()
    arms = arena_strengths.arms(config)
    assert arms[0] == arena.BASELINE and len(arms) == 1 + 6 * 3
    for name, strength in arms[1:]:
        ratio = strength / arena.ALIGNMENT_STRENGTHS[name]
        assert any(ratio == pytest.approx(scale) for scale in (0.1, 1.0, 10.0))
    ids = {claim.id for claim in experiment("arena_strengths").claims}
    assert ids == {
        f"strengths-{d.replace('_', '-')}-{s}-survives-mlp"
        for d in config.defences
        for s in config.scales
    }


def test_an_unknown_defence_or_scale_is_refused():
    from experiments import arena_strengths

    bad = dataclasses.replace(arena_strengths.Config(), defences=("lisa",), scales=("double",))
    with pytest.raises(ConfigError, match="got lisa, double"):
        arena_strengths.arms(bad)


def test_a_tiny_run_reports_each_defence_and_scale_and_its_claims_judge(tmp_path):
    from experiments import experiment
    from gravity.run.experiment import run_experiment
    from gravity.run.store import ResultStore

    chosen = experiment("arena_strengths")
    program, setting = ("adam", 1.0, 20), (1e-3, 0.5)
    config = dataclasses.replace(
        chosen.config(),
        seeds=2,
        size="tiny",
        defences=("vaccine",),
        scales=("tenth", "tenfold"),
        programs=(program,),
        settings=(setting,),
        standard=(program, setting),
        n_boot=20,
    )
    numbers = run_experiment(
        chosen, config, out_dir=tmp_path, store=ResultStore(tmp_path / "store"), progress=False
    )
    vaccine = numbers["mlp"]["arms"]["vaccine"]
    assert set(vaccine) == {"tenth", "tenfold"}
    assert [vaccine[s]["strength"] for s in ("tenth", "tenfold")] == [0.2, 20.0]
    for arm in (*vaccine.values(), numbers["mlp"]["arms"]["none"]):
        assert len(arm["worst_case_per_seed"]) == 2
    written = json.loads((tmp_path / "arena_strengths.json").read_text())
    assert written["n_histories"] == 3 * 2  # arms x seeds, one configuration
    records = {c.id: claims.evaluate(c, numbers) for c in chosen.claims}
    assert records["strengths-vaccine-tenth-survives-mlp"]["verdict"] != "cannot test"
    assert records["strengths-tar-paper-survives-mlp"]["verdict"] == "cannot test"  # not run
