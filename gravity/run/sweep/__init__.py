"""Sweeps: a grid of knob values x seeds, optionally branching from a shared past, run as
vmapped, chunked, device-sharded, resumable programs.

- `grid`: what a sweep is (`Axis`, `Sweep`) and how it is laid out (`plan_sweep`): trunk points
  whose specs are equal share one compiled program, their differences are vmapped knobs; branch
  axes continue every (trunk point, seed) from its shared past inside the same program.
- `runner`: the one runner every experiment uses (`run_sweeps`): sharded over `jax.devices()`,
  chunked, stored in the result store chunk by chunk, resumed after a kill, with progress bars.
- `assemble`: finished chunks into a `SweepResult` of arrays (*grid, *branches, seeds, ...).
- `measures`: what a run returns (`history_outputs`, `HistoryMetrics`).

Run keys are `jax.random.key(seed)` for seeds `first_seed, first_seed + 1, ...`, the same at every
grid point (common random numbers: cells differ by their knobs, not by luck), so how the grid is
chunked or split can never change a result.
"""

from gravity.run.sweep.assemble import SweepResult, flatten, summary, unflatten
from gravity.run.sweep.grid import Axis, Chunk, Measure, Plan, Sweep, engine_digest, plan_sweep
from gravity.run.sweep.measures import HistoryMetrics, history_outputs
from gravity.run.sweep.runner import per_run, run_sweep, run_sweeps, store_entry

__all__ = [
    "Axis",
    "Chunk",
    "HistoryMetrics",
    "Measure",
    "Plan",
    "Sweep",
    "SweepResult",
    "engine_digest",
    "flatten",
    "history_outputs",
    "per_run",
    "plan_sweep",
    "run_sweep",
    "run_sweeps",
    "store_entry",
    "summary",
    "unflatten",
]
