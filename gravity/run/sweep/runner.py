"""The one runner: every chunk of runs vmapped, sharded over the devices, stored, resumed.

- Each program group (trunk points with an equal spec) is one compiled program; the programs of
  all groups (of all sweeps, with `run_sweeps`) compile in background threads, in the order they
  run and at most `COMPILE_AHEAD` ahead of it, while earlier groups run (XLA releases the GIL
  while it compiles).
- The run axis is sharded over `jax.devices()` with a 1-D mesh ("runs"), each device running
  its share of the runs (`shard_map`); the numbers equal one device's up to float rounding in
  reductions. Random draws lower to one native kernel on CPU (`gravity.run.threefry`: the same
  bits, programs compiled 30-45% faster).
- Each finished chunk is written atomically, with its checksum, to the result store
  (`gravity.run.store`; by default `ResultStore()`: $GRAVITY_RESULTS, else `results/`), so a killed
  sweep resumes from its finished chunks, a damaged chunk is recomputed alone, and a finished
  sweep is loaded instead of recomputed. The store key covers the device layout: results from
  another device count are never served.
- In a tree sweep the per-run function runs the shared past once (`history.run_trunk`) and
  vmaps the measurement over the run's branches from it.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec
from tqdm import tqdm  # text bars everywhere: tqdm.auto warns in a kernel without ipywidgets

from gravity.engine import history
from gravity.run.runtime import DEVICE_COUNT_FLAG
from gravity.run.store import Entry, ResultStore, check_readers, layout
from gravity.run.sweep.assemble import SweepResult, assemble, flatten, labels, make_result
from gravity.run.sweep.grid import Chunk, Measure, Plan, Sweep, plan_sweep
from gravity.run.sweep.measures import history_outputs
from gravity.run.threefry import use_native_threefry
from gravity.validation import check

RUN_AXIS = "runs"
_PROGRAMS: dict[tuple, Any] = {}  # compiled programs of this process, oldest first
MAX_CACHED_PROGRAMS = 8
"""Compiled programs kept for reuse within a process (tests, a rerun of the same sweep). Each
holds its machine code in memory mappings: thousands for a transformer program with defences,
and Linux allows 65,530 a process by default, so the cache is kept small."""
BACKEND_LEVEL_FLAG = "--xla_backend_optimization_level"
TRANSFORMER_BACKEND_LEVEL = 2
"""LLVM's optimisation level for a transformer's programs on CPU (XLA:CPU's default is 3): one
device, 16 standard histories, empty cache, compile 13.9 / 14.3 -> 11.2 s and run 26.5 / 25.1 ->
23.6 s; the MLP's programs run slower at -O2 (metastability 158.8 -> 163.6 s), so they keep it.
A level set in XLA_FLAGS (the tests' -O0) is kept."""
COMPILE_AHEAD = 2
"""Programs compiled before their turn to run, at most: compiling every program of a large
experiment up front (the arena's 36) held them all at once and LLVM ran out of mappings
("Cannot allocate memory"); two keep a compile overlapping each run."""


def per_run(spec, measure: Measure, levels: tuple[tuple[str, int], ...]) -> Callable:
    """The function of (seed, knobs) one run computes. In a tree sweep the knobs carry a leading
    axis of all the run's branches; each level's shared past runs once per parent branch, with
    its first child's knobs, and the measurement is vmapped over the leaves."""

    def one(seed, knobs):
        key = jax.random.key(seed)
        if not levels:
            return measure(key, spec, knobs)
        shape = tuple(n for _, n in levels)
        knobs = jax.tree.map(lambda a: a.reshape(*shape, *a.shape[1:]), knobs)
        first = jax.tree.map(lambda a: a[(0,) * len(shape)], knobs)
        trunk = history.run_trunk(key, spec, first, levels[0][0])
        out = _descend(key, spec, measure, trunk, knobs, [phase for phase, _ in levels[1:]])
        return jax.tree.map(lambda a: a.reshape(-1, *a.shape[len(shape) :]), out)

    return one


def _descend(key, spec, measure, trunk, knobs, afters: list[str]):
    """Vmap over this level's branches: grow each one's trunk to the next level, or measure."""

    def branch(k):
        if not afters:
            return measure(key, spec, k, start=trunk)
        first = jax.tree.map(lambda a: a[(0,) * len(afters)], k)
        grown = history.grow_trunk(key, spec, trunk, first, afters[0])
        return _descend(key, spec, measure, grown, k, afters[1:])

    return jax.vmap(branch)(knobs)


def compile_options(spec, devices: Sequence[jax.Device]) -> dict[str, Any]:
    """XLA options for compiling `spec`'s program on `devices`: `TRANSFORMER_BACKEND_LEVEL` for
    a transformer on CPU unless XLA_FLAGS chooses a level; none otherwise. They change the
    bits, so the store's key holds them (`store_entry`)."""
    model = getattr(getattr(spec, "model", None), "kind", None)
    chosen = BACKEND_LEVEL_FLAG in os.environ.get("XLA_FLAGS", "")
    if model != "transformer" or chosen or devices[0].platform != "cpu":
        return {}
    return {"xla_backend_optimization_level": TRANSFORMER_BACKEND_LEVEL}


class _Runner:
    """Per-group batched programs: vmapped over runs, sharded over the devices, cached."""

    def __init__(self, devices: Sequence[jax.Device], budget_bytes: float):
        self.devices = tuple(devices)
        mesh = jax.sharding.Mesh(
            np.asarray(self.devices), (RUN_AXIS,), axis_types=(jax.sharding.AxisType.Auto,)
        )
        self.sharding = NamedSharding(mesh, PartitionSpec(RUN_AXIS))
        self.budget = budget_bytes

    @property
    def n_devices(self) -> int:
        return len(self.devices)

    def batch_for(self, chunk_size: int) -> int:
        return self.n_devices * math.ceil(chunk_size / self.n_devices)

    def lower(self, spec, measure, levels, batch: int, knobs):
        """The batched program, each device running its share of the runs (a `shard_map`:
        runs are independent, so XLA has nothing to partition, and draws lower to the native
        threefry kernel, `gravity.run.threefry`)."""
        runs = PartitionSpec(RUN_AXIS)
        program = jax.jit(
            jax.shard_map(
                jax.vmap(per_run(spec, measure, levels)),
                mesh=self.sharding.mesh,
                in_specs=runs,
                out_specs=runs,
                check_vma=False,
            )
        )
        seeds = jax.ShapeDtypeStruct((batch,), jnp.uint32, sharding=self.sharding)
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(
                (batch, *np.shape(x)), np.asarray(x).dtype, sharding=self.sharding
            ),
            knobs,
        )
        return program.lower(seeds, abstract)

    def compile(self, spec, measure, levels, chunk_size, knobs) -> tuple[Any, int, float]:
        """(compiled program, executed batch, compile seconds); the batch halves until the
        program's memory estimate fits the budget."""
        start = time.perf_counter()
        batch = self.batch_for(chunk_size)
        shapes = jax.tree.map(np.shape, knobs)
        options = compile_options(spec, self.devices)
        while True:
            key = (spec, measure, levels, str(shapes), batch, self.devices, str(options))
            compiled = _PROGRAMS.get(key)
            if compiled is None:
                compiled = self.lower(spec, measure, levels, batch, knobs).compile(options)
                _PROGRAMS[key] = compiled
                while len(_PROGRAMS) > MAX_CACHED_PROGRAMS:
                    _PROGRAMS.pop(next(iter(_PROGRAMS)))
            if batch <= self.n_devices or _memory_bytes(compiled, self.n_devices) <= self.budget:
                return compiled, batch, time.perf_counter() - start
            batch = self.batch_for(batch // 2)

    def execute(self, compiled, batch: int, seeds: np.ndarray, knobs) -> dict:
        """Run the program over `seeds` (R,) and stacked `knobs`, in padded batches; numpy out."""
        n = seeds.shape[0]
        parts = []
        for start in range(0, n, batch):
            take = np.arange(start, min(start + batch, n))
            take = np.concatenate([take, np.full(batch - take.size, take[-1])])
            args = jax.device_put(
                (seeds[take], jax.tree.map(lambda a, take=take: a[take], knobs)), self.sharding
            )
            out = jax.device_get(compiled(*args))
            keep = min(batch, n - start)
            parts.append(jax.tree.map(lambda a, k=keep: np.asarray(a)[:k], out))
        return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


def _memory_bytes(compiled, n_devices: int) -> float:
    try:
        stats = compiled.memory_analysis()
    except (NotImplementedError, RuntimeError):
        return 0.0
    if stats is None:
        return 0.0
    per_device = (
        stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
    )
    return float(per_device) * n_devices


def run_sweep(sweep: Sweep, **options) -> SweepResult:
    """Run (or load) one sweep; see `run_sweeps` for the options."""
    return run_sweeps([sweep], **options)[0]


def run_sweeps(
    sweeps: Sequence[Sweep],
    *,
    store: ResultStore | bool = True,
    experiment: str = "sweeps",
    progress: bool = True,
    devices: Sequence[jax.Device] | None = None,
    compile_workers: int = 2,
    on_chunk: Callable[[Chunk], None] | None = None,
    shard: tuple[int, int] | None = None,
) -> list[SweepResult | None]:
    """Run (or load) sweeps one after the other, compiling their programs in background threads
    at most `COMPILE_AHEAD` ahead of the one running (a later sweep's compile overlaps an earlier
    sweep's runs).

    store: where chunks and finished results go: True (the default) is `ResultStore()`
        ($GRAVITY_RESULTS, else `results/`), so a finished sweep is loaded, not recomputed;
        a `ResultStore` is that store; False keeps everything in memory (nothing resumable,
        nothing loaded: e.g. for timing).
    experiment: the store's folder for these sweeps.
    devices: the devices the run axis is sharded over (default `jax.devices()`).
    on_chunk: called after each chunk is computed and stored (e.g. for logging).
    shard: (index, count): one job of a job array (`gravity.run.cluster`). Compute only the chunks
        whose position among all the sweeps' chunks (in order) is `index` mod `count`, write
        them to the store, and return None for every sweep instead of assembling it.
    """
    devices = tuple(devices or jax.devices())
    results = chosen_store(store)
    use_native_threefry()
    pool = concurrent.futures.ThreadPoolExecutor(max(1, compile_workers))
    try:
        runs, position = [], 0
        for s in sweeps:
            runs.append(_SweepRun(s, results, experiment, devices, shard, position))
            position += len(runs[-1].plan.chunks)
        compiles = _Compiles(pool, runs, max(COMPILE_AHEAD, compile_workers))
        return [run.execute(progress, on_chunk, compiles) for run in runs]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Compiles:
    """The sweeps' programs compiled in the order they run, at most `ahead` of them compiled (or
    compiling) and not yet taken; a taken program is no longer held here (only by its run while
    it runs, and by the process's small cache, `MAX_CACHED_PROGRAMS`)."""

    def __init__(self, pool: concurrent.futures.Executor, runs: Sequence[_SweepRun], ahead: int):
        self.pool = pool
        self.queue = [(run, g) for run in runs for g in run.pending_groups]
        self.futures: dict[tuple[int, int], concurrent.futures.Future] = {}
        self.submitted = 0
        for _ in range(ahead):
            self._submit_next()

    def _submit_next(self) -> None:
        if self.submitted < len(self.queue):
            run, g = self.queue[self.submitted]
            self.futures[id(run), g] = self.pool.submit(run.compile, g)
            self.submitted += 1

    def take(self, run: _SweepRun, g: int) -> tuple[Any, int, float]:
        """Program `g` of `run` (waiting for its compile), the next compile queued."""
        future = self.futures.pop((id(run), g))
        self._submit_next()
        return future.result()


def chosen_store(store: ResultStore | bool) -> ResultStore | None:
    """The store a `store=` argument means (None: in memory only)."""
    check(
        isinstance(store, ResultStore | bool),
        "store",
        "a ResultStore, True (the default store, $GRAVITY_RESULTS or results/) or False (in "
        "memory only)",
        store,
    )
    chosen = store if isinstance(store, ResultStore) else (ResultStore() if store else None)
    if chosen is not None:
        check_readers()
    return chosen


class _SweepRun:
    """One sweep's run: its plan, its store entry, the chunks already done, its compiles."""

    def __init__(
        self,
        sweep: Sweep,
        results: ResultStore | None,
        experiment: str,
        devices: tuple[jax.Device, ...],
        shard: tuple[int, int] | None = None,
        first_position: int = 0,
    ):
        self.sweep = sweep
        self.shard = shard
        self.measure = sweep.measure or history_outputs
        self.plan = plan_sweep(sweep, len(devices))
        self.entry = (
            store_entry(results, experiment, self.plan, devices) if results is not None else None
        )
        self.runner = _Runner(devices, sweep.memory_budget_gb * 2**30)
        self.done: dict[str, dict[str, np.ndarray]] = {}
        self.skip = {
            c.name
            for i, c in enumerate(self.plan.chunks)
            if shard is not None and (first_position + i) % shard[1] != shard[0]
        }
        complete = self.entry is not None and self.entry.is_complete()
        self.loaded = self.entry.load() if complete and shard is None else None
        self.complete = complete and (shard is not None or self.loaded is not None)
        if self.entry is not None and not self.complete:
            for chunk in (c for c in self.plan.chunks if c.name not in self.skip):
                stored = self.entry.read_chunk(chunk.name, chunk.runs)
                if stored is not None:
                    self.done[chunk.name] = stored
        pending = {c.group for c in self.plan.chunks if c.name not in self.done.keys() | self.skip}
        self.pending_groups = [] if self.complete else sorted(pending)
        self.stacked = {g: _stack(self.plan, g) for g in self.pending_groups}

    def compile(self, g: int) -> tuple[Any, int, float]:
        """Program `g`: (compiled, executed batch, compile seconds)."""
        example = jax.tree.map(lambda a: a[0], self.stacked[g][0])
        return self.runner.compile(
            self.plan.groups[g],
            self.measure,
            self.sweep.levels,
            self.plan.chunk_size[g],
            example,
        )

    def execute(self, progress: bool, on_chunk, compiles: _Compiles) -> SweepResult | None:
        start = time.perf_counter()
        plan, entry, sweep = self.plan, self.entry, self.sweep
        if self.complete and self.shard is not None:
            return None
        if self.complete:
            arrays, meta = self.loaded
            return make_result(
                plan, arrays, {**meta, "loaded_from_store": True, "path": _path(entry)}
            )
        if entry is not None:
            entry.start()
        timings = self._compute(progress, on_chunk, compiles)
        if self.shard is not None:
            return None
        arrays = assemble(plan, self.done)
        meta = {
            "sweep": sweep.name,
            "grouping": plan.grouping(),
            "devices": [str(d) for d in self.runner.devices],
            "timings": timings,
            "wall_s": round(time.perf_counter() - start, 2),
        }
        result = make_result(plan, arrays, {**meta, "loaded_from_store": False})
        meta["diverged_runs"] = result.diverged_runs
        if entry is not None:
            entry.finish(arrays, meta, *labels(plan, arrays))
        result.info.update(meta, path=_path(entry))
        return result

    def _compute(
        self, progress: bool, on_chunk, compiles: _Compiles
    ) -> dict[str, dict[str, float]]:
        """Run every chunk not yet done, group by group; returns per-program timings."""
        plan, sweep, entry = self.plan, self.sweep, self.entry
        seeds_all = sweep.first_seed + np.arange(plan.n_runs, dtype=np.int64) % sweep.seeds
        seeds_all = seeds_all.astype(np.uint32)
        point_of_run = np.arange(plan.n_runs) // sweep.seeds
        timings: dict[str, dict[str, float]] = {}
        bar = tqdm(
            total=plan.n_runs, desc=sweep.name, unit="run", disable=not progress, dynamic_ncols=True
        )
        bar.update(sum(c.runs.size for c in plan.chunks if c.name in self.done))
        for g in self.pending_groups:
            bar.set_postfix_str(f"program {g + 1}/{len(plan.groups)}: compiling")
            compiled, batch, compile_s = compiles.take(self, g)
            bar.set_postfix_str(f"program {g + 1}/{len(plan.groups)}")
            group_start = time.perf_counter()
            knob_table, row_of_point = self.stacked[g]
            settled = self.done.keys() | self.skip
            for chunk in (c for c in plan.chunks if c.group == g and c.name not in settled):
                rows = row_of_point[point_of_run[chunk.runs]]
                knobs = jax.tree.map(lambda a, rows=rows: a[rows], knob_table)
                out = self.runner.execute(compiled, batch, seeds_all[chunk.runs], knobs)
                flat = {k: np.asarray(v) for k, v in flatten(out).items()}
                flat["__runs__"] = chunk.runs
                if entry is not None:
                    entry.write_chunk(chunk.name, flat)
                self.done[chunk.name] = flat
                bar.update(chunk.runs.size)
                if on_chunk is not None:
                    on_chunk(chunk)
            timings[f"program_{g}"] = {
                "compile_s": round(compile_s, 2),
                "run_s": round(time.perf_counter() - group_start, 2),
                "batch": batch,
            }
        bar.close()
        return timings


def keyed_xla_flags() -> str:
    """XLA_FLAGS as a store key holds it: every flag but the host device count (the key holds
    the devices), sorted. Flags can change the bits (an LLVM level, the fusion emitters), so
    results computed under others are never served."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    return " ".join(sorted(f for f in flags if not f.startswith(DEVICE_COUNT_FLAG)))


def store_entry(
    results: ResultStore, experiment: str, plan: Plan, devices: Sequence[jax.Device]
) -> Entry:
    """The store entry of `plan` computed on `devices`: its key covers the config and the
    layout that changes the bits (`gravity.run.store.layout`), its programs' compile options
    among them, and XLA_FLAGS where it sets any (`keyed_xla_flags`)."""
    options = {k: v for spec in plan.groups for k, v in compile_options(spec, devices).items()}
    flags = keyed_xla_flags()
    options |= {"XLA_FLAGS": flags} if flags else {}
    keyed_layout = layout(devices, plan.sweep.memory_budget_gb, options)
    return results.entry(experiment, plan.sweep.name, plan.config(), keyed_layout)


def _path(entry) -> str | None:
    return None if entry is None else str(entry.path)


def _stack(plan: Plan, group: int) -> tuple[Any, np.ndarray]:
    """A group's point knobs stacked (host float32), and each point's row in that table."""
    members = np.flatnonzero(plan.group_of_point == group)
    knobs = [plan.knobs[p] for p in members]
    table = jax.tree.map(lambda *xs: _device_dtype(np.stack([np.asarray(x) for x in xs])), *knobs)
    row_of_point = np.full(len(plan.points), -1)
    row_of_point[members] = np.arange(members.size)
    return table, row_of_point


def _device_dtype(array: np.ndarray) -> np.ndarray:
    """Knob values as JAX holds them by default: float32, int32 or bool."""
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int32)
    return array
