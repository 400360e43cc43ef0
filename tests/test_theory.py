"""The quadratic model's predictions against training that actually happens and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

from gravity.instruments import theory

SETTINGS = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2**31 - 1)
gd_jit = jax.jit(theory.gd_displacement)  # one compilation per shape, shared by the tests


@pytest.fixture(scope="module")
def linear():
    """Linear regression y = X w + b (a model linear in its parameters) with squared loss.

    Its loss is exactly quadratic, so the quadratic model at theta_S is exact and its GD
    prediction must match full-batch training step for step.
    """
    kx, ky, ks, kh, kp = jax.random.split(jax.random.key(0), 5)
    x_NxI = jax.random.normal(kx, (40, 4))
    y_N = jax.random.normal(ky, (40,))
    probes_MxI = jax.random.normal(kp, (6, 4))

    def loss(p):
        return 0.5 * jnp.mean((x_NxI @ p["w"] + p["b"] - y_N) ** 2)

    def acts(p):  # activations linear in the parameters: the Jacobian is exact
        return probes_MxI @ p["w"] + p["b"]

    theta_S = {"w": jax.random.normal(ks, (4,)), "b": jnp.array(0.3)}
    theta_H = {"w": jax.random.normal(kh, (4,)), "b": jnp.array(-0.5)}
    model = theory.quadratic_model_from_loss(loss, theta_S)
    flat_S, unravel = ravel_pytree(theta_S)
    witness_P = ravel_pytree(theta_H)[0] - flat_S

    @jax.jit
    def train(theta0, lr):
        """Independent reference: full-batch GD with jax.grad on the pytree, lax.scan."""

        def step(theta, _):
            new = jax.tree.map(lambda t, g: t - lr * g, theta, jax.grad(loss)(theta))
            return new, ravel_pytree(new)[0]

        _, flats = jax.lax.scan(step, theta0, length=60)
        return jnp.concatenate([ravel_pytree(theta0)[0][None, :], flats]) - flat_S[None, :]

    return {
        "loss": loss,
        "acts": acts,
        "theta_S": theta_S,
        "flat_S": flat_S,
        "model": model,
        "unravel": unravel,
        "witness": witness_P,
        "train": train,
        "predict": jax.jit(theory.gd_trajectory, static_argnums=3),
    }


@pytest.mark.parametrize("lr", [0.05, 0.4])
@pytest.mark.parametrize("start", ["theta_S", "displaced"])
def test_gd_prediction_equals_trained_linear_model(linear, lr, start):
    d0_P = jnp.zeros(5) if start == "theta_S" else jnp.array([0.5, -1.0, 0.2, 0.8, -0.3])
    trained_TxP = linear["train"](linear["unravel"](linear["flat_S"] + d0_P), lr)
    predicted_TxP = linear["predict"](linear["model"], d0_P, lr, 60)
    assert predicted_TxP.shape == trained_TxP.shape == (61, 5)
    np.testing.assert_allclose(predicted_TxP, trained_TxP, atol=1e-4, rtol=0)


def test_quadratic_model_is_exact_for_linear_model(linear):
    model, d_P = linear["model"], jnp.array([0.3, -0.2, 1.0, 0.1, -0.7])
    theta = linear["unravel"](linear["flat_S"] + d_P)
    np.testing.assert_allclose(model.loss_at(d_P), linear["loss"](theta), rtol=1e-5)
    grad_P = ravel_pytree(jax.grad(linear["loss"])(theta))[0]
    np.testing.assert_allclose(model.grad_at(d_P), grad_P, atol=1e-5)


def test_predicted_observables_match_trained_ones(linear):
    model, witness_P, lr = linear["model"], linear["witness"], 0.2
    trained_TxP = linear["train"](linear["theta_S"], lr)
    jac_DxP = theory.activation_jacobian(linear["acts"], linear["theta_S"])
    acts_S = linear["acts"](linear["theta_S"])
    drift_TxD = (
        jax.vmap(lambda d: linear["acts"](linear["unravel"](linear["flat_S"] + d)))(trained_TxP)
        - acts_S[None, :]
    )
    v_rev_D = linear["acts"](linear["unravel"](linear["flat_S"] + witness_P)) - acts_S
    pred = theory.predict_reversion(
        model, witness_P, lr, jnp.arange(61), jacobian=jac_DxP, v_rev_D=v_rev_D
    )
    cos = drift_TxD @ v_rev_D / (jnp.linalg.norm(drift_TxD, axis=1) * jnp.linalg.norm(v_rev_D))
    np.testing.assert_allclose(pred.activation_alignment[1:], cos[1:], atol=1e-4)
    assert pred.activation_alignment[0] == 0.0  # no drift yet: defined as 0, not NaN
    np.testing.assert_allclose(
        pred.harmfulness_proxy, trained_TxP @ witness_P / (witness_P @ witness_P), atol=1e-4
    )
    # a JVP closure gives the same drift as the dense Jacobian
    jvp = lambda d: jax.jvp(  # noqa: E731
        lambda x: linear["acts"](linear["unravel"](x)), (linear["flat_S"],), (d,)
    )[1]
    np.testing.assert_allclose(
        theory.activation_alignment(jvp, pred.displacement, v_rev_D),
        pred.activation_alignment,
        atol=1e-6,
    )


def test_gd_displacement_any_steps_jit_and_vmap(linear):
    model = linear["model"]
    traj = theory.gd_trajectory(model, None, 0.1, 30)
    steps = jnp.array([30, 0, 7, 1])
    np.testing.assert_allclose(
        theory.gd_displacement(model, None, 0.1, steps), traj[steps], atol=1e-6
    )
    fn = jax.jit(lambda lr: theory.gd_displacement(model, None, lr, steps))
    lrs = jnp.array([0.05, 0.3])
    batched = jax.vmap(fn)(lrs)
    for i in range(2):
        np.testing.assert_allclose(batched[i], fn(lrs[i]), atol=1e-6)
        np.testing.assert_allclose(
            batched[i], theory.gd_displacement(model, None, float(lrs[i]), steps), atol=1e-5
        )


# ---------------------------------------------------------------------------------------------
# Random quadratics: closed forms against loops and matrix exponentials
# ---------------------------------------------------------------------------------------------


def _random_quadratic(seed, dim=6, rank=None, negative=False):
    rng = np.random.default_rng(seed)
    q_PxP = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    lam_P = rng.uniform(0.1, 3.0, size=dim)
    if negative:
        lam_P[0] = -0.5
    if rank is not None:
        lam_P[rank:] = 0.0
    hess_PxP = (q_PxP * lam_P[None, :]) @ q_PxP.T
    return hess_PxP, rng.normal(size=dim), rng.normal(size=dim), q_PxP, lam_P


@pytest.fixture(scope="module")
def gd_fn():
    return jax.jit(
        lambda h, g, d0, lr: theory.gd_trajectory(
            theory.QuadraticModel.from_hessian(h, g), d0, lr, 12
        )
    )


@SETTINGS
@given(seeds, st.floats(0.01, 0.9), st.sampled_from([None, 3]), st.booleans())
def test_gd_closed_form_matches_loop(gd_fn, seed, lr, rank, negative):
    # lr up to 0.9 with lambda up to 3 includes oscillating (lr lambda > 1) and unstable
    # (lr lambda > 2) directions; `negative` adds a direction of negative curvature.
    hess, g, d0, _, _ = _random_quadratic(seed, rank=rank, negative=negative)
    ref = [d0]
    for _ in range(12):
        ref.append(ref[-1] - lr * (g + hess @ ref[-1]))
    ref = np.stack(ref)
    got = gd_fn(
        jnp.asarray(hess, jnp.float32),
        jnp.asarray(g, jnp.float32),
        jnp.asarray(d0, jnp.float32),
        lr,
    )
    np.testing.assert_allclose(got, ref, atol=1e-4 * (1 + np.max(np.abs(ref))))


@pytest.fixture(scope="module")
def flow_fn():
    return jax.jit(
        lambda h, g, d0, t: theory.gradient_flow(theory.QuadraticModel.from_hessian(h, g), d0, t)
    )


@SETTINGS
@given(seeds, st.sampled_from([None, 2]))
def test_gradient_flow_matches_matrix_exponential(flow_fn, seed, rank):
    # d' = -(g + H d) is linear in z = [d, 1]: z(t) = expm(A t) z(0), valid for singular H too.
    hess, g, d0, _, _ = _random_quadratic(seed, rank=rank)
    a = np.zeros((7, 7))
    a[:6, :6], a[:6, 6] = -hess, -g
    times = np.array([0.0, 0.1, 0.7, 2.5])
    ref = np.stack([(scipy.linalg.expm(a * t) @ np.append(d0, 1.0))[:6] for t in times])
    got = flow_fn(
        jnp.asarray(hess, jnp.float32),
        jnp.asarray(g, jnp.float32),
        jnp.asarray(d0, jnp.float32),
        jnp.asarray(times, jnp.float32),
    )
    np.testing.assert_allclose(got, ref, atol=1e-4 * (1 + np.max(np.abs(ref))))


def test_gradient_flow_is_the_small_step_limit_of_gd():
    hess, g, d0, _, _ = _random_quadratic(1, rank=4)
    model = theory.QuadraticModel.from_hessian(jnp.asarray(hess), jnp.asarray(g))
    flow = theory.gradient_flow(model, jnp.asarray(d0), jnp.array([2.0]))[0]
    errors = []
    for lr in (1e-2, 1e-3):
        steps = jnp.array([round(2.0 / lr)])
        errors.append(float(jnp.linalg.norm(gd_jit(model, jnp.asarray(d0), lr, steps)[0] - flow)))
    assert errors[1] < 2e-3 * float(jnp.linalg.norm(flow))
    assert 5 < errors[0] / errors[1] < 20  # first order in lr


# ---------------------------------------------------------------------------------------------
# Reversion share and observables
# ---------------------------------------------------------------------------------------------


def test_reversion_share_full_rank_null_space_and_partial():
    model = theory.QuadraticModel.from_hessian(
        jnp.diag(jnp.array([1.0, 2.0, 0.0, 0.0])), jnp.zeros(4)
    )
    np.testing.assert_allclose(theory.reversion_share(model, jnp.array([0.0, 0.0, 1.0, -2.0])), 0.0)
    np.testing.assert_allclose(theory.reversion_share(model, jnp.array([1.0, 0.0, 1.0, 0.0])), 0.5)
    np.testing.assert_allclose(theory.reversion_share(model, jnp.array([3.0, -1.0, 0.0, 0.0])), 1.0)
    hess, _, w, _, _ = _random_quadratic(2)
    full = theory.QuadraticModel.from_hessian(jnp.asarray(hess, jnp.float32), jnp.zeros(6))
    np.testing.assert_allclose(
        theory.reversion_share(full, jnp.asarray(w, jnp.float32)), 1.0, rtol=1e-5
    )


@pytest.fixture(scope="module")
def witness_minimum_fn():
    def fn(h, w):
        model = theory.QuadraticModel.from_hessian(h, -h @ w)  # theta_H minimises the benign loss
        late = theory.gd_displacement(model, None, 0.3, jnp.array([400]))[0]
        d_star = theory.asymptotic_displacement(model)
        return (
            theory.reversion_share(model, w),
            theory.harmfulness_proxy(d_star, w),
            theory.harmfulness_proxy(late, w),
        )

    return jax.jit(fn)


@SETTINGS
@given(seeds, st.integers(0, 6))
def test_reversion_share_is_asymptotic_harm_when_witness_is_benign_minimum(
    witness_minimum_fn, seed, rank
):
    hess, _, w, _, _ = _random_quadratic(seed, rank=rank)
    share, asymptotic, late = witness_minimum_fn(
        jnp.asarray(hess, jnp.float32), jnp.asarray(w, jnp.float32)
    )
    assert -1e-6 <= share <= 1 + 1e-6
    np.testing.assert_allclose(asymptotic, share, atol=1e-5)
    np.testing.assert_allclose(late, share, atol=1e-4)  # GD (lr 0.3 < 2/3) has converged by 400


def test_harm_proxy_by_direction_sums_and_undoes_stiff_directions_first():
    hess, _, w, q, lam = _random_quadratic(3)
    model = theory.QuadraticModel.from_hessian(
        jnp.asarray(hess), -jnp.asarray(hess) @ jnp.asarray(w)
    )
    d_TxP = gd_jit(model, None, 0.05, jnp.arange(41))
    per_dir_TxR, flat_T = theory.harm_proxy_by_direction(model, d_TxP, jnp.asarray(w))
    np.testing.assert_allclose(
        per_dir_TxR.sum(axis=1) + flat_T, theory.harmfulness_proxy(d_TxP, jnp.asarray(w)), atol=1e-6
    )
    np.testing.assert_allclose(flat_T, 0.0, atol=1e-6)  # dense model: no flat complement
    # with g = -H w, direction i is undone as 1 - (1 - lr lambda_i)^t of its share
    omega2 = (q.T @ w) ** 2 / np.sum(w**2)
    order = np.argsort(lam)  # eigh returns ascending eigenvalues
    expected = (1 - (1 - 0.05 * lam[order][None, :]) ** np.arange(41)[:, None]) * omega2[order][
        None, :
    ]
    np.testing.assert_allclose(per_dir_TxR, expected, atol=1e-5)


scales = st.floats(1e-3, 1e3) | st.floats(-1e3, -1e-3)


@SETTINGS
@given(seeds, scales)
def test_alignments_are_scale_invariant(seed, scale):
    rng = np.random.default_rng(seed)
    jac = jnp.asarray(rng.normal(size=(7, 5)), jnp.float32)
    d_TxP = jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)
    v, w = (
        jnp.asarray(rng.normal(size=7), jnp.float32),
        jnp.asarray(rng.normal(size=5), jnp.float32),
    )
    base = theory.activation_alignment(jac, d_TxP, v)
    np.testing.assert_allclose(
        theory.activation_alignment(jac, d_TxP, scale * v), np.sign(scale) * base, atol=1e-5
    )
    np.testing.assert_allclose(
        theory.activation_alignment(jac, abs(scale) * d_TxP, v), base, atol=1e-5
    )
    np.testing.assert_allclose(
        theory.weight_alignment(d_TxP, scale * w),
        np.sign(scale) * theory.weight_alignment(d_TxP, w),
        atol=1e-5,
    )
    assert np.all(np.abs(base) <= 1 + 1e-6)


def test_harmfulness_proxy_endpoints():
    w = jnp.array([1.0, -2.0, 0.5])
    d = jnp.stack([jnp.zeros(3), w, 0.5 * w, jnp.array([2.0, 1.0, 0.0])])
    np.testing.assert_allclose(theory.harmfulness_proxy(d, w), [0.0, 1.0, 0.5, 0.0], atol=1e-7)
    np.testing.assert_allclose(theory.weight_alignment(d, w), [0.0, 1.0, 1.0, 0.0], atol=1e-6)
    # NaN-free gradient at d = 0, where the cosine is defined as 0
    assert np.all(np.isfinite(jax.grad(lambda x: theory.weight_alignment(x, w))(jnp.zeros(3))))


# ---------------------------------------------------------------------------------------------
# Low-rank model from Lanczos
# ---------------------------------------------------------------------------------------------


def test_low_rank_model_is_exact_when_complement_is_flat():
    # 3 data points, 8 parameters: the Hessian has rank 3 and its complement really is flat.
    kx, ky, kp = jax.random.split(jax.random.key(9), 3)
    x_NxP, y_N = jax.random.normal(kx, (3, 7)), jax.random.normal(ky, (3,))
    params = {"w": jax.random.normal(kp, (7,)), "b": jnp.array(0.0)}

    def loss(p):
        return 0.5 * jnp.mean((x_NxP @ p["w"] + p["b"] - y_N) ** 2)

    dense = jax.jit(lambda p: theory.quadratic_model_from_loss(loss, p))(params)
    build = jax.jit(lambda p, key: theory.low_rank_quadratic_model(loss, p, 3, key=key))
    low = build(params, jax.random.key(1))
    assert low.eigenvectors.shape == (8, 3)
    np.testing.assert_allclose(low.hessian, dense.hessian, atol=1e-5)
    steps = jnp.array([0, 1, 10, 100])
    np.testing.assert_allclose(
        gd_jit(low, None, 0.1, steps),
        gd_jit(dense, None, 0.1, steps),
        atol=1e-4,
    )
    w = jax.random.normal(jax.random.key(2), (8,))
    np.testing.assert_allclose(
        theory.reversion_share(low, w), theory.reversion_share(dense, w), atol=1e-5
    )
    per_dir, flat = theory.harm_proxy_by_direction(low, gd_jit(low, None, 0.1, steps), w)
    assert per_dir.shape == (4, 3) and flat.shape == (4,)


def test_r_squared_as_predicted_and_refit():
    measured = np.array([0.0, 1.0, 2.0, 3.0])
    exact = theory.r_squared(measured, measured)
    assert exact["r2_as_predicted"] == pytest.approx(1.0) and exact["n"] == 4
    # A prediction off by a constant and a scale is perfect after a linear refit, not as is:
    # residuals (x - y) = y + 1, so R^2 = 1 - sum((y + 1)^2) / sum((y - 1.5)^2) = 1 - 30 / 5.
    scaled = theory.r_squared(2 * measured + 1, measured)
    assert scaled["r2_linear_refit"] == pytest.approx(1.0)
    assert scaled["r2_as_predicted"] == pytest.approx(1 - 30 / 5)
    # Non-finite pairs are dropped; fewer than 3 left (or a constant side) gives NaN.
    short = theory.r_squared([1.0, np.nan, 2.0], [1.0, 2.0, np.inf])
    assert short["n"] == 1 and np.isnan(short["r2_as_predicted"])
    assert np.isnan(theory.r_squared([1.0, 1.0, 1.0], measured[:3])["pearson_r"])
