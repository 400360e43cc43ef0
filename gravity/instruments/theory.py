"""The gravitational model's quantitative predictions, from a quadratic model of the benign loss.

Around the safety-aligned weights theta_S, write the benign loss as a quadratic in the
displacement d = theta - theta_S (all vectors flat, in `ravel_pytree` order):

    L(theta_S + d) ~= L_S + g . d + 1/2 d^T H d.

Benign fine-tuning by gradient descent, d_{t+1} = d_t - lr (g + H d_t), then has an exact solution
in H's eigenbasis (H = sum_i lambda_i v_i v_i^T, c_i = v_i . d, gamma_i = v_i . g):

    c_i(t) = (1 - lr lambda_i)^t c_i(0) - gamma_i (1 - (1 - lr lambda_i)^t) / lambda_i,

and gradient flow replaces (1 - lr lambda_i)^t by exp(-lambda_i t). Directions with lambda_i = 0
("flat") just drift, c_i(t) = c_i(0) - lr t gamma_i. Everything below is evaluated from this closed
form, so a prediction at any step (dense early, log-spaced later) costs one matmul.

The history's helpful-only witness theta_H enters through the *witness displacement*
w = theta_H - theta_S, the way back that alignment closed. The predictions, in the units the
experiments measure:

- `harmfulness_proxy(d, w) = d . w / |w|^2`: 0 at theta_S, 1 at theta_H (a projection, so it can
  leave [0, 1]); `harm_proxy_by_direction` splits it over H's eigendirections;
- `weight_alignment(d, w) = cos(d, w)`;
- `activation_alignment(J, d, v_rev) = cos(J d, v_rev)`: to first order the activations are linear
  in the parameters, so the representational drift is J d with J the activation Jacobian at theta_S;
- `reversion_share(model, w)`: the share of |w|^2 lying in H's positive-curvature eigenspace, i.e.
  the part of the alignment displacement that the benign loss exerts a restoring force on. When the
  witness minimises the benign quadratic (g = -H w: benign data "remembers" theta_H, the
  gravitational hypothesis at its strongest), GD from theta_S converges to d* = P_+ w and the
  asymptotic harmfulness proxy equals this share exactly; the rest of w (flat directions) is never
  undone by benign data.

A dense model (`quadratic_model_from_loss`) is exact for small networks; `low_rank_quadratic_model`
keeps only Lanczos top-k curvature and treats the orthogonal complement as flat (no curvature,
gradient kept), which overstates drift along the discarded directions and can only understate
`reversion_share` when the discarded eigenvalues are positive.

`r_squared` scores a prediction against what was measured, as it stands and after a linear refit.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gravity.instruments.landscape import dense_hessian, top_hessian_eigenvalues

PyTree = Any
LossFn = Callable[[PyTree], jax.Array]
Jacobian = jax.Array | Callable[[jax.Array], jax.Array]

__all__ = [
    "QuadraticModel",
    "ReversionPrediction",
    "activation_alignment",
    "activation_jacobian",
    "asymptotic_displacement",
    "gd_displacement",
    "gd_trajectory",
    "gradient_flow",
    "harm_proxy_by_direction",
    "harmfulness_proxy",
    "low_rank_quadratic_model",
    "predict_reversion",
    "predicted_drift",
    "quadratic_model_from_loss",
    "r_squared",
    "reversion_share",
    "weight_alignment",
]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class QuadraticModel:
    """L(theta_S + d) = loss + grad . d + 1/2 d^T H d, with H = V diag(eigenvalues) V^T.

    H is stored by its eigendecomposition: `eigenvectors_PxR` has orthonormal columns. With R = P
    the model is dense and exact; with R < P the orthogonal complement of the columns is flat
    (zero curvature) by definition. A pytree, so it passes through `jit` and `vmap`.
    """

    eigenvalues: jax.Array  # (R,)
    eigenvectors: jax.Array  # (P, R)
    grad: jax.Array  # (P,)
    loss: jax.Array  # ()

    @classmethod
    def from_hessian(
        cls, hessian_PxP: jax.Array, grad_P: jax.Array, loss: jax.Array | float = 0.0
    ) -> "QuadraticModel":
        """Dense model from a symmetric Hessian (symmetrised here) and a gradient."""
        hessian_PxP = jnp.asarray(hessian_PxP)
        eigvals_P, eigvecs_PxP = jnp.linalg.eigh(0.5 * (hessian_PxP + hessian_PxP.T))
        grad_P = jnp.asarray(grad_P, hessian_PxP.dtype)
        return cls(eigvals_P, eigvecs_PxP, grad_P, jnp.asarray(loss, hessian_PxP.dtype))

    @property
    def dim(self) -> int:
        return self.eigenvectors.shape[0]

    @property
    def hessian(self) -> jax.Array:
        """The dense P x P Hessian V diag(lambda) V^T (zero on the flat complement)."""
        return (self.eigenvectors * self.eigenvalues[None, :]) @ self.eigenvectors.T

    def hvp(self, d_P: jax.Array) -> jax.Array:
        return self.eigenvectors @ (self.eigenvalues * (self.eigenvectors.T @ d_P))

    def loss_at(self, d_P: jax.Array) -> jax.Array:
        """Model loss at displacement d from theta_S."""
        c_R = self.eigenvectors.T @ d_P
        return self.loss + self.grad @ d_P + 0.5 * jnp.sum(self.eigenvalues * c_R**2)

    def grad_at(self, d_P: jax.Array) -> jax.Array:
        """Model gradient g + H d at displacement d."""
        return self.grad + self.hvp(d_P)


def quadratic_model_from_loss(loss_fn: LossFn, params: PyTree) -> QuadraticModel:
    """Exact second-order model of `loss_fn` at `params` (dense Hessian; small models only).

    Flat vectors are in `ravel_pytree(params)` order; its `unravel` maps a displacement back to a
    pytree. Pure arrays in and out, so it runs under `jit` / `vmap`.
    """
    flat_P, unravel = ravel_pytree(params)
    loss, grad_P = jax.value_and_grad(lambda x_P: loss_fn(unravel(x_P)))(flat_P)
    return QuadraticModel.from_hessian(dense_hessian(loss_fn, params), grad_P, loss)


def low_rank_quadratic_model(
    loss_fn: LossFn,
    params: PyTree,
    k: int,
    *,
    key: jax.Array,
    num_iterations: int | None = None,
) -> QuadraticModel:
    """Second-order model keeping only the top-k Hessian eigenpairs (Lanczos), for large models.

    The exact gradient is kept; curvature outside the top-k eigenspace is set to zero, i.e. the
    complement is treated as flat. Good for the stiff directions that dominate early dynamics,
    wrong (too much drift) along discarded directions of real curvature at long times.
    """
    flat_P, unravel = ravel_pytree(params)
    loss, grad_P = jax.value_and_grad(lambda x_P: loss_fn(unravel(x_P)))(flat_P)
    eigvals_K, eigvecs_KxP = top_hessian_eigenvalues(
        loss_fn, params, k, key=key, num_iterations=num_iterations, return_eigenvectors=True
    )
    return QuadraticModel(eigvals_K, eigvecs_KxP.T, grad_P, loss)


# --------------------------------------------------------------------------------------------
# Closed-form dynamics
# --------------------------------------------------------------------------------------------


def _evolve(
    model: QuadraticModel,
    d0_P: jax.Array | None,
    decay_TxR: jax.Array,
    accum_TxR: jax.Array,
    flat_time_T: jax.Array,
) -> jax.Array:
    """d(t) = V (decay c0 - accum gamma) + d0_perp - flat_time g_perp, stacked over t."""
    vecs_PxR = model.eigenvectors
    d0_P = jnp.zeros_like(model.grad) if d0_P is None else jnp.asarray(d0_P, model.grad.dtype)
    c0_R, gamma_R = vecs_PxR.T @ d0_P, vecs_PxR.T @ model.grad
    c_TxR = decay_TxR * c0_R[None, :] - accum_TxR * gamma_R[None, :]
    d_TxP = c_TxR @ vecs_PxR.T
    if vecs_PxR.shape[1] == vecs_PxR.shape[0]:
        # Dense model: the complement is empty; its rounding residue would drift linearly in t.
        return d_TxP
    d0_perp_P = d0_P - vecs_PxR @ c0_R
    g_perp_P = model.grad - vecs_PxR @ gamma_R
    return d_TxP + d0_perp_P[None, :] - flat_time_T[:, None] * g_perp_P[None, :]


def gd_displacement(
    model: QuadraticModel, d0_P: jax.Array | None, lr: float | jax.Array, steps_T: jax.Array
) -> jax.Array:
    """Displacement from theta_S after `steps_T` (integers, any order) full-batch GD steps.

    Exact for the quadratic model: returns `d_TxP` with d_t = (I - lr H)^t d0 - sum_{s<t}
    (I - lr H)^s lr g, evaluated per eigendirection with `log1p`/`expm1` so that small curvature
    loses no precision. `d0_P=None` starts at theta_S. Unstable directions (lr lambda > 2, or
    lambda < 0) grow, as GD does.
    """
    lam_R = model.eigenvalues
    dtype = model.grad.dtype
    lr = jnp.asarray(lr, dtype)
    t_Tx1 = jnp.asarray(steps_T).astype(dtype)[:, None]
    base_R = 1 - lr * lam_R
    pos_R = base_R > 0
    log_base_R = jnp.log1p(-lr * jnp.where(pos_R, lam_R, 0))
    zero_R = lam_R == 0
    safe_lam_R = jnp.where(zero_R, 1, lam_R)
    decay_TxR = jnp.where(
        pos_R[None, :], jnp.exp(t_Tx1 * log_base_R[None, :]), base_R[None, :] ** t_Tx1
    )
    accum_TxR = jnp.where(
        pos_R[None, :],
        -jnp.expm1(t_Tx1 * log_base_R[None, :]) / safe_lam_R[None, :],
        (1 - decay_TxR) / safe_lam_R[None, :],
    )
    accum_TxR = jnp.where(zero_R[None, :], lr * t_Tx1, accum_TxR)
    return _evolve(model, d0_P, decay_TxR, accum_TxR, lr * t_Tx1[:, 0])


def gd_trajectory(
    model: QuadraticModel, d0_P: jax.Array | None, lr: float | jax.Array, num_steps: int
) -> jax.Array:
    """Closed-form GD displacements at steps 0, 1, ..., num_steps: shape (num_steps + 1, P)."""
    return gd_displacement(model, d0_P, lr, jnp.arange(num_steps + 1))


def gradient_flow(model: QuadraticModel, d0_P: jax.Array | None, times_T: jax.Array) -> jax.Array:
    """Gradient-flow displacement d(t) = e^{-Ht} d0 - H^{-1}(I - e^{-Ht}) g at `times_T`.

    The continuous-time limit of GD (time = lr x steps); H^{-1}(I - e^{-Ht}) is read as t on flat
    directions.
    """
    lam_R = model.eigenvalues
    dtype = model.grad.dtype
    t_Tx1 = jnp.asarray(times_T).astype(dtype)[:, None]
    zero_R = lam_R == 0
    x_TxR = -t_Tx1 * lam_R[None, :]
    accum_TxR = jnp.where(
        zero_R[None, :], t_Tx1, jnp.expm1(x_TxR) / jnp.where(zero_R, -1, -lam_R)[None, :]
    )
    return _evolve(model, d0_P, jnp.exp(x_TxR), accum_TxR, t_Tx1[:, 0])


def _curved(model: QuadraticModel, rtol: float) -> jax.Array:
    """Mask of positive-curvature directions: lambda > rtol * max |lambda| (rounding is flat)."""
    lam_R = model.eigenvalues
    return lam_R > rtol * jnp.max(jnp.abs(lam_R), initial=0.0)


def asymptotic_displacement(
    model: QuadraticModel, d0_P: jax.Array | None = None, *, rtol: float = 1e-5
) -> jax.Array:
    """Where benign fine-tuning settles: -gamma_i / lambda_i on positive-curvature directions.

    On directions with lambda <= rtol * max|lambda| (flat, or negative) the component of `d0_P`
    is kept. This is the limit of stable GD (lr < 2 / lambda_max) and of gradient flow when g has
    no component outside the positive-curvature eigenspace; otherwise that remainder drifts
    linearly (flat) or escapes (negative curvature) and has no limit.
    """
    vecs_PxR = model.eigenvectors
    d0_P = jnp.zeros_like(model.grad) if d0_P is None else jnp.asarray(d0_P, model.grad.dtype)
    curved_R = _curved(model, rtol)
    gamma_R = vecs_PxR.T @ model.grad
    c0_R = vecs_PxR.T @ d0_P
    lam_R = jnp.where(curved_R, model.eigenvalues, 1)
    c_R = jnp.where(curved_R, -gamma_R / lam_R, c0_R)
    return d0_P + vecs_PxR @ (c_R - c0_R)


def reversion_share(
    model: QuadraticModel, witness_P: jax.Array, *, rtol: float = 1e-5
) -> jax.Array:
    """Share of the alignment displacement w = theta_H - theta_S that benign data can undo.

    Defined as |P_+ w|^2 / |w|^2 in [0, 1], P_+ the projector onto H's eigendirections with
    lambda > rtol * max|lambda| (the benign loss's positive-curvature, "restoring" subspace).
    1 when H is positive definite, 0 when w lies in H's null space. If theta_H minimises the
    benign quadratic (g = -H w), GD/flow from theta_S ends at d* = P_+ w and this share is the
    asymptotic harmfulness proxy. For a low-rank model it counts only the kept top-k directions.
    """
    witness_P = jnp.asarray(witness_P, model.grad.dtype)
    omega_R = model.eigenvectors.T @ witness_P
    kept = jnp.sum(jnp.where(_curved(model, rtol), omega_R**2, 0))
    return kept / jnp.sum(witness_P**2)


# --------------------------------------------------------------------------------------------
# Observables: what the experiments measure
# --------------------------------------------------------------------------------------------


def _cosine(a_TxD: jax.Array, b_D: jax.Array) -> jax.Array:
    """cos(a_t, b) over the last axis; 0 where a_t = 0 (e.g. no drift yet at t = 0), NaN-free."""
    sq = jnp.sum(a_TxD**2, axis=-1) * jnp.sum(b_D**2)
    nonzero = sq > 0
    # sqrt of a guarded value: the norm's gradient at 0 would otherwise be NaN
    return jnp.where(nonzero, (a_TxD @ b_D) / jnp.sqrt(jnp.where(nonzero, sq, 1)), 0)


def harmfulness_proxy(displacements: jax.Array, witness_P: jax.Array) -> jax.Array:
    """Progress back toward theta_H: d . w / |w|^2 (0 at theta_S, 1 at theta_H), per row of d."""
    witness_P = jnp.asarray(witness_P)
    return (displacements @ witness_P) / jnp.sum(witness_P**2)


def harm_proxy_by_direction(
    model: QuadraticModel, displacements: jax.Array, witness_P: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Split `harmfulness_proxy` over H's eigendirections: how each one undoes the alignment.

    Returns `(per_direction_...xR, flat_...)` with per_direction_i = c_i omega_i / |w|^2
    (c_i = v_i . d, omega_i = v_i . w) and `flat` the part from the complement of the model's
    eigenvectors (zero for a dense model); they sum to the proxy. The fraction of w undone along
    direction i is c_i / omega_i = per_direction_i |w|^2 / omega_i^2.
    """
    witness_P = jnp.asarray(witness_P, model.grad.dtype)
    norm2 = jnp.sum(witness_P**2)
    omega_R = model.eigenvectors.T @ witness_P
    coords = displacements @ model.eigenvectors
    per_direction = jnp.einsum("...r,r->...r", coords, omega_R) / norm2
    flat = harmfulness_proxy(displacements, witness_P) - jnp.sum(per_direction, axis=-1)
    return per_direction, flat


def weight_alignment(displacements: jax.Array, witness_P: jax.Array) -> jax.Array:
    """cos(d_t, theta_H - theta_S) per row of `displacements` (0 where d_t = 0)."""
    return _cosine(displacements, jnp.asarray(witness_P))


def activation_jacobian(act_fn: Callable[[PyTree], jax.Array], params: PyTree) -> jax.Array:
    """Dense Jacobian J_DxP of the flattened activations `act_fn(params)` w.r.t. flat params.

    Forward mode (`jacfwd`), one JVP per parameter: small models only. For large ones pass a
    JVP closure to `predicted_drift` / `activation_alignment` instead.
    """
    flat_P, unravel = ravel_pytree(params)
    return jax.jacfwd(lambda x_P: jnp.ravel(act_fn(unravel(x_P))))(flat_P)


def predicted_drift(jacobian: Jacobian, displacements: jax.Array) -> jax.Array:
    """First-order activation drift J d_t for each row of `displacements`.

    `jacobian` is a dense `J_DxP` array or a linear map from a flat displacement (P,) to a flat
    drift (D,), e.g. `lambda d: jax.jvp(acts, (flat_S,), (d,))[1]`.
    """
    if callable(jacobian):
        apply = jacobian
        return apply(displacements) if displacements.ndim == 1 else jax.vmap(apply)(displacements)
    return displacements @ jnp.asarray(jacobian).T


def activation_alignment(
    jacobian: Jacobian, displacements: jax.Array, v_rev_D: jax.Array
) -> jax.Array:
    """Predicted cos(drift_t, v_rev) with drift_t = J d_t: the paper's alignment, in its units."""
    return _cosine(predicted_drift(jacobian, displacements), jnp.asarray(v_rev_D))


class ReversionPrediction(NamedTuple):
    """What the quadratic model predicts over benign fine-tuning, per recorded step."""

    steps: jax.Array  # (T,)
    displacement: jax.Array  # (T, P)
    harmfulness_proxy: jax.Array  # (T,)
    weight_alignment: jax.Array  # (T,)
    activation_alignment: jax.Array | None  # (T,), when a Jacobian and v_rev are given


def predict_reversion(
    model: QuadraticModel,
    witness_P: jax.Array,
    lr: float | jax.Array,
    steps_T: jax.Array,
    *,
    d0_P: jax.Array | None = None,
    jacobian: Jacobian | None = None,
    v_rev_D: jax.Array | None = None,
) -> ReversionPrediction:
    """All the linearised predictions at once, at the given GD steps (from theta_S by default)."""
    steps_T = jnp.asarray(steps_T)
    d_TxP = gd_displacement(model, d0_P, lr, steps_T)
    act = None
    if jacobian is not None and v_rev_D is not None:
        act = activation_alignment(jacobian, d_TxP, v_rev_D)
    return ReversionPrediction(
        steps=steps_T,
        displacement=d_TxP,
        harmfulness_proxy=harmfulness_proxy(d_TxP, witness_P),
        weight_alignment=weight_alignment(d_TxP, witness_P),
        activation_alignment=act,
    )


def r_squared(predicted, measured) -> dict[str, float]:
    """How well a prediction scores against measurement, over the finite pairs: R^2 as it
    stands (1 - SS_res / SS_tot, no refit; negative when worse than the measured mean) and
    after a least-squares linear refit (Pearson r^2, with r), and the number of pairs. NaN with
    fewer than 3 pairs or a constant measurement; the refit and r also with a constant
    prediction (which has an R^2 as it stands: at most 0)."""
    x, y = np.asarray(predicted, float).ravel(), np.asarray(measured, float).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    nan = float("nan")
    if x.size < 3 or np.ptp(y) == 0:
        return {"r2_as_predicted": nan, "r2_linear_refit": nan, "pearson_r": nan, "n": int(x.size)}
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    as_is = 1.0 - float(np.sum((y - x) ** 2)) / ss_tot
    pearson = float(np.corrcoef(x, y)[0, 1]) if np.ptp(x) > 0 else nan
    return {
        "r2_as_predicted": as_is,
        "r2_linear_refit": pearson**2,
        "pearson_r": pearson,
        "n": int(x.size),
    }
