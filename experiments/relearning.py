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

The capability (`gravity.capability`): in the feature world with `capability=True`, hazardous
inputs have their own answer rule (a second fixed teacher), which only hazardous examples teach.
The never-learned control is the same history in a world whose pretraining has no hazardous
inputs (`hazard_rate` 0; every other knob, phase, key and batch equal).

Histories (per seed and world): pretraining P (the standard 1,500 steps, hazard_rate 0.2, every
hazardous example answered by the capability: harm_prob 1) -> unlearning U (each method of
`gravity.objectives.UNLEARNING`: GradDiff, NPO, RMU, refusal training; each at strengths 0.03,
0.3, 1 and depths 25 and 100 steps) -> relearning R (100 steps, each kind: k = 1, 4, 16, 64
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
The transformer is not in the full run (the budget is 4 minutes on 2 cores; its step costs ~30x
the MLP's); `Config.models` takes it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from gravity import capability, geometry, history, plotting, presets, sweep
from gravity.experiment import Experiment
from gravity.models import network
from gravity.objectives import UNLEARNING, unlearning_data
from gravity.spec import PhaseSpec
from gravity.stats import mean_sd, spearman
from gravity.validation import check, check_one_of

NAME = "relearning"
WORLDS = ("capability", "never_learned")
MIN_GAP = 0.1
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
class RelearnKind:
    """A relearning data set as world knobs: share of fixed forget examples, how many (k), and
    the topic mix of the rest (`benign_overlap`: 1 related, 0 unrelated)."""

    name: str
    forget_share: float
    examples: int
    benign_overlap: float


def relearn_kinds(forget_examples: tuple[int, ...], n_topics: int) -> tuple[RelearnKind, ...]:
    forget = tuple(RelearnKind(f"forget_{k}", 1.0, k, 0.0) for k in forget_examples)
    return forget + (
        RelearnKind("related", 0.0, 1, 1.0),
        RelearnKind("unrelated", 0.0, 1, 0.0),
        RelearnKind("retain", 0.0, 1, 1.0 / n_topics),
    )


@dataclasses.dataclass(frozen=True)
class RelearningMeasure:
    """Per branch (a strength, from theta_P): unlearn once, then relearn every kind from every
    depth, vmapped; capability at P, at each theta_U and after relearning, the relearning
    trajectory of the forget probability, and the drift along v_unlearn at the relearning
    phase's snapshot (its end when it keeps none). `start`: the trunk after pretraining."""

    kinds: tuple[RelearnKind, ...]

    def kind_knobs(self, world_knobs):
        def one(kind):
            return dataclasses.replace(
                world_knobs,
                relearn_forget_share=jnp.float32(kind.forget_share),
                relearn_examples=jnp.int32(kind.examples),
                benign_overlap=jnp.float32(kind.benign_overlap),
            )

        return jax.tree.map(lambda *xs: jnp.stack(xs), *[one(k) for k in self.kinds])

    def __call__(self, key, spec, knobs, start=None) -> dict:
        net = network(spec.model, spec.world)
        state = history.branch_state(start, spec, knobs)
        probes = capability.capability_probes(spec.world, knobs.world, spec.n_probes)
        pretrained, acts_p = capability.capability(net, state.params, probes)
        state_u, out_u = history.run_phases(key, spec, state, knobs, (spec.phase("unlearn"),))
        snaps = out_u["snapshots"].get("unlearn")
        final = jax.tree.map(lambda a: a[None], state_u.params)
        depths = (
            final
            if snaps is None
            else jax.tree.map(lambda s, f: jnp.concatenate([s, f]), snaps, final)
        )
        kind_knobs = self.kind_knobs(knobs.world)

        def from_depth(theta_u):
            unlearned, acts_u = capability.capability(net, theta_u, probes)
            begin = dataclasses.replace(
                state_u, params=theta_u, boundaries={**state_u.boundaries, "unlearn": theta_u}
            )

            def relearn(world):
                return self.relearn(
                    key,
                    spec,
                    dataclasses.replace(knobs, world=world),
                    begin,
                    (net, probes, acts_p, acts_u),
                )

            return unlearned, jax.vmap(relearn)(kind_knobs)

        unlearned, relearned = jax.vmap(from_depth)(depths)
        finite = state_u.finite & jnp.all(relearned.pop("finite"))
        return {
            "pretrained": pretrained,
            "unlearned": unlearned,
            **relearned,
            "diverged": ~finite,
        }

    def relearn(self, key, spec, knobs, begin, context) -> dict:
        """One relearning from theta_U: capability at its end, the forget-probability
        trajectory, and the alignment of the drift at the snapshot with v_unlearn."""
        net, probes, acts_p, acts_u = context
        phase = spec.phase("relearn")
        end, out = history.run_phases(key, spec, begin, knobs, (phase,))
        snaps = out["snapshots"].get("relearn")
        at_drift = end.params if snaps is None else jax.tree.map(lambda s: s[0], snaps)
        relearned, _ = capability.capability(net, end.params, probes)
        _, acts_t = capability.capability(net, at_drift, probes)
        return {
            "relearned": relearned,
            "trajectory": out["metrics"]["relearn"]["harmfulness"],
            "alignment": capability.relearning_alignment(acts_t, acts_u, acts_p),
            "finite": end.finite,
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
    return dataclasses.replace(
        config,
        seeds=4,
        strengths=(config.headline_strength,),
        unlearn_depths=(config.headline_depth,),
        relearn_steps=100,
        drift_step=100,
    )


def history_spec(config: Config, model: str, method: str):
    """P (the preset's pretraining) -> U (`method`, snapshots at the shallower depths) -> R."""
    base = presets.standard_spec(model, config.size, keep_params=False)
    pretrain = base.phases[0]
    batch = pretrain.batch_size
    depths = config.unlearn_depths
    drift = (config.drift_step,) if config.drift_step < config.relearn_steps else ()
    phases = (
        pretrain,
        PhaseSpec(
            "unlearn",
            unlearning_data(method),
            depths[-1],
            batch,
            objective=method,
            n_records=2,
            snapshots=depths[:-1],
        ),
        PhaseSpec(
            "relearn",
            "relearn",
            config.relearn_steps,
            batch,
            dense_steps=16,
            n_records=8,
            snapshots=drift,
        ),
    )
    world = dataclasses.replace(base.world, capability=True)
    return dataclasses.replace(base, world=world, phases=phases)


def make_sweep(config: Config, model: str) -> sweep.Sweep:
    """Worlds vmapped, methods as programs, strengths branched after pretraining."""
    specs = {m: history_spec(config, model, m) for m in config.methods}
    world = specs[config.methods[0]].world
    check(
        max(config.forget_examples) <= world.forget_pool,
        "forget_examples",
        f"counts up to the world's forget pool ({world.forget_pool})",
        config.forget_examples,
    )
    kinds = relearn_kinds(config.forget_examples, world.n_topics)

    def build(world, method, strength):
        spec = specs[method]
        hazard_rate = config.hazard_rate if world == "capability" else 0.0
        knobs = presets.standard_knobs(
            spec, config.learning_rate, hazard_rate=hazard_rate, harm_prob=1.0
        )
        knobs = dataclasses.replace(knobs, objective_strength=strength)
        return spec, knobs.validate(spec)

    return sweep.Sweep(
        name=f"{model}-{config.size}",
        axes=(
            sweep.Axis("world", WORLDS, note="hazard_rate 0.2 vs 0 in pretraining (vmapped)"),
            sweep.Axis("method", tuple(config.methods), note="objective: one program each"),
        ),
        branches=(sweep.Axis("strength", tuple(config.strengths)),),
        branch_after="pretrain",
        seeds=config.seeds,
        build=build,
        measure=RelearningMeasure(kinds),
        max_chunk=config.max_chunk,
        version="1",
    )


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    return {model: make_sweep(config, model) for model in config.models}


def method_arrays(res: sweep.SweepResult, method_index: int) -> dict[str, np.ndarray]:
    """One method's outputs, shaped (world, strength, seed, ...), diverged runs as NaN."""
    return {name: res.valid(name)[:, method_index] for name in res.arrays if name != "diverged"}


def kind_numbers(a, steps, s: int, d: int, k: int, unrelated: int) -> dict:
    """The headline numbers of one relearning kind at strength index s and depth index d."""
    acc_p, prob_p = a["pretrained/forget_accuracy"][0, s], a["pretrained/forget_probability"][0, s]
    acc_u, prob_u = (
        a["unlearned/forget_accuracy"][0, s, :, d],
        a["unlearned/forget_probability"][0, s, :, d],
    )
    acc_gap = np.where(acc_p - acc_u >= MIN_GAP, acc_p - acc_u, np.nan)
    acc_r = a["relearned/forget_accuracy"][:, s, :, d, k]
    prob_r = a["relearned/forget_probability"][:, s, :, d, k]
    gap = prob_p - prob_u
    threshold = np.where(gap >= MIN_GAP, (prob_p + prob_u) / 2, np.nan)
    trajectory = a["trajectory"][:, s, :, d, k]
    half = [capability.first_crossing(trajectory[w], steps, threshold) for w in (0, 1)]
    alignment = a["alignment"][:, s, :, d, k]
    null = a["alignment"][0, s, :, d, unrelated]
    advantage = acc_r[0] - acc_r[1]
    return {
        "capability_relearned": {"accuracy": mean_sd(acc_r[0]), "probability": mean_sd(prob_r[0])},
        "recovered_fraction": mean_sd(acc_r[0] / acc_p),
        "never_learned_capability": {
            "accuracy": mean_sd(acc_r[1]),
            "probability": mean_sd(prob_r[1]),
        },
        "never_learned_fraction": mean_sd(acc_r[1] / acc_p),
        "recovered_gap_fraction": mean_sd((acc_r[0] - acc_u) / acc_gap),
        "never_learned_gap_fraction": mean_sd((acc_r[1] - acc_u) / acc_gap),
        "advantage_over_never_learned": {**mean_sd(advantage), "wilcoxon_p": wilcoxon(advantage)},
        "retain_accuracy_relearned": mean_sd(a["relearned/retain_accuracy"][0, s, :, d, k]),
        "steps_to_half_recovery": capability.censored_median(half[0], steps[-1]),
        "steps_to_half_never_learned": capability.censored_median(half[1], steps[-1]),
        "alignment_with_v_unlearn_step100": mean_sd(alignment[0]),
        "alignment_minus_unrelated_null": mean_sd(alignment[0] - null),
        "never_learned_alignment_step100": mean_sd(alignment[1]),
    }


def wilcoxon(differences) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences (NaN if too few or all zero)."""
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d) & (d != 0)]
    if d.size < 5:
        return float("nan")
    return float(scipy.stats.wilcoxon(d).pvalue)


def setting_numbers(a, steps, kinds, s: int, d: int) -> dict:
    """Everything reported for one (strength, depth) setting of one method."""
    names = [kind.name for kind in kinds]
    unrelated = names.index("unrelated")
    return {
        "capability_pretrained": {
            "accuracy": mean_sd(a["pretrained/forget_accuracy"][0, s]),
            "probability": mean_sd(a["pretrained/forget_probability"][0, s]),
        },
        "capability_unlearned": {
            "accuracy": mean_sd(a["unlearned/forget_accuracy"][0, s, :, d]),
            "probability": mean_sd(a["unlearned/forget_probability"][0, s, :, d]),
        },
        "never_learned_capability_pretrained": mean_sd(a["pretrained/forget_accuracy"][1, s]),
        "never_learned_capability_unlearned": mean_sd(a["unlearned/forget_accuracy"][1, s, :, d]),
        "retain_accuracy_pretrained": mean_sd(a["pretrained/retain_accuracy"][0, s]),
        "retain_accuracy_unlearned": mean_sd(a["unlearned/retain_accuracy"][0, s, :, d]),
        "related_accuracy_unlearned": mean_sd(a["unlearned/related_accuracy"][0, s, :, d]),
        "by_kind": {
            name: kind_numbers(a, steps, s, d, k, unrelated) for k, name in enumerate(names)
        },
    }


def depth_trends(a, config: Config, kinds) -> dict:
    """Does depth buy time? Spearman of the recovered fraction with unlearning steps and with
    strength over runs (capability world), per kind."""
    acc_p = a["pretrained/forget_accuracy"][0][:, :, None]
    fraction = a["relearned/forget_accuracy"][0] / acc_p[..., None]
    shape = fraction.shape[:-1]
    depth = np.broadcast_to(np.asarray(config.unlearn_depths)[None, None, :], shape)
    strength = np.broadcast_to(np.asarray(config.strengths)[:, None, None], shape)
    return {
        kind.name: {
            "spearman_steps": spearman(depth, fraction[..., k]),
            "spearman_strength": spearman(strength, fraction[..., k]),
        }
        for k, kind in enumerate(kinds)
    }


def grid_numbers(a, steps, config: Config, kinds) -> dict:
    """Compact per-(strength, depth) means: unlearned capability, retain accuracy, and per kind
    the recovered fraction and the median steps to half recovery (unlearned, never-learned)."""
    grid = {}
    for s, strength in enumerate(config.strengths):
        for d, depth in enumerate(config.unlearn_depths):
            full = setting_numbers(a, steps, kinds, s, d)
            grid[f"strength={strength:g},steps={depth}"] = {
                "capability_unlearned": full["capability_unlearned"]["accuracy"]["mean"],
                "retain_accuracy_unlearned": full["retain_accuracy_unlearned"]["mean"],
                "recovered_fraction": {
                    n: v["recovered_fraction"]["mean"] for n, v in full["by_kind"].items()
                },
                "steps_to_half_recovery": {
                    n: v["steps_to_half_recovery"]["median"] for n, v in full["by_kind"].items()
                },
                "steps_to_half_never_learned": {
                    n: v["steps_to_half_never_learned"]["median"]
                    for n, v in full["by_kind"].items()
                },
            }
    return grid


def activation_size(spec) -> int:
    """N * D: the number of coordinates a drift on the forget probes has."""
    net = network(spec.model, spec.world)
    inputs = spec.world.probe_set(presets.standard_knobs(spec).world, spec.n_probes).hazard.inputs
    shape = jax.eval_shape(lambda: net.activations(net.init(jax.random.key(0)), inputs)).shape
    return int(np.prod(shape))


def summarise_model(res: sweep.SweepResult, config: Config, model: str) -> dict:
    spec = history_spec(config, model, config.methods[0])
    steps = spec.phase("relearn").record_steps
    kinds = relearn_kinds(config.forget_examples, spec.world.n_topics)
    s, d = (
        config.strengths.index(config.headline_strength),
        config.unlearn_depths.index(config.headline_depth),
    )
    out = {
        "headline": {"strength": config.headline_strength, "unlearn_steps": config.headline_depth},
        "isotropic_null_p99": geometry.isotropic_null_quantile(activation_size(spec)),
        "relearn_steps": config.relearn_steps,
        "n_histories": res.n_histories,
        "n_relearning_branches": res.n_histories * len(config.unlearn_depths) * len(kinds),
        "wall_s": res.info.get("wall_s"),
        "diverged_runs": res.diverged_runs,
    }
    for m, method in enumerate(config.methods):
        a = method_arrays(res, m)
        out[method] = {
            **setting_numbers(a, steps, kinds, s, d),
            "n_histories": int(res.diverged[:, m].size),
            "grid": grid_numbers(a, steps, config, kinds),
            "depth_trends": depth_trends(a, config, kinds),
        }
    out["resistance_ranking"] = resistance_ranking(out, config, kinds)
    return out


def resistance_ranking(out: dict, config: Config, kinds) -> list[dict]:
    """Methods ordered by the mean recovered fraction over the forget kinds at the headline
    setting (lowest first: most resistant), with the unrelated-data recovery beside it."""
    forget = [k.name for k in kinds if k.forget_share > 0]
    rows = []
    for method in config.methods:
        by_kind = out[method]["by_kind"]
        rows.append(
            {
                "method": method,
                "recovered_fraction_forget_mean": float(
                    np.mean([by_kind[k]["recovered_fraction"]["mean"] for k in forget])
                ),
                "recovered_fraction_unrelated": by_kind["unrelated"]["recovered_fraction"]["mean"],
            }
        )
    return sorted(rows, key=lambda r: r["recovered_fraction_forget_mean"])


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    numbers = {model: summarise_model(res, config, model) for model, res in results.items()}
    numbers["anchors"] = ANCHORS
    return numbers


METHOD_COLORS = {"graddiff": "#d62728", "npo": "#1f77b4", "rmu": "#2ca02c", "refusal": "#9467bd"}


def _bars(ax, numbers: dict, config: Config, kinds) -> None:
    """Recovered fraction per kind and method; never-learned beside it (hatched)."""
    names = [k.name for k in kinds]
    x = np.arange(len(names))
    width = 0.8 / len(config.methods)
    for i, method in enumerate(config.methods):
        by_kind = numbers[method]["by_kind"]
        offset = x - 0.4 + (i + 0.5) * width
        ours = [by_kind[n]["recovered_fraction"]["mean"] for n in names]
        errors = [by_kind[n]["recovered_fraction"]["sd"] for n in names]
        control = [by_kind[n]["never_learned_fraction"]["mean"] for n in names]
        color = METHOD_COLORS.get(method, f"C{i}")
        ax.bar(offset, ours, width, yerr=errors, color=color, label=method, capsize=1.5)
        ax.bar(
            offset,
            control,
            width * 0.5,
            color="white",
            edgecolor="k",
            hatch="///",
            lw=0.5,
            label="never-learned, same relearning" if i == 0 else None,
        )
    forget = [i for i, k in enumerate(kinds) if k.forget_share > 0]
    retain, unrelated = names.index("retain"), names.index("unrelated")
    anchors = (
        (0.88, forget[0], forget[-1], "k", "--", 1, "Deeb & Roger: 0.88 (accessible facts)"),
        (1.0, retain, retain, "#8c564b", ":", 1.5, "Dormant to Deleted: ~1.0 (retain only)"),
        (0.5, unrelated, unrelated, "#ff7f0e", "-.", 1.5, "Lucki: 'most' (> 0.5), 10 unrelated"),
    )
    for y, first, last, color, style, width, label in anchors:
        ax.hlines(y, first - 0.45, last + 0.45, color=color, ls=style, lw=width, label=label)
    ax.set_xticks(x, names, rotation=30, fontsize=7)
    ax.set(
        ylabel="accuracy after relearning / before unlearning",
        ylim=(0, 1.15),
        title="recovered fraction (headline setting)",
    )
    ax.legend(frameon=False, fontsize=6, ncol=2, loc="upper right")


def _trajectories(ax, res, config: Config, spec, kinds) -> None:
    steps = spec.phase("relearn").record_steps
    names = [k.name for k in kinds]
    s = config.strengths.index(config.headline_strength)
    d = config.unlearn_depths.index(config.headline_depth)
    kind = f"forget_{max(config.forget_examples)}"
    for m, method in enumerate(config.methods):
        traj = res.valid("trajectory")[:, m, s, :, d]
        color = METHOD_COLORS.get(method, f"C{m}")
        plotting.mean_band(ax, steps, traj[0, :, names.index(kind)], color=color, label=method)
        ax.plot(steps, np.nanmean(traj[1, :, names.index(kind)], 0), color=color, ls="--", lw=1)
        ax.plot(
            steps, np.nanmean(traj[0, :, names.index("unrelated")], 0), color=color, ls=":", lw=1
        )
    pretrained = np.nanmean(res.valid("pretrained/forget_probability")[0])
    ax.axhline(pretrained, color="k", lw=0.8, label="theta_P")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(0, steps[-1])
    ax.set(
        xlabel="relearning step",
        ylabel="P(capability answer) on forget probes",
        title=f"{kind} (solid), never-learned (dashed), unrelated (dotted)",
    )
    ax.legend(frameon=False, fontsize=6.5)


def _half_steps(ax, numbers: dict, config: Config, kinds) -> None:
    forget = [k.name for k in kinds if k.forget_share > 0]
    horizon = config.relearn_steps
    for i, method in enumerate(config.methods):
        by_kind = numbers[method]["by_kind"]
        color = METHOD_COLORS.get(method, f"C{i}")
        x = np.arange(len(forget)) + (i - 1.5) * 0.08
        ours = [by_kind[n]["steps_to_half_recovery"]["median"] for n in forget]
        control = [by_kind[n]["steps_to_half_never_learned"]["median"] for n in forget]
        ax.plot(x, ours, "o-", color=color, label=method)
        ax.plot(x, control, "s--", color=color, mfc="white")
    ax.axhline(horizon, color="#999999", ls=":", lw=1)
    ax.text(0, horizon, f"censored: not reached in {horizon} steps", fontsize=6, va="bottom")
    ax.set_xticks(np.arange(len(forget)), forget, fontsize=7)
    ax.set_ylim(0.8, horizon * 2.0)
    ax.set_yscale("log")
    ax.set(
        ylabel="median steps to half recovery",
        title="unlearned (o) vs never-learned (s); Jain: 0.1k-1k vs 4.5k",
    )
    ax.legend(frameon=False, fontsize=6.5)


def _alignment(ax, numbers: dict, config: Config, kinds, null_p99: float) -> None:
    names = [k.name for k in kinds]
    x = np.arange(len(names))
    for i, method in enumerate(config.methods):
        by_kind = numbers[method]["by_kind"]
        color = METHOD_COLORS.get(method, f"C{i}")
        mean = [by_kind[n]["alignment_with_v_unlearn_step100"]["mean"] for n in names]
        sd = [by_kind[n]["alignment_with_v_unlearn_step100"]["sd"] for n in names]
        control = [by_kind[n]["never_learned_alignment_step100"]["mean"] for n in names]
        ax.errorbar(
            x + (i - 1.5) * 0.1, mean, sd, fmt="o", color=color, ms=3, capsize=1.5, label=method
        )
        ax.plot(x + (i - 1.5) * 0.1, control, "x", color=color, ms=4)
    ax.axhline(null_p99, color="#999999", ls=":", label=f"isotropic null p99 ({null_p99:.3f})")
    ax.set_xticks(x, names, rotation=30, fontsize=7)
    ax.set(
        ylabel=f"cos(drift at step {config.drift_step}, v_unlearn)",
        ylim=(-0.3, 1.05),
        title="drift toward theta_P (x: never-learned); 'unrelated' is the same-basis null",
    )
    ax.legend(frameon=False, fontsize=6, ncol=5, loc="upper center")


def _depth(ax, numbers: dict, config: Config) -> None:
    kind = f"forget_{config.forget_examples[len(config.forget_examples) // 2]}"
    for i, method in enumerate(config.methods):
        grid = numbers[method]["grid"]
        color = METHOD_COLORS.get(method, f"C{i}")
        for j, strength in enumerate(config.strengths):
            values = [
                grid[f"strength={strength:g},steps={d}"]["recovered_fraction"][kind]
                for d in config.unlearn_depths
            ]
            ax.plot(
                config.unlearn_depths,
                values,
                "o-",
                color=color,
                alpha=(j + 1) / len(config.strengths),
                label=method if j == len(config.strengths) - 1 else None,
            )
    ax.set_xscale("log")
    ax.set(
        xlabel="unlearning steps",
        ylabel=f"recovered fraction ({kind})",
        title="depth: faint to dark = strength " + ", ".join(f"{s:g}" for s in config.strengths),
    )
    ax.legend(frameon=False, fontsize=6.5)


def _anchor_table(ax, numbers: dict, config: Config) -> None:
    big = f"forget_{max(config.forget_examples)}"
    lines = ["anchor | theirs | ours (headline), never-learned"]
    for method in config.methods:
        k = numbers[method]["by_kind"]
        lines += [
            f"{method}:",
            f"  Deeb&Roger {big}: 0.88 | {k[big]['recovered_fraction']['mean']:.2f}, "
            f"{k[big]['never_learned_fraction']['mean']:.2f}",
            f"  Lucki unrelated: most | {k['unrelated']['recovered_fraction']['mean']:.2f}, "
            f"{k['unrelated']['never_learned_fraction']['mean']:.2f}",
            f"  Jain steps {big}: 0.1k-1k vs 4.5k | "
            f"{_steps(k[big]['steps_to_half_recovery'])} vs "
            f"{_steps(k[big]['steps_to_half_never_learned'])}",
            f"  Dormant retain acc: 0.5->1.0 vs 0.5 | "
            f"{numbers[method]['capability_unlearned']['accuracy']['mean']:.2f}->"
            f"{k['retain']['capability_relearned']['accuracy']['mean']:.2f} vs "
            f"{k['retain']['never_learned_capability']['accuracy']['mean']:.2f}",
        ]
    ax.axis("off")
    ax.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=6)


def _steps(stats: dict) -> str:
    return f">{stats['median']:.0f}" if stats["censored"] else f"{stats['median']:.0f}"


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    model = config.models[0]
    res, n = results[model], numbers[model]
    spec = history_spec(config, model, config.methods[0])
    kinds = relearn_kinds(config.forget_examples, spec.world.n_topics)
    fig, axes = plotting.figure(3, 2, width=5.0, height=3.8)
    _bars(axes[0, 0], n, config, kinds)
    _trajectories(axes[0, 1], res, config, spec, kinds)
    _half_steps(axes[0, 2], n, config, kinds)
    _alignment(axes[1, 0], n, config, kinds, n["isotropic_null_p99"])
    _depth(axes[1, 1], n, config)
    _anchor_table(axes[1, 2], n, config)
    title = (
        f"Relearning after unlearning ({model}, {res.n_histories} unlearning histories, "
        f"{n['n_relearning_branches']} relearning branches)"
    )
    return plotting.save(fig, path, title)


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "unlearned capabilities return under relearning, against a never-learned model"
)
