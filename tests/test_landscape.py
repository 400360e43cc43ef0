"""Basin depth: barriers against closed forms, Lanczos against dense `numpy.linalg.eigh`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

from gravity.instruments import landscape

SETTINGS = settings(max_examples=25, deadline=None)


def _mlp_params(key, d_in=5, width=20, d_out=3):
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "hidden": {
            "w": jax.random.normal(k1, (d_in, width)) / np.sqrt(d_in),
            "b": 0.1 * jax.random.normal(k3, (width,)),
        },
        "out": {"w": jax.random.normal(k2, (width, d_out)) / np.sqrt(width), "b": jnp.zeros(d_out)},
    }


@pytest.fixture(scope="module")
def mlp():
    """A 2-layer tanh MLP (183 params) with squared loss on fixed random data."""
    kx, ky, kp = jax.random.split(jax.random.key(0), 3)
    x_NxI = jax.random.normal(kx, (32, 5))
    y_NxO = jax.random.normal(ky, (32, 3))

    def loss(params):
        h_NxH = jnp.tanh(x_NxI @ params["hidden"]["w"] + params["hidden"]["b"][None, :])
        out_NxO = h_NxH @ params["out"]["w"] + params["out"]["b"][None, :]
        return 0.5 * jnp.mean(jnp.sum((out_NxO - y_NxO) ** 2, axis=-1))

    params = _mlp_params(kp)
    flat_P, unravel = ravel_pytree(params)
    # Independent reference: jax.hessian on the raveled loss, eigh in float64 by numpy.
    hess_PxP = np.asarray(jax.hessian(lambda x: loss(unravel(x)))(flat_P), np.float64)
    hess_PxP = 0.5 * (hess_PxP + hess_PxP.T)
    eigvals_P = np.linalg.eigh(hess_PxP)[0][::-1]
    top = jax.jit(
        lambda p, key: landscape.top_hessian_eigenvalues(
            loss, p, 5, key=key, num_iterations=40, return_eigenvectors=True
        )
    )
    return {"loss": loss, "params": params, "hessian": hess_PxP, "eigvals": eigvals_P, "top": top}


def test_lanczos_top5_matches_dense_eigh(mlp):
    eigvals_K, _ = mlp["top"](mlp["params"], jax.random.key(1))
    ref_K = mlp["eigvals"][:5]
    assert ref_K.shape[0] == 5 and mlp["hessian"].shape[0] == 183
    np.testing.assert_allclose(np.asarray(eigvals_K), ref_K, rtol=1e-3)


def test_lanczos_eigenvectors_are_orthonormal_eigenvectors(mlp):
    eigvals_K, vecs_KxP = mlp["top"](mlp["params"], jax.random.key(2))
    vecs_KxP = np.asarray(vecs_KxP, np.float64)
    np.testing.assert_allclose(vecs_KxP @ vecs_KxP.T, np.eye(5), atol=1e-4)
    residual_KxP = vecs_KxP @ mlp["hessian"] - np.asarray(eigvals_K)[:, None] * vecs_KxP
    assert np.max(np.linalg.norm(residual_KxP, axis=1)) < 1e-2 * mlp["eigvals"][0]


def test_lanczos_deterministic_jit_matches_eager_and_vmap_matches_loop(mlp):
    key = jax.random.key(3)
    a = mlp["top"](mlp["params"], key)[0]
    np.testing.assert_array_equal(a, mlp["top"](mlp["params"], key)[0])
    eager = landscape.top_hessian_eigenvalues(
        mlp["loss"], mlp["params"], 5, key=key, num_iterations=40
    )
    np.testing.assert_allclose(eager, a, rtol=1e-5)
    keys = jax.random.split(key, 2)
    batched = jax.vmap(mlp["top"], in_axes=(None, 0))(mlp["params"], keys)[0]
    for i in range(2):
        np.testing.assert_allclose(batched[i], mlp["top"](mlp["params"], keys[i])[0], rtol=1e-5)


def test_hvp_matches_dense_hessian_on_pytree(mlp):
    tangent = _mlp_params(jax.random.key(4))
    hv = landscape.hvp(mlp["loss"], mlp["params"], tangent)
    assert jax.tree.structure(hv) == jax.tree.structure(tangent)
    hv_P = np.asarray(ravel_pytree(hv)[0], np.float64)
    ref_P = mlp["hessian"] @ np.asarray(ravel_pytree(tangent)[0], np.float64)
    np.testing.assert_allclose(hv_P, ref_P, atol=1e-5 * np.max(np.abs(ref_P)))


@pytest.fixture(scope="module")
def low_rank_operator():
    a_RxP = jax.random.normal(jax.random.key(5), (3, 20))
    hess_PxP = a_RxP.T @ a_RxP
    fn = jax.jit(
        lambda key: landscape.lanczos_top_eigenpairs(
            lambda v: hess_PxP @ v, 20, 5, key=key, num_iterations=10
        )
    )
    return hess_PxP, fn


def test_lanczos_restarts_on_invariant_krylov_space(low_rank_operator):
    # A rank-3 operator: the Krylov space closes after 3 steps; the restart must keep T exact
    # and report the zero eigenvalues, not garbage from dividing by beta ~ 0.
    hess_PxP, fn = low_rank_operator
    eigvals_K, vecs_KxP = fn(jax.random.key(6))
    ref = np.linalg.eigvalsh(np.asarray(hess_PxP, np.float64))[::-1][:5]
    np.testing.assert_allclose(eigvals_K, ref, rtol=1e-5, atol=1e-4)
    assert np.all(np.isfinite(vecs_KxP))
    np.testing.assert_allclose(vecs_KxP @ vecs_KxP.T, np.eye(5), atol=1e-4)


def test_lanczos_largest_algebraic_with_negative_spectrum():
    diag_P = jnp.array([-9.0, -4.0, -1.0, 0.5, 2.0, 3.0, -7.0, 1.5])
    eigvals_K, _ = landscape.lanczos_top_eigenpairs(
        lambda v: diag_P * v, 8, 3, key=jax.random.key(7), num_iterations=8
    )
    np.testing.assert_allclose(eigvals_K, [3.0, 2.0, 1.5], rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Barriers
# ---------------------------------------------------------------------------------------------


def test_interpolation_path_hits_endpoints_exactly():
    a = {"w": jnp.array([0.1, 0.7, -3.3]), "b": jnp.array(0.3)}
    b = {"w": jnp.array([1.9, -0.2, 2.7]), "b": jnp.array(-1.1)}
    alphas, path = landscape.interpolation_path(a, b, 7)
    assert alphas.shape == (7,) and path["w"].shape == (7, 3) and path["b"].shape == (7,)
    for leaf_a, leaf_b, leaf in zip(
        jax.tree.leaves(a), jax.tree.leaves(b), jax.tree.leaves(path), strict=True
    ):
        np.testing.assert_array_equal(leaf[0], leaf_a)
        np.testing.assert_array_equal(leaf[-1], leaf_b)


@pytest.fixture(scope="module")
def convex_path():
    centre = {"u": jnp.array([0.5, -1.0]), "v": jnp.array([[2.0]])}
    scales = jnp.array([1.0, 3.0, 0.2])

    def loss(p):
        flat = jnp.concatenate([(p["u"] - centre["u"]), (p["v"] - centre["v"]).ravel()])
        return jnp.sum(scales * flat**2)

    @jax.jit
    def barrier(x_3, y_3):
        a = {"u": x_3[:2], "v": x_3[2:].reshape(1, 1)}
        b = {"u": y_3[:2], "v": y_3[2:].reshape(1, 1)}
        _, losses = landscape.path_losses(loss, a, b, n_points=21)
        barriers = [
            landscape.barrier_height(losses, convention=c) for c in ("max_endpoint", "linear")
        ]
        return jnp.stack(barriers), jnp.max(losses)

    return barrier


coords = st.lists(st.floats(-5, 5, allow_nan=False), min_size=3, max_size=3)


@SETTINGS
@given(coords, coords)
def test_barrier_is_zero_on_convex_quadratic(convex_path, x, y):
    (max_endpoint, linear), scale = convex_path(jnp.array(x), jnp.array(y))
    # Both are >= 0 by construction; float32 rounding of the interpolated points and of the
    # chord can lift an interior point by a few ulps of the loss, never more.
    assert 0.0 <= max_endpoint <= 1e-6 * (1.0 + scale)
    assert 0.0 <= linear <= 1e-6 * (1.0 + scale)


def _double_well(p):
    """(u^2 - 1)^2 + 5 v^2 in coordinates rotated by 30 degrees, over a pytree."""
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    u = c * p["xy"][0] + s * p["xy"][1]
    v = -s * p["xy"][0] + c * p["xy"][1] + p["z"]
    return (u**2 - 1) ** 2 + 5 * v**2


@pytest.mark.parametrize("offset", [0.0, 0.4])
def test_barrier_of_double_well_is_one(offset):
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    # the minima u = -1 and u = +1 (shifted along v by `offset`, same loss at both ends)
    left = {"xy": jnp.array([-c, -s]), "z": jnp.array(offset)}
    right = {"xy": jnp.array([c, s]), "z": jnp.array(offset)}
    alphas, losses = landscape.path_losses(_double_well, left, right, n_points=41)
    np.testing.assert_allclose(losses[0], 5 * offset**2, atol=1e-6)
    np.testing.assert_allclose(alphas[20], 0.5)
    for convention in ("max_endpoint", "linear"):
        np.testing.assert_allclose(
            landscape.barrier_height(losses, convention=convention), 1.0, rtol=1e-5
        )


def test_barrier_conventions_differ_on_tilted_path_and_batch():
    losses_BxN = jnp.array([[0.0, 3.0, 2.0], [1.0, 0.5, 0.0]])
    np.testing.assert_allclose(landscape.barrier_height(losses_BxN), [1.0, 0.0])
    np.testing.assert_allclose(
        landscape.barrier_height(losses_BxN, convention="linear"), [2.0, 0.0]
    )
    uneven = landscape.barrier_height(
        losses_BxN[:1], convention="linear", alphas=jnp.array([0.0, 0.25, 1.0])
    )
    np.testing.assert_allclose(uneven, [2.5])
    with pytest.raises(ValueError):
        landscape.barrier_height(losses_BxN, convention="chord")


def test_trained_path_losses_match_loop_and_lax_map():
    xs = jnp.linspace(-1.5, 1.5, 9)
    thetas = {"xy": jnp.stack([xs, 0.5 * xs], axis=1), "z": jnp.zeros(9)}
    loop = np.array([_double_well(jax.tree.map(lambda t, i=i: t[i], thetas)) for i in range(9)])
    np.testing.assert_allclose(landscape.trained_path_losses(_double_well, thetas), loop, rtol=1e-6)
    np.testing.assert_allclose(
        landscape.trained_path_losses(_double_well, thetas, batch_size=4), loop, rtol=1e-6
    )
