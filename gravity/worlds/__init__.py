"""Synthetic worlds with exactly known distributions, one module per family."""

from gravity.validation import ConfigError, check_choice
from gravity.worlds.base import DATA_KINDS, Batch, ProbeSet, WorldKnobs
from gravity.worlds.feature import FeatureWorld
from gravity.worlds.token import TokenWorld

WORLDS = {"feature": FeatureWorld, "token": TokenWorld}

World = FeatureWorld | TokenWorld


def make_world(name: str, **fields) -> World:
    """A world by name, e.g. `make_world("token", prompt_length=12)`."""
    check_choice(name, WORLDS, "world")
    return WORLDS[name](**fields)


__all__ = [
    "DATA_KINDS",
    "WORLDS",
    "Batch",
    "ConfigError",
    "FeatureWorld",
    "ProbeSet",
    "TokenWorld",
    "World",
    "WorldKnobs",
    "make_world",
]
