"""The Defence protocol: one plug-in per defence against reversion, each with optional hooks
into a benign phase, and the registry whose order the traced `Knobs.defence` indexes.

A phase compiles the defences its `PhaseSpec.defences` names; every step it calls each compiled
defence's hooks and keeps a hook's result only where the traced knob selects that defence
(`jnp.where`), so every defence at every strength shares one compiled program. A hook left at
its default is the identity, so a defence overrides only where it acts:

- `state`: what it compares against, built once at the phase's start from theta_S, theta_H and
  a safety batch (a Fisher, an alignment matrix, a mask);
- `batch`: the step's training batch (rehearsal mixes safety data in);
- `loss`: a term added to the task loss, optimizer-matched (EWC, L2-SP);
- `gradient`: the gradient before the optimizer (the steering terms, from one probe pass);
- `update`: the optimizer's update, before it is applied (SafeLoRA's projection, freezing);
- `edit`: the parameters at the phase's end, a post-hoc weight edit after fine-tuning (what
  later phases and the history's `params` see; the phase's own records are of the unedited run);
- `batch_loss`: a term on the step's batch, given the model's logits on it (Qi et al.'s
  token-wise constraint compares them with theta_S's);
- `carry` and `advance`: a defence whose state moves during the phase (Lisa's alternation and
  its proximal anchor, the parameters at the last switch) carries a value from step to step:
  `carry` gives it at the phase's start, `advance` turns it, the step index and the parameters
  before the step into the state this step's hooks see and the value carried on. By default
  nothing is carried and every step sees the phase-start state (the program is unchanged).

A defence that acts at alignment time (Vaccine, Booster, RepNoise, TAR) is compiled into the
safety phase itself (`acts_at_alignment`; there is no theta_S yet, so its `Setup` has none). Such
a defence draws its own data each step (hazardous inputs, simulated fine-tuning batches) in
`advance`, from `Setup.key` folded with the step, `Setup.world_knobs` and `Setup.phase`.

The steering family (`gravity.defences.steering`: block, push, project and their controls) is
one more Defence, selected among its variants by `Knobs.intervention` instead: it registers in
its own slot (`register_steering`), so the engine runs it without importing any defence.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from gravity.validation import check_choice

NONE = "none"


@dataclasses.dataclass(frozen=True)
class Setup:
    """What a defence's per-phase state may be built from: the network, the anchors theta_S
    and theta_H (None in a phase before them: the safety phase an alignment-time defence runs
    in), a safety batch drawn for it (the Fisher's), the probes, the phase's reversion
    references (`history._Reversion`; None before alignment) and the traced steering variant
    (`Knobs.intervention`); for a defence that draws its own data each step, the world's knobs,
    the phase's key for such draws (fold in the step) and the phase (`PhaseSpec`)."""

    net: Any
    theta_s: Any
    theta_h: Any
    safety_batch: Any = None
    probes: Any = None
    reversion: Any = None
    variant: Any = 0
    world_knobs: Any = None
    key: Any = None
    phase: Any = None

    def draw(self, kind: str, step, stream: int = 0, **world):
        """A batch of the world's `kind` data (the phase's batch size) for step `step` (traced)
        of the phase, from the defence's stream `stream` (distinct streams: independent draws);
        `world` replaces world knobs for this draw (a defence's own assumption about data it
        cannot see, e.g. the benign overlap of a fine-tuning that comes after it)."""
        key = jax.random.fold_in(jax.random.fold_in(self.key, step), stream)
        knobs = dataclasses.replace(self.world_knobs, **world) if world else self.world_knobs
        return self.net.world.sample(knobs, kind, key, self.phase.batch_size)


@dataclasses.dataclass(frozen=True)
class Defence:
    """A defence: its name and one line on what it does; every hook defaults to the identity.
    `acts_at_alignment`: it may be compiled into a safety phase (it needs no theta_S)."""

    acts_at_alignment: ClassVar[bool] = False

    name: str
    description: str

    def state(self, setup: Setup) -> Any:
        """Its per-phase state (None: it needs none)."""
        return None

    def batch(self, state, world, world_knobs, key, batch, strength):
        """The step's training batch (`key`: the step's own stream for defences)."""
        return batch

    def loss(self, params, state, strength):
        """Its loss term at `params` (None: it adds none)."""
        return None

    def gradient(self, params, grads, state, strength):
        """The gradient, transformed before the optimizer sees it, and what this step's `update`
        hook may reuse (`step`)."""
        return grads, None

    def update(self, updates, state, strength, step=None):
        """The optimizer's update, transformed (`step`: the `gradient` hook's second output)."""
        return updates

    def edit(self, params, state, strength):
        """The phase's final parameters, edited."""
        return params

    def batch_loss(self, params, state, strength, batch, logits):
        """Its loss term on the step's batch, `logits` the model's at `params` on its inputs
        (None: it adds none)."""
        return None

    def carry(self, state, params) -> Any:
        """What it carries from step to step, at the phase's start (`params`: the phase's initial
        parameters; None: nothing)."""
        return None

    def advance(self, state, carried, params, step):
        """Before step `step` (0-based within the phase, traced) at `params`: the state this
        step's batch, loss, gradient and update hooks see, and what is carried to the next step."""
        return state, carried


@dataclasses.dataclass(frozen=True)
class DrawingAlignmentDefence(Defence):
    """A defence acting in the safety phase whose per-step batches it draws itself: its state is
    the `Setup` (`Setup.draw`), which its `advance` hook turns into the step's state."""

    acts_at_alignment: ClassVar[bool] = True

    def state(self, setup: Setup) -> Setup:
        return setup


REGISTRY: dict[str, Defence] = {NONE: Defence(NONE, "plain benign fine-tuning (baseline)")}


def register(defence: Defence) -> Defence:
    """Add a defence to the registry (its index is its position); returns it."""
    if defence.name in REGISTRY:
        raise ValueError(f"defence {defence.name!r} is already registered")
    REGISTRY[defence.name] = defence
    return defence


def unregister(name: str) -> None:
    """Remove a defence registered after the built-ins (the built-ins' indices never move)."""
    names = list(REGISTRY)
    if names[-1] != name:
        raise ValueError(f"only the last registered defence can be removed, not {name!r}")
    del REGISTRY[name]


@contextlib.contextmanager
def registered(defence: Defence) -> Iterator[Defence]:
    """`defence` registered for the duration of a with block (tests, one-off studies)."""
    register(defence)
    try:
        yield defence
    finally:
        unregister(defence.name)


_STEERING: dict[str, Any] = {}


def register_steering(defence: Defence, variants: tuple[str, ...]) -> Defence:
    """The defence phases compiled with `interventions=True` run, and its variants' names (in
    `Knobs.intervention` index order); returns it."""
    _STEERING.update(defence=defence, variants=tuple(variants))
    return defence


def steering() -> tuple[Defence, tuple[str, ...]]:
    """The registered steering defence and its variants' names."""
    if not _STEERING:
        raise RuntimeError("no steering defence is registered: import gravity.defences first")
    return _STEERING["defence"], _STEERING["variants"]


def names() -> tuple[str, ...]:
    """The registered defences' names, "none" first, in index order."""
    return tuple(REGISTRY)


def get(name: str) -> Defence:
    check_choice(name, REGISTRY, "defence")
    return REGISTRY[name]


def check_names(chosen: tuple[str, ...], field: str) -> None:
    for name in chosen:
        check_choice(name, names()[1:], field)


def index(name: str) -> int:
    """The index of a defence, for `Knobs.defence`."""
    get(name)
    return names().index(name)


def selected(knob, name: str) -> jax.Array:
    """Whether the traced `Knobs.defence` picks `name`."""
    return jnp.asarray(knob) == index(name)


def compiled(chosen: tuple[str, ...]) -> tuple[Defence, ...]:
    """The defences a phase compiles, in registry order."""
    return tuple(d for d in REGISTRY.values() if d.name in chosen)
