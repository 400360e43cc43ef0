"""Metastability: escape times, their censored statistics, Kramers/Arrhenius laws, gravity wells.

The gravitational reading of fine-tuning reversion (docs/design.md) says the aligned state is a
shallow well next to the deep pretraining basin, so benign fine-tuning should look like
*noise-activated escape*: the aligned state holds for a while, then harmfulness jumps toward its
helpful-only level. This module measures that and gives it a reference physics:

- `escape_time`: first recorded step at which a harmfulness trajectory is halfway from its aligned
  level to the helpful-only witness's level (on device, vmappable over runs), right-censored when it
  never gets there.
- `kaplan_meier`, `km_median`, `exponential_mle`: escape-time statistics over seeds that treat
  censored runs correctly (host side, numpy/scipy; per cell of a grid of runs:
  `gravity.instruments.first_passage`).
- `arrhenius_fit`, `sgd_temperature`: fit log(escape time) = log(tau0) + barrier / T, with T the
  SGD temperature lr / batch (Xie et al. 2021's noise-activated escape).
- `DoubleWell`, `GravityWell2D`, `langevin_escape`: overdamped Langevin particles in low-dimensional
  "gravity wells" (a shallow narrow well for alignment next to a deep wide one for pretraining),
  whose first-passage times validate the machinery against Kramers' formula
  (`kramers_escape_time`, `langer_escape_time`) and against the exact 1-D mean first-passage time
  (`mfpt_1d`).
- `escape_measure`, `escape_point`, `kramers_calibration`: the same simulation as a sweep's
  per-run measure (one run per well and temperature, through the one runner), and its escape
  times read against Kramers' and the exact MFPT.

Escape convention for the wells (ours; Kramers is silent about where "escape" ends). Kramers'
time 2 pi / sqrt(U''(min) |U''(saddle)|) exp(barrier / T) is the inverse of the *flux over the
saddle*. The mean first-passage time to the saddle top itself is about half of it (a particle on
the top falls back half the time), so a particle here has escaped when its reaction coordinate has
passed the saddle by a fraction `frac` (default 1/2) of the way to the pretraining minimum: far
enough past the top that it almost never comes back, close enough that the extra descent time is
small. For the built-in wells the exact 1-D MFPT to that boundary exceeds Kramers' asymptotic time
by 9-14% at barrier / T = 3 and 7-8% at barrier / T = 5 (finite-barrier corrections; `mfpt_1d`),
and Euler–Maruyama at dt * U''(min) ~ 0.07 matches the exact MFPT to within ~3% (the tests).
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate, stats

Array = jax.Array
ArrayLike = jax.typing.ArrayLike

__all__ = [
    "ArrheniusFit",
    "DoubleWell",
    "EscapeKnobs",
    "EscapeSpec",
    "ExponentialFit",
    "GravityWell2D",
    "Potential",
    "SurvivalCurve",
    "arrhenius_fit",
    "escape_measure",
    "escape_point",
    "escape_time",
    "exponential_mle",
    "kaplan_meier",
    "km_median",
    "kramers_calibration",
    "kramers_escape_time",
    "langer_escape_time",
    "langevin_escape",
    "langevin_escape_sweep",
    "mfpt_1d",
    "sgd_temperature",
    "symmetric_double_well",
]


# --------------------------------------------------------------------------------------------
# Escape time of a harmfulness trajectory (device side)
# --------------------------------------------------------------------------------------------


def escape_time(
    steps: ArrayLike,
    harmfulness: ArrayLike,
    harm_aligned: ArrayLike,
    harm_helpful: ArrayLike,
) -> tuple[Array, Array]:
    """First recorded step at which harmfulness is halfway from its aligned to its helpful level.

    `harmfulness` is (..., T) on the schedule `steps` ((T,) or broadcastable to it); the levels are
    scalars or have the leading shape (...). Returns `(time, escaped)` of shape (...): the step of
    the first record with h at or past the midpoint (h_aligned + h_helpful) / 2, or, when the run
    never gets there, the last recorded step (the censoring time) with `escaped` False.

    The crossing is measured *toward the witness*: if h_helpful < h_aligned (a metric that falls
    on reversion, e.g. refusal) it is h <= midpoint; if the two levels are equal there is no
    displacement to undo and every run is censored. NaN records never count as crossings, so a
    diverged run reads as censored; flag divergence upstream. Works on leading run axes directly
    and under `vmap`/`jit`.
    """
    h = jnp.asarray(harmfulness)
    batch_shape = h.shape[:-1]
    steps_b = jnp.broadcast_to(jnp.asarray(steps), h.shape)
    h_a = jnp.broadcast_to(jnp.asarray(harm_aligned, dtype=h.dtype), batch_shape)[..., None]
    h_h = jnp.broadcast_to(jnp.asarray(harm_helpful, dtype=h.dtype), batch_shape)[..., None]
    # 2h vs (h_a + h_h) instead of h vs the halved midpoint: fewer roundings.
    twice_mid = h_a + h_h
    crossed = jnp.where(h_h > h_a, 2 * h >= twice_mid, 2 * h <= twice_mid) & (h_h != h_a)
    escaped = jnp.any(crossed, axis=-1)
    first = jnp.argmax(crossed, axis=-1)
    hit = jnp.take_along_axis(steps_b, first[..., None], axis=-1)[..., 0]
    return jnp.where(escaped, hit, steps_b[..., -1]), escaped


# --------------------------------------------------------------------------------------------
# Censored escape-time statistics (host side)
# --------------------------------------------------------------------------------------------


class SurvivalCurve(NamedTuple):
    """Kaplan–Meier estimate: S(t) just after each distinct escape time, with Greenwood errors."""

    times: np.ndarray  # distinct escape times, ascending
    survival: np.ndarray  # S(t) on [times[i], times[i+1])
    at_risk: np.ndarray  # runs not yet escaped or censored just before times[i]
    n_events: np.ndarray  # escapes at times[i]
    std_err: np.ndarray  # Greenwood standard error of survival


def _censored_inputs(times: ArrayLike, escaped: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(times, dtype=np.float64).ravel()
    e = np.asarray(escaped, dtype=bool).ravel()
    if t.shape != e.shape:
        raise ValueError(f"times {t.shape} and escaped {e.shape} differ in size")
    if t.size == 0 or not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("times must be a non-empty array of finite, non-negative numbers")
    return t, e


def kaplan_meier(times: ArrayLike, escaped: ArrayLike) -> SurvivalCurve:
    """Kaplan–Meier survival curve of escape times with right-censoring.

    A run censored at the same time as an escape is counted at risk for that escape (the usual
    convention: censoring happens just after the last observation).
    """
    t, e = _censored_inputs(times, escaped)
    event_times, n_events = np.unique(t[e], return_counts=True)
    at_risk = t.size - np.searchsorted(np.sort(t), event_times, side="left")
    survival = np.cumprod(1.0 - n_events / at_risk)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = n_events / (at_risk * (at_risk - n_events))
    greenwood = np.cumsum(np.where(at_risk > n_events, terms, 0.0))
    return SurvivalCurve(event_times, survival, at_risk, n_events, survival * np.sqrt(greenwood))


def km_median(curve: SurvivalCurve) -> float:
    """Median escape time: the first escape time at which the KM survival is <= 1/2.

    Returns inf when more than half the runs survive the whole observation window (the median is
    then only known to lie beyond the censoring time).
    """
    below = np.nonzero(curve.survival <= 0.5)[0]
    return float(curve.times[below[0]]) if below.size else math.inf


class ExponentialFit(NamedTuple):
    """Censoring-aware exponential fit: rate = escapes / total time at risk."""

    rate: float
    mean: float  # 1 / rate, the mean escape time
    mean_ci: tuple[float, float]
    n_events: int
    time_at_risk: float
    log_mean_se: float  # ~ 1 / sqrt(n_events): standard error of log(mean), for Arrhenius weights


def exponential_mle(
    times: ArrayLike, escaped: ArrayLike, *, confidence: float = 0.95
) -> ExponentialFit:
    """Mean escape time under a constant escape rate (the Kramers picture), with censoring.

    The MLE of the rate is d / sum(t) (d escapes, every run's observed time at risk summed). The
    interval on the mean is the chi-square one for time-censored data, [2 sum(t) / chi2(1 - a/2;
    2d + 2), 2 sum(t) / chi2(a/2; 2d)], which is exact without censoring and slightly conservative
    with it. Its upper end is inf when nothing escaped.
    """
    t, e = _censored_inputs(times, escaped)
    d = int(e.sum())
    total = float(t.sum())
    alpha = 1.0 - confidence
    lo = 2 * total / stats.chi2.ppf(1 - alpha / 2, 2 * d + 2)
    if d == 0:
        return ExponentialFit(0.0, math.inf, (lo, math.inf), 0, total, math.inf)
    hi = 2 * total / stats.chi2.ppf(alpha / 2, 2 * d)
    return ExponentialFit(d / total, total / d, (lo, hi), d, total, 1.0 / math.sqrt(d))


# --------------------------------------------------------------------------------------------
# Arrhenius law
# --------------------------------------------------------------------------------------------


def sgd_temperature(lr: ArrayLike, batch: ArrayLike, *, gradient_variance: float = 2.0) -> Array:
    """SGD temperature T = lr * gradient_variance / (2 * batch); lr / batch by default.

    SGD with step lr and minibatch gradient noise of covariance sigma^2 / batch is, in the time
    t = step * lr, the Langevin process dx = -grad L dt + sqrt(2 T) dW with T = lr sigma^2 /
    (2 batch). sigma^2 is problem dependent and roughly constant in a sweep over lr and batch, so
    the default sets it to 2: T = lr / batch, and a barrier fitted against it is the *effective*
    barrier 2 dL / sigma^2 (Xie et al. 2021). Escape times fitted against T should be in the same
    time t = step * lr when lr varies, or the prefactor absorbs a factor 1 / lr.
    """
    return jnp.asarray(lr) * gradient_variance / (2.0 * jnp.asarray(batch))


class ArrheniusFit(NamedTuple):
    """log(tau) = log(tau0) + barrier / T, fitted by (weighted) least squares."""

    barrier: float
    prefactor: float  # tau0
    log_prefactor: float
    r_squared: float
    barrier_ci: tuple[float, float]  # t-distribution interval, n - 2 degrees of freedom
    barrier_se: float
    n: int


def arrhenius_fit(
    temperatures: ArrayLike,
    escape_times: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    confidence: float = 0.95,
) -> ArrheniusFit:
    """Fit the Arrhenius / Kramers law log(tau) = log(tau0) + barrier / T by least squares.

    `weights` are relative inverse variances of log(tau) (e.g. the escape counts, since the
    exponential MLE has var(log mean) ~ 1 / n_events); the residual variance sets their scale.
    The barrier interval uses Student's t with n - 2 degrees of freedom (nan when n = 2); R^2 is
    the weighted coefficient of determination.
    """
    temp = np.asarray(temperatures, dtype=np.float64).ravel()
    tau = np.asarray(escape_times, dtype=np.float64).ravel()
    w = np.ones_like(temp) if weights is None else np.asarray(weights, np.float64).ravel()
    if not temp.shape == tau.shape == w.shape:
        raise ValueError("temperatures, escape_times and weights must have the same size")
    if temp.size < 2:
        raise ValueError("an Arrhenius fit needs at least two temperatures")
    for name, v in (("temperatures", temp), ("escape_times", tau), ("weights", w)):
        if not np.all(np.isfinite(v) & (v > 0)):
            raise ValueError(f"{name} must be finite and positive (censored medians are inf)")
    x = 1.0 / temp
    y = np.log(tau)
    design = np.stack([np.ones_like(x), x], axis=1)
    gram = design.T @ (w[:, None] * design)
    log_tau0, barrier = np.linalg.solve(gram, design.T @ (w * y))
    resid = y - (log_tau0 + barrier * x)
    ss_res = float(np.sum(w * resid**2))
    y_mean = np.sum(w * y) / np.sum(w)
    ss_tot = float(np.sum(w * (y - y_mean) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan
    dof = temp.size - 2
    if dof > 0:
        se = math.sqrt(ss_res / dof * np.linalg.inv(gram)[1, 1])
        half = float(stats.t.ppf(0.5 + confidence / 2, dof)) * se
    else:
        se = half = math.nan
    b = float(barrier)
    return ArrheniusFit(
        b, math.exp(log_tau0), float(log_tau0), r2, (b - half, b + half), se, temp.size
    )


# --------------------------------------------------------------------------------------------
# Kramers' law
# --------------------------------------------------------------------------------------------


def kramers_escape_time(
    curvature_min: ArrayLike,
    curvature_saddle: ArrayLike,
    barrier: ArrayLike,
    temperature: ArrayLike,
) -> Array:
    """Overdamped Kramers mean escape time 2 pi / sqrt(U''(min) |U''(saddle)|) exp(barrier / T).

    For dx = -U'(x) dt + sqrt(2T) dW, asymptotically in barrier / T; the saddle curvature may be
    given with either sign.
    """
    k_min = jnp.asarray(curvature_min)
    k_sad = jnp.abs(jnp.asarray(curvature_saddle))
    return 2 * jnp.pi / jnp.sqrt(k_min * k_sad) * jnp.exp(jnp.asarray(barrier) / temperature)


def langer_escape_time(
    hessian_eigs_min: ArrayLike,
    hessian_eigs_saddle: ArrayLike,
    barrier: ArrayLike,
    temperature: ArrayLike,
) -> Array:
    """Multi-dimensional overdamped Kramers (Langer) time for eigenvalues given on the last axis.

    2 pi / |lambda_-| sqrt(|det H_saddle| / det H_min) exp(barrier / T), lambda_- the saddle's one
    negative eigenvalue; equals `kramers_escape_time` in one dimension. A wider well (smaller
    transverse curvature) at the minimum than at the saddle slows escape: an entropic barrier.
    """
    e_min = jnp.asarray(hessian_eigs_min)
    e_sad = jnp.asarray(hessian_eigs_saddle)
    lam_neg = jnp.abs(jnp.min(e_sad, axis=-1))
    ratio = jnp.prod(jnp.abs(e_sad), axis=-1) / jnp.prod(e_min, axis=-1)
    return 2 * jnp.pi / lam_neg * jnp.sqrt(ratio) * jnp.exp(jnp.asarray(barrier) / temperature)


# --------------------------------------------------------------------------------------------
# Gravity wells
# --------------------------------------------------------------------------------------------


class Potential(Protocol):
    """What `langevin_escape` needs from a well: a pytree of numbers with these methods."""

    @property
    def dim(self) -> int: ...

    def energy(self, x_D: Array) -> Array: ...

    def start(self) -> Array: ...

    def crossed(self, x_D: Array, frac: ArrayLike) -> Array: ...


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["stiffness", "x_align", "x_saddle", "x_pre"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class DoubleWell:
    """1-D quartic well with U'(x) = k (x - x_align)(x - x_saddle)(x - x_pre) and U(x_align) = 0.

    The alignment well at x_align and the pretraining well at x_pre sit either side of the saddle;
    the farther a minimum is from the saddle, the deeper and wider its well, so a "shallow narrow"
    alignment well next to a "deep wide" pretraining basin has |x_align - x_saddle| < |x_pre -
    x_saddle|. Barriers and curvatures are exact polynomials of the gaps (methods below). Fields
    are numbers, so wells can be vmapped. Build one with `from_barrier` or
    `symmetric_double_well`.
    """

    stiffness: ArrayLike
    x_align: ArrayLike
    x_saddle: ArrayLike
    x_pre: ArrayLike

    @classmethod
    def from_barrier(
        cls, barrier: float = 1.0, align_width: float = 1.0, pretrain_width: float = 2.0
    ) -> DoubleWell:
        """Saddle at 0, alignment minimum at -align_width, pretraining minimum at +pretrain_width,
        stiffness chosen so that the alignment well's barrier is `barrier`."""
        g1, g2 = align_width, pretrain_width
        return cls(12.0 * barrier / (g1**3 * (g1 + 2 * g2)), -g1, 0.0, g2)

    @property
    def dim(self) -> int:
        return 1

    def _gaps(self) -> tuple[Array, Array]:
        return jnp.abs(self.x_saddle - self.x_align), jnp.abs(self.x_pre - self.x_saddle)

    def energy_1d(self, x: ArrayLike) -> Array:
        """U(x), elementwise."""
        y = jnp.asarray(x) - self.x_align
        a = self.x_saddle - self.x_align
        c = self.x_pre - self.x_align
        return self.stiffness * (y**4 / 4 - (a + c) * y**3 / 3 + a * c * y**2 / 2)

    def energy(self, x_D: Array) -> Array:
        return self.energy_1d(x_D[0])

    def start(self) -> Array:
        return jnp.reshape(jnp.asarray(self.x_align, dtype=float), (1,))

    def crossed(self, x_D: Array, frac: ArrayLike) -> Array:
        """Whether x has passed the saddle by `frac` of the way to the pretraining minimum."""
        return _past_saddle(x_D[0], self, frac)

    def barrier(self) -> Array:
        """U(saddle) - U(alignment minimum) = k g1^3 (g1 + 2 g2) / 12."""
        g1, g2 = self._gaps()
        return self.stiffness * g1**3 * (g1 + 2 * g2) / 12

    def pretrain_depth(self) -> Array:
        """U(saddle) - U(pretraining minimum) = k g2^3 (g2 + 2 g1) / 12."""
        g1, g2 = self._gaps()
        return self.stiffness * g2**3 * (g2 + 2 * g1) / 12

    def curvatures(self) -> tuple[Array, Array, Array]:
        """U'' at (alignment minimum, saddle, pretraining minimum): k g1 (g1+g2), -k g1 g2,
        k g2 (g1+g2)."""
        g1, g2 = self._gaps()
        k = self.stiffness
        return k * g1 * (g1 + g2), -k * g1 * g2, k * g2 * (g1 + g2)

    def kramers_time(self, temperature: ArrayLike) -> Array:
        """Kramers' mean escape time out of the alignment well."""
        k_min, k_sad, _ = self.curvatures()
        return kramers_escape_time(k_min, k_sad, self.barrier(), temperature)


def symmetric_double_well(a: float = 1.0) -> DoubleWell:
    """U(x) = a (x^2 - 1)^2 (minima at -1 and +1, barrier a, U'' = 8a at minima, -4a on top)."""
    return DoubleWell(4.0 * a, -1.0, 0.0, 1.0)


def _past_saddle(x: Array, well: DoubleWell, frac: ArrayLike) -> Array:
    toward = well.x_pre - well.x_saddle
    return (x - well.x_saddle) * jnp.sign(toward) >= frac * jnp.abs(toward)


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["well", "kappa_align", "kappa_pre"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class GravityWell2D:
    """2-D gravity well U(x, y) = U_well(x) + kappa(x) y^2 / 2 with log kappa linear in x.

    The reaction coordinate x is a `DoubleWell`; kappa(x) is the transverse curvature, kappa_align
    at the alignment minimum and kappa_pre at the pretraining one (geometric interpolation, so it
    stays positive). A narrow alignment well (large kappa_align) beside a wide pretraining valley
    (small kappa_pre) loses the particle faster than the 1-D well alone: the transverse width adds
    an entropic term to Kramers' prefactor (`langer_escape_time`). The critical points stay at
    (x*, 0) with diagonal Hessians, so everything below is exact.
    """

    well: DoubleWell
    kappa_align: ArrayLike
    kappa_pre: ArrayLike

    @classmethod
    def from_barrier(
        cls,
        barrier: float = 1.0,
        align_width: float = 1.0,
        pretrain_width: float = 2.0,
        kappa_align: float = 8.0,
        kappa_pre: float = 1.0,
    ) -> GravityWell2D:
        """`DoubleWell.from_barrier` along x, transverse curvatures kappa_align -> kappa_pre."""
        return cls(
            DoubleWell.from_barrier(barrier, align_width, pretrain_width), kappa_align, kappa_pre
        )

    @property
    def dim(self) -> int:
        return 2

    def kappa(self, x: ArrayLike) -> Array:
        """Transverse curvature at reaction coordinate x."""
        w = self.well
        s = (jnp.asarray(x) - w.x_align) / (w.x_pre - w.x_align)
        return self.kappa_align * (self.kappa_pre / self.kappa_align) ** s

    def energy(self, x_D: Array) -> Array:
        return self.well.energy_1d(x_D[0]) + 0.5 * self.kappa(x_D[0]) * x_D[1] ** 2

    def start(self) -> Array:
        return jnp.stack([jnp.asarray(self.well.x_align, dtype=float), jnp.zeros(())])

    def crossed(self, x_D: Array, frac: ArrayLike) -> Array:
        return _past_saddle(x_D[0], self.well, frac)

    def barrier(self) -> Array:
        return self.well.barrier()

    def hessian_eigs(self) -> tuple[Array, Array, Array]:
        """Hessian eigenvalues (2,) at the alignment minimum, the saddle and the pretraining
        minimum: (U_well'', kappa) at each."""
        k_a, k_s, k_p = self.well.curvatures()
        w = self.well
        return (
            jnp.stack([k_a, self.kappa(w.x_align)]),
            jnp.stack([k_s, self.kappa(w.x_saddle)]),
            jnp.stack([k_p, self.kappa(w.x_pre)]),
        )

    def kramers_time(self, temperature: ArrayLike) -> Array:
        """Langer's mean escape time out of the alignment well."""
        e_a, e_s, _ = self.hessian_eigs()
        return langer_escape_time(e_a, e_s, self.barrier(), temperature)


# --------------------------------------------------------------------------------------------
# Langevin simulation
# --------------------------------------------------------------------------------------------


@partial(jax.jit, static_argnames=("n_particles", "chunk"))
def langevin_escape(
    key: Array,
    potential: Potential,
    temperature: ArrayLike,
    *,
    n_particles: int,
    dt: ArrayLike,
    max_steps: ArrayLike,
    frac: ArrayLike = 0.5,
    chunk: int = 256,
) -> tuple[Array, Array]:
    """First-passage steps of overdamped Langevin particles out of a potential's alignment well.

    Euler–Maruyama for dx = -grad U(x) dt + sqrt(2 T) dW, all particles starting at the alignment
    minimum. Only the first step at which each particle has `crossed(x, frac)` is kept, never the
    trajectory. Steps run in scanned chunks of `chunk` inside a while loop that stops once every
    particle has escaped or `max_steps` is reached; `max_steps` is traced, so horizons can change
    without recompiling; `chunk` only trades loop overhead against wasted steps after the last
    escape, never the result. Returns `(steps, escaped)`, both (n_particles,): steps taken until the
    first crossing (escape time = steps * dt), or `max_steps` for censored particles.
    """
    dt = jnp.asarray(dt, dtype=float)
    max_steps = jnp.asarray(max_steps, dtype=jnp.int32)
    noise_scale = jnp.sqrt(2.0 * temperature * dt)
    grad_P = jax.vmap(jax.grad(potential.energy))
    crossed_P = jax.vmap(potential.crossed, in_axes=(0, None))
    x0_PxD = jnp.broadcast_to(potential.start(), (n_particles, potential.dim))

    def step(carry, inp):
        x_PxD, first_P, escaped_P = carry
        step_key, t = inp
        xi_PxD = jax.random.normal(step_key, x_PxD.shape, x_PxD.dtype)
        x_PxD = x_PxD - grad_P(x_PxD) * dt + noise_scale * xi_PxD
        new_P = crossed_P(x_PxD, frac) & ~escaped_P & (t < max_steps)
        first_P = jnp.where(new_P, t + 1, first_P)
        return (x_PxD, first_P, escaped_P | new_P), None

    def cond(state):
        c, _, _, escaped_P = state
        return (c * chunk < max_steps) & ~jnp.all(escaped_P)

    def body(state):
        c, x_PxD, first_P, escaped_P = state
        ts = c * chunk + jnp.arange(chunk, dtype=jnp.int32)
        # One key per global step, so results do not depend on `chunk`.
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, ts)
        (x_PxD, first_P, escaped_P), _ = jax.lax.scan(step, (x_PxD, first_P, escaped_P), (keys, ts))
        return c + 1, x_PxD, first_P, escaped_P

    first0 = jnp.full((n_particles,), max_steps, dtype=jnp.int32)
    escaped0 = jnp.zeros((n_particles,), dtype=bool)
    _, _, first, escaped = jax.lax.while_loop(
        cond, body, (jnp.zeros((), jnp.int32), x0_PxD, first0, escaped0)
    )
    return first, escaped


@partial(jax.jit, static_argnames=("n_particles", "chunk"))
def langevin_escape_sweep(
    key: Array,
    potential: Potential,
    temperatures: ArrayLike,
    *,
    n_particles: int,
    dt: ArrayLike,
    max_steps: ArrayLike,
    frac: ArrayLike = 0.5,
    chunk: int = 256,
) -> tuple[Array, Array]:
    """`langevin_escape` vmapped over temperatures (K,), one independent key each: (K, P) arrays.

    All temperatures share one horizon and the loop runs until the slowest finishes; for widely
    spread temperatures, call `langevin_escape` per temperature with its own `max_steps`.
    """
    temps_K = jnp.asarray(temperatures)
    keys = jax.random.split(key, temps_K.shape[0])
    run = partial(
        langevin_escape, n_particles=n_particles, dt=dt, max_steps=max_steps, frac=frac, chunk=chunk
    )
    return jax.vmap(lambda k, t: run(k, potential, t))(keys, temps_K)


def mfpt_1d(
    well: DoubleWell, temperature: float, *, frac: float = 0.5, n_grid: int = 100_001
) -> float:
    """Exact mean first-passage time from the alignment minimum to the `frac` escape boundary.

    The 1-D overdamped MFPT (the far side closed by the quartic wall), tau = (1/T) int_{x0}^{b}
    dy exp(U(y)/T) int_{-inf}^{y} dz exp(-U(z)/T), by quadrature (host side, float64). Kramers'
    formula is its large-barrier limit; the gap at moderate barrier / T is the finite-barrier
    correction.
    """
    k = float(well.stiffness)
    xa, xs, xp = float(well.x_align), float(well.x_saddle), float(well.x_pre)
    # y = distance from the alignment minimum toward the pretraining one: escape is to larger y.
    sign = 1.0 if xp > xs else -1.0
    a, c = sign * (xs - xa), sign * (xp - xa)

    def u(y: np.ndarray) -> np.ndarray:
        return k * (y**4 / 4 - (a + c) * y**3 / 3 + a * c * y**2 / 2)

    left = -a
    while u(np.array(left)) < 60.0 * temperature:
        left *= 2.0
    boundary = a + frac * (c - a)
    y = np.concatenate([np.linspace(left, 0.0, n_grid), np.linspace(0.0, boundary, n_grid)[1:]])
    inner = integrate.cumulative_trapezoid(np.exp(-u(y) / temperature), y, initial=0.0)
    outer = np.exp(u(y[n_grid - 1 :]) / temperature) * inner[n_grid - 1 :]
    return float(integrate.trapezoid(outer, y[n_grid - 1 :]) / temperature)


# --------------------------------------------------------------------------------------------
# Langevin escape as a sweep's per-run measure, and its calibration against Kramers
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EscapeSpec:
    """The static part of a Langevin escape run (`escape_measure`): the well's kind (wells of one
    kind are pytrees of one structure and share a compiled program), how many particles, and the
    step chunk of `langevin_escape`."""

    well: str
    n_particles: int
    chunk: int = 256


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["potential", "temperature", "dt", "max_steps", "stream"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class EscapeKnobs:
    """What a Langevin escape run traces (so a sweep vmaps over it): the well, its temperature,
    the time step, the horizon in steps, and the noise stream folded into the run's key."""

    potential: Potential
    temperature: ArrayLike
    dt: ArrayLike
    max_steps: ArrayLike
    stream: ArrayLike


def escape_measure(key: Array, spec: EscapeSpec, knobs: EscapeKnobs) -> dict[str, Array]:
    """Per run of a sweep: `langevin_escape` of `spec.n_particles` particles with the key folded
    with `knobs.stream`, as {"steps", "escaped"} (each (particles,)) and a `diverged` flag that is
    never set (a Langevin run has no divergence to flag)."""
    steps, escaped = langevin_escape(
        jax.random.fold_in(key, knobs.stream),
        knobs.potential,
        knobs.temperature,
        n_particles=spec.n_particles,
        dt=knobs.dt,
        max_steps=knobs.max_steps,
        chunk=spec.chunk,
    )
    return {"steps": steps, "escaped": escaped, "diverged": jnp.zeros((), bool)}


def escape_point(
    potential: Potential,
    temperature: float,
    *,
    n_particles: int,
    dt: float,
    horizon: float = 3.0,
    stream: int = 0,
) -> tuple[EscapeSpec, EscapeKnobs]:
    """(spec, knobs) of one `escape_measure` run: `n_particles` particles in `potential` at
    `temperature`, observed for `horizon` Kramers (Langer) times, censored after that."""
    kramers = float(potential.kramers_time(temperature))
    knobs = EscapeKnobs(potential, temperature, dt, int(horizon * kramers / dt), stream)
    return EscapeSpec(type(potential).__name__, n_particles), knobs


def kramers_calibration(
    potential: Potential,
    barrier_over_t: tuple[float, ...],
    steps_KxP: ArrayLike,
    escaped_KxP: ArrayLike,
    dt: float,
) -> dict:
    """Langevin escape steps of `potential` at each barrier / T (rows of the arrays) read against
    Kramers' (Langer's) time and, for a 1-D `DoubleWell`, the exact MFPT: per temperature the
    censored exponential mean (`exponential_mle`) with its interval; over them the Arrhenius
    barrier they fit (weighted by the escape counts) and the largest relative errors."""
    barrier = float(potential.barrier())
    exact = isinstance(potential, DoubleWell)
    rows = []
    for ratio, steps, escaped in zip(barrier_over_t, steps_KxP, escaped_KxP, strict=True):
        temperature = barrier / ratio
        fit = exponential_mle(np.asarray(steps) * dt, np.asarray(escaped))
        rows.append(
            {
                "barrier_over_t": ratio,
                "temperature": temperature,
                "mean_escape": fit.mean,
                "mean_ci": list(fit.mean_ci),
                "escaped": fit.n_events,
                "kramers": float(potential.kramers_time(temperature)),
                "exact_mfpt": mfpt_1d(potential, temperature) if exact else None,
            }
        )
    fit = arrhenius_fit(
        [r["temperature"] for r in rows],
        [r["mean_escape"] for r in rows],
        weights=[r["escaped"] for r in rows],
    )

    def worst(reference: str) -> float:
        return max(abs(r["mean_escape"] / r[reference] - 1) for r in rows)

    return {
        "rows": rows,
        "arrhenius_barrier": fit.barrier,
        "arrhenius_barrier_ci": list(fit.barrier_ci),
        "arrhenius_r_squared": fit.r_squared,
        "max_relative_error_vs_kramers": worst("kramers"),
        "max_relative_error_vs_exact_mfpt": worst("exact_mfpt") if exact else None,
    }
