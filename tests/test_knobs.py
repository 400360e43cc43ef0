"""What a user reaches for: per-phase optimizer and weight decay (bitwise unchanged at the
defaults, lr-coupled as documented, refused in one line where ignored, shown by `gravity
show`), did-you-mean on every unknown name, `gravity run` without a name, sweeps stored by
default, and the knob catalogue docs/knobs.md equal to the code."""

import contextlib
import dataclasses
import io
import os
from pathlib import Path
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import EXPERIMENTS, experiment
from gravity.engine import history, presets
from gravity.engine.spec import PhaseSpec, with_phase
from gravity.engine.worlds import WorldKnobs
from gravity.run import knobs, overrides, sweep
from gravity.run.cli import main
from gravity.run.store import RESULTS_ENV, ResultStore
from gravity.run.sweep.assemble import SweepResult
from gravity.validation import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SPEC = presets.standard_spec("mlp", "tiny")
KNOBS = presets.standard_knobs(SPEC)
SEEDS = history.seed_keys(range(2))


def run_main(argv, tmp: Path) -> tuple[int, str, str]:
    """`main(argv)` in this process with nothing run, folders under `tmp`."""
    out, err = io.StringIO(), io.StringIO()
    env = {RESULTS_ENV: str(tmp / "results"), "GRAVITY_CACHE": str(tmp / "cache")}
    with (
        mock.patch.dict(os.environ, env),
        mock.patch("gravity.run.runtime.use_cpu_cores"),
        mock.patch("gravity.run.runtime.enable_compilation_cache"),
        mock.patch("gravity.run.experiment.run_experiment"),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def one_line(err: str, *parts: str) -> str:
    line = err.strip()
    assert line.startswith("gravity: ") and "\n" not in line and "Traceback" not in line, err
    for part in parts:
        assert part in line, line
    return line


# -- per-phase optimizer and weight decay --------------------------------------------------------


def benign(optimizer: str, weight_decay: float):
    spec = with_phase(SPEC, "benign", optimizer=optimizer, weight_decay=weight_decay)
    return history.run_histories(SEEDS, spec, history.repeat_knobs(KNOBS, 2))


@pytest.fixture(scope="module")
def runs():
    return {
        "adam": history.run_histories(SEEDS, SPEC, history.repeat_knobs(KNOBS, 2)),
        "adamw0": benign("adamw", 0.0),
        "adamw": benign("adamw", 0.5),
    }


def test_adamw_without_decay_equals_the_default_adam_history(runs):
    for a, b in zip(jax.tree.leaves(runs["adam"]), jax.tree.leaves(runs["adamw0"]), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_decay_acts_in_its_phase_only_and_shrinks_the_weights(runs):
    decayed, plain = runs["adamw"], runs["adam"]
    for phase in ("pretrain", "helpful", "safety"):
        for a, b in zip(
            jax.tree.leaves(plain["params"][phase]),
            jax.tree.leaves(decayed["params"][phase]),
            strict=True,
        ):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    def norm(out):
        return sum(float(jnp.sum(w**2)) for w in jax.tree.leaves(out["params"]["benign"]))

    assert norm(decayed) < norm(plain)


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_weight_decay_is_lr_coupled_as_documented(name):
    """One step with decay wd minus the same step without it is -lr * wd * theta."""
    params = {"w": jnp.linspace(-1.0, 2.0, 6).reshape(2, 3)}
    grads = {"w": jnp.linspace(0.5, -0.5, 6).reshape(2, 3)}
    lr, wd = 0.01, 0.3

    def step(decay):
        tx = history.make_optimizer(name, lr, decay)
        return tx.update(grads, tx.init(params), params)[0]["w"]

    np.testing.assert_allclose(step(wd) - step(0.0), -lr * wd * params["w"], rtol=1e-5)


def test_adam_with_a_decay_is_refused_not_ignored():
    with pytest.raises(ConfigError, match="b.weight_decay.*optimizer=adamw"):
        PhaseSpec("b", "benign", 5, 8, weight_decay=0.1)
    with pytest.raises(ConfigError, match="weight_decay"):
        history.make_optimizer("adam", 1e-3, 0.1)
    assert PhaseSpec("b", "benign", 5, 8, optimizer="sgd", weight_decay=0.1).weight_decay == 0.1


def test_show_prints_each_phase_optimizer_and_decay(tmp_path):
    status, out, err = run_main(
        [
            "show", "blocking", "--quick",
            "--set", "phases.benign.weight_decay=0.1", "--set", "phases.benign.optimizer=adamw",
        ],
        tmp_path,
    )  # fmt: skip
    assert status == 0, err
    assert "phase benign: benign, 100 steps x 64, adamw (wd 0.1), lr 0.001" in out
    assert "phase safety: safety, 100 steps x 64, adam, lr 0.001" in out


def test_decay_on_an_adam_phase_is_refused_in_one_line(tmp_path):
    status, _, err = run_main(
        ["run", "erosion", "--quick", "--set", "phases.benign.weight_decay=0.1",
         "--out", str(tmp_path / "out")],
        tmp_path,
    )  # fmt: skip
    assert status == 2
    one_line(err, "phases.benign.weight_decay = 0.1", "--set phases.benign.optimizer=adamw")


def test_overridden_optimizer_and_decay_reach_the_spec():
    resolved = overrides.resolve(
        experiment("erosion"),
        ["size=tiny", "models=mlp", "phases.benign.optimizer=sgd", "phases.benign.weight_decay=1"],
    )
    spec, _ = resolved.sweeps["mlp"].build()
    assert (spec.phase("benign").optimizer, spec.phase("benign").weight_decay) == ("sgd", 1.0)
    assert spec.phase("safety").optimizer == "adam"


# -- did you mean ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--set", "world.benign_overlp=0.1"], "did you mean world.benign_overlap?"),
        (["--set", "seds=3"], "did you mean seeds?"),
        (["--set", "phases.benin.steps=3"], "did you mean phases.benign.steps?"),
        (["--set", "phases.benign.stpes=3"], "did you mean phases.benign.steps?"),
        (["--set", "phases.benign.optimizer=adamww"], "did you mean adamw?"),
    ],
)
def test_unknown_names_list_the_valid_ones_and_the_closest(argv, expected, tmp_path):
    status, _, err = run_main(["show", "blocking", "--quick", *argv], tmp_path)
    assert status == 2
    one_line(err, expected)


def test_unknown_experiment_and_phase_suggest_the_closest(tmp_path):
    status, _, err = run_main(["show", "blockin"], tmp_path)
    assert status == 2
    one_line(err, f"one of {', '.join(EXPERIMENTS)};", "did you mean blocking?")
    with pytest.raises(ConfigError, match="one of pretrain, helpful, safety, benign; did you "):
        SPEC.phase("benin")


def test_sweep_result_key_errors_list_the_names():
    axis = sweep.Axis("benign_lr", (1e-3, 3e-3))
    result = SweepResult(
        axes=(axis,),
        seeds=np.arange(2),
        arrays={"metrics/benign/harmfulness": np.zeros((2, 2)), "diverged": np.zeros((2, 2))},
        diverged=np.zeros((2, 2), bool),
        info={},
    )
    with pytest.raises(KeyError, match="did you mean metrics/benign/harmfulness"):
        result["metrics/benign/harmfulnes"]
    with pytest.raises(KeyError, match="one of benign_lr; did you mean benign_lr"):
        result.axis_values("benign_rl")


# -- gravity run without a name --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "show"])
def test_no_name_lists_the_experiments_and_exits_2(command, tmp_path):
    status, out, err = run_main([command], tmp_path)
    assert status == 2
    assert [line.split()[0] for line in out.splitlines()] == list(EXPERIMENTS)
    one_line(err, f"{command} needs an experiment name")


# -- sweeps are stored by default ------------------------------------------------------------------


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    tiny = sweep.Sweep("tiny-default", (), 2, lambda: (SPEC, KNOBS))
    with mock.patch.dict(os.environ, {RESULTS_ENV: str(root)}):
        first = sweep.run_sweep(tiny, progress=False)
        again = sweep.run_sweep(tiny, progress=False)
        memory = sweep.run_sweep(tiny, store=False, progress=False)
    return root, first, again, memory


def test_run_sweep_stores_by_default_and_false_opts_out(stored):
    root, first, again, memory = stored
    assert Path(first.info["path"]).is_relative_to(root) and not first.info["loaded_from_store"]
    assert again.info["loaded_from_store"] and memory.info["path"] is None
    assert not memory.info["loaded_from_store"]
    for name, array in memory.arrays.items():
        np.testing.assert_array_equal(first[name], array, err_msg=name)
    with pytest.raises(ConfigError, match="store"):
        sweep.run_sweeps([], store=None)
    assert isinstance(sweep.runner.chosen_store(True), ResultStore)


# -- the knob catalogue ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalogue():
    return knobs.catalogue()


def test_docs_knobs_md_is_the_generated_catalogue(catalogue):
    written = (ROOT / "docs" / "knobs.md").read_text()
    stale = "docs/knobs.md is stale: python -m gravity.run.knobs > docs/knobs.md"
    assert written == catalogue, stale
    assert "(knobs.md)" in (ROOT / "docs" / "usage.md").read_text()


def test_catalogue_lists_every_settable_name(catalogue):
    names = [f"`world.{f.name}`" for f in dataclasses.fields(WorldKnobs)]
    names += [f"`phases.PHASE.{name}`" for name in overrides.phase_fields()]
    assert [name for name in names if name not in catalogue] == []
    sections = catalogue.split("\n### ")[1:]
    assert [s.split("\n")[0] for s in sections] == list(EXPERIMENTS)
    for section in sections:
        config = experiment(section.split("\n")[0]).make_config()
        missing = [f.name for f in dataclasses.fields(config) if f"| `{f.name}` |" not in section]
        assert missing == [], section.split("\n")[0]


def test_an_undocumented_knob_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Documented:
        """A test class.

        alpha, beta: two knobs
            on two lines.
        """

        alpha: float = 0.0
        beta: float = 0.0
        gamma: float = 0.0

    docs = knobs.field_docs(Documented)
    assert docs == {"alpha": "two knobs on two lines.", "beta": "two knobs on two lines."}
    with pytest.raises(ConfigError, match="gamma"):
        knobs.require_docs(Documented, ["alpha", "gamma"])
