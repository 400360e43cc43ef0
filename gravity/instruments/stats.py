"""Statistics every experiment reports, in one place: mean and sd over runs, reversion
fractions, Spearman correlations done three ways (pooled, within step, partial on step), and the
seed-level statistics a verdict rests on (`gravity.instruments.claims`): paired differences on
shared seeds with a sign test and a sign-flip permutation test, t intervals from stored summaries,
and percentile bootstraps (over seeds, over conditions then seeds, or over conditions and seeds
crossed) that are vectorised and seeded.

Arms of one tree share their seeds (every branch continues from the same theta_S of each seed),
so "A beats B" is always a paired comparison: the unit is the per-seed difference."""

from __future__ import annotations

import math
from collections.abc import Callable

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


# Seed-level statistics for verdicts. Every resampling is seeded (the same inputs give the same
# interval) and vectorised: all resamples are drawn as one index array and reduced in one call.

LEVEL = 0.95
N_RESAMPLES = 4000


def percentile_interval(values, level: float = LEVEL) -> list[float]:
    """The central `level` percentile interval of the finite `values` ([NaN, NaN] if none)."""
    values = np.asarray(values, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [float("nan"), float("nan")]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def percentile_bootstrap(
    values_S,
    statistic: Callable = np.mean,
    *,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> list[float]:
    """A percentile bootstrap interval of `statistic` over the finite values (one per seed).

    `statistic(array_BxS, axis=-1)` is called once on all resamples (np.mean, np.median, ...).
    The values are sorted first, so the interval depends on the values and not on the order of
    the seeds. Fewer than two values give [NaN, NaN]: one seed says nothing about the spread.
    """
    values = np.sort(_finite(values_S))
    if values.size < 2:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    take_BxS = rng.integers(0, values.size, (n_resamples, values.size))
    return percentile_interval(statistic(values[take_BxS], axis=-1), level)


def hierarchical_bootstrap(
    values_CxS,
    statistic: Callable = np.mean,
    *,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> list[float]:
    """A percentile bootstrap interval of `statistic` over a conditions x seeds array that
    resamples conditions, then seeds within each drawn condition (a two-stage bootstrap).

    Use it when a claim pools conditions (learning rates, datasets): resampling the pooled runs
    as if independent ignores that runs of one condition resemble each other, and the interval
    comes out too narrow. `statistic(array_BxN, axis=-1)` sees each resample's C * S values.
    Diverged runs must be removed or imputed first: non-finite entries are refused.
    """
    values = np.asarray(values_CxS, dtype=float)
    if values.ndim != 2 or not np.isfinite(values).all():
        raise ValueError(f"values_CxS must be a finite 2-d array, got shape {values.shape}")
    n_conditions, n_seeds = values.shape
    if values.size < 2:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    conditions_BxC = rng.integers(0, n_conditions, (n_resamples, n_conditions))
    seeds_BxCxS = rng.integers(0, n_seeds, (n_resamples, n_conditions, n_seeds))
    resampled_BxCxS = values[conditions_BxC[:, :, None], seeds_BxCxS]
    return percentile_interval(statistic(resampled_BxCxS.reshape(n_resamples, -1), axis=-1), level)


def crossed_resamples(
    n_conditions: int, n_seeds: int, *, n_resamples: int = N_RESAMPLES, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Resamples of a conditions x seeds grid whose seeds are crossed with its conditions: every
    condition ran from the same seeds (the branches of one tree), so a seed's runs share its
    theta_S across conditions. Returns the drawn conditions (B x C) and seeds (B x S); a
    resample holds every run where they cross (`crossed_runs`).

    Conditions and seeds are drawn with replacement, independently (a two-way, "pigeonhole"
    bootstrap). `hierarchical_bootstrap` draws new seeds for each condition, as if each had its
    own; with crossed seeds that averages a seed's effect away and leaves the interval too
    narrow for anything that differs by seed.
    """
    rng = np.random.default_rng(seed)
    conditions_BxC = rng.integers(0, n_conditions, (n_resamples, n_conditions))
    return conditions_BxC, rng.integers(0, n_seeds, (n_resamples, n_seeds))


def crossed_runs(conditions_BxC, seeds_BxS, n_seeds: int) -> np.ndarray:
    """Each resample's runs (`crossed_resamples`) as flat indices (B x C*S) into the row-major
    conditions x seeds grid that has `n_seeds` columns."""
    conditions_BxC, seeds_BxS = np.asarray(conditions_BxC), np.asarray(seeds_BxS)
    flat_BxCxS = conditions_BxC[:, :, None] * n_seeds + seeds_BxS[:, None, :]
    return flat_BxCxS.reshape(conditions_BxC.shape[0], -1)


def draw_counts(drawn_BxK, size: int) -> np.ndarray:
    """How often each of `size` items was drawn in each resample (B x size, floats)."""
    drawn_BxK = np.asarray(drawn_BxK)
    rows = np.arange(drawn_BxK.shape[0])[:, None] * size
    counts = np.bincount((rows + drawn_BxK).ravel(), minlength=drawn_BxK.shape[0] * size)
    return counts.reshape(drawn_BxK.shape[0], size).astype(float)


def resampled_roc_auc(scores_N, labels_N, take_BxM) -> np.ndarray:
    """`roc_auc` of the runs each row of `take_BxM` (indices into the N runs) picks, one value
    per row, all rows at once (NaN where a row lacks a class). Runs whose score is not finite
    are left out, as `roc_auc` leaves them out."""
    scores, labels = np.asarray(scores_N, dtype=float).ravel(), np.asarray(labels_N, bool).ravel()
    finite = np.isfinite(scores)
    order_N = np.zeros(scores.size)  # the finite scores' dense ranks, from 1; 0 below them all
    order_N[finite] = scipy.stats.rankdata(scores[finite], method="dense")
    taken = np.asarray(take_BxM)
    positive_BxM, valid_BxM = (labels & finite)[taken], finite[taken]
    ranks_BxM = scipy.stats.rankdata(order_N[taken], axis=1)
    n1_B, invalid_B = positive_BxM.sum(axis=1), (~valid_BxM).sum(axis=1)
    u_B = (ranks_BxM * positive_BxM).sum(axis=1) - n1_B * invalid_B - n1_B * (n1_B + 1) / 2
    pairs_B = n1_B * (valid_BxM.sum(axis=1) - n1_B)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs_B > 0, u_B / pairs_B, np.nan)


def t_interval(
    mean: float, sd: float, n: int | None, *, level: float = LEVEL, ddof: int = 0
) -> list[float]:
    """The Student-t interval of a mean from a stored summary (`mean_sd` writes sd with
    ddof = 0, the default here). [NaN, NaN] with fewer than two runs."""
    if n is None or n < 2 or not (np.isfinite(mean) and np.isfinite(sd)):
        return [float("nan"), float("nan")]
    sample_sd = sd * math.sqrt((n - ddof) / (n - 1))  # the unbiased (ddof = 1) sd
    standard_error = sample_sd / math.sqrt(n)
    half = float(scipy.stats.t.ppf((1 + level) / 2, n - 1)) * standard_error
    return [float(mean - half), float(mean + half)]


def sign_test(differences) -> float:
    """The exact two-sided sign test: how often would at least this many of the nonzero
    differences share one sign if each were positive with probability 1/2 (ties, i.e. zeros,
    are dropped). 1.0 when every difference is zero; NaN with no finite difference."""
    differences = _finite(differences)
    if differences.size == 0:
        return float("nan")
    positive, negative = int((differences > 0).sum()), int((differences < 0).sum())
    n = positive + negative
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(positive, negative) + 1))
    return min(1.0, 2 * tail / 2**n)


def sign_flip_test(
    differences, *, n_resamples: int = N_RESAMPLES, seed: int = 0, max_exact: int = 12
) -> float:
    """The two-sided permutation test of paired differences: under no effect, each seed's
    difference is as likely to have had the other sign, so the p value is the share of sign
    flips whose |mean| reaches the observed one.

    Exact (all 2^n flips) up to `max_exact` seeds; beyond, `n_resamples` seeded random flips
    with the (hits + 1) / (resamples + 1) correction, so p is never 0. NaN with no data.
    """
    differences = np.sort(_finite(differences))
    n = differences.size
    if n == 0:
        return float("nan")
    observed = abs(differences.mean())
    if n <= max_exact:
        bits_FxN = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        flipped = np.abs((2 * bits_FxN - 1) @ differences) / n
        return float(np.mean(flipped >= observed - _tie_tolerance(differences)))
    signs_BxN = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_resamples, n))
    flipped = np.abs(signs_BxN @ differences) / n
    hits = int((flipped >= observed - _tie_tolerance(differences)).sum())
    return (hits + 1) / (n_resamples + 1)


def paired_difference(
    a_S, b_S, *, n_resamples: int = N_RESAMPLES, level: float = LEVEL, seed: int = 0
) -> dict[str, float | int | list[float]]:
    """a - b on the same seeds: {"mean", "interval" (percentile bootstrap of the mean over
    seeds), "n" (seeds where both are finite), "sign_p", "permutation_p" (sign flips),
    "effect_size" (mean / sd of the differences, ddof = 1: Cohen's d_z)}.

    The arms of one tree share their seeds, so a seed's two values differ by the treatment
    alone; pairing removes the seed-to-seed spread that an unpaired comparison would carry.
    Invariant to the order of the seeds (the differences are sorted before resampling).
    """
    a, b = np.asarray(a_S, dtype=float).ravel(), np.asarray(b_S, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired arms need one value per seed each, got {a.size} and {b.size}")
    both = np.isfinite(a) & np.isfinite(b)
    differences = np.sort(a[both] - b[both])
    n = int(differences.size)
    mean = float(differences.mean()) if n else float("nan")
    return {
        "mean": mean,
        "interval": percentile_bootstrap(
            differences, n_resamples=n_resamples, level=level, seed=seed
        ),
        "n": n,
        "sign_p": sign_test(differences),
        "permutation_p": sign_flip_test(differences, n_resamples=n_resamples, seed=seed),
        "effect_size": _effect_size(differences),
    }


def unpaired_difference(a, b) -> dict:
    """a - b of two stored estimates ({"estimate", "interval", "n"}) whose intervals come from
    different resamples, the difference's 95% interval from their normal standard errors
    (interval width / 3.92) added in quadrature: unpaired, so wider than a paired comparison."""
    se = [(e["interval"][1] - e["interval"][0]) / 3.92 for e in (a, b)]
    value = a["estimate"] - b["estimate"]
    half = 1.96 * float(np.hypot(*se))
    return {
        "estimate": value,
        "interval": [value - half, value + half],
        "n": min(a["n"], b["n"]),
        "test": "unpaired: difference of two estimates, normal interval from their two intervals",
    }


def _effect_size(differences: np.ndarray) -> float:
    """mean / sd (ddof = 1); +-inf for a constant nonzero difference, NaN when undefined."""
    if differences.size < 2:
        return float("nan")
    mean, sd = float(differences.mean()), float(differences.std(ddof=1))
    if sd > 0:
        return mean / sd
    return math.copysign(math.inf, mean) if mean != 0 else float("nan")


def _finite(values) -> np.ndarray:
    """The finite entries of `values`, flattened to 1-d floats."""
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]


def _tie_tolerance(differences: np.ndarray) -> float:
    """How far below the observed |mean| a flipped |mean| still counts as reaching it: sums of
    the same numbers in another order differ in their last bits."""
    return 1e-12 * max(1.0, float(np.abs(differences).max(initial=0.0)))
