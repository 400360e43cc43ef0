"""One protocol for every experiment, the one place experiments are found by name, and the one
path that runs them.

An experiment module (`experiments/NAME.py`) defines `Config`, `quick`, `sweeps`, `summarise`
and `plot` and declares `EXPERIMENT = Experiment.defined_in(__name__, NAME, description)`:
- `config`: its full-size configuration, a frozen dataclass with a `seeds` field;
- `quick`: full config -> the small default (`--quick`, `make run`, tests at tiny size);
- `sweeps`: config -> {label: `gravity.run.sweep.Sweep`}, every training history it needs;
- `summarise`: (config, {label: SweepResult}) -> the JSON numbers (analysis fixed in the
  module's docstring before any result was seen);
- `plot`: (config, results, numbers, path) -> writes the figure; a module whose figure reads
  only its numbers says so (`PLOT_FROM_NUMBERS = True`), and `redraw` (`gravity plot NAME`)
  draws it again from its JSON, computing nothing.
Its claims are data beside it, `experiments/claims/NAME.toml` (docs/verdicts.md).

The experiments are discovered, never listed by hand: every module of the `experiments` package
that declares an `EXPERIMENT` named after the module (`catalogue`); `load(NAME)` is the only
function that imports one by name (the command line, the cluster's jobs and the knob catalogue
all use it).

A run is prepared once (`prepare`, or `gravity.run.overrides.resolve` for a command line): the
config with its overrides, the experiment's `sweeps(config)` called once, every grid point built
once (`BuildOnce`). The `Prepared` run is what `run_experiment`, `gravity show` and the cluster's
jobs read, so none of them builds it again.

`run_experiment` is the only way an experiment runs: its sweeps go through one runner
(`gravity.run.sweep.run_sweeps`: sharded over `jax.devices()`, chunked, stored, resumable, with a
progress bar), then summarise, plot and `out_dir/NAME.json` with `n_histories` and `wall_s`.
So `--seeds`, `--quick`, `--set` (`gravity.run.overrides`) and `--force` mean the same for every
experiment.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax

from gravity.instruments import claims as claiming
from gravity.run import overrides as overriding
from gravity.run import report, resources, sweep
from gravity.run.store import ResultStore
from gravity.validation import ConfigError, check, check_choice


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
    claims: tuple[claiming.Claim, ...] = ()
    plots_from_numbers: bool = False

    @classmethod
    def defined_in(cls, module_name: str, name: str, description: str) -> Experiment:
        """The experiment a module defines by its `Config`, `quick`, `sweeps`, `summarise` and
        `plot`, so every experiment module names its parts the same way, once. Its claims are
        declared in data, `claims/NAME.toml` beside the module (`claims.load`; its statistics
        may name the module's functions), or, for a module without that file (a test's), in
        its `CLAIMS`; never both, so each experiment's claims have one source."""
        module = sys.modules[module_name]
        return cls(
            name=name,
            description=description,
            config=module.Config,
            quick=module.quick,
            sweeps=module.sweeps,
            summarise=module.summarise,
            plot=module.plot,
            claims=declared_claims(module, name),
            plots_from_numbers=getattr(module, "PLOT_FROM_NUMBERS", False),
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


PACKAGE = "experiments"
"""The package whose modules are the experiments."""

CLAIM_FILES = "claims"
"""The folder, beside the experiment modules, of their claim files (NAME.toml)."""


def declared_claims(module: Any, name: str) -> tuple[claiming.Claim, ...]:
    """The claims of experiment `name`: its claim file `claims/NAME.toml` beside `module`
    where there is one, else the module's `CLAIMS` (none where it has neither); refused in one
    line when both declare claims."""
    path = Path(module.__file__).parent / CLAIM_FILES / f"{name}.toml"
    listed = getattr(module, "CLAIMS", None)
    if not path.is_file():
        return tuple(listed or ())
    check(listed is None, f"{module.__name__}.CLAIMS", f"absent: {path} declares them", "a list")
    return claiming.load(path, name, module)


def _modules() -> list[str]:
    """The modules of the experiments package, by name (found by pkgutil, none imported);
    a name starting with `_` is private, never an experiment."""
    package = importlib.import_module(PACKAGE)
    found = pkgutil.iter_modules(package.__path__)
    return sorted(m.name for m in found if not m.ispkg and not m.name.startswith("_"))


def _declared(module: str) -> Experiment | None:
    """The `EXPERIMENT` that `experiments/<module>.py` declares (None: it declares none, a
    helper module); refused in one line when it is named other than its module."""
    declared = getattr(importlib.import_module(f"{PACKAGE}.{module}"), "EXPERIMENT", None)
    if not isinstance(declared, Experiment):
        return None
    check(
        declared.name == module,
        f"{PACKAGE}/{module}.py: EXPERIMENT.name",
        f"the module's own name, {module!r}",
        declared.name,
    )
    return declared


def catalogue() -> dict[str, str]:
    """{name: description} of every experiment, sorted by name: each module of the `experiments`
    package that declares an `EXPERIMENT` (so adding a module is all it takes to add one)."""
    declared = {module: _declared(module) for module in _modules()}
    return {name: e.description for name, e in declared.items() if e is not None}


def load(name: str) -> Experiment:
    """The experiment called `name`: the only place an experiment is imported by name. An
    unknown name is refused in one line listing the experiments and the closest of them."""
    found = _declared(name) if isinstance(name, str) and name in _modules() else None
    if found is None:
        check_choice(name, catalogue(), "experiment")
    return found


@dataclasses.dataclass(frozen=True)
class BuildOnce:
    """A sweep's `build` that builds each grid point once and hands the same (spec, knobs) back
    after, so the checks before a run, its plan and `gravity show` all read one build of each
    point (a point whose values cannot be hashed is built every time). It compares as the build
    it wraps: the table of built points is filled as they are asked for."""

    build: Callable[..., tuple[Any, Any]]
    built: dict[tuple, tuple[Any, Any]] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )

    def __call__(self, **point) -> tuple[Any, Any]:
        key = tuple(sorted(point.items()))
        try:
            return self.built[key]
        except TypeError:
            return self.build(**point)
        except KeyError:
            self.built[key] = self.build(**point)
            return self.built[key]


@dataclasses.dataclass(frozen=True)
class Prepared:
    """One run of an experiment, resolved once: its config with every override applied, the
    overrides (`gravity.run.overrides`), and its sweeps, each built from one call of the
    experiment's `sweeps` with every grid point built once (history overrides applied).
    `run_experiment`, `gravity show` and the cluster's jobs all read it."""

    experiment: Experiment
    config: Any
    sweeps: Mapping[str, sweep.Sweep]
    overrides: tuple[overriding.Override, ...] = ()

    @property
    def name(self) -> str:
        return self.experiment.name

    @property
    def n_histories(self) -> int:
        """Training histories the run holds (counted from the sweeps' axes and seeds)."""
        return sum(resources.sweep_histories(s) for s in self.sweeps.values())

    def report_config(self) -> Any:
        """The config as the JSON report records it, with the overrides when there are any."""
        if not self.overrides:
            return self.config
        return {**report.to_jsonable(self.config), "overrides": overriding.record(self.overrides)}


def prepare(
    experiment: Experiment, config: Any, overrides: Sequence[overriding.Override] = ()
) -> Prepared:
    """`experiment` at `config` (its `FIELD=VALUE` overrides already applied), ready to run:
    `sweeps(config)` called once, every sweep's `build` wrapped to build each point once, then
    the history overrides (`world.`, `phases.`) applied and checked on every point."""
    made = {
        label: dataclasses.replace(s, build=BuildOnce(s.build))
        for label, s in experiment.sweeps(config).items()
    }
    return Prepared(
        experiment, config, overriding.apply_to_sweeps(made, overrides), tuple(overrides)
    )


def run_experiment(
    experiment: Experiment | Prepared,
    config: Any = None,
    *,
    out_dir: Path | str = Path("figures"),
    store: ResultStore | bool = True,
    progress: bool = True,
    devices: Sequence[jax.Device] | None = None,
) -> dict:
    """Run an experiment: sweeps, numbers, figure and JSON report; returns the numbers.

    experiment: an `Experiment` run at `config` (prepared here), or a run already `Prepared`
        (what `gravity.run.overrides.resolve` makes of a command line: run as it is, `config` None).
    store: the result store (`gravity.run.sweep.run_sweeps`: True, the default, is `ResultStore()`;
        False keeps the sweeps in memory only).
    """
    start = time.perf_counter()
    if isinstance(experiment, Prepared):
        check(config is None, "config", "None with a Prepared run (it holds its config)", config)
        prepared = experiment
    else:
        prepared = prepare(experiment, config)
    done = sweep.run_sweeps(
        list(prepared.sweeps.values()),
        store=store,
        experiment=prepared.name,
        progress=progress,
        devices=devices,
    )
    outcome = dict(zip(prepared.sweeps, done, strict=True))
    chosen, config = prepared.experiment, prepared.config
    numbers = chosen.summarise(config, outcome)
    chosen.plot(config, outcome, numbers, Path(out_dir) / f"{chosen.name}.png")
    report.write_report(
        Path(out_dir),
        chosen.name,
        numbers,
        prepared.report_config(),
        time.perf_counter() - start,
        n_histories=sum(r.n_histories for r in outcome.values()),
        extra={
            "sweeps": {label: sweep.summary(r) for label, r in outcome.items()},
            "claims": [claiming.evaluate(claim, numbers) for claim in chosen.claims],
        },
    )
    return numbers


def redraw(prepared: Prepared, out_dir: Path | str = Path("figures")) -> Path:
    """`out_dir/NAME.png` drawn again from `out_dir/NAME.json`'s numbers (a restyled figure
    without the hours its runs took). Only for an experiment whose figure reads its numbers
    alone (`Experiment.plots_from_numbers`), and only where the JSON's config is the one
    `prepared` resolves to; otherwise (or for a JSON that cannot be read) a one-line
    ConfigError. Nulls inside lists (non-finite array entries) are read back as NaN."""
    chosen, path = prepared.experiment, Path(out_dir) / f"{prepared.name}.json"
    if not chosen.plots_from_numbers:
        raise ConfigError(
            f"{chosen.name}'s figure draws from its sweeps' arrays, not only its JSON: "
            f"`gravity run {chosen.name}` draws it (finished sweeps load from the result store)"
        )
    if not path.is_file():
        raise ConfigError(
            f"{path} is missing: `gravity run {chosen.name}` with the same options writes it"
        )
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path} cannot be read ({error}): run {chosen.name} again") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("numbers"), dict):
        raise ConfigError(f"{path} holds no numbers: run {chosen.name} again")
    expected = report.to_jsonable(prepared.report_config())
    if payload.get("config") != expected:
        raise ConfigError(
            f"{path} was written at another config than this command line's: give the same "
            f"--quick/--seeds/--set as its run (its JSON's `config`)"
        )
    numbers = _nulls_as_nan(payload["numbers"])
    return chosen.plot(prepared.config, None, numbers, Path(out_dir) / f"{chosen.name}.png")


def _nulls_as_nan(value: Any) -> Any:
    """JSON numbers as `summarise` made them: a null inside a list (a non-finite float of an
    array) back to NaN; a null standing alone (a missing configuration) stays None."""
    if isinstance(value, dict):
        return {k: _nulls_as_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [float("nan") if v is None else _nulls_as_nan(v) for v in value]
    return value
