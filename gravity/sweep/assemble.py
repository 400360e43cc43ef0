"""From finished chunks to a `SweepResult`: every output as an array of shape
(*trunk grid, *branch grid, seeds, ...), with diverged runs flagged by name."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from gravity.sweep.grid import Axis, Plan
from gravity.validation import check


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
        arrays[name] = np.moveaxis(array, len(plan.sweep.grid_shape), len(plan.sweep.shape))
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


@dataclasses.dataclass
class SweepResult:
    """A finished sweep: every output as an array of shape (*grid shape, seeds, ...), the grid
    being the trunk axes then the branch axes.

    arrays: flat names ("metrics/benign/harmfulness") to arrays.
    diverged: (*grid shape, seeds) bool; `diverged_runs` names them.
    info: grouping (which axes are programs, vmapped, branches), timings, store path, whether it
        was loaded from the store.
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
        """Names ("axis=value,...,seed=s") of the histories that diverged."""
        names = []
        for index in np.argwhere(self.diverged):
            parts = [f"{a.name}={a.values[i]}" for a, i in zip(self.axes, index[:-1], strict=True)]
            names.append(",".join([*parts, f"seed={self.seeds[index[-1]]}"]))
        return names

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


def make_result(plan: Plan, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> SweepResult:
    arrays = dict(arrays)
    diverged = arrays.pop("__diverged__")
    seeds = plan.sweep.first_seed + np.arange(plan.sweep.seeds)
    return SweepResult(plan.sweep.all_axes, seeds, arrays, diverged, info)


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
