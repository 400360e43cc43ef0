"""Limits checked before anything is compiled: the memory a run needs (one run's device
footprint and the results the host holds) against the machine's, the bounds on steps, batch size
and records, and the folders gravity writes to (writable, private, warned about when others can
write them); and a disk that fills up mid-run ending in one line with the finished chunks kept."""

import contextlib
import dataclasses
import errno
import io
import math
import os
import stat
from pathlib import Path
from unittest import mock

import jax
import pytest

from experiments import EXPERIMENTS, experiment
from gravity.engine import history
from gravity.engine.spec import repeat_knobs, with_phase
from gravity.run import cluster, overrides, resources
from gravity.run.cli import main
from gravity.validation import ConfigError

MACHINE = 64 * 2**30
TINY_MLP = ("--set", "size=tiny", "--set", "models=mlp")


def run_main(argv, env: dict[str, str]) -> tuple[int, str, str]:
    """`main(argv)` in this process with `env` set, JAX's process-wide setup left alone and on
    a machine of `MACHINE` bytes: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, env),
        mock.patch("gravity.run.runtime.use_cpu_cores"),
        mock.patch("gravity.run.runtime.jax.config.update"),
        mock.patch("gravity.run.resources.memory_limit", return_value=MACHINE),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("gravity: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def folders(tmp_path) -> dict[str, str]:
    return {
        "GRAVITY_RESULTS": str(tmp_path / "results"),
        "GRAVITY_CACHE": str(tmp_path / "cache"),
        "OUT": str(tmp_path / "out"),
    }


def files_under(folder: str) -> list[Path]:
    return [p for p in Path(folder).rglob("*") if p.is_file()]


# -- memory and bounds, before compute -------------------------------------------------------


@pytest.mark.parametrize(
    "setting, field, what",
    [
        ("phases.safety.batch_size=100000000", "phases.safety.batch_size", "its batch"),
        ("phases.benign.steps=2000000000", "phases.benign.steps", "its per-step arrays"),
    ],
)
def test_a_run_too_large_is_refused_before_anything_is_written(folders, setting, field, what):
    with mock.patch("gravity.run.experiment.run_experiment") as run:
        status, _, err = run_main(
            ["run", "erosion", "--quick", "--set", setting, "--out", folders["OUT"]], folders
        )
    line = one_line(err)
    assert status == 2 and not run.called, err
    for part in (field, "GiB estimated", what, "this machine has 64 GiB"):
        assert part in line, line
    assert files_under(folders["GRAVITY_RESULTS"]) == []


def test_the_bounds_refuse_what_a_large_memory_would_admit():
    erosion = experiment("erosion")
    for setting, message in [
        ("phases.benign.steps=20000000", "phases.benign.steps = 20000000 is invalid: at most"),
        ("phases.safety.batch_size=2000000", "phases.safety.batch_size = 2000000"),
    ]:
        with pytest.raises(ConfigError, match=message):
            overrides.resolve(erosion, [*TINY_MLP[1::2], setting], memory_limit=2**70)
    for field in ("n_records", "dense_steps"):
        with pytest.raises(ConfigError, match=f"phases.benign.{field} = 2000000000 is invalid"):
            overrides.resolve(erosion, [f"phases.benign.{field}=2000000000"])


def test_every_experiment_quick_and_full_passes_the_check():
    """Every config the project ships fits a 16 GiB machine and the bounds (specs are built,
    nothing is planned, traced or compiled)."""
    for name in EXPERIMENTS:
        chosen = experiment(name)
        for quick in (True, False):
            sweeps = chosen.sweeps(chosen.make_config(quick=quick)).values()
            assert resources.check_fits_memory(sweeps, limit=16 * 2**30) > 0, (name, quick)


def test_the_footprint_grows_with_steps_batch_and_branches():
    resolved = overrides.resolve(experiment("blocking"), TINY_MLP[1::2])
    sweep = resolved.sweeps["mlp"]
    spec, _ = sweep.build(**{axis.name: axis.values[0] for axis in sweep.all_axes})
    counts = resources.branch_multiplicity(sweep, spec)
    after = spec.phase_names.index(sweep.levels[0][0])
    assert [counts[name] for name in spec.phase_names[: after + 1]] == [1] * (after + 1)
    assert counts[spec.phase_names[-1]] == math.prod(sweep.branch_shape)
    plain = resources.run_footprint(spec)
    assert resources.run_footprint(spec, counts).bytes > plain.bytes
    longer = resources.run_footprint(with_phase(spec, "benign", steps=10**6))
    wider = resources.run_footprint(with_phase(spec, "benign", batch_size=10**5))
    assert longer.field == "phases.benign.steps" and longer.bytes > 10**6 * 37
    assert wider.field == "phases.benign.batch_size" and wider.bytes > 10**5 * 100


@pytest.mark.parametrize("change", [{"steps": 50_000}, {"batch_size": 5_000}])
def test_the_estimate_is_within_2x_of_xla_for_one_run(change):
    """The estimate against XLA's own memory analysis of one compiled tiny MLP run whose size is
    dominated by the per-step arrays or by the batch."""
    from gravity.engine.presets import standard_knobs, tiny_spec

    spec = with_phase(tiny_spec("mlp"), "benign", **change)
    knobs = repeat_knobs(standard_knobs(spec), 1)
    program = jax.jit(lambda keys, k: history.run_histories(keys, spec, k))
    stats = program.lower(history.seed_keys(range(1)), knobs).compile().memory_analysis()
    xla = stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
    estimate = resources.run_footprint(spec).bytes
    assert xla / 2 <= estimate <= 2 * xla, (estimate, xla)


# -- folders ---------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["GRAVITY_RESULTS", "GRAVITY_CACHE"])
def test_a_store_or_cache_that_cannot_be_written_is_refused(folders, tmp_path, variable):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for bad in (a_file, a_file / "below", Path("/proc/gravity-cannot-be-here")):
        with mock.patch("gravity.run.experiment.run_experiment") as run:
            status, _, err = run_main(
                ["run", "erosion", "--quick", "--out", folders["OUT"]],
                {**folders, variable: str(bad)},
            )
        line = one_line(err)
        assert status == 2 and not run.called, err
        assert line.startswith(f"gravity: {variable} = '{bad}' is invalid: a writable folder")


def test_the_store_and_cache_are_made_private(folders):
    with mock.patch("gravity.run.experiment.run_experiment"):
        status, _, err = run_main(["run", "erosion", "--quick", "--out", folders["OUT"]], folders)
    assert status == 0, err
    for variable in ("GRAVITY_RESULTS", "GRAVITY_CACHE"):
        assert stat.S_IMODE(Path(folders[variable]).stat().st_mode) & 0o077 == 0, variable


def test_a_cache_or_job_folder_others_can_write_is_warned_about(tmp_path, capsys):
    from gravity.run import runtime

    shared = tmp_path / "shared-cache"
    shared.mkdir()
    shared.chmod(0o777)
    with (
        mock.patch.dict(os.environ, {"GRAVITY_CACHE": str(shared), "GRAVITY_SHARED": ""}),
        mock.patch("gravity.run.runtime.jax.config.update"),
    ):
        runtime.enable_compilation_cache()
    err = capsys.readouterr().err
    assert err.startswith(f"gravity: warning: {shared} (the compile cache") and err.count("\n") == 1

    store = tmp_path / "store"
    jobs = store / "jobs" / "erosion"
    jobs.mkdir(parents=True)
    jobs.chmod(0o777)
    request = cluster.Request("erosion", str(store))
    with mock.patch("gravity.run.cluster.executor") as made:
        made.return_value.map_array.return_value = []
        with mock.patch.dict(os.environ, {"GRAVITY_SHARED": ""}):
            cluster.submit(request, cluster.JobOptions(), [0], 1)
        with mock.patch.dict(os.environ, {"GRAVITY_SHARED": "1"}):
            shared_request = dataclasses.replace(request, name="shared")
            cluster.submit(shared_request, cluster.JobOptions(), [0], 1)
    err = capsys.readouterr().err
    assert err.startswith(f"gravity: warning: {jobs} (job pickles") and err.count("\n") == 1
    assert stat.S_IMODE((store / "jobs" / "shared").stat().st_mode) & 0o007 == 0


# -- a full disk mid-run ---------------------------------------------------------------------


def test_a_full_disk_mid_run_ends_in_one_line_and_keeps_finished_chunks(folders):
    """16 tiny MLP histories run as two chunks of 8 on one device; the disk fills up while the
    second chunk is written (its fsync fails with ENOSPC, as a full disk's does)."""
    argv = ["run", "erosion", "--quick", *TINY_MLP, "--set", "seeds=16", "--no-progress"]
    argv += ["--out", folders["OUT"]]
    real_fsync, written = os.fsync, []

    def full_disk(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if Path(target).parent.name == "chunks":
            written.append(target)
            if len(written) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    with mock.patch("os.fsync", full_disk):
        status, _, err = run_main(argv, folders)
    line = one_line(err)
    assert status == 1, err
    assert "No space left on device" in line and "chunks" in line and "g000-c0001" in line, line
    chunks = [p.name for p in files_under(folders["GRAVITY_RESULTS"]) if p.parent.name == "chunks"]
    assert chunks == ["g000-c0000.npz"], chunks

    status, out, err = run_main(argv, folders)
    assert status == 0, err
    assert (Path(folders["OUT"]) / "erosion.json").is_file(), out
