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

import numpy as np

from gravity.engine import presets
from gravity.engine.spec import with_phase
from gravity.instruments.answers import AnchorAnswers, basin_pull
from gravity.instruments.readout import per_cell
from gravity.run import plotting, sweep
from gravity.run.experiment import Experiment

NAME = "witness"
SHIFT = 1
DIRECTIONS = ("stacked", "from_pretrained")
LENGTHS = {"pretrain": "pretrain_steps", "helpful": "witness_steps"}
"""Each branching phase and the config field (its branch axis) holding its lengths."""
CELL = "pretrain{pretrain_steps}_witness{witness_steps}"
"""How a cell's numbers are named in the report."""


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
    """The standard history, its witness complying with pretraining's answer + `SHIFT`, and
    pretraining and helpful phases as long as their longest lengths, with a snapshot at each."""
    spec = presets.standard_spec(model, config.size, directions=DIRECTIONS, keep_params=True)
    spec = dataclasses.replace(spec, world=dataclasses.replace(spec.world, witness_shift=SHIFT))
    for phase, field in LENGTHS.items():
        lengths = getattr(config, field)
        spec = with_phase(spec, phase, steps=max(lengths), snapshots=lengths)
    return spec


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    """Per model: the two worlds (a trunk axis), each seed's pretraining branching at every
    length, each of those at every witness length."""
    out = {}
    for model in config.models:
        spec = witness_spec(model, config)

        def build(harm_prob, spec=spec, **lengths):
            snapshot = {p: getattr(config, f).index(lengths[f]) for p, f in LENGTHS.items()}
            knobs = presets.standard_knobs(spec, harm_prob=harm_prob)
            return spec, dataclasses.replace(knobs, snapshot=snapshot).validate(spec)

        out[model] = sweep.Sweep(
            f"{model}-{config.size}",
            axes=(sweep.Axis("harm_prob", tuple(config.harm_probs)),),
            branches=tuple(sweep.Axis(f, tuple(getattr(config, f))) for f in LENGTHS.values()),
            branch_after=tuple(LENGTHS),
            seeds=presets.seeds_for(model, config.seeds, config.transformer_seeds),
            build=build,
            measure=AnchorAnswers(),
        )
    return out


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    """Per model: the headline cell (the longest pretraining, the 100-step witness), every
    cell, and the never-harmful world's headline cell."""
    witness = 100 if 100 in config.witness_steps else config.witness_steps[0]
    headline = {"pretrain_steps": config.pretrain_steps[-1], "witness_steps": witness}
    numbers = {}
    for model, res in results.items():
        main, *never = (res.select(harm_prob=h) for h in config.harm_probs)
        numbers[model] = {
            **basin_pull(main.select(**headline)),
            "headline_cell": headline,
            "by_cell": per_cell(main, basin_pull, CELL),
            "controls": {"harm_prob_0": basin_pull(never[0].select(**headline))} if never else {},
        }
    return numbers


def cell_grid(n: dict, key: str, config: Config) -> np.ndarray:
    """The mean of one number in every cell: rows pretraining lengths, columns witness's."""
    cells = [
        [CELL.format(pretrain_steps=p, witness_steps=w) for w in config.witness_steps]
        for p in config.pretrain_steps
    ]
    return np.asarray([[n["by_cell"][c][key]["mean"] for c in row] for row in cells])


def plot_share(ax, n: dict, config: Config, model: str) -> None:
    """Pretraining's share of the returning harmful mass in every (pretraining, witness) cell."""
    share = cell_grid(n, "share_to_pretrained_answer", config)
    plotting.value_map(ax, share, config.witness_steps, config.pretrain_steps)
    title = f"{model}: share of returning mass to pretraining's answer"
    ax.set(xlabel="witness (helpful) steps", ylabel="pretraining steps", title=title)


def plot_returns(ax, n: dict) -> None:
    """Where the returning mass goes, in the main world and the never-harmful one."""
    worlds = {"harm_prob 0.9": n, "harm_prob 0 (control)": n["controls"].get("harm_prob_0")}
    worlds = {label: entry for label, entry in worlds.items() if entry}
    answers = [
        ("pretrained", "pretraining's answer", "#d62728"),
        ("witness", "witness's answer", "#ff7f0e"),
    ]
    series = [
        (label, [e[f"returned_to_{answer}_answer"]["mean"] for e in worlds.values()], None, color)
        for answer, label, color in answers
    ]
    plotting.bar_groups(ax, list(worlds), series, width=0.4, fontsize=7)
    ax.set(ylabel="P(answer) at T minus at S", title="where the returning mass goes")
    ax.legend(frameon=False, fontsize=7)


def plot_alignments(ax, n: dict, config: Config) -> None:
    """The benign drift's alignment at T with S -> H and with S -> P, against pretraining
    length, at the headline witness length."""
    column = config.witness_steps.index(n["headline_cell"]["witness_steps"])
    keys = ("alignment_to_witness_step100", "alignment_to_pretrained_step100")
    rows = [cell_grid(n, key, config)[:, column] for key in keys]
    x, labels = np.arange(len(config.pretrain_steps)), ["cos(drift, S->H)", "cos(drift, S->P)"]
    plotting.line_family(ax, x, rows, labels, ["C0", "C1"])
    ax.set_xticks(x, config.pretrain_steps)
    title = "alignment with each witness"
    ax.set(xlabel="pretraining steps", ylabel="alignment at T", ylim=(-0.2, 1.0), title=title)
    ax.legend(frameon=False, fontsize=7)


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    """A row per model: the share map, where the returning mass goes, alignment with each
    witness against pretraining length."""
    fig, axes = plotting.figure(3, len(results), width=4.4, height=3.3)
    for row, model in zip(axes, results, strict=True):
        plot_share(row[0], numbers[model], config, model)
        plot_returns(row[1], numbers[model])
        plot_alignments(row[2], numbers[model], config)
    return plotting.save(fig, path, "Which basin pulls: pretraining's answer or the witness's")


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "which basin pulls: pretraining's harmful answer or the witness's"
)
