"""Arms of a defence comparison: (name, strength) pairs, the name a steering intervention
(`gravity.defences.steering`), a registered defence (`gravity.defences`) or neither (the
baseline, plain fine-tuning). The knobs that select an arm, and the spec that compiles only the
machinery a set of arms needs (steering costs several plain steps; the other defences little).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from gravity import defences
from gravity.defences import steering
from gravity.engine.spec import with_phase

Arm = tuple[str, float]
STEERING = tuple(steering.INTERVENTIONS)[1:]
"""The steering interventions (every one but "none"), selected by `Knobs.intervention`."""


def arm_knobs(base, arm: Arm):
    """`base` knobs with the arm's intervention or defence selected at its strength (the
    baseline's knobs are `base`)."""
    name, strength = arm
    if name in steering.INTERVENTIONS:
        return dataclasses.replace(
            base, intervention=steering.index(name), intervention_strength=strength
        )
    if name in defences.REGISTRY:
        return dataclasses.replace(base, defence=defences.index(name), defence_strength=strength)
    return base


def arms_spec(spec, arms: Sequence[Arm], phase: str = "benign"):
    """`spec` with `phase` compiling only the machinery `arms` need: the steering interventions
    if any arm is one, and the registered defences among the arms (in registry order)."""
    names = {name for name, _ in arms}
    guards = tuple(d for d in defences.names()[1:] if d in names)
    return with_phase(spec, phase, interventions=bool(names & set(STEERING)), defences=guards)


def split_by_machinery(arms: Sequence[Arm]) -> dict[str, tuple[Arm, ...]]:
    """The arms (the baseline first) as two programs, each with the baseline as its first arm:
    "steer" (the steering interventions) and "guard" (the others), so the cheap arms never pay
    for the steering machinery."""
    steer = tuple(a for a in arms if a[0] in STEERING)
    guard = tuple(a for a in arms[1:] if a[0] not in STEERING)
    return {"steer": (arms[0], *steer), "guard": (arms[0], *guard)}


def labelled_arms(base, strengths) -> dict[str, object]:
    """{"none": `base`, "NAME@S": `base` with defence NAME selected at strength S} for every
    (NAME, its strengths) of `strengths`, in order: the arms of a comparison, by label."""
    arms = {"none": base}
    for name, values in dict(strengths).items():
        for strength in values:
            arms[f"{name}@{strength:g}"] = arm_knobs(base, (name, strength))
    return arms
