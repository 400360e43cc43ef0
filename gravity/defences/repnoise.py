"""RepNoise, representation noising: safety alignment plus a term that pushes the hazardous
inputs' representations, at every layer, toward Gaussian noise, so the information a harmful
fine-tuner would build on is removed rather than hidden.

Source: Rosati, Wehner, Williams, Bartoszcze, Atanasov, Gonzales, Majumdar, Maple, Sajjad and
Rudzicz, "Representation Noising: A Defence Mechanism Against Harmful Finetuning", NeurIPS 2024.
RepNoise minimises

    L_retain(harmless) + beta * mean over layers of MMD(h_l(harmful), N(0, I)) - alpha * ascent,

the MMD (their code: a sum of five Gaussian kernels exp(-||x - y||^2 / b), bandwidths b =
b0 * 2^(i - 2), b0 the mean pairwise squared distance of the pooled sample, held fixed; the
biased estimate mean(K_xx + K_yy - K_xy - K_yx)) between each layer's activations on harmful
text and as many standard normal samples, and "ascent" a gradient-ascent term on the harmful
answers. The strength is beta, the MMD weight.

What the toy keeps: the MMD term exactly as their code computes it, on the activations of every
layer the model returns but the logits (the MLP's hidden layers, the transformer's blocks and
its final norm), on a batch of hazardous inputs of the phase's size drawn fresh each step with
fresh N(0, I) samples (`advance`); the retain loss is the safety phase's own cross-entropy
(benign inputs with their task answers, hazardous ones refused). What it drops: the
gradient-ascent term (the safety loss already trains the hazardous inputs away from the harmful
answer, toward REFUSE, which RepNoise's data does not have), every token but the prompt's last
(the transformer's activations are the last position's), and LoRA. The MLP's hidden activations
are post-ReLU, so they can approach N(0, I) only in their positive half. At beta = 0 the term is
exactly 0.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gravity.engine.defence import DrawingAlignmentDefence, Setup

KERNEL_MUL, KERNEL_NUM = 2.0, 5
"""RepNoise's kernel family: `KERNEL_NUM` bandwidths, consecutive ones `KERNEL_MUL` apart."""
HAZARD_STREAM, NOISE_STREAM = 0, 1


class RepNoiseStep(NamedTuple):
    """A step's hazardous inputs and the noise samples, {layer: (N, width)}, they are pushed to."""

    net: Any
    inputs: Any
    noise: dict


@dataclasses.dataclass(frozen=True)
class RepNoise(DrawingAlignmentDefence):
    def advance(self, state: Setup, carried, params, step):
        inputs = state.draw("hazard", step, HAZARD_STREAM).inputs
        shapes = jax.eval_shape(state.net.apply, params, inputs)[1]
        key = jax.random.fold_in(jax.random.fold_in(state.key, step), NOISE_STREAM)
        noise = {
            name: jax.random.normal(jax.random.fold_in(key, i), shapes[name].shape)
            for i, name in enumerate(noised_layers(state.net.config))
        }
        return RepNoiseStep(state.net, inputs, noise), carried

    def loss(self, params, state: RepNoiseStep, strength):
        acts = state.net.apply(params, state.inputs)[1]
        terms = [mmd(acts[name], noise) for name, noise in state.noise.items()]
        return strength * sum(terms) / len(terms)


def noised_layers(config) -> tuple[str, ...]:
    """Every layer the model returns but its logits."""
    return tuple(name for name in config.layer_names if name != "logits")


def gaussian_kernels(pooled):
    """RepNoise's kernel matrix on the pooled sample (M, D): the sum over its bandwidths of
    exp(-||x_i - x_j||^2 / b), the base bandwidth from the sample itself and held fixed."""
    squared = jnp.sum((pooled[:, None, :] - pooled[None, :, :]) ** 2, axis=-1)
    m = pooled.shape[0]
    base = jax.lax.stop_gradient(jnp.sum(squared) / (m * m - m))
    base = jnp.where(base > 0, base, 1.0) / KERNEL_MUL ** (KERNEL_NUM // 2)
    return sum(jnp.exp(-squared / (base * KERNEL_MUL**i)) for i in range(KERNEL_NUM))


def mmd(x, y):
    """The biased MMD^2 estimate of RepNoise's code between samples x and y of equal size:
    mean(K_xx + K_yy - K_xy - K_yx) (exactly 0 when x is y)."""
    n = x.shape[0]
    kernels = gaussian_kernels(jnp.concatenate([x, y]))
    xx, yy = kernels[:n, :n], kernels[n:, n:]
    xy, yx = kernels[:n, n:], kernels[n:, :n]
    return jnp.mean(xx + yy - xy - yx)


REPNOISE = RepNoise(
    "repnoise", "hazardous activations at every layer pushed to N(0, I) by MMD (Rosati et al.)"
)
