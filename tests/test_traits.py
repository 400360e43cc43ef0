"""Subliminal transfer (`experiments.traits`): what the student sees, the shared-init identity,
the different-init control near chance, and the experiment end to end on the tiny preset."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments import traits
from gravity.engine import digits, distill
from gravity.run.experiment import run_experiment
from gravity.run.store import ResultStore

CHANCE_BAND = 0.05  # the different-init student's mean accuracy stays within chance +- this
MICRO = digits.DigitsModel(hidden=(8, 8), n_aux=3)
INIT = jax.jit(MICRO.init)
MICRO_DISTILL = distill.DistillSpec(steps=4, batch_size=8, n_records=2)
CONFIG = traits.tiny(traits.Config())
LOSS = {
    name: jax.jit(lambda s, t, m, name=name: distill.distillation_loss(s, t, m, name))
    for name in distill.LOSSES
}


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    """The experiment on its tiny preset, with a spy on every distillation it runs: the dtypes
    of the arguments (at trace time) and every input batch drawn (by callback, at run time)."""
    out = tmp_path_factory.mktemp("traits")
    seen = {"dtypes": [], "batches": []}
    original = distill.distill

    def spy(apply, teacher, student, sample_inputs, spec, knobs, key, evaluate=None):
        seen["dtypes"] += [leaf.dtype for leaf in jax.tree.leaves((teacher, student, knobs))]

        def recorded(k, n):
            inputs = sample_inputs(k, n)
            name = sample_inputs.__name__
            jax.debug.callback(lambda x: seen["batches"].append((name, np.asarray(x))), inputs)
            return inputs

        return original(apply, teacher, student, recorded, spec, knobs, key, evaluate)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(distill, "distill", spy)
        store = ResultStore(tmp_path_factory.mktemp("store"))
        run_experiment(traits.EXPERIMENT, CONFIG, out_dir=out, store=store, progress=False)
    return out, json.loads((out / "traits.json").read_text()), seen


def test_run_writes_figure_and_every_required_number(tiny_report):
    out, report, _ = tiny_report
    assert (out / "traits.png").stat().st_size > 10_000
    numbers = report["numbers"]
    for key in (
        "teacher_accuracy",
        "student_accuracy_shared_init",
        "student_accuracy_different_init",
        "harm_transfer_shared_init",
        "harm_transfer_different_init",
    ):
        assert set(numbers[key]) >= {"mean", "sd"} and np.isfinite(numbers[key]["mean"])
    angles = [row["angle_deg"] for row in numbers["by_interpolation"]]
    assert angles == list(CONFIG.angles_deg)
    assert all(set(row["accuracy"]) >= {"mean", "sd"} for row in numbers["by_interpolation"])
    assert [row["n_aux"] for row in numbers["by_aux_logits"]] == [1, 3, 10]
    assert report["n_histories"] > 0 and report["wall_s"] > 0


def test_teacher_learns_and_only_the_shared_init_student_moves_along_it(tiny_report):
    """Directions robust on the tiny preset (checked over seeds 0-7, one at a time): the
    teacher's held-out accuracy was 0.46-0.55 (chance 0.1); the shared-init student's move had
    cosine 0.08-0.26 with the teacher's displacement, the different-init (90 degree) one's
    -0.10-0.09, lower in every seed (by 0.04 at least; by 0.13 in the mean of seeds 0-3)."""
    _, report, _ = tiny_report
    numbers = report["numbers"]
    assert numbers["teacher_accuracy"]["mean"] > digits.CHANCE + 0.25
    moved = numbers["displacement_on_teacher"]
    shared, different = (moved[k]["cosine"]["mean"] for k in ("shared_init", "different_init"))
    assert shared - different > 0.05


def test_different_init_student_stays_within_band_of_chance(tiny_report):
    """Stated band: the mean over seeds within 0.1 +- 0.05 on the tiny preset."""
    _, report, _ = tiny_report
    different = report["numbers"]["student_accuracy_different_init"]["mean"]
    assert abs(different - digits.CHANCE) <= CHANCE_BAND


def test_student_training_data_holds_no_digit_image_and_no_label(tiny_report):
    """Every batch a digits student was distilled on is uniform noise, none near a digit image;
    no integer (label) array reaches a distillation; only auxiliary units are matched. The
    world students' batches are benign: the hazard feature (input 0) is never on."""
    _, _, seen = tiny_report
    noise = {}
    for name, x in seen["batches"]:
        if name == "noise_images":
            noise.setdefault(x.shape[-1], []).append(x.reshape(-1, x.shape[-1]))
    benign = [x.reshape(-1, x.shape[-1]) for name, x in seen["batches"] if name != "noise_images"]
    assert sorted(noise) == [side * side for side in CONFIG.anchor_sides] and benign
    for pixels, batches in noise.items():
        inputs = np.concatenate(batches)
        assert inputs.shape[0] >= CONFIG.anchor_steps * CONFIG.anchor_batch_size
        assert np.all((inputs >= 0.0) & (inputs < 1.0))
        data = digits.Digits(side=round(np.sqrt(pixels)))
        images = np.concatenate([data.train.inputs, data.held_out.inputs])
        squared = (inputs**2).sum(1)[:, None] + (images**2).sum(1)[None] - 2 * inputs @ images.T
        assert np.sqrt(np.maximum(squared, 0).min()) > 1.0
    assert sum(x.shape[0] for x in noise[digits.N_PIXELS]) >= (
        CONFIG.student_steps * CONFIG.batch_size
    )
    assert np.all(np.concatenate(benign)[:, 0] == 0.0)
    assert seen["dtypes"] and all(jnp.issubdtype(d, jnp.floating) for d in seen["dtypes"])
    _, knobs = traits.digits_point(CONFIG, CONFIG.width, traits.main_students(CONFIG))
    mask = np.asarray(knobs.students.unit_mask)
    assert np.all(mask[:, : digits.N_DIGITS] == 0) and np.all(mask.sum(-1) > 0)


def test_every_configuration_keeps_paired_per_seed_lists_that_the_claims_read(tiny_report):
    """Cut budget, anchor budget at 64 and at 784 pixels: per-seed lists of the seeds' length,
    the stored gap their difference, the input-dimension gap the difference of the two
    anchor-budget gaps seed by seed; every claim of the file reads keys the report holds."""
    _, report, _ = tiny_report
    numbers = report["numbers"]
    found = numbers["configurations"]
    assert list(found) == ["cut_budget_64px", "anchor_budget_64px", "anchor_budget_784px"]
    assert [arm["pixels"] for arm in found.values()] == [64, 64, 784]
    assert [arm["batch_size"] for arm in found.values()] == [
        CONFIG.batch_size,
        CONFIG.anchor_batch_size,
        CONFIG.anchor_batch_size,
    ]
    cut = found["cut_budget_64px"]
    assert cut["student_accuracy_shared_init"] == numbers["student_accuracy_shared_init"]
    for arm in found.values():
        seeds = {k: np.asarray(v, dtype=float) for k, v in arm["per_seed"].items()}
        assert all(v.shape == (CONFIG.seeds,) for v in seeds.values())
        gap = seeds["shared_init"] - seeds["different_init"]
        np.testing.assert_allclose(seeds["shared_minus_different"], gap, atol=1e-12)
        assert arm["shared_minus_different"]["mean"] == pytest.approx(gap.mean())
        assert arm["teacher_accuracy"]["mean"] > digits.CHANCE
    gaps = [np.asarray(found[k]["per_seed"]["shared_minus_different"]) for k in list(found)[1:]]
    dimension = numbers["input_dimension"]
    assert dimension["pixels"] == [64, 784] and dimension["n"] == CONFIG.seeds
    assert dimension["mean"] == pytest.approx((gaps[1] - gaps[0]).mean())
    records = {record["id"]: record for record in report["claims"]}
    assert not any("not in the JSON" in record["reason"] for record in records.values())
    for claim_id in ("traits-shared-beats-different", "traits-input-dimension"):
        assert records[claim_id]["n"] == CONFIG.seeds
        assert records[claim_id]["verdict"] != "cannot test"


def test_the_784_pixel_spec_refuses_8x8_digits():
    model = digits.DigitsModel(hidden=(8, 8), n_pixels=784)
    with pytest.raises(ValueError, match="784"):
        traits.transfer.DigitsTransferSpec(
            digits.Digits(), model, digits.TeacherSpec(1, 1), MICRO_DISTILL
        )
    spec, _ = traits.anchor_point(CONFIG, 28)
    assert spec.data.n_pixels == spec.model.n_pixels == 784
    assert spec.distill.batch_size == CONFIG.anchor_batch_size == spec.teacher.batch_size


@pytest.fixture(scope="module")
def micro_distill():
    """One compiled distillation of the micro model, reused for several identities (any
    teacher will do for them: here an untrained one)."""
    data = digits.Digits()
    knobs = distill.DistillKnobs(
        unit_mask=jnp.asarray(distill.unit_mask(MICRO.n_outputs, MICRO.aux_units))
    )

    @jax.jit
    def run(teacher, student):
        def evaluate(params):
            return {"accuracy": digits.digit_accuracy(MICRO, params, data.held_out)}

        return distill.distill(
            MICRO.apply,
            teacher,
            student,
            digits.noise_images,
            MICRO_DISTILL,
            knobs,
            jax.random.key(3),
            evaluate,
        )

    theta_0, theta_independent, teacher = (INIT(jax.random.key(seed)) for seed in range(3))
    return run, teacher, theta_0, theta_independent


def _identical(a, b) -> bool:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return all(np.array_equal(x, y) for x, y in pairs)


def test_interpolation_at_zero_is_the_shared_init_run_exactly(micro_distill):
    run, teacher, theta_0, theta_independent = micro_distill
    start = distill.mix_init(theta_0, theta_independent, distill.angle_weights(0.0))
    assert _identical(start, theta_0)
    assert _identical(run(teacher, start), run(teacher, theta_0))


def test_teacher_digit_logits_never_reach_the_student(micro_distill):
    """Scrambling the teacher's digit readout leaves the distilled student bitwise unchanged."""
    run, teacher, theta_0, _ = micro_distill
    noise = jax.random.normal(jax.random.key(9), (MICRO.hidden[-1], digits.N_DIGITS))

    def scramble(path, leaf):
        names = [getattr(entry, "key", None) for entry in path]
        if names[:2] == ["readout", "kernel"]:
            return leaf.at[:, : digits.N_DIGITS].set(noise)
        return leaf

    scrambled = jax.tree_util.tree_map_with_path(scramble, teacher)
    assert not _identical(scrambled, teacher)
    assert _identical(run(scrambled, theta_0)[0], run(teacher, theta_0)[0])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_angle_ends_are_exact(seed):
    shared, independent = INIT(jax.random.key(seed)), INIT(jax.random.key(seed + 1))
    assert _identical(distill.mix_init(shared, independent, distill.angle_weights(0.0)), shared)
    ninety = distill.mix_init(shared, independent, distill.angle_weights(np.pi / 2))
    assert _identical(ninety, independent)


@settings(max_examples=25, deadline=None)
@given(
    logits=st.lists(st.floats(-5, 5), min_size=6, max_size=6),
    shift=st.lists(st.floats(-5, 5), min_size=6, max_size=6),
    loss=st.sampled_from(distill.LOSSES),
)
def test_loss_is_zero_at_the_teacher_and_blind_to_unmatched_units(logits, shift, loss):
    loss_of = LOSS[loss]
    teacher = jnp.asarray([logits], jnp.float32)
    mask = jnp.asarray([0, 0, 0, 1, 1, 1], jnp.float32)
    moved_unmatched = teacher + jnp.asarray([shift], jnp.float32) * (1 - mask)[None]
    assert float(loss_of(teacher, teacher, mask)) == pytest.approx(0.0)
    assert float(loss_of(moved_unmatched, teacher, mask)) == pytest.approx(0.0, abs=1e-6)
    moved = teacher + jnp.asarray([shift], jnp.float32)
    assert float(loss_of(moved, teacher, mask)) >= -1e-6
