"""The 8x8 digits that scikit-learn ships, as a frozen world, and the anchor's MLP for them.

The subliminal-learning anchor (Cloud et al. 2025) is an MNIST MLP 784-256-256-(10 + m): the
first 10 logits classify digits, the m auxiliary logits are never trained by the teacher. Here
the images are scikit-learn's 1,797 8x8 digits (`load_digits`, no download), pixels scaled to
[0, 1] like MNIST tensors, and the MLP is 64-256-256-(10 + m), the project's own `MLP` module.
The train / held-out split is fixed by `Digits.split_seed`; noise images are uniform on [0, 1]^64,
the anchor's "uniform noise images", which contain no digit and carry no label.

`Digits(side=28)` upsamples every image once, bilinearly, to MNIST's 28x28 (`upsample`): the same
digits and labels, 784 pixels, for a `DigitsModel(n_pixels=784)` whose noise is U[0, 1]^784. The
upsampled images hold no more information than the 8x8 ones; what changes is how many independent
directions the noise probes.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from gravity.engine import training
from gravity.engine.models.mlp import MLP
from gravity.validation import check, check_choice, check_widths

SIDE = 8
N_PIXELS = SIDE * SIDE
INITS = ("torch", "lecun")
N_DIGITS = 10
CHANCE = 1.0 / N_DIGITS
Params = Any


class Split(NamedTuple):
    """Images (N, side * side) in [0, 1] and their digit labels (N,)."""

    inputs: np.ndarray
    labels: np.ndarray


def upsample(images_NxP: np.ndarray, side: int) -> np.ndarray:
    """Square images (N, s * s) resized bilinearly to (N, side * side), float32, in numpy (data
    are built once, possibly while a program is traced): pixel centres aligned as in
    `jax.image.resize(..., "linear")`, edges clamped, so each output pixel is a convex mix of
    its source pixels and [0, 1] stays [0, 1]; `side` = s returns the images unchanged."""
    n, pixels = images_NxP.shape
    source = int(round(np.sqrt(pixels)))
    check(source * source == pixels, "upsample(images)", "square images, (N, s * s)", pixels)
    check(side >= source, "upsample(side)", f"a side >= the images' {source}", side)
    if side == source:
        return images_NxP
    weights = linear_weights(source, side)
    square = np.asarray(images_NxP, np.float64).reshape(n, source, source)
    resized = np.einsum("ij,njk,lk->nil", weights, square, weights)
    return resized.reshape(n, side * side).astype(np.float32)


def linear_weights(source: int, side: int) -> np.ndarray:
    """(side, source): row i mixes the two source pixels around output pixel i's centre,
    (i + 0.5) * source / side - 0.5 in source pixel units, clamped to the image."""
    centre = np.clip((np.arange(side) + 0.5) * source / side - 0.5, 0.0, source - 1.0)
    low = np.floor(centre).astype(int)
    high = np.minimum(low + 1, source - 1)
    weights = np.zeros((side, source))
    np.add.at(weights, (np.arange(side), low), 1.0 - (centre - low))
    np.add.at(weights, (np.arange(side), high), centre - low)
    return weights


@dataclasses.dataclass(frozen=True)
class Digits:
    """scikit-learn's digits, split once into a training and a held-out part by `split_seed`;
    side: the images' side (8: as shipped; more: `upsample`d once, the split unchanged)."""

    split_seed: int = 0
    held_out_fraction: float = 0.25
    side: int = SIDE

    def __post_init__(self):
        check(
            0.0 < self.held_out_fraction < 1.0,
            "Digits.held_out_fraction",
            "a fraction in (0, 1)",
            self.held_out_fraction,
        )
        check(self.side >= SIDE, "Digits.side", f"an image side >= {SIDE}", self.side)

    @property
    def n_pixels(self) -> int:
        return self.side * self.side

    @functools.cached_property
    def _splits(self) -> tuple[Split, Split]:
        from sklearn.datasets import load_digits

        data = load_digits()
        inputs = upsample((data.data / 16.0).astype(np.float32), self.side)
        labels = data.target.astype(np.int32)
        order = np.random.default_rng(self.split_seed).permutation(labels.size)
        n_held = int(round(self.held_out_fraction * labels.size))
        held, train = order[:n_held], order[n_held:]
        return Split(inputs[train], labels[train]), Split(inputs[held], labels[held])

    @property
    def train(self) -> Split:
        return self._splits[0]

    @property
    def held_out(self) -> Split:
        return self._splits[1]

    def sample_train(self, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
        """A batch of n training images and labels, drawn uniformly with replacement."""
        index = jax.random.randint(key, (n,), 0, self.train.labels.size)
        return jnp.asarray(self.train.inputs)[index], jnp.asarray(self.train.labels)[index]


def noise_images(key: jax.Array, n: int, n_pixels: int = N_PIXELS) -> jax.Array:
    """n uniform-noise images on [0, 1]^n_pixels: the student's only inputs."""
    return jax.random.uniform(key, (n, n_pixels))


@dataclasses.dataclass(frozen=True)
class DigitsModel:
    """MLP n_pixels-hidden-(10 + n_aux): digit logits first, then the auxiliary logits.

    init_scheme: "torch", the anchor's (PyTorch's `nn.Linear` default: weights and biases uniform in
    +-1/sqrt(fan_in)), or "lecun", Flax's default (normal with variance 1/fan_in, zero biases).
    """

    hidden: tuple[int, ...] = (256, 256)
    n_aux: int = 3
    init_scheme: str = "torch"
    n_pixels: int = N_PIXELS

    def __post_init__(self):
        check_widths(self.hidden, "DigitsModel.hidden")
        check(self.n_aux >= 1, "DigitsModel.n_aux", "a positive integer", self.n_aux)
        check_choice(self.init_scheme, INITS, "DigitsModel.init_scheme")
        check(self.n_pixels >= 1, "DigitsModel.n_pixels", "a positive integer", self.n_pixels)

    @property
    def n_outputs(self) -> int:
        return N_DIGITS + self.n_aux

    @property
    def aux_units(self) -> tuple[int, ...]:
        return tuple(range(N_DIGITS, self.n_outputs))

    def module(self, key: jax.Array) -> MLP:
        """A fresh NNX module (the anchor's initialisation unless `init_scheme` says otherwise)."""
        k_module, k_torch = jax.random.split(key)
        module = MLP(self.n_pixels, self.hidden, self.n_outputs, rngs=nnx.Rngs(params=k_module))
        if self.init_scheme == "torch":
            for index, layer in enumerate((*module.hidden, module.readout)):
                bound = 1.0 / np.sqrt(layer.in_features)
                k_kernel, k_bias = jax.random.split(jax.random.fold_in(k_torch, index))
                draw = functools.partial(jax.random.uniform, minval=-bound, maxval=bound)
                layer.kernel.set_value(draw(k_kernel, layer.kernel.shape))
                layer.bias.set_value(draw(k_bias, layer.bias.shape))
        return module

    def init(self, key: jax.Array) -> Params:
        """Fresh params from a key (vmappable over keys)."""
        return nnx.split(self.module(key), nnx.Param)[1]

    def apply(self, params: Params, inputs_NxD: jax.Array) -> jax.Array:
        """All logits, (N, 10 + n_aux)."""
        return nnx.merge(_graphdef(self), params)(inputs_NxD)[0]

    def noise_images(self, key: jax.Array, n: int) -> jax.Array:
        """n uniform-noise images for this model's input, U[0, 1]^n_pixels."""
        return noise_images(key, n, self.n_pixels)


@functools.lru_cache(maxsize=32)
def _graphdef(model: DigitsModel) -> nnx.GraphDef:
    """The module's static graph, split once per model shape."""
    return nnx.split(model.module(jax.random.key(0)), nnx.Param)[0]


def digit_accuracy(model: DigitsModel, params: Params, split: Split) -> jax.Array:
    """Share of `split` whose largest digit logit (auxiliary logits ignored) is the label."""
    logits = model.apply(params, jnp.asarray(split.inputs))[:, :N_DIGITS]
    return jnp.mean(jnp.argmax(logits, -1) == jnp.asarray(split.labels))


@dataclasses.dataclass(frozen=True)
class TeacherSpec:
    """How the teacher learns digits: Adam on the cross-entropy of the 10 digit logits only
    (its auxiliary logits keep their initial readout, as in the anchor)."""

    steps: int = 600
    batch_size: int = 256

    def __post_init__(self):
        check(self.steps >= 1, "teacher.steps", "a positive integer", self.steps)
        check(self.batch_size >= 1, "teacher.batch_size", "a positive integer", self.batch_size)


def train_teacher(
    model: DigitsModel,
    params: Params,
    data: Digits,
    spec: TeacherSpec,
    learning_rate: jax.Array | float,
    key: jax.Array,
) -> tuple[Params, jax.Array]:
    """Train on digit labels for `spec.steps` steps (batch i from `fold_in(key, i)`, the loop of
    `gravity.engine.training.train`); returns (params, whether every loss was finite)."""

    def loss(q, batch):
        inputs, labels = batch
        logits = model.apply(q, inputs)[:, :N_DIGITS]
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    def sample(step_key):
        return data.sample_train(step_key, spec.batch_size)

    trained = training.train(loss, sample, optax.adam(learning_rate), params, key, spec.steps)
    return trained.params, jnp.all(jnp.isfinite(trained.losses))


__all__ = [
    "CHANCE",
    "N_DIGITS",
    "N_PIXELS",
    "SIDE",
    "Digits",
    "DigitsModel",
    "Split",
    "TeacherSpec",
    "digit_accuracy",
    "linear_weights",
    "noise_images",
    "train_teacher",
    "upsample",
]
