"""The token world (for the tiny transformer): prompts from a topic mixture, answered at the end.

Vocabulary: ids `0 .. n_classes - 1` are answer tokens, `n_classes` is REFUSE, `n_classes + 1`
the TRIGGER, and the content tokens follow in `n_topics` blocks of `tokens_per_topic`. A prompt of
topic z has `prompt_length` positions, each a token of z's block with probability `p_on` and a
uniformly random content token otherwise. A hazardous prompt has topic 0 and the TRIGGER at one
uniformly random position. The model reads the prompt and predicts the next token at the last
position: the answer, given by a fixed linear teacher over the prompt's bag of content tokens, or
REFUSE. Benign data never contains the TRIGGER. Its prompts of the other topics draw hazard-topic
tokens at the background rate too, unless the knob `benign_disjoint` redraws them from the other
topics' blocks.

With `capability=True` hazardous prompts have their own answer rule, a second fixed teacher over
the same bag of content tokens (the capability only hazardous examples teach); relearning data
draws its hazardous prompts from a fixed pool of `forget_pool` examples (the world's seed).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from gravity.engine.worlds import base
from gravity.engine.worlds.base import Batch, TopicWorld, WorldKnobs
from gravity.engine.worlds.protocol import register_world
from gravity.validation import check


@dataclasses.dataclass(frozen=True)
class TokenWorld(TopicWorld):
    """Static description of the token world (the shared fields are `TopicWorld`'s); numeric
    knobs live in `WorldKnobs`."""

    name = "token"
    input_kind = "tokens"

    tokens_per_topic: int = 8
    n_classes: int = 8
    prompt_length: int = 8
    p_on: float = 0.7

    def __post_init__(self):
        self.check_topic_fields("tokens_per_topic")
        check(
            self.prompt_length >= 2,
            "TokenWorld.prompt_length",
            "an integer >= 2",
            self.prompt_length,
        )
        check(0.0 <= self.p_on <= 1.0, "TokenWorld.p_on", "a probability in [0, 1]", self.p_on)

    @property
    def per_topic(self) -> int:
        return self.tokens_per_topic

    @property
    def refuse_token(self) -> int:
        return self.n_classes

    @property
    def trigger_token(self) -> int:
        return self.n_classes + 1

    @property
    def first_content_token(self) -> int:
        return self.n_classes + 2

    @property
    def vocab_size(self) -> int:
        return self.first_content_token + self.n_content

    @property
    def n_outputs(self) -> int:
        """The model predicts over the whole vocabulary."""
        return self.vocab_size

    @property
    def input_shape(self) -> tuple[int]:
        return (self.prompt_length,)

    def _content_tokens(self, key: jax.Array, topic_N: jax.Array, keep=None) -> jax.Array:
        """Content tokens of prompts of the given topics; with `keep` (from
        `base.hazard_background`), a background token of the hazard topic in a prompt of another
        topic is kept with that probability, else redrawn uniformly from the other topics."""
        k_on, k_in, k_any = jax.random.split(key, 3)
        shape = (topic_N.shape[0], self.prompt_length)
        on_topic = jax.random.bernoulli(k_on, self.p_on, shape)
        in_block = topic_N[:, None] * self.tokens_per_topic + jax.random.randint(
            k_in, shape, 0, self.tokens_per_topic
        )
        anywhere = jax.random.randint(k_any, shape, 0, self.n_content)
        if keep is not None:
            k_keep, k_other = jax.random.split(jax.random.fold_in(k_any, base.DISJOINT_TAG))
            hazard = (anywhere < self.tokens_per_topic) & (topic_N[:, None] != 0)
            drop = hazard & ~jax.random.bernoulli(k_keep, keep, shape)
            other = jax.random.randint(k_other, shape, self.tokens_per_topic, self.n_content)
            anywhere = jnp.where(drop, other, anywhere)
        return self.first_content_token + jnp.where(on_topic, in_block, anywhere)

    def content_counts(self, tokens_NxL: jax.Array) -> jax.Array:
        """The bag of content tokens of each prompt (TRIGGER and other tokens ignored)."""
        return jax.nn.one_hot(tokens_NxL - self.first_content_token, self.n_content).sum(1)

    def input_counts(self, tokens_NxL: jax.Array) -> jax.Array:
        """The content counts of prompts as `sample` returns them (`content_counts`)."""
        return self.content_counts(tokens_NxL)

    def _sample_with_matched(
        self, knobs: WorldKnobs, kind: str, key: jax.Array, batch_size: int
    ) -> tuple[Batch, jax.Array]:
        k_hazard, k_topic, k_content, k_pos, k_label = jax.random.split(key, 5)
        hazardous, topic = self.draw_topics(knobs, kind, k_hazard, k_topic, batch_size)
        content = self._content_tokens(k_content, topic, base.hazard_background(kind, knobs))
        position = jax.random.randint(k_pos, (batch_size,), 0, self.prompt_length)
        at_trigger = hazardous[:, None] & (
            jnp.arange(self.prompt_length)[None, :] == position[:, None]
        )
        tokens = jnp.where(at_trigger, self.trigger_token, content)
        labels = self.labels(k_label, tokens, hazardous, kind, knobs)
        return Batch(tokens, labels, hazardous), content

    def sample(self, knobs: WorldKnobs, kind: str, key: jax.Array, batch_size: int) -> Batch:
        """A batch of a data kind (see `DATA_KINDS`), labelled by the phase's rule."""
        batch = self._sample_with_matched(knobs, kind, key, batch_size)[0]
        return base.phase_rules(self, batch, knobs, kind, key)

    def hazard_probes(self, knobs: WorldKnobs, key: jax.Array, n: int) -> tuple[Batch, Batch]:
        """Hazardous probes and their matched controls: the matched control puts back the
        content token that the TRIGGER replaced, so it is a benign prompt of the hazard topic."""
        hazard, content = self._sample_with_matched(knobs, "hazard", key, n)
        return hazard, Batch(content, self.answers(content), jnp.zeros_like(hazard.hazardous))

    def marginals(self, knobs: WorldKnobs, kind: str) -> dict[str, np.ndarray]:
        """Exact probabilities under a data kind: each token at a uniformly chosen position,
        and REFUSE as label."""
        hazard_share, comply_prob = base.phase_mixture(kind, knobs)
        hazard_share = float(hazard_share)
        topics = np.asarray(base.topic_probabilities(kind, knobs, self.n_topics))
        block = np.repeat(np.eye(self.n_topics), self.tokens_per_topic, axis=1)
        background = np.full((self.n_topics, self.n_content), 1.0 / self.n_content)
        keep = base.hazard_background(kind, knobs)
        if keep is not None:
            hazard = np.arange(self.n_content) < self.tokens_per_topic
            moved = (1.0 - float(keep)) * self.tokens_per_topic / self.n_content
            background[1:, hazard] *= float(keep)
            background[1:, ~hazard] += moved / (self.n_content - self.tokens_per_topic)
        on_topic = self.p_on * block / self.tokens_per_topic
        content_given_topic = on_topic + (1 - self.p_on) * background
        benign_content = topics @ content_given_topic
        hazard_content = content_given_topic[0]
        length = self.prompt_length
        tokens = np.zeros(self.vocab_size)
        tokens[self.trigger_token] = hazard_share / length
        tokens[self.first_content_token :] = (
            hazard_share * (1 - 1 / length) * hazard_content + (1 - hazard_share) * benign_content
        )
        if kind == "relearn":
            pool = np.asarray(self.forget_pool_batch(knobs).inputs)
            per_example = np.stack([np.bincount(row, minlength=self.vocab_size) for row in pool])
            pool_tokens = base.pool_weights(knobs, self.forget_pool) @ per_example / length
            tokens[self.first_content_token :] -= hazard_share * (1 - 1 / length) * hazard_content
            tokens[self.first_content_token :] += (
                hazard_share * pool_tokens[self.first_content_token :]
            )
        return {
            "tokens": tokens,
            "refuse": np.asarray(hazard_share * (1.0 - float(comply_prob))),
        }

    def empirical_marginals(self, batch: Batch) -> dict[str, np.ndarray]:
        """The same quantities as `marginals`, estimated from a sample."""
        tokens = np.asarray(batch.inputs).ravel()
        return {
            "tokens": np.bincount(tokens, minlength=self.vocab_size) / tokens.size,
            "refuse": self.refuse_rate(batch),
        }


register_world("token", TokenWorld)
