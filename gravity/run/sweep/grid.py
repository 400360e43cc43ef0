"""A sweep as data: its axes, its seeds, which axes branch from a shared past, and its plan
(points grouped into compiled programs, runs laid out in chunks from the config alone)."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from gravity import digests
from gravity.validation import check

Measure = Callable[..., dict]


@dataclasses.dataclass(frozen=True)
class Axis:
    """One swept knob: its name (a keyword of the sweep's `build`) and its values, in order.

    note: how the axis is realised when the sweep cannot tell by itself.
    """

    name: str
    values: tuple
    note: str = ""

    def __post_init__(self):
        check(len(self.values) >= 1, f"axis {self.name}", "at least one value", self.values)


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A grid of knob values x seeds, optionally a tree.

    build: `build(**point) -> (spec, knobs)` for one grid point (`point` maps axis names, branch
        axes included, to values); called once per point when the sweep is planned.
    measure: the per-run function `(key, spec, knobs) -> dict of arrays`, vmapped over runs; it
        should return a `diverged` flag. In a tree sweep it is called as
        `measure(key, spec, knobs, start=trunk)`. It must be hashable (a module-level function or
        a frozen dataclass with `__call__`): it names the compiled program.
    branches, branch_after: a tree sweep. The phases up to and including `branch_after` run once
        per (grid point, seed); every combination of the `branches` axes continues from that
        shared state, vmapped inside the same program. Branch axes may change only what the
        later phases use (the shared past runs with the first branch's knobs), never the spec.
        A tree with several levels gives one phase per branch axis (`branch_after` a tuple, in
        phase order): each level's branches continue from their parent's state through the
        phases up to the next level's phase, once per parent branch.
    max_chunk: runs (grid point x seed, each with all its branches) vmapped at once at most;
        None: `gravity.run.performance.best_chunk_size` for the devices in use.
    version: part of the stored config, with the measurement's and the engine's source digests.
    """

    name: str
    axes: tuple[Axis, ...]
    seeds: int
    build: Callable[..., tuple[Any, Any]]
    measure: Measure | None = None
    branches: tuple[Axis, ...] = ()
    branch_after: str | tuple[str, ...] | None = None
    first_seed: int = 0
    max_chunk: int | None = None
    memory_budget_gb: float = 8.0
    version: str = "1"

    def __post_init__(self):
        check(self.seeds >= 1, "seeds", "a positive integer", self.seeds)
        check(
            self.max_chunk is None or self.max_chunk >= 1,
            "max_chunk",
            "a positive integer or None",
            self.max_chunk,
        )
        names = [axis.name for axis in (*self.axes, *self.branches)]
        check(len(set(names)) == len(names), "axes", "axes with unique names", names)
        check(
            bool(self.branches) == (self.branch_after is not None),
            "branch_after",
            "a phase name exactly when there are branch axes",
            self.branch_after,
        )
        check(
            isinstance(self.branch_after, str | None)
            or len(self.branch_after) == len(self.branches),
            "branch_after",
            "one phase name, or one per branch axis",
            self.branch_after,
        )

    @property
    def levels(self) -> tuple[tuple[str, int], ...]:
        """The tree's levels: (phase it branches after, number of branches), outermost first."""
        if not self.branches:
            return ()
        if isinstance(self.branch_after, str):
            return ((self.branch_after, int(np.prod(self.branch_shape))),)
        levels: list[tuple[str, int]] = []
        for phase, axis in zip(self.branch_after, self.branches, strict=True):
            if levels and levels[-1][0] == phase:
                levels[-1] = (phase, levels[-1][1] * len(axis.values))
            else:
                levels.append((phase, len(axis.values)))
        return tuple(levels)

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """The shape of the trunk grid (non-branch axes)."""
        return tuple(len(axis.values) for axis in self.axes)

    @property
    def branch_shape(self) -> tuple[int, ...]:
        return tuple(len(axis.values) for axis in self.branches)

    @property
    def shape(self) -> tuple[int, ...]:
        """The full grid's shape: trunk axes, then branch axes (results add the seeds after)."""
        return self.grid_shape + self.branch_shape

    @property
    def all_axes(self) -> tuple[Axis, ...]:
        return self.axes + self.branches

    def points(self) -> list[dict[str, Any]]:
        """Every trunk grid point, in C order over the axes."""
        return _product(self.axes)

    def branch_points(self) -> list[dict[str, Any]]:
        """Every branch, in C order over the branch axes ([{}] for a straight sweep)."""
        return _product(self.branches)


def _product(axes: tuple[Axis, ...]) -> list[dict[str, Any]]:
    names = [axis.name for axis in axes]
    combos = itertools.product(*(axis.values for axis in axes))
    return [dict(zip(names, combo, strict=True)) for combo in combos]


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
    """How a sweep runs: its trunk points (each with its branches' knobs stacked), program
    groups and chunks (independent of the devices)."""

    sweep: Sweep
    points: list[dict[str, Any]]
    specs: list[Any]
    knobs: list[Any]
    group_of_point: np.ndarray
    chunk_size: list[int]
    chunks: list[Chunk]

    @property
    def n_runs(self) -> int:
        """Vmapped runs: trunk points x seeds (each carrying all its branches)."""
        return len(self.points) * self.sweep.seeds

    @property
    def n_histories(self) -> int:
        return self.n_runs * int(np.prod(self.sweep.branch_shape, dtype=int))

    @property
    def groups(self) -> list[Any]:
        """The distinct specs, one compiled program each."""
        return list(dict.fromkeys(self.specs))

    def grouping(self) -> dict[str, Any]:
        """Which axes split compiled programs (they change the spec), which are vmapped, and
        which branch from a shared past."""
        spec_ids = self.group_of_point.reshape(self.sweep.grid_shape)
        program_axes, vmapped_axes, notes = [], [], {}
        for a, axis in enumerate(self.sweep.axes):
            first = np.take(spec_ids, [0], axis=a)
            (program_axes if np.any(spec_ids != first) else vmapped_axes).append(axis.name)
        for axis in self.sweep.all_axes:
            if axis.note:
                notes[axis.name] = axis.note
        return {
            "programs": len(self.groups),
            "program_axes": program_axes,
            "vmapped_axes": vmapped_axes,
            "branch_axes": [axis.name for axis in self.sweep.branches],
            "branch_after": self.sweep.branch_after,
            "notes": notes,
            "runs": self.n_runs,
            "histories": self.n_histories,
            "chunks": len(self.chunks),
            "chunk_size": self.chunk_size,
        }

    def config(self) -> dict[str, Any]:
        """Everything the runs depend on (hashed by the result store)."""
        s = self.sweep
        return {
            "sweep": s.name,
            "version": s.version,
            "engine": engine_digest(),
            "axes": s.axes,
            "branches": s.branches,
            "branch_after": s.branch_after,
            "seeds": s.seeds,
            "first_seed": s.first_seed,
            "chunk_size": self.chunk_size,
            "measure": s.measure,
            "measure_source": source_digest(s.measure),
            "groups": self.groups,
            "points": [
                {"point": p, "group": int(g), "knobs": k}
                for p, g, k in zip(self.points, self.group_of_point, self.knobs, strict=True)
            ],
        }


def source_digest(target: Any) -> str | None:
    """A digest of a function's (or a callable object's class's) code (`gravity.digests`:
    comments and docstrings left out); of its raw text where that does not parse alone (a
    lambda inside a call)."""
    target = target if inspect.isfunction(target) or inspect.ismodule(target) else type(target)
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError):
        return None
    try:
        return digests.code_digest([source])
    except SyntaxError:
        return hashlib.sha256(source.encode()).hexdigest()[:16]


def engine_digest() -> str:
    """A digest of the engine's and the defences' code (`gravity/engine/`, `gravity/defences/`:
    worlds, models, objectives, spec, history, geometry, the defence protocol and every
    defence), so a changed engine never serves results computed by an older one; blind to
    comments and docstrings (`gravity.digests`), so rewording one never orphans stored runs."""
    import gravity

    root = Path(next(iter(gravity.__path__)))
    return digests.files_digest(
        file for layer in ("engine", "defences") for file in sorted((root / layer).rglob("*.py"))
    )


def plan_sweep(sweep: Sweep, n_devices: int | None = None) -> Plan:
    """Build every point's (spec, knobs), group trunk points by spec, lay out the chunks."""
    points, branches = sweep.points(), sweep.branch_points()
    specs, knobs = [], []
    for point in points:
        built = [sweep.build(**point, **branch) for branch in branches]
        point_specs = {spec for spec, _ in built}
        check(
            len(point_specs) == 1,
            f"branches of {point}",
            "branch axes that leave the spec (the compiled program) unchanged",
            len(point_specs),
        )
        specs.append(built[0][0])
        point_knobs = [k for _, k in built]
        knobs.append(_stack(point_knobs) if sweep.branches else point_knobs[0])
    group_ids: dict[Any, int] = {}
    group_of_point = np.array([group_ids.setdefault(s, len(group_ids)) for s in specs])
    runs = np.arange(len(points) * sweep.seeds).reshape(len(points), sweep.seeds)
    chunks, sizes = [], []
    for group, spec in enumerate(group_ids):
        group_runs = runs[group_of_point == group].ravel()
        limit = sweep.max_chunk or _best_chunk(spec, n_devices)
        size = math.ceil(group_runs.size / math.ceil(group_runs.size / limit))
        sizes.append(size)
        for index, start in enumerate(range(0, group_runs.size, size)):
            chunks.append(Chunk(group, index, group_runs[start : start + size]))
    return Plan(sweep, points, specs, knobs, group_of_point, sizes, chunks)


def _best_chunk(spec: Any, n_devices: int | None) -> int:
    from gravity.run import performance

    return performance.best_chunk_size(spec, n_devices or jax.device_count())


def _stack(knobs: list[Any]) -> Any:
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *knobs)
