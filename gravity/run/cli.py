"""`gravity list | show | run | collect`: experiments from the command line.

    gravity list
    gravity show NAME [--quick] [--seeds N] [--set NAME=VALUE ...]
    gravity run NAME [--quick] [--seeds N] [--set NAME=VALUE ...] [--out DIR] [--force]
                     [--executor local|slurm --jobs N ...]
    gravity collect NAME [the same options as the run]
    gravity plot NAME [--quick] [--seeds N] [--set ...] [--out DIR]   (the figure from its JSON)
    gravity verdicts | costs | defence-table   (tables read from figures/NAME.json)

Every experiment runs through one path (`gravity.run.experiment.run_experiment`), so the options
mean the same everywhere. Full-size runs write to `figures/` (the committed figures); quick runs
write to `figures/quick/` (not committed), so `make run` never overwrites a full figure.
`--set` changes any config field, world knob or phase field (`gravity.run.overrides`; every one is
listed in docs/knobs.md); `show` prints what a command line resolves to without running it, each
phase with its optimizer and weight decay. A command line is parsed once and its run prepared
once (`gravity.run.experiment.Prepared`: the experiment's sweeps made once, every grid point built
once), which `show` prints, `run` runs and `--executor` splits. Without NAME, `run`, `show` and
`collect` list the experiments (found in `experiments/`, `gravity.run.experiment.catalogue`) and
exit 2.

Runs keep their sweeps in the result store (`gravity.run.store`; $GRAVITY_RESULTS, else
`results/`): running a finished configuration again loads it, `--force` computes it again. On CPU
the host is split into one XLA device per core before JAX starts
(`gravity.run.runtime.use_cpu_cores`; a device count already in XLA_FLAGS is kept), so sweeps shard
their runs over the cores. With `--executor`, the sweeps' chunks are split into a job array instead
(`gravity.run.cluster`) and the figure is assembled when every job is done (or later by `collect`).

Bad input (an unknown experiment or field, a bad number, a run too large for the machine's
memory or beyond `gravity.run.resources`' bounds, an output, result store ($GRAVITY_RESULTS) or
compile cache ($GRAVITY_CACHE) folder that cannot be written) ends with one line naming the field
and what is allowed, exit status 2, and no traceback, before anything is compiled. A read or
write that fails mid-run (a full disk) ends with one line naming the path and the reason, exit
status 1; the chunks already finished stay in the store, so the same command resumes.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from gravity.validation import ConfigError

FULL_OUT = Path("figures")
QUICK_OUT = Path("figures/quick")


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one-line `ConfigError`s (exit 2, no usage block)."""

    def error(self, message: str):
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    from gravity.run.cluster import EXECUTORS

    parser = _Parser(
        prog="gravity", description="Toy-model tests of the gravitational reading of reversion."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the experiments")
    _add_table_commands(commands)
    chosen = _Parser(add_help=False)
    chosen.add_argument("name", nargs="?", help="an experiment name (see `gravity list`)")
    chosen.add_argument("--quick", action="store_true", help="the small default size")
    chosen.add_argument("--seeds", type=int, default=None, help="number of seeds (runs)")
    chosen.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a config field, world.FIELD or phases.PHASE.FIELD (repeatable)",
    )
    commands.add_parser("show", parents=[chosen], help="print the resolved config; run nothing")
    run = commands.add_parser(
        "run", parents=[chosen], help="run an experiment: writes DIR/NAME.png and .json"
    )
    collect = commands.add_parser(
        "collect", parents=[chosen], help="assemble a cluster run's figure and JSON"
    )
    redraw = commands.add_parser(
        "plot", parents=[chosen], help="draw DIR/NAME.png again from DIR/NAME.json; run nothing"
    )
    redraw.add_argument(
        "--out", type=Path, default=None, help="the figure's folder (figures/, or figures/quick/)"
    )
    for sub in (run, collect):
        sub.add_argument(
            "--out", type=Path, default=None, help="output folder (figures/, or figures/quick/)"
        )
        sub.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument(
        "--force", action="store_true", help="recompute results already in the result store"
    )
    run.add_argument("--executor", choices=EXECUTORS, default=None, help="run as a job array")
    run.add_argument("--jobs", type=int, default=2, help="jobs in the array (with --executor)")
    run.add_argument("--timeout-min", type=int, default=60, help="each job's time limit")
    run.add_argument("--partition", default=None, help="the Slurm partition")
    run.add_argument("--gpus-per-job", type=int, default=0, help="GPUs per job (one is used)")
    run.add_argument("--cpus-per-job", type=int, default=1, help="CPUs per Slurm job")
    run.add_argument("--no-wait", action="store_true", help="submit, then `collect` later")
    return parser


def _add_table_commands(commands) -> None:
    """`verdicts`, `costs` and `defence-table`: tables read from the committed figures' JSON."""
    verdicts = commands.add_parser(
        "verdicts", help="the scoreboard: every claim's verdict from figures/NAME.json"
    )
    verdicts.add_argument("names", nargs="*", metavar="NAME", help="only these experiments")
    verdicts.add_argument("--figures", type=Path, default=None, help="where NAME.json lie")
    verdicts.add_argument("--markdown", action="store_true", help="print a Markdown table")
    verdicts.add_argument("--readme", type=Path, default=None, help="write the summary into it")
    verdicts.add_argument("--page", type=Path, default=None, help="write the table into it")
    costs = commands.add_parser("costs", help="what each figure cost, from figures/NAME.json")
    costs.add_argument("--figures", type=Path, default=None, help="where NAME.json lie")
    costs.add_argument("--markdown", action="store_true", help="print a Markdown table")
    costs.add_argument("--page", type=Path, default=None, help="write the table into it")
    table = commands.add_parser(
        "defence-table", help="the defences page's tables, from figures/arena.json"
    )
    table.add_argument("--figures", type=Path, default=None, help="where arena.json lies")
    table.add_argument("--page", type=Path, default=None, help="write the tables into it")


def writable_folder(path: Path, field: str = "--out", private: bool = False) -> Path:
    """Create `path` if needed and prove it writable, before any compilation; `field` names
    where it came from in the one-line refusal. `private` folders (the result store, the compile
    cache) are made by `gravity.run.folders.make_folder`: 0700, or 0770 with GRAVITY_SHARED=1."""
    from gravity.run.folders import make_folder

    try:
        make_folder(path) if private else path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".gravity-probe-"):
            pass
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError(f"{field} = '{path}' is invalid: a writable folder ({reason})") from None
    return path


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command not in ("list", "verdicts", "costs", "defence-table") and args.name is None:
            return _name_needed(args)
        return COMMANDS[args.command](args)
    except ConfigError as error:
        print(f"gravity: {_one_line(str(error))}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"gravity: {_one_line(os_error_line(error))}", file=sys.stderr)
        return 1


def _one_line(message: str) -> str:
    return message.replace("\r", "\\r").replace("\n", "\\n")


def os_error_line(error: OSError) -> str:
    """`PATH: REASON` for a failed read or write (a full disk mid-run; the store's writes name
    their file, `gravity.run.report.atomic_write`), then what is kept."""
    path = error.filename
    reason = error.strerror or str(error) or type(error).__name__
    where = f"{path}: " if path is not None else ""
    return f"{where}{reason} (finished chunks are kept: the same command again resumes from them)"


def _list(args) -> int:
    from gravity.run.experiment import catalogue

    experiments = catalogue()
    width = max(map(len, experiments))
    for name, description in experiments.items():
        print(f"{name:<{width}}  {description}")
    return 0


def _name_needed(args) -> int:
    """`gravity run` (or show, collect) without a name: the experiments, as `gravity list`
    prints them, then one line on stderr saying a name is needed; exit 2."""
    _list(args)
    raise ConfigError(
        f"{args.command} needs an experiment name: gravity {args.command} NAME (one of the above)"
    )


def _parsed(args):
    """The experiment, config and overrides the command line asks for, parsed and checked once
    (`gravity.run.overrides.parse_command`); nothing is built and JAX is untouched."""
    from gravity.run.experiment import load
    from gravity.run.overrides import parse_command

    return parse_command(load(args.name), args.set, quick=args.quick, seeds=args.seeds)


def _prepare(args) -> Path:
    """The folders checked (the output folder, the result store's and the compile cache's),
    then JAX set up for this machine; before anything is built or compiled."""
    from gravity.run.runtime import CACHE_ENV, cache_dir, enable_compilation_cache, use_cpu_cores
    from gravity.run.store import RESULTS_ENV, default_root

    out = writable_folder(args.out or (QUICK_OUT if args.quick else FULL_OUT))
    writable_folder(default_root(), RESULTS_ENV, private=True)
    writable_folder(cache_dir(), CACHE_ENV, private=True)
    use_cpu_cores()
    enable_compilation_cache()
    return out


def _show(args) -> int:
    print(describe(_parsed(args).resolve()))
    return 0


def describe(prepared) -> str:
    """What a prepared run (`gravity.run.experiment.Prepared`) would run: config, overrides,
    histories per sweep, and each sweep's first history (its world knobs and phases)."""
    import dataclasses

    from gravity.run.report import to_jsonable

    sweeps = prepared.sweeps
    lines = [
        f"{prepared.name}: {prepared.n_histories} histories in {len(sweeps)} sweeps",
        "config:",
    ]
    for field in dataclasses.fields(prepared.config):
        lines.append(f"  {field.name} = {_text(getattr(prepared.config, field.name))}")
    lines.append("overrides:" if prepared.overrides else "overrides: none")
    lines += [f"  {o.name} = {_text(o.value)}" for o in prepared.overrides]
    from gravity.engine.spec import HistorySpec
    from gravity.run.resources import sweep_histories

    lines.append("sweeps (the first history of each):")
    for label, sweep in sweeps.items():
        axes = ", ".join(f"{a.name} x{len(a.values)}" for a in sweep.all_axes) or "no axes"
        lines.append(f"  {label}: {sweep_histories(sweep)} histories ({axes}; {sweep.seeds} seeds)")
        spec, knobs = sweep.build(**{a.name: a.values[0] for a in sweep.all_axes})
        if not isinstance(spec, HistorySpec):
            lines.append(f"    {type(spec).__name__}")
            continue
        lines.append("    model: " + model_text(spec.model))
        world = to_jsonable(knobs.world)
        lines.append(
            "    world: " + " ".join(f"{k}={_text(v)}" for k, v in world.items() if k != "__type__")
        )
        for phase in spec.phases:
            rate = _text(to_jsonable(knobs.learning_rate[phase.name]))
            lines.append(
                f"    phase {phase.name}: {phase.data}, {phase.steps} steps x {phase.batch_size},"
                f" {optimizer_text(phase)}, lr {rate}"
            )
    return "\n".join(lines)


def model_text(model) -> str:
    """A model as `show` prints it: its kind and the size fields its family reads."""
    from gravity.engine.models import SIZE_FIELDS

    sizes = [
        f"{f}={_text(getattr(model, f))}" for f, kind in SIZE_FIELDS.items() if kind == model.kind
    ]
    return " ".join([model.kind, *sizes])


def optimizer_text(phase) -> str:
    """A phase's optimizer as `show` prints it: "adam", or with its decay, "adamw (wd 0.1)"."""
    from gravity.engine.spec import DECAYING

    if phase.optimizer in DECAYING:
        return f"{phase.optimizer} (wd {_text(float(phase.weight_decay))})"
    return phase.optimizer


def _text(value) -> str:
    if isinstance(value, tuple | list):
        return ",".join(map(_text, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _run(args) -> int:
    parsed = _parsed(args)
    out = _prepare(args)
    options = _job_options(args) if args.executor is not None else None
    prepared = parsed.resolve()
    if options is not None:
        return _run_on_cluster(args, options, prepared, out)
    from gravity.run.store import ResultStore

    return _write(args, prepared, out, ResultStore(force=args.force))


def _write(args, prepared, out: Path, store, devices=None) -> int:
    """Run (or load) the prepared experiment and write its figure and JSON."""
    from gravity.run.experiment import run_experiment

    start = time.perf_counter()
    run_experiment(
        prepared,
        out_dir=out,
        store=store,
        progress=not args.no_progress and "CI" not in os.environ,
        devices=devices,
    )
    print(f"wrote {out / (args.name + '.png')} and .json in {time.perf_counter() - start:.1f} s")
    return 0


def _job_options(args):
    from gravity.run.cluster import JobOptions

    return JobOptions(
        args.executor,
        args.jobs,
        args.timeout_min,
        args.partition,
        args.gpus_per_job,
        args.cpus_per_job,
    )


def _run_on_cluster(args, options, prepared, out: Path) -> int:
    """Submit the jobs whose chunks are missing, wait for them, then assemble."""
    from gravity.run import cluster
    from gravity.run.store import ResultStore, default_root

    store = ResultStore()
    request = cluster.Request(
        args.name, str(default_root().absolute()), tuple(args.set), args.quick, args.seeds
    )
    if args.force:
        cluster.clear(prepared.sweeps, store, args.name)
    present = cluster.chunk_table(prepared.sweeps, store, args.name)
    count = min(options.jobs, len(present))
    shards = sorted(cluster.missing_shards(present, count))
    if shards:
        jobs = cluster.submit(request, options, shards, count)
        ids = ", ".join(job.job_id for job in jobs)
        print(f"submitted {len(jobs)} of {count} jobs ({ids}) for {present.count(False)} chunks")
        if args.no_wait:
            print(f"then: gravity collect {' '.join(_same_options(args, out))}")
            return 0
        computed, failures = cluster.wait(jobs, shards)
        for shard, n_chunks in sorted(computed.items()):
            print(f"job {shard} computed {n_chunks} chunks")
        for failure in failures:
            print(f"gravity: {_one_line(failure)}", file=sys.stderr)
        if failures:
            print("gravity: the same command again computes the missing chunks", file=sys.stderr)
            return 1
    return _assemble(args, prepared, out)


def _same_options(args, out: Path) -> list[str]:
    """The command-line options that identify a run (what `collect` must be given again)."""
    words = [args.name, *(["--quick"] if args.quick else [])]
    words += ["--seeds", str(args.seeds)] if args.seeds is not None else []
    for setting in args.set:
        words += ["--set", shlex.quote(setting)]
    return [*words, "--out", shlex.quote(str(out))]


def _plot(args) -> int:
    """`gravity plot NAME [--quick] [--seeds N] [--set ...] [--out DIR]`: the figure drawn again
    from its JSON (`gravity.run.experiment.redraw`), for a figure that reads only its numbers."""
    from gravity.run.experiment import redraw

    out = args.out or (QUICK_OUT if args.quick else FULL_OUT)
    print(f"drew {redraw(_parsed(args).resolve(), out)} from its JSON")
    return 0


def _collect(args) -> int:
    parsed = _parsed(args)
    out = _prepare(args)
    return _assemble(args, parsed.resolve(), out)


def _assemble(args, prepared, out: Path) -> int:
    """The figure and JSON from a cluster run's chunks, once all are in the store (exit 1 and
    what is missing, otherwise)."""
    import jax

    from gravity.run import cluster
    from gravity.run.store import ResultStore

    store = ResultStore()
    present = cluster.chunk_table(prepared.sweeps, store, args.name)
    if not all(present):
        print(
            f"gravity: {present.count(False)} of {len(present)} chunks are not in {store.root}"
            f" yet: gravity run {' '.join(_same_options(args, out))} --executor ... computes them",
            file=sys.stderr,
        )
        return 1
    return _write(args, prepared, out, store, devices=jax.devices()[: cluster.JOB_DEVICES])


def _verdicts(args) -> int:
    """`gravity verdicts [NAME ...] [--figures DIR] [--markdown]` (`gravity.run.verdicts`)."""
    from gravity.run import verdicts

    options = [] if args.figures is None else ["--figures", str(args.figures)]
    options += [] if args.readme is None else ["--readme", str(args.readme)]
    options += [] if args.page is None else ["--page", str(args.page)]
    return verdicts.main([*args.names, *options, *(["--markdown"] if args.markdown else [])])


def _costs(args) -> int:
    """`gravity costs [--figures DIR] [--markdown] [--page PAGE]` (`gravity.run.costs`)."""
    from gravity.run import costs

    options = [] if args.figures is None else ["--figures", str(args.figures)]
    options += [] if args.page is None else ["--page", str(args.page)]
    return costs.main([*options, *(["--markdown"] if args.markdown else [])])


def _defence_table(args) -> int:
    """`gravity defence-table [--figures DIR] [--page PAGE]` (`gravity.run.defence_table`)."""
    from gravity.run import defence_table

    options = [] if args.figures is None else ["--figures", str(args.figures)]
    options += [] if args.page is None else ["--page", str(args.page)]
    return defence_table.main(options)


COMMANDS = {
    "list": _list,
    "show": _show,
    "run": _run,
    "collect": _collect,
    "plot": _plot,
    "verdicts": _verdicts,
    "costs": _costs,
    "defence-table": _defence_table,
}


if __name__ == "__main__":
    sys.exit(main())
