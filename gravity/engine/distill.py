"""Distillation: a phase whose targets are another model's outputs, not labels.

The third phenomenon (subliminal transfer, Cloud et al. 2025) needs a student trained to match
a teacher's logits on a chosen subset of output units, on inputs that say nothing about the
trait (uniform noise, benign prompts). `distill` is that phase as one pure function: the loop
of `gravity.engine.training.train` (a `lax.scan` over steps, the batch of step i drawn with
`fold_in(phase_key, i)`), the teacher's targets computed on the same batch and never
differentiated. It trains one student; vmap it over a stack of students with the teacher and the
key unbatched, and the teacher's forward pass (and the batch) is computed once per step for all
of them: common random numbers, so students differ by their initialisation and knobs, not by
the inputs they saw.

Which units are matched is a traced mask (`DistillKnobs.unit_mask`), so students matching
different numbers of units run in one program: an unmatched unit leaves the objective, and its
readout row gets no gradient, exactly as if the model did not have it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gravity.engine import training
from gravity.engine.geometry import EPS, cosine, tree_vector
from gravity.validation import check, check_choice

Params = Any
Apply = Callable[[Params, jax.Array], jax.Array]
LOSSES = ("kl", "mse")
MASKED_LOGIT = -1e9


@dataclasses.dataclass(frozen=True)
class DistillSpec:
    """The static part of a distillation phase.

    steps: updates; batch_size: inputs per update (drawn fresh at every step);
    n_records: metrics are recorded at step 0 and after every `steps / n_records` updates;
    loss: "kl" (KL(teacher || student) of the softmax over the matched units) or "mse" (mean
        squared difference of the matched logits).
    """

    steps: int
    batch_size: int
    n_records: int = 1
    loss: str = "kl"

    def __post_init__(self):
        check(self.steps >= 1, "distill.steps", "a positive integer", self.steps)
        check(self.batch_size >= 1, "distill.batch_size", "a positive integer", self.batch_size)
        check(
            self.n_records >= 1 and self.steps % self.n_records == 0,
            "distill.n_records",
            f"a positive divisor of steps = {self.steps}",
            self.n_records,
        )
        check_choice(self.loss, LOSSES, "distill.loss")

    @property
    def record_steps(self) -> np.ndarray:
        """Updates done at each record: 0, steps / n_records, ..., steps."""
        return np.arange(self.n_records + 1) * (self.steps // self.n_records)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DistillKnobs:
    """The vmappable knobs of a distillation phase.

    unit_mask: (n_outputs,) 1 for the output units matched, 0 for the others.
    weight_decay: L2 added to the gradient before Adam (torch's `Adam(weight_decay=...)`).
    """

    unit_mask: jax.Array
    learning_rate: jax.Array | float = 3e-4
    weight_decay: jax.Array | float = 0.0


def unit_mask(n_outputs: int, units) -> np.ndarray:
    """The mask matching `units` (indices) of `n_outputs` output units."""
    mask = np.zeros(n_outputs, dtype=np.float32)
    mask[np.asarray(units, dtype=int)] = 1.0
    return mask


def distillation_loss(
    student_NxK: jax.Array, teacher_NxK: jax.Array, mask_K: jax.Array, loss: str
) -> jax.Array:
    """Mismatch of the student's logits with the teacher's on the masked units, batch mean."""
    keep = jnp.broadcast_to(mask_K > 0, student_NxK.shape)
    if loss == "mse":
        squared = jnp.where(keep, (student_NxK - teacher_NxK) ** 2, 0.0)
        return squared.sum(-1).mean() / jnp.maximum(mask_K.sum(), 1.0)
    log_q = jax.nn.log_softmax(jnp.where(keep, student_NxK, MASKED_LOGIT))
    log_p = jax.nn.log_softmax(jnp.where(keep, teacher_NxK, MASKED_LOGIT))
    return jnp.sum(jnp.where(keep, jnp.exp(log_p) * (log_p - log_q), 0.0), -1).mean()


def optimizer(knobs: DistillKnobs) -> optax.GradientTransformation:
    """Adam with coupled L2 (the anchor's torch `Adam`); at weight decay 0 it is plain Adam."""
    return optax.chain(
        optax.add_decayed_weights(knobs.weight_decay), optax.adam(knobs.learning_rate)
    )


def distill(
    apply: Apply,
    teacher: Params,
    student: Params,
    sample_inputs: Callable[[jax.Array, int], jax.Array],
    spec: DistillSpec,
    knobs: DistillKnobs,
    key: jax.Array,
    evaluate: Callable[[Params], dict] | None = None,
) -> tuple[Params, dict]:
    """Train `student` to match `teacher`'s masked logits on inputs from `sample_inputs`.

    apply: (params, inputs) -> logits (N, n_outputs), shared by teacher and student;
    sample_inputs: (key, n) -> inputs: the only data the student ever sees;
    evaluate: params -> dict of arrays, recorded at `spec.record_steps`.
    Returns (student after `spec.steps` updates, {"loss": (n_records,) mean loss per interval,
    "metrics": {name: (n_records + 1, ...)}, "finite": whether every loss was finite}).
    """

    def sample(step_key):
        inputs = sample_inputs(step_key, spec.batch_size)
        return inputs, jax.lax.stop_gradient(apply(teacher, inputs))

    def loss(params, batch):
        inputs, targets = batch
        return distillation_loss(apply(params, inputs), targets, knobs.unit_mask, spec.loss)

    trained = training.train(
        loss, sample, optimizer(knobs), student, key, spec.steps, spec.n_records, evaluate
    )
    records = {
        "loss": trained.losses.mean(-1),
        "metrics": trained.records,
        "finite": jnp.all(jnp.isfinite(trained.losses)),
    }
    return trained.params, records


def mix_init(shared: Params, independent: Params, weights_2: jax.Array) -> Params:
    """weights[0] * shared + weights[1] * independent, leaf by leaf: a student's initialisation
    between the teacher's own (1, 0) and an independent draw (0, 1)."""
    return jax.tree.map(lambda a, b: weights_2[0] * a + weights_2[1] * b, shared, independent)


def angle_weights(angle: float) -> np.ndarray:
    """(cos a, sin a), rounded to 1e-12 so that both ends are exact: a = 0 is the shared
    initialisation itself and a = pi/2 the independent one (cos(pi/2) is 6e-17 in floats)."""
    return np.round([np.cos(angle), np.sin(angle)], 12).astype(np.float32)


def displacement_overlap(student_start, student_end, teacher_start, teacher_end) -> dict:
    """How much of the student's weight-space move points along the teacher's.

    cosine: cos(d_S, d_T); projection: <d_S, d_T> / |d_T|^2, the share of the teacher's
    displacement the student covered (1: all of it), with d = end - start for each.
    """
    moved = tree_vector(student_end) - tree_vector(student_start)
    teacher = tree_vector(teacher_end) - tree_vector(teacher_start)
    return {
        "cosine": cosine(moved, teacher),
        "projection": jnp.vdot(moved, teacher) / jnp.maximum(jnp.vdot(teacher, teacher), EPS),
        "distance": jnp.linalg.norm(moved),
    }


__all__ = [
    "LOSSES",
    "DistillKnobs",
    "DistillSpec",
    "angle_weights",
    "displacement_overlap",
    "distill",
    "distillation_loss",
    "mix_init",
    "optimizer",
    "unit_mask",
]
