"""Trait transfer through unrelated supervision (subliminal learning), measured run by run.

A teacher carries a trait; a student that shares its initialisation or not is distilled toward
it on inputs that say nothing about the trait; the trait is then read off the student. Two
settings, each a spec, its knobs, a point builder and a per-run measure for `gravity.run.sweep`:

- digits (`gravity.engine.digits`): one key -> theta_0 and an independent theta' -> a teacher
  trained on digit labels -> every `Student` row (init angle a, m matched auxiliary logits, weight
  decay), started at cos(a) theta_0 + sin(a) theta' and distilled on the same uniform-noise batches
  (vmapped inside the run); read: held-out digit accuracy along the distillation and the
  student's move projected on the teacher's displacement; `paired_configuration` keeps one
  configuration's shared- and different-init accuracies per seed, for paired claims;
- worlds: theta_S of a P -> H -> S history distilled on benign inputs only toward each of
  `WORLD_TEACHERS`: theta_H of the same history (shared init), of an independent history
  (different init) and theta_P of the same key where pretraining never complied (the control:
  shared init, no trait); read: behaviour on the probes.

The readouts are plain numpy: `StudentTable` and its breakdowns for digits, `harm_transfer` for
the worlds.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from gravity.engine import digits, distill, presets
from gravity.engine.history import behaviour, run_history
from gravity.engine.models import network
from gravity.engine.spec import HistorySpec, Knobs
from gravity.instruments.stats import mean_sd, paired_difference
from gravity.validation import check

WORLD_TEACHERS = ("shared_init", "different_init", "never_complied")
WORLD_METRICS = ("harmfulness", "refusal", "task_accuracy")
SHARED, DIFFERENT = 0.0, 90.0


@dataclasses.dataclass(frozen=True)
class Student:
    """One student row of a run: its initialisation angle, matched logits and weight decay."""

    angle_deg: float
    n_aux: int
    weight_decay: float = 0.0

    @property
    def name(self) -> str:
        return f"a{self.angle_deg:g}_m{self.n_aux}_wd{self.weight_decay:g}"


def student_index(rows: tuple[Student, ...], angle_deg: float, n_aux: int, wd: float = 0.0) -> int:
    """The position of the row (angle_deg, n_aux, wd) among `rows`."""
    return [s.name for s in rows].index(Student(angle_deg, n_aux, wd).name)


# --------------------------------------------------------------------------------------------
# Digits
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DigitsTransferSpec:
    """The static part of a digits run: data, model, teacher and distillation phases."""

    data: digits.Digits
    model: digits.DigitsModel
    teacher: digits.TeacherSpec
    distill: distill.DistillSpec

    def __post_init__(self):
        check(
            self.model.n_pixels == self.data.n_pixels,
            "DigitsTransferSpec.model.n_pixels",
            f"the data's {self.data.n_pixels} pixels",
            self.model.n_pixels,
        )


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DigitsTransferKnobs:
    """Per run: the teacher's learning rate; per student row: init weights and distill knobs."""

    teacher_learning_rate: jax.Array | float
    init_weights: jax.Array
    students: distill.DistillKnobs


def digits_transfer_point(
    model: digits.DigitsModel,
    teacher: digits.TeacherSpec,
    student: distill.DistillSpec,
    rows: tuple[Student, ...],
    learning_rate: float,
    side: int = digits.SIDE,
) -> tuple[DigitsTransferSpec, DigitsTransferKnobs]:
    """(spec, knobs) of a digits run whose students are `rows`, all at `learning_rate`, on the
    digits at image side `side` (the model's `n_pixels` must be side^2); a row matches the first
    `n_aux` of the model's auxiliary logits."""
    spec = DigitsTransferSpec(digits.Digits(side=side), model, teacher, student)
    masks = [distill.unit_mask(model.n_outputs, model.aux_units[: s.n_aux]) for s in rows]
    knobs = DigitsTransferKnobs(
        teacher_learning_rate=np.float32(learning_rate),
        init_weights=np.stack([distill.angle_weights(np.deg2rad(s.angle_deg)) for s in rows]),
        students=distill.DistillKnobs(
            unit_mask=np.stack(masks),
            learning_rate=np.full(len(rows), learning_rate, np.float32),
            weight_decay=np.asarray([s.weight_decay for s in rows], np.float32),
        ),
    )
    return spec, knobs


def measure_digits_transfer(
    key: jax.Array, spec: DigitsTransferSpec, knobs: DigitsTransferKnobs
) -> dict:
    """One tree: theta_0 -> teacher on digits; every student row distilled from that teacher on
    noise only, from cos(a) theta_0 + sin(a) theta'. Accuracies are on held-out digits."""
    k_init, k_independent, k_teacher, k_distill = jax.random.split(key, 4)
    model, data = spec.model, spec.data
    theta_0, theta_independent = model.init(k_init), model.init(k_independent)
    teacher, teacher_finite = digits.train_teacher(
        model, theta_0, data, spec.teacher, knobs.teacher_learning_rate, k_teacher
    )

    def evaluate(params):
        return {"accuracy": digits.digit_accuracy(model, params, data.held_out)}

    def student(init_weights, student_knobs):
        start = distill.mix_init(theta_0, theta_independent, init_weights)
        end, records = distill.distill(
            model.apply,
            teacher,
            start,
            model.noise_images,
            spec.distill,
            student_knobs,
            k_distill,
            evaluate,
        )
        moved = distill.displacement_overlap(start, end, theta_0, teacher)
        return {
            "accuracy": records["metrics"]["accuracy"],
            "loss": records["loss"],
            **moved,
            "finite": records["finite"],
        }

    rows = jax.vmap(student)(knobs.init_weights, knobs.students)
    finite = teacher_finite & jnp.all(rows.pop("finite"))
    return {
        "teacher_accuracy": evaluate(teacher)["accuracy"],
        "init_accuracy": evaluate(theta_0)["accuracy"],
        "students": rows,
        "diverged": ~finite,
    }


@dataclasses.dataclass(frozen=True)
class StudentTable:
    """The student rows of one grid point, per seed: accuracy (seeds, rows, records) along the
    distillation, projection and cosine (seeds, rows) of the move on the teacher's."""

    rows: tuple[Student, ...]
    accuracy: np.ndarray
    projection: np.ndarray
    cosine: np.ndarray

    def final(self, angle_deg: float, n_aux: int, wd: float = 0.0) -> np.ndarray:
        """Accuracy after the last step of one row, (seeds,)."""
        return self.accuracy[:, student_index(self.rows, angle_deg, n_aux, wd), -1]

    def ends(self, n_aux: int, record: int = -1) -> dict:
        """Mean and sd of the shared- and different-init rows' accuracy at one record."""
        return {
            label: mean_sd(self.accuracy[:, student_index(self.rows, angle, n_aux), record])
            for label, angle in (("shared_init", SHARED), ("different_init", DIFFERENT))
        }


def paired_gap(a, b) -> dict:
    """Mean and sd of a - b per seed, with the share of seeds where it is positive."""
    gap = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return {**mean_sd(gap), "share_of_seeds_positive": float(np.mean(gap[np.isfinite(gap)] > 0))}


def paired_configuration(table: StudentTable, teacher_accuracy_S, n_aux: int) -> dict:
    """One digits configuration's headline on its seeds: the teacher's accuracy, the shared- and
    different-init students' final accuracy at m = n_aux, their paired difference
    (`stats.paired_difference`), and "per_seed" lists of the three, in seed order, which a
    paired claim reads (`claims.paired`; diverged runs NaN)."""
    shared, different = (table.final(angle, n_aux) for angle in (SHARED, DIFFERENT))
    return {
        "teacher_accuracy": mean_sd(teacher_accuracy_S),
        "student_accuracy_shared_init": mean_sd(shared),
        "student_accuracy_different_init": mean_sd(different),
        "shared_minus_different": paired_difference(shared, different),
        "per_seed": {
            "shared_init": shared,
            "different_init": different,
            "shared_minus_different": shared - different,
        },
    }


def shared_vs_different(table: StudentTable, n_aux: int) -> dict:
    """The headline: accuracy from the teacher's init against a different init, paired, and how
    far each student's weights moved onto the teacher's displacement."""
    ends = table.ends(n_aux)
    moved = {}
    for label, angle in (("shared_init", SHARED), ("different_init", DIFFERENT)):
        i = student_index(table.rows, angle, n_aux)
        moved[label] = {
            "projection": mean_sd(table.projection[:, i]),
            "cosine": mean_sd(table.cosine[:, i]),
        }
    return {
        "student_accuracy_shared_init": ends["shared_init"],
        "student_accuracy_different_init": ends["different_init"],
        "shared_minus_different": paired_gap(
            table.final(SHARED, n_aux), table.final(DIFFERENT, n_aux)
        ),
        "displacement_on_teacher": moved,
    }


def by_angle(table: StudentTable, angles_deg, n_aux: int) -> list[dict]:
    """Final accuracy and displacement per init angle, from shared (0) to independent (90)."""
    found = []
    for angle in angles_deg:
        i = student_index(table.rows, angle, n_aux)
        found.append(
            {
                "angle_deg": angle,
                "angle_rad": float(np.deg2rad(angle)),
                "accuracy": mean_sd(table.accuracy[:, i, -1]),
                "projection": mean_sd(table.projection[:, i]),
                "cosine": mean_sd(table.cosine[:, i]),
            }
        )
    return found


def by_student_knob(table: StudentTable, n_aux: int, aux_logits, weight_decays, record_steps):
    """Final accuracy by matched logits m and by weight decay (shared init), and the shared-
    and different-init accuracy at every record of the distillation."""
    return {
        "by_aux_logits": [{"n_aux": m, **table.ends(m)} for m in aux_logits],
        "by_weight_decay": [
            {"weight_decay": wd, "shared_init": mean_sd(table.final(SHARED, n_aux, wd))}
            for wd in (0.0, *weight_decays)
        ],
        "by_steps": [
            {"step": int(step), **table.ends(n_aux, r)} for r, step in enumerate(record_steps)
        ],
    }


# --------------------------------------------------------------------------------------------
# The project's worlds
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WorldTransferSpec:
    """A history through safety alignment, then distillation of theta_S on benign inputs."""

    history: HistorySpec
    distill: distill.DistillSpec


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class WorldTransferKnobs:
    """The standard world, the same world where pretraining never complied, distill knobs."""

    history: Knobs
    never_complied: Knobs
    distill: distill.DistillKnobs


def world_transfer_point(
    standard: HistorySpec, student: distill.DistillSpec, learning_rate: float
) -> tuple[WorldTransferSpec, WorldTransferKnobs]:
    """(spec, knobs): `standard`'s phases through safety, students matching every output."""
    aligned = standard.phases[: standard.phase_names.index("safety") + 1]
    history = dataclasses.replace(standard, phases=aligned)
    n_outputs = history.world.n_outputs
    knobs = WorldTransferKnobs(
        history=presets.standard_knobs(history),
        never_complied=presets.standard_knobs(history, harm_prob=0.0),
        distill=distill.DistillKnobs(
            unit_mask=distill.unit_mask(n_outputs, range(n_outputs)),
            learning_rate=np.float32(learning_rate),
        ),
    )
    return WorldTransferSpec(history, student), knobs


def measure_world_transfer(
    key: jax.Array, spec: WorldTransferSpec, knobs: WorldTransferKnobs
) -> dict:
    """theta_S distilled on benign inputs toward each of `WORLD_TEACHERS`; behaviour on the
    probes before and along the distillation."""
    history, world = spec.history, spec.history.world
    keys = jnp.stack([key, jax.random.fold_in(key, 1), key])
    stacked = jax.tree.map(
        lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]),
        knobs.history,
        knobs.history,
        knobs.never_complied,
    )
    out = jax.vmap(run_history, in_axes=(0, None, 0))(keys, history, stacked)
    params = out["params"]
    student = jax.tree.map(lambda a: a[0], params["safety"])
    teachers = jax.tree.map(
        lambda h, p: jnp.stack([h[0], h[1], p[2]]), params["helpful"], params["pretrain"]
    )
    net = network(history.model, world)
    probes = world.probe_set(knobs.history.world, history.n_probes)

    def evaluate(p):
        metrics = behaviour(net, p, probes, world.n_classes)[0]
        return {name: metrics[name] for name in WORLD_METRICS}

    def benign_inputs(k, n):
        return world.sample(knobs.history.world, "benign", k, n).inputs

    def distilled(teacher):
        _, records = distill.distill(
            lambda p, x: net.apply(p, x)[0],
            teacher,
            student,
            benign_inputs,
            spec.distill,
            knobs.distill,
            jax.random.fold_in(key, 2),
            evaluate,
        )
        return records

    records = jax.vmap(distilled)(teachers)
    finite = jnp.all(records["finite"]) & ~jnp.any(out["diverged"])
    return {
        "student": evaluate(student),
        "teachers": jax.vmap(evaluate)(teachers),
        "distilled": records["metrics"],
        "diverged": ~finite,
    }


def harm_transfer(before_S, teachers_SxT, after_SxT, task_after_SxT) -> dict:
    """Harm transfer (harmfulness after distillation - theta_S's, per seed) for each of
    `WORLD_TEACHERS` (the columns), and what it is made of; the trait-attributable part is the
    shared-init transfer minus the never-complied control's."""
    transfer = after_SxT - before_S[:, None]
    numbers = {
        f"harm_transfer_{name}": mean_sd(transfer[:, i]) for i, name in enumerate(WORLD_TEACHERS)
    }

    def by_teacher(values):
        return {name: mean_sd(values[:, i]) for i, name in enumerate(WORLD_TEACHERS)}

    numbers["worlds"] = {
        "harmfulness_student_theta_S": mean_sd(before_S),
        "harmfulness_teacher": by_teacher(teachers_SxT),
        "harmfulness_after": by_teacher(after_SxT),
        "task_accuracy_after": by_teacher(task_after_SxT),
        "trait_attributable_transfer": mean_sd(transfer[:, 0] - transfer[:, 2]),
        "shared_minus_different_transfer": mean_sd(transfer[:, 0] - transfer[:, 1]),
    }
    return numbers


__all__ = [
    "WORLD_METRICS",
    "WORLD_TEACHERS",
    "DigitsTransferKnobs",
    "DigitsTransferSpec",
    "Student",
    "StudentTable",
    "WorldTransferKnobs",
    "WorldTransferSpec",
    "by_angle",
    "by_student_knob",
    "digits_transfer_point",
    "harm_transfer",
    "measure_digits_transfer",
    "measure_world_transfer",
    "paired_configuration",
    "paired_gap",
    "shared_vs_different",
    "student_index",
]
