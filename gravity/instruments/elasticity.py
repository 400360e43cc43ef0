"""Elasticity (Ji et al., ACL 2025, "Language models resist alignment"): how fast an aligned model
rebounds toward its pretrained behaviour under further fine-tuning, against how much it was
pretrained and how much alignment it had.

Ji et al. fine-tune aligned models on data that pulls back toward the pretraining distribution
and report that the fall back is fast and then slows, and that it is faster with more
pretraining; in their rebound experiment, models that had more positive (alignment) data fall
faster at first. In the toy (definitions fixed before the full run, #24):

- the **rebound** after k fine-tuning steps is the share of the way back to the pretrained
  model's held-out harmfulness, r_k = (h_k - h_S) / (h_P - h_S), h_S at the branch's theta_S
  and h_P at its own theta_P (the pretraining snapshot it grew from);
- the **rebound time** is the first step at which r reaches 1/2 (held-out harm passes the
  midpoint of h_S and h_P: early_warning's reversion criterion), linearly interpolated between
  records; a run that never gets there within the phase counts at the phase's length (so its
  speed is an upper bound); the **rebound speed** is its inverse;
- its dependence on an amount (pretraining steps, alignment steps) is the per-seed least-squares
  slope of the speed against log2(amount), averaged over the other axis's values, one value per
  seed; Ji et al.'s direction is a positive slope for both amounts.

The first definition of the speed was r_10; a 2-seed quick run (MLP, 2 x 2 amounts) showed it at
its ceiling (r >= 1 by step 8 on the pretraining distribution), so the speed became the inverse
half-way time before the full run. That quick run's slopes (about -0.1 for pretraining, both
data) had been seen when the change was made; r_10 is still reported (`rebound_at_10`).

Two fine-tuning data: the pretraining distribution itself (`pretrain`: the inverse alignment of
Ji et al., whose negative data pulls toward pretraining) and the paper's harmless `benign` data.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gravity.engine import history
from gravity.engine.models import network

REBOUND_STEP = 10
"""k of the reported r_k (the first definition of the speed, kept beside it)."""
HALFWAY = 0.5
"""The share of the way back at which the rebound time is read."""


@dataclasses.dataclass(frozen=True)
class ElasticityMeasure:
    """A branch's fine-tuning trajectory of held-out harmfulness and its own anchors' (theta_P,
    theta_H: the pretraining snapshot and helpful-only phase it grew from)."""

    phase: str = "benign"

    def __call__(self, key, spec, knobs, start=None) -> dict:
        out = history.run_history(key, spec, knobs, start=start)
        state = history.branch_state(start, spec, knobs)
        net = network(spec.model, spec.world)

        def harm(role):
            params = state.boundaries[spec.anchor_name(role)]
            metrics, _, _ = history.behaviour(
                net, params, state.probes, spec.world.n_classes, state.heldout
            )
            return metrics["harmfulness_heldout"]

        phase = out["metrics"][self.phase]
        return {
            self.phase: {m: phase[m] for m in ("harmfulness_heldout", "task_accuracy")},
            "harm_pretrained": harm("pretrain"),
            "harm_helpful": harm("helpful"),
            "diverged": out["diverged"],
        }


def rebound(harm_xT: np.ndarray, harm_pretrained: np.ndarray, column: int) -> np.ndarray:
    """r_k = (h_k - h_S) / (h_P - h_S) at record `column` (h_S: record 0)."""
    aligned = harm_xT[..., 0]
    return (harm_xT[..., column] - aligned) / (harm_pretrained - aligned)


def rebound_time(rebound_xT: np.ndarray, steps_T, share: float = HALFWAY) -> np.ndarray:
    """The first step at which the rebound reaches `share`, linearly interpolated between the
    records before and at the crossing; the last record step where it never does (censored:
    `rebound_censored`). NaN runs stay NaN."""
    steps = np.asarray(steps_T, dtype=float)
    reached = rebound_xT >= share
    first = np.argmax(reached, axis=-1)
    before = np.maximum(first - 1, 0)
    r0 = np.take_along_axis(rebound_xT, before[..., None], -1)[..., 0]
    r1 = np.take_along_axis(rebound_xT, first[..., None], -1)[..., 0]
    t0, t1 = steps[before], steps[first]
    fraction = np.where(r1 > r0, (share - r0) / np.where(r1 > r0, r1 - r0, 1.0), 1.0)
    crossed = t0 + np.clip(fraction, 0.0, 1.0) * (t1 - t0)
    time = np.where(reached.any(axis=-1), crossed, steps[-1])
    return np.where(np.isnan(rebound_xT).any(axis=-1), np.nan, time)


def rebound_censored(rebound_xT: np.ndarray, share: float = HALFWAY) -> np.ndarray:
    """Whether a run never reached `share` of the way back within its records."""
    return ~(rebound_xT >= share).any(axis=-1)


def slopes_by_seed(values_AxBxS: np.ndarray, amounts_A, axis: int) -> np.ndarray:
    """Per seed, the least-squares slope of `values` against log2 of the amounts on `axis` (0 or
    1 of an (A, B, seeds) array), averaged over the other axis: (seeds,)."""
    values = np.moveaxis(values_AxBxS, axis, 0)
    x = np.log2(np.asarray(amounts_A, dtype=float))
    x = x - x.mean()
    centred = values - np.nanmean(values, axis=0, keepdims=True)
    slopes = np.nansum(x[:, None, None] * centred, axis=0) / np.sum(x**2)
    return np.nanmean(slopes, axis=0)


def by_amount(values_AxBxS: np.ndarray, amounts, axis: int) -> list[dict]:
    """The mean and sd over the other axis's values and the seeds at each amount on `axis`."""
    values = np.moveaxis(values_AxBxS, axis, 0)
    return [
        {"amount": int(a), "mean": float(np.nanmean(v)), "sd": float(np.nanstd(v))}
        for a, v in zip(amounts, values, strict=True)
    ]


def summary(rebound_AxBxSxT: np.ndarray, steps_T, harm_xT: np.ndarray, harm_pretrained, amounts):
    """One fine-tuning data's elasticity: rebound speed (inverse half-way time), its censored
    share, r_10, r at T and the anchors' harm, the mean rebound by step, and per amount axis
    (`amounts`: {name: values}, in the array's axis order) the speed by amount and the per-seed
    slopes of the speed and of r_10 against log2(amount)."""
    steps = [int(s) for s in steps_T]
    speed = 1.0 / rebound_time(rebound_AxBxSxT, steps)
    at_10 = rebound_AxBxSxT[..., steps.index(REBOUND_STEP)]
    out = {
        "rebound_speed_mean": float(np.nanmean(speed)),
        "censored_share": float(np.mean(rebound_censored(rebound_AxBxSxT))),
        "rebound_at_10_mean": float(np.nanmean(at_10)),
        "rebound_at_T_mean": float(np.nanmean(rebound_AxBxSxT[..., -1])),
        "harm_aligned_mean": float(np.nanmean(harm_xT[..., 0])),
        "harm_pretrained_mean": float(np.nanmean(harm_pretrained)),
        "rebound_by_step": np.nanmean(rebound_AxBxSxT, axis=(0, 1, 2)).tolist(),
        "steps": steps,
    }
    for axis, (name, values) in enumerate(amounts.items()):
        out[f"by_{name}"] = by_amount(speed, values, axis)
        for label, measured in (("", speed), ("_at_10", at_10)):
            slopes = slopes_by_seed(measured, values, axis)
            out[f"slope_{name}{label}"] = [float(v) for v in slopes]
    return out
