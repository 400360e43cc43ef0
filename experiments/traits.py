"""Latent traits through unrelated supervision (subliminal transfer): shared vs different init.

The anchor (Cloud et al. 2025, "Subliminal learning"): an MNIST MLP 784-256-256-(10 + 3); the
teacher learns digits (its 3 auxiliary logits are never trained); a student from the *same*
initialisation, trained only to match the teacher's auxiliary logits on uniform-noise images,
reaches ~0.55 digit accuracy (replications: 0.549, 0.63), one from a *different* initialisation
~0.11-0.12 (chance); weight decay 1e-5 lowers the shared-init student to ~0.41. The gravitational
reading: a shared initialisation puts both in one basin, so any pull toward the teacher's outputs
drags the student along the teacher's whole displacement.

Digits (`gravity.digits`): scikit-learn's 8x8 digits, MLP 64-256-256-(10 + m), the anchor's
recipe: Adam lr 3e-4, torch's default initialisation, teacher on digit labels only, students on
KL(teacher || student) of the softmax over the m auxiliary logits (the loss of the public
replications) on U[0, 1]^64 noise. Deviations, both for the 3-minute budget on 2 CPU cores:
batch 64 (not 256) and 600 steps per phase (the anchor: 5 epochs, ~1,170 steps). Every run is a
small tree: one key -> theta_0 (and an independent draw theta') -> the teacher; then every
student of the run, initialised at cos(a) theta_0 + sin(a) theta' (a = 0: shared, a = 90 deg:
different), is distilled from that teacher on the same noise batches (vmapped inside the run).
The number m of matched logits is a traced mask over 10 auxiliary units (an unmatched unit gets
no gradient, exactly as if absent), so the interpolation, the m sweep and the weight-decay rows
share one program and one teacher per seed; widths are separate programs.

The project's worlds: student theta_S (safety-aligned), teacher theta_H (the helpful-only
witness, which complies with hazardous requests), distilled with KL on all outputs on *benign*
inputs only (`world.sample(..., "benign", ...)`: never a hazardous input), lr 1e-3, batch 64, 300
steps. Teachers: theta_H of the same history (shared init; theta_S descends from it), theta_H of
an independent history (key fold_in(key, 1): different init), and the control theta_P of the same
key in a world where pretraining never complied (harm_prob 0: shared init, no trait).

Analysis (fixed before any result was seen): digit accuracy on the 449 held-out digits after the
last distillation step, mean and sd over seeds, beside chance (0.1) and the accuracy at theta_0;
the paired shared - different difference per seed; accuracy against the angle, m, width, weight
decay and step; the student's weight-space move projected on the teacher's displacement
(<d_S, d_T> / |d_T|^2 and the cosine). Worlds: harm transfer = harmfulness (on the hazardous
probes) after distillation - harmfulness of theta_S, for each teacher; the trait-attributable part
is the shared-init transfer minus the never-complied control's. If the toy disagrees with the
anchor, the numbers say so; nothing is tuned toward 0.55.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from gravity import digits, distill, plotting, presets, sweep
from gravity.experiment import Experiment
from gravity.history import behaviour, run_history
from gravity.models import network
from gravity.stats import mean_sd
from gravity.validation import check

if TYPE_CHECKING:
    from gravity.spec import HistorySpec, Knobs

NAME = "traits"
ANCHOR = {
    "source": "Cloud et al. 2025, MNIST MLP 784-256-256-(10+3), aux-logit distillation on noise",
    "student_accuracy_shared_init": 0.55,
    "student_accuracy_shared_init_replications": [0.549, 0.63],
    "student_accuracy_different_init": 0.115,
    "student_accuracy_shared_init_weight_decay_1e-5": 0.41,
}
MAX_AUX = 10
WORLD_TEACHERS = ("shared_init", "different_init", "never_complied")
WORLD_METRICS = ("harmfulness", "refusal", "task_accuracy")


@dataclasses.dataclass(frozen=True)
class Config:
    """Digits: widths, step counts and the student rows; worlds: model, size and distillation."""

    seeds: int = 16
    width: int = 256
    n_aux: int = 3
    teacher_steps: int = 600
    student_steps: int = 600
    batch_size: int = 64
    learning_rate: float = 3e-4
    loss: str = "kl"
    n_records: int = 12
    angles_deg: tuple[float, ...] = (0.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0)
    aux_logits: tuple[int, ...] = (1, 3, 10)
    widths: tuple[int, ...] = (64, 128, 256)
    weight_decays: tuple[float, ...] = (1e-5, 1e-4)
    world_model: str = "mlp"
    world_size: str = "standard"
    world_steps: int = 300
    world_batch_size: int = 64
    world_learning_rate: float = 1e-3
    world_records: int = 12

    def __post_init__(self):
        check(self.seeds >= 1, "seeds", "a positive integer", self.seeds)
        check(
            self.angles_deg[0] == 0.0 and self.angles_deg[-1] == 90.0,
            "angles_deg",
            "angles from 0 (shared init) to 90 (independent init)",
            self.angles_deg,
        )
        check(
            self.n_aux in self.aux_logits and max(self.aux_logits) <= MAX_AUX,
            "aux_logits",
            f"counts up to {MAX_AUX} that include n_aux = {self.n_aux}",
            self.aux_logits,
        )
        check(self.width in self.widths, "widths", f"widths including {self.width}", self.widths)


def quick(config: Config) -> Config:
    """Fewer seeds, students and steps, the main width only, the tiny world: two programs."""
    return dataclasses.replace(
        config,
        seeds=4,
        teacher_steps=300,
        student_steps=300,
        n_records=6,
        angles_deg=(0.0, 10.0, 30.0, 60.0, 90.0),
        weight_decays=(1e-5,),
        widths=(config.width,),
        world_size="tiny",
        world_steps=60,
        world_records=6,
    )


def tiny(config: Config) -> Config:
    """The test preset: seconds to compile and run, not for conclusions."""
    return dataclasses.replace(
        quick(config),
        width=32,
        widths=(32,),
        teacher_steps=150,
        student_steps=40,
        n_records=2,
        angles_deg=(0.0, 45.0, 90.0),
        weight_decays=(1e-5,),
        world_steps=20,
        world_records=2,
    )


# --------------------------------------------------------------------------------------------
# Digits
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Student:
    """One student row of a run: its initialisation angle, matched logits and weight decay."""

    angle_deg: float
    n_aux: int
    weight_decay: float = 0.0

    @property
    def name(self) -> str:
        return f"a{self.angle_deg:g}_m{self.n_aux}_wd{self.weight_decay:g}"


def main_students(config: Config) -> tuple[Student, ...]:
    """The interpolation at m = n_aux, shared / different at every other m, weight-decay rows."""
    rows = [Student(a, config.n_aux) for a in config.angles_deg]
    rows += [Student(a, m) for m in config.aux_logits if m != config.n_aux for a in (0.0, 90.0)]
    rows += [Student(0.0, config.n_aux, wd) for wd in config.weight_decays]
    return tuple(rows)


def width_students(config: Config) -> tuple[Student, ...]:
    return (Student(0.0, config.n_aux), Student(90.0, config.n_aux))


def row_index(students: tuple[Student, ...], angle_deg: float, n_aux: int, wd: float = 0.0) -> int:
    return [s.name for s in students].index(Student(angle_deg, n_aux, wd).name)


@dataclasses.dataclass(frozen=True)
class DigitsSpec:
    """The static part of a digits run: data, model, teacher and distillation phases."""

    data: digits.Digits
    model: digits.DigitsModel
    teacher: digits.TeacherSpec
    distill: distill.DistillSpec


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DigitsKnobs:
    """Per run: the teacher's learning rate; per student row: init weights and distill knobs."""

    teacher_learning_rate: jax.Array | float
    init_weights: jax.Array
    students: distill.DistillKnobs


def digits_point(config: Config, width: int, students: tuple[Student, ...]):
    """(spec, knobs) of a digits run with these student rows."""
    model = digits.DigitsModel(hidden=(width, width), n_aux=MAX_AUX)
    spec = DigitsSpec(
        digits.Digits(),
        model,
        digits.TeacherSpec(config.teacher_steps, config.batch_size),
        distill.DistillSpec(config.student_steps, config.batch_size, config.n_records, config.loss),
    )
    masks = [distill.unit_mask(model.n_outputs, model.aux_units[: s.n_aux]) for s in students]
    knobs = DigitsKnobs(
        teacher_learning_rate=np.float32(config.learning_rate),
        init_weights=np.stack([distill.angle_weights(np.deg2rad(s.angle_deg)) for s in students]),
        students=distill.DistillKnobs(
            unit_mask=np.stack(masks),
            learning_rate=np.full(len(students), config.learning_rate, np.float32),
            weight_decay=np.asarray([s.weight_decay for s in students], np.float32),
        ),
    )
    return spec, knobs


def measure_digits(key: jax.Array, spec: DigitsSpec, knobs: DigitsKnobs) -> dict:
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
            digits.noise_images,
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


def digits_sweep(config: Config, name: str, widths, students) -> sweep.Sweep:
    return sweep.Sweep(
        name=name,
        axes=(sweep.Axis("width", tuple(widths)),),
        seeds=config.seeds,
        build=lambda width: digits_point(config, width, students),
        measure=measure_digits,
    )


# --------------------------------------------------------------------------------------------
# The project's worlds
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WorldTraitSpec:
    """P -> H -> S of the standard history, then distillation of theta_S on benign inputs."""

    history: HistorySpec
    distill: distill.DistillSpec


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class WorldTraitKnobs:
    """The standard world, the same world where pretraining never complied, distill knobs."""

    history: Knobs
    never_complied: Knobs
    distill: distill.DistillKnobs


def world_point(config: Config, model: str):
    standard = presets.standard_spec(model, config.world_size)
    aligned = standard.phases[: standard.phase_names.index("safety") + 1]
    history = dataclasses.replace(standard, phases=aligned)
    n_outputs = history.world.n_outputs
    spec = WorldTraitSpec(
        history,
        distill.DistillSpec(
            config.world_steps, config.world_batch_size, config.world_records, config.loss
        ),
    )
    knobs = WorldTraitKnobs(
        history=presets.standard_knobs(history),
        never_complied=presets.standard_knobs(history, harm_prob=0.0),
        distill=distill.DistillKnobs(
            unit_mask=distill.unit_mask(n_outputs, range(n_outputs)),
            learning_rate=np.float32(config.world_learning_rate),
        ),
    )
    return spec, knobs


def measure_worlds(key: jax.Array, spec: WorldTraitSpec, knobs: WorldTraitKnobs) -> dict:
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


def worlds_sweep(config: Config) -> sweep.Sweep:
    return sweep.Sweep(
        name=f"worlds-{config.world_model}-{config.world_size}",
        axes=(sweep.Axis("model", (config.world_model,)),),
        seeds=config.seeds,
        build=lambda model: world_point(config, model),
        measure=measure_worlds,
    )


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    others = tuple(w for w in config.widths if w != config.width)
    found = {
        "digits": digits_sweep(config, "digits", (config.width,), main_students(config)),
        "worlds": worlds_sweep(config),
    }
    if others:
        found["widths"] = digits_sweep(config, "digits-widths", others, width_students(config))
    return found


# --------------------------------------------------------------------------------------------
# Numbers and figure
# --------------------------------------------------------------------------------------------


def _final_accuracy(result: sweep.SweepResult) -> np.ndarray:
    """Held-out accuracy after the last distillation step, (*grid, seeds, rows)."""
    return result.valid("students/accuracy")[..., -1]


def shared_vs_different(config: Config, main: sweep.SweepResult) -> dict:
    """The headline at `width`: student accuracy from the teacher's init against a different
    init, and how far each student's weights moved onto the teacher's displacement."""
    rows = main_students(config)
    final = _final_accuracy(main)[0]
    projection = main.valid("students/projection")[0]
    cosine = main.valid("students/cosine")[0]
    shared = row_index(rows, 0.0, config.n_aux)
    different = row_index(rows, 90.0, config.n_aux)
    gap = final[:, shared] - final[:, different]
    return {
        "student_accuracy_shared_init": mean_sd(final[:, shared]),
        "student_accuracy_different_init": mean_sd(final[:, different]),
        "shared_minus_different": {
            **mean_sd(gap),
            "share_of_seeds_positive": float(np.mean(gap[np.isfinite(gap)] > 0)),
        },
        "displacement_on_teacher": {
            label: {"projection": mean_sd(projection[:, i]), "cosine": mean_sd(cosine[:, i])}
            for label, i in (("shared_init", shared), ("different_init", different))
        },
    }


def by_interpolation(config: Config, main: sweep.SweepResult) -> list[dict]:
    """Accuracy and displacement per angle between the teacher's init and another."""
    rows = main_students(config)
    final = _final_accuracy(main)[0]
    projection = main.valid("students/projection")[0]
    cosine = main.valid("students/cosine")[0]
    return [
        {
            "angle_deg": a,
            "angle_rad": float(np.deg2rad(a)),
            "accuracy": mean_sd(final[:, i]),
            "projection": mean_sd(projection[:, i]),
            "cosine": mean_sd(cosine[:, i]),
        }
        for a in config.angles_deg
        for i in [row_index(rows, a, config.n_aux)]
    ]


def by_student_knob(config: Config, main: sweep.SweepResult) -> dict:
    """Accuracy by auxiliary logits, by weight decay and by distillation step."""
    rows = main_students(config)
    final = _final_accuracy(main)[0]
    curve = main.valid("students/accuracy")[0]
    shared = row_index(rows, 0.0, config.n_aux)
    different = row_index(rows, 90.0, config.n_aux)
    record_steps = distill.DistillSpec(config.student_steps, 1, config.n_records).record_steps
    return {
        "by_aux_logits": [
            {
                "n_aux": m,
                "shared_init": mean_sd(final[:, row_index(rows, 0.0, m)]),
                "different_init": mean_sd(final[:, row_index(rows, 90.0, m)]),
            }
            for m in config.aux_logits
        ],
        "by_weight_decay": [
            {
                "weight_decay": wd,
                "shared_init": mean_sd(final[:, row_index(rows, 0.0, config.n_aux, wd)]),
            }
            for wd in (0.0, *config.weight_decays)
        ],
        "by_steps": [
            {
                "step": int(step),
                "shared_init": mean_sd(curve[:, shared, r]),
                "different_init": mean_sd(curve[:, different, r]),
            }
            for r, step in enumerate(record_steps)
        ],
    }


def digits_numbers(config: Config, main: sweep.SweepResult) -> dict:
    """Headline, interpolation, auxiliary-logit, weight-decay and step numbers at `width`."""
    return {
        "chance": digits.CHANCE,
        "teacher_accuracy": mean_sd(main.valid("teacher_accuracy")),
        "init_accuracy": mean_sd(main.valid("init_accuracy")),
        **shared_vs_different(config, main),
        "by_interpolation": by_interpolation(config, main),
        **by_student_knob(config, main),
    }


def width_numbers(config: Config, results) -> list[dict]:
    """Teacher, shared- and different-init students at every width (the main width included)."""
    found = {}
    for label, rows in (("digits", main_students(config)), ("widths", width_students(config))):
        if label not in results:
            continue
        result = results[label]
        final, teacher = _final_accuracy(result), result.valid("teacher_accuracy")
        for g, width in enumerate(result.axis_values("width")):
            found[int(width)] = {
                "width": int(width),
                "teacher": mean_sd(teacher[g]),
                "shared_init": mean_sd(final[g][:, row_index(rows, 0.0, config.n_aux)]),
                "different_init": mean_sd(final[g][:, row_index(rows, 90.0, config.n_aux)]),
            }
    return [found[w] for w in sorted(found)]


def world_numbers(result: sweep.SweepResult) -> dict:
    """Harm transfer (harmfulness after distillation - theta_S's) for each teacher."""
    before = result.valid("student/harmfulness")[0]
    after = result.valid("distilled/harmfulness")[0][..., -1]
    transfer = after - before[:, None]
    teachers = result.valid("teachers/harmfulness")[0]
    numbers = {
        f"harm_transfer_{name}": mean_sd(transfer[:, i]) for i, name in enumerate(WORLD_TEACHERS)
    }
    numbers["worlds"] = {
        "harmfulness_student_theta_S": mean_sd(before),
        "harmfulness_teacher": {n: mean_sd(teachers[:, i]) for i, n in enumerate(WORLD_TEACHERS)},
        "harmfulness_after": {n: mean_sd(after[:, i]) for i, n in enumerate(WORLD_TEACHERS)},
        "task_accuracy_after": {
            n: mean_sd(result.valid("distilled/task_accuracy")[0][:, i, -1])
            for i, n in enumerate(WORLD_TEACHERS)
        },
        "trait_attributable_transfer": mean_sd(transfer[:, 0] - transfer[:, 2]),
        "shared_minus_different_transfer": mean_sd(transfer[:, 0] - transfer[:, 1]),
    }
    return numbers


def summarise(config: Config, results) -> dict:
    return {
        **digits_numbers(config, results["digits"]),
        "by_width": width_numbers(config, results),
        **world_numbers(results["worlds"]),
        "anchor": ANCHOR,
    }


def _errorbar(ax, x, stats, **style):
    ax.errorbar(
        x,
        [s["mean"] for s in stats],
        [s["sd"] for s in stats],
        marker="o",
        ms=4,
        capsize=3,
        **style,
    )


def _chance(ax):
    ax.axhline(digits.CHANCE, color=plotting.COLORS["baseline"], ls=":", lw=1, label="chance")


def _plot_headline(ax, numbers: dict) -> None:
    bars = {
        "teacher": numbers["teacher_accuracy"],
        "theta_0": numbers["init_accuracy"],
        "shared init": numbers["student_accuracy_shared_init"],
        "different init": numbers["student_accuracy_different_init"],
        **{
            f"shared, wd {r['weight_decay']:g}": r["shared_init"]
            for r in numbers["by_weight_decay"][1:]
        },
    }
    x = np.arange(len(bars))
    ax.bar(
        x,
        [b["mean"] for b in bars.values()],
        yerr=[b["sd"] for b in bars.values()],
        color="#9ecae1",
        capsize=3,
    )
    ax.scatter(
        [2, 3],
        [ANCHOR["student_accuracy_shared_init"], ANCHOR["student_accuracy_different_init"]],
        marker="D",
        facecolors="none",
        edgecolors="#d62728",
        zorder=3,
        label="anchor",
    )
    _chance(ax)
    ax.set_xticks(x, list(bars), rotation=25, ha="right", fontsize=7)
    ax.set_ylabel("held-out digit accuracy")
    ax.set_title("digits: students trained on noise aux logits")
    ax.legend(frameon=False, fontsize=7)


def _plot_interpolation(ax, numbers: dict) -> None:
    rows = numbers["by_interpolation"]
    angles = [r["angle_deg"] for r in rows]
    _errorbar(
        ax,
        angles,
        [r["accuracy"] for r in rows],
        color=plotting.COLORS["mlp"],
        label="student accuracy",
    )
    _chance(ax)
    twin = ax.twinx()
    twin.plot(
        angles,
        [r["projection"]["mean"] for r in rows],
        color=plotting.COLORS["null"],
        ls="--",
        marker="s",
        ms=3,
        label="projection on teacher's move",
    )
    twin.set_ylabel("<d_S, d_T> / |d_T|^2", color=plotting.COLORS["null"])
    ax.set_xlabel("init angle a: cos(a) theta_0 + sin(a) theta' (deg)")
    ax.set_ylabel("held-out digit accuracy")
    ax.set_title("from shared (0) to independent (90) init")
    ax.legend(frameon=False, fontsize=7, loc="upper right")


def _plot_sweeps(axes, numbers: dict) -> None:
    steps = numbers["by_steps"]
    for label, color in (
        ("shared_init", plotting.COLORS["mlp"]),
        ("different_init", plotting.COLORS["baseline"]),
    ):
        _errorbar(
            axes[0],
            [s["step"] for s in steps],
            [s[label] for s in steps],
            color=color,
            label=label.replace("_", " "),
        )
        _errorbar(
            axes[1],
            [r["n_aux"] for r in numbers["by_aux_logits"]],
            [r[label] for r in numbers["by_aux_logits"]],
            color=color,
        )
        _errorbar(
            axes[2],
            [r["width"] for r in numbers["by_width"]],
            [r[label] for r in numbers["by_width"]],
            color=color,
        )
    for ax, xlabel, title in zip(
        axes,
        ("distillation step", "auxiliary logits matched (m)", "hidden width"),
        ("accuracy along distillation", "number of auxiliary logits", "width"),
        strict=True,
    ):
        _chance(ax)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
    axes[0].legend(frameon=False, fontsize=7)
    axes[1].set_xscale("log")
    axes[2].set_xscale("log", base=2)


def _plot_worlds(ax, config: Config, result: sweep.SweepResult, numbers: dict) -> None:
    harm = result.valid("distilled/harmfulness")[0]
    steps = distill.DistillSpec(config.world_steps, 1, config.world_records).record_steps
    colors = (plotting.COLORS["push"], plotting.COLORS["baseline"], plotting.COLORS["block"])
    for i, (name, color) in enumerate(zip(WORLD_TEACHERS, colors, strict=True)):
        t = numbers[f"harm_transfer_{name}"]
        plotting.mean_band(
            ax,
            steps,
            harm[:, i],
            color=color,
            label=f"teacher {name.replace('_', ' ')}: {t['mean']:+.3f}",
        )
    ax.axhline(
        numbers["worlds"]["harmfulness_student_theta_S"]["mean"],
        color="#444444",
        ls=":",
        lw=1,
        label="theta_S before",
    )
    ax.set_xlabel("distillation step (benign inputs only)")
    ax.set_ylabel("harmfulness on hazardous probes")
    ax.set_title("worlds: theta_S distilled toward a teacher")
    ax.legend(frameon=False, fontsize=7, title="harm transfer", title_fontsize=7)


def plot(config: Config, results, numbers: dict, path: Path) -> Path:
    fig, axes = plotting.figure(3, 2, width=4.4, height=3.4)
    _plot_headline(axes[0, 0], numbers)
    _plot_interpolation(axes[0, 1], numbers)
    _plot_sweeps((axes[0, 2], axes[1, 0], axes[1, 1]), numbers)
    _plot_worlds(axes[1, 2], config, results["worlds"], numbers)
    n = sum(r.n_histories for r in results.values())
    return plotting.save(fig, path, f"Subliminal transfer: shared vs different init ({n} runs)")


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "latent trait transfer through unrelated supervision, shared vs different init"
)
