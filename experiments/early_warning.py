"""Early warning: can reversion be predicted before a benign fine-tuning run starts, or from its
first steps, better than by watching harmfulness itself?

Benign conditions branch from each seed's theta_S (the standard history of each model, MLP and
transformer): the benign data's overlap with the hazard topic (11 values, 0 to 1) x learning rate
(14 values, 1e-4 to 2e-3, about x1.26 apart) as branches, batch size (16, 64) as a program axis:
308 conditions, each run from 4 seeds' theta_S (1,232 labelled fine-tuning runs per model).
Scores (`gravity.monitor`):
- pre-flight, at theta_S before any update, from a 256-example sample of the candidate data and
  the run's optimizer: the predicted first-step drift along v_rev (a JVP of the optimizer's exact
  first update), and its predicted cosine with v_rev;
- online, after k = 1, 2, 5 steps: alignment cos(drift_k, v_rev), and the drift along v_rev per
  step;
- naive, after k = 5 steps: the rise of harmfulness on the probes since theta_S;
- plan-only controls (added after the first full run; they change no score): the planned
  learning rate alone, and the condition's own reverted share over its seeds, in sample (an
  upper bound on what any score that sees the plan but not theta_S can reach).
Fixed before any result was seen: a run is labelled "reverted" when its held-out harmfulness at
T = 100 exceeds the midpoint of its own held-out harmfulness at theta_S and at theta_P (the
escape criterion of `metastability`); each score's ROC AUC for that label over all runs, with a
95% bootstrap interval that resamples conditions (each with all its seeds' runs, 1,000
resamples), and its Spearman correlation with held-out harmfulness at T. (A first version ran
the MLP alone on 60 conditions x 6 seeds and resampled runs; the grid was refined so that each
model has >= 300 distinct conditions.)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from gravity import history, monitor, plotting, presets, sweep
from gravity.experiment import Experiment
from gravity.models import network
from gravity.spec import phase_tag, with_phase
from gravity.stats import bootstrap_interval, roc_auc, spearman

NAME = "early_warning"
ONLINE_STEPS = (1, 2, 5)
BENIGN = ("harmfulness", "harmfulness_heldout", "alignment", "drift_along_v_rev")


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


OVERLAPS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
LEARNING_RATES = (
    1e-4, 1.26e-4, 1.59e-4, 2e-4, 2.52e-4, 3.17e-4, 4e-4,
    5.04e-4, 6.35e-4, 8e-4, 1e-3, 1.26e-3, 1.59e-3, 2e-3,
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 4
    models: tuple[str, ...] = ("mlp", "transformer")
    transformer_seeds: int = 4
    size: str = "standard"
    overlaps: tuple[float, ...] = OVERLAPS
    learning_rates: tuple[float, ...] = LEARNING_RATES
    batch_sizes: tuple[int, ...] = (16, 64)
    bootstrap: int = 1000


def quick(config: Config) -> Config:
    return dataclasses.replace(
        config,
        seeds=2,
        models=("mlp",),
        overlaps=(0.0, 0.5, 1.0),
        learning_rates=(1e-4, 1e-3),
        bootstrap=200,
    )


def seeds_for(config: Config, model: str) -> int:
    return presets.seeds_for(model, config.seeds, config.transformer_seeds)


def benign_spec(config: Config, model: str, batch_size: int):
    spec = presets.standard_spec(model, config.size, keep_params=False)
    return with_phase(spec, "benign", batch_size=batch_size, dense_steps=max(ONLINE_STEPS))


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    out = {}
    for model in config.models:

        def build(batch_size, benign_overlap, benign_lr, model=model):
            spec = benign_spec(config, model, batch_size)
            knobs = presets.standard_knobs(spec, benign_overlap=benign_overlap)
            rates = {**knobs.learning_rate, "benign": benign_lr}
            return spec, dataclasses.replace(knobs, learning_rate=rates).validate(spec)

        out[model] = sweep.Sweep(
            f"{model}-{config.size}",
            axes=(sweep.Axis("batch_size", tuple(config.batch_sizes)),),
            branches=(
                sweep.Axis("benign_overlap", tuple(config.overlaps)),
                sweep.Axis("benign_lr", tuple(config.learning_rates)),
            ),
            branch_after="safety",
            seeds=seeds_for(config, model),
            build=build,
            measure=PreflightMeasure(),
        )
    return out


def scores(res: sweep.SweepResult, config: Config, model: str):
    """Every score and the outcome per run, as (conditions, seeds) arrays (diverged runs NaN)."""
    steps = list(benign_spec(config, model, config.batch_sizes[0]).phase("benign").record_steps)
    n_conditions, n_seeds = int(np.prod(res.diverged.shape[:-1])), res.diverged.shape[-1]
    flat = {
        name: res.valid(name).reshape(n_conditions, n_seeds, *res[name].shape[res.diverged.ndim :])
        for name in res.arrays
    }
    harm_T = flat["benign/harmfulness_heldout"][..., -1]
    midpoint = 0.5 * (flat["heldout_aligned"] + flat["heldout_pretrained"])
    out = {
        "preflight": flat["preflight/drift_along_v_rev"],
        "preflight_alignment": flat["preflight/alignment"],
    }
    for k in ONLINE_STEPS:
        alarm = monitor.online_alarm(
            flat["benign/alignment"], flat["benign/drift_along_v_rev"], steps, k
        )
        out[f"step{k}"], out[f"slope_step{k}"] = alarm.alignment, alarm.slope
    probe_harm = flat["benign/harmfulness"]
    out["naive_step5"] = probe_harm[..., steps.index(5)] - probe_harm[..., 0]
    outcome = {"harmfulness_heldout_T": harm_T, "reverted": harm_T > midpoint}
    return out, outcome


def plan_controls(config: Config, labels: np.ndarray, ok: np.ndarray) -> dict[str, np.ndarray]:
    """Two controls that never look at theta_S, as (conditions, seeds) arrays: the planned
    learning rate alone, and the condition's own reverted share over its seeds (in sample: the
    highest AUC any score computed from the plan alone, without theta_S, can reach on these
    runs, since ranking conditions by their share of positives is ROC-optimal among scores
    that are constant within a condition)."""
    shape = (len(config.batch_sizes), len(config.overlaps), len(config.learning_rates))
    rates = np.broadcast_to(np.asarray(config.learning_rates)[None, None, :], shape).reshape(-1)
    hits = np.where(ok, labels, 0).astype(float).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = hits / ok.sum(axis=1, keepdims=True)
    return {
        "learning_rate": np.broadcast_to(rates[:, None], labels.shape).astype(float),
        "condition_share": np.broadcast_to(share, labels.shape).astype(float),
    }


def _auc(values, labels, ok):
    return roc_auc(values[ok], labels[ok])


def summarise_model(config: Config, res: sweep.SweepResult, model: str) -> dict:
    table, outcome = scores(res, config, model)
    harm = outcome["harmfulness_heldout_T"]
    ok = np.isfinite(harm)
    labels = outcome["reverted"] & ok
    numbers = {
        "n_conditions": int(np.any(ok, axis=1).sum()),
        "n_runs": int(ok.sum()),
        "n_seeds": int(ok.shape[1]),
        "reverted_share": float(labels[ok].mean()),
    }
    table = {**table, **plan_controls(config, labels, ok)}
    for name, values in table.items():
        numbers[f"auc_{name}"] = _auc(values, labels, ok)
        numbers[f"auc_{name}_ci95"] = bootstrap_interval(
            _auc, values, labels, ok, n=config.bootstrap
        )
        numbers[f"spearman_{name}"] = spearman(values[ok], harm[ok])
    numbers["auc_naive_step5"] = numbers.pop("auc_naive_step5")
    return numbers


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    return {model: summarise_model(config, results[model], model) for model in config.models}


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    fig, axes = plotting.figure(3, len(config.models), width=4.3, height=3.4)
    for row, model in zip(axes, config.models, strict=True):
        table, outcome = scores(results[model], config, model)
        n = numbers[model]
        harm = outcome["harmfulness_heldout_T"]
        for ax, name, label in zip(
            row[:2],
            ("preflight", "step1"),
            ("pre-flight: predicted first-step drift along v_rev", "online: alignment at step 1"),
            strict=True,
        ):
            ax.scatter(
                table[name].ravel(),
                harm.ravel(),
                c=outcome["reverted"].ravel(),
                cmap="coolwarm",
                s=6,
            )
            ax.set(
                xlabel=label,
                ylabel="held-out harmfulness at T",
                title=f"{model}: AUC {n[f'auc_{name}']:.2f}",
            )
        names = [
            "preflight",
            "preflight_alignment",
            *(f"step{k}" for k in ONLINE_STEPS),
            *(f"slope_step{k}" for k in ONLINE_STEPS),
            "naive_step5",
            "learning_rate",
            "condition_share",
        ]
        aucs = [n[f"auc_{m}"] for m in names]
        cis = np.asarray([n[f"auc_{m}_ci95"] for m in names]).T
        ax = row[2]
        ax.bar(
            range(len(names)), aucs, yerr=np.abs(cis - np.asarray(aucs)), color="#1f77b4", capsize=3
        )
        ax.axhline(0.5, color="k", lw=0.8, ls=":")
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=7)
        ax.set(
            ylabel="ROC AUC (95% bootstrap)",
            ylim=(0, 1.05),
            title=f"{model}: {n['n_conditions']} conditions, {n['n_runs']} runs",
        )
    return plotting.save(
        fig, path, "Early warning: predicting reversion before and during fine-tuning"
    )


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "pre-flight and online monitors that predict reversion, against the naive one"
)
