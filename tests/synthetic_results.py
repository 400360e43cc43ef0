"""A small hand-built `SweepResult` (no training) for tests of what reads sweep results."""

import numpy as np

from gravity.run.sweep import Axis, SweepResult
from gravity.run.sweep.assemble import coordinate

STEPS = np.array([0, 1, 2, 5, 10])


def result(arrays: dict, axes: tuple[Axis, ...], seeds: int, diverged=None) -> SweepResult:
    """A result of `arrays` (each (*axes, seeds, ...)); outputs under a phase ("metrics/benign/
    x", "metrics/safety/x") whose next dimension has `STEPS`' size are on the phase's record
    steps `STEPS`."""
    lead = (*(axis.name for axis in axes), "seed")
    coords = {axis.name: coordinate(axis.values) for axis in axes}
    coords["seed"] = np.arange(seeds)
    dims = {}
    for name, array in arrays.items():
        rest = [f"{name.replace('/', '.')}_dim{i}" for i in range(np.ndim(array) - len(lead))]
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == "metrics" and np.shape(array)[len(lead)] == STEPS.size:
            rest[0] = f"step_{parts[1]}"
            coords[rest[0]] = STEPS
        dims[name] = (*lead, *rest)
    shape = tuple(len(axis.values) for axis in axes) + (seeds,)
    diverged = np.zeros(shape, bool) if diverged is None else np.asarray(diverged)
    dims["__diverged__"] = lead
    return SweepResult(axes, np.arange(seeds), dict(arrays), diverged, {}, dims, coords)


def grid(seed: int = 0, seeds: int = 4, diverged=None) -> SweepResult:
    """Two worlds x three arms x `seeds` seeds: a benign phase's metrics on `STEPS`, a safety
    phase's, a pretraining phase's, per-run drift, a two-level output, finals."""
    rng = np.random.default_rng(seed)
    axes = (Axis("world", ("main", "other")), Axis("arm", (("a", 1.0), ("b", 1.0), ("a", 3.0))))
    shape = (2, 3, seeds)
    benign = {
        name: rng.random((*shape, STEPS.size)).astype(np.float32)
        for name in (
            "alignment",
            "alignment_hazard_specific",
            "alignment_benign_probes",
            "weight_alignment",
            "harmfulness",
            "harmfulness_heldout",
            "refusal",
            "other",
            "task_accuracy",
        )
    }
    benign["alignment_by_definition"] = rng.random((*shape, STEPS.size, 2)).astype(np.float32)
    arrays = {f"metrics/benign/{k}": v for k, v in benign.items()}
    for phase in ("safety", "pretrain"):
        for name in ("harmfulness", "refusal", "other"):
            arrays[f"metrics/{phase}/{name}"] = rng.random((*shape, 3)).astype(np.float32)
    arrays["final/safety/harmfulness"] = rng.random(shape) * 0.2
    arrays["final/helpful/harmfulness"] = 0.5 + rng.random(shape) * 0.5
    arrays["drift"] = rng.normal(size=(*shape, 2, 3))
    return result(arrays, axes, seeds, diverged)
