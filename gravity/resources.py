"""What a run needs, estimated before anything is planned or compiled, against what the machine has.

A sweep's results are held on the host until they are assembled, so the host's memory bounds how
many histories one run can hold. The estimate is a lower bound per history: one copy of its
parameters (4 bytes each) plus every metric it records (`METRICS_PER_RECORD` per record step),
plus `BOOKKEEPING_BYTES` of plan and chunk bookkeeping; a history whose spec is not a
`HistorySpec` (another engine's) counts `OTHER_HISTORY_BYTES`. It is computed from the number
of histories alone (never by planning the sweep, whose run tables would be that large), so
`--seeds 99999999999` is refused in a millisecond with the estimate and the limit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any

import jax

from gravity.spec import HistorySpec
from gravity.validation import check

METRICS_PER_RECORD = 32
BOOKKEEPING_BYTES = 256
OTHER_HISTORY_BYTES = 4096


def sweep_histories(sweep: Any) -> int:
    """Histories a sweep runs (grid points x branches x seeds), without planning it."""
    return math.prod(len(axis.values) for axis in sweep.all_axes) * int(sweep.seeds)


def history_bytes(spec: Any) -> int:
    """The lower-bound host bytes one history of `spec` holds until its sweep is assembled."""
    if not isinstance(spec, HistorySpec):
        return OTHER_HISTORY_BYTES
    from gravity.models import network

    net = network(spec.model, spec.world)
    shapes = jax.eval_shape(net.init, jax.random.key(0))
    n_params = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))
    records = sum(len(steps) for steps in spec.record_steps().values())
    return 4 * (n_params + METRICS_PER_RECORD * records) + BOOKKEEPING_BYTES


def estimate_bytes(sweeps: Iterable[Any]) -> int:
    """The lower-bound host bytes of running `sweeps`, from each one's first grid point's spec."""
    total = 0
    for sweep in sweeps:
        first = {axis.name: axis.values[0] for axis in sweep.all_axes}
        spec, _ = sweep.build(**first)
        total += sweep_histories(sweep) * history_bytes(spec)
    return total


def memory_limit() -> int:
    """The machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits_memory(sweeps: Iterable[Any], limit: int | None = None) -> int:
    """Refuse (one line) a run whose estimated memory exceeds `limit` (default: the machine's);
    returns the estimate."""
    sweeps = list(sweeps)
    limit = memory_limit() if limit is None else limit
    estimate = estimate_bytes(sweeps)
    histories = sum(sweep_histories(s) for s in sweeps)
    check(
        estimate <= limit,
        "histories",
        f"a run that fits in memory: ~{_gib(estimate)} estimated, this machine has "
        f"{_gib(limit)} (fewer seeds or a smaller grid)",
        histories,
    )
    return estimate


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.3g} GiB"
