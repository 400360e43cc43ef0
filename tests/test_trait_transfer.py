"""The trait-transfer instrument's builders and readouts (`gravity.instruments.trait_transfer`)
on small hand-made arrays: rows found by name, per-seed pairing, harm transfer by teacher."""

import numpy as np
import pytest

from gravity.engine import digits, distill
from gravity.instruments import trait_transfer as transfer
from gravity.instruments.trait_transfer import Student

ROWS = (Student(0.0, 3), Student(45.0, 3), Student(90.0, 3), Student(0.0, 1), Student(90.0, 1))
ROWS += (Student(0.0, 3, 1e-5),)


def _table(seeds=4, records=3):
    """Row r, seed s, record t holds r + s / 10 + t / 100 (so every entry names itself)."""
    s, r, t = np.meshgrid(np.arange(seeds), np.arange(len(ROWS)), np.arange(records), indexing="ij")
    accuracy = r + s / 10 + t / 100
    return transfer.StudentTable(ROWS, accuracy, accuracy[..., 0] * 2, accuracy[..., 0] * 3)


def test_rows_are_found_by_angle_logits_and_weight_decay():
    assert transfer.student_index(ROWS, 90.0, 1) == 4
    assert transfer.student_index(ROWS, 0.0, 3, 1e-5) == 5
    with pytest.raises(ValueError):
        transfer.student_index(ROWS, 30.0, 3)


def test_breakdowns_read_the_right_rows_and_records():
    table = _table()
    seeds = np.arange(4) / 10
    np.testing.assert_allclose(table.final(90.0, 1), 4 + seeds + 0.02)
    ends = table.ends(3, record=0)
    assert ends["shared_init"]["mean"] == pytest.approx(np.mean(seeds))
    assert ends["different_init"]["mean"] == pytest.approx(2 + np.mean(seeds))
    angles = transfer.by_angle(table, (0.0, 45.0, 90.0), 3)
    assert [a["accuracy"]["mean"] for a in angles] == pytest.approx([0.17, 1.17, 2.17])
    assert angles[1]["projection"]["mean"] == pytest.approx(2 * 1.15)
    knobs = transfer.by_student_knob(table, 3, (1, 3), (1e-5,), np.array([0, 5, 10]))
    assert knobs["by_aux_logits"][0]["different_init"]["mean"] == pytest.approx(4.17)
    assert knobs["by_weight_decay"][1]["shared_init"]["mean"] == pytest.approx(5.17)
    assert [s["step"] for s in knobs["by_steps"]] == [0, 5, 10]
    assert knobs["by_steps"][1]["shared_init"]["mean"] == pytest.approx(0.16)


def test_headline_pairs_seeds_and_skips_diverged_ones():
    table = _table()
    table.accuracy[1, 2, -1] = np.nan  # a diverged different-init run
    headline = transfer.shared_vs_different(table, 3)
    gap = headline["shared_minus_different"]
    assert gap["mean"] == pytest.approx(-2.0) and gap["n"] == 3
    assert gap["share_of_seeds_positive"] == 0.0
    assert headline["displacement_on_teacher"]["different_init"]["cosine"]["mean"] == pytest.approx(
        3 * 2.15
    )
    assert (
        transfer.paired_gap([1.0, 2.0, np.nan], [0.0, 3.0, 1.0])["share_of_seeds_positive"] == 0.5
    )


def test_harm_transfer_is_after_minus_theta_s_per_teacher():
    before = np.array([0.2, 0.4])
    after = np.array([[0.5, 0.3, 0.2], [0.7, 0.4, 0.3]])
    numbers = transfer.harm_transfer(before, after + 1, after, after / 2)
    assert numbers["harm_transfer_shared_init"]["mean"] == pytest.approx(0.3)
    assert numbers["harm_transfer_never_complied"]["mean"] == pytest.approx(-0.05)
    worlds = numbers["worlds"]
    assert worlds["trait_attributable_transfer"]["mean"] == pytest.approx(0.35)
    assert worlds["shared_minus_different_transfer"]["mean"] == pytest.approx(0.25)
    assert worlds["harmfulness_teacher"]["different_init"]["mean"] == pytest.approx(1.35)


def test_digits_point_matches_only_auxiliary_units_from_exact_angles():
    model = digits.DigitsModel(hidden=(8, 8), n_aux=10)
    spec, knobs = transfer.digits_transfer_point(
        model, digits.TeacherSpec(4, 8), distill.DistillSpec(4, 8), ROWS, 1e-3
    )
    mask = knobs.students.unit_mask
    assert mask.shape == (len(ROWS), model.n_outputs)
    assert np.all(mask[:, : digits.N_DIGITS] == 0)
    assert list(mask.sum(-1)) == [s.n_aux for s in ROWS]
    np.testing.assert_array_equal(knobs.init_weights[[0, 2]], [[1.0, 0.0], [0.0, 1.0]])
    assert list(knobs.students.weight_decay) == pytest.approx([s.weight_decay for s in ROWS])
    assert spec.model == model


def test_a_configuration_keeps_its_headline_pair_per_seed_and_pairs_it():
    table = _table()
    table.accuracy[1, 2, -1] = np.nan  # a diverged different-init run
    found = transfer.paired_configuration(table, np.array([0.9, 0.8, 0.7, np.nan]), 3)
    seeds = found["per_seed"]
    np.testing.assert_allclose(seeds["shared_init"], np.arange(4) / 10 + 0.02)
    np.testing.assert_allclose(seeds["different_init"], [2.02, np.nan, 2.22, 2.32])
    np.testing.assert_allclose(seeds["shared_minus_different"], [-2.0, np.nan, -2.0, -2.0])
    paired = found["shared_minus_different"]
    assert paired["mean"] == pytest.approx(-2.0) and paired["n"] == 3
    assert paired["interval"] == pytest.approx([-2.0, -2.0]) and paired["sign_p"] == 0.25
    assert found["teacher_accuracy"]["mean"] == pytest.approx(0.8)
    assert found["student_accuracy_different_init"]["n"] == 3
