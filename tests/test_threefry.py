"""The native threefry kernel (`gravity.run.threefry`): the bits of JAX's own hash, exactly.

Three references: Random123's known answers for threefry-2x32 (20 rounds), a plain numpy
implementation of the hash for arbitrary shapes and keys (hypothesis), and draws recorded from
jax.random under JAX's own CPU lowering before the kernel existed. Then the wiring: the sweep
runner's programs call the kernel, and a program XLA partitions across devices keeps JAX's loop.
"""

import jax
import jax.extend.random as jax_random
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.interpreters import mlir

from gravity.engine import presets
from gravity.run import threefry
from gravity.run.sweep import runner
from gravity.run.sweep.measures import history_outputs

assert threefry.use_native_threefry(), "the kernel must build here (g++ on PATH)"


def reference_hash(key1, key2, count1, count2):
    """Threefry-2x32 with 20 rounds in numpy (uint32 arithmetic wraps), broadcasting."""
    arrays = (np.asarray(a, np.uint32) for a in (key1, key2, count1, count2))
    key1, key2, x0, x1 = np.broadcast_arrays(*arrays)
    ks = (key1, key2, key1 ^ key2 ^ np.uint32(0x1BD11BDA))
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    with np.errstate(over="ignore"):
        x0, x1 = x0 + ks[0], x1 + ks[1]
        for group in range(5):
            for r in rotations[group % 2]:
                x0 = x0 + x1
                x1 = (x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))
                x1 = x1 ^ x0
            x0 = x0 + ks[(group + 1) % 3]
            x1 = x1 + ks[(group + 2) % 3] + np.uint32(group + 1)
    return x0, x1


@jax.jit
def native_hash(key1, key2, count1, count2):
    return jax_random.threefry2x32_p.bind(key1, key2, count1, count2)


@pytest.mark.parametrize(
    "key, count, expected",
    [
        ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
        ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
        ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
    ],
)
def test_the_kernel_gives_random123s_known_answers(key, count, expected):
    args = [np.uint32(v) for v in (*key, *count)]
    assert tuple(int(y) for y in native_hash(*args)) == expected
    assert tuple(int(y) for y in reference_hash(*args)) == expected


shapes = st.sampled_from([(), (1,), (7,), (3, 5), (2, 0), (4, 1, 3)])
words = st.integers(0, 2**32 - 1)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=words, scalar_keys=st.booleans())
def test_the_kernel_equals_the_hash_for_any_shape_and_keys(shape, seed, scalar_keys):
    rng = np.random.default_rng(seed)
    key_shape = () if scalar_keys else shape
    key1, key2 = (rng.integers(0, 2**32, key_shape, dtype=np.uint32) for _ in range(2))
    count1, count2 = (rng.integers(0, 2**32, shape, dtype=np.uint32) for _ in range(2))
    got = native_hash(key1, key2, count1, count2)
    for y, want in zip(got, reference_hash(key1, key2, count1, count2), strict=True):
        np.testing.assert_array_equal(np.asarray(y), want)


def test_jax_random_draws_equal_those_of_jaxs_own_lowering():
    """Recorded from jax.random with JAX's rolled-loop lowering (JAX 0.10.2, before the kernel)."""

    @jax.jit
    def draws(key):
        return (
            jax.random.bits(key, (2, 3), jnp.uint32),
            jax.random.key_data(jax.random.split(key, 3)),
            jax.random.randint(jax.random.fold_in(key, 7), (5,), 0, 1000),
        )

    bits, split, ints = (np.asarray(a).tolist() for a in draws(jax.random.key(42)))
    assert bits == [[2098992034, 2919706841, 2646866425], [2409546199, 1935504149, 2516274904]]
    assert split == [[1832780943, 270669613], [64467757, 2916123636], [2465931498, 255383827]]
    assert ints == [613, 296, 874, 67, 678]
    assert threefry.TARGET in draws.lower(jax.random.key(42)).as_text()


def test_the_kernel_serves_one_devices_arrays_only():
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("runs",))
    assert threefry._one_device(mlir.ShardingContext(num_devices=1))
    assert not threefry._one_device(mlir.ShardingContext(num_devices=2))
    assert threefry._one_device(mlir.SPMDAxisContext(mesh, frozenset({"runs"})))
    assert not threefry._one_device(mlir.SPMDAxisContext(mesh, frozenset()))


def test_the_runners_programs_call_the_kernel():
    spec = presets.standard_spec("mlp", "tiny")
    knobs = presets.standard_knobs(spec)
    run = runner._Runner(jax.devices(), budget_bytes=2**30)
    lowered = run.lower(spec, history_outputs, (), run.batch_for(2), knobs)
    assert threefry.TARGET in lowered.as_text()


def test_a_failed_build_keeps_jaxs_lowering_with_one_warning(monkeypatch, tmp_path):
    monkeypatch.setattr(threefry, "_ENABLED", None)
    monkeypatch.setenv("GRAVITY_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.warns(UserWarning, match="threefry stays JAX's own loop on CPU"):
        assert not threefry.use_native_threefry()
    assert not threefry.use_native_threefry()  # decided once per process
    monkeypatch.setattr(threefry, "_ENABLED", None)
    monkeypatch.setenv(threefry.SWITCH_ENV, "0")
    assert not threefry.use_native_threefry()
