"""The standard histories every experiment starts from, one per model family.

Choices and why (fixed before any result was looked at, not tuned to match the paper):
- Pretraining is 10-15x longer than the other phases together: it is the "mass" that digs the
  basin. Helpful-only, safety and benign phases are 100 steps each, the paper's T = 100.
- One optimizer (Adam, lr 1e-3) for every phase, so no phase is privileged by its optimizer.
- World defaults: hazardous inputs are 20% of pretraining and are complied with 90% of the time
  (pretraining teaches the harmful behaviour); half the benign inputs share the hazard topic's
  content (`benign_overlap = 0.5`), so benign data trains the same output channel on similar
  inputs, which is where erosion can come from. The `overlap` experiment sweeps that knob.
- MLP 33-128-128-16 on batches of 64 (about 8.7 MFLOP a step); transformer with 2 layers,
  d_model 32, 4 heads, d_ff 128 on 8-token prompts, batches of 32, sized so the quick runs stay
  within a minute on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from gravity.engine.models import ModelConfig
from gravity.engine.spec import HistorySpec, Knobs, PhaseSpec, with_phase
from gravity.engine.worlds import FeatureWorld, TokenWorld, WorldKnobs
from gravity.validation import check_choice

MODELS = ("mlp", "transformer")


STANDARD_PHASES = ("pretrain", "helpful", "safety", "benign")


@dataclasses.dataclass(frozen=True)
class StandardConfig:
    """The fields an experiment on the standard histories starts from: its seeds, the models
    (each on its own world), the learning rate of every phase, and the preset size."""

    seeds: int = 16
    models: tuple[str, ...] = MODELS
    learning_rate: float = 1e-3
    size: str = "standard"


def standard_phases(
    pretrain_steps: int, batch_size: int, benign_steps: int = 100, align_steps: int = 100
) -> tuple[PhaseSpec, ...]:
    """P -> H -> S -> T, benign phase recorded every step for its first 20 steps."""
    return (
        PhaseSpec("pretrain", "pretrain", pretrain_steps, batch_size, n_records=12),
        PhaseSpec("helpful", "helpful", align_steps, batch_size),
        PhaseSpec("safety", "safety", align_steps, batch_size),
        PhaseSpec("benign", "benign", benign_steps, batch_size, dense_steps=20, n_records=12),
    )


SIZES = ("standard", "tiny")


def standard_spec(model: str = "mlp", size: str = "standard", **changes) -> HistorySpec:
    """The standard history for a model family; `changes` replace HistorySpec fields.

    size "tiny" keeps the structure with tiny widths and step counts: for tests and smoke runs
    (it compiles in seconds), not for conclusions.
    """
    check_choice(model, MODELS, "model")
    check_choice(size, SIZES, "size")
    if size == "tiny":
        spec = tiny_spec(model)
    elif model == "mlp":
        spec = HistorySpec(
            world=FeatureWorld(),
            model=ModelConfig(kind="mlp", hidden=(128, 128)),
            phases=standard_phases(pretrain_steps=1500, batch_size=64),
        )
    else:
        spec = HistorySpec(
            world=TokenWorld(),
            model=ModelConfig(
                kind="transformer", d_model=32, n_layers=2, n_heads=4, d_ff=128, readout_only=True
            ),
            phases=standard_phases(pretrain_steps=800, batch_size=32),
        )
    return dataclasses.replace(spec, **changes)


def standard_knobs(spec: HistorySpec, learning_rate: float = 1e-3, **world) -> Knobs:
    """The same learning rate in every phase and the default world knobs (or `world` changes)."""
    rates = {name: jnp.float32(learning_rate) for name in spec.phase_names}
    return Knobs(learning_rate=rates, world=WorldKnobs(**world))


def seeds_for(model: str, seeds: int, transformer_seeds: int) -> int:
    """The seeds a model family runs: all of them for the MLP, at most `transformer_seeds` for
    the transformer (several times the cost per step)."""
    return seeds if model == "mlp" else min(seeds, transformer_seeds)


def teaching_spec(small: bool, model: str = "mlp") -> tuple[HistorySpec, float]:
    """The notebooks' history and learning rate: the standard history at 1e-3, or (`small`, the
    size CI runs) the tiny one with phases long enough for it to learn each, at 1e-2."""
    if not small:
        return standard_spec(model), 1e-3
    spec = standard_spec(model, "tiny")
    for name, steps in {"pretrain": 400, "helpful": 50, "safety": 50, "benign": 50}.items():
        spec = with_phase(spec, name, steps=steps)
    return spec, 1e-2


def tiny_spec(model: str) -> HistorySpec:
    phases = (
        PhaseSpec("pretrain", "pretrain", 40, 8, n_records=3),
        PhaseSpec("helpful", "helpful", 10, 8, n_records=2),
        PhaseSpec("safety", "safety", 10, 8, n_records=2),
        PhaseSpec("benign", "benign", 20, 8, dense_steps=5, n_records=3),
    )
    if model == "mlp":
        world = FeatureWorld(n_topics=2, features_per_topic=4, n_classes=4)
        config = ModelConfig(kind="mlp", hidden=(16, 16))
    else:
        world = TokenWorld(n_topics=2, tokens_per_topic=4, n_classes=4, prompt_length=4)
        config = ModelConfig(
            kind="transformer", d_model=8, n_layers=1, n_heads=2, d_ff=16, readout_only=True
        )
    return HistorySpec(world=world, model=config, phases=phases, n_probes=16)
