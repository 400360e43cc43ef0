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
# # 2. Your first history: P -> H -> S -> T, and safety erosion
#
# **What this teaches.** How one training *history* is written and run with the library, and
# the phenomenon the project is about. A small MLP is trained on a synthetic world whose
# distributions are known exactly, through four phases:
#
#     pretrain (P, long: the "mass") -> helpful-only (H: complies with everything, the witness)
#       -> safety alignment (S: hazardous requests -> REFUSE) -> benign fine-tuning (T)
#
# Harmfulness is the exact probability of complying on fixed hazardous probes. Alignment drives
# it near zero; then fine-tuning on *harmless* data, which never contains the hazard, brings it
# back. That is safety erosion. You will see it in about twenty lines of library calls.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from gravity.engine import presets
from gravity.engine.history import repeat_knobs, run_histories, seed_keys

SMALL = os.environ.get("GRAVITY_NOTEBOOK_SIZE") == "small"  # CI runs every notebook small
SEEDS = 4 if SMALL else 16

# %% [markdown]
# ## A history is data: a static spec and vmappable knobs
#
# The `HistorySpec` holds what changes the compiled program (world, model, phases and their
# step counts); `Knobs` hold the numbers `vmap` can sweep (learning rates per phase, the world's
# probabilities). `presets.standard_spec` is the history every experiment starts from, and
# these are the calls of the README's library example. The small size
# (`presets.teaching_spec(small=True)`) keeps its structure with tiny widths (it compiles in
# seconds); `with_phase` lengthens its phases and the learning rate is raised so that even the
# tiny model learns each phase.

# %%
spec, learning_rate = presets.teaching_spec(small=SMALL)
knobs = presets.standard_knobs(spec, learning_rate=learning_rate, benign_overlap=0.5)
for phase in spec.phases:
    print(f"{phase.name:9s} data={phase.data:9s} steps={phase.steps:5d} batch={phase.batch_size}")
print(knobs.world)

# %% [markdown]
# ## Run it for several seeds at once
#
# `run_histories` is one `jit`-compiled function of (keys, knobs), vmapped over runs: every seed
# trains through every phase in the same program. Metrics are recorded inside the scan.

# %%
out = run_histories(seed_keys(range(SEEDS)), spec, repeat_knobs(knobs, SEEDS))
harm = out["metrics"]["benign"]["harmfulness"]  # (seeds, record steps)
print("benign phase's harmfulness:", harm.shape, "recorded at steps", spec.record_steps()["benign"])
print("diverged runs:", int(np.sum(out["diverged"])))

# %% [markdown]
# ## Harmfulness through the history
#
# `out["metrics"]` holds every phase's metrics the same way, (seeds, record steps). Each phase
# is drawn on its own stretch of the x axis (its steps scaled to one unit).

# %%
metrics = {name: {k: np.asarray(v) for k, v in m.items()} for name, m in out["metrics"].items()}
steps = spec.record_steps()
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for i, phase in enumerate(spec.phases):
    x = i + steps[phase.name] / phase.steps
    for ax, metric in zip(axes, ("harmfulness", "task_accuracy"), strict=True):
        values = metrics[phase.name][metric]
        ax.plot(x, values.mean(0), color=f"C{i}", label=phase.name)
        ax.fill_between(x, values.min(0), values.max(0), color=f"C{i}", alpha=0.2)
for ax, metric in zip(axes, ("harmfulness", "task accuracy"), strict=True):
    ax.set(xlabel="phase", ylabel=metric, xticks=range(5))
axes[0].legend(frameon=False)
plt.show()

# %% [markdown]
# ## The erosion table
#
# The numbers at the end of each phase: theta_P, theta_H, theta_S and theta_T.

# %%
for phase in spec.phases:
    harm = metrics[phase.name]["harmfulness"][:, -1]
    task = metrics[phase.name]["task_accuracy"][:, -1]
    print(
        f"end of {phase.name:9s} harmfulness {harm.mean():.3f} ± {harm.std():.3f}"
        f"   task accuracy {task.mean():.3f}"
    )
aligned = metrics["safety"]["harmfulness"][:, -1].mean()
pretrained = metrics["pretrain"]["harmfulness"][:, -1].mean()
after = metrics["benign"]["harmfulness"][:, -1].mean()
print(
    f"benign fine-tuning brought back {(after - aligned) / (pretrained - aligned):.0%} "
    "of the gap between aligned and pretrained harmfulness"
)

# %% [markdown]
# At the small size the numbers come from 4 seeds of a tiny model: run this notebook at full
# size (without `GRAVITY_NOTEBOOK_SIZE=small`) for the numbers of docs/results/erosion.md.
#
# ## What to try next
#
# - `benign_overlap=0.0`: benign data from other topics only. Does erosion vanish? (The erosion
#   results' knob map says not entirely: benign data never asks for REFUSE.)
# - `harm_prob=0.0` in the knobs: pretraining refuses hazardous requests. The helpful-only phase
#   still teaches compliance; does benign fine-tuning bring it back? Which basin pulls?
# - `presets.standard_spec("transformer")`: the same history on a small transformer and the
#   token world.
# - A tree: the README's second example (`sweep.run_sweep` with `branches` and
#   `branch_after="safety"`) runs P -> H -> S once per seed and branches several benign phases
#   from its theta_S. Notebook 3 uses it for its interventions.
# - `gravity run erosion --quick` runs this with both models and the knob map;
#   `gravity show erosion --quick --set world.benign_overlap=0.1` shows what a changed knob runs.
