"""How many histories to vmap at once: the chunk size that runs fastest per history.

Measured by `make bench` on 2 CPU cores with one XLA device per core and the run axis sharded
(`gravity.runtime.use_cpu_cores`): a history's training state (parameters, Adam moments and
gradients, ~0.4 MB for the standard MLP) has to stay in cache across a step, and a step's many
small kernels have to keep both cores busy. For the standard MLP history (1800 steps, N = 128)
the sweep ran ~21,600 model-steps/s at 4 histories per device, ~23,000 at 8, ~21,900 at 16 and
~18,300 at 32; the standard transformer ~660 model-steps/s at 8 per device against ~500 at 32.
Compile time barely depends on the chunk.
"""

from __future__ import annotations

from gravity.history import HistorySpec

PER_DEVICE = {"mlp": 8, "transformer": 8}
"""Histories per XLA device at which the standard histories ran fastest on the bench."""


def best_chunk_size(spec: HistorySpec, n_devices: int = 1) -> int:
    """Histories per vmapped chunk for `spec` on `n_devices` devices (a multiple of them)."""
    return PER_DEVICE.get(spec.model.kind, 8) * max(1, n_devices)
