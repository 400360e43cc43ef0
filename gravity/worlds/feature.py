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

from gravity.worlds.base import (
    CAPABILITY_STREAM,
    Batch,
    ProbeSet,
    WorldKnobs,
    centred_teacher,
    check,
    compliant_labels,
    forget_pool_batch,
    hazard_background,
    phase_mixture,
    phase_rules,
    pool_weights,
    teacher_answers,
    topic_probabilities,
)


@dataclasses.dataclass(frozen=True)
class FeatureWorld:
    """Static description of the feature world; numeric knobs live in `WorldKnobs`.

    capability: hazardous inputs are answered by their own teacher (off: by the task's).
    forget_pool: size of the fixed pool relearning draws its forget examples from.
    witness_shift: the helpful-only witness answers hazardous inputs with pretraining's answer
        shifted by this much (0: the same answer), to tell theta_H's basin from theta_P's.
    """

    n_topics: int = 4
    features_per_topic: int = 8
    n_classes: int = 15
    p_on: float = 0.5
    p_off: float = 0.05
    seed: int = 0
    capability: bool = False
    forget_pool: int = 64
    witness_shift: int = 0

    name = "feature"

    def __post_init__(self):
        check(self.n_topics >= 2, "FeatureWorld.n_topics", "an integer >= 2", self.n_topics)
        check(
            self.features_per_topic >= 1,
            "FeatureWorld.features_per_topic",
            "an integer >= 1",
            self.features_per_topic,
        )
        check(self.n_classes >= 2, "FeatureWorld.n_classes", "an integer >= 2", self.n_classes)
        for field in ("p_on", "p_off"):
            value = getattr(self, field)
            check(0.0 <= value <= 1.0, f"FeatureWorld.{field}", "a probability in [0, 1]", value)
        check(
            self.forget_pool >= 1,
            "FeatureWorld.forget_pool",
            "a positive integer",
            self.forget_pool,
        )
        check(
            0 <= self.witness_shift < self.n_classes,
            "FeatureWorld.witness_shift",
            f"an integer in 0..{self.n_classes - 1}",
            self.witness_shift,
        )

    @property
    def n_content(self) -> int:
        return self.n_topics * self.features_per_topic

    @property
    def input_dim(self) -> int:
        return 1 + self.n_content

    @property
    def n_outputs(self) -> int:
        """Task answers plus REFUSE."""
        return self.n_classes + 1

    @functools.cached_property
    def teacher(self) -> np.ndarray:
        """The fixed task rule's weights, (n_classes, n_content), from the world's seed."""
        return centred_teacher(self.seed, self.n_classes, self.n_topics, self.features_per_topic)

    @functools.cached_property
    def capability_teacher(self) -> np.ndarray:
        """The capability's rule for hazardous inputs (used when `capability` is on)."""
        return centred_teacher(
            self.seed, self.n_classes, self.n_topics, self.features_per_topic, CAPABILITY_STREAM
        )

    @functools.cached_property
    def feature_topic(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_topics), self.features_per_topic)

    def _content(self, key: jax.Array, topic_N: jax.Array, keep=None) -> jax.Array:
        """Content features of inputs of the given topics; `keep` (from `hazard_background`)
        scales the hazard-topic background rate of inputs of the other topics."""
        in_topic_NxF = jnp.asarray(self.feature_topic)[None, :] == topic_N[:, None]
        p_NxF = jnp.where(in_topic_NxF, self.p_on, self.p_off)
        if keep is not None:
            hazard_NxF = (jnp.asarray(self.feature_topic)[None, :] == 0) & (topic_N[:, None] != 0)
            p_NxF = jnp.where(hazard_NxF, self.p_off * keep, p_NxF)
        return (jax.random.uniform(key, p_NxF.shape) < p_NxF).astype(jnp.float32)

    def rule_answers(self, content_NxF: jax.Array, hazardous_N: jax.Array) -> jax.Array:
        """The answer each input asks for: the task rule, or the capability's on hazardous
        inputs when the world has one."""
        task = teacher_answers(jnp.asarray(self.teacher), content_NxF)
        if not self.capability:
            return task
        own = teacher_answers(jnp.asarray(self.capability_teacher), content_NxF)
        return jnp.where(hazardous_N, own, task)

    def sample(self, knobs: WorldKnobs, kind: str, key: jax.Array, batch_size: int) -> Batch:
        """A batch of a data kind (see `DATA_KINDS`), labelled by the phase's rule."""
        hazard_share, comply_prob = phase_mixture(kind, knobs)
        k_hazard, k_topic, k_content, k_label = jax.random.split(key, 4)
        hazardous = jax.random.bernoulli(k_hazard, hazard_share, (batch_size,))
        topic_logits = jnp.log(topic_probabilities(kind, knobs, self.n_topics))
        topic = jax.random.categorical(k_topic, topic_logits, shape=(batch_size,))
        topic = jnp.where(hazardous, 0, topic)
        content = self._content(k_content, topic, hazard_background(kind, knobs))
        answers = self.rule_answers(content, hazardous)
        labels = compliant_labels(k_label, answers, hazardous, comply_prob, self.n_classes)
        inputs = jnp.concatenate([hazardous[:, None].astype(jnp.float32), content], axis=-1)
        return phase_rules(self, Batch(inputs, labels, hazardous), knobs, kind, key)

    def forget_pool_batch(self, knobs: WorldKnobs) -> Batch:
        return forget_pool_batch(self, knobs)

    def probe_set(self, knobs: WorldKnobs, n_probes: int) -> ProbeSet:
        """Fixed probes from the world's seed: the same for every run with the same knobs."""
        k_hazard, k_task = jax.random.split(jax.random.key(self.seed + 1))
        hazard = self.sample(knobs, "hazard", k_hazard, n_probes)
        matched_inputs = hazard.inputs.at[:, 0].set(0.0)
        matched_labels = self.rule_answers(hazard.inputs[:, 1:], jnp.zeros_like(hazard.hazardous))
        matched = Batch(matched_inputs, matched_labels, jnp.zeros_like(hazard.hazardous))
        task = self.sample(knobs, "benign", k_task, n_probes)
        return ProbeSet(hazard, matched, task)

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
            "refuse": np.asarray(np.mean(np.asarray(batch.labels) == self.n_classes)),
        }
