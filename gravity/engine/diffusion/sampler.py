"""The noise schedule, the deterministic sampler and the model's likelihood.

A noise prediction is any function `eps_fn(x (N, 2), t (N,), labels (N,)) -> (N, 2)`: a trained
denoiser's, or the exact one of a mixture (`exact_epsilon`), which is how the sampler is tested.

- Schedule: the variance-preserving diffusion with a linear beta(t) on t in [t_min, 1];
  x_t = sqrt(alpha_bar(t)) x_0 + sqrt(1 - alpha_bar(t)) z.
- Sampler: the probability-flow ODE solved by DPM-Solver++(2M) (DDIM with a second-order
  multistep correction: at 16 steps it keeps each mode's spread within ~3%, where DDIM shrinks
  it by ~13%) on a grid uniform in log signal-to-noise ratio, from Gaussian noise at t = 1 down
  to t_min; deterministic given the starting noise, so two models sampled from the same noise
  differ only by what they learned.
- Likelihood: the probability-flow ODE's log-density (instantaneous change of variables, the
  exact 2 x 2 Jacobian trace, Heun steps on the same grid), and from it a mode's mass as the
  integral of the density over its basin on a polar quadrature grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gravity.engine.diffusion.mixture import RingMixture
from gravity.validation import check

EpsilonFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Variance-preserving schedule with beta(t) = beta_min + (beta_max - beta_min) t."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    t_min: float = 1e-3

    def __post_init__(self):
        check(
            0 < self.beta_min < self.beta_max,
            "schedule.beta_min",
            f"in (0, beta_max = {self.beta_max})",
            self.beta_min,
        )
        check(0 < self.t_min < 0.1, "schedule.t_min", "in (0, 0.1)", self.t_min)

    def beta(self, t):
        return self.beta_min + (self.beta_max - self.beta_min) * t

    def integral(self, t):
        """The integral of beta from 0 to t, so that alpha_bar(t) = exp(-integral(t))."""
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def alpha_bar(self, t):
        return jnp.exp(-self.integral(t))

    def log_snr(self, t) -> np.ndarray:
        integral = np.asarray(self.integral(np.asarray(t, dtype=float)))
        return -integral - np.log(-np.expm1(-integral))

    def time_of_log_snr(self, log_snr) -> np.ndarray:
        """The t at which log(alpha_bar / (1 - alpha_bar)) equals `log_snr` (numpy, exact)."""
        integral = np.logaddexp(0.0, -np.asarray(log_snr, dtype=float))
        slope = self.beta_max - self.beta_min
        return (np.sqrt(self.beta_min**2 + 2 * slope * integral) - self.beta_min) / slope

    def grid(self, steps: int) -> np.ndarray:
        """steps + 1 times from 1 down to t_min, uniform in log-SNR (static, numpy)."""
        check(steps >= 1, "sampler steps", "a positive integer", steps)
        log_snr = np.linspace(self.log_snr(1.0), self.log_snr(self.t_min), steps + 1)
        times = self.time_of_log_snr(log_snr)
        times[0], times[-1] = 1.0, self.t_min
        return times

    def noised(self, x0_Nx2, t_N, noise_Nx2):
        a = self.alpha_bar(t_N)[:, None]
        return jnp.sqrt(a) * x0_Nx2 + jnp.sqrt(1.0 - a) * noise_Nx2


def exact_epsilon(mixture: RingMixture, schedule: Schedule, label_weights_LxK) -> EpsilonFn:
    """The exact noise prediction of the mixture conditioned on a label, where label l has
    mode weights `label_weights_LxK[l]` (see `RingMixture.label_weights`)."""
    table = jnp.asarray(label_weights_LxK, dtype=jnp.float32)

    def eps_fn(x_Nx2, t_N, labels_N):
        return mixture.epsilon(x_Nx2, schedule.alpha_bar(t_N), table[labels_N])

    return eps_fn


def ode_sample(
    eps_fn: EpsilonFn, schedule: Schedule, grid, noise_Nx2, labels_N, order: int = 2
) -> jax.Array:
    """Deterministic samples (N, 2) of the probability-flow ODE from `noise_Nx2` at t = 1 down
    the `grid`: DPM-Solver++(2M), i.e. DDIM (order 1, the ODE's exponential integrator in the
    predicted x_0) plus a second-order multistep correction from the previous step's x_0."""
    check(order in (1, 2), "order", "1 (DDIM) or 2 (DPM-Solver++(2M))", order)
    times = jnp.asarray(grid, dtype=jnp.float32)
    n = noise_Nx2.shape[0]
    first = jnp.arange(times.shape[0] - 1) == 0

    def scales(t):
        a = schedule.alpha_bar(t)
        return jnp.sqrt(a), jnp.sqrt(1.0 - a)

    def step(carry, xs):
        x, x0_previous, h_previous = carry
        t, s, is_first = xs
        (alpha_t, sigma_t), (alpha_s, sigma_s) = scales(t), scales(s)
        x0 = (x - sigma_t * eps_fn(x, jnp.full((n,), t), labels_N)) / alpha_t
        h = jnp.log(alpha_s / sigma_s) - jnp.log(alpha_t / sigma_t)
        half_ratio = 0.5 * h / h_previous
        corrected = (1.0 + half_ratio) * x0 - half_ratio * x0_previous
        x0_used = x0 if order == 1 else jnp.where(is_first, x0, corrected)
        return ((sigma_s / sigma_t) * x - alpha_s * jnp.expm1(-h) * x0_used, x0, h), None

    start = (noise_Nx2, jnp.zeros_like(noise_Nx2), jnp.ones(()))
    (x, _, _), _ = jax.lax.scan(step, start, (times[:-1], times[1:], first))
    return x


def _velocity_and_divergence(eps_fn: EpsilonFn, schedule: Schedule, x_Nx2, t, labels_N):
    """The probability-flow ODE's velocity dx/dt and its divergence (exact 2 x 2 trace)."""

    def velocity(x_2, label):
        eps = eps_fn(x_2[None], jnp.full((1,), t), label[None])[0]
        sigma = jnp.sqrt(1.0 - schedule.alpha_bar(t))
        return -0.5 * schedule.beta(t) * (x_2 - eps / sigma)

    def with_divergence(x_2, label):
        v = velocity(x_2, label)
        return v, jnp.trace(jax.jacfwd(velocity)(x_2, label))

    return jax.vmap(with_divergence)(x_Nx2, labels_N)


def ode_log_density(eps_fn: EpsilonFn, schedule: Schedule, grid, x_Nx2, labels_N) -> jax.Array:
    """log p(x) at t_min under the model's probability-flow ODE: the points are carried up to
    t = 1 (Heun steps on the reversed `grid`) and log N(x_1; 0, I) plus the integrated
    divergence is returned, (N,)."""
    times = jnp.asarray(np.asarray(grid)[::-1], dtype=jnp.float32)

    def step(carry, pair):
        x, log_det = carry
        t, s = pair
        dt = s - t
        v0, div0 = _velocity_and_divergence(eps_fn, schedule, x, t, labels_N)
        v1, div1 = _velocity_and_divergence(eps_fn, schedule, x + dt * v0, s, labels_N)
        return (x + 0.5 * dt * (v0 + v1), log_det + 0.5 * dt * (div0 + div1)), None

    start = (x_Nx2, jnp.zeros(x_Nx2.shape[0]))
    (x1, log_det), _ = jax.lax.scan(step, start, (times[:-1], times[1:]))
    log_prior = -0.5 * jnp.sum(x1**2, axis=-1) - jnp.log(2 * jnp.pi)
    return log_prior + log_det


def basin_quadrature(mixture: RingMixture, mode: int, n_radii: int, n_angles: int):
    """A polar midpoint rule over `mode`'s basin: points (M, 2) and area weights (M,)."""
    edges = np.linspace(0.0, mixture.basin_radius, n_radii + 1)
    radii = 0.5 * (edges[1:] + edges[:-1])
    angles = 2 * np.pi * (np.arange(n_angles) + 0.5) / n_angles
    r, a = np.meshgrid(radii, angles, indexing="ij")
    points = mixture.means()[mode] + np.stack([r * np.cos(a), r * np.sin(a)], -1).reshape(-1, 2)
    weights = (r * np.diff(edges)[:, None] * (2 * np.pi / n_angles)).reshape(-1)
    return jnp.asarray(points, jnp.float32), jnp.asarray(weights, jnp.float32)


def likelihood_mass(
    eps_fn: EpsilonFn,
    schedule: Schedule,
    grid,
    mixture: RingMixture,
    mode: int,
    label: int,
    n_radii: int = 12,
    n_angles: int = 16,
) -> jax.Array:
    """The model's probability that a sample for `label` lands in `mode`'s basin, from its
    ODE log-density integrated over the basin (no sampling noise)."""
    points, weights = basin_quadrature(mixture, mode, n_radii, n_angles)
    labels = jnp.full((points.shape[0],), label)
    density = jnp.exp(ode_log_density(eps_fn, schedule, grid, points, labels))
    return jnp.sum(density * weights)
