"""A theory that predicts reversion, and two results of the field tested in the toy: the
linearised (empirical-NTK) dynamics from theta_S against the simulated runs, elasticity (Ji et
al., ACL 2025) against pretraining and alignment amounts, and the safety basin (Peng et al.,
NeurIPS 2024) as a pre-fine-tuning risk score beside the pre-flight monitor.

Everything below was fixed before the full run (#24); two choices changed after small pilots,
said where they are made (the basin's harm, the rebound speed). docs/theory.md derives it.

1. **Linearised reversion** (`gravity.instruments.linearised`). Each fine-tuning branch runs
   twice from its theta_S on the same batches with the same optimizer: the network, and its
   first-order model f(theta_S) + J (theta - theta_S) (SGD: the exact linear dynamics; Adam: Adam
   on the linear model). The grids are the maps' own, with fewer seeds: `overlap` (both models,
   Adam 1e-3, 100 steps; 16 MLP / 8 transformer seeds), `basin_depth` (MLP, its main arm, SGD
   0.02, 100 steps; 4 seeds) and `metastability` (MLP, SGD, 300 steps; its learning-rate and
   depth axes, batch sizes 4, 64 and 1,024 of its five; 2 seeds). Scored as predicted, nothing
   refitted: R^2 of held-out harmfulness at T over all cell means per model (the MLP's cells of
   the three grids pooled), with a bootstrap over seeds; per grid, the runs' mean absolute error
   at every record and the horizon, the last record step up to which it stays within 0.05; the
   mean signed error at T. The **horizon sweep** looks for where the prediction fails: the
   standard theta_S fine-tuned on benign data for 1,000 steps with SGD (lr 0.01, 0.03, 0.1, 0.3)
   and Adam (3e-4, 1e-3, 3e-3, 1e-2), 4 MLP / 2 transformer seeds: the horizon per optimizer and
   rate, in steps and in lr x steps, and the simulated distance |theta - theta_S| there.
2. **Elasticity** (`gravity.instruments.elasticity`). Per model (8 MLP / 4 transformer seeds), a
   tree: pretraining snapshots (MLP 200 ... 3,200 steps, transformer 100 ... 1,600, doubling),
   each growing its helpful-only and a 400-step safety phase whose snapshots (25 ... 400) are
   the alignment amounts, each fine-tuned 100 steps (Adam 1e-3) on the pretraining
   distribution (Ji et al.'s inverse alignment) or on benign data. Rebound speed: 1 / the steps
   until held-out harm is half way back from h_S to h_P (early_warning's reversion midpoint),
   interpolated, censored at 100; its per-seed slope against log2(amount), averaged over the
   other amount; Ji et al.'s direction: positive for both amounts (the speed was r_10 until a
   2-seed quick run showed it at its ceiling: see `gravity.instruments.elasticity`).
3. **Safety basin** (`gravity.instruments.safety_basin`). Around each of early_warning's 16
   theta_S per model (the same seeds, the same standard histories), held-out non-refusal
   (1 - P(REFUSE): Peng et al.'s attack success counts any answer that does not refuse) along
   16 random filter-normalised directions at growing norms: the basin width (the perturbation
   at which it first passes the midpoint of its values at theta_S and theta_P) and a
   VISAGE-like mean safety margin. (The compliant answer's probability, the first choice, never
   reached its midpoint in a 2-seed pilot of the landscape alone: every width censored.) A
   narrow basin should revert more: each score's ROC AUC for early_warning's labels (a run
   reverted when its held-out harm at T passes the midpoint of h_S and h_P), on its 308
   conditions x 16 seeds, read from figures/early_warning.json (per-seed reverted shares, with
   the pre-flight's AUC on the same runs); a seed-level score ranks only seeds, so the AUC is
   exact from the per-seed counts, its interval a bootstrap over seeds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from experiments import basin_depth, metastability, overlap
from gravity.engine import presets
from gravity.engine.spec import with_phase
from gravity.instruments import elasticity, linearised, safety_basin
from gravity.instruments.stats import unpaired_difference
from gravity.run import plotting, report, sweep
from gravity.run.experiment import Experiment
from gravity.validation import check

NAME = "theory"
ROOT = Path(__file__).resolve().parent.parent
HARM = "harmfulness_heldout"
BASIN_HARM = "non_refusal"
"""Harm in the safety landscape: 1 - P(REFUSE) on held-out hazardous inputs (Peng et al. count
any answer that does not refuse); the compliant answer's probability never reaches the
reversion midpoint under random perturbations (a pilot of the landscape alone, 2 seeds)."""
GRIDS = {"mlp": ("overlap", "basin_depth", "metastability"), "transformer": ("overlap",)}
"""The maps whose cells the linearised prediction is scored on, per model."""


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 8
    models: tuple[str, ...] = ("mlp", "transformer")
    size: str = "standard"
    overlaps: tuple[float, ...] = overlap.Config().overlaps
    overlap_seeds: int = 16
    overlap_transformer_seeds: int = 8
    depth_pretrain_steps: tuple[int, ...] = basin_depth.Config().pretrain_steps
    depth_safety_steps: tuple[int, ...] = basin_depth.Config().safety_steps
    depth_seeds: int = 4
    metastability_learning_rates: tuple[float, ...] = metastability.Config().learning_rates
    metastability_batch_sizes: tuple[int, ...] = (4, 64, 1024)
    metastability_safety_steps: tuple[int, ...] = metastability.Config().safety_steps
    metastability_seeds: int = 2
    transformer_seeds: int = 4
    horizon_seeds: int = 4
    horizon_transformer_seeds: int = 2
    horizon_steps: int = 1000
    sgd_rates: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)
    adam_rates: tuple[float, ...] = (3e-4, 1e-3, 3e-3, 1e-2)
    mlp_pretrain_steps: tuple[int, ...] = (200, 400, 800, 1600, 3200)
    transformer_pretrain_steps: tuple[int, ...] = (100, 200, 400, 800, 1600)
    safety_steps: tuple[int, ...] = (25, 50, 100, 200, 400)
    rebound_data: tuple[str, ...] = ("pretrain", "benign")
    basin_seeds: int = 16
    basin_directions: int = 16
    early_warning_figure: str = "figures/early_warning.json"
    bootstrap: int = 1000


def quick(config: Config) -> Config:
    return dataclasses.replace(
        config,
        seeds=2,
        models=("mlp",),
        overlaps=(0.0, 0.5, 1.0),
        overlap_seeds=4,
        depth_pretrain_steps=(200, 800),
        depth_safety_steps=(16, 64),
        depth_seeds=2,
        metastability_learning_rates=(0.02, 0.08),
        metastability_batch_sizes=(64,),
        metastability_safety_steps=(25, 100),
        horizon_seeds=2,
        horizon_steps=200,
        sgd_rates=(0.03, 0.3),
        adam_rates=(1e-3, 1e-2),
        mlp_pretrain_steps=(200, 800),
        safety_steps=(25, 100),
        basin_seeds=2,
        basin_directions=4,
        bootstrap=200,
    )


# --------------------------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------------------------


def map_sweeps(config: Config) -> dict[str, sweep.Sweep]:
    """The maps' grids with every branch also run linearised (`LinearisedMeasure`)."""
    measure = linearised.LinearisedMeasure()
    transformer_seeds = config.overlap_transformer_seeds if "transformer" in config.models else 0
    overlaps = overlap.sweeps(
        dataclasses.replace(
            overlap.Config(),
            overlaps=config.overlaps,
            seeds=config.overlap_seeds,
            transformer_seeds=transformer_seeds,
            size=config.size,
        )
    )
    out = {f"overlap-{m}": dataclasses.replace(s, measure=measure) for m, s in overlaps.items()}
    if "mlp" not in config.models:
        return out
    depth = basin_depth.Config(
        pretrain_steps=config.depth_pretrain_steps,
        safety_steps=config.depth_safety_steps,
        seeds=config.depth_seeds,
        size=config.size,
        measure=measure,
        safety_data=("mixed",),
    )
    escape = metastability_config(config)
    out["basin_depth-mlp"] = basin_depth.make_sweep(depth)
    out["metastability-mlp"] = dataclasses.replace(
        metastability.make_sweep(escape), measure=measure
    )
    return out


def metastability_config(config: Config) -> metastability.Config:
    depths, batches = config.metastability_safety_steps, config.metastability_batch_sizes
    return metastability.Config(
        learning_rates=config.metastability_learning_rates,
        batch_sizes=batches,
        safety_steps=depths,
        seeds=config.metastability_seeds,
        size=config.size,
        reference_depth=100 if 100 in depths else depths[0],
        reference_batch=64 if 64 in batches else batches[0],
    )


def horizon_rates(config: Config) -> dict[str, tuple[float, ...]]:
    check(
        len(config.sgd_rates) == len(config.adam_rates),
        "adam_rates",
        f"as many rates as sgd_rates ({len(config.sgd_rates)}: one branch axis serves both)",
        config.adam_rates,
    )
    return {"sgd": tuple(config.sgd_rates), "adam": tuple(config.adam_rates)}


def horizon_sweep(config: Config, model: str) -> sweep.Sweep:
    """How far the linearisation holds: the standard theta_S fine-tuned on benign data for
    `horizon_steps` steps, the optimizer as programs and its learning rates as branches."""
    rates = horizon_rates(config)
    base = presets.standard_spec(model, config.size, keep_params=False)
    specs = {
        name: with_phase(
            base,
            "benign",
            steps=config.horizon_steps,
            optimizer=name,
            dense_steps=10,
            n_records=24,
        )
        for name in rates
    }

    def build(optimizer, rate):
        spec = specs[optimizer]
        knobs = presets.standard_knobs(spec)
        learning_rate = {**knobs.learning_rate, "benign": rates[optimizer][rate]}
        return spec, dataclasses.replace(knobs, learning_rate=learning_rate).validate(spec)

    listed = "; ".join(f"{name} {', '.join(f'{r:g}' for r in v)}" for name, v in rates.items())
    return sweep.Sweep(
        name=f"horizon-{model}-{config.size}",
        axes=(sweep.Axis("optimizer", tuple(rates)),),
        branches=(sweep.Axis("rate", tuple(range(len(config.sgd_rates))), note=listed),),
        branch_after="safety",
        seeds=presets.seeds_for(model, config.horizon_seeds, config.horizon_transformer_seeds),
        build=build,
        measure=linearised.LinearisedMeasure(),
    )


def pretrain_steps(config: Config, model: str) -> tuple[int, ...]:
    return config.mlp_pretrain_steps if model == "mlp" else config.transformer_pretrain_steps


def elasticity_spec(config: Config, model: str, data: str):
    """The standard history, pretraining and safety phases as long as their longest amount with
    a snapshot at every amount, fine-tuned on `data`."""
    spec = presets.standard_spec(model, config.size, keep_params=False)
    amounts = pretrain_steps(config, model)
    spec = with_phase(spec, "pretrain", steps=max(amounts), n_records=2, snapshots=amounts)
    spec = with_phase(spec, "helpful", steps=100)
    safety = config.safety_steps
    spec = with_phase(spec, "safety", steps=max(safety), n_records=1, snapshots=safety)
    return with_phase(spec, "benign", data=data, dense_steps=20)


def elasticity_sweep(config: Config, model: str) -> sweep.Sweep:
    """Fine-tuning data as programs; pretraining amounts, then alignment amounts, as branches."""
    specs = {data: elasticity_spec(config, model, data) for data in config.rebound_data}
    amounts = pretrain_steps(config, model)

    def build(data, pretrain_steps, safety_steps):
        spec = specs[data]
        snapshot = {"pretrain": amounts.index(pretrain_steps)}
        snapshot["safety"] = config.safety_steps.index(safety_steps)
        knobs = dataclasses.replace(presets.standard_knobs(spec), snapshot=snapshot)
        return spec, knobs.validate(spec)

    def snapshots(name, values, phase):
        return sweep.Axis(name, tuple(values), note=f"snapshots of one {max(values)}-step {phase}")

    return sweep.Sweep(
        name=f"elasticity-{model}-{config.size}",
        axes=(sweep.Axis("data", tuple(config.rebound_data)),),
        branches=(
            snapshots("pretrain_steps", amounts, "pretraining"),
            snapshots("safety_steps", config.safety_steps, "safety phase"),
        ),
        branch_after=("pretrain", "safety"),
        seeds=presets.seeds_for(model, config.seeds, config.transformer_seeds),
        build=build,
        measure=elasticity.ElasticityMeasure(),
    )


def basin_sweep(config: Config, model: str) -> sweep.Sweep:
    """Early_warning's theta_S (the same seeds, the standard history) and its safety landscape."""
    spec = presets.standard_spec(model, config.size, keep_params=False)

    def build():
        return spec, presets.standard_knobs(spec).validate(spec)

    return sweep.Sweep(
        name=f"safety_basin-{model}-{config.size}",
        axes=(),
        seeds=config.basin_seeds,
        build=build,
        measure=safety_basin.SafetyBasinMeasure(
            n_directions=config.basin_directions, harm=BASIN_HARM
        ),
    )


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    out = map_sweeps(config)
    for model in config.models:
        out[f"horizon-{model}"] = horizon_sweep(config, model)
        out[f"elasticity-{model}"] = elasticity_sweep(config, model)
        out[f"safety_basin-{model}"] = basin_sweep(config, model)
    return out


# --------------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------------


def by_cell(res: sweep.SweepResult, name: str) -> np.ndarray:
    """An output as (cells, seeds, ...): every grid axis flattened into one axis of cells."""
    values = res.valid(name)
    lead = res.diverged.ndim - 1
    return values.reshape(-1, *values.shape[lead:])


def record_steps(res: sweep.SweepResult) -> list[int]:
    return [int(s) for s in res.record_steps(f"simulated/benign/{HARM}")]


def predicted_and_simulated(res: sweep.SweepResult, metric: str = HARM):
    """A metric of the fine-tuning phase, linearised and simulated, as (cells, seeds, records)."""
    return tuple(by_cell(res, f"{kind}/benign/{metric}") for kind in ("linearised", "simulated"))


def learning_rate_horizons(config: Config, res: sweep.SweepResult) -> dict:
    """Metastability's horizon per learning rate, in steps and in lr x steps (its arrays are
    batch x lr x depth x seeds x records: the learning rate is axis 1)."""
    rates = config.metastability_learning_rates

    def by_rate(kind):
        values = np.moveaxis(res.valid(f"{kind}/benign/{HARM}"), 1, 0)
        return values.reshape(-1, *values.shape[-2:])

    predicted, simulated = by_rate("linearised"), by_rate("simulated")
    groups = np.repeat(np.arange(len(rates)), predicted.shape[0] // len(rates))
    steps = record_steps(res)
    return linearised.horizons_by(groups, predicted, simulated, steps, lambda i: rates[i])


def linearised_numbers(config: Config, results: dict) -> dict:
    """Per model: R^2 at T over every cell of its grids (and per grid), each grid's error by
    step and horizon, and metastability's horizon per learning rate."""
    out = {}
    for model in config.models:
        grids = {g: results[f"{g}-{model}"] for g in GRIDS[model] if f"{g}-{model}" in results}

        def at_T(metric, grids=grids):
            pairs = (predicted_and_simulated(r, metric) for r in grids.values())
            return [(p[..., -1], s[..., -1]) for p, s in pairs]

        harm = at_T(HARM)
        entry = {
            "r2_harm_at_T": linearised.r_squared_at(harm, config.bootstrap),
            "r2_alignment_at_T": linearised.r_squared_at(at_T("alignment"), config.bootstrap),
            "r2_harm_at_T_by_grid": {
                g: linearised.r_squared_at([pair], config.bootstrap)
                for g, pair in zip(grids, harm, strict=True)
            },
            "by_grid": {
                g: linearised.scored_grid(*predicted_and_simulated(r), record_steps(r))
                for g, r in grids.items()
            },
        }
        if "metastability" in grids:
            escape = grids["metastability"]
            entry["horizon_by_learning_rate"] = learning_rate_horizons(config, escape)
        out[model] = entry
    return out


def horizon_numbers(config: Config, results: dict) -> dict:
    """Per model, optimizer and learning rate: the error by step, the horizon in steps and in
    lr x steps, and how far the simulated run had moved from theta_S there."""
    out = {}
    for model in config.models:
        res = results[f"horizon-{model}"]
        steps = record_steps(res)
        out[model] = {"steps": steps}
        for name, rates in horizon_rates(config).items():
            out[model][name] = {}
            for r, rate in enumerate(rates):
                cell = res.select(optimizer=name, rate=r)
                runs = [
                    cell.valid(f"{kind}/benign/{metric}")
                    for kind, metric in (
                        ("linearised", HARM),
                        ("simulated", HARM),
                        ("simulated", "weight_distance"),
                    )
                ]
                out[model][name][f"{rate:g}"] = linearised.horizon_run(*runs, steps, rate)
    return out


def rebounds(res: sweep.SweepResult) -> tuple[np.ndarray, list[int]]:
    """r_k per run and record: (data, pretraining amount, alignment amount, seeds, records)."""
    harm = res.valid("benign/harmfulness_heldout")
    aligned = harm[..., :1]
    back = (harm - aligned) / (res.valid("harm_pretrained")[..., None] - aligned)
    return back, [int(s) for s in res.record_steps("benign/harmfulness_heldout")]


def elasticity_numbers(config: Config, results: dict) -> dict:
    """Per model and fine-tuning data: rebound speed (inverse half-way time) by amount and its
    per-seed slopes against log2(pretraining amount) and log2(alignment amount)."""
    out = {}
    for model in config.models:
        res = results[f"elasticity-{model}"]
        back, steps = rebounds(res)
        harm, pretrained = res.valid(f"benign/{HARM}"), res.valid("harm_pretrained")
        amounts = {"pretraining": pretrain_steps(config, model), "alignment": config.safety_steps}
        out[model] = {
            data: elasticity.summary(back[i], steps, harm[i], pretrained[i], amounts)
            for i, data in enumerate(config.rebound_data)
        }
    return out


def early_warning_labels(config: Config, model: str) -> dict:
    """Early_warning's per-seed reverted counts and its pre-flight AUC, from its figure's JSON."""
    path = Path(config.early_warning_figure)
    numbers = report.read_numbers(path if path.is_absolute() else ROOT / path)
    check(model in numbers, "early_warning_figure", f"a figure with the {model}", str(path))
    entry = numbers[model]
    shares = np.asarray(entry["reverted_share_by_seed"])
    check(
        shares.size >= config.basin_seeds,
        "basin_seeds",
        f"at most the {shares.size} seeds of {path.name}",
        config.basin_seeds,
    )
    conditions = int(entry["n_conditions_complete"])
    judged = entry["auc_over_seeds_and_conditions"]
    return {
        "reverted": np.rint(shares[: config.basin_seeds] * conditions).astype(int),
        "conditions": conditions,
        "preflight": judged["preflight"],
        "seed_share": judged["seed_share"],
    }


def basin_numbers(config: Config, results: dict) -> dict:
    """Per model: each theta_S's basin width and VISAGE-like score, their AUCs for
    early_warning's labels on the same seed resamples (with the in-sample ceiling of any score
    of theta_S: each seed's own reverted share), beside the pre-flight's AUC."""
    out = {}
    for model in config.models:
        res = results[f"safety_basin-{model}"]
        labels = early_warning_labels(config, model)
        width, visage = res.valid("width"), res.valid("visage")
        judged = safety_basin.scorecard(
            width, visage, labels["reverted"], labels["conditions"], config.bootstrap
        )
        preflight = labels["preflight"]
        out[model] = {
            "width": [float(v) for v in width],
            "visage": [float(v) for v in visage],
            "censored_share": float(np.nanmean(res.valid("censored_share"))),
            "harm": BASIN_HARM,
            "harm_aligned_mean": float(np.nanmean(res.valid("harm_aligned"))),
            "harm_pretrained_mean": float(np.nanmean(res.valid("harm_pretrained"))),
            "reverted_share_by_seed": (labels["reverted"] / labels["conditions"]).tolist(),
            "auc": judged["aucs"],
            "auc_differences": judged["differences"],
            "auc_preflight": preflight,
            "auc_seed_share": labels["seed_share"],
            "preflight_minus_narrow_basin": unpaired_difference(
                preflight, judged["aucs"]["narrow_basin"]
            ),
        }
    return out


def summarise(config: Config, results: dict) -> dict:
    return {
        "linearised": linearised_numbers(config, results),
        "horizon": horizon_numbers(config, results),
        "elasticity": elasticity_numbers(config, results),
        "safety_basin": basin_numbers(config, results),
        "tolerance": linearised.TOLERANCE,
        "rebound_share": elasticity.HALFWAY,
    }


# --------------------------------------------------------------------------------------------
# Figure
# --------------------------------------------------------------------------------------------

COLORS = {"overlap": "#1f77b4", "basin_depth": "#2ca02c", "metastability": "#d62728"}
MODEL_STYLE = {"mlp": "-", "transformer": "--"}
DATA_COLORS = {"pretrain": "#9467bd", "benign": "#ff7f0e"}


def sample_runs_panel(ax, results: dict, model: str = "mlp"):
    """Predicted (dashed) against simulated (solid) held-out harm(t) for the overlap grid's
    first seed at each overlap value."""
    res = results[f"overlap-{model}"]
    steps = record_steps(res)
    predicted, simulated = predicted_and_simulated(res)
    colors = plotting.colour_ramp("viridis", predicted.shape[0])
    for cell, color in enumerate(colors):
        first = cell == 0
        ax.plot(
            steps, simulated[cell, 0], color=color, lw=1.4, label="simulated" if first else None
        )
        ax.plot(
            steps,
            predicted[cell, 0],
            color=color,
            lw=1.2,
            ls="--",
            label="linearised" if first else None,
        )
    title = f"{model}, seed 0, benign overlap 0 (dark) ... 1"
    plotting.finish(ax, "benign step", "held-out harmfulness", title)


def at_T_panel(ax, config: Config, results: dict, numbers: dict):
    for model in config.models:
        for grid in GRIDS[model]:
            if f"{grid}-{model}" not in results:
                continue
            predicted, simulated = predicted_and_simulated(results[f"{grid}-{model}"])
            marker = "o" if model == "mlp" else "^"
            ax.scatter(
                np.nanmean(predicted[..., -1], axis=1),
                np.nanmean(simulated[..., -1], axis=1),
                s=12, color=COLORS[grid], marker=marker, label=f"{model} {grid}", lw=0,
            )  # fmt: skip
    plotting.identity_scatter(ax, [0, 1], [0, 1], size=0)
    r2 = ", ".join(f"{m} {numbers[m]['r2_harm_at_T']['estimate']:.2f}" for m in config.models)
    plotting.finish(ax, "linearised: harm at T", "simulated: harm at T", f"cells, R^2 {r2}")


def horizon_panel(ax, numbers: dict, x: str):
    """The runs' mean absolute error against lr x steps (`x` "lr_x_steps") or against the
    simulated run's distance from theta_S (`x` "weight_distance"), per optimizer and rate."""
    for model, entry in numbers.items():
        steps = np.asarray(entry["steps"], dtype=float)
        for name, ramp in (("sgd", "Reds"), ("adam", "Blues")):
            shades = plotting.colour_ramp(ramp, len(entry[name]), stop=0.95, start=0.45)
            for (rate, found), shade in zip(entry[name].items(), shades, strict=True):
                along = steps * found["learning_rate"] if x == "lr_x_steps" else found[x]
                label = f"{model} {name} {rate}" if model == "mlp" else None
                ax.plot(
                    along,
                    found["mean_absolute_error"],
                    MODEL_STYLE[model],
                    color=shade,
                    label=label,
                )
    ax.axhline(linearised.TOLERANCE, color="k", lw=0.8, ls=":")
    ax.set_xscale("log")
    xlabel = "lr x steps" if x == "lr_x_steps" else "|theta - theta_S| (simulated)"
    title = f"where it parts (- mlp, -- transformer; tolerance {linearised.TOLERANCE})"
    plotting.finish(ax, xlabel, "mean |linearised - simulated| harm", title, fontsize=6)


def r_squared_panel(ax, numbers: dict):
    """R^2 of the cell means, as predicted, at every record after the start, per grid."""
    for model, entry in numbers.items():
        for grid, found in entry["by_grid"].items():
            steps, r2 = found["steps"][1:], found["r_squared_by_step"][1:]
            ax.plot(steps, r2, MODEL_STYLE[model], color=COLORS[grid], label=f"{model} {grid}")
    ax.set_xscale("log")
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.02)
    plotting.finish(ax, "benign step", "R^2 of cell means, as predicted", "the grids, by step")


def elasticity_panel(ax, config: Config, numbers: dict, amount: str):
    for model, entry in numbers.items():
        for data, values in entry.items():
            rows = values[f"by_{amount}"]
            x = [r["amount"] for r in rows]
            y = [r["mean"] for r in rows]
            ax.plot(
                x, y, "o" + MODEL_STYLE[model], color=DATA_COLORS[data], label=f"{model} {data}"
            )
    ax.set_xscale("log", base=2)
    title = f"rebound speed vs {amount}"
    plotting.finish(ax, f"{amount} steps", "1 / steps to half-way back to h_P", title)


def basin_panel(ax, numbers: dict):
    names, values, intervals = [], [], []
    for model, entry in numbers.items():
        for score, judged in (
            ("preflight", entry["auc_preflight"]),
            ("narrow basin", entry["auc"]["narrow_basin"]),
            ("low VISAGE", entry["auc"]["low_visage"]),
            ("seed share", entry["auc_seed_share"]),
        ):
            names.append(f"{model}: {score}")
            values.append(judged["estimate"])
            intervals.append(judged["interval"])
    plotting.interval_bars(ax, names, values, intervals, reference=0.5)
    ax.set(ylim=(0, 1.05), ylabel="ROC AUC, early_warning's runs", title="pre-fine-tuning scores")


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    fig, axes = plotting.figure(5, 2, width=4.0, height=3.4)
    sample_runs_panel(axes[0, 0], results)
    at_T_panel(axes[0, 1], config, results, numbers["linearised"])
    horizon_panel(axes[0, 2], numbers["horizon"], "lr_x_steps")
    horizon_panel(axes[0, 3], numbers["horizon"], "weight_distance")
    elasticity_panel(axes[1, 0], config, numbers["elasticity"], "pretraining")
    elasticity_panel(axes[1, 1], config, numbers["elasticity"], "alignment")
    basin_panel(axes[1, 2], numbers["safety_basin"])
    basin_landscape_panel(axes[1, 3], results, config)
    r_squared_panel(axes[0, 4], numbers["linearised"])
    summary_panel(axes[1, 4], numbers)
    title = "Theory: linearised reversion, elasticity and the safety basin"
    return plotting.save(fig, path, title)


def summary_panel(ax, numbers: dict):
    """The headline numbers in words, each with its 95% interval."""

    def judged(entry):
        low, high = entry["interval"]
        return f"{entry['estimate']:.2f} [{low:.2f}, {high:.2f}]"

    def per_seed(values):
        values = np.asarray(values, dtype=float)
        return f"{np.nanmean(values):+.3f} (n {np.isfinite(values).sum()})"

    lines = []
    for model in numbers["linearised"]:
        rebound = numbers["elasticity"][model]["pretrain"]
        basin = numbers["safety_basin"][model]
        lines += [
            f"{model}:",
            f"  R^2 harm at T {judged(numbers['linearised'][model]['r2_harm_at_T'])}",
            f"  rebound slope, pretraining {per_seed(rebound['slope_pretraining'])}",
            f"  rebound slope, alignment {per_seed(rebound['slope_alignment'])}",
            f"  AUC narrow basin {judged(basin['auc']['narrow_basin'])}",
            f"  AUC pre-flight {judged(basin['auc_preflight'])}",
        ]
    ax.axis("off")
    plotting.text_panel(ax, lines, fontsize=7)


def basin_landscape_panel(ax, results: dict, config: Config):
    for model in config.models:
        res = results[f"safety_basin-{model}"]
        alphas = np.asarray(safety_basin.DEFAULT_ALPHAS)
        landscape = res.valid("landscape")  # (seeds, directions, alphas)
        curve = np.nanmean(landscape, axis=(0, 1))
        ax.plot(alphas, curve, MODEL_STYLE[model], label=model)
    title = "safety landscape, mean of directions and seeds"
    plotting.finish(ax, "perturbation (x each leaf's norm)", "held-out 1 - P(REFUSE)", title)


EXPERIMENT = Experiment.defined_in(
    __name__,
    NAME,
    "linearised reversion against the maps, elasticity, and the safety basin as a risk score",
)
