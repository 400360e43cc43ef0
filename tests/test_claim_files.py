"""The experiments' claim files (experiments/claims/NAME.toml): each loads as its experiment's
claims, their statistics reproduce the numbers the experiments stored and count what the
committed figures hold, the constants they copy match the experiments' own, and every claim
reads keys its committed figure holds."""

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from experiments import basin_depth, metastability
from gravity.instruments import claims
from gravity.run import experiment, verdicts
from gravity.validation import ConfigError

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "figures"


def numbers(name: str) -> dict:
    return json.loads((FIGURES / f"{name}.json").read_text())["numbers"]


def declared(name: str) -> dict[str, claims.Claim]:
    return {claim.id: claim for claim in experiment.load(name).claims}


@pytest.mark.parametrize("name", list(experiment.catalogue()))
def test_every_experiment_declares_its_claims_in_its_claim_file(name, capsys):
    path = ROOT / "experiments" / "claims" / f"{name}.toml"
    module, loaded = sys.modules[f"experiments.{name}"], experiment.load(name).claims
    assert loaded == claims.load(path, name, module) and not hasattr(module, "CLAIMS")
    assert verdicts.main(["--figures", str(FIGURES), name]) == 0
    printed = capsys.readouterr().out
    assert all(f"{claim.id}: " in printed for claim in loaded)


def test_a_module_and_a_claim_file_cannot_both_declare_claims(tmp_path):
    (tmp_path / "claims").mkdir()
    module = types.ModuleType("toy")
    module.__file__, module.CLAIMS = str(tmp_path / "toy.py"), []
    assert experiment.declared_claims(module, "toy") == ()
    (tmp_path / "claims" / "toy.toml").write_text("")
    with pytest.raises(ConfigError, match="toy.CLAIMS = 'a list' is invalid: absent"):
        experiment.declared_claims(module, "toy")


def test_the_depth_effect_ratio_is_the_stored_one_with_an_interval_around_it():
    stored = numbers("basin_depth")
    estimate = declared("basin_depth")["bd-depth-protects-alone"].statistic(stored)
    assert estimate.value == pytest.approx(stored["control"]["depth_effect_ratio"], rel=1e-9)
    low, high = estimate.interval
    assert low < estimate.value < high


@pytest.mark.parametrize("claim_id", ["bd-theory-all-cells", "bd-theory-aligned-cells"])
def test_the_theory_fit_reads_its_stored_r2_and_bootstraps_the_cells(claim_id):
    stored, claim = numbers("basin_depth"), declared("basin_depth")[claim_id]
    estimate = claim.statistic(stored)
    assert estimate.value == claims.value_at(stored, claim.json_key)
    assert estimate.n == claims.value_at(stored, claim.json_key.rsplit(".", 1)[0] + ".n")
    assert estimate.interval[0] < estimate.interval[1]
    if claim.statistic.subset is not None:
        assert claim.statistic.at_least == basin_depth.MIN_GAP


def test_an_escaped_share_counts_the_full_size_grid_and_needs_it():
    statistic = declared("metastability")["ms-noise-large-batch-holds"].statistic
    full = metastability.Config()
    assert statistic.runs == len(full.learning_rates) * len(full.safety_steps) * full.seeds
    assert statistic.grid_size == len(full.learning_rates)
    found = statistic(numbers("metastability"))
    assert found.n == 200 and found.interval[0] < found.value < found.interval[1]
    small = {"escape": {"large_batch": {"escaped_fraction": 0.5}, "batch_factor_by_lr": {"a": 1}}}
    assert np.isnan(statistic(small).interval).all()  # the count is unknown


def test_the_overlap_trend_counts_every_run():
    estimate = declared("overlap")["ov-rises-mlp"].statistic(numbers("overlap"))
    assert estimate.n == 9 * 112 and estimate.interval[0] < estimate.value < estimate.interval[1]


def test_the_defences_best_leaves_the_changed_world_out_as_the_experiment_does():
    from experiments import defences

    statistic = declared("defences")["defences-best-below-block-mlp"].statistic
    assert statistic.exclude == defences.CHANGED_WORLD


def test_the_transformer_arena_claims_mirror_the_mlp_ones():
    arena = declared("arena").values()
    mlp = sorted(c.id.removesuffix("-mlp") for c in arena if c.id.endswith("-mlp"))
    transformer = [c for c in arena if c.id.endswith("-transformer")]
    assert sorted(c.id.removesuffix("-transformer") for c in transformer) == mlp
    assert all(c.preregistered and c.json_key.startswith("transformer.") for c in transformer)
