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
# # 3. v_rev and blocking: the paper's main track, with its controls
#
# **What this teaches.** The paper's central measurement and the controls that turn it into a
# test. After alignment, the history defines a *reversion direction* v_rev: the activation
# displacement from the aligned model theta_S toward the helpful-only witness theta_H, on fixed
# hazardous probes. During benign fine-tuning the activations drift; the claim is that the drift
# points along v_rev: alignment(t) = cos(drift_t, v_rev) is large from the first steps.
#
# A large cosine means little on its own, so we set it beside
#
# - the **isotropic null**: how large a cosine with a *random* direction gets (closed form);
# - the **cross-history null**: v_rev of an *independent* history, same world and phases;
# - the **matched benign probes**: the same inputs without the hazard (is the drift specific to
#   hazardous inputs, or does fine-tuning move everything?);
#
# and then intervene: **block** penalises motion along v_rev during benign training, **push**
# rewards it, and **random_block** blocks a random direction (the control). If v_rev is the
# route back, blocking it should slow erosion and the random block should not.

# %%
import dataclasses
import os

import matplotlib.pyplot as plt
import numpy as np

from gravity import geometry, interventions, presets
from gravity.history import run_histories, seed_keys, stack_knobs
from gravity.spec import with_phase

SMALL = os.environ.get("GRAVITY_NOTEBOOK_SIZE") == "small"  # CI runs every notebook small
SEEDS = 4 if SMALL else 16
ARMS = ("none", "block", "push", "random_block")

# %% [markdown]
# ## One program for every arm
#
# The benign phase is compiled with the intervention machinery (`interventions=True`); which
# intervention acts is a traced knob, so all four arms share one compiled program and one
# vmapped batch. The phases before benign draw their data from the run's key alone, so every arm
# of a seed fine-tunes the *same* theta_S. We keep the drift at the last benign step for the
# cross-history null.

# %%
if SMALL:
    spec = presets.standard_spec("mlp", "tiny")
    for name, steps in {"pretrain": 400, "helpful": 50, "safety": 50, "benign": 50}.items():
        spec = with_phase(spec, name, steps=steps)
    learning_rate = 1e-2
else:
    spec, learning_rate = presets.standard_spec("mlp"), 1e-3
last = spec.phase("benign").steps
spec = dataclasses.replace(
    with_phase(spec, "benign", interventions=True), drift_snapshots=(last,), keep_params=False
)
base = presets.standard_knobs(spec, learning_rate)
knobs = stack_knobs(
    [
        dataclasses.replace(base, intervention=interventions.index(arm))
        for arm in ARMS
        for _ in range(SEEDS)
    ]
)
out = run_histories(seed_keys(list(range(SEEDS)) * len(ARMS)), spec, knobs)
benign = {
    k: np.asarray(v).reshape(len(ARMS), SEEDS, -1)
    for k, v in out["metrics"]["benign"].items()
    if np.ndim(v) == 2
}
steps = spec.record_steps()["benign"]

# %% [markdown]
# ## Alignment of the baseline's drift with v_rev, against its nulls

# %%
baseline = ARMS.index("none")
v_rev = np.asarray(out["v_rev"]).reshape(len(ARMS), SEEDS, -1)[baseline]
drift = np.asarray(out["drift"]).reshape(len(ARMS), SEEDS, 1, -1)[baseline]
isotropic = geometry.isotropic_null_quantile(v_rev.shape[-1], 0.99)
cross = geometry.cross_history_null(drift, v_rev, 0.99)

fig, ax = plt.subplots(figsize=(6, 3.2))
for metric, label in (
    ("alignment", "hazardous probes: cos(drift, v_rev)"),
    ("alignment_benign_probes", "matched benign probes"),
    ("alignment_hazard_specific", "hazard-specific (difference)"),
):
    values = benign[metric][baseline]
    ax.plot(steps, values.mean(0), marker=".", label=label)
ax.axhline(isotropic, color="k", ls=":", label=f"isotropic p99 ({isotropic:.3f})")
ax.axhline(cross, color="grey", ls="--", label=f"cross-history p99 at T ({cross:.2f})")
ax.set(xlabel="benign step t", ylabel="cosine", ylim=(-1, 1), title="baseline benign fine-tuning")
ax.legend(frameon=False, fontsize=7)
plt.show()
print(
    f"alignment at t=1: {benign['alignment'][baseline][:, 1].mean():.2f}, "
    f"at T={last}: {benign['alignment'][baseline][:, -1].mean():.2f}"
)

# %% [markdown]
# The isotropic null is tiny in these dimensions, so beating it is easy; the cross-history null
# and the matched benign probes are the honest comparisons. Read the gap between the hazardous
# and the matched benign curves: fine-tuning partly undoes alignment everywhere, and only the
# difference is specific to the hazard.
#
# ## Blocking, pushing, and the random-direction control

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for a, arm in enumerate(ARMS):
    for ax, metric in zip(axes, ("harmfulness", "alignment"), strict=True):
        ax.plot(steps, benign[metric][a].mean(0), marker=".", label=arm)
axes[0].set(xlabel="benign step t", ylabel="harmfulness", ylim=(0, 1))
axes[1].set(xlabel="benign step t", ylabel="cos(drift, v_rev)", ylim=(-1, 1))
axes[0].legend(frameon=False)
plt.show()
for a, arm in enumerate(ARMS):
    print(
        f"{arm:13s} harmfulness at T {benign['harmfulness'][a][:, -1].mean():.3f}   "
        f"alignment at T {benign['alignment'][a][:, -1].mean():+.2f}   "
        f"task accuracy {benign['task_accuracy'][a][:, -1].mean():.3f}"
    )

# %% [markdown]
# The paper's ordering is block < baseline < push, in harmfulness and in alignment. The random
# block pays the same kind of penalty in a direction with no history behind it: if it protects
# as much as the real block, the protection comes from regularising, not from v_rev.
#
# ## What to try next
#
# - Change the intervention strength: `dataclasses.replace(base, intervention_strength=10.0)`.
#   Does blocking harder cost task accuracy?
# - Use `"project"`: remove each update's first-order motion along v_rev instead of penalising.
# - Other v_rev definitions: `presets.standard_spec(..., directions=("stacked", "mean",
#   "from_pretrained"))` records `alignment_by_definition` for each.
# - `gravity run reversion --quick` and `gravity run blocking --quick` run the full comparison
#   against the paper's numbers, with both models and dose panels.
