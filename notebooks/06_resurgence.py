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
# # 6. Resurgence: does an erased concept come back?
#
# **What this teaches.** The second phenomenon the paper reads as gravity: a concept erased from
# a generative model returns after fine-tuning on *other* data, as erased concepts do in Stable
# Diffusion. Here the model is a toy diffusion model whose world is known exactly: eight
# Gaussian modes on a ring, each with its own label ("prompt"); mode 0 is the concept. One
# history per seed:
#
#     pretraining (all eight modes) -> erasure of mode 0 -> benign fine-tuning on its neighbours
#
# and the measurement is the **concept mass**: the share of samples drawn with the concept's
# label that land in the concept's basin (1 after pretraining, ~0 after erasure). If the erased
# concept comes back, the mass rises during benign fine-tuning. The control that makes it a
# test is a model that **never learned** the concept (the same history without mode 0 in
# pretraining): whatever mass it reaches comes from fine-tuning alone, not from a basin dug by
# pretraining.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from gravity.engine import diffusion
from gravity.engine.diffusion.history import gallery_labels

SMALL = os.environ.get("GRAVITY_NOTEBOOK_SIZE") == "small"  # CI runs every notebook small
SEEDS = 2 if SMALL else 8
STEPS = dict(pretrain_steps=1000, erase_steps=100, benign_steps=100) if SMALL else {}

# %% [markdown]
# ## One history, vmapped over seeds and over "concept learned or not"
#
# `ResurgenceSpec` is static (world, denoiser, phase lengths, the benign arms); the knobs say
# which erasure method and whether pretraining saw the concept. `run_resurgence` is one pure
# function of (key, spec, knobs). The arms here: fine-tuning on the concept's two neighbours
# (d = 1) and on the opposite mode (d = 4, far).

# %%
spec = diffusion.ResurgenceSpec(
    arms=(diffusion.BenignArm(1), diffusion.BenignArm(4)),
    record_steps=(0, 10, 25, 50, 100),
    n_samples=1024 if SMALL else 4096,
    trajectory_samples=256 if SMALL else 1024,
    **STEPS,
)
learned = diffusion.make_knobs(spec, "retarget", concept_pretrained=True)
never = diffusion.make_knobs(spec, "retarget", concept_pretrained=False)
knobs = jax.tree.map(lambda *k: np.stack([np.asarray(x) for x in k]), *[learned] * SEEDS,
                     *[never] * SEEDS)  # fmt: skip
keys = jax.random.split(jax.random.key(0), SEEDS)
keys = jax.numpy.concatenate([keys, keys])  # the same seeds for both: a paired control
histories = jax.jit(jax.vmap(lambda key, k: diffusion.run_resurgence(key, spec, k)))
out = jax.device_get(histories(keys, knobs))

# %% [markdown]
# ## The concept's mass through the history

# %%
summary = out["summary"]
for name, rows in (("concept learned", slice(0, SEEDS)), ("never learned", slice(SEEDS, None))):
    pre = summary["pretrained"]["concept_mass"][rows].mean()
    erased = summary["erased"]["concept_mass"][rows].mean()
    after = summary["benign"]["concept_mass"][rows].mean(0)
    arms = ", ".join(f"{arm} {m:.3f}" for arm, m in zip(spec.arm_names, after, strict=True))
    print(f"{name:16s} pretrained {pre:.3f}  erased {erased:.3f}  after benign: {arms}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
trajectory = out["trajectory"]["concept_mass"]  # (runs, arms, records)
for a, arm in enumerate(spec.arm_names):
    axes[0].plot(spec.record_steps, trajectory[:SEEDS, a].mean(0), marker="o", label=f"{arm}")
    axes[0].plot(spec.record_steps, trajectory[SEEDS:, a].mean(0), ls="--",
                 label=f"{arm}, never learned")  # fmt: skip
axes[0].set(xlabel="benign step", ylabel="concept mass", title="does the concept return?")
axes[0].legend(frameon=False, fontsize=7)

labels = gallery_labels(spec)
for stage, marker in (("pretrained", "o"), ("erased", "x")):
    gallery = summary[stage]["gallery"][0]
    concept = labels == spec.mixture.concept
    axes[1].scatter(*gallery[~concept].T, s=2, c="lightgrey")
    axes[1].scatter(*gallery[concept].T, s=8, marker=marker, label=f"concept's label, {stage}")
gallery = summary["benign"]["gallery"][0, 0]
axes[1].scatter(*gallery[labels == spec.mixture.concept].T, s=8, marker="+",
                label="after benign (d = 1)")  # fmt: skip
axes[1].set(aspect="equal", title="samples of seed 0 (grey: the other labels)")
axes[1].legend(frameon=False, fontsize=7, loc="lower left")
plt.show()

# %% [markdown]
# Read the learned model's d = 1 curve against the never-learned one: only the difference can be
# the erased concept returning. The far arm (d = 4) is the other control: fine-tuning far from
# the concept should bring back less. In this toy the return is small (the `resurgence`
# experiment's report says how small, per erasure method, with blocking along v_rev). At the
# small size every number rests on two seeds and shorter phases, so it is rough: the full size
# runs eight seeds through the standard phase lengths.
#
# ## What to try next
#
# - The other erasure method: `diffusion.make_knobs(spec, "esd", ...)` (negative guidance
#   against the frozen pretrained model instead of retargeting the label).
# - Fine-tune longer (`benign_steps=400`, with `record_steps` to match) or harder
#   (`learning_rate=3e-3` in `make_knobs`).
# - Add the blocked arm, `diffusion.BenignArm(1, "block")`, and its control
#   `diffusion.BenignArm(1, "random_block")`.
# - `gravity run resurgence --quick` runs both methods with every arm and the v_rev analysis.
