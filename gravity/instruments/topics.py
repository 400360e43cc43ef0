"""Topic mixtures of a world's data kinds: the share of a kind's inputs on each topic, hazardous
inputs counted on the hazard's topic 0 (`gravity.engine.worlds.base.phase_mixture` gives their
share, `topic_probabilities` the topics of the rest), and how far two kinds' mixtures are apart. The
benign overlap knob moves benign data between the hazard's topic and the others, so these say
how close a benign distribution is to pretraining's."""

from __future__ import annotations

import numpy as np

from gravity.engine.worlds.base import WorldKnobs, phase_mixture, topic_probabilities


def topic_mixture(kind: str, knobs: WorldKnobs, n_topics: int) -> np.ndarray:
    """(n_topics,) topic distribution of a data kind's inputs, hazardous ones on topic 0."""
    hazard_share, _ = phase_mixture(kind, knobs)
    rest = np.asarray(topic_probabilities(kind, knobs, n_topics))
    return float(hazard_share) * np.eye(n_topics)[0] + (1 - float(hazard_share)) * rest


def mixture_distance(kind_a: str, kind_b: str, knobs: WorldKnobs, n_topics: int) -> float:
    """Total-variation distance between two data kinds' topic mixtures (0: the same topics)."""
    a, b = topic_mixture(kind_a, knobs, n_topics), topic_mixture(kind_b, knobs, n_topics)
    return float(0.5 * np.abs(a - b).sum())


def matching_overlap(knobs: WorldKnobs, n_topics: int) -> float:
    """The benign overlap at which benign data has pretraining's share of hazard-topic inputs:
    its hazardous share plus the hazard topic's part of the rest."""
    hazard_share = float(knobs.hazard_rate)
    return hazard_share + (1 - hazard_share) / n_topics
