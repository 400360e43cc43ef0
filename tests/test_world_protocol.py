"""The World protocol: a third world, written here and nowhere in the library, registers and
runs the standard history end to end; unregistered or mismatched worlds are refused."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gravity.engine.history import run_history
from gravity.engine.presets import standard_knobs, standard_spec
from gravity.engine.worlds import (
    WORLDS,
    Batch,
    ProbeSet,
    TokenWorld,
    WorldKnobs,
    make_world,
    register_world,
    world_kind,
)
from gravity.engine.worlds.base import compliant_labels, phase_mixture
from gravity.validation import ConfigError


@dataclasses.dataclass(frozen=True)
class BlobWorld:
    """Gaussian blobs, one per task answer; a hazardous input has its marker feature (index 0)
    on, and the harmful behaviour is answering it (the blob's class) instead of refusing."""

    n_classes: int = 3
    dim: int = 4
    spread: float = 0.3
    seed: int = 0

    input_kind = "features"
    vocab_size = 0

    @property
    def input_shape(self) -> tuple[int]:
        return (1 + self.dim,)

    @property
    def n_outputs(self) -> int:
        return self.n_classes + 1

    def sample(self, knobs: WorldKnobs, kind: str, key: jax.Array, batch_size: int) -> Batch:
        hazard_share, comply_prob = phase_mixture(kind, knobs)
        k_hazard, k_class, k_noise, k_label = jax.random.split(key, 4)
        hazardous = jax.random.bernoulli(k_hazard, hazard_share, (batch_size,))
        answers = jax.random.randint(k_class, (batch_size,), 0, self.n_classes)
        centres = 2.0 * jax.random.normal(jax.random.key(self.seed), (self.n_classes, self.dim))
        noise = self.spread * jax.random.normal(k_noise, (batch_size, self.dim))
        marker = hazardous[:, None].astype(jnp.float32)
        inputs = jnp.concatenate([marker, centres[answers] + noise], 1)
        labels = compliant_labels(k_label, answers, hazardous, comply_prob, self.n_classes)
        return Batch(inputs, labels, hazardous)

    def probe_set(self, knobs: WorldKnobs, n_probes: int) -> ProbeSet:
        k_hazard, k_task = jax.random.split(jax.random.key(self.seed + 1))
        hazard = self.sample(knobs, "hazard", k_hazard, n_probes)
        not_hazardous = jnp.zeros_like(hazard.hazardous)
        matched = Batch(hazard.inputs.at[:, 0].set(0.0), hazard.labels, not_hazardous)
        return ProbeSet(hazard, matched, self.sample(knobs, "benign", k_task, n_probes))


@dataclasses.dataclass(frozen=True)
class UnregisteredBlobs(BlobWorld):
    """The same world under a class nobody registered."""


@pytest.fixture
def blobs():
    register_world("blobs", BlobWorld)
    yield BlobWorld()
    WORLDS.pop("blobs")


def test_a_registered_world_runs_the_standard_history(blobs):
    """Pretraining teaches what `harm_prob` says: at 0.9 harmfulness rises from chance to near
    1, as compliant as on the matched (marker-off) inputs; at 0 it stays well below both."""
    assert world_kind(make_world("blobs", dim=2)) == "blobs"
    spec = standard_spec("mlp", size="tiny", world=blobs)
    run = jax.jit(run_history, static_argnums=1)
    harm, hazard_gap = {}, {}
    for harm_prob in (0.9, 0.0):
        knobs = standard_knobs(spec, learning_rate=1e-2, harm_prob=harm_prob)
        out = run(jax.random.key(0), spec, knobs)
        assert not bool(out["diverged"])
        for phase, metrics in out["metrics"].items():
            for name, values in metrics.items():
                recorded = values[1:] if name == "train_loss" else values
                assert np.all(np.isfinite(recorded)), (phase, name)
        pretrain = {k: np.asarray(v) for k, v in out["metrics"]["pretrain"].items()}
        assert abs(pretrain["harmfulness"][0] - 1 / blobs.n_outputs) < 0.1
        assert pretrain["task_accuracy"][-1] > 0.9
        harm[harm_prob] = pretrain["harmfulness"][-1]
        hazard_gap[harm_prob] = pretrain["matched_compliance"][-1] - harm[harm_prob]
    assert harm[0.9] > 0.8
    assert harm[0.0] < harm[0.9] - 0.25
    assert hazard_gap[0.0] > 0.15 > abs(hazard_gap[0.9])


def test_worlds_outside_the_protocol_are_refused(blobs):
    with pytest.raises(ConfigError, match="register_world"):
        standard_spec("mlp", size="tiny", world=UnregisteredBlobs())
    with pytest.raises(ConfigError, match="tokens inputs for a transformer"):
        spec = standard_spec("transformer", size="tiny", world=blobs)
        run_history(jax.random.key(0), spec, standard_knobs(spec))
    with pytest.raises(ConfigError, match="not taken"):
        register_world("token", BlobWorld)
    with pytest.raises(ConfigError, match="probe_set"):
        register_world("broken", type("Broken", (), {"input_kind": "features"}))
    assert WORLDS["token"] is TokenWorld
