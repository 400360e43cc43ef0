"""Synthetic worlds with exactly known distributions, one module per family, behind one protocol.

`World` (gravity.worlds.protocol) is what the library needs of a world; a class registered with
`register_world` can be used wherever the feature and token worlds are (docs/design.md, "Writing
a world").
"""

from gravity.validation import ConfigError
from gravity.worlds.base import DATA_KINDS, Batch, ProbeSet, TopicWorld, WorldKnobs
from gravity.worlds.feature import FeatureWorld
from gravity.worlds.protocol import (
    INPUT_KINDS,
    WORLDS,
    World,
    check_world,
    make_world,
    register_world,
    world_kind,
)
from gravity.worlds.token import TokenWorld

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
