"""Read-outs of erased-concept histories (`gravity.instruments.erased_concept`) on a hand-made
sweep result: the cells, resurgence against its closed form, the detection rule, the report's
layout (each number beside its value for every method)."""

import numpy as np
import pytest

from gravity.engine import diffusion
from gravity.instruments import erased_concept
from gravity.instruments.erased_concept import PRETRAINING
from gravity.run import plotting, sweep

SPEC = diffusion.ResurgenceSpec(
    arms=(
        diffusion.BenignArm(1),
        diffusion.BenignArm(4),
        diffusion.BenignArm(1, "block"),
        diffusion.BenignArm(1, "random_block"),
    ),
    benign_steps=100,
    record_steps=(0, 50, 100),
)
METHODS = ("retarget", "esd")
SEEDS = 3


def result(gain: float = 0.3) -> sweep.SweepResult:
    """Every output of `run_resurgence` the read-outs use, shaped (method, pretraining, seed,
    ...): m_P = 0.8, m_E = 0.2, and m_T = m_E + `gain` (+ seed noise) in every arm."""
    shape = (len(METHODS), len(PRETRAINING), SEEDS)
    noise = np.linspace(-0.01, 0.01, SEEDS)
    n_arms, n_steps = len(SPEC.arms), len(SPEC.record_steps)
    arrays = {
        f"summary/{stage}/{name}": np.full(shape, value)
        for stage, value in (("pretrained", 0.8), ("erased", 0.2))
        for name in ("concept_mass", "likelihood_mass", "fidelity")
    }
    benign = np.broadcast_to((0.2 + gain + noise)[:, None], (*shape, n_arms))
    arrays |= {f"summary/benign/{n}": benign for n in ("concept_mass", "likelihood_mass")}
    arrays["summary/benign/fidelity"] = np.ones((*shape, n_arms))
    steps = np.broadcast_to(np.linspace(0, 1, n_steps), (*shape, n_arms, n_steps))
    for name in ("alignment", "alignment_null", "alignment_specific", "concept_mass"):
        arrays[f"trajectory/{name}"] = steps
    arrays["trajectory/drift_along_v_rev"] = 2 * steps
    arrays["alignment_control_erasure"] = np.full(shape, 0.1)
    arrays["erasure_distance"] = np.full(shape, 4.0)
    axes = (sweep.Axis("method", METHODS), sweep.Axis("pretraining", PRETRAINING))
    return sweep.SweepResult(axes, np.arange(SEEDS), arrays, np.zeros(shape, bool), {})


def test_cells_read_one_method_and_pretraining():
    learned, never = erased_concept.learned_and_never(result(), SPEC, "esd")
    assert learned.at("concept_mass", "pretrained").shape == (SEEDS,)
    assert learned.at("concept_mass", "benign", "d4").shape == (SEEDS,)
    np.testing.assert_allclose(learned.trajectory("alignment", "d1", 50), 0.5)
    assert never.trajectory("alignment", "d1").shape == (SEEDS, len(SPEC.record_steps))


def test_resurgence_is_the_returned_share_of_the_erased_mass():
    learned, _ = erased_concept.learned_and_never(result(gain=0.3), SPEC, "retarget")
    fraction = erased_concept.resurgence_fraction(learned, "d1")
    np.testing.assert_allclose(fraction, (0.3 + np.linspace(-0.01, 0.01, SEEDS)) / 0.6)
    assert erased_concept.resurgence_detected(learned, "d1")
    nothing, _ = erased_concept.learned_and_never(result(gain=0.0), SPEC, "retarget")
    assert not erased_concept.resurgence_detected(nothing, "d1")


def test_mean_clears_the_floor_and_twice_its_standard_error():
    assert erased_concept.mean_clears([0.1, 0.1, 0.1], 0.01)
    assert not erased_concept.mean_clears([0.005, 0.005], 0.01)  # below the floor
    assert not erased_concept.mean_clears([-1.0, 1.2], 0.01)  # within its noise
    assert not erased_concept.mean_clears([0.5, np.nan], 0.01)  # one finite value


def test_report_lists_each_number_for_every_method():
    report = erased_concept.resurgence_report(result(), SPEC, METHODS, "d1", "d4")
    assert set(report["concept_mass_after_benign"]) == set(METHODS)
    assert report["concept_mass_erased"]["esd"]["mean"] == pytest.approx(0.2)
    assert report["resurgence_detected"] == {"retarget": True, "esd": True}
    assert report["alignment_step100"]["esd"]["mean"] == pytest.approx(1.0)
    controls = report["controls"]["retarget"]
    assert controls["activation_return_fraction"]["mean"] == pytest.approx(0.5)  # 2 of 4
    assert controls["share_of_seeds_above_never_learned"] == 0.0  # the same mass in both cells
    assert report["headline_arm"] == "d1" and report["benign_steps"] == 100
    assert 0 < report["isotropic_null_p99"] < 1


def test_shared_panels_draw_bands_and_highlighted_samples():
    fig, axes = plotting.figure(2)
    values = np.arange(6.0).reshape(2, 3)
    plotting.mean_bands(axes[0][0], [0, 1, 2], [(values, "a", "r", "-"), (values, "b", "b", ":")])
    assert [line.get_label() for line in axes[0][0].lines] == ["a", "b"]
    np.testing.assert_allclose(axes[0][0].lines[0].get_ydata(), [1.5, 2.5, 3.5])
    samples = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    chosen = np.array([True, False, True])
    plotting.highlighted_samples(axes[0][1], samples, chosen, ((0.0, 0.0), 0.5), 3.0)
    others, picked = axes[0][1].collections
    assert len(others.get_offsets()) == 1 and len(picked.get_offsets()) == 2
    assert axes[0][1].get_xlim() == (-3.0, 3.0) and len(axes[0][1].patches) == 1
    plotting.plt.close(fig)
