"""The training step against its roofline (#25 item 1): per step of N vmapped histories, the
matmul FLOPs (`benchmarks.flops`, by hand from the shapes) and what XLA's cost analysis of the
compiled step counts (all FLOPs, and the bytes its fused kernels read and write), the machine's
matmul peak and memory bandwidth measured in the same run, and the bound

    t_bound = max(matmul FLOPs / peak, bytes / bandwidth)

beside the measured step time. Two bandwidths: a large array (main memory, STREAM-like `a + s b`
on 64 MB operands) and a small one that stays in cache (256 KB operands, many passes in one
loop); a tiny model's working set (the standard transformer's 8 histories: ~2 MB of parameters,
Adam moments and activations) lives mostly in cache, so the cache bound is the one that applies
there and the main-memory one is an upper bound. XLA's byte count is of its fused kernels' operands
(post-optimisation HLO), an estimate of traffic, not a hardware counter.

The step is the engine's: a batch sampled from the world, forward and backward through the
network, Adam's update (`benchmarks.jax_runs.plain_step`, baseline A's step), vmapped over N
histories and jitted, laid out as the engine lays out a sweep: one XLA CPU device per core
(`gravity.run.runtime.use_cpu_cores`, set by `main`) and the histories sharded over them (N = 1
on one device); the triads are sharded the same way. Timed by the one timer (best of repeats of
`steps` steps in a `lax.scan`, so dispatch is not timed), with the machine's contention
recorded. XLA's counts are of the unsharded step (the whole N).

A model name may carry `ModelConfig` changes (`VARIANTS`): `transformer_readout` is the
standard transformer with `readout_only` (its last block at the readout position alone).

    python -m benchmarks.roofline [--out benchmarks/results/roofline.json] [--sizes 1,8,64]
        [--models mlp,transformer,transformer_readout]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from benchmarks.flops import train_step_flops
from benchmarks.jax_runs import plain_step
from benchmarks.machine import Contention, machine_info, matmul_peak_gflops
from gravity.engine.models import network
from gravity.engine.presets import standard_knobs, standard_spec
from gravity.run import performance

VARIANTS = {"transformer_readout": ("transformer", {"readout_only": True})}
"""Row names beyond the model kinds: (kind, `ModelConfig` changes)."""
MAIN_MEMORY_FLOATS = 1 << 24
CACHE_FLOATS = 1 << 16


def over_devices(tree, n: int):
    """`tree` with its leading (run) axis sharded over every device when they divide `n`."""
    devices = jax.devices()
    if n % len(devices):
        return tree
    sharding = NamedSharding(Mesh(np.array(devices), ("runs",)), PartitionSpec("runs"))
    return jax.device_put(tree, sharding)


def bandwidth_gbs(n_floats: int, passes: int, repeats: int = 5) -> float:
    """Bytes moved per second by `a + s b` over float32 operands of `n_floats` (read a and b,
    write the result: 12 bytes a float), `passes` times in one compiled loop, the operands
    sharded over the devices."""
    a = over_devices(jnp.ones(n_floats, jnp.float32), n_floats)
    b = over_devices(jnp.full(n_floats, 0.5, jnp.float32), n_floats)

    @jax.jit
    def triad(a, b):
        return jax.lax.fori_loop(0, passes, lambda i, x: x * 0.999 + b, a)

    seconds = performance.best_seconds(triad.lower(a, b).compile(), (a, b), repeats)
    return 12 * n_floats * passes / seconds / 1e9


def step_program(model: str, n: int, steps: int):
    """`steps` engine training steps of the standard benign phase on `n` vmapped histories,
    compiled; with its arguments and the single-step program for XLA's cost analysis."""
    kind, changes = VARIANTS.get(model, (model, {}))
    spec = standard_spec(kind, keep_params=False)
    spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, **changes))
    knobs = standard_knobs(spec)
    phase = spec.phase("benign")
    net = network(spec.model, spec.world)
    optimizer, step = plain_step(spec, knobs, net, phase)

    def one(params, opt_state, key):
        return step(params, opt_state, key)[:2]

    def many(params, opt_state, key):
        def body(carry, t):
            return one(*carry, jax.random.fold_in(key, t)), None

        return jax.lax.scan(body, (params, opt_state), jnp.arange(steps))[0]

    keys = jax.vmap(jax.random.key)(jnp.arange(n, dtype=jnp.uint32))
    params = jax.vmap(net.init)(keys)
    opt_state = jax.vmap(optimizer.init)(params)
    args = (params, opt_state, keys)
    single = jax.jit(jax.vmap(one)).lower(*args).compile()
    laid_out = over_devices(args, n)
    looped = jax.jit(jax.vmap(many)).lower(*laid_out).compile()
    return spec, phase, single, looped, laid_out


def step_row(model: str, n: int, steps: int, peak: float, bandwidths: dict) -> dict:
    """One (model, N): FLOPs, bytes, the bounds and the measured step time."""
    spec, phase, single, looped, args = step_program(model, n, steps)
    analysis = single.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list | tuple) else analysis
    matmul = n * train_step_flops(spec, phase.batch_size)
    moved = float(analysis.get("bytes accessed", float("nan")))
    seconds = performance.best_seconds(looped, args, repeats=5) / steps
    compute_s = matmul / (peak * 1e9)
    memory_s = {name: moved / (gbs * 1e9) for name, gbs in bandwidths.items()}
    bound = {name: max(compute_s, s) for name, s in memory_s.items()}
    return {
        "n": n,
        "matmul_flops": matmul,
        "xla_flops": float(analysis.get("flops", float("nan"))),
        "xla_bytes_accessed": moved,
        "step_s": seconds,
        "achieved_gflops": matmul / seconds / 1e9,
        "share_of_peak": matmul / seconds / 1e9 / peak,
        "compute_bound_s": compute_s,
        "memory_bound_s": memory_s,
        "bound_s": bound,
        "measured_over_bound": {name: seconds / b for name, b in bound.items()},
        "arithmetic_intensity": matmul / moved,
    }


def roofline(
    models=("mlp", "transformer", "transformer_readout"), sizes=(1, 8, 64), steps: int = 20
) -> dict:
    """Every row, the peak and the bandwidths, measured in one process, with its contention."""
    started = time.perf_counter()
    with Contention() as contention:
        peak = matmul_peak_gflops()["peak_gflops"]
        bandwidths = {
            "main_memory": bandwidth_gbs(MAIN_MEMORY_FLOATS, passes=4),
            "cache": bandwidth_gbs(CACHE_FLOATS, passes=2000),
        }
        rows = {m: [step_row(m, n, steps, peak, bandwidths) for n in sizes] for m in models}
    return {
        "matmul_peak_gflops": peak,
        "bandwidth_gbs": bandwidths,
        "devices": [str(d) for d in jax.devices()],
        "rows": rows,
        "others_cores": contention.others_cores,
        "machine": machine_info(),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    from benchmarks.bench import write

    parser = argparse.ArgumentParser(prog="python -m benchmarks.roofline", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/roofline.json"))
    parser.add_argument("--sizes", default="1,8,64", help="histories N, comma-separated")
    parser.add_argument(
        "--models", default="mlp,transformer,transformer_readout", help="comma-separated"
    )
    args = parser.parse_args(argv)
    from gravity.run.runtime import use_cpu_cores

    use_cpu_cores()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    out = roofline(tuple(args.models.split(",")), sizes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write(out, args.out)
    print(table(out))
    print(f"wrote {args.out} ({out['wall_s']:.0f}s; other processes: {out['others_cores']} cores)")
    return 0


def table(out: dict) -> str:
    """The rows as a markdown table."""
    lines = [
        "| model | N | step ms | matmul GFLOP/s | share of peak | XLA MB moved | "
        "bound ms (cache / main memory) | measured / bound (cache) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, rows in out["rows"].items():
        for r in rows:
            bound = r["bound_s"]
            lines.append(
                f"| {model} | {r['n']} | {1e3 * r['step_s']:.2f} | {r['achieved_gflops']:.1f} | "
                f"{r['share_of_peak']:.0%} | {r['xla_bytes_accessed'] / 1e6:.1f} | "
                f"{1e3 * bound['cache']:.2f} / {1e3 * bound['main_memory']:.2f} | "
                f"{r['measured_over_bound']['cache']:.1f}x |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
