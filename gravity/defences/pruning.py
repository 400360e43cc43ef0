"""Antidote, pruning after fine-tuning: the weights with the largest Wanda scores on hazardous
inputs zeroed once fine-tuning is over.

Source: Huang, Bhattacharya, Joshi, Kimball and Liu, "Antidote: Post-fine-tuning Safety
Alignment for Large Language Models against Harmful Fine-tuning", ICML 2025. Whatever the
fine-tuning did, Antidote removes the weights that matter most for harmful answers: it scores
each weight of the fine-tuned model with the Wanda score (Sun et al., ICLR 2024),
|W_ij| * ||X_i||_2, X_i the i-th input feature of the weight's layer over every token of a
harmful calibration set, and zeroes the top-scored share of them (its mask ratio). The strength
here is that share, the sparsity s.

What the toy keeps: the Wanda score on hazardous inputs, computed at the fine-tuned parameters
(the `edit` hook gets them) on the hazardous probes (`Setup.probes.hazard`: the inputs the drift
is measured on; held-out harmfulness scores other hazardous inputs), over every token position
of the transformer's prompts; in every weight matrix (the `kernel` of each dense layer: the MLP's
hidden and readout layers, the transformer's query, key, value, output, MLP and unembedding
projections) the floor(s * n) entries of largest score zeroed (Wanda's count), ties broken by
position. What it drops: Antidote scores a harmful calibration set with its harmful answers in
the sequence; ours has only the prompts (the answer is the model's one output). Embeddings,
biases and norm parameters are not pruned (Wanda scores linear layers: an embedding has no input
activation). The input norms are exact, read from each layer's own output
(`layer_input_norms`), so no model code is duplicated here.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from gravity.engine.defence import Defence, Setup

KERNEL = "kernel"


@dataclasses.dataclass(frozen=True)
class Antidote(Defence):
    def state(self, setup: Setup):
        """The network and the hazardous probe inputs (scored at the fine-tuned parameters)."""
        return setup.net, setup.probes.hazard.inputs

    def edit(self, params, state, strength):
        net, inputs = state
        return prune(params, wanda_scores(net, params, inputs), strength)


def path_keys(path) -> tuple:
    """A pytree path as its dict keys and sequence indices (attribute steps left out)."""
    keys = (getattr(k, "key", getattr(k, "idx", None)) for k in path)
    return tuple(k for k in keys if k is not None)


def kernel_modules(net, params) -> dict[tuple, int]:
    """{module path: how many trailing kernel axes are outputs} for every dense layer."""
    model = nnx.merge(net.graphdef, params)
    found = {}
    for path, module in nnx.iter_modules(model):
        if isinstance(getattr(module, KERNEL, None), nnx.Param):
            out = getattr(module, "out_features", 1)
            found[tuple(path)] = len(out) if isinstance(out, tuple) else 1
    return found


def _module_output(net, params, inputs, module_path, kernel):
    """The output of the layer at `module_path` on `inputs`, with its kernel set to `kernel`."""

    def swap(path, leaf):
        return kernel if path_keys(path) == (*module_path, KERNEL) else leaf

    model = nnx.merge(net.graphdef, jax.tree_util.tree_map_with_path(swap, params))
    outputs = []
    parent = model
    for key in module_path[:-1]:
        parent = parent[key] if isinstance(key, int) else getattr(parent, key)
    last = module_path[-1]
    child = parent[last] if isinstance(last, int) else getattr(parent, last)
    tap = _Tap(child, outputs.append)
    if isinstance(last, int):
        parent[last] = tap
    else:
        setattr(parent, last, tap)
    model(inputs)
    return outputs[0]


class _Tap(nnx.Module):
    """A layer that hands its output to `seen` as it passes it on: set in place of one layer
    of a freshly merged model, it reads that layer's output in this call alone (`nnx.capture`'s
    method outputs patch every instance of the module's class while it runs, so a program
    traced at the same time in another thread, as the sweep runner compiles two at once, sows
    into modules that cannot take it and fails)."""

    def __init__(self, layer, seen):
        self.layer = layer
        self.seen = seen

    def __call__(self, *args, **kwargs):
        out = self.layer(*args, **kwargs)
        self.seen(out)
        return out


def layer_input_norms(net, params, inputs) -> dict[tuple, jax.Array]:
    """{module path: ||X_i||_2 over every token, shaped like the kernel's input axes}.

    A layer's output is linear in its kernel, so its derivative along a kernel direction E is
    X E: with E = the identity placed on a block of input rows (a block per `out_flat` inputs),
    one forward derivative reads that block of the layer's inputs off its own output."""
    norms = {}
    for module_path, n_out in kernel_modules(net, params).items():
        kernel = _kernel(params, module_path)
        in_shape = kernel.shape[: kernel.ndim - n_out]
        n_in, n_out_flat = math.prod(in_shape), math.prod(kernel.shape[kernel.ndim - n_out :])
        blocks = -(-n_in // n_out_flat)
        rows = jnp.arange(n_in)[None, :, None] - n_out_flat * jnp.arange(blocks)[:, None, None]
        tangents = (rows == jnp.arange(n_out_flat)[None, None, :]).astype(kernel.dtype)

        def read(tangent, module_path=module_path, kernel=kernel):
            def output(k):
                return _module_output(net, params, inputs, module_path, k)

            return jax.jvp(output, (kernel,), (tangent.reshape(kernel.shape),))[1]

        inputs_by_block = jax.vmap(read)(tangents).reshape(blocks, -1, n_out_flat)
        squared = jnp.sum(inputs_by_block**2, axis=1).reshape(-1)[:n_in]
        norms[module_path] = jnp.sqrt(squared).reshape(in_shape)
    return norms


def _kernel(params, module_path):
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return next(leaf for path, leaf in leaves if path_keys(path) == (*module_path, KERNEL))


def wanda_scores(net, params, inputs) -> dict[tuple, jax.Array]:
    """{module path: |W| * ||X_i||, kernel-shaped} at `params` on `inputs`."""
    scores = {}
    for module_path, norms in layer_input_norms(net, params, inputs).items():
        kernel = _kernel(params, module_path)
        expand = norms.reshape(norms.shape + (1,) * (kernel.ndim - norms.ndim))
        scores[module_path] = jnp.abs(kernel) * expand
    return scores


def descending_ranks(score) -> jax.Array:
    """Each entry's place (0 = largest) in `score` sorted largest first, ties by position."""
    flat = score.reshape(-1)
    order = jnp.argsort(-flat, stable=True)
    return (
        jnp.zeros(flat.shape, jnp.int32).at[order].set(jnp.arange(flat.size)).reshape(score.shape)
    )


def top_mask(score, fraction) -> jax.Array:
    """True at the floor(fraction * n) entries of largest score."""
    count = jnp.floor(fraction * score.size)
    return descending_ranks(score) < count


def prune(params, scores: dict[tuple, jax.Array], sparsity):
    """`params` with, in each scored kernel, the top `sparsity` share of entries zeroed."""

    def zero(path, leaf):
        keys = path_keys(path)
        if keys[-1:] != (KERNEL,) or keys[:-1] not in scores:
            return leaf
        return jnp.where(top_mask(scores[keys[:-1]], sparsity), 0.0, leaf)

    return jax.tree_util.tree_map_with_path(zero, params)


ANTIDOTE = Antidote("antidote", "after fine-tuning, the top Wanda-scored weights on hazard zeroed")
