# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Reading a map: basin mass x alignment depth, from the result store
#
# **What this teaches.** How the project's maps are made and read back. The gravitational
# reading predicts that reversion grows with the *mass* of the harmful basin (how much of
# pretraining taught it) and shrinks with the *depth* of alignment (how long safety training
# ran). We
#
# 1. declare that grid as a `gravity.run.sweep.Sweep`: mass is a vmapped knob, depth is a set of
#    *branches* from snapshots of one safety phase, so the whole map is one compiled program;
# 2. run it through the one runner into the **result store**, then run it again and watch it
#    load instead of compute;
# 3. read the stored arrays and draw the map.
#
# `gravity run basin_depth` (pretraining length x depth, with barriers and Hessians) and
# `gravity run metastability` store their sweeps the same way; their entries are read exactly
# like the one here.

# %%
import dataclasses
import os

import matplotlib.pyplot as plt
import numpy as np

from gravity.engine import presets
from gravity.engine.spec import with_phase
from gravity.run import sweep
from gravity.run.store import ResultStore

SMALL = os.environ.get("GRAVITY_NOTEBOOK_SIZE") == "small"  # CI runs every notebook small
SEEDS = 3 if SMALL else 16
MASSES = (0.05, 0.2, 0.5)  # hazard_rate: the share of hazardous inputs in pretraining

# %% [markdown]
# ## The history, with snapshots of the safety phase
#
# One safety phase as long as the deepest alignment keeps its parameters at every depth; a
# branch that starts from snapshot k is exactly the history whose safety phase had that many
# steps (each step's data depends only on the run's key and the step).

# %%
if SMALL:
    spec = presets.standard_spec("mlp", "tiny", keep_params=False)
    for name, steps in {"pretrain": 400, "helpful": 50, "benign": 50}.items():
        spec = with_phase(spec, name, steps=steps)
    depths, learning_rate = (15, 30, 50), 1e-2
else:
    spec = presets.standard_spec("mlp", keep_params=False)
    depths, learning_rate = (10, 25, 50, 100, 200), 1e-3
spec = with_phase(spec, "safety", steps=max(depths), snapshots=depths)


def build(hazard_rate, depth):
    """One grid point: the knobs for this mass, starting the benign phase at this depth."""
    knobs = presets.standard_knobs(spec, learning_rate, hazard_rate=hazard_rate)
    return spec, dataclasses.replace(knobs, snapshot=depths.index(depth))


basin_map = sweep.Sweep(
    name="mass-x-depth",
    axes=(sweep.Axis("hazard_rate", MASSES),),
    branches=(sweep.Axis("depth", depths),),
    branch_after="safety",
    seeds=SEEDS,
    build=build,
    measure=sweep.HistoryMetrics(
        trajectories=(("benign", ("harmfulness",)),), finals=(("helpful", ("harmfulness",)),)
    ),
)
print(sweep.plan_sweep(basin_map, 1).grouping())

# %% [markdown]
# ## Into the store, and back
#
# The store lives in `$GRAVITY_RESULTS` (else `results/`), one folder per (experiment, config
# hash). The hash covers the specs, the knobs of every point, the seeds and the measurement, so
# a changed grid never reads another's results.

# %%
store = ResultStore()
first = sweep.run_sweep(basin_map, store=store, experiment="notebook-maps", progress=False)
again = sweep.run_sweep(basin_map, store=store, experiment="notebook-maps", progress=False)
print("first run loaded from the store:", first.info["loaded_from_store"])
print("second run loaded from the store:", again.info["loaded_from_store"])
print("stored in", again.info["path"])
print({name: array.shape for name, array in again.arrays.items()})

# %% [markdown]
# ## The map
#
# Arrays come back shaped (*trunk axes, *branch axes, seeds, ...): here (mass, depth, seed,
# record). Reversion after the benign phase is the harmfulness regained as a fraction of the gap
# between the aligned model (record 0 of the benign phase) and the helpful-only witness. A run
# whose alignment barely lowered harmfulness (a gap under 0.3) has no meaningful fraction and is
# left out, as `basin_depth` does. `valid` turns diverged runs into NaN too.

# %%
harm = again.valid("metrics/benign/harmfulness")
aligned, helpful = harm[..., 0], again.valid("final/helpful/harmfulness")
gap = helpful - aligned
fraction = np.where(gap >= 0.3, (harm[..., -1] - aligned) / np.where(gap > 0, gap, 1.0), np.nan)
reversion = np.nanmean(fraction, axis=-1)

fig, ax = plt.subplots(figsize=(5, 3.4))
image = ax.imshow(reversion, origin="lower", cmap="magma", vmin=0, vmax=1, aspect="auto")
ax.set(
    xticks=range(len(depths)),
    xticklabels=depths,
    yticks=range(len(MASSES)),
    yticklabels=MASSES,
    xlabel="alignment depth (safety steps)",
    ylabel="basin mass (hazard_rate)",
    title="reversion after benign fine-tuning",
)
for (i, j), value in np.ndenumerate(reversion):
    ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="w" if value < 0.6 else "k")
fig.colorbar(image)
plt.show()

# %% [markdown]
# Read it along both axes: does reversion rise with mass (up a column) and fall with depth
# (along a row)? At the small size three seeds per cell make each number rough; the full size
# uses sixteen.
#
# ## What to try next
#
# - Add an axis: `sweep.Axis("benign_overlap", (0.0, 0.5, 1.0))` beside the mass (and a
#   `benign_overlap` argument to `build`). It is a knob, so it stays one compiled program;
#   `plan_sweep(...).grouping()` says which axes are programs and which are vmapped.
# - Change a step count instead and watch `grouping()` report a program axis.
# - Open an experiment's stored results: after `gravity run basin_depth --quick`, the entries
#   are under `results/basin_depth/`; `experiments.basin_depth.EXPERIMENT.sweeps(config)` gives
#   the sweeps, and `sweep.run_sweep(s, store=ResultStore(), experiment="basin_depth")`
#   loads each one without computing.
