"""Latent traits through unrelated supervision (subliminal transfer): shared vs different init.

The anchor (Cloud et al. 2025, "Subliminal learning"): an MNIST MLP 784-256-256-(10 + 3); the
teacher learns digits (its 3 auxiliary logits are never trained); a student from the *same*
initialisation, trained only to match the teacher's auxiliary logits on uniform-noise images,
reaches ~0.55 digit accuracy (replications: 0.549, 0.63), one from a *different* initialisation
~0.11-0.12 (chance); weight decay 1e-5 lowers the shared-init student to ~0.41. The gravitational
reading: a shared initialisation puts both in one basin, so any pull toward the teacher's outputs
drags the student along the teacher's whole displacement.

Digits (`gravity.engine.digits`): scikit-learn's 8x8 digits, MLP 64-256-256-(10 + m), the anchor's
recipe: Adam lr 3e-4, torch's default initialisation, teacher on digit labels only, students on
KL(teacher || student) of the softmax over the m auxiliary logits (the loss of the public
replications) on U[0, 1]^64 noise. The main arm keeps the cut budget of the first runs, batch 64
(not 256) and 600 steps per phase (the anchor: 5 epochs, ~1,170 steps); beside it, the headline pair
(shared and different init at m = n_aux, width 256) runs at the anchor's budget, batch 256 and
1,170 steps per phase (teacher and student), twice: on the 8x8 digits and on the digits upsampled
once, bilinearly, to 28x28 (`digits.Digits(side=28)`: 784 pixels, MLP 784-256-256-(10 + m), noise
U[0, 1]^784), which tests the input-dimension hypothesis. Every run is a
small tree: one key -> theta_0 (and an independent draw theta') -> the teacher; then every
student of the run, initialised at cos(a) theta_0 + sin(a) theta' (a = 0: shared, a = 90 deg:
different), is distilled from that teacher on the same noise batches (vmapped inside the run).
The number m of matched logits is a traced mask over 10 auxiliary units (an unmatched unit gets
no gradient, exactly as if absent), so the interpolation, the m sweep and the weight-decay rows
share one program and one teacher per seed; widths and image sides are separate programs. Every
sweep's seed s runs from `jax.random.key(s)`, so a seed's teacher sees the same digit batches in
every configuration (upsampled in the 784-pixel one): the configurations pair by seed.

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
is the shared-init transfer minus the never-complied control's. Added in #22 (item 5e), before the
anchor-budget arms were first run: per configuration (`configurations`: cut budget 64 px, anchor
budget 64 px, anchor budget 784 px) the per-seed shared- and different-init accuracies and their
paired difference, and `input_dimension`, the 784-pixel paired gap minus the 64-pixel one, paired
by seed (the claims in experiments/claims/traits.toml). If the toy disagrees with the anchor, the
numbers say so; nothing is tuned toward 0.55.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gravity.engine import digits, distill, presets
from gravity.instruments import trait_transfer as transfer
from gravity.instruments.stats import mean_sd, paired_difference
from gravity.instruments.trait_transfer import WORLD_TEACHERS, Student
from gravity.run import plotting, sweep
from gravity.run.experiment import Experiment
from gravity.validation import check

NAME = "traits"
ANCHOR = {
    "source": "Cloud et al. 2025, MNIST MLP 784-256-256-(10+3), aux-logit distillation on noise",
    "student_accuracy_shared_init": 0.55,
    "student_accuracy_shared_init_replications": [0.549, 0.63],
    "student_accuracy_different_init": 0.115,
    "student_accuracy_shared_init_weight_decay_1e-5": 0.41,
}
MAX_AUX = 10


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
    anchor_batch_size: int = 256
    anchor_steps: int = 1170
    anchor_records: int = 10
    anchor_sides: tuple[int, ...] = (digits.SIDE, 28)
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
        check(
            self.anchor_sides[0] == digits.SIDE
            and list(self.anchor_sides) == sorted(self.anchor_sides),
            "anchor_sides",
            f"image sides in ascending order from the digits' own {digits.SIDE}",
            self.anchor_sides,
        )


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
        anchor_batch_size=128,
        anchor_steps=300,
        anchor_records=6,
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
        anchor_batch_size=32,
        anchor_steps=40,
        anchor_records=2,
        world_steps=20,
        world_records=2,
    )


# --------------------------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------------------------


def main_students(config: Config) -> tuple[Student, ...]:
    """The interpolation at m = n_aux, shared / different at every other m, weight-decay rows."""
    rows = [Student(a, config.n_aux) for a in config.angles_deg]
    rows += [Student(a, m) for m in config.aux_logits if m != config.n_aux for a in (0.0, 90.0)]
    rows += [Student(0.0, config.n_aux, wd) for wd in config.weight_decays]
    return tuple(rows)


def width_students(config: Config) -> tuple[Student, ...]:
    """The headline pair, shared and different init at m = n_aux: the students of the other
    widths and of the anchor-budget arms."""
    return (Student(0.0, config.n_aux), Student(90.0, config.n_aux))


def student_spec(config: Config) -> distill.DistillSpec:
    return distill.DistillSpec(
        config.student_steps, config.batch_size, config.n_records, config.loss
    )


def digits_point(config: Config, width: int, students: tuple[Student, ...]):
    """(spec, knobs) of a digits run at `width` with these student rows."""
    return transfer.digits_transfer_point(
        digits.DigitsModel(hidden=(width, width), n_aux=MAX_AUX),
        digits.TeacherSpec(config.teacher_steps, config.batch_size),
        student_spec(config),
        students,
        config.learning_rate,
    )


def digits_sweep(config: Config, name: str, widths, students) -> sweep.Sweep:
    return sweep.Sweep(
        name=name,
        axes=(sweep.Axis("width", tuple(widths)),),
        seeds=config.seeds,
        build=lambda width: digits_point(config, width, students),
        measure=transfer.measure_digits_transfer,
    )


def anchor_point(config: Config, side: int):
    """(spec, knobs) of the headline pair at the anchor's budget on side x side digits."""
    return transfer.digits_transfer_point(
        digits.DigitsModel(hidden=(config.width,) * 2, n_aux=MAX_AUX, n_pixels=side * side),
        digits.TeacherSpec(config.anchor_steps, config.anchor_batch_size),
        distill.DistillSpec(
            config.anchor_steps, config.anchor_batch_size, config.anchor_records, config.loss
        ),
        width_students(config),
        config.learning_rate,
        side,
    )


def anchor_sweep(config: Config) -> sweep.Sweep:
    return sweep.Sweep(
        name="digits-anchor-budget",
        axes=(sweep.Axis("side", tuple(config.anchor_sides)),),
        seeds=config.seeds,
        build=lambda side: anchor_point(config, side),
        measure=transfer.measure_digits_transfer,
    )


def world_point(config: Config, model: str):
    return transfer.world_transfer_point(
        presets.standard_spec(model, config.world_size),
        distill.DistillSpec(
            config.world_steps, config.world_batch_size, config.world_records, config.loss
        ),
        config.world_learning_rate,
    )


def worlds_sweep(config: Config) -> sweep.Sweep:
    return sweep.Sweep(
        name=f"worlds-{config.world_model}-{config.world_size}",
        axes=(sweep.Axis("model", (config.world_model,)),),
        seeds=config.seeds,
        build=lambda model: world_point(config, model),
        measure=transfer.measure_world_transfer,
    )


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    others = tuple(w for w in config.widths if w != config.width)
    found = {
        "digits": digits_sweep(config, "digits", (config.width,), main_students(config)),
        "anchor": anchor_sweep(config),
        "worlds": worlds_sweep(config),
    }
    if others:
        found["widths"] = digits_sweep(config, "digits-widths", others, width_students(config))
    return found


# --------------------------------------------------------------------------------------------
# Numbers and figure
# --------------------------------------------------------------------------------------------


def student_table(result: sweep.SweepResult, rows, point: int = 0) -> transfer.StudentTable:
    """The student rows' outputs at one grid point (diverged runs NaN)."""
    outputs = ("accuracy", "projection", "cosine")
    return transfer.StudentTable(rows, *(result.valid(f"students/{o}")[point] for o in outputs))


def by_width(config: Config, results) -> list[dict]:
    """Teacher, shared- and different-init students at every width (the main width included)."""
    found = {}
    for label, rows in (("digits", main_students(config)), ("widths", width_students(config))):
        if label not in results:
            continue
        result = results[label]
        for g, width in enumerate(result.axis_values("width")):
            teacher = mean_sd(result.valid("teacher_accuracy")[g])
            ends = student_table(result, rows, g).ends(config.n_aux)
            found[int(width)] = {"width": int(width), "teacher": teacher, **ends}
    return [found[w] for w in sorted(found)]


def configurations(config: Config, results) -> dict:
    """The headline pair per configuration, per seed and paired: the main arm's (cut budget,
    8x8 digits) and the anchor-budget arm's at every image side, named by budget and pixels."""
    main, anchor = results["digits"], results["anchor"]
    cut = (config.batch_size, config.student_steps)
    found = {
        "cut_budget_64px": _configuration(
            config, main, main_students(config), 0, digits.N_PIXELS, *cut
        )
    }
    budget = (config.anchor_batch_size, config.anchor_steps)
    for g, side in enumerate(anchor.axis_values("side")):
        pixels = int(side) ** 2
        found[f"anchor_budget_{pixels}px"] = _configuration(
            config, anchor, width_students(config), g, pixels, *budget
        )
    return found


def _configuration(config: Config, result, rows, point: int, pixels, batch_size, steps) -> dict:
    """One configuration: its input and budget, and its headline pair at grid point `point`."""
    table = student_table(result, rows, point)
    teacher = result.valid("teacher_accuracy")[point]
    return {
        "pixels": pixels,
        "batch_size": batch_size,
        "student_steps": steps,
        **transfer.paired_configuration(table, teacher, config.n_aux),
    }


def input_dimension(found: dict) -> dict:
    """The paired gap with the most noise pixels minus the 64-pixel one at the anchor's
    budget, paired by seed (both arms' seed s start from the same key)."""
    anchor = [v for k, v in found.items() if k.startswith("anchor_budget")]
    small, large = anchor[0], anchor[-1]
    gap = "shared_minus_different"
    return {
        "pixels": [small["pixels"], large["pixels"]],
        **paired_difference(large["per_seed"][gap], small["per_seed"][gap]),
    }


def summarise(config: Config, results) -> dict:
    main, worlds = results["digits"], results["worlds"]
    table = student_table(main, main_students(config))
    arms = configurations(config, results)
    return {
        "chance": digits.CHANCE,
        "teacher_accuracy": mean_sd(main.valid("teacher_accuracy")),
        "init_accuracy": mean_sd(main.valid("init_accuracy")),
        **transfer.shared_vs_different(table, config.n_aux),
        "by_interpolation": transfer.by_angle(table, config.angles_deg, config.n_aux),
        **transfer.by_student_knob(
            table,
            config.n_aux,
            config.aux_logits,
            config.weight_decays,
            student_spec(config).record_steps,
        ),
        "by_width": by_width(config, results),
        "configurations": arms,
        "input_dimension": input_dimension(arms),
        **transfer.harm_transfer(
            worlds.valid("student/harmfulness")[0],
            worlds.valid("teachers/harmfulness")[0],
            worlds.valid("distilled/harmfulness")[0][..., -1],
            worlds.valid("distilled/task_accuracy")[0][..., -1],
        ),
        "anchor": ANCHOR,
    }


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
    plotting.stats_bars(ax, bars)
    anchors = [ANCHOR["student_accuracy_shared_init"], ANCHOR["student_accuracy_different_init"]]
    style = {"marker": "D", "facecolors": "none", "edgecolors": "#d62728", "zorder": 3}
    ax.scatter([2, 3], anchors, label="anchor", **style)
    plotting.reference_line(ax, digits.CHANCE, "chance")
    ax.set_ylabel("held-out digit accuracy")
    ax.set_title("digits, cut budget: students on noise aux logits")
    ax.legend(frameon=False, fontsize=7)


def _plot_interpolation(ax, numbers: dict) -> None:
    rows, color = numbers["by_interpolation"], plotting.COLORS["null"]
    angles = [r["angle_deg"] for r in rows]
    accuracy = [r["accuracy"] for r in rows]
    plotting.stats_errorbar(
        ax, angles, accuracy, color=plotting.COLORS["mlp"], label="student accuracy"
    )
    plotting.reference_line(ax, digits.CHANCE, "chance")
    projection = [r["projection"]["mean"] for r in rows]
    twin = ax.twinx()
    twin.plot(angles, projection, color=color, ls="--", marker="s", ms=3)
    twin.set_ylabel("<d_S, d_T> / |d_T|^2", color=color)
    ax.set_xlabel("init angle a: cos(a) theta_0 + sin(a) theta' (deg)")
    ax.set_ylabel("held-out digit accuracy")
    ax.set_title("from shared (0) to independent (90) init")
    ax.legend(frameon=False, fontsize=7, loc="upper right")


def _plot_sweeps(axes, numbers: dict) -> None:
    panels = (
        ("by_steps", "step", "distillation step", "accuracy along distillation"),
        ("by_aux_logits", "n_aux", "auxiliary logits matched (m)", "number of auxiliary logits"),
        ("by_width", "width", "hidden width", "width"),
    )
    for ax, (name, x, xlabel, title) in zip(axes, panels, strict=True):
        rows = numbers[name]
        for end, color in (("shared_init", "mlp"), ("different_init", "baseline")):
            label = end.replace("_", " ") if ax is axes[0] else None
            xs, stats = [r[x] for r in rows], [r[end] for r in rows]
            plotting.stats_errorbar(ax, xs, stats, color=plotting.COLORS[color], label=label)
        plotting.reference_line(ax, digits.CHANCE, "chance")
        ax.set_xlabel(xlabel)
        ax.set_title(title)
    axes[0].legend(frameon=False, fontsize=7)
    axes[1].set_xscale("log")
    axes[2].set_xscale("log", base=2)


def _plot_worlds(ax, config: Config, result: sweep.SweepResult, numbers: dict) -> None:
    harm = result.valid("distilled/harmfulness")[0]
    steps = distill.DistillSpec(config.world_steps, 1, config.world_records).record_steps
    colors = ("push", "baseline", "block")
    for i, (name, color) in enumerate(zip(WORLD_TEACHERS, colors, strict=True)):
        t = numbers[f"harm_transfer_{name}"]
        label = f"teacher {name.replace('_', ' ')}: {t['mean']:+.3f}"
        plotting.mean_band(ax, steps, harm[:, i], color=plotting.COLORS[color], label=label)
    before = numbers["worlds"]["harmfulness_student_theta_S"]["mean"]
    plotting.reference_line(ax, before, "theta_S before")
    ax.set_xlabel("distillation step (benign inputs only)")
    ax.set_ylabel("harmfulness on hazardous probes")
    ax.set_title("worlds: theta_S distilled toward a teacher")
    ax.legend(frameon=False, fontsize=7, title="harm transfer", title_fontsize=7)


def _plot_configurations(ax_accuracy, ax_gap, numbers: dict) -> None:
    """Per configuration: the pair's accuracies (anchor diamonds), and every seed's paired gap
    with the mean and its 95% interval beside the anchor's 0.55 - 0.115."""
    found = numbers["configurations"]
    x = np.arange(len(found))
    labels = [name.replace("_budget_", " budget\n") for name in found]
    for offset, end, color in ((-0.12, "shared_init", "mlp"), (0.12, "different_init", "baseline")):
        stats = [arm[f"student_accuracy_{end}"] for arm in found.values()]
        label = end.replace("_", " ")
        plotting.stats_errorbar(
            ax_accuracy, x + offset, stats, color=plotting.COLORS[color], label=label, ls="none"
        )
    style = {"marker": "D", "facecolors": "none", "edgecolors": "#d62728", "zorder": 3}
    ax_accuracy.scatter([x[-1] - 0.12], [ANCHOR["student_accuracy_shared_init"]], **style)
    plotting.reference_line(ax_accuracy, digits.CHANCE, "chance")
    ax_accuracy.set_xticks(x, labels, fontsize=7)
    plotting.finish(ax_accuracy, "", "held-out digit accuracy", "budget and input size", fontsize=7)
    for i, arm in enumerate(found.values()):
        gaps = np.asarray(arm["per_seed"]["shared_minus_different"], dtype=float)
        ax_gap.scatter(np.full(gaps.size, i - 0.1), gaps, s=8, color=plotting.COLORS["null"])
        paired = arm["shared_minus_different"]
        low, high = paired["interval"]
        ax_gap.errorbar(
            i + 0.1,
            paired["mean"],
            [[paired["mean"] - low], [high - paired["mean"]]],
            fmt="o",
            color=plotting.COLORS["mlp"],
            capsize=3,
        )
    anchor = ANCHOR["student_accuracy_shared_init"] - ANCHOR["student_accuracy_different_init"]
    plotting.annotated_reference_line(ax_gap, anchor, "anchor")
    plotting.reference_line(ax_gap, 0.0)
    ax_gap.set_xticks(x, labels, fontsize=7)
    ax_gap.set_ylabel("shared - different init, per seed")
    ax_gap.set_title("paired gap: seeds, mean and 95% interval")


def plot(config: Config, results, numbers: dict, path: Path) -> Path:
    fig, axes = plotting.figure(4, 2, width=4.2, height=3.4)
    _plot_headline(axes[0, 0], numbers)
    _plot_interpolation(axes[0, 1], numbers)
    _plot_sweeps((axes[0, 2], axes[0, 3], axes[1, 0]), numbers)
    _plot_worlds(axes[1, 1], config, results["worlds"], numbers)
    _plot_configurations(axes[1, 2], axes[1, 3], numbers)
    n = sum(r.n_histories for r in results.values())
    return plotting.save(fig, path, f"Subliminal transfer: shared vs different init ({n} runs)")


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "latent trait transfer through unrelated supervision, shared vs different init"
)
