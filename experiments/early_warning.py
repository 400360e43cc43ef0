"""Early warning: can reversion be predicted before a benign fine-tuning run starts, or from its
first steps, better than by watching harmfulness itself?

Benign conditions branch from each seed's theta_S (standard MLP history): the benign data's
overlap with the hazard topic (6 values) x learning rate (5) as branches, batch size (2) as a
program axis: 60 conditions x 6 seeds = 360 labelled fine-tuning runs. Scores (`gravity.monitor`):
- pre-flight, at theta_S before any update, from a 256-example sample of the candidate data and
  the run's optimizer: the predicted first-step drift along v_rev (a JVP of the optimizer's exact
  first update), and its predicted cosine with v_rev;
- online, after k = 1, 2, 5 steps: alignment cos(drift_k, v_rev), and the drift along v_rev per
  step;
- naive, after k = 5 steps: the rise of harmfulness on the probes since theta_S.
Fixed before any result was seen: a run is labelled "reverted" when its held-out harmfulness at
T = 100 exceeds the midpoint of its own held-out harmfulness at theta_S and at theta_P (the
escape criterion of `metastability`); each score's ROC AUC for that label with a 95% bootstrap
interval (1,000 resamples of runs), and its Spearman correlation with held-out harmfulness at T.
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
            phase.optimizer, knobs.learning_rate["benign"], knobs.weight_decay
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


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 6
    size: str = "standard"
    overlaps: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
    learning_rates: tuple[float, ...] = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3)
    batch_sizes: tuple[int, ...] = (16, 64)
    bootstrap: int = 1000


def quick(config: Config) -> Config:
    return dataclasses.replace(
        config, seeds=2, overlaps=(0.0, 0.5, 1.0), learning_rates=(1e-4, 1e-3), bootstrap=200
    )


def benign_spec(config: Config, batch_size: int):
    spec = presets.standard_spec("mlp", config.size, keep_params=False)
    return with_phase(spec, "benign", batch_size=batch_size, dense_steps=max(ONLINE_STEPS))


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    def build(batch_size, benign_overlap, benign_lr):
        spec = benign_spec(config, batch_size)
        knobs = presets.standard_knobs(spec, benign_overlap=benign_overlap)
        rates = {**knobs.learning_rate, "benign": benign_lr}
        return spec, dataclasses.replace(knobs, learning_rate=rates).validate(spec)

    return {
        "mlp": sweep.Sweep(
            f"mlp-{config.size}",
            axes=(sweep.Axis("batch_size", tuple(config.batch_sizes)),),
            branches=(
                sweep.Axis("benign_overlap", tuple(config.overlaps)),
                sweep.Axis("benign_lr", tuple(config.learning_rates)),
            ),
            branch_after="safety",
            seeds=config.seeds,
            build=build,
            measure=PreflightMeasure(),
        )
    }


def scores(res: sweep.SweepResult, config: Config) -> tuple[dict[str, np.ndarray], dict]:
    """Every score and the outcome per run, flattened over conditions and seeds."""
    steps = list(benign_spec(config, config.batch_sizes[0]).phase("benign").record_steps)
    flat = {
        name: res.valid(name).reshape(-1, *res[name].shape[res.diverged.ndim :])
        for name in res.arrays
    }
    harm_T = flat["benign/harmfulness_heldout"][:, -1]
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
    out["naive_step5"] = probe_harm[:, steps.index(5)] - probe_harm[:, 0]
    outcome = {"harmfulness_heldout_T": harm_T, "reverted": harm_T > midpoint}
    return out, outcome


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    res = results["mlp"]
    table, outcome = scores(res, config)
    ok = np.isfinite(outcome["harmfulness_heldout_T"])
    labels, harm = outcome["reverted"][ok], outcome["harmfulness_heldout_T"][ok]
    numbers = {"n_conditions": int(ok.sum()), "reverted_share": float(labels.mean())}
    for name, values in table.items():
        v = values[ok]
        numbers[f"auc_{name}"] = roc_auc(v, labels)
        numbers[f"auc_{name}_ci95"] = bootstrap_interval(roc_auc, v, labels, n=config.bootstrap)
        numbers[f"spearman_{name}"] = spearman(v, harm)
    numbers["auc_naive_step5"] = numbers.pop("auc_naive_step5")
    return {"mlp": numbers}


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    table, outcome = scores(results["mlp"], config)
    n = numbers["mlp"]
    fig, axes = plotting.figure(3, 1, width=4.3, height=3.4)
    harm = outcome["harmfulness_heldout_T"]
    for ax, name, label in zip(
        axes[0][:2],
        ("preflight", "step1"),
        ("pre-flight: predicted first-step drift along v_rev", "online: alignment at step 1"),
        strict=True,
    ):
        ax.scatter(table[name], harm, c=outcome["reverted"], cmap="coolwarm", s=8)
        ax.set(
            xlabel=label, ylabel="held-out harmfulness at T", title=f"AUC {n[f'auc_{name}']:.2f}"
        )
    names = ["preflight", "preflight_alignment", *(f"step{k}" for k in ONLINE_STEPS), "naive_step5"]
    aucs = [n[f"auc_{m}"] for m in names]
    cis = np.asarray([n[f"auc_{m}_ci95"] for m in names]).T
    ax = axes[0][2]
    ax.bar(range(len(names)), aucs, yerr=np.abs(cis - np.asarray(aucs)), color="#1f77b4", capsize=3)
    ax.axhline(0.5, color="k", lw=0.8, ls=":")
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=7)
    ax.set(ylabel="ROC AUC (95% bootstrap)", ylim=(0, 1.05), title=f"{n['n_conditions']} runs")
    return plotting.save(
        fig, path, "Early warning: predicting reversion before and during fine-tuning"
    )


EXPERIMENT = Experiment(
    name=NAME,
    description="pre-flight and online monitors that predict reversion, against the naive one",
    config=Config,
    quick=quick,
    sweeps=sweeps,
    summarise=summarise,
    plot=plot,
)
