"""The six main figures timed whole on this engine and on an earlier one, side by side.

`python -m benchmarks.figures [--baseline 8526419] [--warm] [--only erosion,overlap] [--quick]
[--page docs/performance.md]`; `--from benchmarks/results/figures.json --page docs/performance.md`
writes the table of a finished run into the page without timing anything.

Each engine is a clean `git worktree` of its commit (this one: HEAD, so uncommitted edits are
not timed). Every figure runs as its own process, `gravity run NAME` of that commit, timed from
process start to exit, with its own empty result store (nothing is loaded) and, cold, an empty
XLA compilation cache per engine (as on a fresh machine); `--warm` then runs every figure again
on the cache the cold runs filled (tracing and lowering still happen; XLA's compiles are read
back). The two engines alternate figure by figure, so a drift in the machine's speed falls on
both alike. This engine runs each figure at the content the baseline's had (`PRE_TREE`: the
controls added since are switched off with `--set`; its histories are at least the baseline's),
so the ratio compares the same science, not today's larger figures.

How busy the machine's other processes were over each run is read from /proc/stat against the
children's CPU time (`machine.Contention(children=True)`); timings share the machine with
nothing of ours, so run it alone. It writes `benchmarks/results/figures.json` (every run, the
sums and the ratios) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import Contention, machine_info
from gravity.run import verdicts

BASELINE = "8526419"
"""The engine before histories were trees: the commit the README's "before" column was timed at."""
FIGURES = ("erosion", "reversion", "blocking", "basin_depth", "metastability", "overlap")
PRE_TREE = {
    "reversion": ("regime_seeds=0", "worlds=main", "arms=benign", "witnesses=false"),
    "blocking": ("dose_strengths=",),
    "basin_depth": ("safety_data=mixed",),
}
"""`--set` arguments that give this engine's figure the content it had at the baseline: the
paper-regime grid, reversion's control worlds, same-basis control arms and witnesses, the dose
branches and the hazard-only safety arm, added after it, left out."""
BEFORE_HISTORIES = {
    "erosion": 160,
    "reversion": 32,
    "blocking": 224,
    "basin_depth": 1008,
    "metastability": 1000,
    "overlap": 1152,
}
"""The baseline's histories per full-size figure (its JSONs do not record them): the "before"
column of the README's figure table at ff78d03, 3,576 in all."""


def cli_module(tree: Path) -> str:
    """The tree's command-line module: `gravity.run.cli`, or `gravity.cli` before it moved
    (8526419). A tree with the moved CLI also has the `--set` knobs of `PRE_TREE`."""
    return "gravity.run.cli" if (tree / "gravity" / "run" / "cli.py").exists() else "gravity.cli"


def worktree(repo: Path, commit: str, into: Path) -> Path:
    """A detached clean checkout of `commit` at `into`."""
    subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "--detach", str(into), commit],
        check=True,
        capture_output=True,
    )
    return into


def command(tree: Path, name: str, out: Path, quick: bool) -> list[str]:
    """`gravity run NAME` of the engine checked out at `tree` (`--quick`: at its small default, a
    smoke run), its figure written under `out`; an engine with the `--set` knobs runs at the
    pre-tree content (`PRE_TREE`), so two such engines compare at the same content too."""
    cli = cli_module(tree)
    args = [sys.executable, "-m", cli, "run", name, "--out", str(out), "--no-progress"]
    args += ["--quick"] if quick else []
    for assignment in PRE_TREE.get(name, ()) if cli == "gravity.run.cli" else ():
        args += ["--set", assignment]
    return args


def timed_run(tree: Path, args: list[str], cache: Path, scratch: Path) -> dict:
    """One figure's process timed whole, with a fresh result store and the given compile cache."""
    results = Path(tempfile.mkdtemp(prefix="results-", dir=scratch))
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "JAX_PLATFORMS": "cpu",
        "GRAVITY_CACHE": str(cache),
        "GRAVITY_RESULTS": str(results),
    }
    with Contention(children=True) as busy:
        start = time.perf_counter()
        done = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed in {tree}:\n{done.stderr[-3000:]}")
    return {"wall_s": round(wall, 2), "others_cores": busy.others_cores}


def figure_facts(out: Path, name: str) -> dict:
    """What the figure's own JSON says of the run: its histories, and (an engine whose JSON
    keeps `sweeps.*.timings`) its compiled programs, their compile seconds and their run seconds
    summed; None for what it does not say."""
    path = out / f"{name}.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    timings = [
        program
        for entry in report.get("sweeps", {}).values()
        if isinstance(entry, dict)
        for program in (entry.get("timings") or {}).values()
    ]
    counted = bool(timings) and all({"compile_s", "run_s"} <= set(p) for p in timings)
    return {
        "histories": report.get("n_histories"),
        "programs": len(timings) if counted else None,
        "compile_s": round(sum(p["compile_s"] for p in timings), 1) if counted else None,
        "run_s": round(sum(p["run_s"] for p in timings), 1) if counted else None,
    }


def time_figures(
    repo: Path, baseline: str, names, warm: bool, quick: bool, log=print, on_result=None
) -> dict[str, object]:
    """Every figure on both engines, alternating, cold (then warm): `summarise`'s dict, also
    handed to `on_result` after every run (a long run keeps what it has measured)."""
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    scratch = Path(tempfile.mkdtemp(prefix="gravity-figures-"))
    trees = {
        "current": worktree(repo, head, scratch / "current"),
        "baseline": worktree(repo, baseline, scratch / "baseline"),
    }
    caches = {engine: scratch / f"cache-{engine}" for engine in trees}
    runs = []
    try:
        for cache in ("cold", "warm") if warm else ("cold",):
            for name in names:
                for engine, tree in trees.items():
                    out = scratch / f"figures-{engine}-{cache}"
                    args = command(tree, name, out, quick)
                    row = timed_run(tree, args, caches[engine], scratch)
                    row |= {"engine": engine, "figure": name, "cache": cache}
                    row |= figure_facts(out, name)
                    if row["histories"] is None and engine == "baseline" and not quick:
                        row["histories"] = BEFORE_HISTORIES[name]
                    runs.append(row)
                    log(
                        f"{cache:4s} {engine:8s} {name:13s} {row['wall_s']:8.1f} s "
                        f"{row['histories']} histories (others {row['others_cores']})"
                    )
                    if on_result is not None:
                        on_result(summarise(runs, head, baseline, quick))
    finally:
        for tree in trees.values():
            subprocess.run(
                ["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
                capture_output=True,
            )
        shutil.rmtree(scratch, ignore_errors=True)
    return summarise(runs, head, baseline, quick)


def summarise(runs: list[dict], head: str, baseline: str, quick: bool) -> dict[str, object]:
    """The runs, and per cache the summed seconds and the ratio (baseline / this engine) over
    the figures both engines have finished."""
    done = {(r["figure"], r["cache"], r["engine"]): r["wall_s"] for r in runs}
    totals, ratios = {}, {}
    for cache in ("cold", "warm"):
        pairs = [
            (done[(f, c, "current")], done[(f, c, "baseline")])
            for f, c, e in done
            if c == cache and e == "current" and (f, c, "baseline") in done
        ]
        if pairs:
            totals[f"current_{cache}_s"] = round(sum(now for now, _ in pairs), 1)
            totals[f"baseline_{cache}_s"] = round(sum(before for _, before in pairs), 1)
            totals[f"{cache}_figures"] = len(pairs)
            ratios[cache] = round(totals[f"baseline_{cache}_s"] / totals[f"current_{cache}_s"], 2)
    return {
        "commits": {"current": head, "baseline": baseline},
        "quick": quick,
        "pre_tree_sets": {k: list(v) for k, v in PRE_TREE.items()},
        "runs": runs,
        "totals": totals,
        "speedup": ratios,
        "max_others_cores": max((r["others_cores"] or 0.0) for r in runs),
        "machine": machine_info(),
    }


PAGE_MARKERS = (
    "<!-- figures: generated by `python -m benchmarks.figures --from "
    "benchmarks/results/figures.json --page docs/performance.md` -->",
    "<!-- figures: end -->",
)


def table(result: dict) -> str:
    """A markdown table of the figures both engines finished, cold and (where timed) warm side
    by side, and the sums; the ratio is before / now. Last, this engine's compiled programs and
    their compile seconds in its cold run (from the figure's JSON; empty where not recorded)."""
    by = {(r["figure"], r["cache"], r["engine"]): r for r in result["runs"]}
    caches = [c for c in ("cold", "warm") if c in result["speedup"]]
    head = ["figure", "histories now / before"]
    for cache in caches:
        head += [f"now s ({cache})", f"before s ({cache})", f"ratio ({cache})"]
    head += ["programs now", "compile s now (cold)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    histories, rows, compiled = [0, 0], 0, []
    for name in dict.fromkeys(r["figure"] for r in result["runs"]):
        pairs = [(by.get((name, c, "current")), by.get((name, c, "baseline"))) for c in caches]
        if not pairs or None in pairs[0]:
            continue
        now, before = pairs[0]
        histories = [histories[0] + now["histories"], histories[1] + before["histories"]]
        cells = [name, f"{now['histories']:,} / {before['histories']:,}"]
        for now, before in pairs:
            if now is None or before is None:
                cells += ["", "", ""]
                continue
            ratio = before["wall_s"] / now["wall_s"]
            cells += [f"{now['wall_s']:,.1f}", f"{before['wall_s']:,.1f}", f"{ratio:.2f}x"]
        cold = pairs[0][0]
        compiled.append((cold.get("programs"), cold.get("compile_s")))
        cells += [_cell(compiled[-1][0]), _cell(compiled[-1][1], "{:,.1f}")]
        lines.append("| " + " | ".join(cells) + " |")
        rows += 1
    totals = result["totals"]
    cells = [
        "**all six**" if rows == len(FIGURES) else "**all**",
        f"{histories[0]:,} / {histories[1]:,}",
    ]
    for cache in caches:
        now, before = totals[f"current_{cache}_s"], totals[f"baseline_{cache}_s"]
        ratio = result["speedup"][cache]
        cells += [f"**{now:,.1f}**", f"**{before:,.1f}**", f"**{ratio:.2f}x**"]
    known = compiled and all(None not in pair for pair in compiled)
    programs = sum(p for p, _ in compiled) if known else None
    seconds = sum(c for _, c in compiled) if known else None
    cells += [_cell(programs, "**{:,}**"), _cell(seconds, "**{:,.1f}**")]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value, form: str = "{:,}") -> str:
    """A table cell: `value` formatted, or empty where the run's JSON did not say."""
    return "" if value is None else form.format(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.figures", description=__doc__)
    parser.add_argument("--baseline", default=BASELINE, help="the earlier engine's commit")
    parser.add_argument("--warm", action="store_true", help="also time every figure warm")
    parser.add_argument("--only", default=",".join(FIGURES), help="figures, comma-separated")
    parser.add_argument("--quick", action="store_true", help="the figures' small size: a smoke run")
    parser.add_argument("--out", type=Path, default=None, help="benchmarks/results/figures.json")
    parser.add_argument(
        "--from", dest="source", type=Path, default=None, help="a results JSON: time nothing"
    )
    parser.add_argument("--page", type=Path, default=None, help="write the table into this page")
    args = parser.parse_args(argv)
    if args.source is not None:
        try:
            return show(json.loads(args.source.read_text()), args.page)
        except (OSError, ValueError, KeyError) as error:
            print(f"benchmarks.figures: {args.source}: {error}", file=sys.stderr)
            return 2
    names = tuple(n for n in args.only.split(",") if n)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        print(f"benchmarks.figures: --only = {unknown} is invalid: from {FIGURES}", file=sys.stderr)
        return 2
    if args.page is not None:  # the page's markers checked before an hour of timing
        try:
            verdicts.with_table(args.page.read_text(), "", PAGE_MARKERS)
        except (OSError, ValueError) as error:
            print(f"benchmarks.figures: {args.page}: {error}", file=sys.stderr)
            return 2
    repo = Path(__file__).resolve().parent.parent
    name = "figures-quick.json" if args.quick else "figures.json"
    out = args.out or repo / "benchmarks" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(result):
        out.write_text(json.dumps(result, indent=1) + "\n")

    result = time_figures(repo, args.baseline, names, args.warm, args.quick, on_result=write)
    write(result)
    print(f"wrote {out}")
    return show(result, args.page)


def show(result: dict, page: Path | None) -> int:
    """Print the table, and write it between `PAGE_MARKERS` in `page` when given (OSError or
    ValueError when the page is missing or lacks the markers)."""
    if page is not None:
        page.write_text(verdicts.with_table(page.read_text(), table(result), PAGE_MARKERS))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
