"""Statistics every experiment reports, in one place: mean and sd over runs, reversion
fractions, Spearman correlations done three ways (pooled, within step, partial on step)."""

from __future__ import annotations

import numpy as np
import scipy.stats


def mean_sd(values) -> dict[str, float]:
    """{"mean", "sd", "n"} of the finite values over runs (sd with ddof = 0)."""
    array = np.asarray(values, dtype=float).ravel()
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return {"mean": float("nan"), "sd": float("nan"), "n": 0}
    return {"mean": float(finite.mean()), "sd": float(finite.std()), "n": int(finite.size)}


def reversion_fraction(h_t, h_aligned, h_reference, min_gap: float = 0.0) -> np.ndarray:
    """(h_t - h_aligned) / (h_reference - h_aligned): how much of the gap alignment opened has
    come back (0: none, 1: all). NaN where the gap is at most `min_gap` (nothing to revert)."""
    h_t, h_aligned, h_reference = (
        np.asarray(x, dtype=float) for x in (h_t, h_aligned, h_reference)
    )
    gap = h_reference - h_aligned
    safe = np.where(gap > min_gap, gap, np.nan)
    return (h_t - h_aligned) / safe


def spearman(x, y) -> float:
    """Spearman's rho over the finite pairs (NaN with fewer than 3 or a constant side)."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan")
    return float(scipy.stats.spearmanr(x[ok], y[ok]).statistic)


def spearman_by_step(x_RxT, y_RxT) -> dict[str, float]:
    """Correlation of two run x step arrays, three ways, because both usually share a trend in
    time that a pooled correlation mostly measures:

    pooled: over all run-steps; within_step_median: the median over steps of the across-run
    correlation at that step; partial_step: the rank correlation with the step's rank-linear
    effect removed from both (Pearson of the residual ranks).
    """
    x, y = np.asarray(x_RxT, dtype=float), np.asarray(y_RxT, dtype=float)
    within = [spearman(x[:, t], y[:, t]) for t in range(x.shape[1])]
    within = np.asarray([w for w in within if np.isfinite(w)])
    steps = np.broadcast_to(np.arange(x.shape[1]), x.shape)
    ok = np.isfinite(x) & np.isfinite(y)
    return {
        "pooled": spearman(x, y),
        "within_step_median": float(np.median(within)) if within.size else float("nan"),
        "partial_step": partial_spearman(x[ok], y[ok], steps[ok]),
    }


def partial_spearman(x, y, z) -> float:
    """Spearman's rho of x and y controlling for z: ranks, z's linear part removed, Pearson."""
    rx, ry, rz = (scipy.stats.rankdata(np.asarray(v, dtype=float).ravel()) for v in (x, y, z))
    if rx.size < 4:
        return float("nan")
    design = np.column_stack([np.ones_like(rz), rz])

    def residual(r):
        coef, *_ = np.linalg.lstsq(design, r, rcond=None)
        return r - design @ coef

    ex, ey = residual(rx), residual(ry)
    denom = np.linalg.norm(ex) * np.linalg.norm(ey)
    return float(ex @ ey / denom) if denom > 0 else float("nan")


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve of `scores` for binary `labels` (the Mann-Whitney U / n1 n0);
    NaN when one class is empty. Ties count one half."""
    scores, labels = np.asarray(scores, dtype=float).ravel(), np.asarray(labels, bool).ravel()
    ok = np.isfinite(scores)
    scores, labels = scores[ok], labels[ok]
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = scipy.stats.rankdata(scores)
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def bootstrap_interval(statistic, *arrays, n: int = 1000, level: float = 0.95, seed: int = 0):
    """A percentile bootstrap interval of `statistic(*arrays)`, resampling the first axis."""
    rng = np.random.default_rng(seed)
    size = np.asarray(arrays[0]).shape[0]
    values = []
    for _ in range(n):
        take = rng.integers(0, size, size)
        values.append(statistic(*(np.asarray(a)[take] for a in arrays)))
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [float("nan"), float("nan")]
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]
