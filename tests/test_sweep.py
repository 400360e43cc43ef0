"""The sweep runner on tiny histories: grouping and trees, sharding over forced CPU devices,
kill-and-resume, divergence isolation, and loading finished sweeps from the store.

Every in-process tree sweep here has the same spec, measurement and chunk shape (8 runs, each
with 2 branches, in two chunks of 4), so they share one compiled program; the 4-device run is a
subprocess (the device count is fixed when JAX starts), launched first so that it compiles while
the in-process tests run.
"""

import dataclasses
import os
import textwrap
from pathlib import Path

import forced_devices
import numpy as np
import pytest

from gravity import presets, results, sweep
from gravity.spec import with_phase

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
    from gravity import results, sweep
    assert len(jax.devices()) == 4, jax.devices()
    res = sweep.run_sweep(tiny_sweep(), store=results.ResultStore({root!r}), progress=False)
    print("devices", res.info["devices"])
    """
)


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
    store = results.ResultStore(tmp_path_factory.mktemp("reference"))
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
    store = results.ResultStore(tmp_path)
    computed = []

    def killed_after_first_chunk(chunk):
        computed.append(chunk.name)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(
            tiny_sweep(), store=store, progress=False, on_chunk=killed_after_first_chunk
        )
    entry = store.entry("sweeps", "tiny", sweep.plan_sweep(tiny_sweep()).config())
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
    for name, value in full.arrays.items():
        np.testing.assert_array_equal(again[name], value)
    forced = results.ResultStore(store.root, force=True)
    redone = sweep.run_sweep(tiny_sweep(), store=forced, progress=False)
    assert not redone.info["loaded_from_store"]
    np.testing.assert_array_equal(
        redone["metrics/benign/harmfulness"], full["metrics/benign/harmfulness"]
    )


def test_divergent_run_is_flagged_and_neighbours_are_bitwise_unchanged(reference):
    full, _ = reference
    res = sweep.run_sweep(tiny_sweep(benign_lrs=(1e-3, 1e12), name="diverging"), progress=False)
    assert res.diverged[1].all() and not res.diverged[0].any()
    assert len(res.diverged_runs) == 8
    assert res.diverged_runs[0] == "benign_lr=1000000000000.0,safety_steps=4,seed=0"
    for name, value in full.arrays.items():
        np.testing.assert_array_equal(res[name][0], value[0], err_msg=name)
    # Aggregates leave the diverged runs out.
    harm = res.valid("metrics/benign/harmfulness")
    assert np.isnan(harm[1]).all() and np.isfinite(harm[0]).all()
    assert sweep.summary(res)["diverged_runs"] == res.diverged_runs


def test_sharded_over_four_devices_equals_one_device(sharded, reference):
    proc, root = sharded
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert "cpu:3" in out.decode()
    full, _ = reference
    res = sweep.run_sweep(tiny_sweep(), store=results.ResultStore(root), progress=False)
    assert res.info["loaded_from_store"] and len(res.info["devices"]) == 4
    np.testing.assert_array_equal(res.diverged, full.diverged)
    for name, value in full.arrays.items():
        # Same runs, partitioned differently: identical up to float rounding in reductions,
        # which the first steps' cosines amplify (their drift is small next to the activations
        # it is the difference of; seen: 3.5e-6 at -O0); a wrong partition moves them by 1e-2+.
        np.testing.assert_allclose(res[name], value, rtol=1e-5, atol=2e-5, err_msg=name)


def test_use_cpu_cores_sets_the_device_count_once(monkeypatch):
    from gravity import runtime

    monkeypatch.setattr(runtime, "_backends_initialised", lambda: False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    assert runtime.use_cpu_cores(3) == 3
    assert os.environ["XLA_FLAGS"].endswith("--xla_force_host_platform_device_count=3")
    assert runtime.use_cpu_cores(5) is None  # the user's (or an earlier) choice is kept
    monkeypatch.setattr(runtime, "_backends_initialised", lambda: True)
    monkeypatch.delenv("XLA_FLAGS")
    assert runtime.use_cpu_cores(3) is None and "XLA_FLAGS" not in os.environ


def test_cli_has_force():
    from gravity.cli import _parser

    assert _parser().parse_args(["run", "overlap", "--force"]).force
    assert not _parser().parse_args(["run", "overlap"]).force


def test_the_store_key_follows_the_engine_source(monkeypatch, tmp_path):
    """A changed engine never serves results an older engine stored."""
    from gravity.sweep import grid

    store = results.ResultStore(tmp_path)
    config = sweep.plan_sweep(tiny_sweep()).config()
    assert config["engine"] == sweep.engine_digest() and len(config["engine"]) == 16
    before = store.entry("sweeps", "tiny", config).path
    monkeypatch.setattr(grid, "engine_digest", lambda: "0" * 16)
    after = store.entry("sweeps", "tiny", sweep.plan_sweep(tiny_sweep()).config()).path
    assert before != after


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
        progress=False,
    )
    assert tree.info["grouping"]["histories"] == 8
    short = with_phase(tiny_spec(4, snapshots=()), "pretrain", steps=20)
    straight = sweep.run_sweep(
        sweep.Sweep("short", (), 2, lambda: (short, presets.standard_knobs(short))),
        progress=False,
    )
    for metric in ("harmfulness", "alignment", "task_loss"):
        name = f"metrics/benign/{metric}"
        np.testing.assert_allclose(tree[name][0, 0], straight[name], atol=1e-6, err_msg=name)
    # Longer pretraining really is another history.
    assert not np.allclose(
        tree["metrics/benign/harmfulness"][1, 0], straight["metrics/benign/harmfulness"]
    )
