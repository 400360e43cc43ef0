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

from gravity.defences import steering
from gravity.engine import geometry, presets
from gravity.engine.spec import with_phase
from gravity.run import sweep

SMALL = os.environ.get("GRAVITY_NOTEBOOK_SIZE") == "small"  # CI runs every notebook small
SEEDS = 4 if SMALL else 16
ARMS = ("none", "block", "push", "random_block")

# %% [markdown]
# ## One tree: a shared past, four futures
#
# Each seed runs P -> H -> S once; the four arms then branch from its theta_S, so they differ by
# the intervention alone. This is the README's tree (`sweep.Sweep` with `branches` and
# `branch_after="safety"`). The benign phase is compiled with the intervention machinery
# (`interventions=True`); which intervention acts is a traced knob, so all four arms share one
# compiled program. We keep the drift at the last benign step for the cross-history null.

# %%
spec, learning_rate = presets.teaching_spec(small=SMALL)
last = spec.phase("benign").steps
spec = dataclasses.replace(
    with_phase(spec, "benign", interventions=True), drift_snapshots=(last,), keep_params=False
)
knobs = presets.standard_knobs(spec, learning_rate=learning_rate)


def build(arm):
    """One branch: the same history, with this intervention in the benign phase."""
    return spec, dataclasses.replace(knobs, intervention=steering.index(arm))


res = sweep.run_sweep(
    sweep.Sweep(
        "arms",
        axes=(),
        seeds=SEEDS,
        build=build,
        branches=(sweep.Axis("arm", ARMS),),
        branch_after="safety",
    ),
    progress=False,
)
benign = {  # (arm, seed, record step) for each benign metric
    name.split("/")[-1]: res[name]
    for name in res.arrays
    if name.startswith("metrics/benign/") and res[name].ndim == 3
}
steps = spec.record_steps()["benign"]
print("diverged runs:", res.diverged_runs)

# %% [markdown]
# ## Alignment of the baseline's drift with v_rev, against its nulls

# %%
baseline = ARMS.index("none")
v_rev = res["v_rev"][baseline].reshape(SEEDS, -1)
drift = res["drift"][baseline].reshape(SEEDS, 1, -1)
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
# ## Does the paper's ordering hold here?
#
# The paper reports block < baseline < push: blocking lowers harmfulness and alignment, pushing
# raises them. The next cell checks that ordering, on the means over seeds, at every recorded
# benign step of *this* run.


# %%
def ordered(metric, column):
    """block < baseline < push for one metric's means over seeds at one recorded step."""
    block, none, push = (
        benign[metric][ARMS.index(a), :, column].mean() for a in ("block", "none", "push")
    )
    return bool(block < none < push)


for metric in ("harmfulness", "alignment"):
    held = [int(t) for c, t in enumerate(steps) if t > 0 and ordered(metric, c)]
    failed = [int(t) for t in steps if t > 0 and int(t) not in held]
    print(
        f"block < baseline < push in {metric}: holds at {len(held)} of {len(held) + len(failed)} "
        f"recorded steps, at T: {ordered(metric, -1)}; fails at steps {failed}"
    )

# %% [markdown]
# At full size (16 seeds of the standard MLP, T = 100) the ordering holds from the first steps
# but not to the end: push falls below the baseline in harmfulness from step 67 (28 of 32
# recorded steps hold) and in alignment from step 51 (26 of 32). The paper's push is an
# unbounded reward, and it also degrades the task: accuracy 0.80 at T against the baseline's
# 0.95. The small run (4 seeds of a tiny model, T = 50) is shorter and noisier and may differ;
# the cell above prints what it gives. The `blocking` experiment adds a bounded push
# (`push_bounded`, which stops rewarding at the witness's own position along v_rev); in its
# full-size MLP run the ordering in held-out harmfulness holds at every recorded step.
#
# Blocking is the clear effect: at full size the block ends at harmfulness 0.15 against the
# baseline's 0.74, at almost no task cost at T (accuracy 0.944 against 0.948). The random block pays
# the same kind of penalty in a direction with no history behind it: if it protected as much as the
# real block, the protection would come from regularising, not from v_rev. At full size it protects
# a little (0.61); compare the small run's printout.
#
# ## What to try next
#
# - Change the intervention strength: add `intervention_strength=10.0` to the
#   `dataclasses.replace` in `build`. Does blocking harder cost task accuracy?
# - Use `"project"`: remove each update's first-order motion along v_rev instead of penalising.
# - Add `"push_bounded"` to `ARMS` and check the ordering with it in place of `"push"`.
# - Other v_rev definitions: `presets.standard_spec(..., directions=("stacked", "mean",
#   "from_pretrained"))` records `alignment_by_definition` for each.
# - `gravity run reversion --quick` and `gravity run blocking --quick` run the full comparison
#   against the paper's numbers, with both models and dose panels.
