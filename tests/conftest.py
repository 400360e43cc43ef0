"""Strict numerics for every test: CPU only, rank promotion raises, warnings are errors.

The tests compile many tiny programs and run each for a few steps, so compilation dominates
(~80% of the CPU time): XLA's backend optimisation is turned off (LLVM -O0): test_history.py took
151 CPU-s instead of 264, the whole suite 14.3 CPU-min instead of 17.9 (with 7 more tests); and
XLA:CPU's newer fusion emitters too (the older emitters compile a tiny MLP history in 2.5 CPU-s,
not 4.5; test_history.py 57 CPU-s instead of 90, test_maps.py 34 instead of 51). The subprocesses
the tests start inherit both. The few tests bound by run time instead (thousands of Langevin
particles, Monte Carlo samples) compile their long program with `OPTIMISED`: ~7x faster there,
same numbers."""

import os
import tempfile

FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
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
# them while the other sat idle. The costliest files start first instead (longest first, as
# measured alone: 70 down to 20 s; a file not named keeps its place after them).
FIRST = (
    "test_history.py",
    "test_notebooks.py",  # two kernels at once
    "test_cli.py",
    "test_sweep.py",
    "test_defences.py",
    "test_maps.py",
    "test_relearning.py",
    "test_experiments.py",
    "test_limits.py",
    "test_knobs.py",
    "test_worlds.py",
    "test_performance.py",
    "test_bench.py",
)


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist's reordering by test count
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))
