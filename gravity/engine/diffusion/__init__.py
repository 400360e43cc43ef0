"""A toy diffusion model in which an erased concept's return is exactly measurable.

- `mixture`: the world, a ring of Gaussian modes (one is the concept), with exact scores;
- `sampler`: the noise schedule, a deterministic probability-flow ODE sampler
  (DPM-Solver++(2M)) and the ODE likelihood;
- `denoiser`: a small MLP noise predictor with time and label embeddings (Flax NNX);
- `spec`: a history's static spec and its vmappable knobs;
- `objectives`: pretraining, erasure (retarget or negative guidance) and benign losses, probes;
- `history`: pretrain -> erase -> control erasure -> benign fine-tuning arms, as one pure,
  vmappable `run_resurgence(key, spec, knobs)`, and what is measured along it.
"""

from pathlib import Path

from gravity import digests
from gravity.engine.diffusion.denoiser import (
    Denoiser,
    DenoiserConfig,
    DenoiserNet,
    denoiser_network,
)
from gravity.engine.diffusion.history import run_resurgence
from gravity.engine.diffusion.mixture import RingMixture
from gravity.engine.diffusion.sampler import (
    Schedule,
    exact_epsilon,
    likelihood_mass,
    ode_log_density,
    ode_sample,
)
from gravity.engine.diffusion.spec import (
    METHODS,
    ArmKnobs,
    BenignArm,
    ResurgenceKnobs,
    ResurgenceSpec,
    make_knobs,
)


def engine_digest() -> str:
    """A digest of this package's code (`gravity.digests`: comments and docstrings left out), for
    a sweep's version: stored results computed by an older diffusion engine are never served for
    a newer one."""
    return digests.files_digest(sorted(Path(__file__).parent.glob("*.py")))


__all__ = [
    "METHODS",
    "ArmKnobs",
    "BenignArm",
    "Denoiser",
    "DenoiserConfig",
    "DenoiserNet",
    "ResurgenceKnobs",
    "ResurgenceSpec",
    "RingMixture",
    "Schedule",
    "ode_sample",
    "denoiser_network",
    "engine_digest",
    "exact_epsilon",
    "likelihood_mass",
    "make_knobs",
    "ode_log_density",
    "run_resurgence",
]
