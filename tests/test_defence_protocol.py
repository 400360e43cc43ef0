"""The Defence protocol end to end: a defence defined here, registered for the test, is selected
by the traced `Knobs.defence` in the defences experiment's own sweep (its build, its runner) and
does what it says: an activation anchor (a loss term pulling the probe layer's activations on
the hazardous probes back to theta_S's) keeps them nearer theta_S's than plain fine-tuning does,
and at strength 0 the branch is exactly the baseline."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from experiments import defences as experiment
from gravity import defences
from gravity.run import sweep


@dataclasses.dataclass(frozen=True)
class ActivationAnchor(defences.Defence):
    """strength * mean squared distance of the hazardous probes' probe-layer activations from
    their values at theta_S."""

    def state(self, setup: defences.Setup):
        inputs = setup.probes.hazard.inputs
        return setup.net, inputs, setup.net.activations(setup.theta_s, inputs)

    def loss(self, params, state, strength):
        net, inputs, aligned = state
        return strength * jnp.mean((net.activations(params, inputs) - aligned) ** 2)


ANCHOR = ActivationAnchor("activation_anchor", "hazardous probes' activations pulled to theta_S's")
STRONG = 1000.0


@pytest.fixture(scope="module")
def result():
    """The defences experiment's fine-tuning sweep (tiny, 2 seeds) with only the anchor's arms:
    the baseline, the anchor at 0 and at a large strength."""
    config = dataclasses.replace(
        experiment.quick(experiment.Config()),
        seeds=2,
        size="tiny",
        strengths=((ANCHOR.name, (0.0, STRONG)),),
    )
    with defences.registered(ANCHOR):
        arms = experiment.during_arms(config)[:3]
        during = experiment.sweeps(config)["mlp-during"]
        spec, _ = during.build(arms[1])
        assert ANCHOR.name in spec.phase("benign").defences
        chosen = dataclasses.replace(
            during,
            branches=(sweep.Axis("arm", arms),),
            measure=sweep.HistoryMetrics(finals=(("benign", ("drift_norm", "task_accuracy")),)),
        )
        out = sweep.run_sweep(chosen, store=False, progress=False)
    return arms, out


def test_registered_defence_is_selected_by_the_traced_knob(result):
    arms, out = result
    assert [name for name, _ in arms] == ["baseline", ANCHOR.name, ANCHOR.name]
    assert not out.diverged.any()
    drift = out["final/benign/drift_norm"]  # (arm, seed)
    np.testing.assert_array_equal(drift[0], drift[1])  # strength 0: exactly the baseline
    assert np.all(drift[2] < 0.5 * drift[0])  # the anchor holds the activations near theta_S


def test_registry_is_left_as_it_was():
    assert ANCHOR.name not in defences.names()
    assert defences.names()[:6] == ("none", "rehearsal", "ewc", "l2sp", "safelora", "freeze")
    assert defences.names()[-1] == "tar_benign"  # the last built-in (issue #23's arena)
