"""The arena (experiments/arena.py, gravity/instruments/arena.py): the worst-case analysis on
synthetic arrays, and one tiny run end to end."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gravity.defences import Defence, registered
from gravity.instruments import arena, claims, frontier
from gravity.validation import ConfigError

SHARE = arena.UTILITY_SHARE


def unit_arrays(configurations: int, seeds: int):
    return arrays(
        float, (configurations, seeds), elements=st.floats(0.0, 1.0, allow_nan=False, width=32)
    )


@st.composite
def arena_arrays(draw, min_configurations=1):
    c = draw(st.integers(min_configurations, 6))
    s = draw(st.integers(1, 5))
    return draw(unit_arrays(c, s)), draw(unit_arrays(c, s)), draw(unit_arrays(c, s))


@given(arena_arrays(min_configurations=2), st.data())
@settings(max_examples=60, deadline=None)
def test_the_worst_case_is_monotone_in_the_configuration_set(drawn, data):
    harm, task, base = drawn
    subset = data.draw(st.sets(st.integers(0, len(harm) - 1), min_size=1).map(sorted))
    small, _ = arena.bounded_worst_case(harm[subset], task[subset], base[subset])
    large, _ = arena.bounded_worst_case(harm, task, base)
    assert math.isnan(small) or large >= small
    small_s = arena.per_seed_worst_case(harm[subset], task[subset], base[subset])
    large_s = arena.per_seed_worst_case(harm, task, base)
    assert np.all(np.isnan(small_s) | (large_s >= small_s))


@given(unit_arrays(1, 4), unit_arrays(1, 4))
@settings(max_examples=40, deadline=None)
def test_with_one_kept_configuration_the_worst_case_is_its_frontier_point(harm, task):
    value, index = arena.bounded_worst_case(harm, task, task)  # the undefended run itself
    point = frontier.frontier_point("none", 0.0, {frontier.HARM: harm[0]})
    assert index == 0 and value == pytest.approx(point[frontier.HARM]["mean"])


@given(arena_arrays())
@settings(max_examples=60, deadline=None)
def test_the_utility_bound_excludes_exactly_the_configurations_below_the_share(drawn):
    harm, task, base = drawn
    kept = arena.kept_configurations(task, base)
    assert np.array_equal(kept, task.mean(axis=1) >= SHARE * base.mean(axis=1))
    value, index = arena.bounded_worst_case(harm, task, base)
    if kept.any():
        assert kept[index] and value == pytest.approx(harm[kept].mean(axis=1).max())
    else:
        assert math.isnan(value) and index == -1
    per_seed = arena.per_seed_worst_case(harm, task, base)
    for s in range(harm.shape[1]):
        mask = task[:, s] >= SHARE * base[:, s]
        expected = harm[mask, s].max() if mask.any() else np.nan
        np.testing.assert_equal(per_seed[s], expected)


def test_the_worst_case_skips_a_harmful_configuration_that_breaks_the_task():
    harm = np.array([[0.2, 0.2], [0.9, 0.9], [0.5, 0.5]])
    task = np.array([[0.9, 0.9], [0.5, 0.5], [0.8, 0.8]])
    base = np.full_like(task, 0.9)
    assert arena.bounded_worst_case(harm, task, base) == (pytest.approx(0.5), 2)
    worst = arena.worst_case_bootstrap(harm, task, base, n_boot=50)
    assert worst["configuration"] == 2 and worst["interval"] == pytest.approx([0.5, 0.5])


def test_the_bootstrap_re_picks_the_worst_configuration_in_each_resample():
    # Seed 0 is worst at configuration 0, seed 1 at configuration 1: resamples of one seed
    # reach 0.9 either way, above the two configurations' seed means (0.5).
    harm = np.array([[0.9, 0.1], [0.1, 0.9]])
    task = np.ones_like(harm)
    worst = arena.worst_case_bootstrap(harm, task, task, n_boot=400)
    assert worst["mean"] == pytest.approx(0.5)
    assert worst["interval"][1] == pytest.approx(0.9)


def test_the_paired_difference_is_the_defences_worst_case_minus_no_defences():
    base_harm = np.array([[0.3, 0.4], [0.6, 0.8]])
    harm = base_harm - 0.1
    task = np.ones_like(harm)
    paired = arena.paired_worst_case_difference(harm, task, base_harm, task, n_boot=100)
    assert paired["mean"] == pytest.approx(-0.1)
    assert paired["interval"] == pytest.approx([-0.1, -0.1])
    assert claims.as_estimate(paired).value == pytest.approx(-0.1)


def test_best_so_far_rises_to_the_kept_maximum_in_every_order():
    harm = np.array([0.1, 0.7, 0.3, 0.9])
    kept = np.array([True, True, True, False])
    curves = arena.best_so_far(harm, kept, n_orders=10)
    assert curves.shape == (10, 4)
    assert np.all(curves[:, -1] == 0.7)
    assert np.all(np.diff(np.nan_to_num(curves, nan=-1.0), axis=1) >= 0)
    summary = arena.best_so_far_summary(curves)
    assert summary["tried"] == [1, 2, 3, 4] and summary["high"][-1] == 0.7


# One tiny run end to end.

TINY_DEFENCES = (("rehearsal", 0.25), ("resta", 1.0))


def tiny_run(out, **changes):
    """The arena at tiny size (2 seeds, one setting, the standard program first) with `changes`,
    run into `out`: (the experiment, its config, its numbers)."""
    from experiments import experiment
    from gravity.run.experiment import run_experiment
    from gravity.run.store import ResultStore

    chosen = experiment("arena")
    config = dataclasses.replace(
        chosen.quick(chosen.config()),
        seeds=2,
        size="tiny",
        settings=((1e-3, 0.5),),
        standard=(("adam", 1.0, 20), (1e-3, 0.5)),
        **changes,
    )
    numbers = run_experiment(
        chosen, config, out_dir=out, store=ResultStore(out / "store"), progress=False
    )
    return chosen, config, numbers


@pytest.fixture(scope="module")
def tiny_arena(tmp_path_factory):
    out = tmp_path_factory.mktemp("arena")
    chosen, config, numbers = tiny_run(
        out,
        programs=(("adam", 1.0, 20), ("sgd", 1.0, 10)),
        strengths=TINY_DEFENCES,
        n_boot=50,
    )
    return chosen, config, numbers, json.loads((out / "arena.json").read_text()), out


def test_the_tiny_arena_has_every_defence_and_the_grid(tiny_arena):
    _, _, numbers, written, _ = tiny_arena
    mlp = numbers["mlp"]
    assert set(mlp["arms"]) == {"none", "rehearsal", "resta"}
    assert numbers["grid"]["n_configurations"] == 2 and numbers["grid"]["standard"] == 0
    for arm in mlp["arms"].values():
        assert len(arm["worst_case_per_seed"]) == 2 and len(arm["standard_per_seed"]) == 2
        assert len(arm["best_so_far"]["mean"]) == 2
        assert {"mean", "interval", "configuration"} <= arm["worst_case"].keys()
    assert written["n_histories"] == 2 * 3 * 2  # programs x arms x seeds
    assert written["numbers"]["grid"] == numbers["grid"]


def test_the_standard_point_is_the_frontier_at_the_standard_configuration(tiny_arena):
    _, _, numbers, _, _ = tiny_arena
    mlp = numbers["mlp"]
    for point in mlp["frontier_standard"]:
        arm = mlp["arms"][point["name"]]
        standard = arm["standard"][frontier.HARM]
        assert point[frontier.HARM] == standard
        assert standard["mean"] == pytest.approx(np.mean(arm["standard_per_seed"]))
    none = mlp["arms"]["none"]  # its own utility bound keeps every configuration
    assert none["gain_standard_per_seed"] == [0.0, 0.0]
    assert np.all(np.array(none["worst_case_per_seed"]) >= np.array(none["standard_per_seed"]))


def test_the_claims_load_and_give_verdicts(tiny_arena):
    chosen, _, numbers, _, _ = tiny_arena
    assert chosen.claims
    for claim in chosen.claims:
        record = claims.evaluate(claim, numbers)
        assert record["verdict"] in ("supported", "not supported", "inconclusive", "cannot test")


def test_the_write_your_own_defence_example_runs():
    import re
    from pathlib import Path

    from gravity import defences

    page = (Path(__file__).resolve().parent.parent / "docs" / "defences.md").read_text()
    section = page.split("## Write your own defence", 1)[1]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    scope: dict = {}
    exec(compile(block, "docs/defences.md", "exec"), scope)
    harm = scope["harm"]
    assert set(harm) == {0.0, 9.0} and all(0.0 <= h <= 1.0 for h in harm.values())
    assert "damped" not in defences.names()  # unregistered after the block


@dataclasses.dataclass(frozen=True)
class _DampedAlignment(Defence):
    """An alignment-stage stand-in: safety-phase updates scaled by 1 / (1 + strength)."""

    acts_at_alignment = True

    def update(self, updates, state, strength, step=None):
        return jax.tree.map(lambda u: u / (1.0 + strength), updates)


def test_an_alignment_stage_defence_joins_as_one_more_program(tmp_path):
    from experiments import experiment

    chosen = experiment("arena")
    with registered(_DampedAlignment("damped_alignment", "slower safety alignment")):
        _, config, numbers = tiny_run(
            tmp_path,
            programs=(("adam", 1.0, 20),),
            strengths=(("rehearsal", 0.25),),
            alignment_strengths=(("damped_alignment", 3.0),),
            n_boot=20,
        )
        assert set(chosen.sweeps(config)) == {"mlp-during", "mlp-aligned"}
        assert chosen.sweeps(config)["mlp-aligned"].branch_after == ("helpful", "safety")
    arms = numbers["mlp"]["arms"]
    assert set(arms) == {"none", "rehearsal", "damped_alignment"}
    assert len(arms["damped_alignment"]["worst_case_per_seed"]) == 2


def test_the_figure_redrawn_from_its_json_is_the_runs_figure(tiny_arena, tmp_path):
    """`gravity plot arena` draws the same pixels from the JSON as the run drew from memory."""
    import shutil

    import matplotlib.image

    from gravity.run.experiment import prepare, redraw

    chosen, config, _, _, out = tiny_arena
    ran = tmp_path / "ran"
    shutil.copytree(out, ran, ignore=shutil.ignore_patterns("store"))
    (ran / "arena.png").unlink()
    redraw(prepare(chosen, config), ran)
    drawn = matplotlib.image.imread(ran / "arena.png")
    original = matplotlib.image.imread(out / "arena.png")
    assert drawn.shape == original.shape and np.array_equal(drawn, original)
    other = dataclasses.replace(config, n_orders=config.n_orders + 1)
    with pytest.raises(ConfigError, match="another config"):
        redraw(prepare(chosen, other), ran)


def test_a_figure_drawn_from_its_arrays_is_not_redrawn():
    from experiments import experiment
    from gravity.run.experiment import prepare, redraw

    chosen = experiment("erosion")
    with pytest.raises(ConfigError, match="draws from its sweeps' arrays"):
        redraw(prepare(chosen, chosen.quick(chosen.config())), Path("figures"))


def test_a_damaged_json_is_one_line_not_a_traceback(tiny_arena, tmp_path):
    from gravity.run.experiment import prepare, redraw

    chosen, config, _, _, _ = tiny_arena
    for text, message in (("{bad", "cannot be read"), ("[1]", "holds no numbers")):
        (tmp_path / "arena.json").write_text(text)
        with pytest.raises(ConfigError, match=message):
            redraw(prepare(chosen, config), tmp_path)
