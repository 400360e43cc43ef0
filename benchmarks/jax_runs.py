"""The JAX side of the bench: gravity's engine (through the sweep runner) and baseline A.

- engine: N histories run by `gravity.run.sweep.run_sweep` exactly as an experiment's sweep runs
  them: vmapped, in chunks of `gravity.run.performance.best_chunk_size`, the run axis sharded over
  the process's XLA devices (one per core unless XLA_FLAGS says otherwise).
- baseline A ("jax_sequential"): the way neighbouring research code uses JAX: one model at a
  time, a jitted training step (sampling its batch inside, like the engine) called from a
  Python loop, and a jitted evaluation on the probes at the same record steps, its metrics
  fetched to the host as a logging loop does. The benign phase's drift metrics are left out
  (they are small next to the probe forward pass), which favours the baseline slightly.
- tree against straight: the same histories (seeds x benign variants, the variants differing
  only in the last phase's data) run as straight lines, each from scratch (how the engine ran
  every history before it branched), and as a tree: the shared past once per seed, the last
  phase's variants vmapped from it. Both through the sweep runner, in one process each.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.config import Scale, bench_spec
from benchmarks.machine import best_of, peak_rss_mb
from gravity.engine.history import HistorySpec, behaviour, cross_entropy, phase_optimizer
from gravity.engine.models import network
from gravity.engine.presets import standard_knobs
from gravity.run import performance
from gravity.run.sweep import Axis, Sweep, run_sweep


def _point(spec: HistorySpec):
    return spec, standard_knobs(spec)


def engine(kind: str, n: int, scale: Scale, chunk: int | None = None) -> dict:
    """Run N bench histories through the sweep runner; compile and run timed separately."""
    spec = bench_spec(kind, scale)
    chunk = chunk or performance.best_chunk_size(spec, jax.device_count())
    sweep = Sweep(
        name=f"bench-{kind}-{n}",
        axes=(),
        seeds=n,
        build=functools.partial(_point, spec),
        max_chunk=chunk,
    )
    timed = _timed_sweep(sweep, scale, kind)
    return {"n": n, **timed, "chunk": chunk}


def _timed_sweep(sweep: Sweep, scale: Scale, label: str) -> dict:
    """Run `sweep` through the runner until `best_of` is satisfied (it compiles once, then
    reuses the program): the fastest run's seconds, the first compile, the batch, the memory."""
    first: dict = {}

    def run() -> float:
        result = run_sweep(sweep, store=False, progress=False)
        if result.diverged.any():
            raise RuntimeError(f"{label}: {int(result.diverged.sum())} bench histories diverged")
        timing = result.info["timings"]["program_0"]
        first.setdefault("timing", timing)
        return timing["run_s"]

    timed = best_of(run, min_total_s=scale.repeat_below_s, max_runs=scale.max_runs)
    return {
        **timed,
        "compile_s": first["timing"]["compile_s"],
        "batch": first["timing"]["batch"],
        "devices": jax.device_count(),
        "peak_rss_mb": peak_rss_mb(),
    }


def _variant(spec: HistorySpec, benign_overlap: float):
    return spec, standard_knobs(spec, benign_overlap=benign_overlap)


def tree(kind: str, scale: Scale, shape: str) -> dict:
    """`scale.tree_seeds` x len(`scale.tree_variants`) bench histories whose last phase sees
    benign data of each overlap in `scale.tree_variants`: straight or branched (`shape`)."""
    spec = bench_spec(kind, scale)
    variants = Axis("benign_overlap", scale.tree_variants)
    build = functools.partial(_variant, spec)
    name = f"bench-{kind}-{shape}"
    if shape == "tree":
        before_last = spec.phase_names[-2]
        sweep = Sweep(
            name, (), scale.tree_seeds, build, branches=(variants,), branch_after=before_last
        )
    elif shape == "straight":
        sweep = Sweep(name, (variants,), scale.tree_seeds, build)
    else:
        raise ValueError(f"shape {shape!r}: 'tree' or 'straight'")
    timed = _timed_sweep(sweep, scale, f"{kind} {shape}")
    return {"n": scale.tree_seeds * len(scale.tree_variants), "shape": shape, **timed}


def plain_step(spec: HistorySpec, knobs, net, phase):
    """One plain training step of `phase`, its batch sampled inside from the world, the
    cross-entropy, the phase's optimizer: (optimizer, step(params, opt_state, key) -> (params,
    opt_state, loss)), not jitted (baseline A and the roofline each compile it their way)."""
    optimizer = phase_optimizer(phase, knobs.learning_rate[phase.name])

    def step(params, opt_state, key):
        batch = spec.world.sample(knobs.world, phase.data, key, phase.batch_size)

        def loss_fn(q):
            return cross_entropy(net.apply(q, batch.inputs)[0], batch.labels)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return optimizer, step


def jax_sequential(kind: str, scale: Scale) -> dict:
    """Baseline A: `scale.sequential_histories` histories, one model at a time."""
    spec = bench_spec(kind, scale)
    knobs = standard_knobs(spec)
    net = network(spec.model, spec.world)
    probes = spec.world.probe_set(knobs.world, spec.n_probes)
    n_classes = spec.world.n_classes

    evaluate = jax.jit(lambda params: behaviour(net, params, probes, n_classes)[0])

    def make_step(phase):
        optimizer, step = plain_step(spec, knobs, net, phase)
        return optimizer, jax.jit(step)

    steps = [make_step(phase) for phase in spec.phases]

    def train(seed: int) -> list:
        key = jax.random.key(seed)
        k_init, _, *phase_keys = jax.random.split(key, 2 + len(spec.phases))
        params = net.init(k_init)
        logged = []
        for phase, (optimizer, step), phase_key in zip(spec.phases, steps, phase_keys, strict=True):
            opt_state = optimizer.init(params)
            record = set(phase.record_steps.tolist())
            keys = jax.random.split(phase_key, phase.steps)
            logged.append(jax.device_get(evaluate(params)))
            for t in range(phase.steps):
                params, opt_state, loss = step(params, opt_state, keys[t])
                if t + 1 in record:
                    logged.append((float(loss), jax.device_get(evaluate(params))))
        return logged

    start = time.perf_counter()
    train(10_000)  # compiles every phase's step and the evaluation
    compile_s = time.perf_counter() - start

    def run() -> float:
        start = time.perf_counter()
        for seed in range(scale.sequential_histories):
            train(seed)
        return time.perf_counter() - start

    return {
        "n": scale.sequential_histories,
        **best_of(run, min_total_s=scale.repeat_below_s / 4, max_runs=scale.max_runs),
        "compile_s": compile_s,
        "peak_rss_mb": peak_rss_mb(),
    }


def presample(kind: str, scale: Scale, n_models: int, pool: int) -> dict:
    """Batches for the torch baselines from the JAX world sampler: per phase, `pool` batches for
    each of `n_models` models, (pool, n_models, batch, ...) numpy arrays; plus the probes."""
    spec = bench_spec(kind, scale)
    knobs = standard_knobs(spec)
    out = {}
    for i, phase in enumerate(spec.phases):
        keys = jax.random.split(jax.random.key(1000 + i), pool * n_models)
        sample = jax.jit(
            jax.vmap(lambda k, p=phase: spec.world.sample(knobs.world, p.data, k, p.batch_size))
        )
        batch = jax.device_get(sample(keys))
        shape = (pool, n_models, phase.batch_size)
        out[phase.name] = (
            np.asarray(batch.inputs).reshape(*shape, -1),
            np.asarray(batch.labels).astype(np.int64).reshape(shape),
        )
    probes = spec.world.probe_set(knobs.world, spec.n_probes)
    out["probes"] = {
        "inputs": np.asarray(
            jnp.concatenate([probes.hazard.inputs, probes.matched.inputs, probes.task.inputs])
        ),
        "hazard_labels": np.asarray(probes.hazard.labels).astype(np.int64),
        "matched_labels": np.asarray(probes.matched.labels).astype(np.int64),
        "task_labels": np.asarray(probes.task.labels).astype(np.int64),
    }
    return out
