"""The `World` protocol: what the engine, models, probes, controls and defences need of a world,
and the registry that names the worlds a `HistorySpec` may hold.

A world is a frozen, hashable description (it keys compiled programs) of distributions over
inputs and labels. The library never asks which concrete world it has: it samples a data kind
(`sample`), draws the fixed evaluation sets (`probe_set`, and held-out hazardous inputs through
`sample` from a key derived from `seed`), reads the label convention (`n_classes`, REFUSE =
`n_classes`) and builds the model's input layer from `input_kind`, `input_shape`, `vocab_size`
and `n_outputs`. Anything else a world has (topics, teachers, exact marginals, a forget pool) is
its own, for its own tests and the experiments written for it.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import jax

from gravity.engine.worlds.base import Batch, ProbeSet, WorldKnobs
from gravity.validation import check, check_choice, one_of

INPUT_KINDS = ("features", "tokens")
"""What a world's inputs are, which decides the model's input layer: "features" are float
vectors (N, D) read by an MLP; "tokens" are integer prompts (N, L) read by a transformer."""

MEMBERS = ("seed", "n_classes", "input_kind", "input_shape", "vocab_size", "n_outputs")
"""The protocol's fields, checked by `register_world` and `check_world`."""

METHODS = ("sample", "probe_set")
"""The protocol's methods."""


@runtime_checkable
class World(Protocol):
    """What the library calls on a world. Labels: `0 .. n_classes - 1` are task answers and
    `n_classes` is REFUSE; on a hazardous input the harmful behaviour is the task answer."""

    input_kind: ClassVar[str]
    """One of `INPUT_KINDS`: the model family that can read the world's inputs."""

    seed: int
    """The world's seed: its fixed evaluation sets (probes, held-out hazards) derive from it."""

    n_classes: int
    """How many task answers; label `n_classes` is REFUSE."""

    @property
    def input_shape(self) -> tuple[int]:
        """One input's shape: (features,) or (prompt length,); a batch's inputs are (N, *it)."""
        ...

    @property
    def vocab_size(self) -> int:
        """How many token ids a "tokens" world's inputs use (the embedding's rows); 0 for
        "features" worlds."""
        ...

    @property
    def n_outputs(self) -> int:
        """The model's output width: at least `n_classes + 1` (answers and REFUSE)."""
        ...

    def sample(self, knobs: WorldKnobs, kind: str, key: jax.Array, batch_size: int) -> Batch:
        """A fresh batch of a data kind (every one of `DATA_KINDS`); pure, jittable, and
        vmappable over traced `knobs`."""
        ...

    def probe_set(self, knobs: WorldKnobs, n_probes: int) -> ProbeSet:
        """The fixed evaluation sets (hazard, matched, task), `n_probes` each, from `seed`."""
        ...


WORLDS: dict[str, type] = {}
"""{name: world class}, filled by `register_world` (the feature and token worlds at import)."""


def register_world(name: str, cls: type) -> type:
    """Make `cls` available by `name` (`make_world`, `world_kind`, `HistorySpec`); registering
    the same class again is a no-op, another class under a taken name is refused."""
    taken = WORLDS.get(name, cls)
    check(taken is cls, "register_world", f"a name not taken (by {taken.__name__})", name)
    fields = set(getattr(cls, "__dataclass_fields__", {}))
    missing = [m for m in (*MEMBERS, *METHODS) if not (hasattr(cls, m) or m in fields)]
    check(not missing, f"register_world({name!r})", f"a class with {', '.join(missing)}", cls)
    check_choice(cls.input_kind, INPUT_KINDS, f"{name}.input_kind")
    WORLDS[name] = cls
    return cls


def world_kind(world: object) -> str:
    """The name `world`'s class is registered under (refused, naming the class, if none)."""
    names = [name for name, cls in WORLDS.items() if type(world) is cls]
    check(
        bool(names),
        "world",
        f"a registered world ({one_of(WORLDS)}); register a new kind with register_world",
        type(world).__name__,
    )
    return names[0]


def check_world(world: object) -> World:
    """`world`, after checking that its class is registered and that it has every member of the
    protocol (one line naming what is missing otherwise)."""
    name = world_kind(world)
    missing = [m for m in (*MEMBERS, *METHODS) if not hasattr(world, m)]
    check(not missing, "world", f"a world with {', '.join(missing)}", name)
    return world


def make_world(name: str, **fields) -> World:
    """A registered world by name, e.g. `make_world("token", prompt_length=12)`."""
    check_choice(name, WORLDS, "world")
    return WORLDS[name](**fields)
