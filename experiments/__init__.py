"""One module per claim. Each declares `EXPERIMENT`, a `gravity.run.experiment.Experiment`: a frozen
`Config` with its quick variant, the sweeps it runs, how it summarises and draws them. All run
through `gravity.run.experiment.run_experiment`. Experiments only compose the library.

The experiments are discovered, not listed: a module here that declares an `EXPERIMENT` named
after itself is one (`gravity.run.experiment.catalogue`). `EXPERIMENTS` is {name: description} of
them all, sorted by name; `experiment(NAME)` is `gravity.run.experiment.load`, the one function that
loads an experiment by name.
"""

from __future__ import annotations

from gravity.run.experiment import catalogue
from gravity.run.experiment import load as experiment

__all__ = ["EXPERIMENTS", "experiment"]


def __getattr__(name: str):
    """`EXPERIMENTS`, found when asked for (importing every experiment module)."""
    if name == "EXPERIMENTS":
        return catalogue()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
