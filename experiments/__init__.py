"""One module per claim. Each declares `EXPERIMENT`, a `gravity.experiment.Experiment`: a frozen
`Config` with its quick variant, the sweeps it runs, how it summarises and draws them. All run
through `gravity.experiment.run_experiment`. Experiments only compose the library."""

from __future__ import annotations

import importlib
from types import ModuleType

from gravity.validation import check_choice

EXPERIMENTS: dict[str, str] = {
    "erosion": "safety erosion: harmfulness through P -> H -> S -> T, MLP and transformer",
    "reversion": "the main track: alignment of benign drift with v_rev against nulls",
    "blocking": "blocking, pushing or projecting out motion along v_rev, with controls",
    "witness": "which basin pulls: pretraining's harmful answer or the witness's",
    "basin_depth": "basin depth: pretraining x alignment length -> reversion, barrier, curvature",
    "metastability": "escape times vs lr, batch and depth; Kramers fit; Langevin check",
    "overlap": "reversion as the benign distribution moves away from the pretraining one",
    "traits": "latent trait transfer through unrelated supervision, shared vs different init",
    "resurgence": "an erased mode returns in a toy diffusion model after benign fine-tuning",
    "defences": "defences against reversion compared on one harm-vs-task frontier",
    "early_warning": "pre-flight and online monitors that predict reversion, against the naive one",
    "relearning": "unlearned capabilities return under relearning, against a never-learned model",
}


def load(name: str) -> ModuleType:
    """The experiment module called `name`."""
    check_choice(name, EXPERIMENTS, "experiment")
    return importlib.import_module(f"experiments.{name}")


def experiment(name: str):
    """The `Experiment` called `name`."""
    return load(name).EXPERIMENT
