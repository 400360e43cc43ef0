"""Measurements: what each run of a sweep returns (fixed-shape arrays, with a `diverged` flag).
Each takes `start=` so the same measurement serves straight and tree sweeps."""

from __future__ import annotations

import dataclasses

import jax

from gravity.engine import history


def history_outputs(key: jax.Array, spec, knobs, start=None) -> dict:
    """The default measurement: everything `run_history` returns except the parameters."""
    out = history.run_history(key, spec, knobs, start=start)
    out.pop("params", None)
    return out


@dataclasses.dataclass(frozen=True)
class HistoryMetrics:
    """A measurement that keeps only some metrics of `run_history` (small, fixed-shape outputs).

    trajectories: (phase, metric names) pairs kept at every record of the phase.
    finals: (phase, metric names) pairs kept at the phase's last record only.
    Returns {"metrics": {phase: {metric: (n_records,)}}, "final": {phase: {metric: ()}},
    "diverged": ()}.
    """

    trajectories: tuple[tuple[str, tuple[str, ...]], ...] = ()
    finals: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __call__(self, key: jax.Array, spec, knobs, start=None) -> dict:
        out = history.run_history(key, spec, knobs, start=start)
        metrics = out["metrics"]
        kept = {phase: {m: metrics[phase][m] for m in names} for phase, names in self.trajectories}
        finals = {phase: {m: metrics[phase][m][-1] for m in names} for phase, names in self.finals}
        return {"metrics": kept, "final": finals, "diverged": out["diverged"]}
