"""`gravity list | run NAME [--quick] [--seeds N] [--out DIR] [--force]`.

Runs keep their sweeps in the result store (`gravity.results`; $GRAVITY_RESULTS, else
`results/`): running a finished configuration again loads it, `--force` computes it again. On CPU
the host is split into one XLA device per core before JAX starts (`gravity.runtime.use_cpu_cores`;
a device count already in XLA_FLAGS is kept), so sweeps shard their runs over the cores.

Bad input (an unknown experiment, a knob outside its range) ends with one line naming the field
and what is allowed, exit status 2, and no traceback, before anything is compiled.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

from gravity.validation import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gravity", description="Toy-model tests of the gravitational reading of reversion."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the experiments")
    run = commands.add_parser("run", help="run an experiment: writes DIR/NAME.png and .json")
    run.add_argument("name", help="an experiment name (see `gravity list`)")
    run.add_argument("--quick", action="store_true", help="the small default size")
    run.add_argument("--seeds", type=int, default=None, help="number of seeds (runs)")
    run.add_argument("--out", type=Path, default=Path("figures"), help="output folder")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument(
        "--force", action="store_true", help="recompute results already in the result store"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from experiments import EXPERIMENTS, load
    from gravity.results import ResultStore
    from gravity.runtime import enable_compilation_cache, use_cpu_cores

    if args.command == "list":
        width = max(map(len, EXPERIMENTS))
        for name, description in EXPERIMENTS.items():
            print(f"{name:<{width}}  {description}")
        return 0
    try:
        if args.seeds is not None and args.seeds < 1:
            raise ConfigError(f"--seeds = {args.seeds} is invalid: a positive integer")
        module = load(args.name)
        use_cpu_cores()
        enable_compilation_cache()
        config = module.make_config(quick=args.quick, seeds=args.seeds)
        start = time.perf_counter()
        options = {"out_dir": args.out, "progress": not args.no_progress}
        if "store" in inspect.signature(module.run).parameters:
            options["store"] = ResultStore(force=args.force)
        module.run(config, **options)
    except ConfigError as error:
        print(f"gravity: {error}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    print(f"wrote {args.out / (args.name + '.png')} and .json in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
