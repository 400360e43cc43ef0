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
# # 5. Traits through unrelated supervision: the shared basin
#
# **What this teaches.** The third phenomenon the paper reads as gravity: a student picks up a
# teacher's trait from supervision that says nothing about it ("subliminal learning", Cloud et
# al. 2025). A teacher MLP learns to read digits. Its extra *auxiliary* outputs are never
# trained. A student is then trained only to match those auxiliary outputs, and only on pictures
# of pure noise: it never sees a digit or a label. Yet if the student starts from the teacher's
# own initialisation, it learns to read digits. From an independent initialisation it does not.
#
# The gravitational reading: a shared initialisation puts both networks in one basin, so any
# pull toward the teacher's outputs drags the student along the teacher's whole displacement.
# We train one teacher per seed and three students from it, started at an angle `a` between
# the shared initialisation (a = 0) and an independent draw (a = 90 degrees).

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from gravity.engine import digits, distill

SMALL = os.environ.get("GRAVITY_NOTEBOOK_SIZE") == "small"  # CI runs every notebook small
SEEDS = 3 if SMALL else 8
WIDTH, TEACHER_STEPS, STUDENT_STEPS = (256, 300, 300) if SMALL else (256, 600, 600)
ANGLES_DEG = (0.0, 45.0, 90.0)
LEARNING_RATE = 3e-4

# %% [markdown]
# ## The pieces
#
# scikit-learn's 8x8 digits (shipped with it, nothing downloaded), an MLP 64-W-W-(10 + 3) with
# PyTorch's default initialisation, the teacher's recipe (Adam on the 10 digit logits only), and
# the student's: KL between the teacher's and the student's softmax over the 3 auxiliary logits,
# on uniform noise images.

# %%
model = digits.DigitsModel(hidden=(WIDTH, WIDTH), n_aux=3)
data = digits.Digits()
teacher_spec = digits.TeacherSpec(TEACHER_STEPS, batch_size=64)
student_spec = distill.DistillSpec(STUDENT_STEPS, batch_size=64, n_records=4, loss="kl")
student_knobs = distill.DistillKnobs(
    unit_mask=distill.unit_mask(model.n_outputs, model.aux_units), learning_rate=LEARNING_RATE
)
start_weights = np.stack([distill.angle_weights(np.deg2rad(a)) for a in ANGLES_DEG])


def accuracy(params):
    """Digit accuracy on the held-out digits (auxiliary logits ignored)."""
    return {"accuracy": digits.digit_accuracy(model, params, data.held_out)}


def one_seed(key):
    """theta_0 -> teacher on digits; students from cos(a) theta_0 + sin(a) theta' on noise."""
    k_init, k_independent, k_teacher, k_student = jax.random.split(key, 4)
    theta_0, theta_independent = model.init(k_init), model.init(k_independent)
    teacher, _ = digits.train_teacher(model, theta_0, data, teacher_spec, LEARNING_RATE, k_teacher)

    def student(weights):
        start = distill.mix_init(theta_0, theta_independent, weights)
        end, records = distill.distill(
            model.apply, teacher, start, digits.noise_images, student_spec, student_knobs,
            k_student, accuracy,
        )  # fmt: skip
        moved = distill.displacement_overlap(start, end, theta_0, teacher)
        return records["metrics"]["accuracy"], moved["cosine"]

    return accuracy(teacher)["accuracy"], jax.vmap(student)(start_weights)


teacher_accuracy, (student_accuracy, move_cosine) = jax.device_get(
    jax.jit(jax.vmap(one_seed))(jax.random.split(jax.random.key(0), SEEDS))
)

# %% [markdown]
# ## What the students learned

# %%
print(f"teacher's digit accuracy: {teacher_accuracy.mean():.2f} (chance {digits.CHANCE:.2f})")
for a, angle in enumerate(ANGLES_DEG):
    final, cosine = student_accuracy[:, a, -1], move_cosine[:, a]
    print(
        f"student from angle {angle:4.0f} deg: digit accuracy {final.mean():.2f} ± "
        f"{final.std():.2f}, cos(its move, the teacher's move) {cosine.mean():+.2f}"
    )

fig, ax = plt.subplots(figsize=(5, 3.2))
for a, angle in enumerate(ANGLES_DEG):
    ax.plot(student_spec.record_steps, student_accuracy[:, a].mean(0), marker="o",
            label=f"start angle {angle:g} deg")  # fmt: skip
ax.axhline(digits.CHANCE, color="k", ls=":", label="chance")
ax.set(xlabel="distillation step (noise images only)", ylabel="held-out digit accuracy")
ax.legend(frameon=False, fontsize=8)
plt.show()

# %% [markdown]
# The students at angle 0 and 90 see exactly the same noise and the same teacher; only where
# they start differs. The second number says why: the shared-init student's weights move along
# the teacher's own displacement from theta_0 (a cosine well above the independent student's
# ~0), so it inherits what that displacement encodes. The effect is much weaker here than in
# the anchor on MNIST (~0.55 against ~0.11): at full size (8 seeds) the shared-init student
# reaches about 0.15 against 0.10 from the independent start. The small run (3 seeds, half the
# training) gives its own, rougher numbers, printed above; they need not match these.
#
# ## What to try next
#
# - More angles, e.g. `ANGLES_DEG = (0, 10, 30, 60, 90)`: how quickly does the trait fade as the
#   student's start leaves the teacher's basin?
# - Match more or fewer auxiliary logits (`n_aux`, and the mask's `model.aux_units[:m]`).
# - Weight decay on the student: `distill.DistillKnobs(..., weight_decay=1e-4)`.
# - `gravity run traits --quick` adds the widths, the m sweep, and the same test in the project's
#   worlds: does an aligned model distilled on benign inputs from the helpful-only witness pick
#   up its harmfulness?
