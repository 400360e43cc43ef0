"""Interventions compared on one harm-vs-cost frontier, in plain numpy over finished runs.

A *point* is one intervention at one strength ({"name", "strength", score: mean_sd over seeds});
it is scored on a harm axis (lower is better, e.g. held-out harmfulness at T) and a cost axis
(higher is better, e.g. task accuracy at T). The Pareto front keeps the points no other point
beats on both axes; the best point at equal cost is the least harmful among those whose cost
axis is within a tolerance of a reference point's (the baseline's), so a defence cannot win by
destroying the task. The cut in reversion says how much of a reference arm's rise a defence
removes, at the end and summed over the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from gravity.instruments.stats import mean_sd

HARM = "harmfulness_heldout_T"
"""The default harm axis of a point (lower is better)."""
TASK = "task_accuracy_T"
"""The default cost axis of a point (higher is better)."""
TASK_TOLERANCE = 0.01
"""How far below the reference's cost axis a point may fall and still count as equal cost."""


def final_scores(
    res, names: Mapping[str, str], index=(), phase: str = "benign"
) -> dict[str, np.ndarray]:
    """{score: a sweep's final `phase` metric, at `index`} for each (score, metric name) of
    `names`, over the sweep's runs, diverged runs as NaN."""
    return {key: res.valid(f"final/{phase}/{metric}")[index] for key, metric in names.items()}


def frontier_point(name: str, strength: float, scores: Mapping[str, np.ndarray]) -> dict:
    """One point: its name and strength, and each score's mean and sd over seeds."""
    return {
        "name": name,
        "strength": float(strength),
        **{key: mean_sd(values) for key, values in scores.items()},
    }


def frontier_points(
    arms: Sequence[tuple[str, float]], scores: Mapping[str, np.ndarray], axis: int = 0
) -> list[dict]:
    """One point per (name, strength) arm, the arm being axis `axis` of every score (the others
    are seeds)."""
    by_arm = {key: np.moveaxis(values, axis, 0) for key, values in scores.items()}
    return [
        frontier_point(name, strength, {key: values[i] for key, values in by_arm.items()})
        for i, (name, strength) in enumerate(arms)
    ]


def point_label(point: Mapping) -> str:
    """A point's label, "name@strength"."""
    return f"{point['name']}@{point['strength']:g}"


def pareto_front(points: Sequence[Mapping], lower: str = HARM, higher: str = TASK) -> list[str]:
    """Labels of the points no other point beats on both axes (a lower `lower` mean and a higher
    `higher` mean, one of them strictly), in the points' order."""
    xy = [(p[lower]["mean"], p[higher]["mean"]) for p in points]
    front = []
    for point, (x, y) in zip(points, xy, strict=True):
        beaten = any(x2 <= x and y2 >= y and (x2, y2) != (x, y) for x2, y2 in xy)
        if not beaten:
            front.append(point_label(point))
    return front


def best_at_equal_cost(
    points: Sequence[Mapping],
    exclude: Iterable[str] = (),
    reference: str = "baseline",
    lower: str = HARM,
    higher: str = TASK,
    tolerance: float = TASK_TOLERANCE,
) -> dict | None:
    """The point with the lowest `lower` mean among those whose `higher` mean is at least the
    reference point's minus `tolerance` (equal cost), leaving out the reference and the names in
    `exclude`; None when no point qualifies."""
    base = next(p for p in points if p["name"] == reference)[higher]["mean"]
    left_out = {reference, *exclude}
    kept = [
        p for p in points if p[higher]["mean"] >= base - tolerance and p["name"] not in left_out
    ]
    if not kept:
        return None
    best = min(kept, key=lambda p: p[lower]["mean"])
    return {
        "label": point_label(best),
        lower: best[lower]["mean"],
        higher: best[higher]["mean"],
        f"{reference}_{higher}": base,
    }


def reversion_cut(trajectory_AxSxT: np.ndarray, steps: Sequence[float], reference: int = 0):
    """How much of the reference arm's reversion each arm removes, from the seed means:
    1 - (the arm's rise above its first record) / (the reference's rise), at the last record and
    summed over the run (trapezoid over `steps`). Returns (at_end_A, cumulative_A)."""
    trajectory = np.nanmean(np.asarray(trajectory_AxSxT, dtype=float), axis=1)
    rise = trajectory - trajectory[:, :1]
    area = np.trapezoid(rise, np.asarray(steps, dtype=float), axis=-1)
    return 1 - rise[:, -1] / rise[reference, -1], 1 - area / area[reference]


def reversion_cut_by_strength(
    trajectory_AxSxT: np.ndarray, steps: Sequence[float], arms: Sequence[tuple[str, float]], name
) -> tuple[dict[str, float], dict[str, float]]:
    """`reversion_cut` against the first arm, for the arms of defence `name` only, keyed by
    strength ("0.5"): ({strength: cut at the end}, {strength: cumulative cut})."""
    at_end, cumulative = reversion_cut(trajectory_AxSxT, steps)
    chosen = [(i, f"{strength:g}") for i, (arm, strength) in enumerate(arms) if arm == name]
    return (
        {label: float(at_end[i]) for i, label in chosen},
        {label: float(cumulative[i]) for i, label in chosen},
    )


def mean_sd_grid(
    scores_RxSxC: Mapping[str, np.ndarray], rows: Mapping[str, int], columns: Mapping[str, int]
) -> dict:
    """{row: {column: {score: mean_sd over seeds}}} of arrays shaped (row, seed, column), the
    rows and columns named by label -> index."""
    return {
        row: {
            column: {key: mean_sd(values[i, :, j]) for key, values in scores_RxSxC.items()}
            for column, j in columns.items()
        }
        for row, i in rows.items()
    }
