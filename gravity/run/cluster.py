"""Sweeps on a cluster: an experiment's chunks split into a job array (submitit: Slurm, or local
processes), each job computing its share into the result store, then one assembly.

- Every chunk of every sweep has a position (sweep by sweep, chunk by chunk); job `index` of
  `count` computes the chunks whose position is `index` mod `count`
  (`gravity.run.sweep.run_sweeps(shard=...)`) and writes them to the store. Per-run keys derive from
  the run's seed, so the split never changes a result.
- Each job runs on one device (one GPU, or one CPU process): chunks are then laid out for one
  device whatever machine runs them, so the jobs, the assembly and any rerun agree on the store's
  entries. Parallelism is the job array.
- A job that failed or was killed leaves its chunks missing; running the same command again
  submits only the jobs whose chunks are missing, and each computes only those.
- When every chunk is there, `collect` assembles the figure and JSON through
  `gravity.run.experiment.run_experiment` (which finds every chunk in the store and computes
  nothing).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gravity.run import folders, overrides
from gravity.run.store import ResultStore
from gravity.run.sweep import plan_sweep, run_sweeps, store_entry
from gravity.validation import check, check_choice

if TYPE_CHECKING:
    from gravity.run.experiment import Prepared

EXECUTORS = ("local", "slurm")
"""How a job array runs (`--executor`): submitit's local processes, or Slurm."""
SLURM_COMMANDS = ("sbatch", "srun")  # submitit submits with the one, runs tasks with the other
JOB_DEVICES = 1


@dataclasses.dataclass(frozen=True)
class Request:
    """A run as a job rebuilds it: the command line's values only (so it pickles as data).
    `store` must be an absolute path: jobs may start in another folder."""

    name: str
    store: str
    settings: tuple[str, ...] = ()
    quick: bool = False
    seeds: int | None = None

    def resolve(self) -> Prepared:
        """The run this request names, prepared once in this process (a job holds data only,
        so each job resolves it once: the experiment's sweeps called once, each point built
        once)."""
        from gravity.run.experiment import load

        return overrides.resolve(load(self.name), self.settings, quick=self.quick, seeds=self.seeds)


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """How jobs are submitted: the executor, the number of jobs, and their resources."""

    executor: str = "local"
    jobs: int = 2
    timeout_min: int = 60
    partition: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int = 1

    def __post_init__(self):
        check_choice(self.executor, EXECUTORS, "--executor")
        check(self.jobs >= 1, "--jobs", "a positive integer", self.jobs)
        check(self.timeout_min >= 1, "--timeout-min", "a positive integer", self.timeout_min)
        check(self.gpus_per_job >= 0, "--gpus-per-job", "an integer >= 0", self.gpus_per_job)
        check(self.cpus_per_job >= 1, "--cpus-per-job", "a positive integer", self.cpus_per_job)
        if self.executor == "slurm":
            missing = [command for command in SLURM_COMMANDS if shutil.which(command) is None]
            check(
                not missing,
                "--executor",
                f"local on this machine (Slurm's {', '.join(missing)} not found on PATH)",
                self.executor,
            )


def chunk_table(sweeps: dict[str, Any], store: ResultStore, name: str) -> list[bool]:
    """For every chunk position, whether the store already holds it (as one device lays the
    chunks out); a complete entry holds all of its chunks."""
    present = []
    for sweep in sweeps.values():
        plan, entry = _job_entry(sweep, store, name)
        complete = entry.is_complete()
        present += [complete or entry.chunk_path(c.name).is_file() for c in plan.chunks]
    return present


def _job_entry(sweep: Any, store: ResultStore, name: str):
    """(plan, store entry) of `sweep` as the jobs lay it out and key it: on one device."""
    import jax

    plan = plan_sweep(sweep, JOB_DEVICES)
    return plan, store_entry(store, name, plan, jax.devices()[:JOB_DEVICES])


def missing_shards(present: list[bool], count: int) -> dict[int, int]:
    """{job index: chunks it still has to compute} for a split into `count` jobs."""
    missing: dict[int, int] = {}
    for position, there in enumerate(present):
        if not there:
            missing[position % count] = missing.get(position % count, 0) + 1
    return missing


def clear(sweeps: dict[str, Any], store: ResultStore, name: str) -> None:
    """Discard the stored entries of `sweeps` (`--force`), once, before any job starts."""
    for sweep in sweeps.values():
        _job_entry(sweep, store, name)[1].clear()


def run_shard(request: Request, index: int, count: int) -> int:
    """One job: compute the missing chunks at positions `index` mod `count` into the store, on
    one device; returns how many chunks it computed."""
    import jax

    from gravity.run.runtime import enable_compilation_cache

    enable_compilation_cache()
    prepared = request.resolve()
    computed = []
    run_sweeps(
        list(prepared.sweeps.values()),
        store=ResultStore(request.store),
        experiment=request.name,
        progress=False,
        devices=jax.devices()[:JOB_DEVICES],
        shard=(index, count),
        on_chunk=computed.append,
    )
    return len(computed)


def executor(options: JobOptions, folder: Path):
    """A submitit executor for `options`, its logs and pickles in `folder`."""
    import submitit

    if options.executor == "local":
        made = submitit.LocalExecutor(folder=folder)
        made.update_parameters(timeout_min=options.timeout_min, gpus_per_node=options.gpus_per_job)
        return made
    made = submitit.SlurmExecutor(folder=folder)
    slurm = {
        "time": options.timeout_min,
        "gpus_per_node": options.gpus_per_job,
        "cpus_per_task": options.cpus_per_job,
        "array_parallelism": options.jobs,
        "job_name": "gravity",
    }
    if options.partition:
        slurm["partition"] = options.partition
    made.update_parameters(**slurm)
    return made


def submit(request: Request, options: JobOptions, shards: list[int], count: int) -> list:
    """Submit one job per shard index (a job array); returns the submitit jobs. Their pickles
    are code the jobs run: the folder is made private (`gravity.run.folders`), and one that other
    users can write is reported in one line."""
    folder = folders.make_folder(Path(request.store) / "jobs" / request.name)
    folders.warn_if_writable_by_others(folder, "job pickles that each job unpickles")
    made = executor(options, folder)
    return made.map_array(run_shard, [request] * len(shards), shards, [count] * len(shards))


def wait(jobs: list, shards: list[int]) -> tuple[dict[int, int], list[str]]:
    """Wait for every job: ({shard: chunks it computed}, one line per failed job naming its
    shard, its error's last line and its logs)."""
    computed, failures = {}, []
    for job, shard in zip(jobs, shards, strict=True):
        try:
            computed[shard] = job.result()
        except Exception as error:  # a job's failure is reported, never raised
            lines = [line for line in str(error).strip().splitlines() if line.strip()]
            last = lines[-1] if lines else type(error).__name__
            failures.append(
                f"job {shard} ({job.job_id}) failed: {last}; logs in {job.paths.folder}"
            )
    return computed, failures
