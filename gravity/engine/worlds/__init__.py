"""Synthetic worlds with exactly known distributions, one module per family, behind one protocol.

`World` (gravity.engine.worlds.protocol) is what the library needs of a world; a class registered
with `register_world` can be used wherever the feature and token worlds are (docs/design.md,
"Writing a world").
"""

from gravity.engine.worlds.base import DATA_KINDS, Batch, ProbeSet, TopicWorld, WorldKnobs
from gravity.engine.worlds.feature import FeatureWorld
from gravity.engine.worlds.protocol import (
    INPUT_KINDS,
    WORLDS,
    World,
    check_world,
    make_world,
    register_world,
    world_kind,
)
from gravity.engine.worlds.token import TokenWorld
from gravity.validation import ConfigError

__all__ = [
    "DATA_KINDS",
    "INPUT_KINDS",
    "WORLDS",
    "Batch",
    "ConfigError",
    "FeatureWorld",
    "ProbeSet",
    "TokenWorld",
    "TopicWorld",
    "World",
    "WorldKnobs",
    "check_world",
    "make_world",
    "register_world",
    "world_kind",
]
