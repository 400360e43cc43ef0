"""The three maps end to end on tiny histories: each writes its figure and a JSON with its
numbers, n_histories and wall_s; a second run of a finished configuration loads it."""

import json

import pytest

from experiments import basin_depth, metastability, overlap
from gravity import results


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return results.ResultStore(tmp_path_factory.mktemp("store"))


def _report(out, name):
    assert (out / f"{name}.png").stat().st_size > 10_000
    report = json.loads((out / f"{name}.json").read_text())
    assert report["wall_s"] > 0 and report["provenance"]["git_commit"] is not None
    return report


def test_overlap_map(tmp_path, store):
    config = overlap.Config(overlaps=(0.0, 0.5, 1.0), seeds=2, transformer_seeds=0, size="tiny")
    numbers = overlap.run(config, out_dir=tmp_path, progress=False, store=store)
    report = _report(tmp_path, "overlap")
    assert report["n_histories"] == 6
    assert report["sweeps"]["mlp"]["grouping"]["vmapped_axes"] == ["benign_overlap"]
    assert report["sweeps"]["mlp"]["diverged_runs"] == []
    mlp = numbers["mlp"]
    assert set(mlp["per_overlap"]) == {"0", "0.5", "1"}
    # tiny world: 2 topics, hazard_rate 0.2, so pretraining has 0.2 + 0.8 / 2 = 0.6 on topic 0
    assert mlp["per_overlap"]["0"]["topic_tv_distance_to_pretraining"] == pytest.approx(0.6)
    assert -1 <= mlp["spearman_overlap_vs_reversion"]["rho"] <= 1
    # The same configuration again: loaded from the store, same numbers.
    again = overlap.run(config, out_dir=tmp_path, progress=False, store=store)
    assert json.loads((tmp_path / "overlap.json").read_text())["sweeps"]["mlp"]["loaded_from_store"]
    assert again["mlp"]["per_overlap"] == mlp["per_overlap"]


def test_basin_depth_map(tmp_path, store):
    config = basin_depth.Config(
        pretrain_steps=(40,),
        safety_steps=(4, 8),
        seeds=2,
        helpful_steps=10,
        benign_steps=10,
        size="tiny",
        measure=basin_depth.BasinMeasure(
            eval_batch=32, lanczos_k=2, lanczos_iterations=8, path_points=5
        ),
    )
    numbers = basin_depth.run(config, out_dir=tmp_path, progress=False, store=store)
    report = _report(tmp_path, "basin_depth")
    assert report["n_histories"] == 4 and report["sweep"]["diverged_runs"] == []
    grouping = report["sweep"]["grouping"]
    assert grouping["programs"] == 1 and "safety_steps" in grouping["notes"]
    cells = numbers["cell_means"]
    assert set(cells["reversion"]["pretrain40"]) == {"safety4", "safety8"}
    assert all(v >= 0 for v in cells["barrier"]["pretrain40"].values())
    assert all(v > 0 for v in cells["top_eigenvalue"]["pretrain40"].values())
    assert "r2_as_predicted" in numbers["prediction_vs_reversion_cells"]


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
    numbers = metastability.run(config, out_dir=tmp_path, progress=False, store=store)
    report = _report(tmp_path, "metastability")
    assert report["n_histories"] == 8 and report["sweep"]["diverged_runs"] == []
    assert numbers["verdict"] in ("noise-activated escape", "deterministic pull", "mixed")
    assert 0 <= numbers["escape"]["escaped_fraction_overall"] <= 1
    well = numbers["langevin"]["1d"]
    assert len(well["rows"]) == 2
    # 200 particles estimate the mean first-passage time to ~7%: well within 25% of the exact one.
    assert well["max_relative_error_vs_exact_mfpt"] < 0.25
