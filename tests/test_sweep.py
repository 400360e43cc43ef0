"""The sweep runner on tiny histories: grouping and masking, sharding over forced CPU devices,
kill-and-resume, divergence isolation, and loading finished sweeps from the store.

Every in-process sweep here has the same spec, measurement and chunk shape (16 runs in two chunks
of 8), so they share one compiled program; the 4-device run is a subprocess (the device count is
fixed when JAX starts), launched first so that it compiles while the in-process tests run.
"""

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gravity import presets, results, sweep

SAFETY = (4, 8)
BENIGN_LRS = (1e-3, 3e-3)


def tiny_sweep(benign_lrs=BENIGN_LRS, name="tiny") -> sweep.Sweep:
    """Benign learning rate (vmapped) x safety length (masked) x 4 seeds: 16 runs."""
    spec = sweep.mask_phase(
        presets.standard_spec("mlp", "tiny", keep_params=False), "safety", SAFETY
    )

    def build(benign_lr, safety_steps):
        rates = {"pretrain": 1e-3, "helpful": 1e-3, "safety": 1e-3, "benign": benign_lr}
        lr = sweep.mask_learning_rate(spec, "safety", safety_steps, rates)
        return spec, dataclasses.replace(presets.standard_knobs(spec), learning_rate=lr)

    return sweep.Sweep(
        name=name,
        axes=(sweep.Axis("benign_lr", tuple(benign_lrs)), sweep.Axis("safety_steps", SAFETY)),
        seeds=4,
        build=build,
        max_chunk=8,
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
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
    )
    code = SUBPROCESS.format(tests=str(Path(__file__).parent), root=str(root))
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    yield proc, root
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


@pytest.fixture(scope="module")
def reference(sharded, tmp_path_factory):
    """The tiny sweep uninterrupted on one device, stored."""
    store = results.ResultStore(tmp_path_factory.mktemp("reference"))
    return sweep.run_sweep(tiny_sweep(), store=store, progress=False), store


def test_plan_groups_program_axes_and_vmaps_the_rest():
    def build(pretrain_steps, learning_rate):
        spec = presets.with_phase(
            presets.standard_spec("mlp", "tiny"), "pretrain", steps=pretrain_steps
        )
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
    assert plan.run_name(7) == "pretrain_steps=10,learning_rate=0.002,seed=2"
    masked = sweep.plan_sweep(tiny_sweep()).grouping()
    assert masked["programs"] == 1 and masked["vmapped_axes"] == ["benign_lr", "safety_steps"]
    assert "masked" not in masked["notes"]


def test_mask_learning_rate_trains_one_slot():
    spec = sweep.mask_phase(presets.standard_spec("mlp", "tiny"), "safety", (8, 4))
    assert spec.phase_names == ("pretrain", "helpful", "safety@4", "safety@8", "benign")
    lr = sweep.mask_learning_rate(
        spec, "safety", 8, {"pretrain": 1, "helpful": 2, "safety": 3, "benign": 4}
    )
    np.testing.assert_array_equal(lr, [1, 2, 0, 3, 4])
    assert sweep.phase_named(spec, "safety") == "safety@8"
    with pytest.raises(ValueError, match="safety steps"):
        sweep.mask_learning_rate(spec, "safety", 5, 1e-3)


def test_masked_slots_are_exact_no_ops(reference):
    res, _ = reference
    assert res.shape == (2, 2) and res.n_histories == 16 and not res.diverged.any()
    short = 0  # safety_steps = 4: the 8-step slot is inactive and must not move anything
    before = res["metrics/safety@4/harmfulness"][:, short, :, -1]
    idle = res["metrics/safety@8/harmfulness"][:, short]
    np.testing.assert_array_equal(idle, np.broadcast_to(before[..., None], idle.shape))
    long_ = 1  # safety_steps = 8: the 4-step slot is inactive, so it leaves theta_H as it was
    helpful = res["metrics/helpful/harmfulness"][:, long_, :, -1]
    idle = res["metrics/safety@4/harmfulness"][:, long_]
    np.testing.assert_array_equal(idle, np.broadcast_to(helpful[..., None], idle.shape))
    # Both depths really align: harmfulness falls from theta_H.
    assert np.all(res["metrics/safety@8/harmfulness"][..., -1] < helpful[:, None, :] + 1e-6)


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
        # Same runs, partitioned differently: identical up to float rounding in reductions.
        np.testing.assert_allclose(res[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


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
