"""Effects along the levels of a grid of runs (lengths, depths, doses x ... x seeds).

A map's per-run arrays are read along one axis at a time: each level's mean and sd pooled over
the other axes (`by_level`), the effect from the first level to the last with its rank trend
(`level_trend`), cell means as the nested tables a report prints (`cell_means`, `cell_table`);
two arms whose levels differ in dose per level are compared at equal dose (`equal_dose_levels`,
`equal_dose_table`); and a control arm's effect is read against the main arm's by a rule fixed
before the run (`RatioRule`), so the verdict is computed, not written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from gravity.instruments.stats import mean_sd, spearman


def cell_means(values: Mapping[str, np.ndarray], axis: int = -1) -> dict[str, np.ndarray]:
    """Each array's mean over `axis` (the seeds by default), NaN (diverged) runs left out."""
    return {name: np.nanmean(value, axis=axis) for name, value in values.items()}


def cell_table(
    cells, row_levels: Sequence, column_levels: Sequence, *, rows: str = "", columns: str = ""
) -> dict[str, dict[str, float]]:
    """A rows x columns array as {f"{rows}{row}": {f"{columns}{column}": value}}, values
    rounded to 4 decimals: the JSON shape of a map's cell means."""
    cells = np.asarray(cells, dtype=float)
    return {
        f"{rows}{r}": {
            f"{columns}{c}": round(float(cells[i, j]), 4) for j, c in enumerate(column_levels)
        }
        for i, r in enumerate(row_levels)
    }


def along(levels: Sequence, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """The levels of grid axis `axis` broadcast to a run array's `shape` (every run labelled by
    its level, e.g. for a rank correlation with the level)."""
    index = [None] * len(shape)
    index[axis] = slice(None)
    return np.broadcast_to(np.asarray(levels)[tuple(index)], shape)


def by_level(values, levels: Sequence, axis: int, prefix: str = "") -> dict[str, dict]:
    """{f"{prefix}{level}": mean_sd} of `values` at each level of `axis`, pooled over the other
    axes (runs and seeds alike)."""
    values = np.asarray(values, dtype=float)
    return {
        f"{prefix}{level}": mean_sd(np.take(values, j, axis=axis)) for j, level in enumerate(levels)
    }


def level_trend(
    values,
    levels: Sequence,
    axis: int,
    *,
    first: str = "first",
    last: str = "last",
    effect: str | None = "effect",
) -> dict[str, float]:
    """How `values` move along `axis`: the mean at its first and last level (pooled over the
    other axes), the effect first minus last (left out when `effect` is None), and Spearman's
    rho of every run with its level. The keys are the caller's names, so a report can say
    "shortest_alignment" where the levels are alignment lengths."""
    values = np.asarray(values, dtype=float)
    start = mean_sd(np.take(values, 0, axis=axis))["mean"]
    end = mean_sd(np.take(values, -1, axis=axis))["mean"]
    out = {first: start, last: end}
    if effect is not None:
        out[effect] = start - end
    return out | {"spearman_rho": spearman(along(levels, values.shape, axis), values)}


def equal_dose_levels(levels: Sequence[int], dose_a: float, dose_b: float) -> list[tuple[int, int]]:
    """(j, k) where arm a at `levels[j]` and arm b at `levels[k]` receive the same dose, each
    level's dose being level x the arm's dose per level (e.g. refused examples per step); the
    level of b is rounded to the nearest integer, and a j whose match is not a level is left
    out."""
    levels = list(levels)
    pairs = []
    for j, level in enumerate(levels):
        matched = round(level * dose_a / dose_b)
        if matched in levels:
            pairs.append((j, levels.index(matched)))
    return pairs


def equal_dose_table(
    arms: Mapping[str, Mapping[str, np.ndarray]],
    doses: Mapping[str, float],
    levels: Sequence[int],
    axis: int,
    names: Sequence[str],
    *,
    level: str = "level",
    dose: str = "dose",
) -> list[dict]:
    """Two arms compared at equal dose (`equal_dose_levels`, the first arm's levels matched in
    the second's): a row per matched pair, {dose: the dose, f"{arm}_{level}": each arm's
    level, f"{name}_{arm}": the mean of each of `names` there, pooled over the other axes}.

    arms: {arm: {name: per-run array}} with the levels along `axis`, exactly two arms;
    doses: {arm: dose per level} (e.g. refused examples per safety step).
    """
    (a, b), levels = list(arms), list(levels)
    rows = []
    for j, k in equal_dose_levels(levels, doses[a], doses[b]):
        row = {dose: levels[j] * doses[a], f"{a}_{level}": levels[j], f"{b}_{level}": levels[k]}
        for name in names:
            row[f"{name}_{a}"] = mean_sd(np.take(arms[a][name], j, axis=axis))["mean"]
            row[f"{name}_{b}"] = mean_sd(np.take(arms[b][name], k, axis=axis))["mean"]
        rows.append(row)
    return rows


@dataclasses.dataclass(frozen=True)
class RatioRule:
    """A reading of r = effect / reference fixed before the run: r >= `high` reads `above`,
    r <= `low` reads `below`, anything between reads `between`; with no positive finite
    reference (or a non-finite effect) r is NaN and the reading `undefined`.

    Called as `rule(reference, effect)` -> (r, reading).
    """

    high: float
    low: float
    above: str
    below: str
    between: str
    undefined: str

    def __call__(self, reference: float, effect: float) -> tuple[float, str]:
        if not (np.isfinite(reference) and np.isfinite(effect)) or reference <= 0:
            return float("nan"), self.undefined
        ratio = effect / reference
        if ratio >= self.high:
            return ratio, self.above
        if ratio <= self.low:
            return ratio, self.below
        return ratio, self.between
