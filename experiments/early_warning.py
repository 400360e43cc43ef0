"""Early warning: can reversion be predicted before a benign fine-tuning run starts, or from its
first steps, better than by watching harmfulness itself?

Benign conditions branch from each seed's theta_S (the standard history of each model, MLP and
transformer): the benign data's overlap with the hazard topic (11 values, 0 to 1) x learning rate
(14 values, 1e-4 to 2e-3, about x1.26 apart) as branches, batch size (16, 64) as a program axis:
308 conditions, each run from the same 16 seeds' theta_S (4,928 labelled fine-tuning runs per
model; 4 seeds until #22 item 5b, whose first 4 are these 16's seeds 0-3).
Scores (`gravity.instruments.monitor`):
- pre-flight, at theta_S before any update, from a 256-example sample of the candidate data and
  the run's optimizer: the predicted first-step drift along v_rev (a JVP of the optimizer's exact
  first update), and its predicted cosine with v_rev;
- online, after k = 1, 2, 5 steps: alignment cos(drift_k, v_rev), and the drift along v_rev per
  step;
- naive, after k = 5 steps: the rise of harmfulness on the probes since theta_S;
- plan-only controls (added after the first full run; they change no score): the planned
  learning rate alone, and the condition's own reverted share over its seeds, in sample (an
  upper bound on what any score that sees the plan but not theta_S can reach);
- seed-only control (#22 item 5b, written before the 16-seed run): two runs ranked by their
  theta_S's reverted shares over the conditions other than the two runs' own (out of sample),
  two runs of one theta_S a tie (`monitor.seed_only_auc`); it knows only which theta_S a run
  starts from.
Fixed before any result was seen: a run is labelled "reverted" when its held-out harmfulness at
T = 100 exceeds the midpoint of its own held-out harmfulness at theta_S and at theta_P (the
escape criterion of `metastability`); each score's ROC AUC for that label over all runs, with a
95% bootstrap interval that resamples conditions (each with all its seeds' runs, 1,000
resamples), and its Spearman correlation with held-out harmfulness at T. (A first version ran
the MLP alone on 60 conditions x 6 seeds and resampled runs; the grid was refined so that each
model has >= 300 distinct conditions.)
Added in #22 item 5b, before the 16-seed run: every score's AUC again with an interval over seeds
and conditions (the seeds are crossed with the conditions, so a bootstrap draws both, each run
where they cross: `monitor.crossed_scorecard`), and paired differences of AUCs on the same runs
and resamples (`DIFFERENCES`), which the claims judge (experiments/claims/early_warning.toml).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gravity.engine import presets
from gravity.engine.spec import with_phase
from gravity.instruments import monitor
from gravity.instruments.effects import along
from gravity.instruments.preflight import PreflightMeasure
from gravity.run import plotting, sweep
from gravity.run.experiment import Experiment

NAME = "early_warning"
ONLINE_STEPS = (1, 2, 5)
OVERLAPS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
LEARNING_RATES = (
    1e-4, 1.26e-4, 1.59e-4, 2e-4, 2.52e-4, 3.17e-4, 4e-4,
    5.04e-4, 6.35e-4, 8e-4, 1e-3, 1.26e-3, 1.59e-3, 2e-3,
)  # fmt: skip
ONLINE = tuple(f"{kind}{k}" for kind in ("step", "slope_step") for k in ONLINE_STEPS)
PLAN_ONLY = ("learning_rate", "condition_share")
SCORES = ("preflight", "preflight_alignment", *ONLINE, "naive_step5", *PLAN_ONLY, monitor.SEED_ONLY)
"""Every score, in the order the figure draws them."""
DIFFERENCES = (
    ("preflight", "condition_share"),
    ("preflight", "learning_rate"),
    ("preflight", monitor.SEED_ONLY),
    (monitor.SEED_ONLY, "condition_share"),
    (monitor.SEED_ONLY, "learning_rate"),
    ("naive_step5", "preflight"),
)
"""The paired AUC comparisons on the same runs (a, b: AUC(a) - AUC(b))."""
SCATTERS = {  # drawn against the outcome run by run, with their axis labels
    "preflight": "pre-flight: predicted first-step drift along v_rev",
    "step1": "online: alignment at step 1",
}


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 16
    models: tuple[str, ...] = ("mlp", "transformer")
    transformer_seeds: int = 16
    size: str = "standard"
    overlaps: tuple[float, ...] = OVERLAPS
    learning_rates: tuple[float, ...] = LEARNING_RATES
    batch_sizes: tuple[int, ...] = (16, 64)
    bootstrap: int = 1000


def quick(config: Config) -> Config:
    small = {"overlaps": (0.0, 0.5, 1.0), "learning_rates": (1e-4, 1e-3), "bootstrap": 200}
    return dataclasses.replace(config, seeds=2, models=("mlp",), **small)


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
            seeds=presets.seeds_for(model, config.seeds, config.transformer_seeds),
            build=build,
            measure=PreflightMeasure(),
        )
    return out


def scores(res: sweep.SweepResult, config: Config, model: str):
    """Every score and the outcome per run, as (conditions, seeds) arrays (diverged runs NaN)."""
    steps = benign_spec(config, model, config.batch_sizes[0]).phase("benign").record_steps

    def by_condition(name):  # the grid's axes flattened into one axis of conditions
        values = res.valid(name)
        return values.reshape(-1, *values.shape[res.diverged.ndim - 1 :])

    return monitor.run_scores(by_condition, list(steps), ONLINE_STEPS)


def summarise_model(config: Config, res: sweep.SweepResult, model: str) -> dict:
    """The monitors' scorecard on one model's runs; the planned learning rate is a control."""
    table, outcome = scores(res, config, model)
    rates = along(config.learning_rates, res.diverged.shape, 2).reshape(table["preflight"].shape)
    plan = {"learning_rate": rates.astype(float)}
    numbers = monitor.scorecard(table, outcome, plan, config.bootstrap)
    numbers["auc_naive_step5"] = numbers.pop("auc_naive_step5")  # reported last
    crossed = monitor.crossed_scorecard(table, outcome, plan, DIFFERENCES, config.bootstrap)
    return {**numbers, **crossed}


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    return {model: summarise_model(config, results[model], model) for model in config.models}


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    fig, axes = plotting.figure(3, len(config.models), width=4.3, height=3.4)
    for row, model in zip(axes, config.models, strict=True):
        table, outcome = scores(results[model], config, model)
        n = numbers[model]
        harm, reverted = outcome["harmfulness_heldout_T"].ravel(), outcome["reverted"].ravel()
        for ax, (name, label) in zip(row[:2], SCATTERS.items(), strict=True):
            ax.scatter(table[name].ravel(), harm, c=reverted, cmap="coolwarm", s=6)
            title = f"{model}: AUC {n[f'auc_{name}']:.2f}"
            ax.set(xlabel=label, ylabel="held-out harmfulness at T", title=title)
        judged = [n["auc_over_seeds_and_conditions"][m] for m in SCORES]
        aucs, intervals = [j["estimate"] for j in judged], [j["interval"] for j in judged]
        plotting.interval_bars(row[2], SCORES, aucs, intervals, reference=0.5)
        title = f"{model}: {n['n_conditions']} conditions x {n['n_seeds']} seeds"
        row[2].set(ylabel="ROC AUC (95%, seeds and conditions)", ylim=(0, 1.05), title=title)
    title = "Early warning: predicting reversion before and during fine-tuning"
    return plotting.save(fig, path, title)


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "pre-flight and online monitors that predict reversion, against the naive one"
)
