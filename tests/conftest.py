"""Strict numerics for every test: CPU only, rank promotion raises, warnings are errors.

The tests compile many tiny programs and run each for a few steps, so compilation dominates:
XLA's backend optimisation is turned off (LLVM -O0): test_history.py took 151 CPU-s instead of
264, the whole suite 14.3 CPU-min instead of 17.9 (with 7 more tests); the subprocesses the tests
start inherit it. The few tests bound by run time instead (thousands of Langevin particles, Monte
Carlo samples) compile their long program with `OPTIMISED`: ~7x faster there, same numbers."""

import os
import tempfile

FAST_COMPILE = "--xla_backend_optimization_level=0"
OPTIMISED = {"xla_backend_optimization_level": 3}
"""`jax.jit(f).lower(...).compile(OPTIMISED)`: one program with XLA's backend optimisation on."""

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Sweeps are stored by default: a test that names no store writes to a temporary one, never to
# the checkout's results/ (subprocesses the tests start inherit it).
os.environ.setdefault("GRAVITY_RESULTS", tempfile.mkdtemp(prefix="gravity-test-results-"))
if FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

# `make test` gives each of 2 workers whole files (`--dist loadfile`), by default in order of
# their number of tests, so the files with few but costly tests came last and one worker ran
# them while the other sat idle. The costliest files start first instead (about the longest
# first, measured alone in seconds; a file not named keeps its place after them).
FIRST = (
    "test_history.py",  # ~70
    "test_notebooks.py",  # ~55, two kernels at once
    "test_cli.py",  # ~45
    "test_sweep.py",  # ~45
    "test_defences.py",  # ~40
    "test_maps.py",  # ~40
    "test_relearning.py",  # ~30
    "test_experiments.py",  # ~28
    "test_limits.py",  # ~24
    "test_knobs.py",  # ~24
    "test_worlds.py",  # ~23
    "test_performance.py",  # ~20
    "test_bench.py",  # ~20
)


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist's reordering by test count
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))
