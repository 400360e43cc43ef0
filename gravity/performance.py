"""How many histories to vmap at once: the chunk size that runs fastest per history.

Measured on 2 CPU cores with one XLA device per core and the run axis sharded
(`gravity.runtime.use_cpu_cores`), on a quiet machine: a history's training state (parameters,
Adam moments and gradients, ~0.4 MB for the standard MLP) has to stay in cache across a step,
and a step's many small kernels have to keep both cores busy. For the standard MLP history
(1800 steps, N = 128) the sweep ran ~21,600 model-steps/s at 4 histories per device, ~23,000 at
8, ~21,900 at 16 and ~18,300 at 32 (N = 64 at 32 per device: 18,300 against 23,200 at 8); the
110-step bench transformer history ~660-720 model-steps/s at 8 per device against ~570 at 16
and ~500 at 32. Compile time barely depends on the chunk.

Tried on the engine and not adopted (same machine, paired runs in one process):
- drawing the next step's batch one step ahead, so the sampler overlaps the update: +8-11% on
  one device, -2% at the best chunk on two (both cores are already busy there);
- a counter-based integer hash instead of threefry for the world samplers: no gain (within
  5%, slower on two devices); threefry is ~10% of a step's kernel time;
- `jax.random.key(..., impl="rbg" | "unsafe_rbg")`: its vmap rule draws every run's bits from
  the first key of the batch, so vmapped runs no longer equal single runs (and a run's data
  would depend on its chunk); ruled out;
- disabling XLA:CPU's YNNPACK fusions (`--xla_cpu_experimental_ynn_fusion_type=`): 8% slower
  for the MLP, 40% slower for the transformer; the defaults stay.
"""

from __future__ import annotations

from typing import Any

PER_DEVICE = {"mlp": 8, "transformer": 8}
"""Histories per XLA device at which the standard histories ran fastest."""


def best_chunk_size(spec: Any, n_devices: int = 1) -> int:
    """Histories per vmapped chunk for `spec` on `n_devices` devices (a multiple of them); a
    spec without a model kind (another engine's) gets the default 8 per device."""
    kind = getattr(getattr(spec, "model", None), "kind", None)
    return PER_DEVICE.get(kind, 8) * max(1, n_devices)


def step_overhead(spec, knobs, phase: str, variants: dict, runs: int = 8, steps: int = 20) -> dict:
    """Measured cost per step of `phase` under each variant, relative to the plain phase.

    variants: {label: (phase field changes, knob changes)}; each variant's phase is compiled on
    its own (only its machinery) and run for `steps` steps on `runs` vmapped histories continued
    from one shared trunk (computed once, not timed); timed after compilation, best of 3.
    Returns {label: time ratio - 1}.
    """
    import dataclasses
    import time

    import jax

    from gravity import history
    from gravity.spec import repeat_knobs, with_phase

    before = spec.phases[spec.phase_names.index(phase) - 1].name
    keys = history.seed_keys(range(runs))
    base = repeat_knobs(knobs, runs)
    trunk = jax.jit(jax.vmap(lambda key, k: history.run_trunk(key, spec, k, before)))(keys, base)
    timings = {}
    for label, (phase_changes, knob_changes) in {"plain": ({}, {}), **variants}.items():
        variant = with_phase(spec, phase, steps=steps, dense_steps=0, n_records=1, **phase_changes)
        batch = repeat_knobs(dataclasses.replace(knobs, **knob_changes), runs)

        def run(key, k, state, variant=variant):
            return history.run_phases(key, variant, state, k, (variant.phase(phase),))[0].params

        program = jax.jit(jax.vmap(run)).lower(keys, batch, trunk.state).compile()
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            jax.block_until_ready(program(keys, batch, trunk.state))
            best = min(best, time.perf_counter() - start)
        timings[label] = best
    return {label: timings[label] / timings["plain"] - 1.0 for label in variants}
