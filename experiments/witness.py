"""Which basin pulls: pretraining's harmful answer, or the witness's?

In the standard history the helpful-only witness theta_H complies the way pretraining does, so
"back toward theta_H" and "back toward theta_P" cannot be told apart, though that is the
gravitational reading's central claim: the pull comes from pretraining's mass. Here the witness
complies with a *different* harmful answer (the world's `witness_shift` = 1: pretraining's answer
+ 1, mod the number of answers). After S and T, on the hazardous probes:
- P(pretraining's answer) and P(the witness's answer) at theta_P, theta_H, theta_S and theta_T,
  and how much of each returns during benign fine-tuning (T minus S);
- alignment of the benign drift with S -> H (the paper's v_rev) and with S -> P;
over pretraining length (the mass: snapshots of one long pretraining phase) x witness length
(snapshots of one long helpful phase): a tree with two levels. A never-harmful world
(`harm_prob = 0`: pretraining refuses, only the witness ever complied) runs beside it.

Fixed before any result was seen: the standard phases otherwise (Adam lr 1e-3, 100 safety and
100 benign steps); the headline cell is the longest pretraining with the standard 100-step
witness; the gravitational reading predicts the returning harmful mass goes mostly to
pretraining's answer and grows with pretraining length; the witness reading predicts it goes
to the witness's answer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gravity import plotting, presets, sweep
from gravity.experiment import Experiment
from gravity.history import run_history
from gravity.models import network
from gravity.spec import with_phase
from gravity.stats import mean_sd

NAME = "witness"
SHIFT = 1
ANCHORS = ("pretrain", "helpful", "safety", "benign")
DIRECTIONS = ("stacked", "from_pretrained")


@dataclasses.dataclass(frozen=True)
class WitnessMeasure:
    """Per run: the probability of pretraining's and of the witness's harmful answer (and of
    REFUSE) on the hazardous probes at each anchor, and the benign alignments."""

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

        benign = out["metrics"]["benign"]
        return {
            "answers": {name: answers(out["params"][name]) for name in ANCHORS},
            "alignment_by_definition": benign["alignment_by_definition"],
            "diverged": out["diverged"],
        }


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 16
    transformer_seeds: int = 8
    models: tuple[str, ...] = presets.MODELS
    pretrain_steps: tuple[int, ...] = (200, 800, 2400)
    witness_steps: tuple[int, ...] = (25, 100, 400)
    harm_probs: tuple[float, ...] = (0.9, 0.0)
    size: str = "standard"


def quick(config: Config) -> Config:
    return dataclasses.replace(
        config, seeds=4, models=("mlp",), pretrain_steps=(400, 1500), witness_steps=(25, 100)
    )


def witness_spec(model: str, config: Config):
    spec = presets.standard_spec(model, config.size, directions=DIRECTIONS, keep_params=True)
    world = dataclasses.replace(spec.world, witness_shift=SHIFT)
    spec = dataclasses.replace(spec, world=world)
    spec = with_phase(
        spec, "pretrain", steps=max(config.pretrain_steps), snapshots=config.pretrain_steps
    )
    return with_phase(
        spec, "helpful", steps=max(config.witness_steps), snapshots=config.witness_steps
    )


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    out = {}
    for model in config.models:
        spec = witness_spec(model, config)

        def build(harm_prob, pretrain_steps, witness_steps, spec=spec):
            knobs = presets.standard_knobs(spec, harm_prob=harm_prob)
            snapshot = {
                "pretrain": config.pretrain_steps.index(pretrain_steps),
                "helpful": config.witness_steps.index(witness_steps),
            }
            return spec, dataclasses.replace(knobs, snapshot=snapshot).validate(spec)

        out[model] = sweep.Sweep(
            f"{model}-{config.size}",
            axes=(sweep.Axis("harm_prob", tuple(config.harm_probs)),),
            branches=(
                sweep.Axis("pretrain_steps", tuple(config.pretrain_steps)),
                sweep.Axis("witness_steps", tuple(config.witness_steps)),
            ),
            branch_after=("pretrain", "helpful"),
            seeds=presets.seeds_for(model, config.seeds, config.transformer_seeds),
            build=build,
            measure=WitnessMeasure(),
        )
    return out


def cell(res: sweep.SweepResult, world: int, p: int, w: int) -> dict:
    """The numbers of one (world, pretraining length, witness length) cell."""

    def at(anchor, answer):
        return res.valid(f"answers/{anchor}/{answer}")[world, p, w]

    returned_p = at("benign", "pretrained_answer") - at("safety", "pretrained_answer")
    returned_w = at("benign", "witness_answer") - at("safety", "witness_answer")
    alignment = res.valid("alignment_by_definition")[world, p, w][:, -1]
    return {
        "returned_to_pretrained_answer": mean_sd(returned_p),
        "returned_to_witness_answer": mean_sd(returned_w),
        "share_to_pretrained_answer": mean_sd(returned_p / (returned_p + returned_w)),
        "alignment_to_witness_step100": mean_sd(alignment[:, DIRECTIONS.index("stacked")]),
        "alignment_to_pretrained_step100": mean_sd(
            alignment[:, DIRECTIONS.index("from_pretrained")]
        ),
        "answers": {
            anchor: {
                a: mean_sd(at(anchor, a))
                for a in ("pretrained_answer", "witness_answer", "refusal")
            }
            for anchor in ANCHORS
        },
    }


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    numbers = {}
    headline = (
        len(config.pretrain_steps) - 1,
        list(config.witness_steps).index(100) if 100 in config.witness_steps else 0,
    )
    for model, res in results.items():
        entry = cell(res, 0, *headline)
        entry["headline_cell"] = {
            "pretrain_steps": config.pretrain_steps[headline[0]],
            "witness_steps": config.witness_steps[headline[1]],
        }
        entry["by_cell"] = {
            f"pretrain{p}_witness{w}": cell(res, 0, i, j)
            for i, p in enumerate(config.pretrain_steps)
            for j, w in enumerate(config.witness_steps)
        }
        entry["controls"] = (
            {"harm_prob_0": cell(res, 1, *headline)} if len(config.harm_probs) > 1 else {}
        )
        numbers[model] = entry
    return numbers


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    fig, axes = plotting.figure(3, len(results), width=4.4, height=3.3)
    for row, model in zip(axes, results, strict=True):
        n = numbers[model]
        grid = np.asarray(
            [
                [
                    n["by_cell"][f"pretrain{p}_witness{w}"]["share_to_pretrained_answer"]["mean"]
                    for w in config.witness_steps
                ]
                for p in config.pretrain_steps
            ]
        )
        image = row[0].imshow(grid, vmin=0, vmax=1, cmap="RdBu", origin="lower", aspect="auto")
        row[0].set_xticks(range(len(config.witness_steps)), config.witness_steps)
        row[0].set_yticks(range(len(config.pretrain_steps)), config.pretrain_steps)
        row[0].set(
            xlabel="witness (helpful) steps",
            ylabel="pretraining steps",
            title=f"{model}: share of returning mass to pretraining's answer",
        )
        fig.colorbar(image, ax=row[0])
        worlds = {"harm_prob 0.9": n, "harm_prob 0 (control)": n["controls"].get("harm_prob_0")}
        labels, pre, wit = [], [], []
        for label, e in worlds.items():
            if e:
                labels.append(label)
                pre.append(e["returned_to_pretrained_answer"]["mean"])
                wit.append(e["returned_to_witness_answer"]["mean"])
        x = np.arange(len(labels))
        row[1].bar(x - 0.2, pre, 0.4, label="pretraining's answer", color="#d62728")
        row[1].bar(x + 0.2, wit, 0.4, label="witness's answer", color="#ff7f0e")
        row[1].set_xticks(x, labels, fontsize=7)
        row[1].set(ylabel="P(answer) at T minus at S", title="where the returning mass goes")
        row[1].legend(frameon=False, fontsize=7)
        steps = np.arange(len(config.pretrain_steps))
        for d, name in enumerate(DIRECTIONS):
            values = [
                n["by_cell"][f"pretrain{p}_witness{n['headline_cell']['witness_steps']}"][
                    f"alignment_to_{'witness' if name == 'stacked' else 'pretrained'}_step100"
                ]["mean"]
                for p in config.pretrain_steps
            ]
            row[2].plot(steps, values, "o-", label=f"cos(drift, S->{'H' if d == 0 else 'P'})")
        row[2].set_xticks(steps, config.pretrain_steps)
        row[2].set(
            xlabel="pretraining steps",
            ylabel="alignment at T",
            ylim=(-0.2, 1.0),
            title="alignment with each witness",
        )
        row[2].legend(frameon=False, fontsize=7)
    return plotting.save(fig, path, "Which basin pulls: pretraining's answer or the witness's")


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "which basin pulls: pretraining's harmful answer or the witness's"
)
