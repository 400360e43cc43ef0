"""Frontiers of defences (`gravity.instruments.frontier`) against hand-made points, and a
defence comparison's arms (`gravity.defences.arms`): the knobs that select them and the
machinery their programs compile."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gravity import defences
from gravity.defences import arms, steering
from gravity.engine import presets
from gravity.instruments import frontier
from gravity.run import plotting


def point(name, strength, harm, task):
    return {
        "name": name,
        "strength": strength,
        frontier.HARM: {"mean": harm, "sd": 0.0, "n": 1},
        frontier.TASK: {"mean": task, "sd": 0.0, "n": 1},
    }


POINTS = [
    point("baseline", 0.0, 0.7, 0.95),
    point("block", 1.0, 0.2, 0.94),  # less harm, task within the tolerance
    point("block", 10.0, 0.1, 0.90),  # least harm, at a task cost
    point("ewc", 100.0, 0.3, 0.93),  # beaten by block@1 on both axes
    point("freeze", 1.0, 0.6, 0.97),  # best task
]


def test_pareto_front_keeps_the_points_nothing_beats_on_both_axes():
    assert frontier.pareto_front(POINTS) == ["block@1", "block@10", "freeze@1"]


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=12))
def test_no_point_on_the_front_is_beaten_and_every_point_off_it_is(xy):
    points = [point("p", i, h, a) for i, (h, a) in enumerate(xy)]
    front = set(frontier.pareto_front(points))
    assert front
    for i, (h, a) in enumerate(xy):
        beaten = any(h2 <= h and a2 >= a and (h2, a2) != (h, a) for h2, a2 in xy)
        assert (f"p@{i}" in front) == (not beaten)


def test_best_at_equal_cost_stays_within_the_task_tolerance():
    best = frontier.best_at_equal_cost(POINTS)
    assert best == {
        "label": "block@1",
        frontier.HARM: 0.2,
        frontier.TASK: 0.94,
        f"baseline_{frontier.TASK}": 0.95,
    }
    assert frontier.best_at_equal_cost(POINTS, exclude=("block",))["label"] == "freeze@1"
    assert frontier.best_at_equal_cost(POINTS, exclude=("block", "ewc", "freeze")) is None


def test_reversion_cut_against_the_reference_arm():
    steps = [0, 1, 2]
    # Arm 0 rises by 1 per step; arm 1 by half as much; arm 2 not at all (2 seeds each).
    trajectory = np.array([[[0, 1, 2]] * 2, [[0, 0.5, 1]] * 2, [[0.3, 0.3, 0.3]] * 2])
    at_end, cumulative = frontier.reversion_cut(trajectory, steps)
    np.testing.assert_allclose(at_end, [0, 0.5, 1])
    np.testing.assert_allclose(cumulative, [0, 0.5, 1])
    named = [("baseline", 0.0), ("rehearsal", 0.5), ("rehearsal", 0.25)]
    assert frontier.reversion_cut_by_strength(trajectory, steps, named, "rehearsal") == (
        {"0.5": 0.5, "0.25": 1.0},
        {"0.5": 0.5, "0.25": 1.0},
    )


def test_points_and_grids_summarise_over_the_seed_axis():
    scores = {"harm": np.array([[0.1, 0.3], [0.5, np.nan]])}  # (arm, seed)
    points = frontier.frontier_points([("a", 1.0), ("b", 2.0)], scores)
    assert points[0] == {
        "name": "a",
        "strength": 1.0,
        "harm": {"mean": 0.2, "sd": pytest.approx(0.1), "n": 2},
    }
    assert points[1]["harm"] == {"mean": 0.5, "sd": 0.0, "n": 1}
    transposed = frontier.frontier_points([("a", 1.0), ("b", 2.0)], {"harm": scores["harm"].T}, 1)
    assert transposed == points
    grid = frontier.mean_sd_grid({"x": np.arange(12.0).reshape(2, 3, 2)}, {"r0": 0}, {"c1": 1})
    assert grid == {"r0": {"c1": {"x": {"mean": 3.0, "sd": pytest.approx(1.632993), "n": 3}}}}


def test_arm_knobs_select_the_intervention_or_the_defence():
    spec = presets.standard_spec("mlp", "tiny", keep_params=False)
    base = presets.standard_knobs(spec)
    assert arms.arm_knobs(base, ("baseline", 0.0)) is base
    blocked = arms.arm_knobs(base, ("block", 3.0))
    assert (blocked.intervention, blocked.intervention_strength) == (steering.index("block"), 3.0)
    ewc = arms.arm_knobs(base, ("ewc", 10.0))
    assert (ewc.defence, ewc.defence_strength) == (defences.index("ewc"), 10.0)


def test_each_program_compiles_only_what_its_arms_need():
    arms_ = (("baseline", 0.0), ("block", 1.0), ("ewc", 10.0), ("rehearsal", 0.5))
    split = arms.split_by_machinery(arms_)
    assert split == {"steer": arms_[:2], "guard": (arms_[0], *arms_[2:])}
    spec = presets.standard_spec("mlp", "tiny", keep_params=False)
    steer, guard = (arms.arms_spec(spec, group).phase("benign") for group in split.values())
    assert steer.interventions and steer.defences == ()
    assert not guard.interventions and guard.defences == ("rehearsal", "ewc")


def test_frontier_curves_draw_one_curve_per_name_and_box_the_front():
    fig, axes = plotting.figure(1)
    ax = axes[0][0]
    colors = {"baseline": "k", "block": "g", "ewc": "r", "freeze": "y"}
    plotting.frontier_curves(ax, POINTS, set(frontier.pareto_front(POINTS)), colors)
    plotting.annotated_reference_line(ax, 0.19, "paper 19%")
    plotting.log_ticks(ax, (100, 200))
    plotting.finish(ax, "task", "harm", "frontier", fontsize=6)
    curves = [line for line in ax.lines if line.get_label() in colors]
    assert [line.get_label() for line in curves] == ["baseline", "block", "ewc", "freeze"]
    boxes = [line for line in ax.lines if line.get_marker() == "s"]
    assert len(boxes) == 3  # block@1, block@10, freeze@1
    assert [t.get_text() for t in ax.get_xticklabels()] == ["100", "200"]
    assert ax.get_legend() is not None and ax.get_title() == "frontier"
    plotting.plt.close(fig)
