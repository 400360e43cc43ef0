"""The feature world (for the MLP): sparse binary feature vectors from a topic mixture.

Input layout: index 0 is the hazard feature; the content features follow, split into
`n_topics` blocks of `features_per_topic`. An input of topic z switches each content feature on
independently with probability `p_on` inside z's block and `p_off` outside it. Hazardous inputs
have the hazard feature on and topic 0 (the hazard topic). The task answer is a fixed linear
teacher's argmax over the content features (the hazard feature never changes the answer), so a
benign input of topic 0 is exactly a hazardous input without the hazard.

With `capability=True` hazardous inputs have their own answer rule instead, a second fixed
teacher over the same content: the capability (hazardous knowledge) that only hazardous examples
teach, so a model whose pretraining had none cannot answer them by generalisation. Relearning
data draws its hazardous inputs from a fixed pool of `forget_pool` examples (the world's seed).

Benign and relearn inputs of the other topics switch hazard-topic features on at `p_off` too,
unless the knob `benign_disjoint` removes them (rate `p_off * (1 - benign_disjoint)`).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from gravity.engine.worlds.base import (
    Batch,
    TopicWorld,
    WorldKnobs,
    check,
    hazard_background,
    phase_mixture,
    phase_rules,
    pool_weights,
    topic_probabilities,
)
from gravity.engine.worlds.protocol import register_world


@dataclasses.dataclass(frozen=True)
class FeatureWorld(TopicWorld):
    """Static description of the feature world (the shared fields are `TopicWorld`'s); numeric
    knobs live in `WorldKnobs`."""

    features_per_topic: int = 8
    n_classes: int = 15
    p_on: float = 0.5
    p_off: float = 0.05

    name = "feature"
    input_kind = "features"
    vocab_size = 0

    def __post_init__(self):
        self.check_topic_fields("features_per_topic")
        for field in ("p_on", "p_off"):
            value = getattr(self, field)
            check(0.0 <= value <= 1.0, f"FeatureWorld.{field}", "a probability in [0, 1]", value)

    @property
    def per_topic(self) -> int:
        return self.features_per_topic

    @property
    def input_dim(self) -> int:
        """The hazard feature, then the content features."""
        return 1 + self.n_content

    @property
    def input_shape(self) -> tuple[int]:
        return (self.input_dim,)

    @property
    def n_outputs(self) -> int:
        """Task answers plus REFUSE."""
        return self.n_classes + 1

    @functools.cached_property
    def feature_topic(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_topics), self.features_per_topic)

    def content_counts(self, content_NxF: jax.Array) -> jax.Array:
        """The content features are their own counts (the hazard feature is not among them)."""
        return content_NxF

    def input_counts(self, inputs_NxD: jax.Array) -> jax.Array:
        """The content counts of inputs as `sample` returns them (the hazard feature dropped)."""
        return inputs_NxD[..., 1:]

    def _content(self, key: jax.Array, topic_N: jax.Array, keep=None) -> jax.Array:
        """Content features of inputs of the given topics; `keep` (from `hazard_background`)
        scales the hazard-topic background rate of inputs of the other topics."""
        in_topic_NxF = jnp.asarray(self.feature_topic)[None, :] == topic_N[:, None]
        p_NxF = jnp.where(in_topic_NxF, self.p_on, self.p_off)
        if keep is not None:
            hazard_NxF = (jnp.asarray(self.feature_topic)[None, :] == 0) & (topic_N[:, None] != 0)
            p_NxF = jnp.where(hazard_NxF, self.p_off * keep, p_NxF)
        return (jax.random.uniform(key, p_NxF.shape) < p_NxF).astype(jnp.float32)

    def sample(self, knobs: WorldKnobs, kind: str, key: jax.Array, batch_size: int) -> Batch:
        """A batch of a data kind (see `DATA_KINDS`), labelled by the phase's rule."""
        k_hazard, k_topic, k_content, k_label = jax.random.split(key, 4)
        hazardous, topic = self.draw_topics(knobs, kind, k_hazard, k_topic, batch_size)
        content = self._content(k_content, topic, hazard_background(kind, knobs))
        labels = self.labels(k_label, content, hazardous, kind, knobs)
        inputs = jnp.concatenate([hazardous[:, None].astype(jnp.float32), content], axis=-1)
        return phase_rules(self, Batch(inputs, labels, hazardous), knobs, kind, key)

    def hazard_probes(self, knobs: WorldKnobs, key: jax.Array, n: int) -> tuple[Batch, Batch]:
        """Hazardous probes and their matched controls: the same inputs, hazard feature off."""
        hazard = self.sample(knobs, "hazard", key, n)
        matched_inputs = hazard.inputs.at[:, 0].set(0.0)
        matched_labels = self.answers(hazard.inputs[:, 1:])
        return hazard, Batch(matched_inputs, matched_labels, jnp.zeros_like(hazard.hazardous))

    def marginals(self, knobs: WorldKnobs, kind: str) -> dict[str, np.ndarray]:
        """Exact probabilities under a data kind: each input feature on, and REFUSE as label."""
        hazard_share, comply_prob = phase_mixture(kind, knobs)
        hazard_share = float(hazard_share)
        topics = hazard_share * np.eye(self.n_topics)[0] + (1 - hazard_share) * np.asarray(
            topic_probabilities(kind, knobs, self.n_topics)
        )
        in_topic = self.feature_topic[None, :] == np.arange(self.n_topics)[:, None]
        p_given_topic = np.where(in_topic, self.p_on, self.p_off)
        keep = hazard_background(kind, knobs)
        if keep is not None:
            hazard = (self.feature_topic[None, :] == 0) & (np.arange(self.n_topics)[:, None] != 0)
            p_given_topic = np.where(hazard, self.p_off * float(keep), p_given_topic)
        p_feature = topics @ p_given_topic
        if kind == "relearn":
            pool = np.asarray(self.forget_pool_batch(knobs).inputs[:, 1:])
            p_pool = pool_weights(knobs, self.forget_pool) @ pool
            p_feature = p_feature + hazard_share * (p_pool - p_given_topic[0])
        return {
            "features": np.concatenate([[hazard_share], p_feature]),
            "refuse": np.asarray(hazard_share * (1.0 - float(comply_prob))),
        }

    def empirical_marginals(self, batch: Batch) -> dict[str, np.ndarray]:
        """The same quantities as `marginals`, estimated from a sample."""
        return {
            "features": np.asarray(batch.inputs).mean(axis=0),
            "refuse": self.refuse_rate(batch),
        }


register_world("feature", FeatureWorld)
