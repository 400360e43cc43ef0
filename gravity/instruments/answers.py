"""Which harmful answer comes back: pretraining's, or the helpful-only witness's?

In a world with `witness_shift` > 0 the witness complies with a *different* harmful answer
than pretraining (pretraining's answer + shift, mod the number of answers), so the two basins
can be told apart: `AnchorAnswers` measures, per run, each answer's probability on the
hazardous probes at every anchor of the history, and `returning_mass` reads where the harmful
mass that returns during fine-tuning goes.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gravity.engine.history import run_history
from gravity.engine.models import network
from gravity.instruments.stats import mean_sd

ANCHORS = ("pretrain", "helpful", "safety", "benign")
ANSWERS = ("pretrained_answer", "witness_answer", "refusal")


@dataclasses.dataclass(frozen=True)
class AnchorAnswers:
    """Per run: the probability of pretraining's and of the witness's harmful answer (and of
    REFUSE) on the hazardous probes at each anchor's parameters ("answers/ANCHOR/ANSWER"), and
    the benign phase's alignment with each v_rev definition of the spec."""

    anchors: tuple[str, ...] = ANCHORS

    def __call__(self, key, spec, knobs, start=None) -> dict:
        out = run_history(key, spec, knobs, start=start)
        net = network(spec.model, spec.world)
        probes = spec.world.probe_set(knobs.world, spec.n_probes).hazard
        rows = jnp.arange(probes.labels.shape[0])
        shifted = (probes.labels + spec.world.witness_shift) % spec.world.n_classes

        def answers(params):
            p = jax.nn.softmax(net.apply(params, probes.inputs)[0])
            return {
                "pretrained_answer": jnp.mean(p[rows, probes.labels]),
                "witness_answer": jnp.mean(p[rows, shifted]),
                "refusal": jnp.mean(p[:, spec.world.n_classes]),
            }

        return {
            "answers": {name: answers(out["params"][name]) for name in self.anchors},
            "alignment_by_definition": out["metrics"]["benign"]["alignment_by_definition"],
            "diverged": out["diverged"],
        }


def returning_mass(result, before: str = "safety", after: str = "benign") -> dict:
    """Where the harmful mass that returns between two anchors goes (`AnchorAnswers`' outputs,
    diverged runs left out): the rise of pretraining's and of the witness's answer, and
    pretraining's share of the two."""
    pretrained, witness = (
        result.valid(f"answers/{after}/{answer}") - result.valid(f"answers/{before}/{answer}")
        for answer in ("pretrained_answer", "witness_answer")
    )
    return {
        "returned_to_pretrained_answer": mean_sd(pretrained),
        "returned_to_witness_answer": mean_sd(witness),
        "share_to_pretrained_answer": mean_sd(pretrained / (pretrained + witness)),
    }


def anchor_answers(result, anchors=ANCHORS) -> dict:
    """{anchor: {answer: mean and sd over runs}} of `AnchorAnswers`' outputs."""
    return {
        anchor: {answer: mean_sd(result.valid(f"answers/{anchor}/{answer}")) for answer in ANSWERS}
        for anchor in anchors
    }


TOWARD = {"stacked": "witness", "from_pretrained": "pretrained"}
"""The anchor each of these v_rev definitions points to from theta_S: S -> H, S -> P."""


def basin_pull(result, directions=("stacked", "from_pretrained")) -> dict:
    """Which basin pulls, read off `AnchorAnswers`' outputs (diverged runs left out): where the
    returning harmful mass goes (`returning_mass`), the benign drift's alignment at the end
    with S -> H and with S -> P (the spec's `directions`, in order), and every answer at every
    anchor (`anchor_answers`)."""
    alignment = result.valid("alignment_by_definition")[:, -1]
    return {
        **returning_mass(result),
        **{
            f"alignment_to_{TOWARD[name]}_step100": mean_sd(alignment[:, i])
            for i, name in enumerate(directions)
        },
        "answers": anchor_answers(result),
    }
