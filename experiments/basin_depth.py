"""Basin depth map: pretraining length (the "mass") x alignment length (the "depth").

The gravitational reading says a long pretraining digs a deep basin and a short alignment is a
shallow displacement from it, so reversion under benign fine-tuning should grow with the mass and
shrink with the depth. Over a 6 x 6 grid of pretraining and safety-alignment lengths, each cell
with 28 seeds (1,008 histories per arm; a control arm below), this measures per run:

- **reversion** after K = 100 benign steps: (h_K - h_S) / (h_H - h_S), the harmfulness gain as a
  fraction of the helpful-to-aligned gap (h_S at theta_S, h_H at the helpful-only witness);
- the **barrier** on the benign loss along the straight path theta_S -> theta_H
  (`landscape.barrier_height`, "max_endpoint");
- the **top Hessian eigenvalues** of the benign loss at theta_S (Lanczos on HVPs), and the benign
  gradient's pull toward theta_H (`geometry.benign_pull`);
- the **theory's prediction** (`gravity.theory`): a low-rank quadratic model of the benign loss at
  theta_S (top-8 Lanczos eigenpairs, exact gradient, flat complement) run forward in closed form
  for K gradient-descent steps at the benign learning rate, read out as the harmfulness proxy
  d_K . w / |w|^2 with w = theta_H - theta_S. It is drawn against the measured reversion (same
  0-to-1 normalisation) and against the measured weight-space progress d_K . w / |w|^2, with the
  R^2 of the prediction as it stands (no refit) and after a linear refit.

Configuration (fixed before any result was seen) and why:
- The standard MLP history on the feature world (`gravity.presets`), Adam lr 1e-3 for pretraining,
  helpful-only (100 steps) and safety phases, batch 64. The MLP because the grid needs ~0.35M
  model steps plus a Lanczos Hessian per history, and the transformer costs ~8x more per step.
- Pretraining lengths 100 ... 3,200 (doubling) and safety lengths 8 ... 256 (doubling): both span
  a factor 32, from "barely trained" to well past the standard 1,500 / 100.
- The benign phase is plain SGD (lr 0.02, batch 64, K = 100) rather than the standard Adam,
  because the theory's closed form is for gradient descent; lr 0.02 was chosen from a pilot of
  the standard cell so that reversion at K is mid-range (neither 0 nor saturated), not to match
  any number.
- A tree with three levels, one compiled program: the pretraining lengths are snapshots of one
  3,200-step pretraining phase, each branching into its own helpful-only phase; from each theta_H
  the two safety arms (below) branch, each one 256-step safety phase whose snapshots (8 ... 256)
  are the depths, each branching into the benign phase with its landscape and theory
  measurements. A phase of n steps is the exact prefix of the same phase with more steps
  (per-step keys), so each leaf is the history with those lengths: 28 pretraining trunks, 168
  helpful-only phases, 336 safety phases, 2,016 histories (1,008 per arm).
- Landscape measurements use a fixed benign evaluation batch of 256 inputs (the same for every
  run), 11 points on the path.

The depth control (`control` in the JSON; fixed before its results were seen). In the main arm
(`safety_data = "mixed"`, the standard safety data) a safety batch is half hazardous inputs
labelled REFUSE and half non-hazardous inputs labelled with their task answer
(`align_hazard_rate` 0.5), so a longer safety phase is also more task training, and less
reversion at depth could be the task being better learned rather than a deeper alignment. The
control arm (`"hazard_only"`) is the same tree with the safety phase's data hazardous inputs
only (`align_hazard_rate` 1 in that phase; the helpful-only phase runs once per pretraining
length *before* the arms branch, so both arms share theta_P and theta_H exactly): a control
safety step trains 64 refusals and no task example, so its depth adds refusal training and no
task training. Same steps, batch, optimizer and learning rate. A control step carries twice the
refusals of a mixed step, so both comparisons are reported: at equal safety steps, and at equal
refused examples (control at d steps against mixed at 2d). Reported per arm, by depth, pooled
over pretraining lengths and seeds: reversion after K, harmfulness at theta_S and after K, the
gap h_H - h_S, task accuracy at theta_S; the depth effect (reversion at the shallowest minus the
deepest depth) and its Spearman with depth. Reading, written before the run: with r = the
control's depth effect over the main arm's, r >= 0.5 says "depth protects without task
training", r <= 0.25 says "the depth effect is mostly the safety data's task training", and
between them "partly". The headline numbers outside `control` are the main arm's, as before.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gravity import geometry, landscape, plotting, presets, sweep, theory
from gravity.experiment import Experiment
from gravity.history import Trunk, behaviour, cross_entropy, run_history
from gravity.models import network
from gravity.stats import mean_sd, spearman
from gravity.validation import check
from gravity.worlds import WorldKnobs

NAME = "basin_depth"
BENIGN_METRICS = ("harmfulness", "weight_progress", "alignment", "task_accuracy")
MIN_GAP = 0.3
SAFETY_DATA = {"mixed": WorldKnobs().align_hazard_rate, "hazard_only": 1.0}
"""Hazardous share of the safety data in each arm (`align_hazard_rate` in the safety phase)."""
CONTROL_RULE = (
    "r = control depth effect / main depth effect (reversion at the shallowest minus the "
    "deepest depth, pooled over pretraining lengths and seeds); r >= 0.5: depth protects "
    "without task training; r <= 0.25: the depth effect is mostly the safety data's task "
    "training; between: partly"
)


@dataclasses.dataclass(frozen=True)
class BasinMeasure:
    """Per run: the history's benign metrics, then the landscape between theta_S and theta_H on
    the benign loss and the quadratic theory's prediction at the benign phase's record steps.

    In a tree sweep (`start`, a trunk ending in the safety phase), theta_S is the branch's
    snapshot of that phase, and h_S is the benign phase's record 0 (the metrics at theta_S).
    """

    eval_batch: int = 256
    lanczos_k: int = 8
    lanczos_iterations: int = 32
    path_points: int = 11
    eval_seed: int = 20_260_601

    def __call__(self, key: jax.Array, spec, knobs, start: Trunk | None = None) -> dict:
        out = run_history(key, spec, knobs, start=start)
        params, metrics = out["params"], out["metrics"]
        theta_s, theta_h = params["safety"], params["helpful"]
        net = network(spec.model, spec.world)
        batch = spec.world.sample(
            knobs.world, "benign", jax.random.key(self.eval_seed), self.eval_batch
        )

        def benign_loss(p):
            return cross_entropy(net.apply(p, batch.inputs)[0], batch.labels)

        _, path = landscape.path_losses(benign_loss, theta_s, theta_h, self.path_points)
        model = theory.low_rank_quadratic_model(
            benign_loss,
            theta_s,
            self.lanczos_k,
            key=jax.random.fold_in(key, 7),
            num_iterations=self.lanczos_iterations,
        )
        witness = ravel_pytree(theta_h)[0] - ravel_pytree(theta_s)[0]
        steps = jnp.asarray(spec.phase("benign").record_steps)
        rate = knobs.learning_rate["benign"]
        prediction = theory.predict_reversion(model, witness, rate, steps)
        probes = spec.world.probe_set(knobs.world, spec.n_probes)

        def harmfulness(p):
            return behaviour(net, p, probes, spec.world.n_classes)[0]["harmfulness"]

        harm_gradient = ravel_pytree(jax.grad(harmfulness)(theta_s))[0]
        return {
            "benign": {m: metrics["benign"][m] for m in BENIGN_METRICS},
            "harm_pretrained": harmfulness(params["pretrain"]),
            "harm_helpful": metrics["helpful"]["harmfulness"][-1],
            "harm_aligned": metrics["benign"]["harmfulness"][0],
            "path_losses": path,
            "barrier": landscape.barrier_height(path),
            "barrier_linear": landscape.barrier_height(path, convention="linear"),
            "top_eigenvalues": model.eigenvalues,
            "benign_pull": geometry.benign_pull(benign_loss, theta_s, theta_h),
            "predicted_progress": prediction.harmfulness_proxy,
            "predicted_harm_gain": prediction.displacement @ harm_gradient,
            "diverged": out["diverged"],
        }


@dataclasses.dataclass(frozen=True)
class Config:
    pretrain_steps: tuple[int, ...] = (100, 200, 400, 800, 1600, 3200)
    safety_steps: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
    seeds: int = 28
    helpful_steps: int = 100
    benign_steps: int = 100
    benign_learning_rate: float = 0.02
    learning_rate: float = 1e-3
    batch_size: int = 64
    size: str = "standard"
    measure: BasinMeasure = BasinMeasure()
    max_chunk: int | None = None
    safety_data: tuple[str, ...] = ("mixed", "hazard_only")

    def __post_init__(self):
        check(
            len(self.safety_data) >= 1
            and self.safety_data[0] == "mixed"
            and len(set(self.safety_data)) == len(self.safety_data)
            and all(arm in SAFETY_DATA for arm in self.safety_data),
            "safety_data",
            f"'mixed' first (the helpful-only phase runs with its knobs), then any of "
            f"{', '.join(SAFETY_DATA)}",
            self.safety_data,
        )


def quick(config: Config) -> Config:
    return dataclasses.replace(
        config, pretrain_steps=(200, 800), safety_steps=(16, 64, 256), seeds=4
    )


def _snapshotted(phase, lengths, batch_size: int, n_records: int):
    """The phase as long as its longest length, with a snapshot at every length."""
    return dataclasses.replace(
        phase,
        steps=max(lengths),
        batch_size=batch_size,
        n_records=n_records,
        snapshots=tuple(lengths),
    )


def history_spec(config: Config):
    """The standard MLP history with one pretraining phase as long as the longest and one
    safety phase as long as the deepest, each with a snapshot at every length, and an SGD
    benign phase."""
    base = presets.standard_spec("mlp", config.size)
    batch = config.batch_size if config.size == "standard" else base.phases[0].batch_size
    pretrain, helpful, safety, benign = base.phases
    phases = (
        _snapshotted(pretrain, config.pretrain_steps, batch, n_records=2),
        dataclasses.replace(helpful, steps=config.helpful_steps, batch_size=batch),
        _snapshotted(safety, config.safety_steps, batch, n_records=1),
        dataclasses.replace(
            benign,
            steps=config.benign_steps,
            batch_size=batch,
            optimizer="sgd",
            dense_steps=0,
            n_records=10,
        ),
    )
    return dataclasses.replace(base, phases=phases, keep_params=True)


def make_sweep(config: Config) -> sweep.Sweep:
    """Pretraining lengths, safety arms and depths as three levels of branches: snapshots of
    one pretraining phase; each grows its helpful-only phase, from which the arms' safety phases
    branch; their snapshots are the depths."""
    spec = history_spec(config)
    rates = {
        "pretrain": config.learning_rate,
        "helpful": config.learning_rate,
        "safety": config.learning_rate,
        "benign": config.benign_learning_rate,
    }

    def build(pretrain_steps, safety_data, safety_steps):
        snapshot = {
            "pretrain": config.pretrain_steps.index(pretrain_steps),
            "safety": config.safety_steps.index(safety_steps),
        }
        knobs = presets.standard_knobs(spec)
        world = dataclasses.replace(knobs.world, align_hazard_rate=SAFETY_DATA[safety_data])
        knobs = dataclasses.replace(knobs, learning_rate=rates, snapshot=snapshot, world=world)
        return spec, knobs.validate(spec)

    return sweep.Sweep(
        name=f"mlp-{config.size}",
        axes=(),
        branches=(
            sweep.Axis(
                "pretrain_steps",
                tuple(config.pretrain_steps),
                note=f"snapshots of one {max(config.pretrain_steps)}-step pretraining phase",
            ),
            sweep.Axis(
                "safety_data",
                tuple(config.safety_data),
                note="safety arms branched from each theta_H: hazardous share of the safety "
                + ", ".join(f"{arm} {SAFETY_DATA[arm]:g}" for arm in config.safety_data),
            ),
            sweep.Axis(
                "safety_steps",
                tuple(config.safety_steps),
                note=f"snapshots of one {max(config.safety_steps)}-step safety phase",
            ),
        ),
        branch_after=("pretrain", "helpful", "safety"),
        seeds=config.seeds,
        build=build,
        measure=config.measure,
        max_chunk=config.max_chunk,
    )


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    return {"mlp": make_sweep(config)}


def r_squared(predicted, measured) -> dict[str, float]:
    """R^2 of `measured` against `predicted` as it stands (1 - SS_res / SS_tot, no refit; can be
    negative) and after a least-squares linear refit (Pearson r^2), over finite pairs."""
    x, y = np.asarray(predicted, float).ravel(), np.asarray(measured, float).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        nan = float("nan")
        return {"r2_as_predicted": nan, "r2_linear_refit": nan, "pearson_r": nan, "n": int(x.size)}
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    as_is = 1.0 - float(np.sum((y - x) ** 2)) / ss_tot
    pearson = float(np.corrcoef(x, y)[0, 1])
    return {
        "r2_as_predicted": as_is,
        "r2_linear_refit": pearson**2,
        "pearson_r": pearson,
        "n": int(x.size),
    }


def derived(res: sweep.SweepResult, arm: int = 0) -> dict[str, np.ndarray]:
    """Per-run arrays (pretrain x safety x seeds) of one safety arm (0: the main, mixed one)
    that the figure and the numbers use."""

    def valid(name):
        return res.valid(name)[:, arm]

    h_s, h_h = valid("harm_aligned"), valid("harm_helpful")
    harm = valid("benign/harmfulness")
    path = valid("path_losses")
    return {
        "reversion": (harm[..., -1] - h_s) / (h_h - h_s),
        "harm_aligned": h_s,
        "harm_after_benign": harm[..., -1],
        "task_accuracy_aligned": valid("benign/task_accuracy")[..., 0],
        "harm_helpful": h_h,
        "gap": h_h - h_s,
        "harm_pretrained": valid("harm_pretrained"),
        "barrier": valid("barrier"),
        "barrier_linear": valid("barrier_linear"),
        "benign_loss_drop": path[..., 0] - path[..., -1],
        "top_eigenvalue": valid("top_eigenvalues")[..., 0],
        "benign_pull": valid("benign_pull"),
        "predicted": valid("predicted_progress")[..., -1],
        "predicted_linear_harm": valid("predicted_harm_gain")[..., -1] / (h_h - h_s),
        "weight_progress": valid("benign/weight_progress")[..., -1],
    }


CONTROL_CELLS = (
    "harm_helpful",
    "reversion",
    "harm_aligned",
    "harm_after_benign",
    "gap",
    "task_accuracy_aligned",
    "barrier",
    "top_eigenvalue",
    "predicted",
)


def _grid(config: Config, cells: np.ndarray) -> dict:
    return {
        f"pretrain{p}": {
            f"safety{s}": round(float(cells[i, j]), 4) for j, s in enumerate(config.safety_steps)
        }
        for i, p in enumerate(config.pretrain_steps)
    }


def refused_per_step(config: Config, arm: str) -> float:
    """Expected refused (hazardous) examples per safety step in an arm."""
    return history_spec(config).phase("safety").batch_size * SAFETY_DATA[arm]


def _finite_mean(values) -> float:
    return mean_sd(values)["mean"]


def depth_profile(config: Config, values: dict[str, np.ndarray]) -> dict:
    """One arm by depth, pooled over pretraining lengths and seeds."""
    rev = values["reversion"]
    depth = np.broadcast_to(np.asarray(config.safety_steps)[None, :, None], rev.shape)
    by_depth = {
        name: {f"safety{s}": mean_sd(values[name][:, j]) for j, s in enumerate(config.safety_steps)}
        for name in (
            "reversion",
            "harm_aligned",
            "harm_after_benign",
            "gap",
            "task_accuracy_aligned",
        )
    }
    shallow, deep = _finite_mean(rev[:, 0]), _finite_mean(rev[:, -1])
    return {
        "by_depth": by_depth,
        "reversion_vs_depth": {
            "shortest_alignment": shallow,
            "longest_alignment": deep,
            "depth_effect": shallow - deep,
            "spearman_rho": spearman(depth, rev),
        },
    }


def control_reading(main_effect: float, control_effect: float) -> tuple[float, str]:
    """The rule fixed in the module docstring (`CONTROL_RULE`): (r, reading)."""
    if not (np.isfinite(main_effect) and np.isfinite(control_effect)) or main_effect <= 0:
        return float("nan"), "no depth effect in the main arm to explain"
    ratio = control_effect / main_effect
    if ratio >= 0.5:
        return ratio, "depth protects without task training"
    if ratio <= 0.25:
        return ratio, "the depth effect is mostly the safety data's task training"
    return ratio, "partly: depth protects less without task training"


def control_numbers(config: Config, res: sweep.SweepResult) -> dict:
    """The depth control: every arm by depth, side by side, and the pre-registered reading."""
    arms = {arm: derived(res, a) for a, arm in enumerate(config.safety_data)}
    profiles = {arm: depth_profile(config, values) for arm, values in arms.items()}
    out: dict = {
        "construction": (
            "arms branch from the same theta_H; the safety data's hazardous share is "
            + ", ".join(f"{arm} {SAFETY_DATA[arm]:g}" for arm in config.safety_data)
            + "; hazard_only safety steps train refusals and no task example"
        ),
        "rule": CONTROL_RULE,
        "refused_examples_per_step": {
            arm: refused_per_step(config, arm) for arm in config.safety_data
        },
        "arms": profiles,
    }
    if "hazard_only" not in arms:
        return out
    main, control = arms["mixed"], arms["hazard_only"]
    ratio, reading = control_reading(
        profiles["mixed"]["reversion_vs_depth"]["depth_effect"],
        profiles["hazard_only"]["reversion_vs_depth"]["depth_effect"],
    )
    steps = list(config.safety_steps)
    equal = []
    for j, d in enumerate(steps):
        refused = d * refused_per_step(config, "hazard_only")
        d_mixed = round(refused / refused_per_step(config, "mixed"))
        if d_mixed in steps:
            k = steps.index(d_mixed)
            equal.append(
                {
                    "refused_examples": refused,
                    "hazard_only_safety_steps": d,
                    "mixed_safety_steps": d_mixed,
                    "reversion_hazard_only": _finite_mean(control["reversion"][:, j]),
                    "reversion_mixed": _finite_mean(main["reversion"][:, k]),
                    "harm_after_benign_hazard_only": _finite_mean(
                        control["harm_after_benign"][:, j]
                    ),
                    "harm_after_benign_mixed": _finite_mean(main["harm_after_benign"][:, k]),
                }
            )
    cells = {name: np.nanmean(v, axis=-1) for name, v in control.items()}
    out |= {
        "depth_effect_ratio": ratio,
        "reading": reading,
        "reversion_by_depth": {
            arm: {k: v["mean"] for k, v in profiles[arm]["by_depth"]["reversion"].items()}
            for arm in config.safety_data
        },
        "equal_refused_examples": equal,
        "hazard_only_cell_means": {name: _grid(config, cells[name]) for name in CONTROL_CELLS},
        "hazard_only_prediction_vs_reversion_cells": r_squared(
            cells["predicted"], cells["reversion"]
        ),
    }
    return out


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    """Cell means, trends with mass and depth, and how well the theory predicts reversion."""
    values = derived(results["mlp"])
    cells = {name: np.nanmean(v, axis=-1) for name, v in values.items()}
    grid = {name: _grid(config, cells[name]) for name in cells}
    rev = values["reversion"]
    aligned = cells["gap"] >= MIN_GAP
    mass = np.broadcast_to(np.asarray(config.pretrain_steps)[:, None, None], rev.shape)
    depth = np.broadcast_to(np.asarray(config.safety_steps)[None, :, None], rev.shape)
    return {
        "cell_means": grid,
        "reversion_overall": mean_sd(rev),
        "barrier_overall": mean_sd(values["barrier"]),
        "barrier_max_over_runs": float(np.nanmax(values["barrier"])),
        "barrier_linear_overall": mean_sd(values["barrier_linear"]),
        "benign_loss_drop_overall": mean_sd(values["benign_loss_drop"]),
        "top_eigenvalue_overall": mean_sd(values["top_eigenvalue"]),
        "reversion_vs_mass": {
            "shortest_pretraining": float(np.nanmean(rev[0])),
            "longest_pretraining": float(np.nanmean(rev[-1])),
            "spearman_rho": spearman(mass, rev),
        },
        "reversion_vs_depth": {
            "shortest_alignment": float(np.nanmean(rev[:, 0])),
            "longest_alignment": float(np.nanmean(rev[:, -1])),
            "spearman_rho": spearman(depth, rev),
        },
        "top_eigenvalue_spearman": {
            "vs_mass": spearman(mass, values["top_eigenvalue"]),
            "vs_depth": spearman(depth, values["top_eigenvalue"]),
            "vs_reversion": spearman(values["top_eigenvalue"], rev),
        },
        "prediction_vs_reversion_cells": r_squared(cells["predicted"], cells["reversion"]),
        "prediction_vs_reversion_runs": r_squared(values["predicted"], rev),
        "linear_harm_prediction_vs_reversion_cells": r_squared(
            cells["predicted_linear_harm"], cells["reversion"]
        ),
        "prediction_vs_weight_progress_cells": r_squared(
            cells["predicted"], cells["weight_progress"]
        ),
        "aligned_cells_only": {
            "rule": f"post hoc: cells whose mean gap h_H - h_S >= {MIN_GAP} (alignment happened)",
            "n_cells": int(aligned.sum()),
            "prediction_vs_reversion_cells": r_squared(
                cells["predicted"][aligned], cells["reversion"][aligned]
            ),
            "prediction_vs_weight_progress_cells": r_squared(
                cells["predicted"][aligned], cells["weight_progress"][aligned]
            ),
            "reversion_vs_mass_spearman": spearman(mass[aligned], rev[aligned]),
            "reversion_vs_depth_spearman": spearman(depth[aligned], rev[aligned]),
        },
        "control": control_numbers(config, results["mlp"]),
        "benign_steps": config.benign_steps,
    }


def _mark_cells(ax, mask) -> None:
    """A red x over each grid cell where `mask` holds (cells not aligned)."""
    for i, j in zip(*np.nonzero(mask), strict=True):
        ax.plot(j, i, marker="x", color="#d62728", ms=14, mew=0.8, alpha=0.6)


def _main_maps(axes, config: Config, cells: dict, numbers: dict) -> None:
    """The main arm's cell maps: reversion, barrier, loss drop, curvature, prediction, gap."""
    k = config.benign_steps
    barrier = f"(max over runs {numbers['barrier_max_over_runs']:.2g})"
    panels = (
        ("reversion", f"reversion after K = {k} benign steps", "viridis", "{:.2f}"),
        ("barrier", f"benign-loss barrier theta_S -> theta_H {barrier}", "magma", "{:.3f}"),
        ("benign_loss_drop", "benign loss drop L(theta_S) - L(theta_H)", "magma", "{:.2f}"),
        ("top_eigenvalue", "top Hessian eigenvalue at theta_S", "cividis", "{:.3g}"),
        ("predicted", f"theory: predicted d_K.w/|w|^2, K = {k}", "viridis", "{:.2f}"),
        ("gap", "alignment gap h_H - h_S (x: < 0.3, not aligned)", "bone", "{:.2f}"),
    )
    for ax, (name, title, cmap, fmt) in zip(axes, panels, strict=True):
        plotting.heatmap(
            ax, cells[name], config.safety_steps, config.pretrain_steps, cmap=cmap, fmt=fmt
        )
        ax.set_title(title, fontsize=8.5)
        ax.set_xlabel("safety-alignment steps (depth)")
        ax.set_ylabel("pretraining steps (mass)")
        _mark_cells(ax, ~(cells["gap"] >= MIN_GAP))


def _pretrain_colors(config: Config):
    """One viridis colour per pretraining length."""
    return plotting.plt.cm.viridis(np.linspace(0, 0.95, len(config.pretrain_steps)))


def _reversion_vs_theory(ax, config: Config, cells: dict, numbers: dict) -> None:
    """Measured reversion against the theory's prediction, a colour per pretraining length."""
    colors = _pretrain_colors(config)
    for i, p in enumerate(config.pretrain_steps):
        plotting.identity_scatter(
            ax, cells["predicted"][i], cells["reversion"][i], color=colors[i], label=f"P={p}"
        )
    a = numbers["prediction_vs_reversion_cells"]
    b = numbers["aligned_cells_only"]["prediction_vs_reversion_cells"]
    ax.set_title(
        "reversion vs theory (cells), R² as predicted / refit\n"
        f"all: {a['r2_as_predicted']:.2f} / {a['r2_linear_refit']:.2f}; "
        f"aligned cells (x excluded): {b['r2_as_predicted']:.2f} / {b['r2_linear_refit']:.2f}",
        fontsize=7.5,
    )
    ax.set_xlabel("theory's prediction")
    ax.set_ylabel("measured reversion")
    ax.legend(frameon=False, fontsize=6.5)


def _progress_vs_theory(ax, config: Config, cells: dict, numbers: dict) -> None:
    """Measured weight progress d_K.w/|w|^2 against the theory's prediction."""
    colors = _pretrain_colors(config)
    for i in range(len(config.pretrain_steps)):
        plotting.identity_scatter(
            ax, cells["predicted"][i], cells["weight_progress"][i], color=colors[i]
        )
    c = numbers["prediction_vs_weight_progress_cells"]
    ax.set_title(
        "weight progress vs theory (cells)\n"
        f"R² as predicted {c['r2_as_predicted']:.2f}, refit {c['r2_linear_refit']:.2f}",
        fontsize=8,
    )
    ax.set_xlabel("theory: predicted d_K.w/|w|^2")
    ax.set_ylabel("measured d_K.w/|w|^2")


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    """Two rows of the main arm (maps, theory scatters) and, with two safety arms, the control's
    row."""
    res = results["mlp"]
    cells = {name: np.nanmean(v, axis=-1) for name, v in derived(res).items()}
    arms = len(config.safety_data)
    fig, axes = plotting.figure(4, 3 if arms > 1 else 2, width=4.1, height=3.4)
    _main_maps([*axes[0], axes[1, 0], axes[1, 1]], config, cells, numbers)
    _reversion_vs_theory(axes[1, 2], config, cells, numbers)
    _progress_vs_theory(axes[1, 3], config, cells, numbers)
    if arms > 1:
        _control_panels(axes[2], config, res, numbers)
    n = int((~res.diverged).sum())
    arm_note = f", {arms} safety arms" if arms > 1 else ""
    return plotting.save(
        fig,
        path,
        f"Basin depth: MLP, {n} histories ({config.seeds} seeds per cell{arm_note}), "
        f"benign SGD lr {config.benign_learning_rate:g}; rows 1-2: main (mixed) arm",
    )


ARM_STYLE = {
    "mixed": ("#1f77b4", "o", "mixed (main)"),
    "hazard_only": ("#d62728", "s", "hazard only (control)"),
}


def _log_depth_axis(ax, ticks) -> None:
    """A log2 x axis with a labelled tick at each given value."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=6.5)
    ax.minorticks_off()


def _control_reversion(axes, config: Config, control: dict) -> None:
    """Reversion by depth per safety arm, against safety steps and against refused examples."""
    depths = np.asarray(config.safety_steps, float)
    for arm in config.safety_data:
        color, marker, label = ARM_STYLE[arm]
        profile = control["arms"][arm]["by_depth"]["reversion"]
        mean = np.array([profile[f"safety{s}"]["mean"] for s in config.safety_steps])
        sd = np.array([profile[f"safety{s}"]["sd"] for s in config.safety_steps])
        effect = control["arms"][arm]["reversion_vs_depth"]
        for ax, x in ((axes[0], depths), (axes[1], depths * refused_per_step(config, arm))):
            ax.errorbar(
                x,
                mean,
                yerr=sd,
                fmt=f"{marker}-",
                color=color,
                capsize=3,
                label=f"{label}: effect {effect['depth_effect']:.2f}, "
                f"rho {effect['spearman_rho']:.2f}",
            )
    ratio = control.get("depth_effect_ratio", float("nan"))
    axes[0].set_title(
        f"control: reversion after K = {config.benign_steps} by depth (mean ± sd)\n"
        f"depth effect control / main = {ratio:.2f}:\n{control.get('reading', '')}",
        fontsize=7.5,
    )
    axes[0].set_xlabel("safety-alignment steps (depth)")
    axes[1].set_title("the same at equal refused examples", fontsize=8.5)
    axes[1].set_xlabel("refused examples in the safety phase")
    refused = sorted(
        {int(d * refused_per_step(config, arm)) for d in depths for arm in config.safety_data}
    )
    _log_depth_axis(axes[0], depths.astype(int))
    _log_depth_axis(axes[1], refused)
    for ax in axes[:2]:
        ax.set_ylabel("reversion")
        ax.axhline(0, color="#999999", lw=0.6)
        ax.legend(frameon=False, fontsize=6.5)


def _control_answers(ax, config: Config, res: sweep.SweepResult, control: dict) -> None:
    """Harmfulness (aligned, after K) and task accuracy at theta_S by depth, per safety arm."""
    depths = np.asarray(config.safety_steps, float)
    for a, arm in enumerate(config.safety_data):
        color, marker, _ = ARM_STYLE[arm]
        values = derived(res, a)
        for name, style, what in (
            ("harm_aligned", ":", "harm at theta_S"),
            ("harm_after_benign", "-", f"harm after K = {config.benign_steps}"),
            ("task_accuracy_aligned", "--", "task acc. at theta_S"),
        ):
            ax.plot(
                depths,
                np.nanmean(values[name], axis=(0, 2)),
                style,
                marker=marker,
                color=color,
                ms=4,
                label=f"{what}, {arm}",
            )
    _log_depth_axis(ax, depths.astype(int))
    deepest = f"safety{config.safety_steps[-1]}"
    accuracy = {
        arm: control["arms"][arm]["by_depth"]["task_accuracy_aligned"][deepest]["mean"]
        for arm in config.safety_data
    }
    ax.set_xlabel("safety-alignment steps (depth)")
    ax.set_ylabel("probability (pooled over pretraining)")
    ax.set_title(
        "harmfulness and task accuracy, both arms\n"
        f"task accuracy at theta_S, depth {config.safety_steps[-1]}: "
        + ", ".join(f"{arm} {value:.2f}" for arm, value in accuracy.items()),
        fontsize=7.5,
    )
    ax.legend(frameon=False, fontsize=5.5)


def _control_map(ax, config: Config, res: sweep.SweepResult) -> None:
    """The hazard-only control's reversion by cell, cells not aligned marked."""
    values = derived(res, list(config.safety_data).index("hazard_only"))
    cells = {n: np.nanmean(v, axis=-1) for n, v in values.items()}
    plotting.heatmap(
        ax, cells["reversion"], config.safety_steps, config.pretrain_steps, cmap="viridis"
    )
    _mark_cells(ax, cells["gap"] < MIN_GAP)
    ax.set_title("control (hazard-only safety): reversion (x: gap < 0.3)", fontsize=8.5)
    ax.set_xlabel("safety-alignment steps (depth)")
    ax.set_ylabel("pretraining steps (mass)")


def _control_panels(axes, config: Config, res: sweep.SweepResult, numbers: dict) -> None:
    """The depth control beside the main arm: reversion by safety steps and by refused
    examples, harmfulness and task accuracy by depth, the control's reversion map."""
    control = numbers["control"]
    _control_reversion(axes[:2], config, control)
    _control_answers(axes[2], config, res, control)
    if "hazard_only" in config.safety_data:
        _control_map(axes[3], config, res)


EXPERIMENT = Experiment.defined_in(
    __name__, NAME, "basin depth: pretraining x alignment length -> reversion, barrier, curvature"
)
