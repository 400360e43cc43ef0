"""Tests for gravity.instruments.escape, each against an independent reference.

References: hand-computed Kaplan–Meier, scipy's KM (`scipy.stats.ecdf`), closed-form exponential
and Arrhenius data, autodiff Hessians of the wells, exact 1-D MFPT by quadrature, Kramers' and
Langer's formulas. The Langevin runs are shared through module-scoped fixtures and take a few
seconds on two CPU cores.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import OPTIMISED
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from gravity.instruments import escape

SETTINGS = settings(max_examples=40, deadline=None)
DT = 0.01
N_RECORDS = 24
BARRIER_OVER_T = (2.5, 10 / 3, 25 / 6, 5.0)


# ------------------------------------------------------------------------------------------
# escape_time
# ------------------------------------------------------------------------------------------

_escape_time_jit = jax.jit(escape.escape_time)


def _levels():
    """Distinct integer aligned / helpful levels (exact in float32, so ties are exact)."""
    return st.tuples(st.integers(-50, 50), st.integers(-50, 50)).filter(lambda p: p[0] != p[1])


@SETTINGS
@given(levels=_levels(), k=st.integers(0, N_RECORDS - 1))
def test_escape_time_step_trajectory_crosses_at_the_step(levels, k):
    h_a, h_h = levels
    n = N_RECORDS
    steps = np.arange(n) * 3 + 5
    h = np.where(np.arange(n) < k, h_a, h_h).astype(np.float32)
    time, escaped = _escape_time_jit(steps, h, h_a, h_h)
    assert bool(escaped)
    assert int(time) == steps[k]


@SETTINGS
@given(
    h_a=st.integers(-50, 50), d=st.integers(1, 20), n=st.integers(2, N_RECORDS), up=st.booleans()
)
def test_escape_time_linear_ramp_crosses_at_its_middle(h_a, d, n, up):
    d = d if up else -d
    # A ramp over the first n records, then flat at the helpful level (fixed shapes: one compile).
    h = (h_a + d * np.minimum(np.arange(N_RECORDS), n - 1)).astype(np.float32)
    time, escaped = _escape_time_jit(np.arange(N_RECORDS), h, h_a, h_a + d * (n - 1))
    assert bool(escaped)
    assert int(time) == math.ceil((n - 1) / 2)


@SETTINGS
@given(levels=_levels(), gaps=st.lists(st.integers(1, 40), min_size=N_RECORDS, max_size=N_RECORDS))
def test_escape_time_never_crossing_is_censored(levels, gaps):
    h_a, h_h = levels
    mid = (h_a + h_h) / 2
    # Strictly on the aligned side of the midpoint.
    h = (mid - np.sign(h_h - h_a) * np.asarray(gaps) / 2).astype(np.float32)
    steps = np.arange(N_RECORDS) * 10
    time, escaped = _escape_time_jit(steps, h, h_a, h_h)
    assert not bool(escaped)
    assert int(time) == steps[-1]


@SETTINGS
@given(
    levels=_levels(),
    h=st.lists(st.integers(-60, 60), min_size=N_RECORDS, max_size=N_RECORDS),
    shift=st.integers(-100, 100),
    scale=st.sampled_from([0.25, 0.5, 2.0, 8.0]),
)
def test_escape_time_invariances(levels, h, shift, scale):
    h_a, h_h = levels
    h = np.asarray(h, np.float32)
    steps = np.arange(h.size)
    f = _escape_time_jit
    base = f(steps, h, float(h_a), float(h_h))
    shifted = f(steps, h + shift, float(h_a + shift), float(h_h + shift))
    scaled = f(steps, h * scale, h_a * scale, h_h * scale)
    mirrored = f(steps, -h, float(-h_a), float(-h_h))
    for other in (shifted, scaled, mirrored):
        np.testing.assert_array_equal(base[0], other[0])
        np.testing.assert_array_equal(base[1], other[1])


def test_escape_time_equal_levels_and_nan_are_censored():
    steps = np.arange(4)
    t, e = escape.escape_time(steps, np.array([0.0, 1.0, 2.0, 3.0]), 1.0, 1.0)
    assert not bool(e) and int(t) == 3
    t, e = escape.escape_time(steps, np.full(4, np.nan, np.float32), 0.0, 1.0)
    assert not bool(e) and int(t) == 3


def test_escape_time_run_axis_vmap_and_jit_agree():
    rng = np.random.default_rng(0)
    h_RxT = rng.integers(0, 10, size=(6, 12)).astype(np.float32)
    h_a = rng.integers(0, 5, size=6).astype(np.float32)
    h_h = h_a + rng.integers(1, 6, size=6)
    steps = np.arange(12) ** 2
    direct = escape.escape_time(steps, h_RxT, h_a, h_h)
    vmapped = jax.vmap(escape.escape_time, in_axes=(None, 0, 0, 0))(steps, h_RxT, h_a, h_h)
    jitted = _escape_time_jit(steps, h_RxT, h_a, h_h)
    loop = [escape.escape_time(steps, h_RxT[i], h_a[i], h_h[i]) for i in range(6)]
    for out in (vmapped, jitted):
        np.testing.assert_array_equal(direct[0], out[0])
        np.testing.assert_array_equal(direct[1], out[1])
    np.testing.assert_array_equal(direct[0], [int(t) for t, _ in loop])
    np.testing.assert_array_equal(direct[1], [bool(e) for _, e in loop])
    # Scalar levels broadcast over the run axis.
    t, e = escape.escape_time(steps, h_RxT, 2.0, 6.0)
    assert t.shape == e.shape == (6,)


# ------------------------------------------------------------------------------------------
# Censored statistics
# ------------------------------------------------------------------------------------------


def test_kaplan_meier_hand_example():
    times = [1, 2, 2, 3, 4, 5]
    escaped = [True, True, False, True, False, True]
    curve = escape.kaplan_meier(times, escaped)
    np.testing.assert_array_equal(curve.times, [1, 2, 3, 5])
    np.testing.assert_array_equal(curve.at_risk, [6, 5, 3, 1])
    np.testing.assert_array_equal(curve.n_events, [1, 1, 1, 1])
    np.testing.assert_allclose(curve.survival, [5 / 6, 2 / 3, 4 / 9, 0.0])
    np.testing.assert_allclose(curve.std_err[0], 5 / 6 * math.sqrt(1 / 30))
    assert escape.km_median(curve) == 3.0


def test_km_median_not_reached_is_inf():
    curve = escape.kaplan_meier([1.0, 5.0, 5.0, 5.0], [True, False, False, False])
    assert escape.km_median(curve) == math.inf


@SETTINGS
@given(
    data=st.lists(st.tuples(st.integers(1, 15), st.booleans()), min_size=2, max_size=30).filter(
        lambda d: any(e for _, e in d)
    )
)
def test_kaplan_meier_matches_scipy(data):
    times = np.array([t for t, _ in data], float)
    escaped = np.array([e for _, e in data])
    curve = escape.kaplan_meier(times, escaped)
    ref = stats.ecdf(stats.CensoredData(uncensored=times[escaped], right=times[~escaped]))
    np.testing.assert_allclose(curve.survival, ref.sf.evaluate(curve.times), atol=1e-12)


def test_exponential_mle_recovers_rate_with_censoring():
    rng = np.random.default_rng(1)
    rate = 0.5
    t = rng.exponential(1 / rate, size=4000)
    censor = rng.uniform(0, 4, size=t.size)
    fit = escape.exponential_mle(np.minimum(t, censor), t <= censor)
    assert 0.3 < 1 - fit.n_events / t.size < 0.6  # censoring is substantial
    assert abs(fit.rate - rate) < 4 * rate / math.sqrt(fit.n_events)
    assert fit.mean_ci[0] < 1 / rate < fit.mean_ci[1]


def test_exponential_mle_interval_coverage():
    rng = np.random.default_rng(2)
    mean, hits, reps = 3.0, 0, 400
    for _ in range(reps):
        t = rng.exponential(mean, size=30)
        fit = escape.exponential_mle(np.minimum(t, 5.0), t <= 5.0)
        hits += fit.mean_ci[0] <= mean <= fit.mean_ci[1]
    assert 0.91 <= hits / reps <= 0.995


def test_exponential_mle_without_escapes():
    fit = escape.exponential_mle([10.0, 10.0], [False, False])
    assert fit.rate == 0.0 and fit.mean == math.inf and fit.mean_ci[1] == math.inf
    assert 0 < fit.mean_ci[0] < math.inf


# ------------------------------------------------------------------------------------------
# Arrhenius
# ------------------------------------------------------------------------------------------


@SETTINGS
@given(
    barrier=st.floats(0.05, 20.0),
    log_tau0=st.floats(-5.0, 5.0),
    temps=st.lists(st.integers(1, 200), min_size=3, max_size=8, unique=True),
    weighted=st.booleans(),
)
def test_arrhenius_fit_exact_data(barrier, log_tau0, temps, weighted):
    temperatures = np.asarray(temps, float) / 20.0
    taus = np.exp(log_tau0 + barrier / temperatures)
    weights = np.arange(1, temperatures.size + 1) if weighted else None
    fit = escape.arrhenius_fit(temperatures, taus, weights=weights)
    assert fit.barrier == pytest.approx(barrier, rel=1e-8, abs=1e-9)
    assert fit.log_prefactor == pytest.approx(log_tau0, rel=1e-8, abs=1e-8)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-10)
    assert fit.barrier_ci[1] - fit.barrier_ci[0] < 1e-6 * max(1.0, barrier)


def test_arrhenius_interval_coverage():
    rng = np.random.default_rng(3)
    temperatures = np.array([0.2, 0.25, 0.3, 0.4, 0.5])
    hits, reps = 0, 400
    for _ in range(reps):
        log_tau = 0.3 + 1.5 / temperatures + rng.normal(0, 0.1, temperatures.size)
        lo, hi = escape.arrhenius_fit(temperatures, np.exp(log_tau)).barrier_ci
        hits += lo <= 1.5 <= hi
    assert 0.91 <= hits / reps <= 0.99


def test_arrhenius_rejects_censored_and_handles_two_points():
    with pytest.raises(ValueError):
        escape.arrhenius_fit([0.1, 0.2, 0.3], [10.0, math.inf, 2.0])
    fit = escape.arrhenius_fit([0.5, 1.0], [math.e**2, math.e])
    assert fit.barrier == pytest.approx(1.0)
    assert math.isnan(fit.barrier_se) and math.isnan(fit.barrier_ci[0])


def test_sgd_temperature_convention():
    assert float(escape.sgd_temperature(0.1, 32)) == pytest.approx(0.1 / 32)
    assert float(escape.sgd_temperature(0.1, 32, gradient_variance=0.5)) == pytest.approx(
        0.1 * 0.5 / 64
    )


# ------------------------------------------------------------------------------------------
# Wells, Kramers and the exact MFPT
# ------------------------------------------------------------------------------------------

WELLS = [
    escape.symmetric_double_well(1.0),
    escape.symmetric_double_well(0.3),
    escape.DoubleWell.from_barrier(1.0, 1.0, 2.0),
    escape.DoubleWell.from_barrier(0.7, 0.5, 1.5),
    escape.DoubleWell(2.0, 3.0, 1.0, -1.5),  # mirrored: pretraining well on the left
]


@pytest.mark.parametrize("well", WELLS)
def test_double_well_exact_geometry_matches_autodiff(well):
    d1 = jax.grad(well.energy_1d)
    d2 = jax.grad(d1)
    points = (well.x_align, well.x_saddle, well.x_pre)
    for x in points:
        assert abs(float(d1(float(x)))) < 1e-4
    for x, k in zip(points, well.curvatures(), strict=True):
        assert float(d2(float(x))) == pytest.approx(float(k), rel=1e-5)
    e_a, e_s, e_p = (float(well.energy_1d(float(x))) for x in points)
    assert float(well.barrier()) == pytest.approx(e_s - e_a, rel=1e-5)
    assert float(well.pretrain_depth()) == pytest.approx(e_s - e_p, rel=1e-5)
    assert e_a == 0.0


def test_symmetric_well_closed_forms():
    well = escape.symmetric_double_well(2.0)
    x = jnp.linspace(-2, 2, 9)
    np.testing.assert_allclose(well.energy_1d(x), 2.0 * (x**2 - 1) ** 2, rtol=1e-5, atol=1e-5)
    assert float(well.barrier()) == pytest.approx(2.0)
    tau = well.kramers_time(0.4)
    assert float(tau) == pytest.approx(2 * math.pi / math.sqrt(16 * 8) * math.exp(5), rel=1e-5)
    # Langer in one dimension is Kramers.
    lang = escape.langer_escape_time(jnp.array([16.0]), jnp.array([-8.0]), 2.0, 0.4)
    assert float(lang) == pytest.approx(float(tau), rel=1e-6)


def test_gravity_well_2d_exact_geometry_matches_autodiff():
    pot = escape.GravityWell2D.from_barrier(1.0, 1.0, 2.0, kappa_align=8.0, kappa_pre=1.0)
    w = pot.well
    grad, hessian = jax.jit(jax.grad(pot.energy)), jax.jit(jax.hessian(pot.energy))
    for x, eigs in zip((w.x_align, w.x_saddle, w.x_pre), pot.hessian_eigs(), strict=True):
        p = jnp.array([x, 0.0])
        assert float(jnp.max(jnp.abs(grad(p)))) < 1e-4
        hess = hessian(p)
        np.testing.assert_allclose(jnp.diag(hess), eigs, rtol=1e-5)
        assert abs(float(hess[0, 1])) < 1e-5
    # Narrow alignment well, wider at the saddle: Langer is faster than the 1-D Kramers time.
    ratio = pot.kramers_time(0.2) / w.kramers_time(0.2)
    assert float(ratio) == pytest.approx(math.sqrt(4.0 / 8.0), rel=1e-5)


def test_crossed_respects_well_orientation():
    right = escape.DoubleWell.from_barrier(1.0, 1.0, 2.0)  # saddle 0, pretrain at +2
    left = escape.DoubleWell(2.0, 3.0, 1.0, -1.5)  # saddle 1, pretrain at -1.5
    xs = jnp.array([[-1.0], [0.5], [0.99], [1.0], [2.5]])
    np.testing.assert_array_equal(jax.vmap(right.crossed, (0, None))(xs, 0.5), [0, 0, 0, 1, 1])
    xs = jnp.array([[3.0], [0.0], [-0.24], [-0.25], [-2.0]])
    np.testing.assert_array_equal(jax.vmap(left.crossed, (0, None))(xs, 0.5), [0, 0, 0, 1, 1])


def test_mfpt_tends_to_kramers_at_high_barrier():
    well = escape.DoubleWell.from_barrier(1.0, 1.0, 2.0)
    ratios = [escape.mfpt_1d(well, 1 / r) / float(well.kramers_time(1 / r)) for r in (5, 10, 40)]
    assert ratios[0] > ratios[1] > ratios[2] > 1.0
    assert ratios[2] < 1.02
    mirrored = escape.DoubleWell(well.stiffness, 1.0, 0.0, -2.0)
    assert escape.mfpt_1d(mirrored, 0.2) == pytest.approx(escape.mfpt_1d(well, 0.2), rel=1e-9)


# ------------------------------------------------------------------------------------------
# Langevin simulation
# ------------------------------------------------------------------------------------------


def optimised_escape(key, potential, temperature, **kwargs):
    """`escape.langevin_escape` compiled with XLA's backend optimisation (`conftest.OPTIMISED`):
    4000 particles for up to 31,724 steps are bound by run time (~7x faster than at -O0)."""
    static = {name: kwargs.pop(name) for name in ("n_particles", "chunk") if name in kwargs}
    lowered = escape.langevin_escape.lower(key, potential, temperature, **static, **kwargs)
    return lowered.compile(OPTIMISED)(key, potential, temperature, **kwargs)


def _mean_escape(steps, escaped):
    return escape.exponential_mle(np.asarray(steps) * DT, np.asarray(escaped))


@pytest.fixture(scope="module")
def well_1d():
    return escape.DoubleWell.from_barrier(1.0, 1.0, 2.0)


@pytest.fixture(scope="module")
def sims_1d(well_1d):
    """Escape steps of 4000 particles at four temperatures, horizon twice Kramers' time each."""
    key = jax.random.key(0)
    out = {}
    for i, r in enumerate(BARRIER_OVER_T):
        temperature = 1.0 / r
        horizon = int(2 * float(well_1d.kramers_time(temperature)) / DT)
        out[r] = optimised_escape(
            jax.random.fold_in(key, i),
            well_1d,
            temperature,
            n_particles=4000,
            dt=DT,
            max_steps=horizon,
        )
    return out


def test_langevin_mean_escape_matches_kramers_and_exact_mfpt(well_1d, sims_1d):
    temperature = 1 / 5.0
    fit = _mean_escape(*sims_1d[5.0])
    assert fit.n_events > 2500
    kramers = float(well_1d.kramers_time(temperature))
    assert fit.mean == pytest.approx(kramers, rel=0.15)
    # The exact MFPT includes Kramers' finite-barrier correction (~8% here): a tighter check.
    assert fit.mean == pytest.approx(escape.mfpt_1d(well_1d, temperature), rel=0.08)
    # Escape is memoryless: the KM median is ln 2 times the mean.
    curve = escape.kaplan_meier(np.asarray(sims_1d[5.0][0]) * DT, np.asarray(sims_1d[5.0][1]))
    assert escape.km_median(curve) == pytest.approx(math.log(2) * fit.mean, rel=0.1)


def test_arrhenius_fit_on_simulated_escapes_recovers_barrier(well_1d, sims_1d):
    fits = [_mean_escape(*sims_1d[r]) for r in BARRIER_OVER_T]
    temperatures = [1 / r for r in BARRIER_OVER_T]
    fit = escape.arrhenius_fit(
        temperatures, [f.mean for f in fits], weights=[f.n_events for f in fits]
    )
    assert fit.barrier == pytest.approx(float(well_1d.barrier()), rel=0.1)
    assert fit.r_squared > 0.99


def test_langevin_2d_matches_langer_and_entropic_speedup(well_1d, sims_1d):
    pot = escape.GravityWell2D(well_1d, 8.0, 1.0)
    temperature = 1 / 5.0
    langer = float(pot.kramers_time(temperature))
    steps, escaped = optimised_escape(
        jax.random.key(7), pot, temperature, n_particles=4000, dt=DT, max_steps=int(2 * langer / DT)
    )
    fit_2d = _mean_escape(steps, escaped)
    # Finite-barrier corrections are larger in 2-D; the prefactor ratio is the sharper test.
    assert fit_2d.mean == pytest.approx(langer, rel=0.2)
    speedup = fit_2d.mean / _mean_escape(*sims_1d[5.0]).mean
    assert speedup == pytest.approx(math.sqrt(4.0 / 8.0), rel=0.1)


def test_langevin_censoring_chunking_and_keys(well_1d):
    key = jax.random.key(3)
    kw = dict(n_particles=64, dt=DT, max_steps=150)
    # Hot: many escape within the horizon; result independent of the chunk size.
    a = escape.langevin_escape(key, well_1d, 1.0, chunk=256, **kw)
    b = escape.langevin_escape(key, well_1d, 1.0, chunk=7, **kw)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    steps, escaped = map(np.asarray, a)
    assert 0 < escaped.sum() < escaped.size
    assert np.all((steps >= 1) & (steps <= 150))
    assert np.all(steps[~escaped] == 150)
    # Cold: nobody escapes, everyone is censored at the horizon.
    steps, escaped = escape.langevin_escape(key, well_1d, 0.02, chunk=7, **kw)
    assert not np.any(escaped) and np.all(np.asarray(steps) == 150)
    # A different key gives different escapes.
    c = escape.langevin_escape(jax.random.key(4), well_1d, 1.0, chunk=256, **kw)
    assert not np.array_equal(a[0], c[0])


def test_langevin_sweep_equals_loop_of_single_runs(well_1d):
    key = jax.random.key(5)
    temps = jnp.array([0.5, 1.0, 2.0])
    kw = dict(n_particles=32, dt=DT, max_steps=100, chunk=32)
    steps_KxP, escaped_KxP = escape.langevin_escape_sweep(key, well_1d, temps, **kw)
    keys = jax.random.split(key, 3)
    for i in range(3):
        s, e = escape.langevin_escape(keys[i], well_1d, temps[i], **kw)
        np.testing.assert_array_equal(steps_KxP[i], s)
        np.testing.assert_array_equal(escaped_KxP[i], e)
    assert escaped_KxP[2].mean() > escaped_KxP[0].mean()


# ------------------------------------------------------------------------------------------
# Langevin escape as a sweep's measure, and its calibration against Kramers
# ------------------------------------------------------------------------------------------


def test_escape_point_horizon_and_spec(well_1d):
    spec, knobs = escape.escape_point(well_1d, 0.4, n_particles=8, dt=DT, horizon=2.0, stream=3)
    assert spec == escape.EscapeSpec("DoubleWell", 8)
    assert knobs.max_steps == int(2.0 * float(well_1d.kramers_time(0.4)) / DT)
    assert (knobs.temperature, knobs.dt, knobs.stream) == (0.4, DT, 3)
    well_2d = escape.GravityWell2D(well_1d, 8.0, 1.0)
    two_d, _ = escape.escape_point(well_2d, 0.4, n_particles=8, dt=DT)
    assert two_d.well != spec.well  # another pytree structure: another compiled program


def test_escape_measure_vmapped_equals_langevin_escape_with_folded_keys(well_1d):
    """The measure as the runner calls it (vmapped over stacked knobs, one key per run) draws
    exactly `langevin_escape` with the run's key folded with the knobs' stream."""
    points = [
        escape.escape_point(well_1d, t, n_particles=16, dt=DT, horizon=0.5, stream=s)
        for t, s in ((0.5, 2), (1.0, 12))
    ]
    spec = points[0][0]
    knobs = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *(k for _, k in points))
    out = jax.jit(jax.vmap(lambda key, k: escape.escape_measure(key, spec, k)))(
        jax.random.split(jax.random.key(2026), 2), knobs
    )
    assert not np.any(out["diverged"])
    for i, (_, k) in enumerate(points):
        key = jax.random.fold_in(jax.random.split(jax.random.key(2026), 2)[i], k.stream)
        steps, escaped = escape.langevin_escape(
            key, well_1d, k.temperature, n_particles=16, dt=DT, max_steps=k.max_steps
        )
        np.testing.assert_array_equal(out["steps"][i], steps)
        np.testing.assert_array_equal(out["escaped"][i], escaped)


def test_kramers_calibration_reads_exponential_escapes(well_1d):
    """Exponential escape times with the Kramers mean: the censored mean recovers it, the
    exact MFPT is given for the 1-D well only, and the Arrhenius barrier is the well's."""
    ratios = (2.5, 5.0)
    rng = np.random.default_rng(0)
    steps, escaped = [], []
    for ratio in ratios:
        mean = float(well_1d.kramers_time(1.0 / ratio)) / DT
        t = rng.exponential(mean, 20_000)
        steps.append(np.minimum(np.ceil(t), 3 * mean))
        escaped.append(t < 3 * mean)
    cal = escape.kramers_calibration(well_1d, ratios, steps, escaped, DT)
    for row in cal["rows"]:
        assert row["mean_escape"] == pytest.approx(row["kramers"], rel=0.03)
        assert row["mean_ci"][0] < row["mean_escape"] < row["mean_ci"][1]
        assert row["exact_mfpt"] > row["kramers"]  # the finite-barrier correction
    assert cal["arrhenius_barrier"] == pytest.approx(1.0, rel=0.05)
    assert cal["max_relative_error_vs_kramers"] < 0.03
    two_d = escape.kramers_calibration(
        escape.GravityWell2D(well_1d, 8.0, 1.0), ratios, steps, escaped, DT
    )
    assert two_d["max_relative_error_vs_exact_mfpt"] is None
    assert {row["exact_mfpt"] for row in two_d["rows"]} == {None}
