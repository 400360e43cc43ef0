"""The generative world: a Gaussian mixture on a ring of modes, one of them the "concept".

Everything about the data is exact here: its samples, the score of its noised marginals (so a
sampler can be checked against a denoiser that knows the true answer), and the basin of each
mode (a disc around its mean), in which a model's "mass" on a mode is counted.

Labels follow one convention: `0 .. n_modes - 1` name the modes (the "prompts"), and
`n_modes` is the null label of an unconditional model (classifier-free-guidance style).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from gravity.validation import check


@dataclasses.dataclass(frozen=True)
class RingMixture:
    """`n_modes` isotropic Gaussians (std `mode_std`) evenly spaced on a circle of `radius`;
    mode `concept` is the one erased. Static (hashable): it fixes shapes and constants."""

    n_modes: int = 8
    radius: float = 2.0
    mode_std: float = 0.15
    concept: int = 0

    def __post_init__(self):
        check(self.n_modes >= 3, "mixture.n_modes", "an integer >= 3", self.n_modes)
        check(self.radius > 0, "mixture.radius", "a positive number", self.radius)
        check(
            0 < self.mode_std < self.basin_radius / 3,
            "mixture.mode_std",
            f"in (0, basin_radius / 3 = {self.basin_radius / 3:.3g}) so that basins hold modes",
            self.mode_std,
        )
        check(
            0 <= self.concept < self.n_modes,
            "mixture.concept",
            f"a mode index in [0, {self.n_modes})",
            self.concept,
        )

    @property
    def n_labels(self) -> int:
        """Mode labels plus the null label."""
        return self.n_modes + 1

    @property
    def null_label(self) -> int:
        return self.n_modes

    @property
    def basin_radius(self) -> float:
        """Half the distance between neighbouring means: the basins are disjoint discs."""
        return float(self.radius * np.sin(np.pi / self.n_modes))

    def means(self) -> np.ndarray:
        """The modes' means, (n_modes, 2)."""
        angles = 2 * np.pi * np.arange(self.n_modes) / self.n_modes
        return self.radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)

    def ring_distance(self, a: int, b: int) -> int:
        """How many steps around the ring separate modes a and b."""
        gap = abs(a - b) % self.n_modes
        return min(gap, self.n_modes - gap)

    def modes_at(self, distance: int, origin: int | None = None) -> np.ndarray:
        """Equal weights (n_modes,) on the modes `distance` steps from `origin` (the concept)."""
        origin = self.concept if origin is None else origin
        check(
            1 <= distance <= self.n_modes // 2,
            "distance",
            f"an integer in [1, {self.n_modes // 2}]",
            distance,
        )
        near = [self.ring_distance(origin, k) == distance for k in range(self.n_modes)]
        weights = np.asarray(near, dtype=float)
        return weights / weights.sum()

    def without(self, *modes: int, weights=None) -> np.ndarray:
        """`weights` (default uniform) with `modes` removed, renormalised."""
        base = np.ones(self.n_modes) if weights is None else np.asarray(weights, dtype=float)
        kept = base * ~np.isin(np.arange(self.n_modes), modes)
        return kept / kept.sum()

    def sample(self, key: jax.Array, weights_K: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
        """n points of the mixture with mode weights `weights_K` (zeros allowed): (x (n, 2),
        mode (n,))."""
        k_mode, k_noise = jax.random.split(key)
        modes = jax.random.categorical(k_mode, jnp.log(weights_K), shape=(n,))
        x = jnp.asarray(self.means())[modes] + self.mode_std * jax.random.normal(k_noise, (n, 2))
        return x, modes

    def epsilon(self, x_Nx2: jax.Array, alpha_bar_N: jax.Array, weights_NxK: jax.Array):
        """The exact noise prediction E[z | x_t] of the mixture noised as
        x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) z, each row with its own mode weights
        (this is -sqrt(1 - alpha_bar) times the score of the noised marginal)."""
        a = alpha_bar_N[:, None]
        variance = a * self.mode_std**2 + (1.0 - a)
        centres = jnp.sqrt(a)[:, :, None] * jnp.asarray(self.means()).T[None]
        sq = jnp.sum((x_Nx2[:, :, None] - centres) ** 2, axis=1)
        responsibility = jax.nn.softmax(jnp.log(weights_NxK) - sq / (2 * variance), axis=-1)
        posterior_centre = jnp.einsum("nk,ndk->nd", responsibility, centres)
        return jnp.sqrt(1.0 - a) * (x_Nx2 - posterior_centre) / variance

    def log_density(self, x_Nx2: jax.Array, weights_K: jax.Array) -> jax.Array:
        """The exact log-density of the mixture at each point, (N,)."""
        sq = jnp.sum((x_Nx2[:, None, :] - jnp.asarray(self.means())[None]) ** 2, axis=-1)
        log_normal = -sq / (2 * self.mode_std**2) - jnp.log(2 * jnp.pi * self.mode_std**2)
        return jax.nn.logsumexp(log_normal + jnp.log(weights_K)[None], axis=-1)

    def in_basin(self, x_Nx2: jax.Array, mode: int) -> jax.Array:
        """Whether each point lies in `mode`'s basin (the disc of `basin_radius`), (N,) bool."""
        centre = jnp.asarray(self.means()[mode])
        return jnp.sum((x_Nx2 - centre[None]) ** 2, axis=-1) < self.basin_radius**2

    def basin_of(self, x_Nx2: jax.Array) -> jax.Array:
        """The mode whose basin holds each point, or -1 outside every basin, (N,) int."""
        sq = jnp.sum((x_Nx2[:, None, :] - jnp.asarray(self.means())[None]) ** 2, axis=-1)
        return jnp.where(jnp.min(sq, axis=-1) < self.basin_radius**2, jnp.argmin(sq, axis=-1), -1)

    def basin_share(self, x_Nx2: jax.Array, mode: int) -> jax.Array:
        """The share of points in `mode`'s basin: a model's mass on that mode, from samples."""
        return jnp.mean(self.in_basin(x_Nx2, mode).astype(jnp.float32))

    def labels(self, key: jax.Array, modes_N: jax.Array, null_prob: float) -> jax.Array:
        """Each sample's label: its mode, or the null label with probability `null_prob`."""
        dropped = jax.random.uniform(key, modes_N.shape) < null_prob
        return jnp.where(dropped, self.null_label, modes_N)

    def label_weights(self, weights_K) -> np.ndarray:
        """Mode weights of every label's conditional distribution, (n_labels, n_modes): one-hot
        for a mode label, `weights_K` for the null label."""
        return np.concatenate([np.eye(self.n_modes), np.asarray(weights_K, dtype=float)[None]])
