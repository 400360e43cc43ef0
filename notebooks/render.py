"""Execute the teaching notebooks and write them with their outputs, for reading (`make
notebooks`) and for CI (`tests/test_notebooks.py`, at the small size).

    python notebooks/render.py [--small] [--jobs N] [--out DIR] [NOTEBOOK.py ...]

Each notebook (default: every `notebooks/[0-9]*.py`, jupytext percent format) runs in its own
process and kernel, `--jobs` at a time, from the repository root, and is written with its
outputs to `DIR/NAME.ipynb` (default `notebooks/rendered/`, git-ignored). `--small` is the size
CI runs: `GRAVITY_NOTEBOOK_SIZE=small`, compiled at XLA's lowest optimisation level (the programs
are tiny; compiling is most of their time). `DIR/summary.json` records, per notebook, whether it
ran, its seconds and its error; the exit status is 1 if any failed.

Figures are kept: the kernel draws with matplotlib's inline backend (as Jupyter does), so each
`plt.show()` becomes an image/png output of its cell in the written notebook.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FAST_COMPILE = "--xla_backend_optimization_level=0"
INLINE = "module://matplotlib_inline.backend_inline"  # figures as image/png outputs


def notebooks() -> list[Path]:
    """The teaching notebooks, in order."""
    return sorted(HERE.glob("[0-9]*.py"))


def execute_one(path: Path, out: Path) -> None:
    """Run one notebook in a fresh kernel and write it with its outputs (raises on an error)."""
    os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")
    import jupytext
    import nbclient
    import nbformat

    notebook = jupytext.read(path)
    client = nbclient.NotebookClient(
        notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    try:
        client.execute()
    finally:
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, out / f"{path.stem}.ipynb")


def environment(small: bool) -> dict[str, str]:
    env = dict(os.environ, MPLBACKEND=INLINE, JUPYTER_PLATFORM_DIRS="1")
    if small:
        env["GRAVITY_NOTEBOOK_SIZE"] = "small"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()
    return env


def run_all(paths: list[Path], out: Path, small: bool, jobs: int) -> dict[str, dict]:
    """Every notebook in its own process, `jobs` at a time; {name: {ok, seconds, error}}."""

    def one(path: Path) -> tuple[str, dict]:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--one", str(path), "--out", str(out)],
            env=environment(small),
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        seconds = round(time.perf_counter() - start, 1)
        error = "" if proc.returncode == 0 else proc.stderr[-4000:]
        return path.stem, {"ok": proc.returncode == 0, "seconds": seconds, "error": error}

    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        summary = dict(pool.map(one, paths))
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook")
    parser.add_argument("--small", action="store_true", help="CI's size")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks run at once")
    parser.add_argument("--out", type=Path, default=HERE / "rendered")
    parser.add_argument("--one", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        execute_one(args.one.resolve(), args.out)
        return 0
    paths = [p.resolve() for p in args.notebooks] or notebooks()
    summary = run_all(paths, args.out.resolve(), args.small, args.jobs)
    for name, entry in summary.items():
        status = "ok" if entry["ok"] else "FAILED"
        print(f"{name}: {status} in {entry['seconds']} s")
        if not entry["ok"]:
            print(entry["error"], file=sys.stderr)
    return 0 if all(entry["ok"] for entry in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
