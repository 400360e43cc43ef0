"""Basin depth map: pretraining length (the "mass") x alignment length (the "depth").

The gravitational reading says a long pretraining digs a deep basin and a short alignment is a
shallow displacement from it, so reversion under benign fine-tuning should grow with the mass and
shrink with the depth. Over a 6 x 6 grid of pretraining and safety-alignment lengths, each cell
with 28 seeds (1,008 histories), this measures per run:

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
- A tree with two levels, one compiled program: the pretraining lengths are snapshots of one
  3,200-step pretraining phase, each branching into its own helpful-only phase and one 256-step
  safety phase whose snapshots (8 ... 256) are the depths, each branching into the benign phase
  with its landscape and theory measurements. A phase of n steps is the exact prefix of the same
  phase with more steps (per-step keys), so each leaf is the history with those lengths: 28
  pretraining trunks, 168 safety trunks, 1,008 histories.
- Landscape measurements use a fixed benign evaluation batch of 256 inputs (the same for every
  run), 11 points on the path.
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

NAME = "basin_depth"
BENIGN_METRICS = ("harmfulness", "weight_progress", "alignment", "task_accuracy")
MIN_GAP = 0.3


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


def quick(config: Config) -> Config:
    return dataclasses.replace(
        config, pretrain_steps=(200, 800), safety_steps=(16, 64, 256), seeds=4
    )


def history_spec(config: Config):
    """The standard MLP history with one pretraining phase as long as the longest and one
    safety phase as long as the deepest, each with a snapshot at every length, and an SGD
    benign phase."""
    base = presets.standard_spec("mlp", config.size)
    batch = config.batch_size if config.size == "standard" else base.phases[0].batch_size
    pretrain, helpful, safety, benign = base.phases
    phases = (
        dataclasses.replace(
            pretrain,
            steps=max(config.pretrain_steps),
            batch_size=batch,
            n_records=2,
            snapshots=tuple(config.pretrain_steps),
        ),
        dataclasses.replace(helpful, steps=config.helpful_steps, batch_size=batch),
        dataclasses.replace(
            safety,
            steps=max(config.safety_steps),
            batch_size=batch,
            n_records=1,
            snapshots=tuple(config.safety_steps),
        ),
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
    """Pretraining lengths and depths as two levels of branches from snapshots."""
    spec = history_spec(config)
    rates = {
        "pretrain": config.learning_rate,
        "helpful": config.learning_rate,
        "safety": config.learning_rate,
        "benign": config.benign_learning_rate,
    }

    def build(pretrain_steps, safety_steps):
        snapshot = {
            "pretrain": config.pretrain_steps.index(pretrain_steps),
            "safety": config.safety_steps.index(safety_steps),
        }
        knobs = dataclasses.replace(
            presets.standard_knobs(spec), learning_rate=rates, snapshot=snapshot
        )
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
                "safety_steps",
                tuple(config.safety_steps),
                note=f"snapshots of one {max(config.safety_steps)}-step safety phase",
            ),
        ),
        branch_after=("pretrain", "safety"),
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


def derived(res: sweep.SweepResult) -> dict[str, np.ndarray]:
    """Per-run arrays (pretrain x safety x seeds) the figure and the numbers use."""
    h_s, h_h = res.valid("harm_aligned"), res.valid("harm_helpful")
    harm = res.valid("benign/harmfulness")
    path = res.valid("path_losses")
    return {
        "reversion": (harm[..., -1] - h_s) / (h_h - h_s),
        "harm_aligned": h_s,
        "harm_helpful": h_h,
        "gap": h_h - h_s,
        "harm_pretrained": res.valid("harm_pretrained"),
        "barrier": res.valid("barrier"),
        "barrier_linear": res.valid("barrier_linear"),
        "benign_loss_drop": path[..., 0] - path[..., -1],
        "top_eigenvalue": res.valid("top_eigenvalues")[..., 0],
        "benign_pull": res.valid("benign_pull"),
        "predicted": res.valid("predicted_progress")[..., -1],
        "predicted_linear_harm": res.valid("predicted_harm_gain")[..., -1] / (h_h - h_s),
        "weight_progress": res.valid("benign/weight_progress")[..., -1],
    }


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    """Cell means, trends with mass and depth, and how well the theory predicts reversion."""
    values = derived(results["mlp"])
    cells = {name: np.nanmean(v, axis=-1) for name, v in values.items()}
    grid = {
        name: {
            f"pretrain{p}": {
                f"safety{s}": round(float(cells[name][i, j]), 4)
                for j, s in enumerate(config.safety_steps)
            }
            for i, p in enumerate(config.pretrain_steps)
        }
        for name in cells
    }
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
        "benign_steps": config.benign_steps,
    }


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    res = results["mlp"]
    cells = {name: np.nanmean(v, axis=-1) for name, v in derived(res).items()}
    aligned = cells["gap"] >= MIN_GAP
    fig, axes = plotting.figure(4, 2, width=4.1, height=3.4)
    k = config.benign_steps
    panels = (
        (axes[0, 0], "reversion", f"reversion after K = {k} benign steps", "viridis", "{:.2f}"),
        (
            axes[0, 1],
            "barrier",
            "benign-loss barrier theta_S -> theta_H "
            f"(max over runs {numbers['barrier_max_over_runs']:.2g})",
            "magma",
            "{:.3f}",
        ),
        (
            axes[0, 2],
            "benign_loss_drop",
            "benign loss drop L(theta_S) - L(theta_H)",
            "magma",
            "{:.2f}",
        ),
        (axes[0, 3], "top_eigenvalue", "top Hessian eigenvalue at theta_S", "cividis", "{:.3g}"),
        (axes[1, 0], "predicted", f"theory: predicted d_K.w/|w|^2, K = {k}", "viridis", "{:.2f}"),
        (axes[1, 1], "gap", "alignment gap h_H - h_S (x: < 0.3, not aligned)", "bone", "{:.2f}"),
    )
    for ax, name, title, cmap, fmt in panels:
        plotting.heatmap(
            ax, cells[name], config.safety_steps, config.pretrain_steps, cmap=cmap, fmt=fmt
        )
        ax.set_title(title, fontsize=8.5)
        ax.set_xlabel("safety-alignment steps (depth)")
        ax.set_ylabel("pretraining steps (mass)")
        for i, j in zip(*np.nonzero(~aligned), strict=True):
            ax.plot(j, i, marker="x", color="#d62728", ms=14, mew=0.8, alpha=0.6)
    colors = plotting.plt.cm.viridis(np.linspace(0, 0.95, len(config.pretrain_steps)))
    ax = axes[1, 2]
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
    ax = axes[1, 3]
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
    n = int((~res.diverged).sum())
    return plotting.save(
        fig,
        path,
        f"Basin depth: MLP, {n} histories ({config.seeds} seeds per cell), "
        f"benign SGD lr {config.benign_learning_rate:g}",
    )


EXPERIMENT = Experiment(
    name=NAME,
    description="basin depth: pretraining x alignment length -> reversion, barrier, curvature",
    config=Config,
    quick=quick,
    sweeps=sweeps,
    summarise=summarise,
    plot=plot,
)
