"""The machine: its description, its measured matmul peak, memory and CPU contention probes."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import resource
import statistics
import time


def cpu_model() -> str:
    """The CPU's model name as lscpu / /proc/cpuinfo report it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info() -> dict:
    import jax

    info = {
        "cpu": cpu_model(),
        "cores": cores(),
        "memory_gb": _memory_gb(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    try:
        info["torch"] = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        info["torch"] = None
    return info


def _memory_gb() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * size / 2**30, 1)


def matmul_peak_gflops(sizes: tuple[int, ...] = (1024, 2048), repeats: int = 7) -> dict:
    """fp32 matmul throughput through jax on large square matrices: for each size the median of
    `repeats` timed products; the peak is the best size's median."""
    import jax
    import jax.numpy as jnp

    per_size = {}
    with Contention() as contention:
        for n in sizes:
            per_size[n] = _matmul_gflops(jax, jnp, n, repeats)
    return {
        "peak_gflops": max(per_size.values()),
        "by_size": per_size,
        "others_cores": contention.others_cores,
    }


def _matmul_gflops(jax, jnp, n: int, repeats: int) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    product = jax.jit(jnp.matmul)
    product(a, b).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Contention:
    """How busy the rest of the machine was while a block ran, in cores.

    Other processes on a shared machine take cores away from the measurement; this reads the
    machine's busy CPU time (/proc/stat) and this process's own CPU time over the block, and
    reports the difference per second of wall time. None where /proc/stat is unavailable.
    `children`: the block's finished child processes count as its own (a timed subprocess).
    """

    def __init__(self, children: bool = False):
        self.children = children

    def __enter__(self) -> Contention:
        self.others_cores: float | None = None
        self._start = (time.perf_counter(), _machine_busy_s(), _own_cpu_s(self.children))
        return self

    def __exit__(self, *exc) -> None:
        wall0, busy0, own0 = self._start
        own = _own_cpu_s(self.children) - own0
        wall, busy = time.perf_counter() - wall0, _machine_busy_s()
        if busy is None or busy0 is None or wall <= 0:
            return
        self.others_cores = max(0.0, (busy - busy0 - own) / wall)


BUSY_CORES = 0.3
"""A timing taken while other processes used more than this many cores is retried."""


def best_of(run, *, min_total_s: float = 0.0, max_total_s: float = 200.0, max_runs: int = 3):
    """Call `run()`, which returns the seconds it measured, until the calls have taken
    `min_total_s` of wall time together and the last one was not disturbed by other processes;
    at most `max_runs` calls, and no new call once they have taken `max_total_s`.

    Returns the fastest: {"run_s", "others_cores", "runs"}; on a shared machine a disturbed
    timing is kept only when every try was disturbed (its others_cores says so).
    """
    tries, elapsed = [], 0.0
    while True:
        start = time.perf_counter()
        with Contention() as contention:
            seconds = run()
        elapsed += time.perf_counter() - start
        tries.append((seconds, contention.others_cores))
        quiet = contention.others_cores is None or contention.others_cores < BUSY_CORES
        if len(tries) >= max_runs or elapsed >= max_total_s or (elapsed >= min_total_s and quiet):
            break
    seconds, others = min(tries, key=lambda t: t[0])
    return {"run_s": seconds, "others_cores": others, "runs": len(tries)}


def _own_cpu_s(children: bool = False) -> float:
    t = os.times()
    return t.user + t.system + (t.children_user + t.children_system if children else 0.0)


def _machine_busy_s() -> float | None:
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    ticks = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / ticks
