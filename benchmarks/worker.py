"""One measurement, in this process: `python -m benchmarks.worker '<json task>'`.

Each measurement of a full bench runs in its own process, so that its peak resident memory is
its own and the XLA device layout (one device per core for the engine, one for the baselines)
is set before JAX starts. The result is printed as one line `RESULT <json>`.
"""

from __future__ import annotations

import json
import sys

from benchmarks.config import SCALES

MARK = "RESULT "


def measure(task: dict) -> dict:
    """Run one task: {"what": ..., "kind": ..., "n": ..., "scale": ..., ...}."""
    what, scale = task["what"], SCALES[task["scale"]]
    if what in ("engine", "tree", "roofline") and task.get("cpu_devices"):
        from gravity.run.runtime import use_cpu_cores

        use_cpu_cores()
    import jax

    jax.config.update("jax_enable_compilation_cache", False)
    if what == "peak":
        from benchmarks.machine import machine_info, matmul_peak_gflops

        return {**matmul_peak_gflops(scale.matmul_sizes), "machine": machine_info()}
    if what == "engine":
        from benchmarks.jax_runs import engine

        return engine(task["kind"], task["n"], scale, task.get("chunk"))
    if what == "tree":
        from benchmarks.jax_runs import tree

        return tree(task["kind"], scale, task["shape"])
    if what == "jax_sequential":
        from benchmarks.jax_runs import jax_sequential

        return jax_sequential(task["kind"], scale)
    if what == "roofline":
        from benchmarks.roofline import roofline

        return roofline(tuple(task["kinds"]))
    if what == "torch":
        return torch_baselines(scale, task["sizes"])
    raise ValueError(f"unknown task {what!r}")


def torch_baselines(scale, sizes: list[int]) -> dict:
    """Baselines B and C, each with 1 thread and with PyTorch's default threads."""
    import torch

    from benchmarks.jax_runs import presample
    from benchmarks.torch_runs import POOL, torch_batched, torch_sequential

    default_threads = torch.get_num_threads()
    data = presample("mlp", scale, max(sizes), POOL)
    out = {"sequential": [], "batched": {str(n): [] for n in sizes}}
    for threads in sorted({1, default_threads}):
        out["sequential"].append(torch_sequential(scale, data, threads))
        for n in sizes:
            out["batched"][str(n)].append(torch_batched(scale, data, n, threads))
    return out


def main() -> None:
    result = measure(json.loads(sys.argv[1]))
    print(MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
