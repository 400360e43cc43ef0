"""From finished chunks to a `SweepResult`: every output as an array of shape
(*trunk grid, *branch grid, seeds, ...), with diverged runs flagged by name, and labelled: each
dimension named (the sweep's axes, `seed`, `step_PHASE` for a phase's record steps) with its
coordinates, so a result opens as an xarray Dataset."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from gravity.run.sweep.grid import Axis, Plan
from gravity.validation import check, one_of


def flatten(tree: Any) -> dict[str, Any]:
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


def assemble(plan: Plan, done: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-run outputs from all chunks, in run order, reshaped to (*grid, *branches, seeds, ...),
    plus "__diverged__" of shape (*grid, *branches, seeds)."""
    n = plan.n_runs
    names = [k for k in next(iter(done.values())) if k != "__runs__"]
    arrays: dict[str, np.ndarray] = {}
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
        branches = plan.sweep.branch_shape
        rest = array.shape[2:] if branches else array.shape[1:]
        array = array.reshape(*plan.sweep.grid_shape, plan.sweep.seeds, *branches, *rest)
        # Contiguous, so reductions sum in the same order whether computed or loaded.
        moved = np.moveaxis(array, len(plan.sweep.grid_shape), len(plan.sweep.shape))
        arrays[name] = np.ascontiguousarray(moved)
    arrays["__diverged__"] = _diverged(arrays, plan.sweep.shape + (plan.sweep.seeds,))
    return arrays


def _diverged(arrays: Mapping[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Per-history divergence: the measurement's flag, else any non-finite floating output."""
    if "diverged" in arrays:
        return np.asarray(arrays["diverged"], dtype=bool).reshape(shape)
    bad = np.zeros(shape, dtype=bool)
    for value in arrays.values():
        value = np.asarray(value)
        if np.issubdtype(value.dtype, np.floating):
            bad |= ~np.all(np.isfinite(value.reshape(*shape, -1)), axis=-1)
    return bad


Steps = int | Sequence[int] | None
"""A record step, several (read in that order), or None for all of them."""


@dataclasses.dataclass
class SweepResult:
    """A finished sweep: every output as an array of shape (*grid shape, seeds, ...), the grid
    being the trunk axes then the branch axes.

    arrays: flat names ("metrics/benign/harmfulness") to arrays.
    diverged: (*grid shape, seeds) bool; `diverged_runs` names them.
    info: grouping (which axes are programs, vmapped, branches), timings, store path, whether it
        was loaded from the store.

    Read by axis names and record steps: `select` (a cell or sub-grid by axis values), `split`
    (every value of one axis), `runs` (the histories that did not diverge) and `valid` (all of
    them, diverged ones NaN), each at a record step when asked.
    """

    axes: tuple[Axis, ...]
    seeds: np.ndarray
    arrays: dict[str, np.ndarray]
    diverged: np.ndarray
    info: dict[str, Any]
    dims: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    coords: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(axis.values) for axis in self.axes)

    @property
    def n_histories(self) -> int:
        return int(self.diverged.size)

    @property
    def diverged_runs(self) -> list[str]:
        """Names ("axis=value,...,seed=s") of the histories that diverged."""
        names = []
        for index in np.argwhere(self.diverged):
            parts = [f"{a.name}={a.values[i]}" for a, i in zip(self.axes, index[:-1], strict=True)]
            names.append(",".join([*parts, f"seed={self.seeds[index[-1]]}"]))
        return names

    def __getitem__(self, name: str) -> np.ndarray:
        """An output by its path ("metrics/benign/harmfulness"); an unknown one is a KeyError
        that lists the outputs and the closest of them."""
        if name not in self.arrays:
            raise KeyError(f"no output {name!r} in this sweep: {one_of(self.arrays, name)}")
        return self.arrays[name]

    def tree(self) -> dict[str, Any]:
        return unflatten(self.arrays)

    def axis_values(self, name: str) -> np.ndarray:
        """The values of the axis called `name`; an unknown one is a KeyError that lists the
        axes and the closest of them."""
        return np.asarray(self.axes[self._axis_position(name)].values)

    def _axis_position(self, name: str) -> int:
        for position, axis in enumerate(self.axes):
            if axis.name == name:
                return position
        raise KeyError(
            f"no axis {name!r} in this sweep: {one_of([a.name for a in self.axes], name)}"
        )

    def select(self, **values: Any) -> SweepResult:
        """The result at the given axis values (`res.select(world="main", arm="benign")`), those
        axes dropped: the same outputs, dimension names, record steps and divergence flags, so
        one cell of a grid (or a smaller grid) reads like a whole result."""
        index: list[Any] = [slice(None)] * len(self.axes)
        for name, value in values.items():
            choices = list(self.axes[self._axis_position(name)].values)
            check(value in choices, f"axis {name}", f"one of {choices}", value)
            index[self._axis_position(name)] = choices.index(value)
        where = tuple(index)
        return dataclasses.replace(
            self,
            axes=tuple(axis for axis in self.axes if axis.name not in values),
            arrays={name: array[where] for name, array in self.arrays.items()},
            diverged=self.diverged[where],
            dims={
                name: tuple(d for d in dims if d not in values) for name, dims in self.dims.items()
            },
            coords={dim: c for dim, c in self.coords.items() if dim not in values},
        )

    def split(self, axis: str) -> dict[Any, SweepResult]:
        """{value: the result at that value} for every value of `axis`, in the axis's order."""
        return {
            value: self.select(**{axis: value})
            for value in self.axes[self._axis_position(axis)].values
        }

    def record_steps(self, name: str) -> np.ndarray:
        """The record steps of an output's step dimension (`step_PHASE`, e.g. the benign
        phase's steps of "metrics/benign/alignment")."""
        return self.coords[self._step_dim(name)]

    def _step_dim(self, name: str) -> str:
        steps = [dim for dim in self.dims[name] if dim.startswith("step_")]
        check(len(steps) == 1, f"output {name}", "one labelled step dimension", self.dims[name])
        return steps[0]

    def _at_step(self, name: str, values: np.ndarray, step: Steps, lead: int) -> np.ndarray:
        """`values` of output `name` (its leading `lead` dimensions standing for the grid and
        seeds) at record step `step` (or steps, a sequence), or all of them when None."""
        if step is None:
            return values
        steps = list(self.record_steps(name))
        wanted = list(step) if isinstance(step, Sequence) else [step]
        check(set(wanted) <= set(steps), f"step of {name}", f"its record steps {steps}", step)
        index = [steps.index(t) for t in wanted]
        index = index if isinstance(step, Sequence) else index[0]
        position = lead + self.dims[name].index(self._step_dim(name)) - self.diverged.ndim
        return np.take(values, index, axis=position)

    def valid(self, name_or_array: str | np.ndarray, step: Steps = None) -> np.ndarray:
        """An output as floats with diverged runs set to NaN, ready for nan-aware aggregates;
        at record `step` (or steps) only when given (an output by name only)."""
        value = self.arrays[name_or_array] if isinstance(name_or_array, str) else name_or_array
        value = np.array(value, dtype=float)
        mask = self.diverged.reshape(self.diverged.shape + (1,) * (value.ndim - self.diverged.ndim))
        return self._at_step(name_or_array, np.where(mask, np.nan, value), step, self.diverged.ndim)

    def runs(self, name: str, step: Steps = None) -> np.ndarray:
        """An output's histories that did not diverge, as one run axis (grid points, then
        seeds, in order) before the output's own dimensions; at record `step` (or steps) when
        given."""
        return self._at_step(name, np.asarray(self[name])[~self.diverged], step, 1)

    def runs_under(self, prefix: str) -> dict[str, np.ndarray]:
        """{output name below `prefix`: its `runs`}, e.g. a phase's metrics by name from
        `res.runs_under("metrics/benign")`."""
        start = prefix.rstrip("/") + "/"
        return {
            name[len(start) :]: self.runs(name) for name in self.arrays if name.startswith(start)
        }

    def dataset(self):
        """Every output as one xarray Dataset: named dimensions, coordinates, `diverged`;
        variables are the output names with '/' as '.' (as in the stored `result.zarr`)."""
        import xarray as xr

        from gravity.run.store import variable_name

        variables = {
            variable_name(name): (self.dims[name], value) for name, value in self.arrays.items()
        }
        variables["__diverged__"] = (self.dims["__diverged__"], self.diverged)
        coords = {dim: (dim, values) for dim, values in self.coords.items()}
        return xr.Dataset(variables, coords=coords, attrs={"names": self.names()})

    def labelled(self, name: str):
        """One output as an xarray DataArray with named dimensions and coordinates, so it can
        be sliced by axis name: `res.labelled("metrics/benign/harmfulness").sel(benign_lr=1e-3,
        step_benign=100).mean("seed")`. Diverged runs are NaN (as `valid`)."""
        import xarray as xr

        self[name]  # an unknown name lists the outputs and the closest of them
        coords = {dim: self.coords[dim] for dim in self.dims[name] if dim in self.coords}
        return xr.DataArray(self.valid(name), dims=self.dims[name], coords=coords, name=name)

    def names(self) -> dict[str, str]:
        """{dataset variable: output name}."""
        from gravity.run.store import variable_name

        return {variable_name(name): name for name in self.arrays}


def make_result(plan: Plan, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> SweepResult:
    dims, coords = labels(plan, arrays)
    arrays = dict(arrays)
    diverged = arrays.pop("__diverged__")
    seeds = plan.sweep.first_seed + np.arange(plan.sweep.seeds)
    return SweepResult(plan.sweep.all_axes, seeds, arrays, diverged, info, dims, coords)


def labels(
    plan: Plan, arrays: Mapping[str, np.ndarray]
) -> tuple[dict[str, tuple[str, ...]], dict[str, np.ndarray]]:
    """({output name: dimension names}, {dimension: coordinate values}) of assembled arrays.

    Leading dimensions are the sweep's axes and `seed`. A trailing dimension of an output under
    a phase's name ("metrics/benign/harm") that has one entry per record step of that phase is
    `step_PHASE`, with the steps as coordinate where every program records the same steps
    (else `record_PHASE`, unlabelled); any other trailing dimension is `VARIABLE_dimI`.
    """
    from gravity.run.store import variable_name

    sweep = plan.sweep
    lead = (*(axis.name for axis in sweep.all_axes), "seed")
    coords = {axis.name: coordinate(axis.values) for axis in sweep.all_axes}
    coords["seed"] = sweep.first_seed + np.arange(sweep.seeds)
    steps = _record_steps(plan.groups)
    dims = {}
    for name, array in arrays.items():
        rest = []
        phases = [part for part in name.split("/") if part in steps]
        for i, size in enumerate(np.shape(array)[len(lead) :]):
            phase = phases[0] if phases and i == 0 else None
            if phase is not None and steps[phase] is not None and size == steps[phase].size:
                rest.append(f"step_{phase}")
                coords[f"step_{phase}"] = steps[phase]
            elif phase is not None and steps[phase] is None:
                rest.append(f"record_{phase}")
            else:
                rest.append(f"{variable_name(name)}_dim{i}")
        dims[name] = (*lead, *rest)
    return dims, coords


def _record_steps(specs: list[Any]) -> dict[str, np.ndarray | None]:
    """{phase: its record steps, or None where the programs' specs record different steps}."""
    found: dict[str, np.ndarray | None] = {}
    for spec in specs:
        record_steps = getattr(spec, "record_steps", None)
        for phase, steps in (record_steps() if callable(record_steps) else {}).items():
            steps = np.asarray(steps)
            if phase not in found:
                found[phase] = steps
            elif found[phase] is not None and not np.array_equal(found[phase], steps):
                found[phase] = None
    return found


def coordinate(values: tuple) -> np.ndarray:
    """An axis's values as a coordinate array: bools, integers, floats or strings as such,
    anything else (tuples, None, configs) as its JSON text."""
    import json

    from gravity.run.report import to_jsonable

    if all(isinstance(v, bool | np.bool_) for v in values):
        return np.asarray(values, dtype=bool)
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.int64)
    if all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.float64)
    if all(isinstance(v, str) for v in values):
        return np.asarray(values, dtype=object)
    return np.asarray([json.dumps(to_jsonable(v), sort_keys=True) for v in values], dtype=object)


def summary(result: SweepResult) -> dict[str, Any]:
    """What a report says about how a sweep ran: histories, grouping, timings, diverged runs,
    and the commit its results were computed at (read back from the store: a report whose
    sweeps were loaded says which code made them, not only which code read them)."""
    info = result.info
    return {
        "n_histories": result.n_histories,
        "grouping": info.get("grouping"),
        "devices": info.get("devices"),
        "compute_wall_s": info.get("wall_s"),
        "timings": info.get("timings"),
        "loaded_from_store": info.get("loaded_from_store", False),
        "computed_at_commit": (info.get("provenance") or {}).get("git_commit"),
        "diverged_runs": result.diverged_runs,
    }
