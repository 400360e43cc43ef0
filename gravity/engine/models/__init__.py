"""Models as Flax NNX modules, split once into (graphdef, params) for the engine.

The engine carries only the params pytree and calls `Network.apply`, which merges the graph
back inside the traced function (the functional pattern of the Flax NNX performance guide).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
from flax import nnx

from gravity.engine.models.mlp import MLP
from gravity.engine.models.transformer import Transformer
from gravity.engine.worlds import World, world_kind
from gravity.validation import check, check_choice

MODEL_KINDS = ("mlp", "transformer")
INPUT_LAYERS = {"mlp": "features", "transformer": "tokens"}
"""The world input kind (`gravity.engine.worlds.INPUT_KINDS`) each model family reads."""
SIZE_FIELDS = {
    "hidden": "mlp",
    "d_model": "transformer",
    "n_layers": "transformer",
    "n_heads": "transformer",
    "d_ff": "transformer",
    "readout_only": "transformer",
}
"""The `ModelConfig` fields one model family reads, and which: what `--set model.FIELD` sets
(in that family's histories only; `kind` and `layer` are the experiment's to choose)."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Static model description: its kind, its sizes and the layer where v_rev is measured.

    kind: the model family, mlp or transformer (it must read the world's inputs)
    hidden: the MLP's hidden widths, one per layer
    d_model: the transformer's residual width
    n_layers: the transformer's number of blocks
    n_heads: the transformer's attention heads (a divisor of d_model)
    d_ff: the transformer's MLP width
    layer: the layer where v_rev is measured (empty: the last hidden layer or block)
    readout_only: the transformer's last block computed at the readout (last) position only, its
      keys and values still from every position: the same function (outputs and gradients equal
      to float rounding, ~1e-6; `tests/test_models.py`) in 1.33x (N = 8) to 1.52x (N = 64) fewer
      step seconds (`python -m benchmarks.roofline`, docs/performance.md). False in a bare
      config; the presets' transformers (`gravity.engine.presets`) switch it on, and the
      figures whose numbers that rounding moved were regenerated with it (docs/performance.md)
    """

    kind: str = "mlp"
    hidden: tuple[int, ...] = (128, 128)
    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 128
    layer: str = ""
    readout_only: bool = False

    def __post_init__(self):
        check_choice(self.kind, MODEL_KINDS, "model.kind")
        check(
            len(self.hidden) >= 1 and all(w >= 1 for w in self.hidden),
            "model.hidden",
            "a non-empty tuple of positive widths",
            self.hidden,
        )
        for field in ("d_model", "n_layers", "n_heads", "d_ff"):
            value = getattr(self, field)
            check(value >= 1, f"model.{field}", "a positive integer", value)
        check(
            self.d_model % self.n_heads == 0,
            "model.n_heads",
            f"a divisor of d_model = {self.d_model}",
            self.n_heads,
        )
        check(
            isinstance(self.readout_only, bool),
            "model.readout_only",
            "true or false",
            self.readout_only,
        )
        check(
            not self.readout_only or self.kind == "transformer",
            "model.readout_only",
            "false for an MLP (it has no positions)",
            self.readout_only,
        )
        check(
            self.layer in ("", *self.layer_names),
            "model.layer",
            f"one of {', '.join(self.layer_names)}",
            self.layer,
        )

    @property
    def layer_names(self) -> tuple[str, ...]:
        if self.kind == "mlp":
            return (*(f"hidden{i + 1}" for i in range(len(self.hidden))), "logits")
        return (*(f"block{i + 1}" for i in range(self.n_layers)), "final", "logits")

    @property
    def hidden_layers(self) -> tuple[str, ...]:
        """The layers whose activations a perturbation can be added to: the MLP's hidden layers,
        the transformer's blocks (not its final norm or the logits)."""
        if self.kind == "mlp":
            return self.layer_names[:-1]
        return self.layer_names[:-2]

    @property
    def activation_layer(self) -> str:
        """The layer of v_rev: the chosen one, else the last hidden layer / residual block."""
        return self.layer or self.layer_names[-3 if self.kind == "transformer" else -2]


def build(config: ModelConfig, world: World, key: jax.Array) -> nnx.Module:
    """A freshly initialised NNX module for `world`'s inputs and outputs: the input layer is
    the one the world's `input_kind` asks for (feature vectors: an MLP; token prompts: a
    transformer's embeddings)."""
    rngs = nnx.Rngs(params=key)
    reads = INPUT_LAYERS[config.kind]
    check(
        world.input_kind == reads,
        "world",
        f"a world with {reads} inputs for a {config.kind} (this one has {world.input_kind})",
        world_kind(world),
    )
    if reads == "features":
        return MLP(world.input_shape[-1], config.hidden, world.n_outputs, rngs=rngs)
    return Transformer(
        world.vocab_size,
        world.input_shape[-1],
        config.d_model,
        config.n_layers,
        config.n_heads,
        config.d_ff,
        n_outputs=world.n_outputs,
        readout_only=config.readout_only,
        rngs=rngs,
    )


class Network(NamedTuple):
    """A model split into its static graph and a pure `init`/`apply` pair over params."""

    config: ModelConfig
    world: World
    graphdef: nnx.GraphDef

    def init(self, key: jax.Array) -> nnx.State:
        """Fresh params from a key; vmappable over keys."""
        return nnx.split(build(self.config, self.world, key), nnx.Param)[1]

    def apply(
        self, params: nnx.State, inputs: jax.Array, perturbations: dict | None = None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Logits (N, n_outputs) and activations at every named layer, each (N, width).

        `perturbations` ({hidden layer name: (N, width)}, `ModelConfig.hidden_layers`): added to
        those layers' activations, which the rest of the network then reads (None: none, the
        plain forward pass)."""
        model = nnx.merge(self.graphdef, params)
        if perturbations is None:
            return model(inputs)
        check(
            set(perturbations) <= set(self.config.hidden_layers),
            "perturbations",
            f"hidden layers among {', '.join(self.config.hidden_layers)}",
            sorted(perturbations),
        )
        return model(inputs, perturbations)

    def activations(self, params: nnx.State, inputs: jax.Array) -> jax.Array:
        """Activations at the configured layer, (N, width)."""
        return self.apply(params, inputs)[1][self.config.activation_layer]


@functools.lru_cache(maxsize=64)
def network(config: ModelConfig, world: World) -> Network:
    """The `Network` for a (config, world) pair, built once."""
    model = build(config, world, jax.random.key(0))
    graphdef, _, rest = nnx.split(model, nnx.Param, ...)
    check(not jax.tree.leaves(rest), "model", "a module whose only state is nnx.Param", rest)
    return Network(config, world, graphdef)


__all__ = [
    "INPUT_LAYERS",
    "MODEL_KINDS",
    "MLP",
    "ModelConfig",
    "Network",
    "SIZE_FIELDS",
    "Transformer",
    "build",
    "network",
]
