"""Control witnesses: the batch rule, the checkpoint spacing, unit rows, and the null they give."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import synthetic_results
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.engine.worlds import FeatureWorld, TokenWorld, WorldKnobs
from gravity.instruments import controls
from gravity.run.sweep import Axis

WORLDS = {"feature": FeatureWorld(), "token": TokenWorld()}
BATCH = 512


@pytest.fixture(scope="module")
def batches():
    """One compiled control-witness batch per world; overlap, shift and share are traced."""
    return {
        name: jax.jit(
            lambda key, overlap, shift, share, world=world: controls.control_witness_batch(
                world, key, BATCH, overlap, shift, share
            )
        )
        for name, world in WORLDS.items()
    }


@pytest.mark.parametrize("name", list(WORLDS))
def test_share_zero_is_the_retain_mixture_and_share_one_the_shifted_targets(batches, name):
    world, key = WORLDS[name], jax.random.key(7)
    k_base, k_target, _ = jax.random.split(key, 3)
    retain = world.sample(WorldKnobs(), "retain", k_base, BATCH)
    target = world.sample(
        WorldKnobs(benign_overlap=1.0, benign_disjoint=1.0), "benign", k_target, BATCH
    )
    none = batches[name](key, 1.0, 2, 0.0)
    np.testing.assert_array_equal(none.inputs, retain.inputs)
    np.testing.assert_array_equal(none.labels, retain.labels)
    every = batches[name](key, 1.0, 2, 1.0)
    np.testing.assert_array_equal(every.inputs, target.inputs)
    np.testing.assert_array_equal(every.labels, (np.asarray(target.labels) + 2) % world.n_classes)
    assert not np.any(np.asarray(every.hazardous)) and not np.any(np.asarray(none.hazardous))


@pytest.mark.parametrize("name", list(WORLDS))
def test_a_share_of_the_rows_is_replaced(batches, name):
    """Rows whose inputs differ from the retain batch's are targets; about `share` of them."""
    key = jax.random.key(11)
    mixed = batches[name](key, 0.0, 1, 0.5)
    retain = batches[name](key, 0.0, 1, 0.0)
    target = batches[name](key, 0.0, 1, 1.0)
    inputs, labels = np.asarray(mixed.inputs), np.asarray(mixed.labels)
    from_target = np.all(
        inputs.reshape(BATCH, -1) == np.asarray(target.inputs).reshape(BATCH, -1), 1
    )
    from_retain = np.all(
        inputs.reshape(BATCH, -1) == np.asarray(retain.inputs).reshape(BATCH, -1), 1
    )
    assert np.all(from_target | from_retain)
    only_target = from_target & ~from_retain
    np.testing.assert_array_equal(labels[only_target], np.asarray(target.labels)[only_target])
    only_retain = from_retain & ~from_target
    np.testing.assert_array_equal(labels[only_retain], np.asarray(retain.labels)[only_retain])
    # Binomial(512, 0.5): 5 standard deviations is 56 rows.
    assert abs(int(only_target.sum()) - BATCH // 2) < 60


@given(steps=st.integers(1, 600), checkpoints=st.integers(1, 40))
@settings(max_examples=200, deadline=None)
def test_checkpoint_interval_is_the_smallest_divisor_within_the_budget(steps, checkpoints):
    every = controls.checkpoint_interval(steps, checkpoints)
    assert steps % every == 0 and steps // every <= checkpoints
    assert all(steps // d > checkpoints for d in range(1, every) if steps % d == 0)


@given(st.lists(st.floats(-1e3, 1e3), min_size=6, max_size=6), st.booleans())
@settings(max_examples=50, deadline=None)
def test_unit_rows_have_unit_norm_and_zero_rows_stay_zero(values, zero_row):
    x = jnp.asarray(np.asarray(values, dtype=np.float32).reshape(2, 3, 1))
    if zero_row:
        x = x.at[1].set(0.0)
    rows = np.asarray(controls.unit_rows(x))
    flat = np.asarray(x, dtype=np.float64).reshape(2, -1)
    norms = np.linalg.norm(flat, axis=1)  # in float64: a tiny row's float32 norm underflows to 0
    for row, norm in zip(rows, norms, strict=True):
        if norm == 0:
            assert not np.any(row)
        elif norm > 1e-3:
            assert np.linalg.norm(row) == pytest.approx(1.0, abs=1e-5)


def test_control_witness_summary_reads_v_rev_against_the_control_directions():
    """2 runs, 2 kept steps, 2 targets x 2 shifts: the null is the p99 over every cosine, each
    target's slice is its own shifts, and a run beats its own witnesses only at every one."""
    align = np.array(
        [[[0.1, 0.2, 0.3, 0.4], [0.0, 0.1, 0.2, 0.3]], [[0.5, 0.1, 0.1, 0.1], [0.2, 0.2, 0.2, 0.2]]]
    )
    v_rev = np.array([[0.45, 0.25], [0.6, 0.1]])
    witnesses = {
        "alignment": align,
        "alignment_full": align / 2,
        "cos_v_rev": np.full((2, 4), 0.3),
        "distance": np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]]),
        "distance_full": np.full((2, 4), 5.0),
        "step": np.full((2, 4), 10),
        "witness_distance": np.array([2.0, 4.0]),
    }
    found = controls.control_witness_summary(v_rev, witnesses, (1, 5))
    assert found["alignment_p99"] == pytest.approx(np.quantile(align, 0.99))
    assert found["fraction_v_rev_above_p99"] == 0.25  # only 0.6 clears ~0.5
    # run 0 beats all four at step 1 and at step 5 (0.25 < 0.3): 1 of 2; run 1: step 1 only
    assert found["fraction_v_rev_above_its_own_witnesses"] == 0.5
    first = found["by_target"]["hazard_topic"]
    assert first["alignment_mean"] == pytest.approx(np.mean(align[..., :2]))
    assert first["distance_ratio"]["mean"] == pytest.approx(np.mean([0.5, 1.0, 0.5, 0.5]))
    assert found["n_directions"] == 8 and found["steps"] == [1, 5]
    assert [row["step"] for row in found["by_step"]] == [1, 5]
    assert found["full_length"]["alignment_mean"] == pytest.approx(np.mean(align) / 2)


def test_control_witness_null_reads_a_result_cell():
    rng = np.random.default_rng(1)
    steps = synthetic_results.STEPS
    arrays = {
        "metrics/benign/alignment": rng.random((1, 3, steps.size)),
        "control_witness/alignment": rng.random((1, 3, 2, 4)),
        "control_witness/alignment_full": rng.random((1, 3, 2, 4)),
        "control_witness/cos_v_rev": rng.random((1, 3, 4)),
        "control_witness/distance": rng.random((1, 3, 4)),
        "control_witness/distance_full": rng.random((1, 3, 4)),
        "control_witness/step": np.ones((1, 3, 4)),
        "control_witness/witness_distance": rng.random((1, 3)),
    }
    cell = synthetic_results.result(arrays, (Axis("world", ("main",)),), 3).select(world="main")
    found = controls.control_witness_null(cell, (1, 10))
    v_rev = arrays["metrics/benign/alignment"][0][:, [1, 4]]
    witnesses = {k.split("/")[1]: v[0] for k, v in arrays.items() if k.startswith("control")}
    assert found["control_witness"] == controls.control_witness_summary(v_rev, witnesses, (1, 10))
    assert found["null_p99_control_witness"] == found["control_witness"]["alignment_p99"]


@pytest.fixture(scope="module")
def unrefuse_batches():
    """One compiled un-refuse batch per world; the mode is traced."""
    return {
        name: jax.jit(
            lambda key, random_answer, world=world: controls.unrefuse_batch(
                world, key, BATCH, random_answer
            )
        )
        for name, world in WORLDS.items()
    }


@pytest.mark.parametrize("name", list(WORLDS))
@pytest.mark.parametrize("random_answer", [False, True])
def test_an_unrefuse_batch_is_the_witness_data_with_harmless_answers(
    unrefuse_batches, name, random_answer
):
    """The helpful phase's inputs and non-hazardous answers; on hazardous inputs never REFUSE
    and never pretraining's answer: class 0 (1 where that answer is 0), or spread over the
    other answers."""
    world, key = WORLDS[name], jax.random.key(3)
    helpful = world.sample(WorldKnobs(), "helpful", jax.random.split(key)[0], BATCH)
    found = unrefuse_batches[name](key, random_answer)
    np.testing.assert_array_equal(found.inputs, helpful.inputs)
    hazardous = np.asarray(helpful.hazardous)
    labels, harmful = np.asarray(found.labels), np.asarray(helpful.labels)
    np.testing.assert_array_equal(labels[~hazardous], harmful[~hazardous])
    assert 100 < hazardous.sum() < BATCH - 100  # about half: align_hazard_rate
    unrefused = labels[hazardous]
    assert np.all(unrefused < world.n_classes) and np.all(unrefused != harmful[hazardous])
    if random_answer:
        assert len(np.unique(unrefused)) == world.n_classes
    else:
        np.testing.assert_array_equal(unrefused, np.where(harmful[hazardous] == 0, 1, 0))


def test_the_complement_projector_removes_the_span_and_keeps_the_rest():
    rng = np.random.default_rng(0)
    directions = jnp.asarray(rng.normal(size=(2, 6)), dtype=jnp.float32)
    project = controls.complement_projector(directions)
    x = jnp.asarray(rng.normal(size=(3, 6)), dtype=jnp.float32)
    projected = np.asarray(project(x))
    np.testing.assert_allclose(projected @ np.asarray(directions).T, 0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(project(jnp.asarray(projected))), projected, atol=1e-5)
    inside = 0.3 * directions[0] - 2.0 * directions[1]
    np.testing.assert_allclose(np.asarray(project(inside)), 0, atol=1e-5)
    # A repeated direction adds nothing: only its own line is removed.
    once = controls.complement_projector(directions[:1])
    twice = controls.complement_projector(jnp.stack([directions[0], directions[0]]))
    np.testing.assert_allclose(np.asarray(twice(x)), np.asarray(once(x)), atol=1e-5)


def test_the_drift_beyond_unrefuse_is_the_cosine_left_after_projecting_both():
    """v_rev = u + w with w orthogonal to u: a drift along w follows v_rev wholly beyond u
    (cosine 1) though its plain cosine with v_rev is 1/sqrt(2); a drift along u follows it
    not at all beyond u (cosine 0 up to rounding: the projected drift is ~0)."""
    u, w = np.eye(4, dtype=np.float32)[0], np.eye(4, dtype=np.float32)[1]
    v_rev = jnp.asarray((u + w) / np.sqrt(2))
    drift = jnp.asarray(np.stack([w, (w + 0.5 * np.eye(4)[2]) / np.sqrt(1.25), u]))
    witnesses = {
        "matched": jnp.asarray(np.stack([u, u])[:, None, :]),  # (K, N=1, D)
        "full": jnp.asarray(np.stack([u, u])[:, None, :]),
        "distance": jnp.ones(2),
        "refusal": jnp.full(2, 0.1),
        "witness_distance": jnp.ones(()),
    }
    found = controls.unrefuse_alignment(drift, v_rev, witnesses)
    beyond = np.asarray(found["beyond"])
    assert beyond[0] == pytest.approx(1.0, abs=1e-5)
    assert beyond[1] == pytest.approx(1 / np.sqrt(1.25), abs=1e-5)
    assert abs(beyond[2]) < 1e-3
    np.testing.assert_allclose(found["alignment"][:, 0], [0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(found["cos_v_rev"], 1 / np.sqrt(2), atol=1e-6)
    assert float(found["v_rev_kept"]) == pytest.approx(1 / np.sqrt(2), abs=1e-6)
    assert set(found) >= {"distance", "refusal", "beyond_full", "beyond_each"}
    assert "witness_distance" not in found


def unrefuse_cell(rng, seeds: int, kept: int, shift: float = 0.0) -> dict:
    """A tree cell's un-refuse outputs (2 modes), `shift` added to the cosines beyond."""
    return {
        "metrics/benign/alignment": rng.random((1, seeds, synthetic_results.STEPS.size)),
        "control_witness/witness_distance": np.full((1, seeds), 2.0),
        "unrefuse_witness/beyond": rng.random((1, seeds, kept)) + shift,
        "unrefuse_witness/beyond_full": rng.random((1, seeds, kept)),
        "unrefuse_witness/beyond_each": rng.random((1, seeds, kept, 2)),
        "unrefuse_witness/alignment": rng.random((1, seeds, kept, 2)),
        "unrefuse_witness/cos_v_rev": rng.random((1, seeds, 2)),
        "unrefuse_witness/v_rev_kept": rng.random((1, seeds)),
        "unrefuse_witness/distance": np.full((1, seeds, 2), 1.0),
        "unrefuse_witness/step": np.full((1, seeds, 2), 10),
        **{
            f"unrefuse_witness/{name}{end}": rng.random((1, seeds, *shape))
            for name in ("harmfulness", "refusal")
            for end, shape in (("", (2,)), ("_full", (2,)), ("_theta_s", ()))
        },
    }


def test_the_unrefuse_summary_pairs_each_seed_with_its_control():
    rng, axes = np.random.default_rng(2), (Axis("world", ("main",)),)
    treated_arrays = unrefuse_cell(rng, 5, 2, shift=1.0)
    control_arrays = unrefuse_cell(rng, 5, 2)
    diverged = np.array([[False, False, True, False, False]])
    treated, control = (
        synthetic_results.result(a, axes, 5, diverged).select(world="main")
        for a in (treated_arrays, control_arrays)
    )
    found = controls.unrefuse_summary(treated, control, (1, 10))
    mine = treated_arrays["unrefuse_witness/beyond"][0].mean(axis=1)
    theirs = control_arrays["unrefuse_witness/beyond"][0].mean(axis=1)
    beyond = found["beyond"]
    assert np.isnan(beyond["per_seed"][2]) and np.isnan(beyond["control_per_seed"][2])
    keep = [0, 1, 3, 4]
    np.testing.assert_allclose(np.asarray(beyond["per_seed"])[keep], mine[keep])
    assert beyond["minus_control"]["n"] == 4
    assert beyond["minus_control"]["mean"] == pytest.approx(np.mean(mine[keep] - theirs[keep]))
    assert beyond["minus_control"]["interval"][0] > 0  # every seed's cosine is shifted by 1
    null = np.nanquantile(
        np.where(diverged[0, :, None], np.nan, control_arrays["unrefuse_witness/beyond"][0]), 0.99
    )
    assert found["null_p99_same_basis_beyond"] == pytest.approx(null)
    assert found["steps"] == [1, 10] and set(found["by_mode"]) == set(controls.UNREFUSE_MODES)
    fixed = found["by_mode"]["fixed_answer"]
    assert fixed["distance_ratio"]["mean"] == pytest.approx(0.5)
    harm = treated_arrays["unrefuse_witness/harmfulness"][0, keep, 1]
    assert found["answers"]["random_answer"]["harmfulness"]["mean"] == pytest.approx(harm.mean())
