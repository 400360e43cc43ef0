"""The sweep runner on tiny histories: grouping and trees, sharding over forced CPU devices,
kill-and-resume, divergence isolation, and loading finished sweeps from the store.

Every in-process tree sweep here has the same spec, measurement and chunk shape (8 runs, each
with 2 branches, in two chunks of 4), so they share one compiled program; the 4-device run is a
subprocess (the device count is fixed when JAX starts), launched first so that it compiles while
the in-process tests run.
"""

import dataclasses
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import forced_devices
import jax
import numpy as np
import pytest
import synthetic_results
import xarray as xr

from gravity.engine import presets
from gravity.engine.spec import with_phase
from gravity.run import report, store, sweep
from gravity.run.store import ResultStore
from gravity.validation import ConfigError

SAFETY = (4, 8)
BENIGN_LRS = (1e-3, 3e-3)


def tiny_spec(safety_steps=SAFETY[-1], snapshots=SAFETY):
    spec = presets.standard_spec("mlp", "tiny", keep_params=False)
    return with_phase(spec, "safety", steps=safety_steps, snapshots=snapshots)


def tiny_sweep(benign_lrs=BENIGN_LRS, name="tiny") -> sweep.Sweep:
    """Benign learning rate (vmapped) x 4 seeds, each branching after alignment into two safety
    depths (snapshots of one 8-step safety phase): 8 runs, 16 histories."""
    spec = tiny_spec()

    def build(benign_lr, safety_steps):
        knobs = presets.standard_knobs(spec)
        rates = {**knobs.learning_rate, "benign": benign_lr}
        snapshot = SAFETY.index(safety_steps)
        return spec, dataclasses.replace(knobs, learning_rate=rates, snapshot=snapshot)

    return sweep.Sweep(
        name=name,
        axes=(sweep.Axis("benign_lr", tuple(benign_lrs)),),
        branches=(sweep.Axis("safety_steps", SAFETY),),
        branch_after="safety",
        seeds=4,
        build=build,
        max_chunk=4,
    )


SUBPROCESS = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import jax
    from test_sweep import tiny_sweep
    from gravity.run import sweep
    from gravity.run.store import ResultStore
    assert len(jax.devices()) == 4, jax.devices()
    res = sweep.run_sweep(tiny_sweep(), store=ResultStore({root!r}), progress=False)
    print("devices", res.info["devices"])
    print("path", res.info["path"])
    """
)


def entry_here(store):
    """The store entry of the tiny sweep run in this process (on all its devices)."""
    return sweep.store_entry(store, "sweeps", sweep.plan_sweep(tiny_sweep()), jax.devices())


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """The tiny sweep over 4 forced CPU devices, started now and collected when needed."""
    root = tmp_path_factory.mktemp("sharded")
    code = SUBPROCESS.format(tests=str(Path(__file__).parent), root=str(root))
    with forced_devices.started(code, devices=4) as proc:
        yield proc, root


@pytest.fixture(scope="module")
def reference(sharded, tmp_path_factory):
    """The tiny sweep uninterrupted on one device, stored."""
    store = ResultStore(tmp_path_factory.mktemp("reference"))
    return sweep.run_sweep(tiny_sweep(), store=store, progress=False), store


def test_plan_groups_program_axes_and_vmaps_the_rest():
    def build(pretrain_steps, learning_rate):
        spec = with_phase(presets.standard_spec("mlp", "tiny"), "pretrain", steps=pretrain_steps)
        return spec, presets.standard_knobs(spec, learning_rate)

    plan = sweep.plan_sweep(
        sweep.Sweep(
            "g",
            (
                sweep.Axis("pretrain_steps", (10, 20)),
                sweep.Axis("learning_rate", (1e-3, 2e-3, 3e-3)),
            ),
            seeds=5,
            build=build,
            max_chunk=8,
        )
    )
    grouping = plan.grouping()
    assert grouping["programs"] == 2
    assert grouping["program_axes"] == ["pretrain_steps"]
    assert grouping["vmapped_axes"] == ["learning_rate"]
    # 15 runs per program in chunks of at most 8, sized alike so one shape serves each program.
    assert grouping["chunk_size"] == [8, 8] and len(plan.chunks) == 4
    runs = np.sort(np.concatenate([c.runs for c in plan.chunks]))
    np.testing.assert_array_equal(runs, np.arange(30))
    tree = sweep.plan_sweep(tiny_sweep()).grouping()
    assert tree["programs"] == 1 and tree["vmapped_axes"] == ["benign_lr"]
    assert tree["branch_axes"] == ["safety_steps"] and tree["branch_after"] == "safety"
    assert tree["runs"] == 8 and tree["histories"] == 16


def test_branches_equal_straight_histories_at_their_depth(reference):
    """Each branch (a safety depth as a snapshot, then its benign phase) equals a straight
    history whose safety phase has that many steps, with the same keys."""
    tree, _ = reference
    for depth in SAFETY:
        spec = tiny_spec(depth, snapshots=())

        def build(benign_lr, spec=spec):
            knobs = presets.standard_knobs(spec)
            return spec, dataclasses.replace(
                knobs, learning_rate={**knobs.learning_rate, "benign": benign_lr}
            )

        straight = sweep.run_sweep(
            sweep.Sweep(f"d{depth}", (sweep.Axis("benign_lr", BENIGN_LRS),), 4, build),
            store=False,
            progress=False,
        )
        column = SAFETY.index(depth)
        for metric in ("harmfulness", "alignment", "task_loss", "weight_progress"):
            name = f"metrics/benign/{metric}"
            np.testing.assert_allclose(
                tree[name][:, column], straight[name], atol=1e-6, rtol=0, err_msg=name
            )


def test_seeds_are_shared_across_cells_and_runs_differ_across_seeds(reference):
    res, _ = reference
    pretrained = res["metrics/pretrain/harmfulness"][..., -1]
    np.testing.assert_array_equal(pretrained, np.broadcast_to(pretrained[:1, :1], pretrained.shape))
    assert len(np.unique(pretrained[0, 0])) == 4


def test_kill_and_resume_equals_uninterrupted(reference, tmp_path):
    full, _ = reference
    store = ResultStore(tmp_path)
    computed = []

    def killed_after_first_chunk(chunk):
        computed.append(chunk.name)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(
            tiny_sweep(), store=store, progress=False, on_chunk=killed_after_first_chunk
        )
    entry = entry_here(store)
    assert not entry.is_complete() and entry.read_chunk(computed[0]) is not None
    # A half-written file from the kill is a temporary name, never mistaken for a chunk.
    (entry.chunk_dir / ".g000-c0001.npz.XYZ.tmp").write_bytes(b"partial")
    resumed = []
    res = sweep.run_sweep(
        tiny_sweep(), store=store, progress=False, on_chunk=lambda c: resumed.append(c.name)
    )
    assert resumed == ["g000-c0001"]
    assert res.arrays.keys() == full.arrays.keys()
    for name, value in full.arrays.items():
        np.testing.assert_array_equal(res[name], value, err_msg=name)
    np.testing.assert_array_equal(res.diverged, full.diverged)


def test_finished_sweep_loads_from_the_store_and_force_recomputes(reference):
    full, store = reference
    again = sweep.run_sweep(tiny_sweep(), store=store, progress=False)
    assert again.info["loaded_from_store"] and not full.info["loaded_from_store"]
    # the report of a loaded sweep names the commit its results were computed at
    assert sweep.summary(again)["computed_at_commit"] == report.git_commit()
    for name, value in full.arrays.items():
        np.testing.assert_array_equal(again[name], value)
    forced = ResultStore(store.root, force=True)
    redone = sweep.run_sweep(tiny_sweep(), store=forced, progress=False)
    assert not redone.info["loaded_from_store"]
    np.testing.assert_array_equal(
        redone["metrics/benign/harmfulness"], full["metrics/benign/harmfulness"]
    )


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    path.write_bytes(bytes(data))


def _rewrite_chunk(path: Path, change) -> None:
    """Rewrite a chunk as a valid .npz whose arrays (and checksum) `change` alters."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    np.savez(path.with_suffix(".tmp.npz"), **arrays)
    path.with_suffix(".tmp.npz").replace(path)


def _halve(arrays):
    """Valid values, wrong: every float halved, the checksum left as written."""
    for name, value in arrays.items():
        if value.dtype.kind == "f":
            arrays[name] = value / 2


def _wrong_hash(arrays):
    arrays[store.CHECKSUM] = np.asarray("0" * 64)


def _other_runs(arrays):
    """Another chunk's runs, with a checksum that matches them: a mismatching chunk."""
    arrays["__runs__"] = arrays["__runs__"] + 1
    arrays.pop(store.CHECKSUM)
    arrays[store.CHECKSUM] = np.asarray(store.checksum(arrays))


CHUNK_DAMAGE = {
    "truncated": _truncate,
    "flipped_bytes": _flip_bytes,
    "wrong_hash": lambda p: _rewrite_chunk(p, _wrong_hash),
    "halved_values": lambda p: _rewrite_chunk(p, _halve),
    "other_runs": lambda p: _rewrite_chunk(p, _other_runs),
    "garbage": lambda p: p.write_bytes(b"not a chunk"),
}


def _zarr_chunk(entry) -> Path:
    """A data file of the assembled output "metrics/benign/harmfulness" in result.zarr."""
    files = [f for f in (entry.path / "result.zarr" / "metrics.benign.harmfulness").rglob("*")]
    return next(f for f in files if f.is_file() and f.name != "zarr.json")


def _halve_in_zarr(entry) -> None:
    import zarr

    array = zarr.open_array(entry.path / "result.zarr" / "metrics.benign.harmfulness", mode="r+")
    array[...] = array[...] / 2


ENTRY_DAMAGE = {
    "garbage_result_json": lambda e: (e.path / "result.json").write_text("{garbage"),
    "truncated_result_json": lambda e: _truncate(e.path / "result.json"),
    "result_json_of_another_config": lambda e: (e.path / "result.json").write_text(
        (e.path / "result.json").read_text().replace(e.hash, "0" * 16)
    ),
    "truncated_array": lambda e: _truncate(_zarr_chunk(e)),
    "flipped_array_bytes": lambda e: _flip_bytes(_zarr_chunk(e)),
    "halved_array": _halve_in_zarr,
    "missing_array": lambda e: shutil.rmtree(e.path / "result.zarr" / "metrics.benign.harmfulness"),
}


def _damaged_copy(reference, tmp_path):
    """A copy of the finished reference store and its entry."""
    _, stored = reference
    shutil.copytree(stored.root, tmp_path / "store")
    copy = ResultStore(tmp_path / "store")
    return copy, entry_here(copy)


def _rerun_equals_reference(reference, copy, capfd) -> list[str]:
    """Run again: the chunks it computed; the arrays must equal the undamaged run bitwise and
    the damage be reported in one line."""
    full, _ = reference
    computed = []
    res = sweep.run_sweep(
        tiny_sweep(), store=copy, progress=False, on_chunk=lambda c: computed.append(c.name)
    )
    for name, value in full.arrays.items():
        np.testing.assert_array_equal(res[name], value, err_msg=name)
    np.testing.assert_array_equal(res.diverged, full.diverged)
    lines = [line for line in capfd.readouterr().err.splitlines() if "is damaged" in line]
    assert len(lines) == 1, lines
    assert lines[0].startswith("gravity: store: ") and "moved to" in lines[0]
    return computed


@pytest.mark.parametrize("damage", CHUNK_DAMAGE)
def test_a_damaged_chunk_is_moved_aside_and_only_it_recomputed(damage, reference, tmp_path, capfd):
    """After a kill (chunks written, no result yet), one damaged chunk: one line, that chunk
    alone recomputed, the result bitwise equal to the undamaged run."""
    copy, entry = _damaged_copy(reference, tmp_path)
    shutil.rmtree(entry.path / "result.zarr")
    (entry.path / "result.json").unlink()
    CHUNK_DAMAGE[damage](entry.chunk_path("g000-c0001"))
    assert _rerun_equals_reference(reference, copy, capfd) == ["g000-c0001"]
    assert [p.name.split(".")[0] for p in (entry.path / "damaged").iterdir()] == ["g000-c0001"]


@pytest.mark.parametrize("damage", ENTRY_DAMAGE)
def test_a_damaged_finished_entry_is_reassembled_from_its_chunks(
    damage, reference, tmp_path, capfd
):
    """A finished sweep whose metadata or arrays are damaged: one line, nothing recomputed
    (the checksummed chunks are kept), the result bitwise equal to the undamaged run."""
    copy, entry = _damaged_copy(reference, tmp_path)
    ENTRY_DAMAGE[damage](entry)
    assert _rerun_equals_reference(reference, copy, capfd) == []
    again = sweep.run_sweep(tiny_sweep(), store=copy, progress=False)
    assert again.info["loaded_from_store"]


def test_a_damaged_entry_without_chunks_recomputes_them(reference, tmp_path, capfd):
    copy, entry = _damaged_copy(reference, tmp_path)
    shutil.rmtree(entry.chunk_dir)
    (entry.path / "result.json").write_text("[]")
    assert _rerun_equals_reference(reference, copy, capfd) == ["g000-c0000", "g000-c0001"]


def test_reports_equal_whether_computed_or_loaded(reference):
    """Assembled arrays are C-contiguous, so a reduction sums in one order whether the sweep
    was just computed or loaded from the store (seen: 2.2e-16 apart before)."""
    full, stored = reference
    loaded = sweep.run_sweep(tiny_sweep(), store=stored, progress=False)
    assert loaded.info["loaded_from_store"]
    for name, value in full.arrays.items():
        assert value.flags.c_contiguous and loaded[name].flags.c_contiguous, name
        if value.dtype.kind == "f" and value.ndim > 2:
            np.testing.assert_array_equal(value.mean(axis=(0, -1)), loaded[name].mean(axis=(0, -1)))


def test_a_finished_sweep_opens_as_a_labelled_dataset_without_gravity(reference):
    """`xarray.open_zarr` on the stored result, in a process that never imports gravity."""
    full, stored = reference
    path = entry_here(stored).path / "result.zarr"
    code = (
        "import sys, xarray\n"
        f"ds = xarray.open_zarr({str(path)!r}, consolidated=False)\n"
        "assert not any(m.startswith('gravity') for m in sys.modules)\n"
        "h = ds['metrics.benign.harmfulness']\n"
        "print(h.dims, h.sizes['seed'], ds['benign_lr'].values.tolist(), float(h.sel("
        "benign_lr=0.003, safety_steps=8, seed=2, step_benign=0)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    harm = full["metrics/benign/harmfulness"]
    steps = full.coords["step_benign"]
    expected = float(harm[1, 1, 2, list(steps).index(0)])
    dims = "('benign_lr', 'safety_steps', 'seed', 'step_benign')"
    assert proc.stdout.split() == [*dims.split(), "4", "[0.001,", "0.003]", repr(expected)]
    assert full.dataset()["metrics.benign.harmfulness"].dims == eval(dims)
    labelled = full.labelled("metrics/benign/harmfulness")
    assert float(labelled.sel(benign_lr=0.003, safety_steps=8, seed=2, step_benign=0)) == expected
    cell = full.select(benign_lr=0.003, safety_steps=8)
    assert float(cell.valid("metrics/benign/harmfulness", step=0)[2]) == expected
    np.testing.assert_array_equal(cell.record_steps("metrics/benign/harmfulness"), steps)
    np.testing.assert_allclose(
        labelled.sel(safety_steps=4).mean("seed").values,
        np.nanmean(harm[:, 0].astype(float), axis=1),
        rtol=1e-12,
    )


def test_divergent_run_is_flagged_and_neighbours_are_bitwise_unchanged(reference):
    full, _ = reference
    res = sweep.run_sweep(
        tiny_sweep(benign_lrs=(1e-3, 1e12), name="diverging"), store=False, progress=False
    )
    assert res.diverged[1].all() and not res.diverged[0].any()
    assert len(res.diverged_runs) == 8
    assert res.diverged_runs[0] == "benign_lr=1000000000000.0,safety_steps=4,seed=0"
    for name, value in full.arrays.items():
        np.testing.assert_array_equal(res[name][0], value[0], err_msg=name)
    # Aggregates leave the diverged runs out.
    harm = res.valid("metrics/benign/harmfulness")
    assert np.isnan(harm[1]).all() and np.isfinite(harm[0]).all()
    assert sweep.summary(res)["diverged_runs"] == res.diverged_runs


def test_sharded_over_four_devices_is_stored_apart_and_equals_one_device(sharded, reference):
    """Four devices partition the runs differently (equal up to float rounding), so their
    result has its own store key: one key is one answer."""
    proc, root = sharded
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert "cpu:3" in out.decode()
    full, _ = reference
    four = Path(out.decode().split("path ")[1].strip())
    assert four.parent == root / "sweeps"
    res = sweep.run_sweep(tiny_sweep(), store=ResultStore(root), progress=False)
    assert not res.info["loaded_from_store"] and Path(res.info["path"]) != four
    stored = xr.open_zarr(four / "result.zarr", consolidated=False)
    np.testing.assert_array_equal(stored["__diverged__"].values, full.diverged)
    for name, value in full.arrays.items():
        # Same runs, partitioned differently: identical up to float rounding in reductions,
        # which the first steps' cosines amplify (their drift is small next to the activations
        # it is the difference of; seen: 3.5e-6 at -O0); a wrong partition moves them by 1e-2+.
        np.testing.assert_allclose(
            stored[name.replace("/", ".")].values, value, rtol=1e-5, atol=2e-5, err_msg=name
        )


def test_the_store_key_covers_the_device_layout(tmp_path):
    """1, 2 and 4 devices (and another backend) are distinct entries; the same layout is one."""
    store = ResultStore(tmp_path)
    plan = sweep.plan_sweep(tiny_sweep(), 1)
    device = jax.devices()[0]
    paths = [sweep.store_entry(store, "sweeps", plan, [device] * n).path for n in (1, 2, 4)]
    assert len(set(paths)) == 3
    assert sweep.store_entry(store, "sweeps", plan, [device]).path == paths[0]

    class Gpu:
        platform, device_kind = "gpu", "H200"

    assert sweep.store_entry(store, "sweeps", plan, [Gpu()]).path not in paths


def test_a_transformer_compiles_at_o2_on_cpu_unless_xla_flags_choose(monkeypatch, tmp_path):
    """The runner's compile options: LLVM -O2 for a transformer on CPU, none for an MLP or on
    another backend, none where XLA_FLAGS sets a level (the tests' -O0); options, and XLA_FLAGS
    but for the device count, are in the store key, so programs compiled with and without them
    never share an entry."""
    from gravity.run.sweep import runner

    cpu = jax.devices()[:1]
    transformer = presets.standard_spec("transformer", "tiny")
    assert runner.compile_options(transformer, cpu) == {}  # conftest's XLA_FLAGS set -O0
    store = ResultStore(tmp_path)
    transformer_sweep = sweep.Sweep(
        name="transformer",
        axes=(sweep.Axis("benign_lr", (1e-3,)),),
        seeds=1,
        build=lambda benign_lr: (transformer, presets.standard_knobs(transformer)),
    )
    plan = sweep.plan_sweep(transformer_sweep, 1)
    at_o0 = sweep.store_entry(store, "sweeps", plan, cpu).path
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    assert runner.compile_options(transformer, cpu) == {"xla_backend_optimization_level": 2}
    assert runner.compile_options(presets.standard_spec("mlp", "tiny"), cpu) == {}

    class Gpu:
        platform, device_kind = "gpu", "H200"

    assert runner.compile_options(transformer, [Gpu()]) == {}
    assert sweep.store_entry(store, "sweeps", plan, cpu).path != at_o0
    mlp_plan = sweep.plan_sweep(tiny_sweep(), 1)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
    bare = sweep.store_entry(store, "sweeps", mlp_plan, cpu).path
    monkeypatch.delenv("XLA_FLAGS")
    assert sweep.store_entry(store, "sweeps", mlp_plan, cpu).path == bare  # the key holds devices
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
    assert sweep.store_entry(store, "sweeps", mlp_plan, cpu).path != bare  # a level in XLA_FLAGS
    assert runner.keyed_xla_flags() == "--xla_backend_optimization_level=0"


def test_use_cpu_cores_sets_the_device_count_once(monkeypatch):
    from gravity.run import runtime

    monkeypatch.setattr(runtime, "_backends_initialised", lambda: False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    assert runtime.use_cpu_cores(3) == 3
    assert os.environ["XLA_FLAGS"].endswith("--xla_force_host_platform_device_count=3")
    assert runtime.use_cpu_cores(5) is None  # the user's (or an earlier) choice is kept
    monkeypatch.setattr(runtime, "_backends_initialised", lambda: True)
    monkeypatch.delenv("XLA_FLAGS")
    assert runtime.use_cpu_cores(3) is None and "XLA_FLAGS" not in os.environ


def test_cli_has_force():
    from gravity.run.cli import _parser

    assert _parser().parse_args(["run", "overlap", "--force"]).force
    assert not _parser().parse_args(["run", "overlap"]).force


def test_the_store_key_follows_the_engine_source(monkeypatch, tmp_path):
    """A changed engine never serves results an older engine stored."""
    from gravity.run.sweep import grid

    store = ResultStore(tmp_path)
    config = sweep.plan_sweep(tiny_sweep()).config()
    assert config["engine"] == sweep.engine_digest() and len(config["engine"]) == 16
    before = entry_here(store).path
    monkeypatch.setattr(grid, "engine_digest", lambda: "0" * 16)
    assert entry_here(store).path != before


def test_a_two_level_tree_equals_the_straight_history_at_each_leaf():
    """Pretraining lengths as snapshots of one pretraining phase, then safety depths as
    snapshots of one safety phase: each leaf equals the straight history of those lengths."""
    spec = with_phase(tiny_spec(), "pretrain", snapshots=(20, 40))

    def build(pretrain_steps, safety_steps):
        snapshot = {
            "pretrain": (20, 40).index(pretrain_steps),
            "safety": SAFETY.index(safety_steps),
        }
        return spec, dataclasses.replace(presets.standard_knobs(spec), snapshot=snapshot)

    tree = sweep.run_sweep(
        sweep.Sweep(
            "two-level",
            axes=(),
            branches=(sweep.Axis("pretrain_steps", (20, 40)), sweep.Axis("safety_steps", SAFETY)),
            branch_after=("pretrain", "safety"),
            seeds=2,
            build=build,
        ),
        store=False,
        progress=False,
    )
    assert tree.info["grouping"]["histories"] == 8
    short = with_phase(tiny_spec(4, snapshots=()), "pretrain", steps=20)
    straight = sweep.run_sweep(
        sweep.Sweep("short", (), 2, lambda: (short, presets.standard_knobs(short))),
        store=False,
        progress=False,
    )
    for metric in ("harmfulness", "alignment", "task_loss"):
        name = f"metrics/benign/{metric}"
        np.testing.assert_allclose(tree[name][0, 0], straight[name], atol=1e-6, err_msg=name)
    # Longer pretraining really is another history.
    assert not np.allclose(
        tree["metrics/benign/harmfulness"][1, 0], straight["metrics/benign/harmfulness"]
    )


def test_select_split_and_runs_read_a_result_by_axis_names_and_record_steps():
    """`select` is numpy indexing by axis values, `runs` drops diverged runs, `step=` reads a
    record step through the output's `step_PHASE` dimension (hand-built result, no training)."""
    diverged = np.zeros((2, 3, 4), bool)
    diverged[1, 2, 3] = True
    res = synthetic_results.grid(diverged=diverged)
    name = "metrics/benign/alignment_by_definition"
    raw = res[name]
    cell = res.select(world="other", arm=("a", 3.0))
    assert cell.axes == () and cell.dims[name] == (
        "seed",
        "step_benign",
        f"{name}_dim1".replace("/", "."),
    )
    np.testing.assert_array_equal(cell[name], raw[1, 2])
    np.testing.assert_array_equal(cell.runs(name), raw[1, 2, :3])
    np.testing.assert_array_equal(cell.runs(name, step=5), raw[1, 2, :3, 3])
    np.testing.assert_array_equal(cell.runs(name, step=[10, 1]), raw[1, 2, :3][:, [4, 1]])
    assert np.isnan(cell.valid(name, step=2)[3]).all()
    np.testing.assert_array_equal(cell.valid(name, step=2)[:3], raw[1, 2, :3, 2])
    np.testing.assert_array_equal(res.runs("drift"), res["drift"][~diverged])
    np.testing.assert_array_equal(res.record_steps(name), synthetic_results.STEPS)
    arms = res.select(world="main").split("arm")
    assert list(arms) == [("a", 1.0), ("b", 1.0), ("a", 3.0)]
    np.testing.assert_array_equal(arms[("b", 1.0)]["drift"], res["drift"][0, 1])
    assert set(cell.runs_under("metrics/safety")) == {"harmfulness", "refusal", "other"}
    with pytest.raises(ConfigError, match="axis arm"):
        res.select(arm=("c", 1.0))
    with pytest.raises(ConfigError, match="record steps"):
        cell.runs(name, step=3)
    with pytest.raises(KeyError, match="did you mean world"):
        res.select(wrld="main")


def test_programs_compile_in_run_order_at_most_two_ahead():
    from concurrent.futures import ThreadPoolExecutor

    from gravity.run.sweep import runner

    started = []

    class FakeRun:
        def __init__(self, name, groups):
            self.name, self.pending_groups = name, groups

        def compile(self, g):
            started.append((self.name, g))
            return f"{self.name}{g}"

    runs = [FakeRun("a", [0, 1, 2]), FakeRun("b", [0, 3])]
    with ThreadPoolExecutor(2) as pool:
        compiles = runner._Compiles(pool, runs, runner.COMPILE_AHEAD)
        taken = []
        for run in runs:
            for g in run.pending_groups:
                assert compiles.submitted <= len(taken) + runner.COMPILE_AHEAD
                taken.append(compiles.take(run, g))
    assert taken == ["a0", "a1", "a2", "b0", "b3"]
    assert sorted(started) == sorted([("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 3)])
    assert not compiles.futures  # every compiled program was handed over, none kept
