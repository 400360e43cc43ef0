"""The digits world (`gravity.engine.digits`): the 8x8 digits upsampled once to 28x28 for the
input-dimension test, and a model whose input and noise follow its pixel count."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.engine import digits
from gravity.validation import ConfigError

SMALL = digits.Digits()
LARGE = digits.Digits(side=28)


def test_upsampled_digits_are_the_same_digits_at_784_pixels_with_the_same_split():
    for small, large in ((SMALL.train, LARGE.train), (SMALL.held_out, LARGE.held_out)):
        assert large.inputs.shape == (small.labels.size, 784)
        assert large.inputs.dtype == np.float32
        np.testing.assert_array_equal(large.labels, small.labels)
        assert large.inputs.min() >= 0.0 and large.inputs.max() <= 1.0
        # bilinear weights sum to one per output pixel and per axis: the mean ink is kept
        np.testing.assert_allclose(large.inputs.mean(1), small.inputs.mean(1), atol=1e-5)
    assert (LARGE.train.inputs == digits.Digits(side=28).train.inputs).all()  # deterministic
    assert LARGE.n_pixels == 784 and SMALL.n_pixels == digits.N_PIXELS == 64


def test_upsampling_matches_jax_image_resize_and_keeps_a_constant_image():
    images = np.random.default_rng(0).random((3, 64)).astype(np.float32)
    found = digits.upsample(images, 28)
    expected = jax.image.resize(jnp.asarray(images).reshape(3, 8, 8), (3, 28, 28), "linear")
    np.testing.assert_allclose(found, np.asarray(expected).reshape(3, 784), atol=1e-6)
    constant = np.full((1, 64), 0.3, np.float32)
    np.testing.assert_allclose(digits.upsample(constant, 28), 0.3, atol=1e-7)
    assert digits.upsample(images, 8) is images


@settings(max_examples=20, deadline=None)
@given(side=st.integers(8, 40), seed=st.integers(0, 2**16))
def test_every_upsampled_pixel_is_a_convex_mix_of_its_neighbours(side, seed):
    weights = digits.linear_weights(8, side)
    assert weights.shape == (side, 8) and (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(1), 1.0)
    assert ((weights > 0).sum(1) <= 2).all()
    images = np.random.default_rng(seed).random((2, 64)).astype(np.float32)
    found = digits.upsample(images, side).reshape(2, -1)
    assert found.min() >= images.min() - 1e-6 and found.max() <= images.max() + 1e-6


def test_the_digits_refuse_a_side_below_eight_and_non_square_images():
    with pytest.raises(ConfigError, match="side"):
        digits.Digits(side=4)
    with pytest.raises(ConfigError, match="square"):
        digits.upsample(np.zeros((1, 60), np.float32), 28)


def test_a_784_pixel_model_reads_784_pixels_and_draws_784_pixel_noise():
    model = digits.DigitsModel(hidden=(8, 8), n_aux=3, n_pixels=784)
    params = model.init(jax.random.key(0))
    noise = model.noise_images(jax.random.key(1), 5)
    assert noise.shape == (5, 784) and model.apply(params, noise).shape == (5, 13)
    assert params["hidden"][0]["kernel"].shape == (784, 8)
    accuracy = digits.digit_accuracy(model, params, LARGE.held_out)
    assert 0.0 <= float(accuracy) <= 1.0
    small = digits.DigitsModel(hidden=(8, 8), n_aux=3)
    np.testing.assert_array_equal(
        small.noise_images(jax.random.key(1), 5), digits.noise_images(jax.random.key(1), 5)
    )
