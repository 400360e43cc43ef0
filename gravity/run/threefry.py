"""Threefry on CPU as one compiled kernel: jax.random's bits exactly, programs compiled faster.

JAX lowers its random-bit hash (threefry-2x32) on CPU as a rolled loop of five iterations per
draw, to keep programs small, and XLA compiles every one of those loops on its own: a history
program draws at dozens of places (each phase's batches, the initialisation, the probes), so
the loops are 30-45% of its compile time (#25; `gravity.run.performance`). `use_native_threefry`
lowers the same primitive on CPU to one FFI custom call instead: a small C++ kernel
(`threefry.cc`, integer arithmetic only, so every bit equals JAX's), built once per machine with
the system's C++ compiler into the compile cache's folder and loaded from there.

The kernel runs where a program's arrays are one device's: a single-device program, or the body
of a `shard_map` over every mesh axis (the sweep runner's layout). In a program that XLA
partitions across devices itself, the custom call would be gathered onto every device, so there
JAX's own loop is lowered as before. Set GRAVITY_NATIVE_THREEFRY=0 to keep JAX's lowering
everywhere; a machine without a C++ compiler keeps it too, with one warning.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import jax
import jax.extend.random as jax_random
import jax.numpy as jnp
import jaxlib
from jax.interpreters import mlir

from gravity.run.folders import make_folder, warn_if_writable_by_others
from gravity.run.runtime import cache_dir

SOURCE = Path(__file__).with_name("threefry.cc")
TARGET = "gravity_threefry2x32"
SYMBOL = "GravityThreefry2x32"
SWITCH_ENV = "GRAVITY_NATIVE_THREEFRY"
COMPILER_ENV = "CXX"
FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-w")
_ENABLED: bool | None = None
"""Whether this process lowers threefry natively: None until `use_native_threefry` decides."""


class BuildError(RuntimeError):
    """The kernel could not be built or loaded (no compiler, a failed compile)."""


def library_path() -> Path:
    """Where the built kernel lives, in the compile cache's folder: named by what it is built
    from (source, flags, jaxlib's FFI headers), so a changed source or jaxlib gets its own
    build."""
    digest = hashlib.sha256(
        SOURCE.read_bytes() + " ".join(FLAGS).encode() + jaxlib.__version__.encode()
    ).hexdigest()[:16]
    return cache_dir() / "native" / f"threefry-{digest}.so"


def build(path: Path) -> Path:
    """Compile `threefry.cc` into the shared library `path` (atomically: a build that another
    process finishes first is simply replaced by an equal one)."""
    compiler = os.environ.get(COMPILER_ENV) or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise BuildError("no C++ compiler found (g++ or c++ on PATH, or $CXX)")
    make_folder(path.parent)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        built = Path(scratch) / path.name
        command = [compiler, *FLAGS, f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", str(built)]
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except OSError as error:
            raise BuildError(f"{compiler} could not be run: {error}") from error
        if done.returncode != 0:
            raise BuildError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        os.replace(built, path)
    return path


def use_native_threefry() -> bool:
    """Lower threefry on CPU to the native kernel from now on (idempotent); True if it is."""
    global _ENABLED
    if _ENABLED is not None:
        return _ENABLED
    _ENABLED = False
    if os.environ.get(SWITCH_ENV, "1") == "0":
        return False
    try:
        path = library_path()
        if not path.exists():
            build(path)
        warn_if_writable_by_others(path.parent, "the native kernel: a library gravity loads")
        library = ctypes.cdll.LoadLibrary(str(path))
        fallback = _jax_cpu_lowering()
    except (BuildError, OSError, ImportError, LookupError, AttributeError) as error:
        warnings.warn(f"threefry stays JAX's own loop on CPU: {error}", stacklevel=2)
        return False
    capsule = jax.ffi.pycapsule(getattr(library, SYMBOL))
    jax.ffi.register_ffi_target(TARGET, capsule, platform="cpu")
    mlir.register_lowering(jax_random.threefry2x32_p, _lowering(fallback), platform="cpu")
    _ENABLED = True
    return True


def _jax_cpu_lowering():
    """JAX's own CPU lowering of threefry, for the programs the kernel does not serve."""
    from jax._src.interpreters import mlir as internal

    entry = internal._platform_specific_lowerings["cpu"].get(jax_random.threefry2x32_p)
    if entry is None:
        raise LookupError("this JAX has no CPU lowering of threefry2x32 to fall back on")
    return entry.rule


def _native(key1, key2, count1, count2):
    """The custom call, every operand broadcast to the output's shape."""
    shape = jnp.broadcast_shapes(key1.shape, key2.shape, count1.shape, count2.shape)
    operands = [jnp.broadcast_to(x, shape) for x in (key1, key2, count1, count2)]
    out = jax.ShapeDtypeStruct(shape, jnp.uint32)
    return jax.ffi.ffi_call(TARGET, (out, out))(*operands)


def _lowering(fallback):
    native = mlir.lower_fun(_native, multiple_results=True)

    def rule(ctx, *operands):
        chosen = native if _one_device(ctx.module_context.axis_context) else fallback
        return chosen(ctx, *operands)

    return rule


def _one_device(context) -> bool:
    """Whether a lowering context's arrays are one device's: a single-device program, or the
    inside of a shard_map over every mesh axis (read by attribute: JAX's context classes are
    `mlir.ShardingContext` and `mlir.SPMDAxisContext`)."""
    devices = getattr(context, "num_devices", None)
    if devices is not None:
        return devices == 1
    mesh, manual = getattr(context, "mesh", None), getattr(context, "manual_axes", None)
    return mesh is not None and manual is not None and set(mesh.axis_names) <= set(manual)


__all__ = ["BuildError", "build", "library_path", "use_native_threefry"]
