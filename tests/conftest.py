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
