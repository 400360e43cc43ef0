"""The pre-flight monitor as a per-run measure: each benign fine-tuning branch's metrics, its
anchors' held-out harmfulness, and the pre-flight scores (`gravity.instruments.monitor.preflight`)
computed at theta_S from a sample of the branch's own benign data with the branch's own optimizer,
so every run carries both the scores and the outcome they should predict."""

from __future__ import annotations

import dataclasses

import jax

from gravity.engine import history
from gravity.engine.models import network
from gravity.engine.spec import phase_tag
from gravity.instruments import monitor

BENIGN = ("harmfulness", "harmfulness_heldout", "alignment", "drift_along_v_rev")
"""The benign phase's metrics a `PreflightMeasure` keeps, at every record."""


@dataclasses.dataclass(frozen=True)
class PreflightMeasure:
    """The branch's benign metrics, its anchors' held-out harmfulness, and the pre-flight
    scores computed at theta_S from a sample of the branch's benign data."""

    sample_size: int = 256

    def __call__(self, key, spec, knobs, start=None) -> dict:
        out = history.run_history(key, spec, knobs, start=start)
        state = start.state
        net = network(spec.model, spec.world)
        probes = spec.world.probe_set(knobs.world, spec.n_probes)
        sample = spec.world.sample(
            knobs.world, "benign", jax.random.fold_in(key, phase_tag("preflight")), self.sample_size
        )
        phase = spec.phase("benign")
        optimizer = history.make_optimizer(
            phase.optimizer, knobs.learning_rate["benign"], phase.weight_decay
        )
        scores = monitor.preflight(
            net,
            state.boundaries["safety"],
            state.boundaries["helpful"],
            probes.hazard.inputs,
            sample,
            optimizer,
        )
        metrics = out["metrics"]
        return {
            "benign": {m: metrics["benign"][m] for m in BENIGN},
            "heldout_pretrained": metrics["pretrain"]["harmfulness_heldout"][-1],
            "heldout_aligned": metrics["safety"]["harmfulness_heldout"][-1],
            "preflight": scores._asdict(),
            "diverged": out["diverged"],
        }
