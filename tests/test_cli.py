"""The command line: `--set` overrides (parsed, refused, recorded, hashed), `show`, the memory
check, generated bad command lines (one line, exit 2, never a traceback), and sweeps split into
a job array by the local submitit executor (equal to one process, bitwise; a missing job is
recomputed alone)."""

import collections
import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import experiments
from experiments import EXPERIMENTS, experiment
from gravity.run import cluster, overrides
from gravity.run.cli import main
from gravity.run.experiment import BuildOnce, catalogue, load, run_experiment
from gravity.run.store import RESULTS_ENV, ResultStore, config_hash
from gravity.run.sweep import plan_sweep, run_sweeps, store_entry
from gravity.validation import ConfigError

TINY = ("--set", "size=tiny", "--set", "seeds=2", "--set", "models=mlp")


def run_main(argv) -> tuple[int, str, str]:
    """`main(argv)` in this process with nothing run or set up: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch("gravity.run.runtime.use_cpu_cores"),
        mock.patch("gravity.run.runtime.enable_compilation_cache"),
        mock.patch("gravity.run.experiment.run_experiment"),
        mock.patch("gravity.run.cli._run_on_cluster", return_value=0),
        mock.patch("gravity.run.cli._assemble", return_value=0),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            status = main(list(argv))
        except SystemExit as exit_:  # --help
            status = exit_.code
    return status, out.getvalue(), err.getvalue()


def assert_one_line(status, err, *fields):
    assert status == 2, err
    line = err.strip()
    assert line.startswith("gravity: ") and "\n" not in line and "Traceback" not in line, err
    for field in fields:
        assert field in line, line


def test_show_prints_the_resolved_config_with_an_override():
    status, out, _ = run_main(["show", "blocking", "--quick", "--set", "world.benign_overlap=0.1"])
    assert status == 0
    assert "world.benign_overlap = 0.1" in out and "benign_overlap=0.1" in out
    chosen = experiment("blocking")
    n_histories = chosen.n_histories(chosen.make_config(quick=True))
    assert "seeds = 4" in out and f"{n_histories} histories" in out


@pytest.mark.parametrize(
    "setting, field",
    [
        ("nonsense=1", "--set"),
        ("world.gravity=0.1", "--set"),
        ("world.benign_overlap=1.5", "benign_overlap"),
        ("world.benign_overlap=nan", "world.benign_overlap"),
        ("learning_rate=inf", "learning_rate"),
        ("learning_rate=-1e-3", "learning_rate"),
        ("seeds=2.5", "seeds"),
        ("seeds=99999999999", "seeds"),
        ("models=cnn", "model"),
        ("phases.benign.learning_rate=1e39", "float32 holds"),
        ("phases.benign.steps=0", "benign.steps"),
        ("phases.benign.steps=ten", "phases.benign.steps"),
        ("phases.unlearn.steps=10", "phases.unlearn.steps"),
        ("phases.benign.name=other", "phases.benign.FIELD"),
        ("phases.benign.dense_steps=5", "recorded steps"),
        ("no_equals_sign", "--set"),
        ("model.readout_only=maybe", "model.readout_only"),
        ("model.d_modl=64", "did you mean model.d_model"),
        ("model.kind=mlp", "--set"),
        ("model.d_model=0", "model.d_model"),
        ("model.hidden=", "model.hidden"),
        ("model.n_heads=3", "divisor of d_model"),
    ],
)
def test_bad_settings_end_in_one_line_naming_the_field(setting, field):
    status, _, err = run_main(["show", "blocking", "--quick", "--set", setting])
    assert_one_line(status, err, field)


def test_overrides_the_axes_sweep_or_another_engine_are_refused():
    status, _, err = run_main(["show", "overlap", "--quick", "--set", "world.benign_overlap=0.1"])
    assert_one_line(status, err, "world.benign_overlap", "does not vary")
    status, _, err = run_main(["show", "traits", "--quick", "--set", "world.benign_overlap=0.1"])
    assert_one_line(status, err, "world.benign_overlap", "HistorySpec")


def test_overrides_reach_the_history_sweeps_beside_other_runs():
    # metastability also runs Langevin wells (not histories): they are kept as they are
    status, out, _ = run_main(["show", "metastability", "--quick", "--set", "world.harm_prob=0.5"])
    assert status == 0
    assert "harm_prob=0.5" in out


def test_model_overrides_set_their_family_only():
    resolved = overrides.resolve(
        experiment("erosion"),
        ["size=tiny", "model.readout_only=true", "model.d_model=12", "model.hidden=5,7"],
    )
    mlp, _ = resolved.sweeps["mlp"].build()
    transformer, _ = resolved.sweeps["transformer"].build()
    assert mlp.model.hidden == (5, 7) and not mlp.model.readout_only
    assert transformer.model.readout_only and transformer.model.d_model == 12
    status, out, _ = run_main(["show", "erosion", "--quick", "--set", "model.readout_only=1"])
    assert status == 0 and "readout_only=True" in out and "model: mlp hidden=128,128" in out
    status, out, _ = run_main(["show", "erosion", "--quick", "--set", "model.readout_only=false"])
    assert status == 0 and "readout_only=False" in out


def test_a_model_override_of_a_family_not_run_is_refused():
    status, _, err = run_main(["show", "basin_depth", "--quick", "--set", "model.d_model=64"])
    assert_one_line(status, err, "model.d_model", "transformer's")


def test_huge_seeds_are_refused_with_the_estimate_and_the_limit(tmp_path):
    status, _, err = run_main(
        ["run", "erosion", "--quick", "--seeds", "99999999999", "--out", str(tmp_path)]
    )
    assert_one_line(status, err, "histories", "GiB estimated", "this machine has")


def test_overrides_change_the_specs_knobs_and_store_key():
    chosen = experiment("blocking")
    plain = overrides.resolve(chosen, ["size=tiny", "models=mlp"])
    changed = overrides.resolve(
        chosen, ["size=tiny", "models=mlp", "world.benign_overlap=0.1", "phases.benign.steps=30"]
    )
    spec, knobs = changed.sweeps["mlp"].build(arm=changed.sweeps["mlp"].branches[0].values[0])
    assert spec.phase("benign").steps == 30 and knobs.world.benign_overlap == 0.1
    hashes = [config_hash(plan_sweep(r.sweeps["mlp"], 1).config()) for r in (plain, changed)]
    assert hashes[0] != hashes[1]
    assert overrides.record(changed.overrides)["world.benign_overlap"] == 0.1


def test_phase_learning_rate_override_sets_that_phase_only():
    resolved = overrides.resolve(
        experiment("erosion"), ["size=tiny", "models=mlp", "phases.benign.learning_rate=3e-3"]
    )
    _, knobs = resolved.sweeps["mlp"].build()
    rates = {name: float(rate) for name, rate in knobs.learning_rate.items()}
    assert rates["benign"] == pytest.approx(3e-3) and rates["safety"] == pytest.approx(1e-3)


NAMES = ["erosion", "blocking", "overlap", "basin_depth", "nonsense", "", "erosion\nx"]
FIELDS = [
    "seeds", "learning_rate", "models", "size", "map_seeds", "strength", "dose_strengths",
    "world.benign_overlap", "world.harm_prob", "world.relearn_examples", "world.x",
    "phases.benign.steps", "phases.pretrain.batch_size", "phases.benign.learning_rate",
    "phases.benign.optimizer", "phases.benign.snapshots", "phases.nope.steps", "measure", "",
]  # fmt: skip
NUMBERS = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-0", "1e-3", "0.1", "true", "mlp", "mlp,transformer", ""]),
    st.text(max_size=8),
)
OPTIONS = st.one_of(
    st.just(["--quick"]),
    st.tuples(st.just("--seeds"), NUMBERS).map(list),
    st.tuples(st.just("--set"), st.tuples(st.sampled_from(FIELDS), NUMBERS).map("=".join)).map(
        list
    ),
    st.tuples(st.just("--set"), st.text(max_size=12)).map(list),
    st.tuples(
        st.just("--out"), st.sampled_from(["/proc/x", "/dev/null/x", "out", "a\x00b", ""])
    ).map(list),
    st.tuples(st.just("--executor"), st.sampled_from(["local", "slurm", "pbs"])).map(list),
    st.tuples(st.just("--jobs"), NUMBERS).map(list),
    st.just(["--force"]),
    st.just(["--help"]),
)
COMMAND_LINES = st.tuples(
    st.sampled_from(["run", "show", "collect", "list", "bogus"]),
    st.one_of(st.sampled_from(NAMES), st.text(max_size=10)),
    st.lists(OPTIONS, max_size=4),
).map(lambda t: [t[0], t[1], *[word for option in t[2] for word in option]])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv=COMMAND_LINES)
def test_generated_command_lines_exit_0_or_2_without_a_traceback(argv, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cwd", numbered=True)
    here = os.getcwd()
    os.chdir(folder)
    try:
        with mock.patch.dict(os.environ, {RESULTS_ENV: str(folder / "results")}):
            status, _, err = run_main(argv)
    finally:
        os.chdir(here)
    assert status in (0, 2), (argv, status, err)
    if status == 2:
        assert_one_line(status, err)


def test_resolution_errors_of_an_experiment_become_one_line():
    chosen = dataclasses.replace(experiment("erosion"), sweeps=_raises)
    with pytest.raises(ConfigError, match="--set 'seeds=3' is invalid: ZeroDivisionError"):
        overrides.resolve(chosen, ["seeds=3"])


def _raises(config):
    raise ZeroDivisionError("division by zero")


# -- one resolution: sweeps called once, every grid point built once --------------------------

# Tiny erosion with a 2 x 2 knob map beside the straight sweep (5 grid points in all) and a
# history override, so the overridden path is counted too.
COUNTED = (
    "erosion", "--quick", *TINY, "--set", "map_seeds=1", "--set", "map_harm_probs=0,0.5",
    "--set", "map_overlaps=0,1", "--set", "phases.benign.learning_rate=0.002",
)  # fmt: skip
COUNTED_POINTS = 5


def counted(name: str):
    """The experiment `name` with its `sweeps` and every sweep's `build` counting their calls:
    (experiment, Counter of "sweeps" and of (sweep label, grid point))."""
    chosen = experiment(name)
    calls = collections.Counter()

    def counting(label, build):
        def counted_build(**point):
            calls[label, tuple(sorted(point.items()))] += 1
            return build(**point)

        return counted_build

    def sweeps(config):
        calls["sweeps"] += 1
        made = chosen.sweeps(config)
        return {k: dataclasses.replace(s, build=counting(k, s.build)) for k, s in made.items()}

    return dataclasses.replace(chosen, sweeps=sweeps), calls


def assert_resolved_once(calls, points=COUNTED_POINTS):
    assert calls["sweeps"] == 1, calls
    built = {key: n for key, n in calls.items() if key != "sweeps"}
    assert len(built) == points and set(built.values()) == {1}, built


def no_figure(config, results, numbers, path):
    """No figure: these tests count builds (figures are tested with their experiments)."""


def counted_main(argv, tmp_path, options=()):
    """`main(argv)` in this process on a counted experiment (its figure not drawn), JAX's
    process-wide setup left alone, folders under `tmp_path`, jobs never submitted:
    (status, stdout, stderr, calls)."""
    chosen, calls = counted(argv[1])
    chosen = dataclasses.replace(chosen, plot=no_figure)
    env = {RESULTS_ENV: str(tmp_path / "results"), "GRAVITY_CACHE": str(tmp_path / "cache")}
    job = mock.Mock(job_id="7")
    with (
        mock.patch.dict(os.environ, env),
        mock.patch("gravity.run.experiment.load", return_value=chosen),
        mock.patch("gravity.run.runtime.use_cpu_cores"),
        mock.patch("gravity.run.runtime.enable_compilation_cache"),
        mock.patch("gravity.run.cluster.submit", return_value=[job]),
        contextlib.redirect_stdout(io.StringIO()) as out,
        contextlib.redirect_stderr(io.StringIO()) as err,
    ):
        status = main([*argv, *options])
    return status, out.getvalue(), err.getvalue(), calls


def test_show_resolves_once(tmp_path):
    status, out, err, calls = counted_main(("show", *COUNTED), tmp_path)
    assert status == 0 and "phases.benign.learning_rate = 0.002" in out, err
    assert_resolved_once(calls)


def test_run_resolves_once_and_runs_what_it_resolved(tmp_path):
    """The whole run: the checks, the runner's plan, summarise and the report read one
    resolution; the report records the override."""
    out = tmp_path / "out"
    status, _, err, calls = counted_main(
        ("run", *COUNTED), tmp_path, ("--out", str(out), "--no-progress")
    )
    assert status == 0, err
    assert_resolved_once(calls)
    report = json.loads((out / "erosion.json").read_text())
    assert report["config"]["overrides"]["phases.benign.learning_rate"] == 0.002
    assert report["config"]["map_seeds"] == 1
    assert report["n_histories"] == 2 + 2 * 2


def test_cluster_run_and_each_job_resolve_once(tmp_path):
    """`run --executor` resolves once to find the missing chunks and submit; a job, given only
    the command line's values, resolves once in its own process."""
    status, out, err, calls = counted_main(
        ("run", *COUNTED), tmp_path, ("--executor", "local", "--jobs", "2", "--no-wait")
    )
    assert status == 0 and "submitted 1 of 2 jobs (7)" in out, err
    assert_resolved_once(calls)
    chosen, calls = counted("erosion")
    request = cluster.Request("erosion", str(tmp_path / "results"), tuple(COUNTED[3::2]), True)
    with (
        mock.patch("gravity.run.experiment.load", return_value=chosen),
        mock.patch("gravity.run.runtime.enable_compilation_cache"),
    ):
        assert cluster.run_shard(request, 999, 1000) == 0  # a job with no chunk left to compute
    assert_resolved_once(calls)


def test_run_experiment_of_an_experiment_and_config_resolves_once(tmp_path):
    """The library's path (an Experiment and its config): the runner's plan and any other plan
    of the same sweeps read one build of each point."""
    chosen, calls = counted("erosion")
    fields = [s for s in COUNTED[3::2] if not s.startswith("phases.")]
    config = overrides.parse_command(chosen, fields, quick=True).config
    with mock.patch("gravity.run.sweep.run_sweeps", side_effect=RuntimeError("planned")) as run:
        with pytest.raises(RuntimeError, match="planned"):
            run_experiment(chosen, config, out_dir=tmp_path, store=False, progress=False)
    for sweep in run.call_args.args[0]:
        plan_sweep(sweep, 1)
        plan_sweep(sweep, 2)
    assert_resolved_once(calls)


def test_build_once_builds_each_point_once_and_compares_as_its_build():
    built = collections.Counter()

    def build(**point):
        built[repr(sorted(point.items()))] += 1
        return point, None

    once = BuildOnce(build)
    for _ in range(3):
        assert once(a=1, b=(2, 3)) == once(b=(2, 3), a=1) == ({"a": 1, "b": (2, 3)}, None)
        once(a=[1])  # a point that cannot be hashed is built each time
    assert built == {"[('a', 1), ('b', (2, 3))]": 1, "[('a', [1])]": 3}
    assert once == BuildOnce(build) and hash(once) == hash(BuildOnce(build))


# -- the experiments are discovered ------------------------------------------------------------


def test_the_experiments_are_the_modules_that_declare_one():
    modules = sorted(p.stem for p in Path(experiments.__file__).parent.glob("[!_]*.py"))
    declared = [m for m in modules if hasattr(import_module(f"experiments.{m}"), "EXPERIMENT")]
    assert list(EXPERIMENTS) == declared and "erosion" in declared
    assert EXPERIMENTS == {name: experiment(name).description for name in EXPERIMENTS}
    assert catalogue() == EXPERIMENTS


PACKAGE = {
    "__init__.py": "",
    "alpha.py": "from gravity.run.experiment import Experiment\n"
    "EXPERIMENT = Experiment('alpha', 'the first', *[None] * 5)\n",
    "_private.py": "raise ImportError('never imported')\n",
    "helpers.py": "VALUE = 1\n",
    "misnamed.py": "from gravity.run.experiment import Experiment\n"
    "EXPERIMENT = Experiment('other', 'wrong', *[None] * 5)\n",
}


def test_discovery_finds_declared_experiments_and_refuses_a_misnamed_one(tmp_path, monkeypatch):
    package = tmp_path / "found_experiments"
    package.mkdir()
    for name, text in PACKAGE.items():
        (package / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("gravity.run.experiment.PACKAGE", package.name)
    assert load("alpha").description == "the first"
    with pytest.raises(ConfigError, match="misnamed.py: EXPERIMENT.name = 'other'"):
        catalogue()
    (package / "misnamed.py").unlink()
    assert catalogue() == {"alpha": "the first"}
    with pytest.raises(ConfigError, match="one of alpha; did you mean alpha"):
        load("alpah")
    with pytest.raises(ConfigError, match="experiment = 'helpers' is invalid: one of alpha"):
        load("helpers")


# -- the real command, and a job array through the local executor -----------------------------


def gravity(*argv, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gravity.run.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    env = dict(os.environ, JAX_PLATFORMS="cpu", CI="1")
    env[RESULTS_ENV] = str(root / "results")
    return root, env


def test_run_records_the_override_in_the_json(cli_env):
    root, env = cli_env
    out = root / "blocking"
    proc = gravity(
        "run", "blocking", "--quick", *TINY, "--set", "world.benign_overlap=0.1",
        "--out", str(out), env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "blocking.json").read_text())
    assert report["config"]["overrides"]["world.benign_overlap"] == 0.1
    expected = overrides.resolve(experiment("blocking"), TINY[1::2], quick=True).n_histories
    assert report["config"]["size"] == "tiny" and report["n_histories"] == expected


# 16 seeds of the tiny MLP erosion history: two chunks of 8 on one device, so two jobs.
CLUSTER = ("erosion", "--quick", "--set", "size=tiny", "--set", "models=mlp", "--set", "seeds=16")


def test_job_array_equals_one_process_and_reruns_only_a_missing_job(cli_env):
    """Job 1 of the array never runs, as if killed before it wrote anything (cancelling a live
    local job, a SIGINT, raced: once seen, the job had already finished its chunk); the rerun
    submits only job 1."""
    root, env = cli_env
    request = cluster.Request(CLUSTER[0], env[RESULTS_ENV], tuple(CLUSTER[3::2]), True)
    resolved = request.resolve()
    store = ResultStore(request.store)
    assert cluster.chunk_table(resolved.sweeps, store, request.name) == [False, False]

    options = cluster.JobOptions("local", jobs=2, timeout_min=20)
    with mock.patch.dict(os.environ, env):
        [job] = cluster.submit(request, options, [0], 2)
    assert job.result() == 1
    assert cluster.chunk_table(resolved.sweeps, store, request.name) == [True, False]
    assert cluster.missing_shards([True, False], 2) == {1: 1}

    out = root / "cluster"
    proc = gravity(
        "run", *CLUSTER, "--executor", "local", "--jobs", "2", "--out", str(out), env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "submitted 1 of 2 jobs" in proc.stdout and "job 1 computed 1 chunks" in proc.stdout
    assert (out / "erosion.json").is_file()

    import jax

    [alone] = run_sweeps(
        list(resolved.sweeps.values()), store=False, devices=jax.devices()[:1], progress=False
    )
    plan = plan_sweep(resolved.sweeps["mlp"], cluster.JOB_DEVICES)
    entry = store_entry(store, request.name, plan, jax.devices()[: cluster.JOB_DEVICES])
    stored, _ = entry.load()
    np.testing.assert_array_equal(stored.pop("__diverged__"), alone.diverged)
    assert set(stored) == set(alone.arrays)
    for name, array in alone.arrays.items():
        np.testing.assert_array_equal(stored[name], array, err_msg=name)
    again = gravity("collect", *CLUSTER, "--out", str(out), env=env)
    assert again.returncode == 0, again.stderr[-3000:]


def test_collect_of_a_run_never_computed_says_what_is_missing(cli_env):
    _, env = cli_env
    proc = gravity("collect", "erosion", "--quick", "--set", "size=tiny", "--set", "seeds=3",
                   "--out", str(Path(env[RESULTS_ENV]) / "nothing"), env=env)  # fmt: skip
    assert proc.returncode == 1 and "chunks are not in" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_slurm_path_submits_one_job_array_with_the_requested_resources(tmp_path, monkeypatch):
    """The Slurm executor as far as this machine can take it: without Slurm on PATH it is
    refused in one line; with stand-ins for `sbatch` and `srun` the submission goes through, and
    the script sbatch was given is a job array of one task per shard with the requested time,
    partition and cores, each task pickled as run_shard(request, shard, jobs)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    submitted = tmp_path / "submitted.sh"
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\ncp "$1" {submitted}\necho "Submitted batch job 4242"\n'
    )
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    for command in ("sbatch", "srun"):
        (bin_dir / command).chmod(0o755)
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    status, _, err = run_main(["run", "erosion", "--quick", "--executor", "slurm"])
    assert_one_line(status, err, "--executor", "sbatch, srun not found on PATH")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{path}")
    request = cluster.Request("erosion", str(tmp_path / "results"), ("size=tiny",), True)
    options = cluster.JobOptions("slurm", jobs=3, timeout_min=30, partition="debug", cpus_per_job=2)
    jobs = cluster.submit(request, options, [0, 2], 3)
    assert [job.job_id for job in jobs] == ["4242_0", "4242_1"]
    script = submitted.read_text()
    # Two missing shards of three jobs: an array of two tasks, both allowed to run at once.
    for line in ("--array=0-1%2", "--time=30", "--partition=debug", "--cpus-per-task=2"):
        assert f"#SBATCH {line}" in script, script
    import submitit

    tasks = [submitit.helpers.DelayedSubmission.load(job.paths.submitted_pickle) for job in jobs]
    assert [(t.function, t.args) for t in tasks] == [
        (cluster.run_shard, (request, shard, 3)) for shard in (0, 2)
    ]
