"""Basin depth: loss barriers along weight-space paths and the Hessian's top spectrum.

The gravitational reading (docs/design.md) says pretraining digs a deep, wide basin and alignment
is a shallow displacement from it. This module measures that "basin depth" for any loss over any
parameter pytree, two ways:

- **barriers**: the loss along the straight line between two parameter vectors (e.g. aligned and
  pretrained weights) or along a recorded training trajectory, and the height of the bump on it;
- **curvature**: the top Hessian eigenvalues from Lanczos on forward-over-reverse Hessian-vector
  products, which never builds the Hessian and runs inside `jax.jit` / `jax.vmap`.

Every function takes `loss_fn(params) -> scalar`; close over the data before passing it in.
"""

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

PyTree = Any
LossFn = Callable[[PyTree], jax.Array]
MatVec = Callable[[jax.Array], jax.Array]

__all__ = [
    "barrier_height",
    "dense_hessian",
    "flat_hvp",
    "hvp",
    "interpolation_path",
    "lanczos_tridiagonal",
    "lanczos_top_eigenpairs",
    "path_losses",
    "top_hessian_eigenvalues",
    "trained_path_losses",
]


# --------------------------------------------------------------------------------------------
# Loss barriers
# --------------------------------------------------------------------------------------------


def interpolation_path(theta_a: PyTree, theta_b: PyTree, n_points: int) -> tuple[jax.Array, PyTree]:
    """Points on the straight path (1 - alpha) theta_a + alpha theta_b, alpha in [0, 1].

    Returns `(alphas_N, thetas)` where every leaf of `thetas` gains a leading axis of `n_points`.
    The endpoints are reproduced exactly (no `a + alpha (b - a)` rounding at alpha = 1).
    """
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2, got {n_points}")
    alphas_N = jnp.linspace(0.0, 1.0, n_points)

    def mix(a: jax.Array, b: jax.Array) -> jax.Array:
        a, b = jnp.asarray(a), jnp.asarray(b)
        alpha = alphas_N.astype(jnp.result_type(a, b)).reshape((n_points,) + (1,) * a.ndim)
        return (1 - alpha) * a[None] + alpha * b[None]

    return alphas_N, jax.tree.map(mix, theta_a, theta_b)


def trained_path_losses(
    loss_fn: LossFn, thetas_stacked: PyTree, *, batch_size: int | None = None
) -> jax.Array:
    """Loss at every checkpoint of a recorded trajectory (leaves with a leading checkpoint axis).

    Evaluated with `vmap`; pass `batch_size` to evaluate that many checkpoints at a time
    (`lax.map`) when a full `vmap` would not fit in memory.
    """
    if batch_size is None:
        return jax.vmap(loss_fn)(thetas_stacked)
    return jax.lax.map(loss_fn, thetas_stacked, batch_size=batch_size)


def path_losses(
    loss_fn: LossFn,
    theta_a: PyTree,
    theta_b: PyTree,
    n_points: int = 25,
    *,
    batch_size: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Loss along the straight path from `theta_a` (alpha = 0) to `theta_b` (alpha = 1).

    Returns `(alphas_N, losses_N)`; use an odd `n_points` to include the midpoint.
    """
    alphas_N, thetas = interpolation_path(theta_a, theta_b, n_points)
    return alphas_N, trained_path_losses(loss_fn, thetas, batch_size=batch_size)


def barrier_height(
    losses: jax.Array,
    *,
    convention: Literal["max_endpoint", "linear"] = "max_endpoint",
    alphas: jax.Array | None = None,
) -> jax.Array:
    """Height of the loss barrier on a path, over the last axis of `losses` (leading axes batch).

    Conventions (both are >= 0 by construction, because the endpoints belong to the path, so
    nothing is clamped; a path with no bump, e.g. on a convex loss, gives exactly 0):

    - `"max_endpoint"` (default): max_alpha L(alpha) - max(L(0), L(1)). The height to climb, from
      the higher endpoint, to cross between the basins: the basin-depth reading.
    - `"linear"`: max_alpha [L(alpha) - ((1 - alpha) L(0) + alpha L(1))], the excess over linear
      interpolation of the endpoint losses (the mode-connectivity convention). `alphas` gives the
      path coordinate of each point; by default points are taken as equally spaced in [0, 1]
      (right for `path_losses`; for a trained path pass e.g. normalised cumulative distance).

    For the double well (x^2 - 1)^2 between x = -1 and x = +1 both give 1.
    """
    losses = jnp.asarray(losses)
    if convention == "max_endpoint":
        ends = jnp.maximum(losses[..., 0], losses[..., -1])
        return jnp.max(losses, axis=-1) - ends
    if convention == "linear":
        n = losses.shape[-1]
        alphas = jnp.linspace(0.0, 1.0, n) if alphas is None else jnp.asarray(alphas)
        alphas = jnp.broadcast_to(alphas.astype(losses.dtype), losses.shape)
        chord = (1 - alphas) * losses[..., :1] + alphas * losses[..., -1:]
        return jnp.max(losses - chord, axis=-1)
    raise ValueError(f"unknown convention {convention!r}")


# --------------------------------------------------------------------------------------------
# Hessian-vector products
# --------------------------------------------------------------------------------------------


def hvp(loss_fn: LossFn, params: PyTree, tangent: PyTree) -> PyTree:
    """Hessian-vector product H(params) @ tangent on pytrees, forward-over-reverse.

    `jax.jvp` of `jax.grad`: one forward-mode pass through the gradient, about the cost of two
    gradients and no P x P memory.
    """
    return jax.jvp(jax.grad(loss_fn), (params,), (tangent,))[1]


def flat_hvp(loss_fn: LossFn, params: PyTree) -> tuple[MatVec, jax.Array, Callable]:
    """The Hessian at `params` as a matvec on flat vectors (via `ravel_pytree`).

    Returns `(matvec, flat_params, unravel)`; `matvec(v_P) = H v_P` with H the Hessian of
    `loss_fn` with respect to the flattened parameters.
    """
    flat_P, unravel = ravel_pytree(params)
    grad_flat = jax.grad(lambda x_P: loss_fn(unravel(x_P)))

    def matvec(v_P: jax.Array) -> jax.Array:
        return jax.jvp(grad_flat, (flat_P,), (v_P.astype(flat_P.dtype),))[1]

    return matvec, flat_P, unravel


def dense_hessian(loss_fn: LossFn, params: PyTree) -> jax.Array:
    """Dense P x P Hessian of `loss_fn` over the flattened parameters (small models only).

    Symmetrised, so rounding in the two AD passes cannot make it asymmetric.
    """
    flat_P, unravel = ravel_pytree(params)
    hess_PxP = jax.hessian(lambda x_P: loss_fn(unravel(x_P)))(flat_P)
    return 0.5 * (hess_PxP + hess_PxP.T)


# --------------------------------------------------------------------------------------------
# Lanczos
# --------------------------------------------------------------------------------------------


def _orthogonalise(w_P: jax.Array, basis_MxP: jax.Array) -> jax.Array:
    """Remove `w`'s components along the (orthonormal or zero) rows of the basis, twice.

    Classical Gram-Schmidt applied twice ("twice is enough", Giraud et al. 2005) keeps the Lanczos
    basis orthogonal to working precision; rows not yet filled are zero and project nothing.
    """
    for _ in range(2):
        w_P = w_P - basis_MxP.T @ (basis_MxP @ w_P)
    return w_P


def lanczos_tridiagonal(
    matvec: MatVec, v0_P: jax.Array, num_iterations: int, *, key: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Lanczos with full reorthogonalisation for a symmetric operator on flat vectors.

    Runs `num_iterations` (m <= P) steps from `v0_P` inside one `lax.fori_loop`, so it jits and
    vmaps. Returns `(alphas_M, betas_Mm1, basis_MxP)` with Q T Q^T the projection of the operator
    onto the Krylov space, T tridiagonal with diagonal `alphas` and off-diagonal `betas`.

    When the Krylov space becomes invariant (beta ~ 0, e.g. a low-rank Hessian) the iteration
    restarts from a fresh random vector orthogonal to the basis (drawn from `key`) and the
    off-diagonal entry is set to 0, so T stays exact and the basis keeps growing.
    """
    (dim,) = v0_P.shape
    m = num_iterations
    if not 1 <= m <= dim:
        raise ValueError(f"num_iterations must be in [1, {dim}], got {m}")
    dtype = v0_P.dtype
    eps = jnp.finfo(dtype).eps

    basis = jnp.zeros((m + 1, dim), dtype).at[0].set(v0_P / jnp.linalg.norm(v0_P))
    alphas = jnp.zeros((m,), dtype)
    betas = jnp.zeros((m,), dtype)

    def body(i, carry):
        basis, alphas, betas, scale = carry
        q_P = basis[i]
        w_P = matvec(q_P)
        alpha = jnp.vdot(q_P, w_P)
        w_P = _orthogonalise(w_P, basis)
        beta = jnp.linalg.norm(w_P)
        scale = jnp.maximum(scale, jnp.abs(alpha) + beta)
        invariant = beta <= 10 * eps * dim**0.5 * scale
        fresh_P = _orthogonalise(
            jax.random.normal(jax.random.fold_in(key, i), (dim,), dtype), basis
        )
        next_P = jnp.where(
            invariant, fresh_P / jnp.linalg.norm(fresh_P), w_P / jnp.where(invariant, 1, beta)
        )
        beta = jnp.where(invariant, 0, beta)
        return basis.at[i + 1].set(next_P), alphas.at[i].set(alpha), betas.at[i].set(beta), scale

    basis, alphas, betas, _ = jax.lax.fori_loop(
        0, m, body, (basis, alphas, betas, jnp.zeros((), dtype))
    )
    return alphas, betas[: m - 1], basis[:m]


def lanczos_top_eigenpairs(
    matvec: MatVec,
    dim: int,
    k: int,
    *,
    key: jax.Array,
    num_iterations: int | None = None,
    dtype: Any = jnp.float32,
) -> tuple[jax.Array, jax.Array]:
    """Top-k (largest algebraic) eigenpairs of a symmetric operator on R^dim, by Lanczos.

    Returns `(eigenvalues_K, eigenvectors_KxP)`, eigenvalues descending, eigenvectors as
    orthonormal flat rows (Ritz vectors). `num_iterations` defaults to min(dim, max(4k, 32)).
    Extreme eigenvalues converge first; raise `num_iterations` for clustered spectra.
    For the most negative eigenvalues, pass the negated operator.
    """
    m = min(dim, max(4 * k, 32)) if num_iterations is None else num_iterations
    if not 1 <= k <= m:
        raise ValueError(f"need 1 <= k <= num_iterations, got k={k}, num_iterations={m}")
    start_key, restart_key = jax.random.split(key)
    v0_P = jax.random.normal(start_key, (dim,), dtype)
    alphas, betas, basis_MxP = lanczos_tridiagonal(matvec, v0_P, m, key=restart_key)
    tri_MxM = jnp.diag(alphas) + jnp.diag(betas, 1) + jnp.diag(betas, -1)
    ritz_M, coeffs_MxM = jnp.linalg.eigh(tri_MxM)
    top = jnp.arange(m - 1, m - 1 - k, -1)
    eigvecs_KxP = (basis_MxP.T @ coeffs_MxM[:, top]).T
    return ritz_M[top], eigvecs_KxP


def top_hessian_eigenvalues(
    loss_fn: LossFn,
    params: PyTree,
    k: int,
    *,
    key: jax.Array,
    num_iterations: int | None = None,
    return_eigenvectors: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Top-k (largest algebraic) Hessian eigenvalues of `loss_fn` at `params`: basin curvature.

    Lanczos with full reorthogonalisation on forward-over-reverse HVPs; works for any parameter
    pytree and runs under `jax.jit` / `jax.vmap` (k and `num_iterations` are static). Returns the
    eigenvalues, descending, and with `return_eigenvectors` also `eigenvectors_KxP` as flat vectors
    in `ravel_pytree(params)` order. Cost: `num_iterations` HVPs plus O(m^2 P) for the basis.
    """
    matvec, flat_P, _ = flat_hvp(loss_fn, params)
    eigvals_K, eigvecs_KxP = lanczos_top_eigenpairs(
        matvec, flat_P.shape[0], k, key=key, num_iterations=num_iterations, dtype=flat_P.dtype
    )
    return (eigvals_K, eigvecs_KxP) if return_eigenvectors else eigvals_K
