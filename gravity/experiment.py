"""One protocol for every experiment, and the one path that runs it.

An experiment module (`experiments/NAME.py`) defines `Config`, `quick`, `sweeps`, `summarise`
and `plot` and declares `EXPERIMENT = Experiment.defined_in(__name__, NAME, description)`:
- `config`: its full-size configuration, a frozen dataclass with a `seeds` field;
- `quick`: full config -> the small default (`--quick`, `make run`, tests at tiny size);
- `sweeps`: config -> {label: `gravity.sweep.Sweep`}, every training history it needs;
- `summarise`: (config, {label: SweepResult}) -> the JSON numbers (analysis fixed in the
  module's docstring before any result was seen);
- `plot`: (config, results, numbers, path) -> writes the figure.

`run_experiment` is the only way an experiment runs: its sweeps go through one runner
(`gravity.sweep.run_sweeps`: sharded over `jax.devices()`, chunked, stored, resumable, with a
progress bar), then summarise, plot and `out_dir/NAME.json` with `n_histories` and `wall_s`.
So `--seeds`, `--quick`, `--set` (`gravity.overrides`) and `--force` mean the same for every
experiment.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax

from gravity import overrides as overriding
from gravity import resources, results, sweep
from gravity.store import ResultStore
from gravity.validation import check


@dataclasses.dataclass(frozen=True)
class Experiment:
    """An experiment: its configs, the sweeps it runs, and how it reads and draws them."""

    name: str
    description: str
    config: Callable[[], Any]
    quick: Callable[[Any], Any]
    sweeps: Callable[[Any], Mapping[str, sweep.Sweep]]
    summarise: Callable[[Any, Mapping[str, sweep.SweepResult]], dict]
    plot: Callable[[Any, Mapping[str, sweep.SweepResult], dict, Path], Any]

    @classmethod
    def defined_in(cls, module_name: str, name: str, description: str) -> Experiment:
        """The experiment a module defines by its `Config`, `quick`, `sweeps`, `summarise` and
        `plot`, so every experiment module names its parts the same way, once."""
        module = sys.modules[module_name]
        return cls(
            name=name,
            description=description,
            config=module.Config,
            quick=module.quick,
            sweeps=module.sweeps,
            summarise=module.summarise,
            plot=module.plot,
        )

    def make_config(self, quick: bool = False, seeds: int | None = None) -> Any:
        """The full or quick config, with `seeds` replaced when given."""
        config = self.config()
        if quick:
            config = self.quick(config)
        if seeds is not None:
            check(isinstance(seeds, int) and seeds >= 1, "--seeds", "a positive integer", seeds)
            config = dataclasses.replace(config, seeds=seeds)
        return config

    def n_histories(self, config: Any) -> int:
        """How many training histories `config` runs (counted from the sweeps' axes and seeds,
        never by planning them, so an absurd number of seeds costs nothing to count)."""
        return sum(resources.sweep_histories(s) for s in self.sweeps(config).values())


def run_experiment(
    experiment: Experiment,
    config: Any,
    *,
    out_dir: Path | str = Path("figures"),
    store: ResultStore | bool = True,
    progress: bool = True,
    devices: Sequence[jax.Device] | None = None,
    overrides: Sequence[overriding.Override] = (),
) -> dict:
    """Run `experiment` at `config`: sweeps, numbers, figure and JSON report; returns numbers.

    store: the result store (`gravity.sweep.run_sweeps`: True, the default, is `ResultStore()`;
        False keeps the sweeps in memory only).
    overrides: `gravity.overrides` (`--set`): config fields replace `config`'s, `world.` and
    `phases.` ones wrap every sweep's build; all are recorded in the report's config.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    config = overriding.apply_to_config(config, overrides)
    sweeps = overriding.apply_to_sweeps(experiment.sweeps(config), overrides)
    done = sweep.run_sweeps(
        list(sweeps.values()),
        store=store,
        experiment=experiment.name,
        progress=progress,
        devices=devices,
    )
    outcome = dict(zip(sweeps, done, strict=True))
    numbers = experiment.summarise(config, outcome)
    experiment.plot(config, outcome, numbers, out_dir / f"{experiment.name}.png")
    results.write_report(
        out_dir,
        experiment.name,
        numbers,
        {**results.to_jsonable(config), "overrides": overriding.record(overrides)}
        if overrides
        else config,
        time.perf_counter() - start,
        n_histories=sum(r.n_histories for r in outcome.values()),
        extra={"sweeps": {label: sweep.summary(r) for label, r in outcome.items()}},
    )
    return numbers
