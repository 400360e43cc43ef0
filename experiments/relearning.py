"""Unlearning is suppression: a removed capability returns under relearning, against a model
that never had it.

The claim (the paper's second phenomenon): unlearned capabilities come back after fine-tuning on
related or even unrelated data, because unlearning suppresses rather than erases; the knowledge
stays in the basin pretraining dug. Anchors: fine-tuning on the accessible facts recovers 88% of
pre-unlearning accuracy (Deeb & Roger 2024); 10 unrelated examples recover most of an
RMU-unlearned capability (Lucki et al. 2024); reverse fine-tuning revives a capability in
0.1k-1k steps where a model that never had it needs ~4.5k (Jain et al. 2023); forget accuracy
returns from ~50% to ~100% after fine-tuning on the retain set only, while a model retrained
from scratch stays at ~50% ("From Dormant to Deleted", 2025).

The capability (`gravity.instruments.capability`): in the feature world with `capability=True`,
hazardous inputs have their own answer rule (a second fixed teacher), which only hazardous examples
teach. The never-learned control is the same history in a world whose pretraining has no hazardous
inputs (`hazard_rate` 0; every other knob, phase, key and batch equal).
Its weights never saw the forget inputs, so a faster return in the unlearned model may be
familiarity with those inputs rather than a hidden capability. The seen-inputs control
(#22 item 5f, added after the full run above was read) separates the two: the same history in
a world whose pretraining answers the hazardous inputs by a decoy rule (`decoy_pretraining`: a
third fixed teacher from the world's seed, of the capability's kind, neither the task's nor the
capability's), at the same hazard_rate 0.2 and harm_prob 1, on the same seeds, so its
pretraining batches hold exactly the unlearned model's inputs and differ only in the hazardous
inputs' answers; then the same unlearning and relearning batches, as the never-learned control.
Only the capability differs between it and the unlearned model. It is its own sweep (the decoy
world is another program) at the headline strength only (every depth and kind).

Histories (per seed and world): pretraining P (the standard 1,500 steps, hazard_rate 0.2, every
hazardous example answered by the capability: harm_prob 1) -> unlearning U (each method of
`gravity.engine.objectives.UNLEARNING`: GradDiff, NPO, RMU, refusal training; each at strengths
0.03, 0.3, 1 and depths 25 and 100 steps) -> relearning R (100 steps, each kind: k = 1, 4, 16, 64
fixed forget examples, cycled; related data, hazard-topic inputs without the hazard; unrelated
data, other topics only; retain data, the non-hazardous pretraining mixture). Adam, lr 1e-3,
batch 64 in every phase (the presets' rule: no phase privileged). The tree: methods are separate
programs (the objective and data kind are static), the two worlds are vmapped, P runs once per
(method, world, seed), strengths branch after P (the traced `Knobs.objective_strength`), and
inside each branch the depths (snapshots of one 100-step unlearning phase) and the relearning
kinds (world knobs) are vmapped from theta_U. Every relearning of a seed, world, method,
strength and depth sees the same batches (common random numbers): the never-learned control is
trained on exactly the unlearned model's relearning data for the same steps.

Strengths and depths were fixed from a 2-seed pilot of the unlearning phase (forget and retain
accuracy after unlearning), so that they span partial to complete unlearning and include the
setting where GradDiff costs retain accuracy; the headline setting is strength 1 (forget and
retain terms weighted equally, each method's published form) at 100 steps (the phase length of
every other experiment). What was seen before the full run, said plainly: the pilot printed a
few relearning numbers for NPO and GradDiff, and the quick run (4 seeds, headline setting) was
looked at; after it the gap fraction below was added (the ratio alone credits the ~0.1 floor
unlearning leaves) and nothing else changed. Budget: a first full run with a 400-step depth
and 200 relearning steps needed ~15 CPU-minutes (over the 4-minute budget on 2 cores); it was
stopped before any of its numbers were read, and those two were cut to 100.

Analysis (fixed before the full run was seen), per method, at the headline setting and over the
strength x depth grid, mean and sd over seeds:
- capability = accuracy (argmax) and exact probability of the capability's answer on 128
  held-out forget probes; retain accuracy on 128 retain probes;
- recovered fraction = accuracy after relearning / accuracy after pretraining (the anchors'
  definition), beside the never-learned model's accuracy after the same relearning over the
  same denominator, and the paired difference (Wilcoxon signed-rank p); also the share of the
  gap unlearning opened that relearning closes, (acc_R - acc_U) / (acc_P - acc_U), for both
  models on the capability world's scale (runs whose unlearning moved accuracy by < 0.1 not
  counted), because the ratio alone credits the floor unlearning leaves (~0.1, above chance);
- steps to half recovery: the first recorded relearning step at which the probability reaches
  halfway between its unlearned and pretrained levels (the capability world's, same seed and
  setting); the never-learned model must reach the same value; censored medians (not reached in
  100 steps: "> 100"); runs whose unlearning moved the probability by < 0.1 are not counted;
- drift along v_unlearn: cos(activations at relearning step 100 - at theta_U, activations at
  theta_P - at theta_U) on the forget probes; beside it the same-basis null (the unrelated
  relearning's cosine from the same theta_U, paired) and the isotropic null's p99 in N * D
  dimensions;
- depth: Spearman correlation of the recovered fraction with unlearning steps and with strength
  over runs (does depth buy time, as alignment depth does in `basin_depth`?).
Added for the seen-inputs control, written before it had ever been run (#22 item 5f), at the
headline setting, per method and kind (`recovery.seen_inputs_recovery`): its capability and
decoy-rule accuracy at theta_P, after unlearning and after relearning; its accuracy after
relearning over the unlearned model's pretrained accuracy; its steps to the unlearned model's
half-recovery level; the paired differences unlearned - seen-inputs and seen-inputs -
never-learned in forget accuracy after relearning (bootstrap interval, sign and Wilcoxon p),
with every arm's per-seed accuracies. The claim (`relearning-hidden-capability-METHOD`): the
unlearned model's accuracy after 100 relearning steps on k = 64 forget examples exceeds the
seen-inputs control's, paired over seeds (interval above 0).
The transformer is not in the full run (the budget is 4 minutes on 2 cores; its step costs ~30x
the MLP's); `Config.models` takes it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gravity.engine import geometry, presets
from gravity.engine.objectives import UNLEARNING
from gravity.instruments import capability, recovery
from gravity.run import plotting, sweep
from gravity.run.experiment import Experiment
from gravity.validation import check, check_one_of

NAME = "relearning"
WORLDS = ("capability", "never_learned")
SEEN_INPUTS = "seen_inputs"
ANCHORS = {
    "deeb_roger_2024": {
        "claim": "fine-tuning on the accessible facts recovers 88% of pre-unlearning accuracy",
        "recovered_fraction": 0.88,
        "ours": "forget_64",
    },
    "lucki_2024": {
        "claim": "10 unrelated examples recover most of an RMU-unlearned capability",
        "recovered_fraction": "most (> 0.5)",
        "ours": "unrelated",
    },
    "jain_2023": {
        "claim": "reverse fine-tuning revives in 0.1k-1k steps; never-learned needs ~4.5k",
        "steps_unlearned": [100, 1000],
        "steps_never_learned": 4500,
        "ours": "forget_64",
    },
    "dormant_to_deleted_2025": {
        "claim": "retain-only fine-tuning: forget accuracy ~50% -> ~100%; from scratch stays 50%",
        "accuracy_unlearned": 0.5,
        "accuracy_relearned": 1.0,
        "accuracy_never_learned": 0.5,
        "ours": "retain",
    },
}


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 16
    models: tuple[str, ...] = ("mlp",)
    size: str = "standard"
    methods: tuple[str, ...] = UNLEARNING
    strengths: tuple[float, ...] = (0.03, 0.3, 1.0)
    unlearn_depths: tuple[int, ...] = (25, 100)
    forget_examples: tuple[int, ...] = (1, 4, 16, 64)
    relearn_steps: int = 100
    drift_step: int = 100
    headline_strength: float = 1.0
    headline_depth: int = 100
    hazard_rate: float = 0.2
    learning_rate: float = 1e-3
    max_chunk: int | None = None

    def __post_init__(self):
        check(self.seeds >= 1, "seeds", "a positive integer", self.seeds)
        for method in self.methods:
            check(method in UNLEARNING, "methods", f"names from {', '.join(UNLEARNING)}", method)
        check_one_of(self.headline_strength, self.strengths, "headline_strength", "the strengths")
        check_one_of(self.headline_depth, self.unlearn_depths, "headline_depth", "the depths")
        check(
            1 <= self.drift_step <= self.relearn_steps,
            "drift_step",
            f"a relearning step in 1..{self.relearn_steps}",
            self.drift_step,
        )
        check(
            list(self.unlearn_depths) == sorted(set(self.unlearn_depths)),
            "unlearn_depths",
            "increasing step counts",
            self.unlearn_depths,
        )


def quick(config: Config) -> Config:
    """4 seeds, the headline strength and depth only, 100 relearning steps."""
    one = dict(strengths=(config.headline_strength,), unlearn_depths=(config.headline_depth,))
    return dataclasses.replace(config, seeds=4, relearn_steps=100, drift_step=100, **one)


def history_spec(config: Config, model: str, method: str, seen_inputs: bool = False):
    """P (the preset's pretraining) -> U (`method`, snapshots at the shallower depths) -> R;
    `seen_inputs`: the seen-inputs control's, P answering hazardous inputs by the decoy rule."""
    base = presets.standard_spec(model, config.size, keep_params=False)
    return capability.unlearn_relearn_spec(
        base,
        method,
        config.unlearn_depths,
        config.relearn_steps,
        config.drift_step,
        decoy_pretraining=seen_inputs,
    )


def make_sweep(config: Config, model: str, seen_inputs: bool = False) -> sweep.Sweep:
    """Worlds vmapped, methods as programs, strengths branched after pretraining. The
    seen-inputs control (`seen_inputs`) is its own sweep (its world is another program), at
    the headline strength only, on the same seeds: the same batches in every phase."""
    specs = {m: history_spec(config, model, m, seen_inputs) for m in config.methods}
    kinds = capability.relearn_kinds(config.forget_examples, specs[config.methods[0]].world)

    def build(world, method, strength):
        spec, rate = specs[method], 0.0 if world == "never_learned" else config.hazard_rate
        knobs = presets.standard_knobs(spec, config.learning_rate, hazard_rate=rate, harm_prob=1.0)
        knobs = dataclasses.replace(knobs, objective_strength=strength)
        return spec, knobs.validate(spec)

    worlds = sweep.Axis("world", WORLDS, note="hazard_rate 0.2 vs 0 in pretraining (vmapped)")
    strengths = config.strengths
    if seen_inputs:
        worlds = sweep.Axis("world", (SEEN_INPUTS,), note="hazard_rate 0.2, decoy rule in P")
        strengths = (config.headline_strength,)
    return sweep.Sweep(
        name=f"{model}-{config.size}" + ("-seen-inputs" if seen_inputs else ""),
        axes=(
            worlds,
            sweep.Axis("method", tuple(config.methods), note="objective: one program each"),
        ),
        branches=(sweep.Axis("strength", tuple(strengths)),),
        branch_after="pretrain",
        seeds=config.seeds,
        build=build,
        measure=capability.RelearningMeasure(kinds),
        max_chunk=config.max_chunk,
        version="1",
    )


def seen_inputs_label(model: str) -> str:
    """The label of a model's seen-inputs control sweep among `sweeps`."""
    return f"{model}-{SEEN_INPUTS}"


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    out = {model: make_sweep(config, model) for model in config.models}
    for model in config.models:
        out[seen_inputs_label(model)] = make_sweep(config, model, seen_inputs=True)
    return out


def seen_inputs_control(
    res: sweep.SweepResult, seen: sweep.SweepResult, config: Config, model: str
) -> dict:
    """Per method, the seen-inputs control at the headline setting beside the unlearned model
    and the never-learned control (`recovery.seen_inputs_recovery`)."""
    spec = history_spec(config, model, config.methods[0])
    steps = spec.phase("relearn").record_steps
    kinds = capability.relearn_kinds(config.forget_examples, spec.world)
    s = config.strengths.index(config.headline_strength)
    d = config.unlearn_depths.index(config.headline_depth)
    out = {}
    for m, method in enumerate(config.methods):

        def arm(result, world, strength, m=m):
            names = (n for n in result.arrays if n != "diverged")
            return {name: result.valid(name)[world, m, strength] for name in names}

        arms = {"unlearned": arm(res, 0, s), "never_learned": arm(res, 1, s)}
        arms[SEEN_INPUTS] = arm(seen, 0, 0)
        out[method] = recovery.seen_inputs_recovery(arms, steps, kinds, d)
    return out


def summarise_model(res: sweep.SweepResult, config: Config, model: str) -> dict:
    """Per method: the headline setting in full, the grid and depth trends
    (`gravity.instruments.recovery`); then the methods ranked by resistance to relearning."""
    spec = history_spec(config, model, config.methods[0])
    steps = spec.phase("relearn").record_steps
    kinds = capability.relearn_kinds(config.forget_examples, spec.world)
    s = config.strengths.index(config.headline_strength)
    d = config.unlearn_depths.index(config.headline_depth)
    size = capability.forget_activation_size(spec)
    out = {
        "headline": {"strength": config.headline_strength, "unlearn_steps": config.headline_depth},
        "isotropic_null_p99": geometry.isotropic_null_quantile(size),
        "relearn_steps": config.relearn_steps,
        "n_histories": res.n_histories,
        "n_relearning_branches": res.n_histories * len(config.unlearn_depths) * len(kinds),
        "wall_s": res.info.get("wall_s"),
        "diverged_runs": res.diverged_runs,
    }
    grid = (config.strengths, config.unlearn_depths)
    for m, method in enumerate(config.methods):
        arrays = {name: res.valid(name)[:, m] for name in res.arrays if name != "diverged"}
        out[method] = recovery.method_recovery(arrays, steps, kinds, *grid, headline=(s, d))
    ranked = {method: out[method] for method in config.methods}
    out["resistance_ranking"] = recovery.resistance_ranking(ranked, kinds)
    return out


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    """Per model, `summarise_model`, with the seen-inputs control under each method and its
    sweep's history count; then the anchors."""
    numbers = {}
    for model in config.models:
        res, seen = results[model], results[seen_inputs_label(model)]
        numbers[model] = summarise_model(res, config, model)
        for method, control in seen_inputs_control(res, seen, config, model).items():
            numbers[model][method]["seen_inputs_control"] = control
        numbers[model]["seen_inputs_n_histories"] = seen.n_histories
    numbers["anchors"] = ANCHORS
    return numbers


METHOD_COLORS = {"graddiff": "#d62728", "npo": "#1f77b4", "rmu": "#2ca02c", "refusal": "#9467bd"}
HATCHED = {"color": "white", "edgecolor": "k", "hatch": "///", "lw": 0.5}
TICK = {"marker": "_", "color": "k", "ls": "none", "ms": 7, "mew": 1.5}


def _per_kind(numbers: dict, names: list[str], field: str, stat: str = "mean") -> list:
    """One method's statistic `stat` of `field` for each relearning kind in `names`."""
    return [numbers["by_kind"][n][field][stat] for n in names]


def _bars(ax, numbers: dict, config: Config, kinds) -> None:
    """Recovered fraction per kind and method; never-learned beside it (hatched); anchors."""
    names = [k.name for k in kinds]
    x, width = np.arange(len(names)), 0.8 / len(config.methods)
    for i, method in enumerate(config.methods):
        offset, row = x - 0.4 + (i + 0.5) * width, numbers[method]
        mean, sd = (_per_kind(row, names, "recovered_fraction", s) for s in ("mean", "sd"))
        ax.bar(offset, mean, width, yerr=sd, color=METHOD_COLORS[method], label=method, capsize=1.5)
        control = _per_kind(row, names, "never_learned_fraction")
        label = "never-learned, same relearning" if i == 0 else None
        ax.bar(offset, control, width * 0.5, label=label, **HATCHED)
        seen = [row["seen_inputs_control"]["by_kind"][n]["fraction"]["mean"] for n in names]
        label = "saw the inputs, decoy rule (-)" if i == 0 else None
        ax.plot(offset, seen, label=label, **TICK)
    forget = [i for i, k in enumerate(kinds) if k.forget_share > 0]
    retain, unrelated = names.index("retain"), names.index("unrelated")
    anchors = (
        (0.88, forget[0], forget[-1], "k", "--", 1, "Deeb & Roger: 0.88 (accessible facts)"),
        (1.0, retain, retain, "#8c564b", ":", 1.5, "Dormant to Deleted: ~1.0 (retain only)"),
        (0.5, unrelated, unrelated, "#ff7f0e", "-.", 1.5, "Lucki: 'most' (> 0.5), 10 unrelated"),
    )
    for y, first, last, color, style, lw, label in anchors:
        ax.hlines(y, first - 0.45, last + 0.45, color=color, ls=style, lw=lw, label=label)
    ax.set_xticks(x, names, rotation=30, fontsize=7)
    ax.set(ylabel="accuracy after relearning / before unlearning", ylim=(0, 1.15))
    ax.set_title("recovered fraction (headline setting)")
    ax.legend(frameon=False, fontsize=6, ncol=2, loc="upper right")


def _trajectories(ax, res, seen, config: Config, spec, kinds) -> None:
    """Forget probability through relearning at the headline setting, per method; the
    seen-inputs control (`seen`) beside the never-learned one."""
    steps = spec.phase("relearn").record_steps
    names = [k.name for k in kinds]
    s = config.strengths.index(config.headline_strength)
    d = config.unlearn_depths.index(config.headline_depth)
    kind = f"forget_{max(config.forget_examples)}"
    for m, method in enumerate(config.methods):
        traj = res.valid("trajectory")[:, m, s, :, d]
        color = METHOD_COLORS[method]
        plotting.mean_band(ax, steps, traj[0, :, names.index(kind)], color=color, label=method)
        ax.plot(steps, np.nanmean(traj[1, :, names.index(kind)], 0), color=color, ls="--", lw=1)
        decoy = seen.valid("trajectory")[0, m, 0, :, d, names.index(kind)]
        ax.plot(steps, np.nanmean(decoy, 0), color=color, ls="-.", lw=1)
        unrelated = np.nanmean(traj[0, :, names.index("unrelated")], 0)
        ax.plot(steps, unrelated, color=color, ls=":", lw=1)
    pretrained = np.nanmean(res.valid("pretrained/forget_probability")[0])
    ax.axhline(pretrained, color="k", lw=0.8, label="theta_P")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(0, steps[-1])
    ax.set(xlabel="relearning step", ylabel="P(capability answer) on forget probes")
    ax.set_title(f"{kind}; never-learned --, saw inputs -., unrelated :", fontsize=8)
    ax.legend(frameon=False, fontsize=6.5)


def _half_steps(ax, numbers: dict, config: Config, kinds) -> None:
    """Median steps to half recovery per forget kind: unlearned against never-learned."""
    forget = [k.name for k in kinds if k.forget_share > 0]
    horizon = config.relearn_steps
    for i, method in enumerate(config.methods):
        x = np.arange(len(forget)) + (i - 1.5) * 0.08
        ours = _per_kind(numbers[method], forget, "steps_to_half_recovery", "median")
        control = _per_kind(numbers[method], forget, "steps_to_half_never_learned", "median")
        seen = [numbers[method]["seen_inputs_control"]["by_kind"][k] for k in forget]
        seen = [kind["steps_to_half"]["median"] for kind in seen]
        ax.plot(x, ours, "o-", color=METHOD_COLORS[method], label=method)
        ax.plot(x, control, "s--", color=METHOD_COLORS[method], mfc="white")
        ax.plot(x, seen, "^-.", color=METHOD_COLORS[method], mfc="white")
    ax.axhline(horizon, color="#999999", ls=":", lw=1)
    ax.text(0, horizon, f"censored: not reached in {horizon} steps", fontsize=6, va="bottom")
    ax.set_xticks(np.arange(len(forget)), forget, fontsize=7)
    ax.set(ylim=(0.8, horizon * 2.0), yscale="log", ylabel="median steps to half recovery")
    ax.set_title("unlearned o, never-learned s, saw inputs ^ (Jain: 0.1k-1k vs 4.5k)", fontsize=8)
    ax.legend(frameon=False, fontsize=6.5)


def _alignment(ax, numbers: dict, config: Config, kinds, null_p99: float) -> None:
    """Drift alignment with v_unlearn per kind (x: never-learned) and the isotropic null."""
    names = [k.name for k in kinds]
    x, field = np.arange(len(names)), "alignment_with_v_unlearn_step100"
    for i, method in enumerate(config.methods):
        mean, sd = (_per_kind(numbers[method], names, field, stat) for stat in ("mean", "sd"))
        control = _per_kind(numbers[method], names, "never_learned_alignment_step100")
        color, at = METHOD_COLORS[method], x + (i - 1.5) * 0.1
        ax.errorbar(at, mean, sd, fmt="o", color=color, ms=3, capsize=1.5, label=method)
        ax.plot(at, control, "x", color=color, ms=4)
    ax.axhline(null_p99, color="#999999", ls=":", label=f"isotropic null p99 ({null_p99:.3f})")
    ax.set_xticks(x, names, rotation=30, fontsize=7)
    ax.set(ylabel=f"cos(drift at step {config.drift_step}, v_unlearn)", ylim=(-0.3, 1.05))
    ax.set_title("drift toward theta_P (x: never-learned); 'unrelated' is the same-basis null")
    ax.legend(frameon=False, fontsize=6, ncol=5, loc="upper center")


def _depth(ax, numbers: dict, config: Config) -> None:
    """Recovered fraction against unlearning steps, per method and strength."""
    kind = f"forget_{config.forget_examples[len(config.forget_examples) // 2]}"
    depths, strengths = config.unlearn_depths, config.strengths
    for method in config.methods:
        fractions = {k: v["recovered_fraction"][kind] for k, v in numbers[method]["grid"].items()}
        for j, strength in enumerate(strengths):
            values = [fractions[f"strength={strength:g},steps={d}"] for d in depths]
            label = method if j == len(strengths) - 1 else None
            alpha = (j + 1) / len(strengths)
            ax.plot(depths, values, "o-", color=METHOD_COLORS[method], alpha=alpha, label=label)
    ax.set(xscale="log", xlabel="unlearning steps", ylabel=f"recovered fraction ({kind})")
    ax.set_title("depth: faint to dark = strength " + ", ".join(f"{s:g}" for s in strengths))
    ax.legend(frameon=False, fontsize=6.5)


def _anchor_lines(numbers: dict, config: Config) -> list[str]:
    """The anchors' values beside ours at the headline setting, per method."""
    big, lines = f"forget_{max(config.forget_examples)}", []
    for method in config.methods:
        k, capable = numbers[method]["by_kind"], "capability_relearned"
        steps = [capability.censored_median_text(k[big][f]) for f in STEPS_FIELDS]
        lines += [
            f"{method}:",
            f"  Deeb&Roger {big}: 0.88 | {k[big]['recovered_fraction']['mean']:.2f}, "
            f"{k[big]['never_learned_fraction']['mean']:.2f}",
            f"  Lucki unrelated: most | {k['unrelated']['recovered_fraction']['mean']:.2f}, "
            f"{k['unrelated']['never_learned_fraction']['mean']:.2f}",
            f"  Jain steps {big}: 0.1k-1k vs 4.5k | {steps[0]} vs {steps[1]}",
            f"  Dormant retain acc: 0.5->1.0 vs 0.5 | "
            f"{numbers[method]['capability_unlearned']['accuracy']['mean']:.2f}->"
            f"{k['retain'][capable]['accuracy']['mean']:.2f} vs "
            f"{k['retain']['never_learned_capability']['accuracy']['mean']:.2f}",
            _hidden_line(numbers[method]["seen_inputs_control"], big),
        ]
    return ["anchor | theirs | ours (headline), never-learned", *lines]


def _hidden_line(control: dict, kind: str) -> str:
    """The hidden-capability comparison of one method: unlearned - seen-inputs, paired."""
    advantage = control["by_kind"][kind]["advantage_of_unlearned"]
    low, high = advantage["interval"]
    return f"  hidden {kind}: acc - saw inputs {advantage['mean']:+.2f} [{low:+.2f}, {high:+.2f}]"


STEPS_FIELDS = ("steps_to_half_recovery", "steps_to_half_never_learned")


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    model = config.models[0]
    res, n = results[model], numbers[model]
    spec = history_spec(config, model, config.methods[0])
    kinds = capability.relearn_kinds(config.forget_examples, spec.world)
    fig, axes = plotting.figure(3, 2, width=5.0, height=3.8)
    _bars(axes[0, 0], n, config, kinds)
    _trajectories(axes[0, 1], res, results[seen_inputs_label(model)], config, spec, kinds)
    _half_steps(axes[0, 2], n, config, kinds)
    _alignment(axes[1, 0], n, config, kinds, n["isotropic_null_p99"])
    _depth(axes[1, 1], n, config)
    plotting.text_panel(axes[1, 2], _anchor_lines(n, config), fontsize=6, x=0, y=1)
    title = (
        f"Relearning after unlearning ({model}, {res.n_histories} unlearning histories, "
        f"{n['n_relearning_branches']} relearning branches)"
    )
    return plotting.save(fig, path, title)


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "unlearned capabilities return under relearning, against a never-learned model"
)
