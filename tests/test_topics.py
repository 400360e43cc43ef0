"""Tests for gravity.instruments.topics and .knob_response: topic mixtures against their closed
forms, and the response of runs to a knob on data with a known trend."""

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.engine.worlds import WorldKnobs
from gravity.instruments import knob_response, topics


@settings(max_examples=30, deadline=None)
@given(hazard_rate=st.floats(0.0, 0.9), n_topics=st.integers(2, 8), overlap=st.floats(0.0, 1.0))
def test_topic_mixtures_are_distributions_and_match_at_the_matching_overlap(
    hazard_rate, n_topics, overlap
):
    knobs = WorldKnobs(hazard_rate=hazard_rate, benign_overlap=overlap)
    for kind in ("pretrain", "benign"):
        mixture = topics.topic_mixture(kind, knobs, n_topics)
        assert mixture.shape == (n_topics,) and mixture.sum() == pytest.approx(1.0, abs=1e-6)
    # Benign data puts `overlap` on the hazard topic and spreads the rest evenly.
    distance = topics.mixture_distance("pretrain", "benign", knobs, n_topics)
    matching = topics.matching_overlap(knobs, n_topics)
    assert distance == pytest.approx(abs(overlap - matching), abs=1e-6)
    at_matching = WorldKnobs(hazard_rate=hazard_rate, benign_overlap=matching)
    assert topics.mixture_distance("pretrain", "benign", at_matching, n_topics) < 1e-6


def test_monotone_response_reads_rank_trend_and_end_means():
    levels = (0.0, 0.5, 1.0)
    values = np.array([[0.1, 0.2, np.nan], [0.3, 0.4, 0.5], [0.6, 0.7, 0.8]])
    out = knob_response.monotone_response(values, levels)
    x = np.repeat(levels, 3).reshape(3, 3)
    ok = np.isfinite(values)
    reference = scipy.stats.spearmanr(x[ok], values[ok])
    assert out["spearman"] == {"rho": reference.statistic, "p": reference.pvalue}
    assert out["spearman"]["rho"] > 0.9
    assert out["mean_first"] == pytest.approx(0.15) and out["mean_last"] == pytest.approx(0.7)
    assert out["monotone_increasing"]
    flat = knob_response.monotone_response(values[::-1], levels)
    assert flat["spearman"]["rho"] < 0 and not flat["monotone_increasing"]
    assert math.isfinite(flat["spearman"]["p"])
