"""Sweeps: a grid of knob values x seeds becomes vmapped, chunked, device-sharded, resumable runs.

A `Sweep` names its axes (each a knob and its values), a number of seeds, and a `build` function
that turns one grid point into the static `HistorySpec` and the numeric `Knobs` of its runs.
`run_sweep` then

- **groups** the points by their spec: points whose spec is equal share one compiled program and
  are vmapped together (their differences are traced knobs); each distinct spec is a separate
  program. The sweep reports which axes split programs and which are vmapped (`Plan.grouping`).
  Step counts change shapes and so split programs, unless the experiment masks them:
  `mask_phase` replaces one phase by "slot" phases, one per length, of which each run trains only
  its own (the others get learning rate 0, an exact no-op: every optimizer of the engine scales
  its whole update by the learning rate), so a whole axis of step counts runs in one program at
  the price of every run stepping through all the slots;
- **chunks** each group's runs (`max_chunk` runs at most, sized so that one program serves every
  chunk of a group, the last one padded) and shrinks the executed batch if the compiled program's
  memory estimate exceeds `memory_budget_gb`;
- **shards** the run axis over `jax.devices()` with `jax.sharding` (a 1-D mesh, "runs"), so the
  same sweep uses every accelerator, or every CPU core once `gravity.runtime.use_cpu_cores` has
  split the host into one XLA device per core; the numbers equal one device's up to float
  rounding in reductions (XLA partitions them differently);
- **stores** each finished chunk atomically in a `results.ResultStore` entry keyed by the sweep's
  config hash, so a sweep killed mid-way resumes from its finished chunks and ends with results
  bitwise identical to an uninterrupted one (chunks are laid out from the config alone), and a
  finished sweep is loaded instead of recomputed;
- **flags divergence** per run (the measurement's `diverged` flag, else any non-finite output),
  by name ("axis=value,...,seed=s"); vmapped runs are independent, so a diverged run never
  changes its neighbours' numbers, and `SweepResult.valid` leaves it out of aggregates.

Compiling is slow on CPU (seconds per program) and XLA releases the GIL while it compiles, so the
programs of all groups (of all sweeps, with `run_sweeps`) are compiled in background threads
while earlier groups run.

Run keys are `jax.random.key(seed)` for seeds `first_seed, first_seed + 1, ...`, the same at every
grid point (common random numbers: cells differ by their knobs, not by luck).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import inspect
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from gravity import results
from gravity.history import HistorySpec, Knobs, run_history
from gravity.validation import check

Measure = Callable[[jax.Array, HistorySpec, Knobs], dict]
RUN_AXIS = "runs"


@dataclasses.dataclass(frozen=True)
class Axis:
    """One swept knob: its name (a keyword of the sweep's `build`) and its values, in order.

    note: how the axis is realised when the sweep cannot tell by itself (e.g. "masked: ...").
    """

    name: str
    values: tuple
    note: str = ""

    def __post_init__(self):
        check(len(self.values) >= 1, f"axis {self.name}", "at least one value", self.values)


def history_outputs(key: jax.Array, spec: HistorySpec, knobs: Knobs) -> dict:
    """The default measurement: everything `run_history` returns except the parameters."""
    out = run_history(key, spec, knobs)
    out.pop("params", None)
    return out


def phase_named(spec: HistorySpec, phase: str) -> str:
    """`phase` itself, or for a phase masked by `mask_phase` its last slot (where it ends)."""
    if phase in spec.phase_names:
        return phase
    slots = [name for name in spec.phase_names if name.startswith(f"{phase}@")]
    check(bool(slots), "phase", f"one of {', '.join(spec.phase_names)}", phase)
    return slots[-1]


@dataclasses.dataclass(frozen=True)
class HistoryMetrics:
    """A measurement that keeps only some metrics of `run_history` (small, fixed-shape outputs).

    trajectories: (phase, metric names) pairs kept at every record of the phase.
    finals: (phase, metric names) pairs kept at the phase's last record only (a masked phase's
        name stands for its last slot, i.e. where the phase ends).
    Returns {"metrics": {phase: {metric: (n_records,)}}, "final": {phase: {metric: ()}},
    "diverged": ()}.
    """

    trajectories: tuple[tuple[str, tuple[str, ...]], ...] = ()
    finals: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __call__(self, key: jax.Array, spec: HistorySpec, knobs: Knobs) -> dict:
        out = run_history(key, spec, knobs)
        metrics = out["metrics"]
        kept = {
            phase: {m: metrics[phase_named(spec, phase)][m] for m in names}
            for phase, names in self.trajectories
        }
        finals = {
            phase: {m: metrics[phase_named(spec, phase)][m][-1] for m in names}
            for phase, names in self.finals
        }
        return {"metrics": kept, "final": finals, "diverged": out["diverged"]}


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A grid of knob values x seeds.

    build: `build(**point) -> (spec, knobs)` for one grid point (`point` maps axis names to
        values); called once per point when the sweep is planned.
    measure: the per-run function `(key, spec, knobs) -> dict of arrays`, vmapped over runs;
        it should return a `diverged` flag. It must be hashable (a module-level function or a
        frozen dataclass with `__call__`): it names the compiled program.
    version: part of the stored config. The measurement's source code is hashed too, so editing
        it invalidates stored results; bump `version` when something else changes what the runs
        compute (e.g. the engine).
    """

    name: str
    axes: tuple[Axis, ...]
    seeds: int
    build: Callable[..., tuple[HistorySpec, Knobs]]
    measure: Measure = history_outputs
    first_seed: int = 0
    max_chunk: int = 128
    memory_budget_gb: float = 8.0
    version: str = "1"

    def __post_init__(self):
        check(self.seeds >= 1, "seeds", "a positive integer", self.seeds)
        check(self.max_chunk >= 1, "max_chunk", "a positive integer", self.max_chunk)
        names = [axis.name for axis in self.axes]
        check(len(set(names)) == len(names), "axes", "axes with unique names", names)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(axis.values) for axis in self.axes)

    def points(self) -> list[dict[str, Any]]:
        """Every grid point, in C order over the axes."""
        values = [axis.values for axis in self.axes]
        names = [axis.name for axis in self.axes]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Runs of one program group computed together; `runs` are run ids (point * seeds + seed)."""

    group: int
    index: int
    runs: np.ndarray

    @property
    def name(self) -> str:
        return f"g{self.group:03d}-c{self.index:04d}"


@dataclasses.dataclass
class Plan:
    """How a sweep runs: its points, program groups and chunks (independent of the devices)."""

    sweep: Sweep
    points: list[dict[str, Any]]
    specs: list[HistorySpec]
    knobs: list[Knobs]
    group_of_point: np.ndarray
    chunk_size: list[int]
    chunks: list[Chunk]

    @property
    def n_runs(self) -> int:
        return len(self.points) * self.sweep.seeds

    @property
    def groups(self) -> list[HistorySpec]:
        """The distinct specs, one compiled program each."""
        seen: dict[HistorySpec, None] = {}
        for spec in self.specs:
            seen.setdefault(spec)
        return list(seen)

    def run_name(self, run: int) -> str:
        point, seed = divmod(int(run), self.sweep.seeds)
        parts = [f"{k}={v}" for k, v in self.points[point].items()]
        return ",".join([*parts, f"seed={self.sweep.first_seed + seed}"])

    def grouping(self) -> dict[str, Any]:
        """Which axes split compiled programs (they change the spec) and which are vmapped."""
        spec_ids = self.group_of_point.reshape(self.sweep.shape)
        program_axes, vmapped_axes, notes = [], [], {}
        for a, axis in enumerate(self.sweep.axes):
            first = np.take(spec_ids, [0], axis=a)
            splits = bool(np.any(spec_ids != first))
            (program_axes if splits else vmapped_axes).append(axis.name)
            if axis.note:
                notes[axis.name] = axis.note
        return {
            "programs": len(self.groups),
            "program_axes": program_axes,
            "vmapped_axes": vmapped_axes,
            "notes": notes,
            "runs": self.n_runs,
            "chunks": len(self.chunks),
            "chunk_size": self.chunk_size,
        }

    def config(self) -> dict[str, Any]:
        """Everything the runs depend on (hashed by the result store)."""
        s = self.sweep
        return {
            "sweep": s.name,
            "version": s.version,
            "axes": s.axes,
            "seeds": s.seeds,
            "first_seed": s.first_seed,
            "max_chunk": s.max_chunk,
            "measure": s.measure,
            "measure_source": _source_digest(s.measure),
            "groups": self.groups,
            "points": [
                {"point": p, "group": int(g), "knobs": k}
                for p, g, k in zip(self.points, self.group_of_point, self.knobs, strict=True)
            ],
        }


def _source_digest(measure: Measure) -> str | None:
    """A digest of the measurement's source code, so an edited measurement is not served stale
    results from the store (changes elsewhere, e.g. in the engine, still need `version`)."""
    target = measure if inspect.isfunction(measure) else type(measure)
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError):
        return None
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def plan_sweep(sweep: Sweep) -> Plan:
    """Build every point's (spec, knobs), group points by spec, and lay out the chunks."""
    points = sweep.points()
    specs, knobs = [], []
    for point in points:
        spec, point_knobs = sweep.build(**point)
        specs.append(spec)
        knobs.append(point_knobs)
    group_ids: dict[HistorySpec, int] = {}
    group_of_point = np.array([group_ids.setdefault(s, len(group_ids)) for s in specs])
    runs = np.arange(len(points) * sweep.seeds).reshape(len(points), sweep.seeds)
    chunks, sizes = [], []
    for group in range(len(group_ids)):
        group_runs = runs[group_of_point == group].ravel()
        size = math.ceil(group_runs.size / math.ceil(group_runs.size / sweep.max_chunk))
        sizes.append(size)
        for index, start in enumerate(range(0, group_runs.size, size)):
            chunks.append(Chunk(group, index, group_runs[start : start + size]))
    return Plan(sweep, points, specs, knobs, group_of_point, sizes, chunks)


# --------------------------------------------------------------------------------------------
# Masked step counts
# --------------------------------------------------------------------------------------------


def slot_name(phase: str, steps: int) -> str:
    """The name of the slot phase that trains `phase` for `steps` steps."""
    return f"{phase}@{steps}"


def mask_phase(spec: HistorySpec, phase: str, lengths: Sequence[int], **changes) -> HistorySpec:
    """`spec` with phase `phase` replaced by one slot phase per length (ascending), in its place.

    Each slot is the original phase with `steps` set to its length (and `changes` applied, e.g.
    fewer records); `mask_learning_rate` gives a run learning rate 0 in every slot but its own.
    With lr 0 every optimizer of the engine (Adam, AdamW, SGD with weight decay) leaves the
    parameters bitwise unchanged, so the run is exactly a history whose phase has its own length
    (with its own fresh optimizer state, as every phase has), and one program serves every
    length. Every run pays for all the slots' steps: mask short phases, group long ones.
    """
    names = spec.phase_names
    check(phase in names, "phase", f"one of {', '.join(names)}", phase)
    lengths = tuple(sorted({int(n) for n in lengths}))
    index = names.index(phase)
    original = spec.phases[index]
    slots = tuple(
        dataclasses.replace(original, name=slot_name(phase, n), steps=n, **changes) for n in lengths
    )
    phases = spec.phases[:index] + slots + spec.phases[index + 1 :]
    return dataclasses.replace(spec, phases=phases)


def mask_learning_rate(
    masked: HistorySpec, phase: str, steps: int, learning_rate: Mapping[str, float] | float
) -> np.ndarray:
    """Per-phase learning rates for a run of `masked` (from `mask_phase`) whose `phase` lasts
    `steps`: its own slot trains, the other slots get 0. `learning_rate` is one value for every
    phase or a mapping from the original phase names (slots take the masked phase's value)."""
    active = slot_name(phase, steps)
    slots = [p.name for p in masked.phases if p.name.startswith(f"{phase}@")]
    check(active in slots, f"{phase} steps", f"one of the slot lengths {slots}", steps)
    rates = []
    for p in masked.phases:
        base = p.name.split("@")[0] if p.name in slots else p.name
        value = learning_rate[base] if isinstance(learning_rate, Mapping) else learning_rate
        rates.append(0.0 if p.name in slots and p.name != active else float(value))
    return np.asarray(rates, dtype=np.float32)


def masked_phase_params(params: Mapping[str, Any], masked: HistorySpec, phase: str):
    """The parameters at the end of a (possibly masked) phase: for a masked one, its last slot."""
    return params[phase_named(masked, phase)]


# --------------------------------------------------------------------------------------------
# Programs
# --------------------------------------------------------------------------------------------


def _flatten(tree: Any) -> dict[str, Any]:
    """Nested dicts (and sequences) of arrays as {"a/b/c": array}; None leaves are dropped."""
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = []
        for entry in path:
            for attr in ("key", "name", "idx"):
                if hasattr(entry, attr):
                    parts.append(str(getattr(entry, attr)))
                    break
        flat["/".join(parts)] = leaf
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The nested dict of a {"a/b/c": array} mapping."""
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


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

    def lower(self, spec: HistorySpec, measure: Measure, batch: int, knobs: Knobs):
        def one(seed, run_knobs):
            return measure(jax.random.key(seed), spec, run_knobs)

        program = jax.jit(jax.vmap(one), in_shardings=self.sharding, out_shardings=self.sharding)
        seeds = jax.ShapeDtypeStruct((batch,), jnp.uint32, sharding=self.sharding)
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(
                (batch, *np.shape(x)), np.asarray(x).dtype, sharding=self.sharding
            ),
            knobs,
        )
        return program.lower(seeds, abstract)

    def compile(self, spec, measure, chunk_size, knobs) -> tuple[Any, int, float]:
        """(compiled program, executed batch, compile seconds); the batch halves until the
        program's memory estimate fits the budget."""
        start = time.perf_counter()
        batch = self.batch_for(chunk_size)
        while True:
            key = (spec, measure, batch, self.devices)
            compiled = _PROGRAMS.get(key)
            if compiled is None:
                compiled = self.lower(spec, measure, batch, knobs).compile()
                _PROGRAMS[key] = compiled
                while len(_PROGRAMS) > MAX_CACHED_PROGRAMS:
                    _PROGRAMS.pop(next(iter(_PROGRAMS)))
            if batch <= self.n_devices or _memory_bytes(compiled, self.n_devices) <= self.budget:
                return compiled, batch, time.perf_counter() - start
            batch = self.batch_for(batch // 2)

    def execute(self, compiled, batch: int, seeds: np.ndarray, knobs: Knobs) -> dict:
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


_PROGRAMS: dict[tuple, Any] = {}  # compiled programs of this process, oldest first
MAX_CACHED_PROGRAMS = 32


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


def _diverged(flat: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """Per-run divergence: the measurement's flag, else any non-finite floating output."""
    if "diverged" in flat:
        return np.asarray(flat["diverged"], dtype=bool).reshape(n)
    bad = np.zeros(n, dtype=bool)
    for value in flat.values():
        value = np.asarray(value)
        if np.issubdtype(value.dtype, np.floating):
            bad |= ~np.all(np.isfinite(value.reshape(n, -1)), axis=1)
    return bad


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SweepResult:
    """A finished sweep: every output as an array of shape (*grid shape, seeds, ...).

    arrays: flat names ("metrics/benign/harmfulness") to arrays.
    diverged: (*grid shape, seeds) bool; `diverged_runs` names them.
    info: grouping (which axes are programs, which vmapped), timings, store path, whether it was
        loaded from the store.
    """

    axes: tuple[Axis, ...]
    seeds: np.ndarray
    arrays: dict[str, np.ndarray]
    diverged: np.ndarray
    info: dict[str, Any]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(axis.values) for axis in self.axes)

    @property
    def n_histories(self) -> int:
        return int(self.diverged.size)

    @property
    def diverged_runs(self) -> list[str]:
        return list(self.info.get("diverged_runs", []))

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def tree(self) -> dict[str, Any]:
        return unflatten(self.arrays)

    def valid(self, name_or_array: str | np.ndarray) -> np.ndarray:
        """An output as floats with diverged runs set to NaN, ready for nan-aware aggregates."""
        value = self.arrays[name_or_array] if isinstance(name_or_array, str) else name_or_array
        value = np.array(value, dtype=float)
        mask = self.diverged.reshape(self.diverged.shape + (1,) * (value.ndim - self.diverged.ndim))
        return np.where(mask, np.nan, value)

    def axis_values(self, name: str) -> np.ndarray:
        for axis in self.axes:
            if axis.name == name:
                return np.asarray(axis.values)
        raise KeyError(name)


def run_sweep(
    sweep: Sweep,
    *,
    store: results.ResultStore | None = None,
    experiment: str = "sweeps",
    progress: bool = True,
    devices: Sequence[jax.Device] | None = None,
    compile_workers: int = 2,
    on_chunk: Callable[[Chunk], None] | None = None,
) -> SweepResult:
    """Run (or load) a sweep; see the module docstring.

    store: where chunks and the finished result go (None: in memory only, nothing resumable).
    experiment: the store's folder for this sweep.
    devices: the devices the run axis is sharded over (default `jax.devices()`).
    compile_workers: threads compiling programs ahead of the groups that need them.
    on_chunk: called after each chunk is computed and stored (e.g. for logging).
    """
    return run_sweeps(
        [sweep],
        store=store,
        experiment=experiment,
        progress=progress,
        devices=devices,
        compile_workers=compile_workers,
        on_chunk=on_chunk,
    )[0]


def run_sweeps(
    sweeps: Sequence[Sweep],
    *,
    store: results.ResultStore | None = None,
    experiment: str = "sweeps",
    progress: bool = True,
    devices: Sequence[jax.Device] | None = None,
    compile_workers: int = 2,
    on_chunk: Callable[[Chunk], None] | None = None,
) -> list[SweepResult]:
    """Run (or load) several sweeps one after the other, compiling all their programs up front
    in background threads (a later sweep's compile overlaps an earlier sweep's runs)."""
    devices = tuple(devices or jax.devices())
    pool = concurrent.futures.ThreadPoolExecutor(max(1, compile_workers))
    try:
        runs = [_SweepRun(s, store, experiment, devices) for s in sweeps]
        for run in runs:
            run.submit(pool)
        return [run.execute(progress, on_chunk) for run in runs]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _SweepRun:
    """One sweep's run: its plan, its store entry, the chunks already done, its compiles."""

    def __init__(self, sweep: Sweep, store, experiment: str, devices: tuple[jax.Device, ...]):
        self.sweep = sweep
        self.plan = plan_sweep(sweep)
        self.entry = (
            store.entry(experiment, sweep.name, self.plan.config()) if store is not None else None
        )
        self.runner = _Runner(devices, sweep.memory_budget_gb * 2**30)
        self.done: dict[str, dict[str, np.ndarray]] = {}
        self.futures: dict[int, concurrent.futures.Future] = {}
        self.complete = self.entry is not None and self.entry.is_complete()
        if self.entry is not None and not self.complete:
            for chunk in self.plan.chunks:
                stored = self.entry.read_chunk(chunk.name)
                if stored is not None and np.array_equal(stored.get("__runs__"), chunk.runs):
                    self.done[chunk.name] = stored
        pending = {c.group for c in self.plan.chunks if c.name not in self.done}
        self.pending_groups = [] if self.complete else sorted(pending)
        self.stacked = {g: _stack(self.plan, g) for g in self.pending_groups}

    def submit(self, pool: concurrent.futures.Executor) -> None:
        """Queue the compiles of the programs this sweep still needs."""
        groups = self.plan.groups
        for g in self.pending_groups:
            example = jax.tree.map(lambda a: a[0], self.stacked[g][0])
            self.futures[g] = pool.submit(
                self.runner.compile,
                groups[g],
                self.sweep.measure,
                self.plan.chunk_size[g],
                example,
            )

    def execute(self, progress: bool, on_chunk) -> SweepResult:
        start = time.perf_counter()
        plan, entry, sweep = self.plan, self.entry, self.sweep
        if self.complete:
            arrays, meta = entry.load()
            return _result(plan, arrays, {**meta, "loaded_from_store": True, "path": _path(entry)})
        if entry is not None:
            entry.start()
        seeds_all = sweep.first_seed + np.arange(plan.n_runs, dtype=np.int64) % sweep.seeds
        seeds_all = seeds_all.astype(np.uint32)
        point_of_run = np.arange(plan.n_runs) // sweep.seeds
        n_groups = len(plan.groups)
        timings: dict[str, dict[str, float]] = {}
        bar = tqdm(
            total=plan.n_runs, desc=sweep.name, unit="run", disable=not progress, dynamic_ncols=True
        )
        bar.update(sum(c.runs.size for c in plan.chunks if c.name in self.done))
        for g in self.pending_groups:
            bar.set_postfix_str(f"program {g + 1}/{n_groups}: compiling")
            compiled, batch, compile_s = self.futures[g].result()
            bar.set_postfix_str(f"program {g + 1}/{n_groups}")
            group_start = time.perf_counter()
            knob_table, row_of_point = self.stacked[g]
            for chunk in (c for c in plan.chunks if c.group == g and c.name not in self.done):
                rows = row_of_point[point_of_run[chunk.runs]]
                knobs = jax.tree.map(lambda a, rows=rows: a[rows], knob_table)
                out = self.runner.execute(compiled, batch, seeds_all[chunk.runs], knobs)
                flat = {k: np.asarray(v) for k, v in _flatten(out).items()}
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
        arrays = _assemble(plan, self.done)
        meta = {
            "sweep": sweep.name,
            "grouping": plan.grouping(),
            "devices": [str(d) for d in self.runner.devices],
            "timings": timings,
            "wall_s": round(time.perf_counter() - start, 2),
            "diverged_runs": [plan.run_name(r) for r in np.flatnonzero(arrays["__diverged__"])],
        }
        if entry is not None:
            entry.finish(arrays, meta)
        return _result(plan, arrays, {**meta, "loaded_from_store": False, "path": _path(entry)})


def _path(entry) -> str | None:
    return None if entry is None else str(entry.path)


def _stack(plan: Plan, group: int) -> tuple[Knobs, np.ndarray]:
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


def _assemble(plan: Plan, done: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-run outputs from all chunks, in run order, reshaped to (*grid, seeds, ...)."""
    n = plan.n_runs
    names = [k for k in next(iter(done.values())) if k != "__runs__"]
    flat: dict[str, np.ndarray] = {}
    for name in names:
        shapes = {done[c.name][name].shape[1:] for c in plan.chunks if name in done[c.name]}
        check(
            len(shapes) == 1 and all(name in done[c.name] for c in plan.chunks),
            f"output {name}",
            "the same shape in every program (return fixed-shape outputs from the measure)",
            sorted(shapes),
        )
        first = done[plan.chunks[0].name][name]
        array = np.empty((n, *first.shape[1:]), dtype=first.dtype)
        for chunk in plan.chunks:
            array[chunk.runs] = done[chunk.name][name]
        flat[name] = array
    flat["__diverged__"] = _diverged(flat, n)
    grid = (*plan.sweep.shape, plan.sweep.seeds)
    return {k: v.reshape(grid + v.shape[1:]) for k, v in flat.items()}


def _result(plan: Plan, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> SweepResult:
    arrays = dict(arrays)
    diverged = arrays.pop("__diverged__")
    seeds = plan.sweep.first_seed + np.arange(plan.sweep.seeds)
    return SweepResult(plan.sweep.axes, seeds, arrays, diverged, info)


def summary(result: SweepResult) -> dict[str, Any]:
    """What a report says about how a sweep ran: histories, grouping, timings, diverged runs."""
    info = result.info
    return {
        "n_histories": result.n_histories,
        "grouping": info.get("grouping"),
        "devices": info.get("devices"),
        "compute_wall_s": info.get("wall_s"),
        "timings": info.get("timings"),
        "loaded_from_store": info.get("loaded_from_store", False),
        "diverged_runs": result.diverged_runs,
    }


__all__ = [
    "Axis",
    "Chunk",
    "HistoryMetrics",
    "Measure",
    "Plan",
    "Sweep",
    "SweepResult",
    "history_outputs",
    "mask_learning_rate",
    "mask_phase",
    "masked_phase_params",
    "phase_named",
    "plan_sweep",
    "run_sweep",
    "run_sweeps",
    "slot_name",
    "summary",
    "unflatten",
]
