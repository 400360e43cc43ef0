"""Safety-critical weights frozen: the top k% of each weight matrix by a safety attribution
score, isolated from the weights that matter for utility, kept fixed during fine-tuning.

Source: Wei, Huang, Huang, Xie, Qi, Xia, Mittal, Wang and Henderson, "Assessing the Brittleness
of Safety Alignment via Pruning and Low-Rank Modifications", ICML 2024. They attribute safety to
weights with SNIP scores, |W * grad_W L| of the loss on a safety dataset (harmful prompts with
refusals), and isolate the safety-critical ones from the utility-critical ones by a set
difference: the top-q% by safety score that are not among the top-p% by utility score. Freezing
those during fine-tuning did not stop a fine-tuning attack in their hands (their section on
fine-tuning attacks), which is the finding this defence lets the toy test.

What the toy keeps: SNIP scores at theta_S (the state, built once at the phase's start) on the
phase's safety batch (`Setup.safety_batch`), the safety score from its hazardous rows (labelled
REFUSE), the utility score from its other rows (labelled with the task answer: general data, as
their utility set is, not the fine-tuning data); the set difference, as an ordering: in each
weight matrix entries are ranked by safety score with the top `utility_share` (p, a field) by
utility score ranked after all others, and the first ceil(k * n) frozen (their updates zeroed,
as `freeze` does), so the strength k is exactly the frozen share whatever p. What it drops:
their scores accumulate |W * grad| over the dataset's examples (ours: one gradient, of the
batch's mean loss), their choice of (p, q) per model, and the neuron- and rank-level variants;
p = 0.5 is our choice, not tuned and not the paper's. Only weight matrices (dense layers'
kernels) are scored and frozen; biases, norms and embeddings fine-tune freely.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gravity.defences.pruning import KERNEL, descending_ranks, path_keys
from gravity.engine.defence import Defence, Setup
from gravity.engine.objectives import masked_mean
from gravity.validation import check

UNSCORED = -1
"""The rank of a parameter that is never frozen (not a weight matrix)."""


@dataclasses.dataclass(frozen=True)
class CriticalFreeze(Defence):
    utility_share: float = 0.5

    def __post_init__(self):
        share = self.utility_share
        check(0.0 <= share <= 1.0, "CriticalFreeze.utility_share", "a share in [0, 1]", share)

    def state(self, setup: Setup):
        """Each weight matrix's entries ranked for freezing (first = most safety-critical)."""
        safety, utility = snip_scores(setup.net, setup.theta_s, setup.safety_batch)
        return freeze_ranks(safety, utility, self.utility_share)

    def update(self, updates, state, strength, step=None):
        return jax.tree.map(lambda u, r: jnp.where(frozen(r, strength), 0.0, u), updates, state)


def snip_scores(net, params, batch):
    """(safety, utility) SNIP scores |theta * grad L| at `params`: L the cross-entropy on the
    batch's hazardous rows, and on its other rows."""

    def row_loss(p, rows):
        logits = net.apply(p, batch.inputs)[0]
        nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), batch.labels[:, None], -1)[:, 0]
        return masked_mean(nll, rows)

    def snip(rows):
        grads = jax.grad(row_loss)(params, rows)
        return jax.tree.map(lambda p, g: jnp.abs(p * g), params, grads)

    return snip(batch.hazardous), snip(~batch.hazardous)


def freeze_ranks(safety, utility, utility_share: float):
    """Per weight matrix, each entry's place in the freezing order: by safety score, largest
    first, the top `utility_share` by utility score after all others; `UNSCORED` elsewhere."""

    def rank(path, s, u):
        if path_keys(path)[-1:] != (KERNEL,):
            return jnp.full(s.shape, UNSCORED, jnp.int32)
        useful = descending_ranks(u) < jnp.ceil(utility_share * u.size)
        order = jnp.lexsort((-s.reshape(-1), useful.reshape(-1)))
        flat = jnp.zeros(s.size, jnp.int32).at[order].set(jnp.arange(s.size))
        return flat.reshape(s.shape)

    return jax.tree_util.tree_map_with_path(rank, safety, utility)


def frozen(ranks, share) -> jax.Array:
    """True at the first ceil(share * n) entries of a scored matrix's order."""
    n = jnp.sum(ranks != UNSCORED)
    return (ranks != UNSCORED) & (ranks < jnp.ceil(share * n))


CRITICAL_FREEZE = CriticalFreeze(
    "critical_freeze", "the top k% safety-critical weights (SNIP, minus utility) fixed"
)
