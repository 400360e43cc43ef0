"""Token-wise constrained fine-tuning: the fine-tuning loss constrained, token by token, not to
move the label's log-probability far from theta_S's.

Source: Qi, Panda, Lyu, Ma, Roy, Beirami, Mittal and Henderson, "Safety Alignment Should Be Made
More Than Just a Few Tokens Deep", ICLR 2025 (section 4). Fine-tuning minimises, over the
response tokens y_t,

    - sum_t (2 / beta_t) log sigmoid(beta_t * Delta_t),
    Delta_t = log pi_theta(y_t | x, y_<t) - log pi_S(y_t | x, y_<t),

with pi_S the aligned model, frozen; as beta_t -> 0 it is the plain cross-entropy, and a large
beta_t stops the push on token t once its probability has passed the aligned model's. The paper
weights positions: beta_1 = 0.5, beta_t = 2 for tokens 2-5, 0.1 after, so the first tokens,
where shallow alignment lives, are held hardest.

Exactly, that loss is the cross-entropy plus (2 / beta) log cosh(beta Delta / 2) per token, up to
a constant: a symmetric penalty on the label's log-probability ratio to theta_S (about
beta Delta^2 / 4 when small, |Delta| when large), which is what the `batch_loss` hook adds to the
benign phase's cross-entropy, on the step's batch, theta_S's logits computed there (one extra
forward pass a step). The strength is beta; at 0 the term is exactly zero (plain fine-tuning).

What the toy keeps: the per-token constraint to theta_S on the fine-tuning data, in the paper's
form, for both models (each answers at one position: the MLP's class, the transformer's next
token). What it drops: the position weighting. Our answers are one token long, so the schedule
collapses to a single beta (the paper's value for a first token is 0.5); the paper's central
claim, that constraining the first tokens more than the later ones is what makes alignment deep,
cannot be tested here. The paper's safety-recovery data augmentation (section 3) is a separate
defence (rehearsal is its nearest analogue here) and is not mixed in.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gravity.engine.defence import Defence, Setup


@dataclasses.dataclass(frozen=True)
class TokenwiseConstraint(Defence):
    def state(self, setup: Setup):
        """The network and theta_S (its logits on each step's batch are the constraint's)."""
        return setup.net, setup.theta_s

    def batch_loss(self, params, state, strength, batch, logits):
        net, theta_s = state
        reference = jax.lax.stop_gradient(net.apply(theta_s, batch.inputs)[0])
        return constraint_penalty(logits, reference, batch.labels, strength)


def label_log_ratio(logits, reference_logits, labels):
    """Delta: the label's log-probability under `logits` minus under `reference_logits`, (N,)."""
    rows = jnp.arange(labels.shape[0])
    log_p = jax.nn.log_softmax(logits)[rows, labels]
    return log_p - jax.nn.log_softmax(reference_logits)[rows, labels]


def log_cosh(x):
    """log cosh x, stable for large |x|."""
    a = jnp.abs(x)
    return a + jnp.log1p(jnp.exp(-2.0 * a)) - jnp.log(2.0)


def constraint_penalty(logits, reference_logits, labels, beta):
    """Mean over the batch of (2 / beta) log cosh(beta Delta / 2): what turns the cross-entropy
    into Qi et al.'s constrained loss (up to a constant); exactly 0 at beta = 0."""
    delta = label_log_ratio(logits, reference_logits, labels)
    positive = beta > 0
    safe = jnp.where(positive, beta, 1.0)
    penalty = jnp.mean((2.0 / safe) * log_cosh(safe * delta / 2.0))
    return jnp.where(positive, penalty, 0.0)


def constrained_loss(logits, reference_logits, labels, beta):
    """Qi et al.'s loss itself, mean over the batch of -(2 / beta) log sigmoid(beta Delta)
    (beta > 0): the reference the penalty is tested against."""
    delta = label_log_ratio(logits, reference_logits, labels)
    return jnp.mean(-(2.0 / beta) * jax.nn.log_sigmoid(beta * delta))


TOKENWISE = TokenwiseConstraint(
    "tokenwise", "the label's log-probability held near theta_S's, per token (Qi et al. 2025)"
)
