"""Run every measurement of a scale, pair the engine with the baselines, write bench.json.

Ratios are model-steps/s of the engine over the baseline at the same N, both measured in this
run on the same bench history. Baselines A and B train one model at a time, so their
throughput is the same at every N: it is measured on a few histories and used at every N
(extrapolated; `bench.json` says how many were trained). Baseline C is timed at every N.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import flops
from benchmarks.config import KINDS, Scale, bench_spec
from benchmarks.machine import BUSY_CORES
from benchmarks.worker import MARK, measure

KEYS = (
    "histories_per_s",
    "model_steps_per_s",
    "gflops",
    "fraction_of_peak",
    "compile_s",
    "peak_rss_mb",
    "ratio_vs_jax_sequential",
    "ratio_vs_torch_sequential",
    "ratio_vs_torch_batched",
)


def run_task(task: dict, isolate: bool, log) -> dict:
    """One measurement, in a fresh process (isolate) or in this one; errors become {"error"}."""
    start = time.perf_counter()
    label = " ".join(str(task[k]) for k in ("what", "kind", "n") if k in task)
    log(f"  {label} ...")
    try:
        if not isolate:
            result = measure(task)
        else:
            env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.worker", json.dumps(task)],
                capture_output=True,
                text=True,
                env=env,
                cwd=Path(__file__).resolve().parent.parent,
            )
            lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
            if done.returncode != 0 or not lines:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"exit {done.returncode}: {tail[0]}")
            result = json.loads(lines[-1][len(MARK) :])
    except Exception as error:  # a failed measurement is reported, the bench goes on
        log(f"  {label} failed: {error}")
        return {"error": str(error)}
    log(f"  {label} done in {time.perf_counter() - start:.0f}s")
    return result


def throughput(run: dict, steps_per_history: int) -> dict:
    """histories/s and model-steps/s of a timed run of run["n"] histories."""
    per_s = run["n"] / run["run_s"]
    return {"histories_per_s": per_s, "model_steps_per_s": per_s * steps_per_history}


def run_bench(
    scale: Scale,
    kinds=KINDS,
    torch: bool = True,
    defences: bool = True,
    log=print,
    roofline: bool = True,
) -> dict:
    """Every measurement of `scale` for the model `kinds`; the bench.json dictionary.
    `defences`: also what each defence adds to a benign step, and an adversarially augmented
    safety step, on the standard histories (`benchmarks.defence_costs`, timed by the one timer;
    the defences experiment reports no timings). `roofline`: also the training step against its
    roofline (`benchmarks.roofline`: FLOPs, bytes, peak and bandwidths in one run)."""
    from benchmarks.torch_runs import available

    started = time.perf_counter()
    isolate = scale.isolate
    log(f"gravity bench ({scale.name}): matmul peak")
    peak = run_task({"what": "peak", "scale": scale.name}, isolate, log)
    peak_gflops = peak.get("peak_gflops")
    torch_version = available() if torch else None
    out: dict = {
        "matmul_peak_gflops": peak_gflops,
        "matmul_gflops_by_size": peak.get("by_size"),
        "matmul_others_cores": peak.get("others_cores"),
        "machine": peak.get("machine"),
        "scale": scale.name,
        "bench_histories": {},
        "baselines": {},
        "missing": {},
    }
    if torch_version is None:
        reason = "torch is not installed (`make bench` installs it)" if torch else "disabled"
        out["missing"]["torch_sequential"] = out["missing"]["torch_batched"] = reason

    for kind in kinds:
        spec = bench_spec(kind, scale)
        steps = flops.training_steps(spec)
        history_flops = flops.history_flops(spec)
        out["bench_histories"][kind] = {
            "phase_steps": {p.name: p.steps for p in spec.phases},
            "steps": steps,
            "records": sum(len(p.record_steps) for p in spec.phases),
            "flops": history_flops,
            "train_step_mflops": flops.train_step_flops(spec, spec.phases[0].batch_size) / 1e6,
        }
        sizes = scale.sizes[kind]
        log(f"{kind}: engine at N = {', '.join(map(str, sizes))}")
        engine = {
            n: run_task(
                {"what": "engine", "kind": kind, "n": n, "scale": scale.name, "cpu_devices": True},
                isolate,
                log,
            )
            for n in sizes
        }
        log(f"{kind}: baseline A (jitted step from a Python loop)")
        baselines = {
            "jax_sequential": run_task(
                {"what": "jax_sequential", "kind": kind, "scale": scale.name}, isolate, log
            )
        }
        if kind == "mlp" and torch_version is not None:
            log(f"{kind}: baselines B and C (PyTorch {torch_version})")
            measured = run_task(
                {"what": "torch", "kind": kind, "scale": scale.name, "sizes": list(sizes)},
                isolate,
                log,
            )
            if "error" in measured:
                baselines["torch_sequential"] = baselines["torch_batched"] = measured
            else:
                baselines["torch_sequential"] = _best(measured["sequential"])
                baselines["torch_batched"] = {
                    n: _best(runs) for n, runs in measured["batched"].items()
                }
        log(
            f"{kind}: tree against straight ({scale.tree_seeds} seeds x "
            f"{len(scale.tree_variants)} last-phase variants)"
        )
        shapes = {
            shape: run_task(
                {
                    "what": "tree",
                    "kind": kind,
                    "shape": shape,
                    "scale": scale.name,
                    "cpu_devices": True,
                },
                isolate,
                log,
            )
            for shape in ("straight", "tree")
        }
        out.setdefault("tree", {})[kind] = _tree_row(shapes, spec)
        out["baselines"][kind] = _baseline_rates(baselines, steps)
        out[kind] = {
            str(n): _row(engine[n], out["baselines"][kind], n, steps, history_flops, peak_gflops)
            for n in sizes
        }
    if roofline:
        log("roofline: the training step's FLOPs and bytes against the peak and bandwidths")
        task = {"what": "roofline", "kinds": list(kinds), "scale": scale.name, "cpu_devices": True}
        out["roofline"] = run_task(task, isolate, log)
    if defences:
        from benchmarks.defence_costs import defence_costs

        log("defences: extra seconds per benign step, and per augmented safety step")
        out["defence_costs"] = defence_costs(models=kinds)
    out["wall_s"] = round(time.perf_counter() - started, 1)
    return out


def _tree_row(shapes: dict, spec) -> dict:
    """The same histories straight and as a tree: histories/s of each and their ratio."""
    failed = {shape: run["error"] for shape, run in shapes.items() if "error" in run}
    if failed:
        return {"error": "; ".join(f"{shape}: {error}" for shape, error in failed.items())}
    row = {"branch_after": spec.phase_names[-2]}
    for shape, run in shapes.items():
        row[shape] = {**run, "histories_per_s": run["n"] / run["run_s"]}
    row["ratio_tree_vs_straight"] = (
        row["tree"]["histories_per_s"] / row["straight"]["histories_per_s"]
    )
    return row


def _tree_line(row: dict | None) -> str:
    if row is None:
        return "tree: not measured"
    if "error" in row:
        return f"tree: failed: {row['error']}"
    straight, tree = row["straight"], row["tree"]
    return (
        f"tree: {tree['n']} histories branched after {row['branch_after']}: "
        f"{tree['histories_per_s']:.2f}{_busy(tree)} hist/s (compile {tree['compile_s']:.1f}s) "
        f"vs straight {straight['histories_per_s']:.2f}{_busy(straight)} hist/s "
        f"(compile {straight['compile_s']:.1f}s): {row['ratio_tree_vs_straight']:.1f}x"
    )


def _best(runs: list[dict]) -> dict:
    """The fastest of the thread settings, with the others kept for the record."""
    best = min(runs, key=lambda r: r["run_s"])
    return {**best, "all_threads": {str(r["threads"]): r["run_s"] for r in runs}}


def _baseline_rates(baselines: dict, steps: int) -> dict:
    rates = {}
    for name, run in baselines.items():
        if name == "torch_batched" and "error" not in run:
            rates[name] = {n: {**r, **throughput(r, steps)} for n, r in run.items()}
        elif "error" in run:
            rates[name] = run
        else:
            rates[name] = {**run, **throughput(run, steps)}
    return rates


def _row(engine: dict, baselines: dict, n: int, steps: int, history_flops, peak) -> dict:
    row = dict.fromkeys(KEYS)
    if "error" in engine:
        return {**row, "error": engine["error"]}
    rate = throughput(engine, steps)
    gflops = rate["histories_per_s"] * history_flops["total"] / 1e9
    row.update(
        rate,
        gflops=gflops,
        fraction_of_peak=gflops / peak if peak else None,
        compile_s=engine["compile_s"],
        peak_rss_mb=engine["peak_rss_mb"],
    )
    for name in ("jax_sequential", "torch_sequential", "torch_batched"):
        base = baselines.get(name)
        if name == "torch_batched" and base is not None and "error" not in base:
            base = base.get(str(n))
        if base and "model_steps_per_s" in base:
            row[f"ratio_vs_{name}"] = rate["model_steps_per_s"] / base["model_steps_per_s"]
    row.update(
        chunk=engine["chunk"],
        devices=engine["devices"],
        runs=engine["runs"],
        others_cores=engine["others_cores"],
    )
    return row


def table(out: dict) -> str:
    """The short table printed after a run."""
    machine = out.get("machine") or {}
    peak = out.get("matmul_peak_gflops")
    lines = [
        f"gravity bench ({out['scale']}) on {machine.get('cpu', '?')}, "
        f"{machine.get('cores', '?')} cores; fp32 matmul peak "
        + (f"{peak:.0f} GFLOP/s" if peak else "n/a"),
    ]
    header = (
        f"{'N':>5} {'hist/s':>8} {'steps/s':>8} {'GFLOP/s':>7} {'%peak':>5} {'compile':>7} "
        f"{'RSS MB':>6} {'xA':>5} {'xB':>5} {'xC':>5}"
    )
    for kind in out["bench_histories"]:
        h = out["bench_histories"][kind]
        lines += ["", f"{kind}: {h['steps']}-step bench history, {h['records']} records", header]
        for n, row in out[kind].items():
            if row.get("error"):
                lines.append(f"{n:>5} failed: {row['error']}")
                continue
            lines.append(
                f"{n:>5} {row['histories_per_s']:8.2f} {row['model_steps_per_s']:8.0f} "
                f"{row['gflops']:7.1f} {_pct(row['fraction_of_peak']):>5} "
                f"{row['compile_s']:6.1f}s {row['peak_rss_mb']:6.0f} "
                f"{_x(row['ratio_vs_jax_sequential'])} {_x(row['ratio_vs_torch_sequential'])} "
                f"{_x(row['ratio_vs_torch_batched'])}{_busy(row)}"
            )
        lines.append(_baseline_line(out["baselines"][kind]))
        lines.append(_tree_line(out.get("tree", {}).get(kind)))
    lines.append(
        "\nxA, xB, xC: the engine's model-steps/s over baseline A (jitted step from a Python "
        "loop), B (PyTorch eager, one model at a time), C (PyTorch, all N models in bmm)"
    )
    if any(_busy(run) for run in _timed_runs(out)):
        lines.append(
            f"* other processes took more than {BUSY_CORES} cores during this timing (every try)"
        )
    if out.get("missing"):
        lines.append("missing: " + "; ".join(f"{k}: {v}" for k, v in out["missing"].items()))
    return "\n".join(lines)


def _baseline_line(baselines: dict) -> str:
    parts = []
    for label, name in (("A", "jax_sequential"), ("B", "torch_sequential")):
        run = baselines.get(name)
        if run and "model_steps_per_s" in run:
            threads = f", {run['threads']} thread(s)" if "threads" in run else ""
            parts.append(f"{label} {run['model_steps_per_s']:.0f}{_busy(run)} steps/s{threads}")
    batched = baselines.get("torch_batched")
    if batched and "error" not in batched:
        rates = ", ".join(f"{r['model_steps_per_s']:.0f}{_busy(r)}" for r in batched.values())
        parts.append(f"C {rates} steps/s")
    return "baselines: " + ("; ".join(parts) if parts else "none")


def _timed_runs(out: dict):
    for kind in out["bench_histories"]:
        yield from out[kind].values()
        row = out.get("tree", {}).get(kind, {})
        yield from (row[shape] for shape in ("straight", "tree") if shape in row)
        for name, run in out["baselines"][kind].items():
            if name == "torch_batched" and "error" not in run:
                yield from run.values()
            else:
                yield run


def _busy(run: dict) -> str:
    others = run.get("others_cores")
    return "*" if others is not None and others > BUSY_CORES else ""


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _x(x) -> str:
    return f"{'-':>5}" if x is None else f"{x:5.1f}"


def write(out: dict, path: Path) -> None:
    path.write_text(json.dumps(out, indent=1, default=_jsonable) + "\n")


def _jsonable(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
