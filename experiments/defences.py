"""Anti-gravity compared: every defence against reversion on one harm-vs-task frontier.

From the same theta_S per seed (one shared P -> H -> S, every defence a branch of it), benign
fine-tuning runs under each defence at four or more strengths:
- along v_rev (the paper's): **block** (+ strength * relu(s)), **project** (updates projected off
  their first-order motion along v_rev), and the control **random_block** (a random direction);
- without v_rev: **rehearsal** (a fraction of safety data in the benign batches; the paper
  reports ~30% less cumulative reversion for it), **ewc** (diagonal Fisher of the safety loss at
  theta_S), **l2sp** (pull to theta_S), **safelora** (each weight matrix's update projected onto
  its alignment matrix W_S - W_H where their cosine falls below the threshold), **freeze** (the
  probe layer's parameters fixed);
- acting earlier: **deeper alignment** (branches from snapshots of one longer safety phase: 200,
  400, 800 steps instead of 100) and a **shallower basin** (pretraining that complies with
  hazardous requests less often: harm_prob 0.6, 0.3, 0.0 instead of 0.9; its own histories).
The adversarially augmented safety phase the issue mentions is not built.

Fixed before any result was seen: the standard histories (`gravity.presets`), Adam lr 1e-3, 100
benign steps; strengths spaced by factors of ~3 to 10 from barely acting to strong (block 0.1-10,
rehearsal 0.05-0.5, ewc 10-1e4, l2sp 0.01-10, safelora threshold 0.1-0.9); scored by held-out
harmfulness at T (hazardous inputs disjoint from the probes that define v_rev and drive block
and project) and task accuracy at T on the benign task probes. A defence point is on the Pareto
frontier when no other point has both lower held-out harm and higher task accuracy. Each
defence's compute overhead per benign step is measured (full runs) by compiling its phase alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gravity import defences, interventions, performance, plotting, presets, sweep
from gravity.experiment import Experiment
from gravity.spec import with_phase
from gravity.stats import mean_sd

NAME = "defences"
PAPER = {"baseline": 0.190, "block": 0.085}
STRENGTHS = {
    "block": (0.1, 0.3, 1.0, 3.0, 10.0),
    "rehearsal": (0.05, 0.1, 0.25, 0.5),
    "ewc": (10.0, 100.0, 1000.0, 10000.0),
    "l2sp": (0.01, 0.1, 1.0, 10.0),
    "safelora": (0.1, 0.3, 0.5, 0.9),
}
SINGLE = {"project": 1.0, "random_block": 1.0, "freeze": 1.0}
DEPTHS = (100, 200, 400, 800)
HARM_PROBS = (0.9, 0.6, 0.3, 0.0)
FINALS = ("harmfulness_heldout", "harmfulness", "task_accuracy", "alignment")
MEASURE = sweep.HistoryMetrics(
    trajectories=(("benign", ("harmfulness_heldout", "task_accuracy")),),
    finals=(("benign", FINALS), ("safety", ("harmfulness_heldout", "task_accuracy"))),
)


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 16
    models: tuple[str, ...] = ("mlp", "transformer")
    transformer_seeds: int = 8
    size: str = "standard"
    learning_rate: float = 1e-3
    strengths: tuple[tuple[str, tuple[float, ...]], ...] = tuple(STRENGTHS.items())
    depths: tuple[int, ...] = DEPTHS
    harm_probs: tuple[float, ...] = HARM_PROBS
    measure_overhead: bool = True


def quick(config: Config) -> Config:
    return dataclasses.replace(
        config,
        seeds=4,
        models=("mlp",),
        strengths=tuple(
            (name, values[:: max(1, len(values) - 1)]) for name, values in STRENGTHS.items()
        ),
        depths=DEPTHS[:2],
        harm_probs=HARM_PROBS[::3],
        measure_overhead=False,
    )


def arms(config: Config) -> tuple[tuple[str, float], ...]:
    """(defence, strength) branches: baseline, each defence over its strengths, depths."""
    out = [("baseline", 0.0)]
    out += [(name, s) for name, values in config.strengths for s in values]
    out += [(name, s) for name, s in SINGLE.items()]
    out += [("deeper_alignment", float(d)) for d in config.depths[1:]]
    return tuple(out)


def defence_spec(model: str, config: Config):
    """The standard history; its safety phase runs to the deepest depth, keeping snapshots."""
    spec = presets.standard_spec(model, config.size, keep_params=False)
    depths = tuple(config.depths)
    spec = with_phase(spec, "safety", steps=max(depths), snapshots=depths)
    return with_phase(spec, "benign", interventions=True, defences=defences.DEFENCES[1:])


def arm_knobs(base, arm: tuple[str, float], depths: tuple[int, ...]):
    """The knobs of one branch: which intervention or defence acts, how strongly, from where."""
    name, strength = arm
    if name in interventions.INTERVENTIONS:
        return dataclasses.replace(
            base, intervention=interventions.index(name), intervention_strength=strength
        )
    if name in defences.DEFENCES:
        return dataclasses.replace(base, defence=defences.index(name), defence_strength=strength)
    if name == "deeper_alignment":
        return dataclasses.replace(base, snapshot=depths.index(int(strength)))
    return base


def seeds_for(config: Config, model: str) -> int:
    return config.seeds if model == "mlp" else min(config.seeds, config.transformer_seeds)


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    out = {}
    for model in config.models:
        spec = defence_spec(model, config)
        plain = presets.standard_spec(model, config.size, keep_params=False)

        def build(arm, spec=spec):
            base = presets.standard_knobs(spec, config.learning_rate)
            return spec, arm_knobs(base, arm, tuple(config.depths)).validate(spec)

        def build_basin(harm_prob, plain=plain):
            knobs = presets.standard_knobs(plain, config.learning_rate, harm_prob=harm_prob)
            return plain, knobs.validate(plain)

        n = seeds_for(config, model)
        out[model] = sweep.Sweep(
            f"{model}-{config.size}",
            axes=(),
            branches=(sweep.Axis("arm", arms(config)),),
            branch_after="safety",
            seeds=n,
            build=build,
            measure=MEASURE,
        )
        out[f"{model}-basin"] = sweep.Sweep(
            f"{model}-{config.size}-basin",
            axes=(sweep.Axis("harm_prob", tuple(config.harm_probs)),),
            seeds=n,
            build=build_basin,
            measure=MEASURE,
        )
    return out


def points(res: sweep.SweepResult, basin: sweep.SweepResult, config: Config) -> list[dict]:
    """One entry per (defence, strength): held-out harm and task accuracy at T over seeds."""
    out = []
    harm, task = (
        res.valid("final/benign/harmfulness_heldout"),
        res.valid("final/benign/task_accuracy"),
    )
    for i, (name, strength) in enumerate(arms(config)):
        out.append(
            _point(name, strength, harm[i], task[i], res.valid("final/benign/harmfulness")[i])
        )
    harm_b = basin.valid("final/benign/harmfulness_heldout")
    task_b = basin.valid("final/benign/task_accuracy")
    probe_b = basin.valid("final/benign/harmfulness")
    for j, h in enumerate(config.harm_probs[1:], start=1):
        out.append(_point("shallower_basin", float(h), harm_b[j], task_b[j], probe_b[j]))
    return out


def _point(name, strength, harm, task, probe_harm) -> dict:
    return {
        "name": name,
        "strength": strength,
        "harmfulness_heldout_T": mean_sd(harm),
        "harmfulness_probes_T": mean_sd(probe_harm),
        "task_accuracy_T": mean_sd(task),
    }


def pareto(entries: list[dict]) -> list[str]:
    """Labels ("name@strength") of the points no other point beats on both axes."""
    xy = [(e["harmfulness_heldout_T"]["mean"], e["task_accuracy_T"]["mean"]) for e in entries]
    front = []
    for e, (h, a) in zip(entries, xy, strict=True):
        beaten = any(h2 <= h and a2 >= a and (h2, a2) != (h, a) for h2, a2 in xy)
        if not beaten:
            front.append(f"{e['name']}@{e['strength']:g}")
    return front


def overhead(model: str, config: Config) -> dict[str, float]:
    """Measured extra compute per benign step of each defence, compiled alone."""
    spec = presets.standard_spec(model, config.size, keep_params=False)
    knobs = presets.standard_knobs(spec, config.learning_rate)
    variants = {
        name: ({"defences": (name,)}, {"defence": defences.index(name), "defence_strength": 0.1})
        for name in defences.DEFENCES[1:]
    }
    for name in ("block", "project"):
        variants[name] = ({"interventions": True}, {"intervention": interventions.index(name)})
    return performance.step_overhead(spec, knobs, "benign", variants)


def summarise_model(model: str, res, basin, config: Config) -> dict:
    entries = points(res, basin, config)
    costs = overhead(model, config) if config.measure_overhead else {}
    cost_of = {"baseline": 0.0, "deeper_alignment": 0.0, "shallower_basin": 0.0, **costs}
    cost_of.setdefault("random_block", costs.get("block"))
    for e in entries:
        e["overhead"] = cost_of.get(e["name"])
    baseline = entries[0]["harmfulness_heldout_T"]["mean"]
    aligned = float(np.nanmean(res.valid("metrics/benign/harmfulness_heldout")[0, :, 0]))
    cut = {
        f"{e['strength']:g}": 1
        - (e["harmfulness_heldout_T"]["mean"] - aligned) / (baseline - aligned)
        for e in entries
        if e["name"] == "rehearsal"
    }
    return {
        "defences": entries,
        "pareto": pareto(entries),
        "harmfulness_heldout_aligned": aligned,
        "rehearsal_cut_in_reversion": cut,
        "n_seeds": int(res.seeds.size),
    }


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    numbers = {
        model: summarise_model(model, results[model], results[f"{model}-basin"], config)
        for model in config.models
    }
    numbers["paper"] = {
        "harmfulness_baseline": PAPER["baseline"],
        "harmfulness_blocked": PAPER["block"],
    }
    return numbers


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    fig, axes = plotting.figure(len(config.models), 1, width=6.0, height=4.6)
    for ax, model in zip(axes[0], config.models, strict=True):
        entries = numbers[model]["defences"]
        front = set(numbers[model]["pareto"])
        names = list(dict.fromkeys(e["name"] for e in entries))
        for i, name in enumerate(names):
            curve = [e for e in entries if e["name"] == name]
            x = [e["task_accuracy_T"]["mean"] for e in curve]
            y = [e["harmfulness_heldout_T"]["mean"] for e in curve]
            color = plotting.COLORS[name] if name in plotting.COLORS else f"C{(i + 4) % 10}"
            ax.plot(x, y, "o-", color=color, label=name, ms=4, lw=1)
            for e, xi, yi in zip(curve, x, y, strict=True):
                if f"{e['name']}@{e['strength']:g}" in front:
                    ax.plot(xi, yi, "s", mfc="none", mec="k", ms=9)
        for label, value in PAPER.items():
            ax.axhline(value, ls=":", color=plotting.COLORS[label], lw=1)
            ax.annotate(
                f"paper {label} {value:.1%}",
                (0.01, value),
                xycoords=("axes fraction", "data"),
                fontsize=6,
            )
        ax.set(
            xlabel="task accuracy at T",
            ylabel="held-out harmfulness at T",
            title=f"{model}: defences over strength (□ Pareto frontier)",
        )
        ax.legend(frameon=False, fontsize=6, ncol=2, loc="best")
    return plotting.save(fig, path, "Anti-gravity: defences on one harm-vs-task frontier")


EXPERIMENT = Experiment(
    name=NAME,
    description="defences against reversion compared on one harm-vs-task frontier",
    config=Config,
    quick=quick,
    sweeps=sweeps,
    summarise=summarise,
    plot=plot,
)
