"""`python -m benchmarks [--quick] [--out benchmarks/results/bench.json] [--kinds mlp,transformer]
[--no-torch]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.bench import run_bench, table, write
from benchmarks.config import KINDS, SCALES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a ~2 minute smoke version")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write (benchmarks/results/bench.json; bench-quick.json with --quick)",
    )
    parser.add_argument("--kinds", default=",".join(KINDS), help="model kinds, comma-separated")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch baselines")
    args = parser.parse_args(argv)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        allowed = ", ".join(KINDS)
        print(f"benchmarks: --kinds = {unknown} is invalid: from {allowed}", file=sys.stderr)
        return 2
    scale = SCALES["quick" if args.quick else "full"]
    out = run_bench(scale, kinds, torch=not args.no_torch, log=lambda m: print(m, flush=True))
    args.out = args.out or Path(f"benchmarks/results/bench{'-quick' if args.quick else ''}.json")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write(out, args.out)
    print()
    print(table(out))
    print(f"\nwrote {args.out} ({out['wall_s']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
