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

Fixed before any result was seen: the standard histories (`gravity.presets`), Adam lr 1e-3, 100
benign steps; strengths spaced by factors of ~3 to 10 from barely acting to strong (block 0.1-10,
rehearsal 0.05-0.5, ewc 10-1e4, l2sp 0.01-10, safelora threshold 0.1-0.9, lookahead 1-30 of the
100 benign steps); scored by held-out harmfulness at T (hazardous inputs disjoint from the probes
that define v_rev and drive block and project) and task accuracy at T on the benign task probes.
The adversarial curve is drawn at 200 safety steps (100 standard + 100 augmented; chosen from
the *longer* phase's earlier results, where 200 steps still leave room in both models: 0.49 MLP,
0.12 transformer), beside the longer phase at the same 200 steps (equal data and steps) and at
400 (about equal compute: an augmented step costs ~3 plain ones); every (k, depth) cell is in
the JSON (`alignment_by_depth`). A defence point is on the Pareto frontier when no other point
has both lower held-out harm and higher task accuracy. Each defence's compute overhead per
benign step is measured (full runs) by compiling its phase alone, and the augmented safety
step's against the plain one, on whatever machine runs it.

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
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gravity import defences, history, performance, plotting, presets, sweep
from gravity.defences import steering
from gravity.experiment import Experiment
from gravity.models import network
from gravity.spec import phase_tag, repeat_knobs, with_phase
from gravity.stats import mean_sd

NAME = "defences"
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
LOOKAHEAD_TAG = phase_tag("adversarial_lookahead")
STEERING = tuple(steering.INTERVENTIONS)[1:]
FINALS = ("harmfulness_heldout", "harmfulness", "task_accuracy", "alignment")
MEASURE = sweep.HistoryMetrics(
    trajectories=(("benign", ("harmfulness_heldout", "task_accuracy")),),
    finals=(("benign", FINALS),),
)
COLORS = {
    "baseline": "#444444",
    "block": "#2ca02c",
    "project": "#9467bd",
    "random_block": "#8c8c8c",
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
    measure_overhead: bool = True
    split_programs: bool = True


def quick(config: Config) -> Config:
    return dataclasses.replace(
        config,
        seeds=4,
        models=("mlp",),
        strengths=tuple(
            (name, values[:: max(1, len(values) - 1)]) for name, values in STRENGTHS.items()
        ),
        depths=(DEPTHS[0], ADVERSARIAL_DEPTH),
        lookaheads=(0.0, 10.0),
        harm_probs=HARM_PROBS[::4],
        measure_overhead=False,
        split_programs=False,
    )


def during_arms(config: Config) -> tuple[tuple[str, float], ...]:
    """(defence, strength) branches acting during fine-tuning, the baseline first."""
    out = [("baseline", 0.0)]
    out += [(name, s) for name, values in config.strengths for s in values]
    out += [(name, s) for name, s in SINGLE.items()]
    return tuple(out)


def groups(config: Config) -> dict[str, tuple[tuple[str, float], ...]]:
    """The programs the during-fine-tuning arms run in, each with the baseline as its first."""
    arms = during_arms(config)
    if not config.split_programs:
        return {"during": arms}
    steer = tuple(a for a in arms if a[0] in STEERING)
    guard = tuple(a for a in arms[1:] if a[0] not in STEERING)
    return {"steer": (arms[0], *steer), "guard": (arms[0], *guard)}


def group_spec(model: str, config: Config, arms):
    """The standard history with only the machinery its arms need compiled into fine-tuning."""
    spec = presets.standard_spec(model, config.size, keep_params=False)
    names = {name for name, _ in arms}
    guards = tuple(d for d in defences.names()[1:] if d in names)
    return with_phase(spec, "benign", interventions=bool(names & set(STEERING)), defences=guards)


def arm_knobs(base, arm: tuple[str, float]):
    """The knobs of one branch: which intervention or defence acts, and how strongly."""
    name, strength = arm
    if name in steering.INTERVENTIONS:
        return dataclasses.replace(
            base, intervention=steering.index(name), intervention_strength=strength
        )
    if name in defences.REGISTRY:
        return dataclasses.replace(base, defence=defences.index(name), defence_strength=strength)
    return base


def alignment_spec(model: str, config: Config):
    """The standard history; its safety phase (run by `AlignmentMeasure`) to the deepest depth."""
    spec = presets.standard_spec(model, config.size, keep_params=False)
    depths = tuple(config.depths)
    return with_phase(spec, "safety", steps=max(depths), snapshots=depths)


@dataclasses.dataclass(frozen=True)
class AlignmentMeasure:
    """Deeper alignment from theta_H (the trunk through the helpful phase): the safety phase to
    the deepest depth, its steps after the first depth adversarially augmented with lookahead
    `Knobs.defence_strength` (0: the plain, longer phase), then benign fine-tuning from each
    depth's snapshot, vmapped. Safety batches are the engine's (the safety phase's key and step
    index), so every lookahead sees the same data; the simulated benign batches have their own
    stream, never the fine-tuning's own batches."""

    depths: tuple[int, ...]

    def safety(self, key, spec, knobs, params, augment_from: int, snapshots: tuple[int, ...]):
        """The safety phase from `params`, augmented from step `augment_from` on: the parameters
        at `snapshots`, stacked."""
        net = network(spec.model, spec.world)
        world, safety, benign = spec.world, spec.phase("safety"), spec.phase("benign")
        safety_key = jax.random.fold_in(key, phase_tag(safety.name))
        lookahead_key = jax.random.fold_in(key, LOOKAHEAD_TAG)

        def safety_batch(t):
            step_key = jax.random.fold_in(safety_key, t)
            return world.sample(knobs.world, safety.data, step_key, safety.batch_size)

        def benign_batch(t):
            step_key = jax.random.fold_in(lookahead_key, t)
            return world.sample(knobs.world, benign.data, step_key, benign.batch_size)

        return defences.adversarial_alignment(
            net,
            params,
            safety_batch,
            benign_batch,
            history.phase_optimizer(safety, knobs.learning_rate[safety.name]),
            history.phase_optimizer(benign, knobs.learning_rate[benign.name]),
            knobs.defence_strength,
            augment_from,
            snapshots,
        )

    def __call__(self, key, spec, knobs, start=None) -> dict:
        snapshots = self.safety(key, spec, knobs, start.state.params, self.depths[0], self.depths)

        def fine_tune(params):
            state = dataclasses.replace(
                start.state, params=params, boundaries={**start.state.boundaries, "safety": params}
            )
            return MEASURE(key, spec, knobs, start=history.Trunk(state, start.outputs))

        out = jax.vmap(fine_tune)(snapshots)
        out["diverged"] = jnp.any(out["diverged"])
        return out


def seeds_for(config: Config, model: str) -> int:
    return presets.seeds_for(model, config.seeds, config.transformer_seeds)


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    out = {}
    for model in config.models:
        n = seeds_for(config, model)
        for label, arms in groups(config).items():
            spec = group_spec(model, config, arms)

            def build(arm, spec=spec):
                base = presets.standard_knobs(spec, config.learning_rate)
                return spec, arm_knobs(base, arm).validate(spec)

            out[f"{model}-{label}"] = sweep.Sweep(
                f"{model}-{config.size}-{label}",
                axes=(),
                branches=(sweep.Axis("arm", arms),),
                branch_after="safety",
                seeds=n,
                build=build,
                measure=MEASURE,
            )
        deep = alignment_spec(model, config)

        def build_alignment(lookahead, deep=deep):
            knobs = presets.standard_knobs(deep, config.learning_rate)
            return deep, dataclasses.replace(knobs, defence_strength=lookahead).validate(deep)

        out[f"{model}-alignment"] = sweep.Sweep(
            f"{model}-{config.size}-alignment",
            axes=(),
            branches=(sweep.Axis("lookahead", tuple(config.lookaheads)),),
            branch_after="helpful",
            seeds=n,
            build=build_alignment,
            measure=AlignmentMeasure(tuple(config.depths)),
        )
        plain = presets.standard_spec(model, config.size, keep_params=False)

        def build_basin(harm_prob, plain=plain):
            knobs = presets.standard_knobs(plain, config.learning_rate, harm_prob=harm_prob)
            return plain, knobs.validate(plain)

        out[f"{model}-basin"] = sweep.Sweep(
            f"{model}-{config.size}-basin",
            axes=(sweep.Axis("harm_prob", tuple(config.harm_probs)),),
            seeds=n,
            build=build_basin,
            measure=MEASURE,
        )
    return out


def _point(name, strength, harm, task, probe_harm) -> dict:
    return {
        "name": name,
        "strength": float(strength),
        "harmfulness_heldout_T": mean_sd(harm),
        "harmfulness_probes_T": mean_sd(probe_harm),
        "task_accuracy_T": mean_sd(task),
    }


def _finals(res: sweep.SweepResult):
    return (
        res.valid("final/benign/harmfulness_heldout"),
        res.valid("final/benign/task_accuracy"),
        res.valid("final/benign/harmfulness"),
    )


def points(model: str, results: dict, config: Config) -> list[dict]:
    """One entry per (defence, strength): held-out harm and task accuracy at T over seeds."""
    out = []
    for g, (label, arms) in enumerate(groups(config).items()):
        harm, task, probe = _finals(results[f"{model}-{label}"])
        for i, (name, strength) in enumerate(arms):
            if name == "baseline" and g > 0:
                continue
            out.append(_point(name, strength, harm[i], task[i], probe[i]))
    harm, task, probe = _finals(results[f"{model}-alignment"])  # (lookahead, seeds, depth)
    depths, lookaheads = list(config.depths), list(config.lookaheads)
    for d, depth in enumerate(depths[1:], start=1):
        out.append(_point("deeper_alignment", depth, harm[0, :, d], task[0, :, d], probe[0, :, d]))
    d = depths.index(config.adversarial_depth)
    for k, lookahead in enumerate(lookaheads[1:], start=1):
        out.append(
            _point("adversarial_alignment", lookahead, harm[k, :, d], task[k, :, d], probe[k, :, d])
        )
    harm, task, probe = _finals(results[f"{model}-basin"])
    for j, h in enumerate(config.harm_probs[1:], start=1):
        out.append(_point("shallower_basin", h, harm[j], task[j], probe[j]))
    return out


def pareto(entries: list[dict]) -> list[str]:
    """Labels ("name@strength") of the points no other point beats on both axes."""
    xy = [(e["harmfulness_heldout_T"]["mean"], e["task_accuracy_T"]["mean"]) for e in entries]
    front = []
    for e, (h, a) in zip(entries, xy, strict=True):
        beaten = any(h2 <= h and a2 >= a and (h2, a2) != (h, a) for h2, a2 in xy)
        if not beaten:
            front.append(f"{e['name']}@{e['strength']:g}")
    return front


EARLIER = ("deeper_alignment", "adversarial_alignment", "shallower_basin")
TASK_TOLERANCE = 0.01


def best_at_equal_task(entries: list[dict], names=None) -> dict | None:
    """The point with the lowest held-out harm among those whose task accuracy at T is at least
    the baseline's minus `TASK_TOLERANCE` (equal task cost), optionally among `names` only."""
    base = next(e for e in entries if e["name"] == "baseline")["task_accuracy_T"]["mean"]
    kept = [
        e
        for e in entries
        if e["task_accuracy_T"]["mean"] >= base - TASK_TOLERANCE
        and e["name"] != "baseline"
        and (names is None or e["name"] in names)
    ]
    if not kept:
        return None
    best = min(kept, key=lambda e: e["harmfulness_heldout_T"]["mean"])
    return {
        "label": f"{best['name']}@{best['strength']:g}",
        "harmfulness_heldout_T": best["harmfulness_heldout_T"]["mean"],
        "task_accuracy_T": best["task_accuracy_T"]["mean"],
        "baseline_task_accuracy_T": base,
    }


def alignment_by_depth(res: sweep.SweepResult, config: Config) -> dict:
    """Every (lookahead, depth) cell of deeper alignment: held-out harm and task at T, and the
    held-out harm at the branch's theta_S (before fine-tuning)."""
    harm, task, _ = _finals(res)
    aligned = res.valid("metrics/benign/harmfulness_heldout")[..., 0]
    return {
        f"lookahead={k:g}": {
            str(depth): {
                "harmfulness_heldout_T": mean_sd(harm[i, :, d]),
                "task_accuracy_T": mean_sd(task[i, :, d]),
                "harmfulness_heldout_aligned": mean_sd(aligned[i, :, d]),
            }
            for d, depth in enumerate(config.depths)
        }
        for i, k in enumerate(config.lookaheads)
    }


def rehearsal_cuts(res: sweep.SweepResult, arms, spec) -> dict[str, dict[str, float]]:
    """How much of the baseline's reversion each rehearsal fraction removes, at T and summed over
    the run (trapezoid over the recorded benign steps): 1 - (rehearsal's rise above theta_S) /
    (the baseline's rise), from the seed means."""
    trajectory = np.nanmean(res.valid("metrics/benign/harmfulness_heldout"), axis=1)
    rise = trajectory - trajectory[:, :1]
    steps = np.asarray(spec.phase("benign").record_steps, dtype=float)
    area = np.trapezoid(rise, steps, axis=-1)
    out = {"at_T": {}, "cumulative": {}}
    for i, (name, strength) in enumerate(arms):
        if name == "rehearsal":
            out["at_T"][f"{strength:g}"] = float(1 - rise[i, -1] / rise[0, -1])
            out["cumulative"][f"{strength:g}"] = float(1 - area[i] / area[0])
    return out


def time_programs(programs: dict, args: tuple, repeats: int = 3) -> dict[str, float]:
    """Best-of-`repeats` wall seconds of each compiled program on `args`."""
    out = {}
    for label, program in programs.items():
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(program(*args))
            best = min(best, time.perf_counter() - start)
        out[label] = best
    return out


def overhead(model: str, config: Config) -> dict[str, float]:
    """Measured extra compute per benign step of each defence, compiled alone."""
    spec = presets.standard_spec(model, config.size, keep_params=False)
    knobs = presets.standard_knobs(spec, config.learning_rate)
    variants = {
        name: ({"defences": (name,)}, {"defence": defences.index(name), "defence_strength": 0.1})
        for name in defences.names()[1:]
    }
    for name in ("block", "project"):
        variants[name] = ({"interventions": True}, {"intervention": steering.index(name)})
    return performance.step_overhead(spec, knobs, "benign", variants)


def safety_step_overhead(model: str, config: Config, runs: int = 8, steps: int = 20) -> float:
    """Measured extra compute of an adversarially augmented safety step over the engine's plain
    one (both compiled alone, `steps` steps on `runs` vmapped histories from theta_H)."""
    spec = presets.standard_spec(model, config.size, keep_params=False)
    spec = with_phase(spec, "safety", steps=steps, n_records=1)
    knobs = repeat_knobs(
        dataclasses.replace(
            presets.standard_knobs(spec, config.learning_rate), defence_strength=1.0
        ),
        runs,
    )
    keys = history.seed_keys(range(runs))
    trunk = jax.jit(jax.vmap(lambda key, k: history.run_trunk(key, spec, k, "helpful")))(
        keys, knobs
    )
    measure = AlignmentMeasure((steps,))

    def plain(key, k, trunk):
        return history.run_phases(key, spec, trunk.state, k, (spec.phase("safety"),))[0].params

    def augmented(key, k, trunk):
        return measure.safety(key, spec, k, trunk.state.params, 0, (steps,))

    programs = {
        "plain": jax.jit(jax.vmap(plain)).lower(keys, knobs, trunk).compile(),
        "augmented": jax.jit(jax.vmap(augmented)).lower(keys, knobs, trunk).compile(),
    }
    timings = time_programs(programs, (keys, knobs, trunk))
    return timings["augmented"] / timings["plain"] - 1.0


def summarise_model(model: str, results: dict, config: Config) -> dict:
    entries = points(model, results, config)
    costs = overhead(model, config) if config.measure_overhead else {}
    cost_of = {
        "baseline": 0.0,
        "deeper_alignment": 0.0,
        "adversarial_alignment": 0.0,
        "shallower_basin": 0.0,
        **costs,
    }
    cost_of.setdefault("random_block", costs.get("block"))
    for e in entries:
        e["overhead"] = cost_of.get(e["name"])
    label, arms = next((k, v) for k, v in groups(config).items() if "rehearsal" in dict(v))
    main = results[f"{model}-{label}"]
    aligned = float(np.nanmean(main.valid("metrics/benign/harmfulness_heldout")[0, :, 0]))
    baselines = {
        f"{model}-{g}": float(np.nanmean(_finals(results[f"{model}-{g}"])[0][0]))
        for g in groups(config)
    }
    baselines[f"{model}-alignment"] = float(
        np.nanmean(_finals(results[f"{model}-alignment"])[0][:, :, 0])
    )
    baselines[f"{model}-basin"] = float(np.nanmean(_finals(results[f"{model}-basin"])[0][0]))
    reference = baselines[f"{model}-{label}"]
    cuts = rehearsal_cuts(main, arms, group_spec(model, config, arms))
    return {
        "defences": entries,
        "pareto": pareto(entries),
        "best_at_equal_task": best_at_equal_task(entries),
        "best_during_fine_tuning_at_equal_task": best_at_equal_task(
            entries, {e["name"] for e in entries if e["name"] not in EARLIER}
        ),
        "harmfulness_heldout_aligned": aligned,
        "rehearsal_cut_in_reversion": cuts["at_T"],
        "rehearsal_cut_in_cumulative_reversion": cuts["cumulative"],
        "alignment_by_depth": alignment_by_depth(results[f"{model}-alignment"], config),
        "safety_step_overhead_adversarial": (
            safety_step_overhead(model, config) if config.measure_overhead else None
        ),
        "baseline_agreement": {
            "harmfulness_heldout_T": baselines,
            "max_abs_difference": max(abs(v - reference) for v in baselines.values()),
        },
        "n_seeds": seeds_for(config, model),
        "n_fine_tuning_runs": fine_tuning_runs(config, model),
    }


def fine_tuning_runs(config: Config, model: str) -> int:
    """Benign fine-tuning runs behind a model's numbers (a history of the alignment sweep holds
    one per depth, so the reports' `n_histories` counts fewer)."""
    arms = sum(len(a) for a in groups(config).values())
    per_seed = arms + len(config.lookaheads) * len(config.depths) + len(config.harm_probs)
    return per_seed * seeds_for(config, model)


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    numbers = {model: summarise_model(model, results, config) for model in config.models}
    numbers["paper"] = {
        "harmfulness_baseline": PAPER["baseline"],
        "harmfulness_blocked": PAPER["block"],
        "rehearsal_cut_in_reversion": PAPER_REHEARSAL_CUT,
    }
    return numbers


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    fig, axes = plotting.figure(len(config.models), 2, width=6.0, height=4.6)
    for column, model in enumerate(config.models):
        ax = axes[0][column]
        entries = numbers[model]["defences"]
        front = set(numbers[model]["pareto"])
        for name in dict.fromkeys(e["name"] for e in entries):
            curve = [e for e in entries if e["name"] == name]
            x = [e["task_accuracy_T"]["mean"] for e in curve]
            y = [e["harmfulness_heldout_T"]["mean"] for e in curve]
            ax.plot(x, y, "o-", color=COLORS[name], label=name, ms=4, lw=1)
            for e, xi, yi in zip(curve, x, y, strict=True):
                if f"{e['name']}@{e['strength']:g}" in front:
                    ax.plot(xi, yi, "s", mfc="none", mec="k", ms=9)
        for label, value in PAPER.items():
            ax.axhline(value, ls=":", color=COLORS[label], lw=1)
            ax.annotate(
                f"paper {label} {value:.1%}",
                (0.01, value),
                xycoords=("axes fraction", "data"),
                fontsize=6,
            )
        ax.set(
            xlabel="task accuracy at T",
            ylabel="held-out harmfulness at T",
            title=f"{model} ({numbers[model]['n_seeds']} seeds): defences (□ Pareto frontier)",
        )
        ax.legend(frameon=False, fontsize=6, ncol=2, loc="best")
        ax = axes[1][column]
        table = numbers[model]["alignment_by_depth"]
        for i, (key, cells) in enumerate(table.items()):
            depths = [int(d) for d in cells]
            harm = [cells[d]["harmfulness_heldout_T"]["mean"] for d in cells]
            style = dict(color=COLORS["deeper_alignment"]) if i == 0 else dict(color=f"C{i}")
            label = (
                "longer (k = 0)" if i == 0 else f"adversarial, {key.replace('lookahead=', 'k = ')}"
            )
            ax.plot(depths, harm, "o-", ms=4, lw=1.4 if i == 0 else 1, label=label, **style)
        ax.axvline(config.adversarial_depth, color="k", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.set_xticks(list(config.depths), [str(d) for d in config.depths], minor=False)
        ax.minorticks_off()
        ax.set(
            xlabel="safety steps (standard 100; later steps plain or augmented)",
            ylabel="held-out harmfulness at T",
            title=f"{model}: deeper alignment, longer vs adversarially augmented",
        )
        ax.legend(frameon=False, fontsize=6)
    return plotting.save(fig, path, "Anti-gravity: defences on one harm-vs-task frontier")


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "defences against reversion compared on one harm-vs-task frontier"
)
