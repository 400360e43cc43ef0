"""What a run needs, estimated before anything is planned or compiled, against what the machine has.

Two footprints are estimated from the sweeps' specs alone (arithmetic on their sizes: nothing is
allocated, traced or compiled), so a command line that cannot fit is refused in one line, naming
the field that makes it large, the estimate and the limit:

- **Host**: a sweep's results are held on the host until they are assembled, so the host's memory
  bounds how many histories one run can hold. Per history, a lower bound: one copy of its
  parameters (4 bytes each) plus every metric it records (`METRICS_PER_RECORD` per record step,
  counted by `record_count` without building the schedule), plus `BOOKKEEPING_BYTES` of plan and
  chunk bookkeeping; a history whose spec is not a `HistorySpec` (another engine's) counts
  `OTHER_HISTORY_BYTES`. It is computed from the number of histories alone (never by planning
  the sweep, whose run tables would be that large), so `--seeds 99999999999` is refused in a
  millisecond.
- **Device**: one run while it trains (`run_footprint`), with every branch it carries in a tree
  sweep. Per phase: the batch and the model's activations on it (kept for the backward pass),
  the parameters with their gradients, updates and optimizer moments, the per-step arrays that grow
  with the phase's steps, and the recorded metrics. The per-step arrays are the `lax.scan`'s: its
  inputs (the step index, int32, and the record flag, one byte) and its stacked outputs (the loss
  and the whole measurement, 4 bytes per float, kept for every step and zero where nothing is
  recorded), so a phase of 2e9 steps needs hundreds of GiB however small its model.

The device estimate is for **one** run, a lower bound as far as the chunk goes: the sweep runner
vmaps a chunk of runs (`gravity.run.performance.best_chunk_size`, or `Sweep.max_chunk`) but halves
the executed batch until XLA's own estimate fits `Sweep.memory_budget_gb`, down to one run per
device; a run that does not fit alone cannot run at all. On CPU the device's memory is the
host's, so the two add up.

Bounds that hold on any machine (`MAX_STEPS`, `MAX_BATCH_SIZE`, `MAX_RECORDS`) are checked after
the estimate, for machines whose memory would admit absurd values.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable
from typing import Any

import jax

from gravity.engine.spec import HistorySpec, PhaseSpec
from gravity.validation import check

METRICS_PER_RECORD = 32
BOOKKEEPING_BYTES = 256
OTHER_HISTORY_BYTES = 4096
FLOAT_BYTES = 4
STEP_INPUT_BYTES = 4 + 1
"""The scan's inputs per step: the step index (int32) and whether it records (bool)."""
BASE_METRICS = 8
"""Floats every measurement records: `history.behaviour`'s metrics and the training loss."""
REVERSION_METRICS = 9
"""Floats a measured benign phase adds (`geometry.drift_metrics` and
`geometry.weight_displacement_metrics`), besides one per v_rev definition."""

HINTS = {
    "batch_size": "a smaller batch",
    "steps": "fewer steps",
    "n_records": "fewer records",
    "model": "a smaller model",
}
"""What to change when a field makes one run too large, by the field's last part."""

MAX_STEPS = 10_000_000
"""Steps per phase. The longest preset phase has 3,200 (`basin_depth`); 10M steps keep 0.35 to
0.7 GiB of per-step arrays per run on the device (the scan's 37 to 77 bytes a step), and a
chunk of 8 standard MLP runs would train one such phase for about an hour (~23,000 model-steps/s
measured on 2 cores)."""
MAX_BATCH_SIZE = 2**20
"""Examples per step. Presets use 8 to 1,024 (`metastability`); 2**20 examples of the standard
transformer's activations are ~40 GiB per run (the standard MLP's ~2.4 GiB): no device holds a
useful chunk of such runs."""
MAX_RECORDS = 100_000
"""Recorded steps per phase (`n_records`, and `dense_steps` counted as records): each is kept for
every run on the host and drawn from a handful in the figures; presets record at most ~140
(`reversion`'s 100 dense steps)."""


def sweep_histories(sweep: Any) -> int:
    """Histories a sweep runs (grid points x branches x seeds), without planning it."""
    return math.prod(len(axis.values) for axis in sweep.all_axes) * int(sweep.seeds)


def n_params(spec: HistorySpec) -> int:
    """The model's parameter count, from an abstract model (`nnx.eval_shape`: nothing is
    initialised or compiled)."""
    from flax import nnx

    from gravity.engine.models import build

    model = nnx.eval_shape(lambda: build(spec.model, spec.world, jax.random.key(0)))
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))


def history_bytes(spec: Any) -> int:
    """The lower-bound host bytes one history of `spec` holds until its sweep is assembled."""
    if not isinstance(spec, HistorySpec):
        return OTHER_HISTORY_BYTES
    records = sum(record_count(phase) for phase in spec.phases)
    return FLOAT_BYTES * (n_params(spec) + METRICS_PER_RECORD * records) + BOOKKEEPING_BYTES


def estimate_bytes(sweeps: Iterable[Any]) -> int:
    """The lower-bound host bytes of running `sweeps`, from each one's first grid point's spec."""
    total = 0
    for sweep in sweeps:
        spec, _ = sweep.build(**_first(sweep))
        total += sweep_histories(sweep) * history_bytes(spec)
    return total


def record_count(phase: PhaseSpec) -> int:
    """An upper bound on `phase.record_steps`'s length, without building it (dense steps, the
    log-spaced ones, the start and the end)."""
    return min(phase.dense_steps, phase.steps) + phase.n_records + 2


@dataclasses.dataclass(frozen=True)
class Footprint:
    """One run's estimated device bytes while it trains, and what makes them large: the
    command-line `field` (and its `value`) of the largest term, described by `what`."""

    bytes: int
    field: str
    value: Any
    what: str


def run_footprint(spec: HistorySpec, multiplicity: dict[str, int] | None = None) -> Footprint:
    """The device bytes of one run of `spec` at its most demanding phase: an estimate, within
    2x of XLA's own memory analysis of the compiled run (`tests/test_limits.py`).

    multiplicity: {phase name: branches that phase runs, vmapped, within one run} (a tree
    sweep's later phases; default 1 each).
    """
    multiplicity = multiplicity or {}
    params = n_params(spec)
    copies = len(spec.phases) + 1 + sum(len(phase.snapshots) for phase in spec.phases)
    kept = FLOAT_BYTES * params * copies
    best = None
    for index, phase in enumerate(spec.phases):
        runs = multiplicity.get(phase.name, 1)
        terms = _phase_terms(spec, index, params)
        total = kept + runs * sum(bytes_ for bytes_, *_ in terms)
        if best is None or total > best.bytes:
            largest = max(terms, key=lambda term: term[0])
            best = Footprint(total, *largest[1:])
    return best


def _phase_terms(spec: HistorySpec, index: int, params: int) -> list[tuple[int, str, Any, str]]:
    """(bytes, field, value, what) of each part of one phase's device footprint."""
    phase = spec.phases[index]
    name = f"phases.{phase.name}"
    copies = 3 if phase.optimizer == "sgd" else 5  # params, grads, updates (+ 2 Adam moments)
    rows = phase.batch_size * (2 if "rehearsal" in phase.defences else 1)
    example_bytes = _example_bytes(spec) + FLOAT_BYTES * _activation_floats(spec)
    probes = 4 * spec.n_probes * FLOAT_BYTES * _activation_floats(spec)
    floats = _measured_floats(spec, index)
    step_bytes = STEP_INPUT_BYTES + FLOAT_BYTES * floats
    return [
        (rows * example_bytes + probes, f"{name}.batch_size", phase.batch_size, "its batch"),
        (phase.steps * step_bytes, f"{name}.steps", phase.steps, "its per-step arrays"),
        (FLOAT_BYTES * floats * record_count(phase), f"{name}.n_records", phase.n_records,
         "its records"),
        (FLOAT_BYTES * params * copies, "model", spec.model.kind, "its parameters"),
    ]  # fmt: skip


def _example_bytes(spec: HistorySpec) -> int:
    """One training example's inputs, label and hazard flag."""
    world = spec.world
    inputs = math.prod(world.input_shape)  # features, or a prompt's tokens (the World protocol)
    return FLOAT_BYTES * (inputs + 1) + 1


def _activation_floats(spec: HistorySpec) -> int:
    """Floats the model computes per example on a forward pass (every layer's outputs)."""
    model, world = spec.model, spec.world
    if model.kind == "mlp":
        return math.prod(world.input_shape) + 2 * sum(model.hidden) + 2 * world.n_outputs
    length, d = world.input_shape[0], model.d_model
    block = 8 * d + 2 * model.d_ff + 2 * model.n_heads * length
    return length * (d + model.n_layers * block) + d + 2 * world.n_outputs


def _measured_floats(spec: HistorySpec, index: int) -> int:
    """Floats one measurement of phase `index` returns: its metrics, and the activation fields
    some histories keep (the trajectory in safety phases, drift in measured benign phases)."""
    phase = spec.phases[index]
    field = spec.n_probes * _layer_width(spec)
    floats = BASE_METRICS
    if spec.measures_reversion(index):
        floats += REVERSION_METRICS + len(spec.directions)
    if spec.needs_trajectory and phase.data == "safety":
        floats += field
    if spec.drift_snapshots and spec.measures_reversion(index):
        floats += 2 * field
    return floats


def _layer_width(spec: HistorySpec) -> int:
    """The width of the layer where v_rev is measured."""
    layer, model = spec.model.activation_layer, spec.model
    if layer == "logits":
        return spec.world.n_outputs
    if model.kind == "mlp":
        return model.hidden[int(layer.removeprefix("hidden")) - 1]
    return model.d_model


def branch_multiplicity(sweep: Any, spec: HistorySpec) -> dict[str, int]:
    """{phase name: branches it runs within one run}: a tree's phases after a level's branch
    phase run once per branch of that level and of every level above it."""
    names, counts = spec.phase_names, {}
    for phase, n in sweep.levels:
        if phase in names:
            counts[names.index(phase)] = n
    return {
        name: math.prod(n for at, n in counts.items() if at < index)
        for index, name in enumerate(names)
    }


def sweep_footprints(sweep: Any) -> list[tuple[Footprint, HistorySpec]]:
    """The device footprint of one run of each distinct spec of `sweep` (a program each)."""
    branch = sweep.branch_points()[0]
    specs = dict.fromkeys(sweep.build(**point, **branch)[0] for point in sweep.points())
    return [
        (run_footprint(spec, branch_multiplicity(sweep, spec)), spec)
        for spec in specs
        if isinstance(spec, HistorySpec)
    ]


def memory_limit() -> int:
    """The machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def device_memory_limit() -> int | None:
    """The first device's memory in bytes, or None when it is the host's (CPU)."""
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("bytes_limit")


def check_fits_memory(
    sweeps: Iterable[Any], limit: int | None = None, device_limit: int | None = None
) -> int:
    """Refuse (one line) a run whose estimated memory exceeds `limit` (default: the machine's),
    or whose one run exceeds `device_limit` (default: the device's, or what is left of `limit`
    on CPU), then the bounds; returns the estimate (host and device together)."""
    sweeps = list(sweeps)
    host = estimate_bytes(sweeps)
    histories = sum(sweep_histories(s) for s in sweeps)
    check(
        host <= (memory_limit() if limit is None else limit),
        "histories",
        f"a run that fits in memory: ~{_gib(host)} estimated, this machine has "
        f"{_gib(memory_limit() if limit is None else limit)} (fewer seeds or a smaller grid)",
        histories,
    )
    footprints = [(f, s, sweep) for sweep in sweeps for f, s in sweep_footprints(sweep)]
    if not footprints:
        return host
    run, _, sweep = max(footprints, key=lambda item: item[0].bytes)
    if device_limit is None and limit is None:
        device_limit = device_memory_limit()
    shared = device_limit is None
    total = host + run.bytes if shared else run.bytes
    room = (memory_limit() if limit is None else limit) if shared else device_limit
    check(
        total <= room,
        run.field,
        f"a run that fits in memory: ~{_gib(total)} estimated (one run of {sweep.name} while "
        f"it trains: {_gib(run.bytes)}, mostly {run.what}"
        + (f"; results on the host: {_gib(host)}" if shared else "")
        + f"), this {'machine' if shared else 'device'} has {_gib(room)} "
        f"({HINTS[run.field.rsplit('.', 1)[-1]]})",
        run.value,
    )
    for _, spec, _ in footprints:
        check_bounds(spec)
    return host + run.bytes


def check_bounds(spec: HistorySpec) -> None:
    """Refuse (one line) a phase beyond the bounds that hold on any machine."""
    for phase in spec.phases:
        name = f"phases.{phase.name}"
        check(
            phase.steps <= MAX_STEPS, f"{name}.steps", f"at most {MAX_STEPS:,} steps", phase.steps
        )
        check(
            phase.batch_size <= MAX_BATCH_SIZE,
            f"{name}.batch_size",
            f"at most {MAX_BATCH_SIZE:,} examples a step",
            phase.batch_size,
        )
        check_records(name, "n_records", phase.n_records)
        check_records(name, "dense_steps", min(phase.dense_steps, phase.steps))


def check_records(name: str, field: str, value: int) -> None:
    """Refuse a record count beyond `MAX_RECORDS` (before `record_steps` would build it)."""
    check(value <= MAX_RECORDS, f"{name}.{field}", f"at most {MAX_RECORDS:,} records", value)


def _first(sweep: Any) -> dict[str, Any]:
    return {axis.name: axis.values[0] for axis in sweep.all_axes}


def _gib(n_bytes: int) -> str:
    if n_bytes < 2**30:
        return f"{n_bytes / 2**20:.3g} MiB"
    gib = n_bytes / 2**30
    return f"{gib:,.0f} GiB" if gib >= 1000 else f"{gib:.3g} GiB"
