"""The basin between an aligned model and its witness, per run: the benign loss's landscape
between theta_S and theta_H (barrier, top curvature, the benign gradient's pull toward theta_H)
and the quadratic theory's prediction of the benign phase (`gravity.instruments.theory`), measured
inside the sweep; then the per-run quantities a map of basins reads off those outputs
(`basin_readout`), read over the map's pretraining lengths (the "mass") and alignment lengths (the
"depth") (`BasinMap`), and a depth control: safety arms compared by depth (`depth_control`).

The barrier and curvature are `gravity.instruments.landscape`'s; the prediction is the low-rank
quadratic model at theta_S run forward in closed form for the benign phase's gradient-descent steps,
read out as the harmfulness proxy d_K . w / |w|^2 with w = theta_H - theta_S.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gravity.engine import geometry
from gravity.engine.history import Trunk, behaviour, cross_entropy, run_history
from gravity.engine.models import network
from gravity.instruments import effects, landscape, theory

BENIGN_METRICS = ("harmfulness", "weight_progress", "alignment", "task_accuracy")
"""The benign phase's metrics a `BasinMeasure` keeps, at every record."""
BY_DEPTH = ("reversion", "harm_aligned", "harm_after_benign", "gap", "task_accuracy_aligned")
"""The `basin_readout` quantities a depth profile reports at every depth."""


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


def basin_readout(valid: Callable[[str], np.ndarray]) -> dict[str, np.ndarray]:
    """Per-run arrays from a `BasinMeasure`'s outputs, given `valid(name)`: an output by its
    flat name ("benign/harmfulness") with diverged runs NaN and the record axis last (as
    `SweepResult.valid`, sliced to the runs wanted).

    reversion is (h_K - h_S) / (h_H - h_S) after the benign phase's K steps; "predicted" is the
    theory's harmfulness proxy at K and "predicted_linear_harm" its first-order harmfulness gain
    in the same 0-to-1 units; "weight_progress" the measured d_K . w / |w|^2.
    """
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


@dataclasses.dataclass(frozen=True)
class BasinMap:
    """A map of basins: per-run arrays laid out (pretraining lengths, safety lengths, seeds), as
    `basin_readout` gives them for one safety arm, read by cell (reported as
    {"pretrain100": {"safety8": ...}}), along either length, and by depth."""

    pretrain_steps: tuple[int, ...]
    safety_steps: tuple[int, ...]

    def table(self, cells_PxS) -> dict[str, dict[str, float]]:
        """Cell values (pretraining x safety lengths) as the report's nested table."""
        return effects.cell_table(
            cells_PxS, self.pretrain_steps, self.safety_steps, rows="pretrain", columns="safety"
        )

    def lengths(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Every run's pretraining length (its mass) and safety length (its depth)."""
        return (
            effects.along(self.pretrain_steps, shape, 0),
            effects.along(self.safety_steps, shape, 1),
        )

    def trend(self, values, axis: int, effect: str | None = None) -> dict[str, float]:
        """`values` from the shortest to the longest pretraining (axis 0) or alignment (axis 1),
        pooled over the other length and the seeds, with the Spearman of every run with its
        length (and the shortest minus the longest as `effect`, when named)."""
        levels = (self.pretrain_steps, self.safety_steps)[axis]
        lengths = ("pretraining", "alignment")[axis]
        first, last = f"shortest_{lengths}", f"longest_{lengths}"
        return effects.level_trend(values, levels, axis, first=first, last=last, effect=effect)

    def depth_profile(self, values: Mapping[str, np.ndarray]) -> dict:
        """One arm by depth, pooled over pretraining lengths and seeds: each of `BY_DEPTH` at
        every depth, and reversion's depth effect (shallowest minus deepest) and trend."""
        return {
            "by_depth": {
                name: effects.by_level(values[name], self.safety_steps, 1, "safety")
                for name in BY_DEPTH
            },
            "reversion_vs_depth": self.trend(values["reversion"], 1, effect="depth_effect"),
        }


def depth_control(
    grid: BasinMap,
    arms: Mapping[str, Mapping[str, np.ndarray]],
    refused_per_step: Mapping[str, float],
    rule: effects.RatioRule,
    main: str = "mixed",
    control: str = "hazard_only",
) -> dict:
    """Safety arms compared by depth: each arm's `depth_profile`; with the `control` arm, the
    pre-registered reading (`rule`) of its depth effect against the `main` arm's, reversion by
    depth per arm, and the two compared at equal refused examples (the control at d steps
    against the main arm at the depth with as many refusals, from `refused_per_step`)."""
    profiles = {arm: grid.depth_profile(values) for arm, values in arms.items()}
    if control not in arms:
        return {"arms": profiles}
    effect = [profiles[arm]["reversion_vs_depth"]["depth_effect"] for arm in (main, control)]
    ratio, reading = rule(*effect)
    pair = {arm: arms[arm] for arm in (control, main)}
    return {
        "arms": profiles,
        "depth_effect_ratio": ratio,
        "reading": reading,
        "reversion_by_depth": {
            arm: {k: v["mean"] for k, v in profile["by_depth"]["reversion"].items()}
            for arm, profile in profiles.items()
        },
        "equal_refused_examples": effects.equal_dose_table(
            pair,
            refused_per_step,
            grid.safety_steps,
            1,
            ("reversion", "harm_after_benign"),
            level="safety_steps",
            dose="refused_examples",
        ),
    }
