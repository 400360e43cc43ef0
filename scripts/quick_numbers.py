"""Prove a refactor kept every figure's numbers: run every experiment at `--quick` from two
trees (e.g. a commit checked out with `git worktree add`, and this one) and compare the numbers
of their JSON reports.

    python scripts/quick_numbers.py run OUT_BEFORE --tree /tmp/before
    python scripts/quick_numbers.py run OUT_AFTER
    python scripts/quick_numbers.py compare OUT_BEFORE OUT_AFTER --tol 1e-6

`run` starts the command line (`gravity.run.cli`) in a subprocess per experiment in the tree's
folder (first on `sys.path`, then PYTHONPATH: an installed copy never shadows it) with a fresh,
empty result
store, so nothing is loaded from an earlier run. `compare` walks both reports' `numbers`
(timings such as `wall_s` left out) and prints, per experiment, how many numbers it compared and
the largest absolute difference; it exits 1 when one differs by more than `--tol`, when a key
exists on one side only, or when a report is missing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def experiment_names(tree: Path) -> list[str]:
    """The tree's experiments, read as every tree has them: `experiments.EXPERIMENTS` (a dict
    kept by hand up to 0a461b6, discovered from the modules after)."""
    code = "from experiments import EXPERIMENTS; print(' '.join(EXPERIMENTS))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(tree),
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def _env(tree: Path, store: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, JAX_PLATFORMS="cpu", CI="1")
    env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if store is not None:
        env["GRAVITY_RESULTS"] = str(store)
    return env


def cli_module(tree: Path) -> str:
    """The command line's module in `tree` (it moved to the run layer; older trees have it at
    the top of the package)."""
    return "gravity.run.cli" if (tree / "gravity" / "run" / "cli.py").is_file() else "gravity.cli"


def run_all(out: Path, tree: Path, names: list[str] | None) -> int:
    """Every experiment (or `names`) at --quick from `tree` into `out`; 1 if any failed."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in names or experiment_names(tree):
        with tempfile.TemporaryDirectory(prefix="gravity-store-") as store:
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", cli_module(tree), "run", name, "--quick", "--out", str(out)],
                env=_env(tree, Path(store)),
                cwd=tree,
                capture_output=True,
                text=True,
            )
        status = "ok" if proc.returncode == 0 else f"FAILED ({proc.stderr.strip()[-300:]})"
        print(f"{name}: {status} in {time.perf_counter() - start:.0f} s", flush=True)
        failed |= proc.returncode != 0
    return int(failed)


TIMINGS = (
    "wall_s",
    "compute_wall_s",
    "compile_s",
    "run_s",
    "overhead",
    "safety_step_overhead_adversarial",
)
"""Keys that time a run rather than measure it: never compared (the last two are the defences'
wall-clock step costs, which left the experiment for `benchmarks/defence_costs.py`)."""


def leaves(value, prefix: str = ""):
    """(dotted key, value) of every number, string, bool or null in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


def difference(a, b) -> float:
    """|a - b| for numbers (0 for equal non-finite ones), 0/inf for other values."""
    numeric = (int, float)
    if isinstance(a, numeric) and isinstance(b, numeric) and not isinstance(a, bool):
        if isinstance(b, bool):
            return math.inf
        if math.isnan(a) and math.isnan(b) or a == b:
            return 0.0
        return abs(a - b)
    return 0.0 if a == b else math.inf


def _measured(numbers) -> dict:
    """{dotted key: value} of a report's numbers, timings left out."""
    return {k: v for k, v in leaves(numbers) if k.rsplit(".", 1)[-1] not in TIMINGS}


def compare(before: Path, after: Path, tol: float) -> int:
    """Print each experiment's largest difference; 1 if any exceeds `tol` or keys differ."""
    worst_status = 0
    for path in sorted(before.glob("*.json")):
        other = after / path.name
        if not other.is_file():
            print(f"{path.stem}: missing in {after}")
            worst_status = 1
            continue
        a = _measured(json.loads(path.read_text())["numbers"])
        b = _measured(json.loads(other.read_text())["numbers"])
        only = sorted(a.keys() ^ b.keys())
        diffs = {key: difference(a[key], b[key]) for key in a.keys() & b.keys()}
        key, worst = max(diffs.items(), key=lambda item: item[1], default=("", 0.0))
        bad = worst > tol or only
        print(
            f"{path.stem}: {len(diffs)} numbers, max |diff| {worst:.3g}"
            + (f" at {key}" if worst > 0 else "")
            + (f"; keys on one side only: {only[:5]}" if only else "")
            + ("  FAIL" if bad else "")
        )
        worst_status |= int(bool(bad))
    return worst_status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="every experiment at --quick into OUT")
    run.add_argument("out", type=Path)
    run.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    run.add_argument("--only", nargs="*", default=None, help="these experiments only")
    check = commands.add_parser("compare", help="compare two folders of reports")
    check.add_argument("before", type=Path)
    check.add_argument("after", type=Path)
    check.add_argument("--tol", type=float, default=1e-6)
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_all(args.out, args.tree.resolve(), args.only)
    return compare(args.before, args.after, args.tol)


if __name__ == "__main__":
    sys.exit(main())
