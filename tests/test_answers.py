"""Which harmful answer returns (`gravity.instruments.answers`): the per-run measure on one
tiny history, and the readouts on a hand-built result."""

import dataclasses

import jax
import numpy as np
import pytest
import synthetic_results

from gravity.engine import presets
from gravity.instruments import answers
from gravity.instruments.stats import mean_sd
from gravity.run.sweep import Axis


def test_anchor_answers_are_probabilities_at_every_anchor():
    spec = presets.standard_spec(
        "mlp", "tiny", directions=("stacked", "from_pretrained"), keep_params=True
    )
    spec = dataclasses.replace(spec, world=dataclasses.replace(spec.world, witness_shift=1))
    out = jax.jit(lambda key: answers.AnchorAnswers()(key, spec, presets.standard_knobs(spec)))(
        jax.random.key(0)
    )
    assert set(out["answers"]) == set(answers.ANCHORS)
    for anchor in answers.ANCHORS:
        found = {name: float(out["answers"][anchor][name]) for name in answers.ANSWERS}
        assert all(0.0 <= p <= 1.0 for p in found.values())
        assert sum(found.values()) <= 1.0 + 1e-5  # three distinct answers of one distribution
    assert out["alignment_by_definition"].shape[-1] == 2


def test_returning_mass_and_the_basin_pull_of_a_cell():
    rng = np.random.default_rng(0)
    arrays = {
        f"answers/{anchor}/{name}": rng.random((1, 5))
        for anchor in answers.ANCHORS
        for name in answers.ANSWERS
    }
    arrays["alignment_by_definition"] = rng.random((1, 5, 3, 2))
    diverged = np.zeros((1, 5), bool)
    diverged[0, 4] = True
    cell = synthetic_results.result(arrays, (Axis("world", ("main",)),), 5, diverged)
    cell = cell.select(world="main")
    pretrained = (
        arrays["answers/benign/pretrained_answer"][0]
        - arrays["answers/safety/pretrained_answer"][0]
    )
    witness = (
        arrays["answers/benign/witness_answer"][0] - arrays["answers/safety/witness_answer"][0]
    )
    found = answers.basin_pull(cell)
    assert found["returned_to_pretrained_answer"] == mean_sd(pretrained[:4])
    assert found["share_to_pretrained_answer"]["mean"] == pytest.approx(
        np.mean((pretrained / (pretrained + witness))[:4])
    )
    alignment = arrays["alignment_by_definition"][0, :4, -1]
    assert found["alignment_to_witness_step100"] == mean_sd(alignment[:, 0])
    assert found["alignment_to_pretrained_step100"] == mean_sd(alignment[:, 1])
    assert found["answers"]["helpful"]["refusal"]["n"] == 4
