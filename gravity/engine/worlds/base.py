"""What every synthetic world shares: the numeric knobs, the phases' data kinds, validation.

A world is a frozen description of distributions with explicit probabilities. Its static part
(sizes, seed) is a hashable dataclass; its numeric knobs live in `WorldKnobs`, a pytree that
`jax.vmap` can sweep. Labels follow one convention in every world: `0 .. n_classes - 1` are task
answers and `n_classes` is REFUSE. Harmfulness is compliance: on a hazardous input the harmful
behaviour is giving the task answer (docs/design.md explains why there is no separate HARM class).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gravity.validation import check, check_choice

DATA_KINDS = ("pretrain", "helpful", "safety", "benign", "hazard", "retain", "unlearn", "relearn")
"""The data each phase can train on.

- pretrain: the pretraining mixture; hazardous inputs (rate `hazard_rate`) are answered
  harmfully (complied with) with probability `harm_prob`, else refused.
- helpful: the helpful-only witness theta_H; hazardous share `align_hazard_rate`, everything
  complied with.
- safety: safety alignment; the same inputs, hazardous ones labelled REFUSE.
- benign: harmless task data from the benign distribution; never contains the hazard.
- hazard: hazardous inputs only, complied with (relearning / reverse fine-tuning).
- retain: the non-hazardous part of the pretraining mixture (unlearning's retain set).
- unlearn: unlearning's data, the forget set (hazardous inputs, complied with) mixed with the
  retain set, hazardous share `align_hazard_rate`; objectives split them by `Batch.hazardous`.
- relearn: relearning data: with probability `relearn_forget_share` one of the first
  `relearn_examples` inputs of the world's fixed forget pool (hazardous, complied with; cycled),
  else a non-hazardous input whose topic follows `benign_overlap` (1: the hazard's topic without
  the hazard, "related"; 0: other topics only, "unrelated").
"""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class WorldKnobs:
    """The numeric knobs of a world that the theory cares about; each can be vmapped.

    hazard_rate: share of hazardous inputs in pretraining (the "mass" of the harmful basin).
    harm_prob: probability that pretraining answers a hazardous input by complying.
    benign_overlap: share of benign inputs drawn from the hazard topic, i.e. sharing content
        features with hazardous inputs (0: disjoint, 1/n_topics: like pretraining, 1: all).
    align_hazard_rate: share of hazardous inputs in the helpful-only, safety and unlearn data.
    relearn_forget_share: share of relearning inputs taken from the fixed forget pool.
    relearn_examples: how many of the pool's examples relearning cycles through (k; at most the
        world's `forget_pool`).
    benign_disjoint: how much hazard-topic content benign and relearn inputs of the *other*
        topics lose. Such an input carries hazard-topic features (tokens) at the world's
        background rate; each is removed (the token redrawn from the other topics' blocks) with
        this probability. 0 (the default) keeps the background rate, bit for bit as before the
        knob existed; 1 leaves none, so `benign_overlap = 0` is truly disjoint from the hazard
        topic. Inputs of the hazard topic itself (a share `benign_overlap`) are unchanged.
    """

    hazard_rate: jax.Array | float = 0.2
    harm_prob: jax.Array | float = 0.9
    benign_overlap: jax.Array | float = 0.5
    align_hazard_rate: jax.Array | float = 0.5
    relearn_forget_share: jax.Array | float = 0.0
    relearn_examples: jax.Array | int = 1
    benign_disjoint: jax.Array | float = 0.0

    def validate(self) -> WorldKnobs:
        """Check concrete values (probabilities, a positive count); traced values pass through."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, jax.core.Tracer):
                continue
            array = np.asarray(value, dtype=float)
            if field.name == "relearn_examples":
                check(
                    bool(np.all((array >= 1) & (array == np.round(array)))),
                    f"WorldKnobs.{field.name}",
                    "a positive integer",
                    value,
                )
                continue
            check(
                bool(np.all((array >= 0.0) & (array <= 1.0))),
                f"WorldKnobs.{field.name}",
                "a probability in [0, 1]",
                value,
            )
        return self


class Batch(NamedTuple):
    """Inputs and integer labels (`n_classes` means REFUSE), plus whether each is hazardous."""

    inputs: jax.Array
    labels: jax.Array
    hazardous: jax.Array


class ProbeSet(NamedTuple):
    """The fixed, seeded evaluation sets every measurement uses.

    hazard: hazardous probes labelled with the task answer (the compliant, harmful one).
    matched: the same inputs with the hazard removed: the matched benign control for
        hazard-specific drift.
    task: probes from the benign distribution, with their task answers.
    """

    hazard: Batch
    matched: Batch
    task: Batch


def check_data_kind(kind: str) -> None:
    check_choice(kind, DATA_KINDS, "data")


def teacher_answers(teacher_CxF: jax.Array, counts_NxF: jax.Array) -> jax.Array:
    """The task rule: the class whose teacher row scores the input's content highest."""
    return jnp.argmax(counts_NxF @ teacher_CxF.T, axis=-1)


def phase_mixture(kind: str, knobs: WorldKnobs) -> tuple[jax.Array | float, jax.Array | float]:
    """(hazardous share, probability a hazardous input is complied with) for a data kind."""
    check_data_kind(kind)
    return {
        "pretrain": (knobs.hazard_rate, knobs.harm_prob),
        "helpful": (knobs.align_hazard_rate, 1.0),
        "safety": (knobs.align_hazard_rate, 0.0),
        "benign": (0.0, 1.0),
        "hazard": (1.0, 1.0),
        "retain": (0.0, 1.0),
        "unlearn": (knobs.align_hazard_rate, 1.0),
        "relearn": (knobs.relearn_forget_share, 1.0),
    }[kind]


def topic_probabilities(kind: str, knobs: WorldKnobs, n_topics: int) -> jax.Array:
    """The topic distribution of a data kind's *non-hazardous* inputs (topic 0 is the hazard's).

    Pretraining, helpful, safety, retain and unlearn data draw topics uniformly; benign and
    relearn data draw the hazard topic with probability `benign_overlap`, the others uniformly
    otherwise.
    """
    uniform = jnp.full((n_topics,), 1.0 / n_topics)
    if kind not in ("benign", "relearn"):
        return uniform
    overlap = jnp.asarray(knobs.benign_overlap, dtype=jnp.float32)
    rest = (1.0 - overlap) / (n_topics - 1)
    return jnp.concatenate([overlap[None], jnp.full((n_topics - 1,), rest)])


DISJOINT_KINDS = ("benign", "relearn")


def hazard_background(kind: str, knobs: WorldKnobs) -> jax.Array | None:
    """The factor on the hazard-topic background content of a data kind's inputs of the other
    topics: 1 - `benign_disjoint` for benign and relearn data, None (untouched) for the rest."""
    if kind not in DISJOINT_KINDS:
        return None
    return 1.0 - jnp.asarray(knobs.benign_disjoint, dtype=jnp.float32)


def compliant_labels(
    key: jax.Array, answers: jax.Array, hazardous: jax.Array, comply_prob, n_classes: int
) -> jax.Array:
    """Task answers, except that hazardous inputs are refused with probability 1 - comply_prob."""
    comply = jax.random.bernoulli(key, comply_prob, answers.shape)
    return jnp.where(hazardous & ~comply, n_classes, answers)


TASK_STREAM = 7919
CAPABILITY_STREAM = 104_729
DECOY_STREAM = 1_299_709
FORGET_POOL_TAG = 0x464F5247  # "FORG": the fixed forget pool's key, fold_in(world seed, tag)
DISJOINT_TAG = 0x444A4E54  # "DJNT": redrawn background tokens' key, fold_in(content key, tag)


def centred_teacher(
    seed: int, n_classes: int, n_topics: int, per_topic: int, stream: int = TASK_STREAM
) -> np.ndarray:
    """Random teacher weights, (n_classes, n_topics * per_topic), centred within each topic's
    block so that the topic alone does not decide the answer: which content is present does.
    `stream` separates independent teachers of one world (the task's, the capability's)."""
    rng = np.random.default_rng([seed, stream])
    weights = rng.standard_normal((n_classes, n_topics, per_topic))
    weights -= weights.mean(axis=2, keepdims=True)
    return weights.reshape(n_classes, n_topics * per_topic).astype(np.float32)


def pool_rows(key: jax.Array, knobs: WorldKnobs, batch_size: int, pool_size: int) -> jax.Array:
    """Indices into the forget pool for one relearning batch: its first k examples, cycled from
    a random offset, so every example of the k appears equally often."""
    k = jnp.clip(jnp.asarray(knobs.relearn_examples, dtype=jnp.int32), 1, pool_size)
    offset = jax.random.randint(key, (), 0, k)
    return (offset + jnp.arange(batch_size)) % k


def from_pool(batch: Batch, pool: Batch, rows: jax.Array) -> Batch:
    """`batch` with its hazardous rows replaced by the pool's examples at `rows`."""
    take = batch.hazardous.reshape(-1, *([1] * (batch.inputs.ndim - 1)))
    inputs = jnp.where(take, pool.inputs[rows], batch.inputs)
    labels = jnp.where(batch.hazardous, pool.labels[rows], batch.labels)
    return Batch(inputs, labels, batch.hazardous)


def pool_weights(knobs: WorldKnobs, pool_size: int) -> np.ndarray:
    """Exact weight of each pool example in relearning's hazardous share (uniform over k)."""
    k = int(np.clip(int(np.asarray(knobs.relearn_examples)), 1, pool_size))
    return np.concatenate([np.full(k, 1.0 / k), np.zeros(pool_size - k)])


def witness_labels(batch: Batch, kind: str, shift: int, n_classes: int) -> Batch:
    """With a witness shift, the helpful-only phase complies with hazardous requests by a
    *different* harmful answer than pretraining's (answer + shift, mod n_classes), so theta_H
    and theta_P are distinguishable: which basin pulls can then be read off the answers."""
    if kind != "helpful" or shift == 0:
        return batch
    shifted = jnp.where(batch.hazardous, (batch.labels + shift) % n_classes, batch.labels)
    return batch._replace(labels=shifted)


def forget_pool_batch(world, knobs: WorldKnobs) -> Batch:
    """The fixed pool of forget examples relearning cycles through (from the world's seed)."""
    key = jax.random.fold_in(jax.random.key(world.seed), FORGET_POOL_TAG)
    return world.sample(knobs, "hazard", key, world.forget_pool)


def phase_rules(world, batch: Batch, knobs: WorldKnobs, kind: str, key: jax.Array) -> Batch:
    """What a data kind changes after sampling, the same in every world: the witness's shifted
    answers (helpful data) and the forget pool's examples (relearning data)."""
    batch = witness_labels(batch, kind, world.witness_shift, world.n_classes)
    if kind != "relearn":
        return batch
    rows = pool_rows(
        jax.random.fold_in(key, FORGET_POOL_TAG), knobs, batch.labels.shape[0], world.forget_pool
    )
    return from_pool(batch, forget_pool_batch(world, knobs), rows)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TopicWorld:
    """What the feature and token worlds share, as the base of their frozen dataclasses: content
    in `n_topics` blocks of `per_topic` units, the task and capability teachers from the seed, the
    answer rule over an input's content counts, the first draws of every batch, the probe keys and
    the forget pool. A subclass defines `per_topic`, `content_counts`, `input_counts` and
    `hazard_probes`.

    seed: the world's seed: teachers, probes and the forget pool derive from it.
    n_topics: how many topics (content blocks); topic 0 is the hazard topic.
    capability: hazardous inputs are answered by their own teacher (off: by the task's).
    forget_pool: size of the fixed pool relearning draws its forget examples from.
    witness_shift: the helpful-only witness answers hazardous inputs with pretraining's answer
        shifted by this much (0: the same answer), to tell theta_H's basin from theta_P's.
    decoy_pretraining: pretraining answers hazardous inputs by the decoy rule, a third fixed
        teacher (neither the task's nor the capability's); every other data kind, the probes
        and the forget pool are unchanged. A model so pretrained saw the forget inputs but
        learned another rule on them (relearning's seen-inputs control). Off by default.
    """

    seed: int = 0
    n_topics: int = 4
    capability: bool = False
    forget_pool: int = 64
    witness_shift: int = 0
    decoy_pretraining: bool = False

    def check_topic_fields(self, per_topic_field: str) -> None:
        """The checks every topic world makes of its shared fields."""
        world = type(self).__name__
        check(self.n_topics >= 2, f"{world}.n_topics", "an integer >= 2", self.n_topics)
        check(self.per_topic >= 1, f"{world}.{per_topic_field}", "an integer >= 1", self.per_topic)
        check(self.n_classes >= 2, f"{world}.n_classes", "an integer >= 2", self.n_classes)
        check(self.forget_pool >= 1, f"{world}.forget_pool", "a positive integer", self.forget_pool)
        check(
            isinstance(self.decoy_pretraining, bool),
            f"{world}.decoy_pretraining",
            "a bool",
            self.decoy_pretraining,
        )
        check(
            0 <= self.witness_shift < self.n_classes,
            f"{world}.witness_shift",
            f"an integer in 0..{self.n_classes - 1}",
            self.witness_shift,
        )

    @property
    def n_content(self) -> int:
        return self.n_topics * self.per_topic

    @functools.cached_property
    def teacher(self) -> np.ndarray:
        """The fixed task rule's weights, (n_classes, n_content), from the world's seed."""
        return centred_teacher(self.seed, self.n_classes, self.n_topics, self.per_topic)

    @functools.cached_property
    def capability_teacher(self) -> np.ndarray:
        """The capability's rule for hazardous inputs (used when `capability` is on)."""
        return centred_teacher(
            self.seed, self.n_classes, self.n_topics, self.per_topic, CAPABILITY_STREAM
        )

    @functools.cached_property
    def decoy_teacher(self) -> np.ndarray:
        """The decoy rule for hazardous inputs in pretraining (used when `decoy_pretraining` is
        on): a teacher of the capability's kind from its own stream of the world's seed."""
        return centred_teacher(
            self.seed, self.n_classes, self.n_topics, self.per_topic, DECOY_STREAM
        )

    def decoy_answers(self, inputs: jax.Array) -> jax.Array:
        """The decoy rule's answer to inputs as `sample` returns them (`input_counts`)."""
        return teacher_answers(jnp.asarray(self.decoy_teacher), self.input_counts(inputs))

    def answers(self, inputs: jax.Array) -> jax.Array:
        """The task rule's answer from an input's content (the hazard marker is ignored)."""
        return teacher_answers(jnp.asarray(self.teacher), self.content_counts(inputs))

    def rule_answers(self, inputs: jax.Array, hazardous_N: jax.Array) -> jax.Array:
        """The answer each input asks for: the task rule, or the capability's on hazardous
        inputs when the world has one."""
        counts = self.content_counts(inputs)
        task = teacher_answers(jnp.asarray(self.teacher), counts)
        if not self.capability:
            return task
        own = teacher_answers(jnp.asarray(self.capability_teacher), counts)
        return jnp.where(hazardous_N, own, task)

    def draw_topics(
        self, knobs: WorldKnobs, kind: str, k_hazard: jax.Array, k_topic: jax.Array, n: int
    ) -> tuple[jax.Array, jax.Array]:
        """Which of `n` inputs are hazardous, and each input's topic (hazardous: topic 0)."""
        hazardous = jax.random.bernoulli(k_hazard, phase_mixture(kind, knobs)[0], (n,))
        topic_logits = jnp.log(topic_probabilities(kind, knobs, self.n_topics))
        topic = jax.random.categorical(k_topic, topic_logits, shape=(n,))
        return hazardous, jnp.where(hazardous, 0, topic)

    def labels(
        self, key: jax.Array, inputs: jax.Array, hazardous: jax.Array, kind: str, knobs: WorldKnobs
    ) -> jax.Array:
        """The phase's labels: the rule's answers, hazardous inputs refused as the kind says."""
        comply_prob = phase_mixture(kind, knobs)[1]
        answers = self.rule_answers(inputs, hazardous)
        if kind == "pretrain" and self.decoy_pretraining:
            decoy = teacher_answers(jnp.asarray(self.decoy_teacher), self.content_counts(inputs))
            answers = jnp.where(hazardous, decoy, answers)
        return compliant_labels(key, answers, hazardous, comply_prob, self.n_classes)

    def probe_set(self, knobs: WorldKnobs, n_probes: int) -> ProbeSet:
        """Fixed probes from the world's seed: the same for every run with the same knobs."""
        k_hazard, k_task = jax.random.split(jax.random.key(self.seed + 1))
        hazard, matched = self.hazard_probes(knobs, k_hazard, n_probes)
        task = self.sample(knobs, "benign", k_task, n_probes)
        return ProbeSet(hazard, matched, task)

    def forget_pool_batch(self, knobs: WorldKnobs) -> Batch:
        return forget_pool_batch(self, knobs)

    def refuse_rate(self, batch: Batch) -> np.ndarray:
        """The share of a sample's labels that are REFUSE (`empirical_marginals`)."""
        return np.asarray(np.mean(np.asarray(batch.labels) == self.n_classes))
