"""The toy diffusion model: exact references for the sampler, the likelihood and the mass
estimator, the engine's invariants, and the `resurgence` experiment end to end at tiny size."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravity.engine import diffusion
from gravity.engine.diffusion import history, sampler
from gravity.run.experiment import run_experiment
from gravity.run.store import ResultStore
from gravity.validation import ConfigError

MIXTURE = diffusion.RingMixture()
SCHEDULE = diffusion.Schedule()
WEIGHTS = np.array([0.3, 0.05, 0.1, 0.15, 0.05, 0.2, 0.1, 0.05])
N_SAMPLES = 8192
SAMPLER_STEPS = 16  # the experiment's sampler


def true_moments(weights):
    """Mean (2,) and covariance (2, 2) of the mixture, in closed form."""
    means = MIXTURE.means()
    mean = weights @ means
    second = np.einsum("k,ki,kj->ij", weights, means, means)
    return mean, second - np.outer(mean, mean) + MIXTURE.mode_std**2 * np.eye(2)


@pytest.fixture(scope="module")
def exact_samples():
    """ODE samples of the null label (the weighted mixture) and of label 0 (one mode) from a
    denoiser that knows the exact noise prediction."""
    eps_fn = diffusion.exact_epsilon(MIXTURE, SCHEDULE, MIXTURE.label_weights(WEIGHTS))
    noise = jax.random.normal(jax.random.key(0), (N_SAMPLES, 2))
    grid = SCHEDULE.grid(SAMPLER_STEPS)

    @jax.jit
    def sample(labels):
        return diffusion.ode_sample(eps_fn, SCHEDULE, grid, noise, labels)

    null = np.asarray(sample(jnp.full((N_SAMPLES,), MIXTURE.null_label)))
    concept = np.asarray(sample(jnp.zeros((N_SAMPLES,), jnp.int32)))
    return null, concept


def test_sampler_reproduces_mixture_moments(exact_samples):
    """Mean within 0.03 and covariance entries within 0.1 (the ring's variance is ~2; 8,192
    samples leave ~0.02 and ~0.04 of sampling error)."""
    samples, _ = exact_samples
    mean, cov = true_moments(WEIGHTS)
    np.testing.assert_allclose(samples.mean(axis=0), mean, atol=0.03)
    np.testing.assert_allclose(np.cov(samples.T), cov, atol=0.1)


def test_sampler_reproduces_mode_shares(exact_samples):
    """Each mode's share within 0.02 of its weight, and every sample in some mode's basin."""
    samples, _ = exact_samples
    shares = np.array([float(MIXTURE.basin_share(samples, k)) for k in range(MIXTURE.n_modes)])
    np.testing.assert_allclose(shares, WEIGHTS, atol=0.02)
    assert shares.sum() > 0.99


def test_sampler_conditional_on_a_label_lands_on_its_mode(exact_samples):
    """Label 0's samples all land in mode 0's basin, centred within 0.02, with a spread within
    5% of the mode's std."""
    _, samples = exact_samples
    assert float(MIXTURE.basin_share(samples, 0)) == 1.0
    np.testing.assert_allclose(samples.mean(axis=0), MIXTURE.means()[0], atol=0.02)
    np.testing.assert_allclose(samples.std(axis=0), MIXTURE.mode_std, rtol=0.05)


def test_exact_epsilon_is_minus_sigma_times_the_score():
    """eps*(x, t) = -sqrt(1 - alpha_bar) grad log p_t(x), p_t the noised mixture, by autodiff."""
    t = jnp.asarray([0.05, 0.3, 0.7])
    a = SCHEDULE.alpha_bar(t)
    x = jax.random.normal(jax.random.key(1), (3, 2)) * 1.5

    def log_p(x_2, a_):
        centres = jnp.sqrt(a_) * jnp.asarray(MIXTURE.means())
        variance = a_ * MIXTURE.mode_std**2 + 1 - a_
        sq = jnp.sum((x_2[None] - centres) ** 2, axis=-1)
        return jax.nn.logsumexp(jnp.log(jnp.asarray(WEIGHTS)) - sq / (2 * variance))

    score = jax.jit(jax.vmap(jax.grad(log_p)))(x, a)
    weights = jnp.broadcast_to(jnp.asarray(WEIGHTS), (3, MIXTURE.n_modes))
    eps = jax.jit(MIXTURE.epsilon)(x, a, weights)
    np.testing.assert_allclose(eps, -jnp.sqrt(1 - a)[:, None] * score, rtol=1e-4, atol=1e-5)


def test_ode_likelihood_matches_the_mixture_density():
    """With the exact noise prediction, the ODE log-density on mode 0's quadrature grid is the
    mixture's within 0.1 nats where the mode holds its mass (within 2.5 std of the mean), and
    integrated over the basin (the likelihood mass) it gives the mode's weight within 0.03."""
    eps_fn = diffusion.exact_epsilon(MIXTURE, SCHEDULE, MIXTURE.label_weights(WEIGHTS))
    points, area = sampler.basin_quadrature(MIXTURE, 0, n_radii=12, n_angles=16)
    labels = jnp.full((points.shape[0],), MIXTURE.null_label)
    grid = SCHEDULE.grid(32)
    log_p = jax.jit(lambda x: diffusion.ode_log_density(eps_fn, SCHEDULE, grid, x, labels))(points)
    exact = MIXTURE.log_density(points, jnp.asarray(WEIGHTS))
    core = np.linalg.norm(np.asarray(points) - MIXTURE.means()[0], axis=-1) < 2.5 * MIXTURE.mode_std
    np.testing.assert_allclose(log_p[core], exact[core], atol=0.1)
    assert abs(float(jnp.sum(jnp.exp(log_p) * area)) - WEIGHTS[0]) < 0.03


@jax.jit
def sampled_share(key, weights_K):
    """Mode 0's basin share in 4,096 samples of the true mixture with `weights_K`."""
    return MIXTURE.basin_share(MIXTURE.sample(key, weights_K, 4096)[0], 0)


@settings(max_examples=15, deadline=None)
@given(
    weights=st.lists(st.floats(0.0, 1.0), min_size=8, max_size=8).filter(lambda w: sum(w) > 0.1),
    seed=st.integers(0, 2**16),
)
def test_mass_estimator_returns_the_true_share(weights, seed):
    """On samples of the true mixture, the basin share of mode 0 is its weight (the basins hold
    all but ~1e-6 of each mode), within four binomial standard errors."""
    w = np.asarray(weights) / np.sum(weights)
    tolerance = 4 * np.sqrt(w[0] * (1 - w[0]) / 4096) + 1e-3
    assert abs(float(sampled_share(jax.random.key(seed), jnp.asarray(w, jnp.float32))) - w[0]) <= (
        tolerance
    )


@given(t=st.floats(1e-3, 1.0))
def test_time_of_log_snr_inverts_log_snr(t):
    assert SCHEDULE.time_of_log_snr(SCHEDULE.log_snr(t)) == pytest.approx(t, rel=1e-6, abs=1e-9)


@given(n_modes=st.integers(3, 12), data=st.data())
def test_modes_at_distance_are_at_that_distance(n_modes, data):
    mixture = diffusion.RingMixture(n_modes=n_modes, mode_std=0.01)
    distance = data.draw(st.integers(1, n_modes // 2))
    weights = mixture.modes_at(distance)
    assert weights.sum() == pytest.approx(1.0)
    for k in np.flatnonzero(weights):
        assert mixture.ring_distance(mixture.concept, int(k)) == distance


def test_train_phases_are_prefixes_and_masks_freeze():
    """n steps are the exact prefix of m (per-step keys are fold_in(key, step)), and a masked
    parameter (the label embedding) never moves while the others do."""
    params = {"label_embedding": {"embedding": jnp.ones(3)}, "readout": jnp.zeros(3)}

    def loss(p, key):
        target = jax.random.normal(key, (3,))
        return jnp.sum((p["readout"] - target) ** 2) + jnp.sum(
            p["label_embedding"]["embedding"] ** 2
        )

    mask = history.trainable(params, tune_label_embeddings=False)
    key = jax.random.key(1)
    short = history.train(params, loss, 3, 1e-2, key, mask=mask)
    long = history.train(params, loss, 5, 1e-2, key, mask=mask)
    np.testing.assert_array_equal(short[1], long[1][:3])
    np.testing.assert_array_equal(long[0]["label_embedding"]["embedding"], jnp.ones(3))
    assert bool(jnp.all(long[0]["readout"] != 0))


def test_bad_knobs_and_specs_raise_one_line_errors():
    spec = diffusion.ResurgenceSpec()
    with pytest.raises(ConfigError, match="method"):
        diffusion.make_knobs(spec, "forget")
    with pytest.raises(ConfigError, match="arm.distance"):
        diffusion.ResurgenceSpec(arms=(diffusion.BenignArm(5),))
    with pytest.raises(ConfigError, match="record_steps"):
        diffusion.ResurgenceSpec(record_steps=(0, 300))


REQUIRED = (
    "concept_mass_pretrained",
    "concept_mass_erased",
    "concept_mass_after_benign",
    "resurgence_fraction",
    "never_learned_concept_mass_after_benign",
    "alignment_step100",
    "concept_mass_blocked",
)


def test_experiment_writes_figure_and_numbers_and_the_concept_resurges(tmp_path):
    """End to end, shortened: 400 pretraining steps are the fewest at which the tiny denoiser
    puts mass on the concept (20 put none, 200 ~0.02), 20 erasure steps. Directions robust
    there, checked over seeds 0-7 one at a time: after benign fine-tuning the concept's mass is
    above its erased level in every seed and method (by 3 of 64 samples at least, 0.05), and
    above the never-learned model's (by 0.06 at least); the margin asked is 1 sample, 1/64."""
    from experiments.resurgence import EXPERIMENT

    config = dataclasses.replace(
        EXPERIMENT.make_config(quick=True, seeds=2),
        pretrain_steps=400,
        erase_steps=20,
        record_steps=(0, 100),
        n_samples=64,
        trajectory_samples=32,
        hidden=(16,),
    )
    store = ResultStore(tmp_path / "store")
    run_experiment(EXPERIMENT, config, out_dir=tmp_path, store=store, progress=False)
    assert (tmp_path / "resurgence.png").stat().st_size > 10_000
    report = json.loads((tmp_path / "resurgence.json").read_text())
    numbers = report["numbers"]
    for key in REQUIRED:
        assert set(numbers[key]) == set(config.methods)
        assert all({"mean", "sd"} <= set(entry) for entry in numbers[key].values())
    assert report["n_histories"] == 2 * 2 * 2 and report["wall_s"] > 0
    one_sample = 1 / config.n_samples
    for method in config.methods:
        after = numbers["concept_mass_after_benign"][method]["mean"]
        assert numbers["concept_mass_pretrained"][method]["mean"] > 2 * one_sample, method
        assert after - numbers["concept_mass_erased"][method]["mean"] > one_sample, method
        never = numbers["never_learned_concept_mass_after_benign"][method]["mean"]
        assert after - never > one_sample, method
