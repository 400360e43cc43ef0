"""Process-wide JAX settings for command-line runs (never imported by the library's core)."""

from __future__ import annotations

import os
from pathlib import Path

import jax


def cache_dir() -> Path:
    """Where compiled programs are kept between runs: $GRAVITY_CACHE or ~/.cache/gravity/xla."""
    default = Path.home() / ".cache" / "gravity" / "xla"
    return Path(os.environ.get("GRAVITY_CACHE", default))


def enable_compilation_cache() -> Path:
    """Keep XLA programs on disk, so a second run of the same experiment skips compilation."""
    path = cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return path
