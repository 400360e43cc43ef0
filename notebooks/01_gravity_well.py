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
# # 1. A gravity well: the metaphor made exact
#
# **What this teaches.** The project reads fine-tuning reversion as gravity: pretraining digs a
# deep, wide basin; alignment moves the model into a shallow, narrow well beside it; later
# training lets it fall back. Here that picture is a real physical system: a particle doing
# overdamped Langevin dynamics, dx = -U'(x) dt + sqrt(2T) dW, in a double well U(x). We
#
# 1. draw the well and read off its barrier and curvatures,
# 2. release thousands of particles in the alignment well and time their escapes,
# 3. check the times against Kramers' formula, tau = 2 pi / sqrt(U''(min) |U''(saddle)|)
#    exp(barrier / T), and the exact mean first-passage time,
# 4. see that a narrow well beside a wide valley leaks faster (an entropic term, Langer's
#    formula in 2-D).
#
# If reversion were this kind of *noise-activated escape*, log(escape time) would grow linearly
# in 1/T (Arrhenius). The `metastability` experiment asks whether real benign fine-tuning does.
# Everything here is `gravity.instruments.escape`; nothing is trained.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from gravity.instruments import escape

SMALL = os.environ.get("GRAVITY_NOTEBOOK_SIZE") == "small"  # CI runs every notebook small
PARTICLES = 300 if SMALL else 4000
BARRIER_OVER_T = (2.0, 3.0) if SMALL else (2.0, 2.5, 3.0, 3.5, 4.0, 5.0)
DT = 0.01

# %% [markdown]
# ## The well
#
# `DoubleWell.from_barrier` puts the saddle at 0, the alignment minimum at -1 and the
# pretraining minimum at +2, and scales the well so the alignment side's barrier is 1. The
# pretraining basin is farther from the saddle, so it is deeper and wider.

# %%
well = escape.DoubleWell.from_barrier(barrier=1.0, align_width=1.0, pretrain_width=2.0)
k_min, k_saddle, k_pre = (float(c) for c in well.curvatures())
print(f"barrier out of the alignment well: {float(well.barrier()):.2f}")
print(f"depth of the pretraining basin:    {float(well.pretrain_depth()):.2f}")
print(f"curvature U'': alignment {k_min:.2f}, saddle {k_saddle:.2f}, pretraining {k_pre:.2f}")

x = np.linspace(-1.7, 2.7, 400)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(x, well.energy_1d(x))
ax.axvline(0.0, color="grey", lw=0.5)
ax.set(xlabel="x (reaction coordinate)", ylabel="U(x)", title="alignment well | pretraining basin")
plt.show()

# %% [markdown]
# ## Escapes against Kramers
#
# Each temperature is one vmapped batch of particles. A particle has escaped once it is halfway
# from the saddle to the pretraining minimum (`dynamics` explains why halfway). The horizon is
# ten Kramers times, so nearly every particle escapes and the plain mean is fair.

# %%
temperatures = float(well.barrier()) / np.asarray(BARRIER_OVER_T)
kramers = np.asarray([float(well.kramers_time(t)) for t in temperatures])
rows = []
for i, temperature in enumerate(temperatures):
    steps, escaped = escape.langevin_escape(
        jax.random.key(i),
        well,
        temperature,
        n_particles=PARTICLES,
        dt=DT,
        max_steps=int(10 * kramers[i] / DT),
    )
    times = np.asarray(steps) * DT
    exact = escape.mfpt_1d(well, float(temperature))
    rows.append((temperature, times.mean(), kramers[i], exact, np.mean(escaped)))
    print(
        f"barrier/T = {BARRIER_OVER_T[i]:.1f}: simulated {times.mean():7.2f}  "
        f"Kramers {kramers[i]:7.2f}  exact MFPT {exact:7.2f}  escaped {np.mean(escaped):.0%}"
    )

# %% [markdown]
# Kramers' formula is the large-barrier limit: at barrier/T = 2 it is about 15% short of the
# exact time, and the gap closes as the barrier grows. The exact MFPT (a quadrature, no
# simulation) is what the particles should match at every temperature, within sampling error
# of about 1/sqrt(particles).
#
# At the small size (300 particles, two temperatures) that error is about 6%, and the Arrhenius
# fit below goes through two points, so its R^2 is 1 by construction. The full size (4000
# particles, six temperatures) makes the fit a test of the law.

# %%
table = np.asarray(rows)
fit = escape.arrhenius_fit(table[:, 0], table[:, 1])
print(f"Arrhenius fit: barrier {fit.barrier:.2f} (true 1.00), R^2 {fit.r_squared:.3f}")

fig, ax = plt.subplots(figsize=(5, 3))
ax.semilogy(1 / table[:, 0], table[:, 1], "o", label="Langevin particles")
ax.semilogy(1 / table[:, 0], table[:, 2], "-", label="Kramers")
ax.semilogy(1 / table[:, 0], table[:, 3], "--", label="exact MFPT")
ax.set(xlabel="1 / T", ylabel="mean escape time", title="Arrhenius: log tau linear in 1/T")
ax.legend(frameon=False)
plt.show()

# %% [markdown]
# ## A narrow well beside a wide valley
#
# In more dimensions the width of the well matters, not only its depth. `GravityWell2D` adds a
# transverse direction whose curvature falls from 8 in the alignment well to 1 in the pretraining
# valley: the same barrier, but the particle escapes sooner, as Langer's formula says.

# %%
well_2d = escape.GravityWell2D.from_barrier(barrier=1.0, kappa_align=8.0, kappa_pre=1.0)
temperature = temperatures[-1]
steps, _ = escape.langevin_escape(
    jax.random.key(99),
    well_2d,
    temperature,
    n_particles=PARTICLES,
    dt=DT,
    max_steps=int(10 * kramers[-1] / DT),
)
print(f"1-D well:   simulated {rows[-1][1]:.2f}, Kramers {kramers[-1]:.2f}")
print(
    f"2-D funnel: simulated {float(np.mean(steps)) * DT:.2f}, "
    f"Langer {float(well_2d.kramers_time(temperature)):.2f}"
)

# %% [markdown]
# ## What to try next
#
# - Deepen the well (`barrier=2.0`) or cool it (larger barrier/T): escape times grow as
#   exp(barrier / T), and Kramers gets better.
# - Make the pretraining basin wider (`pretrain_width=4.0`): the barrier out of the alignment
#   well is fixed, so the escape time barely moves. Depth behind the saddle does not pull.
# - Swap `kappa_align` and `kappa_pre` in the 2-D well: a wide alignment well is stickier.
# - Notebook 3 (`03_vrev_and_blocking`) shows that real benign fine-tuning does *not* look like
#   this: it reverts deterministically, from the first steps. `gravity run metastability`
#   fits the Arrhenius law to the real histories.
