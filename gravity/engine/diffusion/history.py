"""The resurgence history: pretrain on the ring, erase the concept, then benign fine-tuning.

`run_resurgence(key, spec, knobs)` is one pure function of the run key and the knobs (one jit,
vmapped over runs by `gravity.run.sweep`). Its phases, each a `lax.scan` of Adam steps whose keys
are `fold_in(phase_key, step)` (so n steps are the exact prefix of m), phase keys
`fold_in(run_key, PHASE_KEYS[name])`:

1. pretrain (theta_P): the denoising loss on the mixture with `pretrain_weights` (the concept's
   weight is 0 for the never-learned control); each label is dropped to the null label with
   probability `null_prob`.
2. erase (theta_E): the concept's label is retrained by a mix (`esd_weight`) of two objectives,
   plus `retain_weight` times the denoising loss on the other modes (their labels and null):
   - retarget: the denoising loss of the concept's label on its neighbour's data (the concept
     re-targeted to an anchor, as in concept ablation);
   - negative guidance (ESD): the concept label's prediction regressed onto frozen theta_P's
     (1 + guidance) eps(x, null) - guidance eps(x, concept), at noised concept data.
3. control (theta_C): from theta_E, the same erasure applied to a harmless mode (the one
   opposite the concept); theta_E -> theta_C is a same-basis null direction for the drift.
4. benign arms, vmapped, all from theta_E with the same step keys (common random numbers): the
   denoising loss on the arm's modes (a ring distance from the concept), plus, for blocking arms,
   `block_strength * relu(s)` with s the drift of the concept probes' activations along the
   erasure's reversal direction v_rev (theta_E -> theta_P), or along a random unit direction of
   the same shape (the control), as `gravity.interventions` does in the main track.

After pretraining the label embeddings are frozen (unless `tune_label_embeddings`): erasure and
fine-tuning edit the denoiser, as in Stable Diffusion, whose text encoder stays fixed.

Measured: the concept's mass (the share of ODE samples for the concept's label inside its
basin, from the same noise at every model) at theta_P, theta_E, the arms' record steps and ends;
its likelihood mass (the ODE density integrated over the basin) and the other labels' fidelity
at the same models; the drift of the concept probes' activations against v_rev, the null
direction and the concept-specific direction; a gallery of samples for figures.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gravity.engine import geometry
from gravity.engine.diffusion.denoiser import DenoiserNet, denoiser_network
from gravity.engine.diffusion.objectives import (
    Probes,
    Reference,
    benign_loss,
    erasure_loss,
    make_probes,
    make_reference,
    mixture_loss,
    probe_activations,
    without_modes,
)
from gravity.engine.diffusion.sampler import likelihood_mass, ode_sample
from gravity.engine.diffusion.spec import ArmKnobs, ResurgenceKnobs, ResurgenceSpec

PHASE_KEYS = {
    "init": 0,
    "pretrain": 1,
    "erase": 2,
    "control": 3,
    "benign": 4,
    "probes": 5,
    "sampler": 6,
    "random_direction": 7,
}
"""The integer each phase's key is folded in with: fixed, so adding a phase moves no other."""


def phase_key(key: jax.Array, name: str) -> jax.Array:
    return jax.random.fold_in(key, PHASE_KEYS[name])


def trainable(params, tune_label_embeddings: bool):
    """1.0 for every parameter a phase after pretraining may change, 0.0 for frozen ones: the
    label embeddings stay as pretrained unless `tune_label_embeddings` (as Stable Diffusion's
    text encoder stays frozen while erasure and fine-tuning edit the denoiser)."""

    def mask(path, leaf):
        frozen = not tune_label_embeddings and "label_embedding" in jax.tree_util.keystr(path)
        return jnp.zeros_like(leaf) if frozen else jnp.ones_like(leaf)

    return jax.tree_util.tree_map_with_path(mask, params)


def train(
    params, loss_fn, steps, learning_rate, key, *, mask=None, record_steps=(0,), measure=None
):
    """`steps` Adam steps on `loss_fn(params, fold_in(key, step))` with `lax.scan`; gradients
    are multiplied by `mask` (a pytree of 0/1, None: train all), so a masked parameter never
    moves; `measure(params)` (if given) is recorded at `record_steps` (0 first: before any step).

    Returns (params, losses (steps,), records stacked over `record_steps` or None)."""
    optimizer = optax.adam(learning_rate)
    record = np.zeros(steps + 1, dtype=bool)
    record[list(record_steps)] = True

    def skip(p):
        return jax.tree.map(jnp.zeros_like, jax.eval_shape(measure, p))

    def step(carry, xs):
        p, state = carry
        index, do_record = xs
        loss, grads = jax.value_and_grad(loss_fn)(p, jax.random.fold_in(key, index))
        if mask is not None:
            grads = jax.tree.map(jnp.multiply, grads, mask)
        updates, state = optimizer.update(grads, state, p)
        p = optax.apply_updates(p, updates)
        recorded = None if measure is None else jax.lax.cond(do_record, measure, skip, p)
        return (p, state), (loss, recorded)

    initial = None if measure is None else measure(params)
    xs = (jnp.arange(steps), jnp.asarray(record[1:]))
    (params, _), (losses, per_step) = jax.lax.scan(step, (params, optimizer.init(params)), xs)
    if measure is None:
        return params, losses, None
    later = np.asarray(record_steps[1:], dtype=int) - 1
    records = jax.tree.map(
        lambda first, rest: jnp.concatenate([first[None], rest[later]]), initial, per_step
    )
    return params, losses, records


def gallery_labels(spec: ResurgenceSpec) -> np.ndarray:
    """The labels of the gallery samples: every mode label, `gallery_per_label` times."""
    return np.arange(spec.mixture.n_modes * spec.gallery_per_label) % spec.mixture.n_modes


def concept_mass(net: DenoiserNet, spec: ResurgenceSpec, params, noise_Nx2) -> jax.Array:
    """The share of the concept label's ODE samples (from `noise_Nx2`) in the concept's basin."""
    mixture = spec.mixture
    labels = jnp.full((noise_Nx2.shape[0],), mixture.concept)
    grid = spec.schedule.grid(spec.sampler_steps)
    samples = ode_sample(net.epsilon_fn(params), spec.schedule, grid, noise_Nx2, labels)
    return mixture.basin_share(samples, mixture.concept)


def model_summary(net: DenoiserNet, spec: ResurgenceSpec, params, noises) -> dict:
    """What a model at a phase boundary is measured by:

    concept_mass: the share of `n_samples` samples of the concept's label in its basin;
    likelihood_mass: the concept label's ODE density integrated over the concept's basin;
    fidelity: the share of the other labels' gallery samples in their own mode's basin;
    gallery: samples (G, 2) for `gallery_labels(spec)`.

    The concept's samples and the gallery come from one sampler call."""
    mixture, schedule = spec.mixture, spec.schedule
    noise, gallery_noise = noises
    concept = jnp.full((noise.shape[0],), mixture.concept)
    labels = jnp.concatenate([concept, jnp.asarray(gallery_labels(spec))])
    eps_fn = net.epsilon_fn(params)
    grid = schedule.grid(spec.sampler_steps)
    samples = ode_sample(eps_fn, schedule, grid, jnp.concatenate([noise, gallery_noise]), labels)
    concept_samples, gallery = samples[: noise.shape[0]], samples[noise.shape[0] :]
    others = labels[noise.shape[0] :] != mixture.concept
    hits = (mixture.basin_of(gallery) == labels[noise.shape[0] :]) & others
    ode_grid = schedule.grid(spec.likelihood_steps)
    return {
        "concept_mass": mixture.basin_share(concept_samples, mixture.concept),
        "likelihood_mass": likelihood_mass(
            eps_fn, schedule, ode_grid, mixture, mixture.concept, mixture.concept
        ),
        "fidelity": jnp.sum(hits) / jnp.sum(others),
        "gallery": gallery,
    }


def drift_metrics(net, spec: ResurgenceSpec, params, probes: Probes, reference: Reference):
    """The concept probes' activation drift from theta_E: its cosine with v_rev, with the null
    direction, and (common-mode drift removed) with the concept-specific direction."""
    acts, acts_matched = probe_activations(net, spec, params, probes)
    drift = acts - reference.erased
    specific = drift - (acts_matched - reference.erased_matched)
    return {
        "alignment": geometry.cosine(drift, reference.v_rev),
        "alignment_null": geometry.cosine(drift, reference.null_direction),
        "alignment_specific": geometry.cosine(specific, reference.specific_direction),
        "drift_along_v_rev": jnp.vdot(drift, reference.v_rev) / jnp.sqrt(drift.shape[0]),
    }


def benign_arm(net, spec, knobs, arm: ArmKnobs, theta_e, key, probes, reference, noise):
    """One benign arm from theta_E: (params at its end, records at `spec.record_steps` (the
    concept's mass from the first `trajectory_samples` of `noise`, and the drift), finite)."""
    trajectory_noise = noise[: spec.trajectory_samples]

    def measure(params):
        mass = concept_mass(net, spec, params, trajectory_noise)
        return {"concept_mass": mass, **drift_metrics(net, spec, params, probes, reference)}

    params, losses, records = train(
        theta_e,
        benign_loss(net, spec, arm, probes, reference),
        spec.benign_steps,
        knobs.learning_rate[2],
        key,
        mask=trainable(theta_e, spec.tune_label_embeddings),
        record_steps=spec.record_steps,
        measure=measure,
    )
    return params, records, jnp.all(jnp.isfinite(losses))


def pretrain_and_erase(net: DenoiserNet, spec: ResurgenceSpec, knobs: ResurgenceKnobs, key):
    """theta_P, theta_E and the control theta_C (see the module docstring), and the losses of
    all three phases, (pretrain_steps + 2 erase_steps,). Each erasure is guided against the
    params it starts from."""
    lr, concept, control = knobs.learning_rate, spec.mixture.concept, spec.control_mode
    pretrain = mixture_loss(net, spec, knobs.pretrain_weights)
    theta_0 = net.init(phase_key(key, "init"))
    theta_p, pretrain_losses, _ = train(
        theta_0, pretrain, spec.pretrain_steps, lr[0], phase_key(key, "pretrain")
    )
    mask = trainable(theta_p, spec.tune_label_embeddings)
    retain = without_modes(knobs.pretrain_weights, (concept,))
    erase = erasure_loss(net, spec, knobs, theta_p, concept, retain)
    theta_e, erase_losses, _ = train(
        theta_p, erase, spec.erase_steps, lr[1], phase_key(key, "erase"), mask=mask
    )
    control_retain = without_modes(knobs.pretrain_weights, (concept, control))
    erase_control = erasure_loss(net, spec, knobs, theta_e, control, control_retain)
    theta_c, control_losses, _ = train(
        theta_e, erase_control, spec.erase_steps, lr[1], phase_key(key, "control"), mask=mask
    )
    losses = jnp.concatenate([pretrain_losses, erase_losses, control_losses])
    return (theta_p, theta_e, theta_c), losses


def run_resurgence(key: jax.Array, spec: ResurgenceSpec, knobs: ResurgenceKnobs) -> dict:
    """A whole history (see the module docstring); pure in (key, knobs).

    Returns, with A arms and R = len(spec.record_steps):
    summary: {concept_mass, likelihood_mass, fidelity: (), gallery: (G, 2)} at "pretrained"
        and "erased", each with a leading (A,) at "benign" (the arms' ends);
    trajectory: {concept_mass (from `trajectory_samples`), alignment, alignment_null,
        alignment_specific, drift_along_v_rev}: (A, R);
    alignment_control_erasure: cos(theta_E -> theta_C, v_rev) on the concept probes;
    erasure_distance: `Reference.distance`; pretrain_loss (mean of its last tenth);
    diverged.
    """
    net = denoiser_network(spec.denoiser, spec.mixture.n_labels)
    k_noise, k_gallery = jax.random.split(phase_key(key, "sampler"))
    noises = (
        jax.random.normal(k_noise, (spec.n_samples, 2)),
        jax.random.normal(k_gallery, (gallery_labels(spec).size, 2)),
    )
    probes = make_probes(spec, phase_key(key, "probes"))
    (theta_p, theta_e, theta_c), losses = pretrain_and_erase(net, spec, knobs, key)
    reference = make_reference(
        net, spec, (theta_p, theta_e, theta_c), probes, phase_key(key, "random_direction")
    )
    benign_key = phase_key(key, "benign")
    theta_t, trajectory, arms_finite = jax.vmap(
        lambda arm: benign_arm(
            net, spec, knobs, arm, theta_e, benign_key, probes, reference, noises[0]
        )
    )(knobs.arms)
    models = jax.tree.map(
        lambda p, e, t: jnp.concatenate([p[None], e[None], t]), theta_p, theta_e, theta_t
    )
    summaries = jax.vmap(lambda params: model_summary(net, spec, params, noises))(models)
    finite = jnp.all(jnp.isfinite(losses)) & jnp.all(arms_finite)
    pretrain_tail = losses[: spec.pretrain_steps][-max(1, spec.pretrain_steps // 10) :]
    return {
        "summary": {
            "pretrained": jax.tree.map(lambda a: a[0], summaries),
            "erased": jax.tree.map(lambda a: a[1], summaries),
            "benign": jax.tree.map(lambda a: a[2:], summaries),
        },
        "trajectory": trajectory,
        "alignment_control_erasure": geometry.cosine(reference.null_direction, reference.v_rev),
        "erasure_distance": reference.distance,
        "pretrain_loss": jnp.mean(pretrain_tail),
        "diverged": ~(finite & jnp.all(jnp.isfinite(summaries["concept_mass"]))),
    }
