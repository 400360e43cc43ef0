"""How runs respond to a knob swept over levels (a tree sweep's branch axis, e.g. the benign
overlap): whether a per-run response (e.g. reversion) moves with the knob, read over every run
by rank (so no functional form is assumed) and from the per-level means at the ends."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.stats

from gravity.instruments.effects import along


def monotone_response(values_LxR, levels: Sequence[float]) -> dict:
    """Spearman's rho and p of every run's value with its level (levels on the first axis, NaN
    runs left out), the mean at the first and the last level, and whether the per-level means
    rise at every level."""
    values = np.asarray(values_LxR, dtype=float)
    ok = np.isfinite(values)
    rho = scipy.stats.spearmanr(along(levels, values.shape, 0)[ok], values[ok])
    means = np.nanmean(values.reshape(values.shape[0], -1), axis=1)
    return {
        "spearman": {"rho": float(rho.statistic), "p": float(rho.pvalue)},
        "mean_first": float(means[0]),
        "mean_last": float(means[-1]),
        "monotone_increasing": bool(np.all(np.diff(means) > 0)),
    }
