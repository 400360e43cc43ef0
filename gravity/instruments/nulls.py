"""Nulls for cos(drift, v_rev): how large an alignment would be without a pull toward v_rev.

Three kinds, from the weakest to the strictest:
- isotropic: the exact quantile of the cosine with a uniformly random direction in v_rev's
  dimension (`geometry.isotropic_null_quantile`);
- matched: v_rev of another, independent history, and directions drawn from other histories'
  benign-probe drifts (`geometry.cross_history_null`, `geometry.benign_drift_null`);
- same basis: a *control* fine-tuning from the same theta_S (data that should not pull), whose
  drift is compared with the same v_rev in the same activation basis, so a treated drift that
  beats it is aligned because of its data, not because every drift from theta_S points that way.

A null is a quantile (`NULL_QUANTILE`, the p99) of the control's values over run-steps; the
treated values are read against it as the fraction above.
"""

from __future__ import annotations

import jax
import numpy as np

from gravity.engine import geometry
from gravity.engine.models import network
from gravity.engine.worlds import WorldKnobs
from gravity.instruments.readout import after_start, metric
from gravity.instruments.stats import mean_sd

NULL_QUANTILE = 0.99


def quantile_null(control, q: float = NULL_QUANTILE) -> float:
    """The q-quantile of a control's values (runs and steps pooled, NaN left out)."""
    return float(np.nanquantile(control, q))


def fraction_above(values, null: float) -> float:
    """The share of values above a null (a NaN counts as not above)."""
    return float(np.mean(np.asarray(values) > null))


def drift_nulls(drift_RxSxNxD, drift_matched_RxSxNxD, v_rev_RxNxD) -> dict:
    """The isotropic and the two matched p99 nulls of cos(drift, v_rev), and v_rev's dimension.

    drift: each run's hazardous-probe drift at the kept steps; drift_matched: its matched benign
    probes' drift; v_rev: each run's direction (so run j's v_rev is run i's other history)."""
    dim = int(np.prod(np.shape(v_rev_RxNxD)[1:]))
    return {
        "null_p99_isotropic": geometry.isotropic_null_quantile(dim, NULL_QUANTILE),
        "null_p99_matched": geometry.cross_history_null(drift_RxSxNxD, v_rev_RxNxD, NULL_QUANTILE),
        "null_p99_benign_drift": geometry.benign_drift_null(
            drift_RxSxNxD, drift_matched_RxSxNxD, NULL_QUANTILE
        ),
        "null_dim": dim,
    }


def activation_dim(spec) -> int:
    """The stacked dimension N x D of the hazardous-probe activations v_rev lives in (the
    isotropic null's dimension), from the spec alone."""
    net = network(spec.model, spec.world)
    probes = spec.world.probe_set(WorldKnobs(), spec.n_probes).hazard.inputs
    shape = jax.eval_shape(lambda: net.activations(net.init(jax.random.key(0)), probes)).shape
    return int(np.prod(shape))


def isotropic_null(spec) -> float:
    """The isotropic p99 null in the dimension of a spec's stacked hazardous-probe activations
    (for results that keep no v_rev to read the dimension from)."""
    return geometry.isotropic_null_quantile(activation_dim(spec), NULL_QUANTILE)


def strictest(nulls: dict) -> float:
    """The largest of `drift_nulls`' three p99 nulls: what an alignment must clear."""
    return max(
        nulls["null_p99_isotropic"], nulls["null_p99_matched"], nulls["null_p99_benign_drift"]
    )


def same_basis_nulls(treated, control, step: int, phase: str = "benign") -> dict:
    """The same-basis nulls of a control fine-tuning from the same theta_S as `treated` (both
    sweep results of one cell, `SweepResult.select`): the p99 of the control's alignment after
    step 0 and the share of the treated alignment above it; the same for the hazard-specific
    cosine; the control's alignment and held-out harm at `step`."""
    align, specific = metric(phase, "alignment"), metric(phase, "alignment_hazard_specific")
    null, specific_null = (quantile_null(after_start(control, n)) for n in (align, specific))
    return {
        "null_p99_same_basis": null,
        "fraction_above_same_basis_null": fraction_above(after_start(treated, align), null),
        f"alignment_control_finetune_step{step}": mean_sd(control.runs(align, step=step)),
        f"harmfulness_control_finetune_step{step}": mean_sd(
            control.runs(metric(phase, "harmfulness_heldout"), step=step)
        ),
        "hazard_specific_null_p99": specific_null,
        "fraction_hazard_specific_above_its_null": fraction_above(
            after_start(treated, specific), specific_null
        ),
    }
