"""Anti-gravity compared: every defence against reversion on one harm-vs-task frontier.

From the same theta_S per seed (one shared P -> H -> S, every defence a branch of it), benign
fine-tuning runs under each defence at four or more strengths:
- along v_rev (the paper's): **block** (+ strength * (softplus(s) - log 2)), **project** (updates
  projected off their first-order motion along v_rev), and the control **random_block** (a
  random direction);
- without v_rev: **rehearsal** (a fraction of safety data in the benign batches; the paper
  reports ~30% less reversion for it), **ewc** (diagonal Fisher of the safety loss at
  theta_S), **l2sp** (pull to theta_S), **safelora** (each weight matrix's update projected onto
  its alignment matrix W_S - W_H where their cosine falls below the threshold), **freeze** (the
  probe layer's parameters fixed); project and freeze have no strength (one point each);
- acting earlier: **deeper alignment**, two ways at equal safety data: the *longer* safety phase
  (`deeper_alignment`: 150, 200, 400, 800 steps instead of 100) and the *adversarially
  augmented* one (`adversarial_alignment`): the same safety phase (same batches), its steps
  after the standard 100 trained also at the parameter point k benign fine-tuning steps ahead
  (`gravity.defences.adversarial_alignment`: refusal at theta + k u_B(theta), u_B the planned
  benign optimizer's first update at theta, held fixed), k = 1, 3, 10, 30 benign steps; and a
  **shallower basin** (pretraining that complies with hazardous requests less often: harm_prob
  0.75, 0.6, 0.3, 0.0 instead of 0.9; its own histories).

Fixed before any result was seen: the standard histories (`gravity.engine.presets`), Adam lr 1e-3,
100 benign steps; strengths spaced by factors of ~3 to 10 from barely acting to strong (block
0.1-10, rehearsal 0.05-0.5, ewc 10-1e4, l2sp 0.01-10, safelora threshold 0.1-0.9, lookahead 1-30 of
the 100 benign steps); scored by held-out harmfulness at T (hazardous inputs disjoint from the
probes that define v_rev and drive block and project) and task accuracy at T on the benign task
probes. The adversarial curve is drawn at 200 safety steps (100 standard + 100 augmented; chosen
from the *longer* phase's earlier results, where 200 steps still leave room in both models: 0.49
MLP, 0.12 transformer), beside the longer phase at the same 200 steps (equal data and steps) and at
400 (about equal compute: an augmented step costs ~3 plain ones); every (k, depth) cell is in
the JSON (`alignment_by_depth`). A defence point is on the Pareto frontier when no other point
has both lower held-out harm and higher task accuracy. The shallower basin changes the world, not
its defence: a reference (`changed_world_at_equal_task`), never the best (`best_at_equal_task`
leaves it out since issue #22, after the full run had been read). Compute cost is not among these
numbers (it depends on the machine): `benchmarks/defence_costs.py` reports each defence's extra
cost per benign step (its phase compiled alone) and the augmented safety step's against the plain
one.

How it runs (the numbers do not depend on it): the defences acting during fine-tuning branch
from theta_S in two programs at full size (`steer`: the interventions along a direction, whose
machinery costs ~10x a plain step; `guard`: the other defences), each with its own baseline
branch, so the cheap arms do not pay for the expensive machinery; at quick size one program
holds both. Deeper alignment branches after the helpful phase (theta_H): one safety phase per
lookahead (k = 0 is the longer phase, the same computation as the engine's safety phase), the
benign fine-tuning vmapped over its snapshots. Each program's theta_S is the same function of
the seed; programs agree on it up to float rounding (`baseline_agreement` compares their
baselines).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from gravity.defences.arms import arm_knobs, arms_spec, split_by_machinery
from gravity.engine import presets
from gravity.engine.spec import with_phase
from gravity.instruments import frontier
from gravity.instruments.deeper_alignment import AlignmentMeasure
from gravity.run import plotting, sweep
from gravity.run.experiment import Experiment

NAME = "defences"
PLOT_FROM_NUMBERS = True
"""The figure reads only the numbers (`gravity plot NAME` redraws it from the JSON)."""
PAPER = {"baseline": 0.190, "block": 0.085}
PAPER_REHEARSAL_CUT = 0.30
STRENGTHS = {
    "block": (0.1, 0.3, 1.0, 3.0, 10.0),
    "rehearsal": (0.05, 0.1, 0.25, 0.5),
    "ewc": (10.0, 100.0, 1000.0, 10000.0),
    "l2sp": (0.01, 0.1, 1.0, 10.0),
    "safelora": (0.1, 0.3, 0.5, 0.9),
}
SINGLE = {"project": 1.0, "random_block": 1.0, "freeze": 1.0}
DEPTHS = (100, 150, 200, 400, 800)
LOOKAHEADS = (0.0, 1.0, 3.0, 10.0, 30.0)
ADVERSARIAL_DEPTH = 200
HARM_PROBS = (0.9, 0.75, 0.6, 0.3, 0.0)
FINALS = ("harmfulness_heldout", "harmfulness", "task_accuracy", "alignment")
MEASURE = sweep.HistoryMetrics(
    trajectories=(("benign", ("harmfulness_heldout", "task_accuracy")),),
    finals=(("benign", FINALS),),
)
COLORS = {
    **plotting.COLORS,
    "rehearsal": "#1f77b4",
    "ewc": "#ff7f0e",
    "l2sp": "#e377c2",
    "safelora": "#17becf",
    "freeze": "#bcbd22",
    "deeper_alignment": "#8c564b",
    "adversarial_alignment": "#000000",
    "shallower_basin": "#d62728",
}


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 16
    models: tuple[str, ...] = ("mlp", "transformer")
    transformer_seeds: int = 16
    size: str = "standard"
    learning_rate: float = 1e-3
    strengths: tuple[tuple[str, tuple[float, ...]], ...] = tuple(STRENGTHS.items())
    depths: tuple[int, ...] = DEPTHS
    lookaheads: tuple[float, ...] = LOOKAHEADS
    adversarial_depth: int = ADVERSARIAL_DEPTH
    harm_probs: tuple[float, ...] = HARM_PROBS
    split_programs: bool = True


def quick(config: Config) -> Config:
    return dataclasses.replace(
        config,
        seeds=4,
        models=("mlp",),
        strengths=tuple((name, (values[0], values[-1])) for name, values in STRENGTHS.items()),
        depths=(DEPTHS[0], ADVERSARIAL_DEPTH),
        lookaheads=(0.0, 10.0),
        harm_probs=HARM_PROBS[::4],
        split_programs=False,
    )


CHANGED_WORLD = ("shallower_basin",)
"""Arms that change pretraining (the world, not a defence of it): references, never winners."""


def during_arms(config: Config) -> tuple[tuple[str, float], ...]:
    """(defence, strength) branches acting during fine-tuning, the baseline first."""
    strengths = [(name, s) for name, values in config.strengths for s in values]
    return (("baseline", 0.0), *strengths, *SINGLE.items())


def groups(config: Config) -> dict[str, tuple[tuple[str, float], ...]]:
    """The programs the during-fine-tuning arms run in, each with the baseline as its first."""
    arms = during_arms(config)
    return split_by_machinery(arms) if config.split_programs else {"during": arms}


def group_spec(model: str, config: Config, arms):
    """The standard history with only the machinery its arms need compiled into fine-tuning."""
    return arms_spec(presets.standard_spec(model, config.size, keep_params=False), arms)


def seeds_for(config: Config, model: str) -> int:
    return presets.seeds_for(model, config.seeds, config.transformer_seeds)


def sweep_along(config, model: str, label: str, spec, knobs, axis, after=None, measure=MEASURE):
    """`spec` swept along `axis`, branching from a shared trunk after phase `after` (else a
    plain grid); `knobs(spec, value)` are its knobs at a value."""

    def build(*value, **point):  # the axis's one value, by position or by the axis's name
        (value,) = (*value, *point.values())
        return spec, knobs(spec, value).validate(spec)

    grid, branches = ((), (axis,)) if after else ((axis,), ())
    name, seeds = f"{model}-{config.size}-{label}", seeds_for(config, model)
    return sweep.Sweep(name, grid, seeds, build, measure, branches=branches, branch_after=after)


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    standard = functools.partial(presets.standard_knobs, learning_rate=config.learning_rate)

    def with_arm(spec, arm):
        return arm_knobs(standard(spec), arm)

    def with_lookahead(spec, lookahead):
        return dataclasses.replace(standard(spec), defence_strength=lookahead)

    def with_harm_prob(spec, harm_prob):
        return standard(spec, harm_prob=harm_prob)

    out = {}
    for model in config.models:
        plain = presets.standard_spec(model, config.size, keep_params=False)
        for label, arms in groups(config).items():
            spec, axis = group_spec(model, config, arms), sweep.Axis("arm", arms)
            out[f"{model}-{label}"] = sweep_along(
                config, model, label, spec, with_arm, axis, "safety"
            )
        # The safety phase runs to the deepest depth inside `AlignmentMeasure`, from theta_H.
        depths = tuple(config.depths)
        deep = with_phase(plain, "safety", steps=max(depths), snapshots=depths)
        axis = sweep.Axis("lookahead", tuple(config.lookaheads))
        measure = AlignmentMeasure(depths, MEASURE)
        out[f"{model}-alignment"] = sweep_along(
            config, model, "alignment", deep, with_lookahead, axis, "helpful", measure
        )
        axis = sweep.Axis("harm_prob", tuple(config.harm_probs))
        out[f"{model}-basin"] = sweep_along(config, model, "basin", plain, with_harm_prob, axis)
    return out


SCORES = {
    "harmfulness_heldout_T": "harmfulness_heldout",
    "harmfulness_probes_T": "harmfulness",
    "task_accuracy_T": "task_accuracy",
}
"""A point's scores at T: its name in the report, its benign phase's final metric."""
EARLIER = ("deeper_alignment", "adversarial_alignment", "shallower_basin")
HELD_OUT = "final/benign/harmfulness_heldout"


def points(model: str, results: dict, config: Config) -> list[dict]:
    """One entry per (defence, strength): held-out harm and task accuracy at T over seeds."""

    def scores(label: str, index):
        return frontier.final_scores(results[f"{model}-{label}"], SCORES, index)

    out = []
    for g, (label, arms) in enumerate(groups(config).items()):
        first = 0 if g == 0 else 1  # the baseline once
        out += frontier.frontier_points(arms[first:], scores(label, np.s_[first:]))
    deeper = [("deeper_alignment", depth) for depth in config.depths[1:]]
    out += frontier.frontier_points(deeper, scores("alignment", np.s_[0, :, 1:]), axis=-1)
    d = list(config.depths).index(config.adversarial_depth)  # alignment: (lookahead, seed, depth)
    adversarial = [("adversarial_alignment", k) for k in config.lookaheads[1:]]
    out += frontier.frontier_points(adversarial, scores("alignment", np.s_[1:, :, d]))
    basin = [("shallower_basin", h) for h in config.harm_probs[1:]]
    return out + frontier.frontier_points(basin, scores("basin", np.s_[1:]))


def alignment_by_depth(res: sweep.SweepResult, config: Config) -> dict:
    """Every (lookahead, depth) cell of deeper alignment: held-out harm and task at T, and the
    held-out harm at the branch's theta_S (before fine-tuning)."""
    cells = frontier.final_scores(res, {k: SCORES[k] for k in SCORES if "probes" not in k})
    cells["harmfulness_heldout_aligned"] = res.valid("metrics/benign/harmfulness_heldout")[..., 0]
    rows = {f"lookahead={k:g}": i for i, k in enumerate(config.lookaheads)}
    return frontier.mean_sd_grid(cells, rows, {str(d): j for j, d in enumerate(config.depths)})


def baseline_agreement(model: str, results: dict, config: Config, reference: str) -> dict:
    """Each program's baseline held-out harm at T: they share theta_S up to float rounding."""
    baseline = {g: 0 for g in groups(config)} | {"alignment": np.s_[:, :, 0], "basin": 0}
    harm = {
        f"{model}-{g}": float(np.nanmean(results[f"{model}-{g}"].valid(HELD_OUT)[index]))
        for g, index in baseline.items()
    }
    return {
        "harmfulness_heldout_T": harm,
        "max_abs_difference": max(abs(v - harm[reference]) for v in harm.values()),
    }


def summarise_model(model: str, results: dict, config: Config) -> dict:
    entries = points(model, results, config)
    defended = {p["name"] for p in entries} - set(CHANGED_WORLD)  # all but the changed worlds
    label, arms = next((k, v) for k, v in groups(config).items() if "rehearsal" in dict(v))
    trajectory = results[f"{model}-{label}"].valid("metrics/benign/harmfulness_heldout")
    steps = group_spec(model, config, arms).phase("benign").record_steps
    at_t, cumulative = frontier.reversion_cut_by_strength(trajectory, steps, arms, "rehearsal")
    return {
        "defences": entries,
        "pareto": frontier.pareto_front(entries),
        "best_at_equal_task": frontier.best_at_equal_cost(entries, CHANGED_WORLD),
        "best_during_fine_tuning_at_equal_task": frontier.best_at_equal_cost(entries, EARLIER),
        "changed_world_at_equal_task": frontier.best_at_equal_cost(entries, defended),
        "harmfulness_heldout_aligned": float(np.nanmean(trajectory[0, :, 0])),
        "rehearsal_cut_in_reversion": at_t,
        "rehearsal_cut_in_cumulative_reversion": cumulative,
        "alignment_by_depth": alignment_by_depth(results[f"{model}-alignment"], config),
        "baseline_agreement": baseline_agreement(model, results, config, f"{model}-{label}"),
        "n_seeds": seeds_for(config, model),
        "n_fine_tuning_runs": sum(  # an alignment history fine-tunes once per depth
            np.size(res[HELD_OUT]) for key, res in results.items() if key.startswith(f"{model}-")
        ),
    }


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    numbers = {model: summarise_model(model, results, config) for model in config.models}
    numbers["paper"] = {
        "harmfulness_baseline": PAPER["baseline"],
        "harmfulness_blocked": PAPER["block"],
        "rehearsal_cut_in_reversion": PAPER_REHEARSAL_CUT,
    }
    return numbers


def draw_frontier(ax, model: str, numbers: dict):
    """One model's defences on the task-vs-harm plane, the paper's levels beside them."""
    plotting.frontier_curves(ax, numbers["defences"], set(numbers["pareto"]), COLORS)
    for label, value in PAPER.items():
        text = f"paper {label} {value:.1%}"
        plotting.annotated_reference_line(ax, value, text, color=COLORS[label])
    title = f"{model} ({numbers['n_seeds']} seeds): defences (□ Pareto frontier)"
    xlabel, ylabel = "task accuracy at T", "held-out harmfulness at T"
    plotting.finish(ax, xlabel, ylabel, title, fontsize=6, ncol=2, loc="best")


def draw_depths(ax, model: str, numbers: dict, config: Config):
    """Held-out harm at T against safety steps: the longer phase (k = 0) and each lookahead."""
    for i, (key, cells) in enumerate(numbers["alignment_by_depth"].items()):
        harm = [cell["harmfulness_heldout_T"]["mean"] for cell in cells.values()]
        label = "longer (k = 0)" if i == 0 else f"adversarial, {key.replace('lookahead=', 'k = ')}"
        color = COLORS["deeper_alignment"] if i == 0 else f"C{i}"
        depths = [int(d) for d in cells]
        ax.plot(depths, harm, "o-", ms=4, lw=1.4 if i == 0 else 1, label=label, color=color)
    ax.axvline(config.adversarial_depth, color="k", lw=0.6, ls=":")
    plotting.log_ticks(ax, config.depths)
    xlabel = "safety steps (standard 100; later steps plain or augmented)"
    title = f"{model}: deeper alignment, longer vs adversarially augmented"
    plotting.finish(ax, xlabel, "held-out harmfulness at T", title, fontsize=6)


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    fig, axes = plotting.figure(len(config.models), 2, width=6.0, height=4.6)
    for column, model in enumerate(config.models):
        draw_frontier(axes[0][column], model, numbers[model])
        draw_depths(axes[1][column], model, numbers[model], config)
    return plotting.save(fig, path, "Anti-gravity: defences on one harm-vs-task frontier")


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "defences against reversion compared on one harm-vs-task frontier"
)
