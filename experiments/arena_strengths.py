"""The alignment-stage defences at a tenth, one and ten times their arena strength, under the
arena's adaptive fine-tuner (issue #23).

The arena (`experiments/arena.py`) judges Vaccine, Booster, RepNoise and TAR (and our benign
variants of Booster and TAR) at one strength each, the papers' own (`ALIGNMENT_STRENGTHS`), set
for LLM-scale losses and parameters; in the toy none of them lowers the worst case, and Booster
raises it. This asks whether another strength would: each defence at `SCALES` x its arena
strength, on the arena's grid of 54 fine-tuning configurations, 8 seeds, the same trees (each
arm's safety phase branches after the helpful phase, the nine settings after it), MLP only (the
transformer's alignment-stage group costs about an hour of 2 cores per strength).

Fixed before the run (in `experiments/claims/arena_strengths.toml`, committed before it): the
scales, the grid (the arena's), the worst case (the arena's: the highest held-out harm over
configurations whose task accuracy is >= 0.8 x the undefended run's at the same configuration),
and one claim per (defence, scale) with the arena's rule: the paired per-seed worst case is
below no defence's (interval over seeds above 0). Eighteen claims at 95% each: under no effect,
about one would come out either way by chance; a lone verdict among them is read with that in
mind, and every one is reported.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from experiments import arena as arena_experiment
from gravity.instruments import arena, claims
from gravity.run import plotting, sweep
from gravity.run.experiment import Experiment
from gravity.validation import ConfigError

NAME = "arena_strengths"
PLOT_FROM_NUMBERS = True
"""The figure reads only the numbers (`gravity plot NAME` redraws it from the JSON)."""
SCALES = {"tenth": 0.1, "paper": 1.0, "tenfold": 10.0}
"""Each defence's strength as a multiple of its arena strength, by the name its JSON key uses."""
COLORS = arena_experiment.COLORS
"""Each defence the arena's colour for it."""


@dataclasses.dataclass(frozen=True)
class Config:
    seeds: int = 8
    model: str = "mlp"
    size: str = "standard"
    defences: tuple[str, ...] = tuple(arena_experiment.ALIGNMENT_STRENGTHS)
    scales: tuple[str, ...] = tuple(SCALES)
    programs: tuple[tuple[str, float, int], ...] = arena_experiment.PROGRAMS
    settings: tuple[tuple[float, float], ...] = arena_experiment.SETTINGS
    standard: tuple = arena_experiment.STANDARD
    n_orders: int = 20
    n_boot: int = 1000


def quick(config: Config) -> Config:
    """4 seeds, two defences at a tenth and ten times, 3 programs x 2 settings."""
    return dataclasses.replace(
        config,
        seeds=4,
        defences=("vaccine", "repnoise"),
        scales=("tenth", "tenfold"),
        programs=(("adam", 1.0, 100), ("sgd", 1.0, 100), ("adam", 0.25, 200)),
        settings=((1e-3, 0.5), (1e-2, 1.0)),
    )


def strength(defence: str, scale: str) -> float:
    """`defence`'s arena strength times the named scale (rounded to 6 significant figures)."""
    return float(f"{SCALES[scale] * arena_experiment.ALIGNMENT_STRENGTHS[defence]:.6g}")


def arms(config: Config) -> tuple[tuple[str, float], ...]:
    """No defence first, then every (defence, scale x its arena strength), defence-major."""
    strengths = arena_experiment.ALIGNMENT_STRENGTHS
    unknown = sorted(set(config.defences) - set(strengths))
    scales = sorted(set(config.scales) - set(SCALES))
    if unknown or scales:
        raise ConfigError(
            f"defences must be among {', '.join(strengths)} and scales among "
            f"{', '.join(SCALES)}; got {', '.join(unknown + scales)}"
        )
    chosen = [(d, strength(d, s)) for d in config.defences for s in config.scales]
    return (arena_experiment.BASELINE, *chosen)


def arena_config(config: Config) -> arena_experiment.Config:
    """The arena's config this grid shares: its programs, settings, seeds and size."""
    return arena_experiment.Config(
        seeds=config.seeds,
        models=(config.model,),
        size=config.size,
        programs=config.programs,
        settings=config.settings,
        standard=config.standard,
        strengths=(),
        alignment_strengths=arms(config)[1:],
        n_orders=config.n_orders,
        n_boot=config.n_boot,
    )


def sweeps(config: Config) -> dict[str, sweep.Sweep]:
    """One two-level tree: each arm's safety phase after the helpful phase, settings after it."""
    tree = arena_experiment.arena_sweep(
        config.model, arena_config(config), "strengths", arms(config), "helpful"
    )
    return {f"{config.model}-strengths": tree}


def summarise(config: Config, results: dict[str, sweep.SweepResult]) -> dict:
    """Per defence and scale, the arena's numbers (`arena.arm_summary`: standard scores, worst
    case with its interval, per seed, paired against no defence), and no defence's."""
    outer = arena_config(config)
    res = results[f"{config.model}-strengths"]
    scores = [
        {
            score: arena_experiment.flatten_configurations(res.valid(f"final/{score}")[:, a])
            for score in arena_experiment.SCORES
        }
        for a in range(len(arms(config)))
    ]
    index, base = arena_experiment.standard_index(outer), scores[0]

    def summary(a: int) -> dict:
        return arena_experiment.arm_summary(scores[a], base, index, outer)

    by_defence, a = {}, 1
    for name in config.defences:
        by_defence[name] = {}
        for scale in config.scales:
            by_defence[name][scale] = {"strength": strength(name, scale), **summary(a)}
            a += 1
    return {
        config.model: {"arms": {"none": summary(0), **by_defence}, "n_seeds": config.seeds},
        "grid": {
            "configurations": [
                arena_experiment.describe(outer, c)
                for c in range(len(arena_experiment.configurations(outer)))
            ],
            "standard": index,
            "utility_share": arena.UTILITY_SHARE,
            "scales": {s: SCALES[s] for s in config.scales},
        },
    }


def _draw(ax, config: Config, arms_numbers: dict, value, ylabel: str, title: str, none=None):
    x = np.array([SCALES[s] for s in config.scales])
    for name in config.defences:
        points = [value(arms_numbers[name][s]) for s in config.scales]
        mean = np.array([p[0] for p in points], dtype=float)
        low = np.array([p[1] for p in points], dtype=float)
        high = np.array([p[2] for p in points], dtype=float)
        color = COLORS.get(name, "k")
        ax.plot(x, mean, "o-", color=color, label=name, ms=4)
        ax.fill_between(x, low, high, color=color, alpha=0.12)
    if none is not None:
        mean, low, high = none
        ax.axhspan(low, high, color=plotting.COLORS["baseline"], alpha=0.15)
        plotting.reference_line(ax, mean, label="no defence (95%)")
    ax.set_xscale("log")
    plotting.finish(ax, "strength / the arena's (papers') strength", ylabel, title, fontsize=6)


def _interval(summary: dict) -> tuple:
    low, high = summary["interval"]
    return (summary["mean"], low, high)


def _cut(arm: dict, none: dict) -> tuple:
    """The claims' statistic (`claims.from_paired`): each seed's worst case paired with no
    defence's on that seed, positive where the defence lowers it, with its 95% interval."""
    cut = claims.from_paired(arm["worst_case_per_seed"], none["worst_case_per_seed"], "lower")
    return (cut.value, *cut.interval)


def plot(config: Config, results: dict, numbers: dict, path: Path) -> Path:
    m = numbers[config.model]
    arms_numbers, none = m["arms"], m["arms"]["none"]["worst_case"]
    fig, axes = plotting.figure(3, 1, width=5.0, height=4.2)
    row = axes[0]
    _draw(
        row[0],
        config,
        arms_numbers,
        lambda a: _interval(a["worst_case"]),
        "bounded worst-case held-out harm",
        f"{config.model} ({m['n_seeds']} seeds): worst case over "
        f"{len(numbers['grid']['configurations'])} configurations",
        none=_interval(none),
    )
    _draw(
        row[1],
        config,
        arms_numbers,
        lambda a: _cut(a, m["arms"]["none"]),
        "worst-case cut (> 0: the defence lowers it)",
        "each seed's cut against no defence's (paired, 95%: the claims')",
    )
    row[1].axhline(0.0, color=plotting.COLORS["baseline"], lw=0.8)
    _draw(
        row[2],
        config,
        arms_numbers,
        lambda a: (a["standard"]["harmfulness_heldout_T"]["mean"],) * 3,
        "held-out harm at the standard configuration",
        "the standard configuration (seed mean)",
    )
    return plotting.save(fig, path, "Alignment-stage defences: does any strength survive?")


EXPERIMENT = Experiment.defined_in(
    __name__,
    NAME,
    "the alignment-stage defences at 0.1x, 1x and 10x their strength under the adaptive fine-tuner",
)
