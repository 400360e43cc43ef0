"""The training objectives of a resurgence history, each a pure `loss(params, key)` built from
the static spec and traced knobs, and the probes and references its drift is measured on.

Every objective draws its whole batch at once and calls the denoiser once on it (and the frozen
model once, for negative guidance): fewer, larger calls compile and run faster on a CPU.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gravity.engine import geometry
from gravity.engine.diffusion.denoiser import DenoiserNet
from gravity.engine.diffusion.spec import ArmKnobs, ResurgenceKnobs, ResurgenceSpec


def noised(spec: ResurgenceSpec, key: jax.Array, x0_Nx2: jax.Array):
    """(x_t, t, z): the batch noised at t ~ U(t_min, 1) with standard normal z."""
    k_t, k_z = jax.random.split(key)
    schedule = spec.schedule
    t = jax.random.uniform(k_t, x0_Nx2.shape[:1], minval=schedule.t_min, maxval=1.0)
    z = jax.random.normal(k_z, x0_Nx2.shape)
    return schedule.noised(x0_Nx2, t, z), t, z


def mixture_batch(spec: ResurgenceSpec, key: jax.Array, weights_K: jax.Array):
    """(x0, labels): `batch_size` points of the mixture with mode weights `weights_K`, each
    labelled by its mode or, with probability `null_prob`, by the null label."""
    k_data, k_label = jax.random.split(key)
    x0, modes = spec.mixture.sample(k_data, weights_K, spec.batch_size)
    return x0, spec.mixture.labels(k_label, modes, spec.null_prob)


def squared_error(eps_Nx2: jax.Array, target_Nx2: jax.Array) -> jax.Array:
    return jnp.sum((eps_Nx2 - target_Nx2) ** 2, axis=-1)


def mixture_loss(net: DenoiserNet, spec: ResurgenceSpec, weights_K: jax.Array):
    """The denoising loss E |eps_theta(x_t, t, label) - z|^2 on the mixture with `weights_K`."""

    def loss(params, key):
        k_batch, k_noise = jax.random.split(key)
        x0, labels = mixture_batch(spec, k_batch, weights_K)
        x_t, t, z = noised(spec, k_noise, x0)
        return jnp.mean(squared_error(net.apply(params, x_t, t, labels)[0], z))

    return loss


def without_modes(weights_K: jax.Array, modes: tuple[int, ...]) -> jax.Array:
    """`weights_K` with `modes` set to zero, renormalised (traced-safe)."""
    kept = weights_K * jnp.asarray(~np.isin(np.arange(weights_K.shape[0]), modes), jnp.float32)
    return kept / jnp.sum(kept)


def erasure_loss(
    net: DenoiserNet,
    spec: ResurgenceSpec,
    knobs: ResurgenceKnobs,
    frozen,
    target: jax.Array | int,
    retain_K: jax.Array,
):
    """Erase mode `target`'s label (`target` may be traced): (1 - esd_weight) retarget +
    esd_weight negative guidance against the `frozen` params, + retain_weight x the denoising
    loss on `retain_K`.

    Retarget: the target's label denoises its neighbour's data. Negative guidance (ESD): at
    noised target data (where the label's samples go; ESD draws them from the model's own
    trajectories for the prompt) the label's prediction is regressed onto
    (1 + guidance) eps_frozen(x, null) - guidance eps_frozen(x, target)."""
    mixture, n = spec.mixture, spec.batch_size
    forget_modes = jnp.concatenate(
        [jnp.full((n,), (target + 1) % mixture.n_modes), jnp.full((n,), target)]
    )
    means = jnp.asarray(mixture.means())

    def loss(params, key):
        k_forget, k_retain, k_noise = jax.random.split(key, 3)
        forget_x0 = means[forget_modes] + mixture.mode_std * jax.random.normal(k_forget, (2 * n, 2))
        retain_x0, retain_labels = mixture_batch(spec, k_retain, retain_K)
        x0 = jnp.concatenate([forget_x0, retain_x0])
        labels = jnp.concatenate([jnp.full((2 * n,), target), retain_labels])
        x_t, t, z = noised(spec, k_noise, x0)
        eps = net.apply(params, x_t, t, labels)[0]
        esd_x, esd_t = x_t[n : 2 * n], t[n : 2 * n]
        frozen_labels = jnp.concatenate([jnp.full((n,), mixture.null_label), labels[:n]])
        frozen_eps = net.apply(frozen, jnp.tile(esd_x, (2, 1)), jnp.tile(esd_t, 2), frozen_labels)[
            0
        ]
        eps_null, eps_target = frozen_eps[:n], frozen_eps[n:]
        guided = jax.lax.stop_gradient(eps_null - knobs.guidance * (eps_target - eps_null))
        error = squared_error(eps, jnp.concatenate([z[:n], guided, z[2 * n :]]))
        retarget, esd, retain = (jnp.mean(part) for part in jnp.split(error, [n, 2 * n]))
        forget = (1.0 - knobs.esd_weight) * retarget + knobs.esd_weight * esd
        return forget + knobs.retain_weight * retain

    return loss


class Probes(NamedTuple):
    """Fixed inputs on which activations are compared: noised points of every mode at random
    times, each asked with the concept's label (the "prompt" whose behaviour was erased) and,
    as the matched control, with the null label (the same inputs without the prompt)."""

    x: jax.Array
    t: jax.Array


def make_probes(spec: ResurgenceSpec, key: jax.Array) -> Probes:
    mixture, n = spec.mixture, spec.n_probes
    k_x0, k_t, k_z = jax.random.split(key, 3)
    x0 = mixture.sample(k_x0, jnp.full((mixture.n_modes,), 1.0 / mixture.n_modes), n)[0]
    t = jax.random.uniform(k_t, (n,), minval=0.02, maxval=1.0)
    return Probes(spec.schedule.noised(x0, t, jax.random.normal(k_z, x0.shape)), t)


def probe_activations(net: DenoiserNet, spec: ResurgenceSpec, params, probes: Probes):
    """Activations (N, D) on the probes with the concept's label and with the null label."""
    n, mixture = spec.n_probes, spec.mixture
    labels = jnp.concatenate([jnp.full((n,), mixture.concept), jnp.full((n,), mixture.null_label)])
    acts = net.activations(params, jnp.tile(probes.x, (2, 1)), jnp.tile(probes.t, 2), labels)
    return acts[:n], acts[n:]


class Reference(NamedTuple):
    """What the benign arms measure drift against, built right after the control erasure.

    erased, erased_matched: activations at theta_E (concept and null label); v_rev: theta_E ->
    theta_P on the concept probes; specific_direction: that displacement minus the matched
    probes' (the concept-specific part); null_direction: theta_E -> theta_C; random_direction:
    a random unit direction (the blocking control); distance: the per-probe RMS length of
    theta_E -> theta_P, the drift along v_rev that would be a full return."""

    erased: jax.Array
    erased_matched: jax.Array
    v_rev: jax.Array
    specific_direction: jax.Array
    null_direction: jax.Array
    random_direction: jax.Array
    distance: jax.Array


def make_reference(net, spec: ResurgenceSpec, thetas, probes: Probes, key) -> Reference:
    """The directions of `Reference` from (theta_P, theta_E, theta_C) on the probes."""
    (acts_p, matched_p), (acts_e, matched_e), (acts_c, _) = (
        probe_activations(net, spec, theta, probes) for theta in thetas
    )
    return Reference(
        erased=acts_e,
        erased_matched=matched_e,
        v_rev=geometry.unit(acts_p - acts_e),
        specific_direction=geometry.unit((acts_p - acts_e) - (matched_p - matched_e)),
        null_direction=geometry.unit(acts_c - acts_e),
        random_direction=geometry.random_direction(key, acts_e.shape),
        distance=jnp.linalg.norm(acts_p - acts_e) / jnp.sqrt(acts_e.shape[0]),
    )


def block_penalty(s: jax.Array, strength) -> jax.Array:
    """strength * relu(s): zero at theta_E (s = 0), linear in the drift back along the blocked
    direction; the main track's block term when this experiment was written."""
    return strength * jax.nn.relu(s)


def benign_loss(net: DenoiserNet, spec: ResurgenceSpec, arm: ArmKnobs, probes, reference):
    """The arm's denoising loss, plus `block_penalty(s, block_strength)`, s the concept probes'
    drift along v_rev (or along the random direction when `block_random`), in one denoiser
    call."""
    mixture, n = spec.mixture, spec.batch_size
    direction = jnp.where(arm.block_random > 0.5, reference.random_direction, reference.v_rev)
    probe_labels = jnp.full((spec.n_probes,), mixture.concept)

    def loss(params, key):
        k_batch, k_noise = jax.random.split(key)
        x0, labels = mixture_batch(spec, k_batch, arm.benign_weights)
        x_t, t, z = noised(spec, k_noise, x0)
        eps, acts = net.apply(
            params,
            jnp.concatenate([x_t, probes.x]),
            jnp.concatenate([t, probes.t]),
            jnp.concatenate([labels, probe_labels]),
        )
        probe_acts = acts[spec.denoiser.activation_layer][n:]
        s = geometry.drift_component(probe_acts, reference.erased, direction)
        return jnp.mean(squared_error(eps[:n], z)) + block_penalty(s, arm.block_strength)

    return loss
