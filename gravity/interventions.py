"""The steering variants' names and helpers, kept under their old module name: everything lives
in `gravity.defences.steering` (block, push, project and controls, one Defence)."""

from gravity.defences.steering import (
    DIRECTIONS,
    INTERVENTIONS,
    Intervention,
    Settings,
    drift_component,
    get,
    index,
    penalty,
    project_out,
    random_direction,
    settings,
)

__all__ = [
    "DIRECTIONS",
    "INTERVENTIONS",
    "Intervention",
    "Settings",
    "drift_component",
    "get",
    "index",
    "penalty",
    "project_out",
    "random_direction",
    "settings",
]
