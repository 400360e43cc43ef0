"""Writing what an experiment found: its numbers with the full config and provenance.

Every experiment writes `DIR/NAME.json` (numbers, config, package versions, git commit, devices)
beside `DIR/NAME.png`. JSON is written atomically (temporary file, then rename).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np

SCHEMA_VERSION = 1
PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "scipy", "matplotlib")


def mean_sd(values) -> dict[str, float]:
    """{"mean", "sd", "n"} of finite values over runs (sd with ddof = 0)."""
    array = np.asarray(values, dtype=float).ravel()
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return {"mean": float("nan"), "sd": float("nan"), "n": 0}
    return {"mean": float(finite.mean()), "sd": float(finite.std()), "n": int(finite.size)}


def git_commit() -> str | None:
    """The commit of the working tree, with '+dirty' if it has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def provenance() -> dict[str, Any]:
    """Where and with what a result was computed."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "schema_version": SCHEMA_VERSION,
        "git_commit": git_commit(),
        "packages": versions,
        "python": platform.python_version(),
        "devices": [str(d) for d in jax.devices()],
        "platform": platform.platform(),
    }


def to_jsonable(value: Any) -> Any:
    """Configs (dataclasses), numpy / jax arrays and scalars as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__type__": type(value).__name__, **fields}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic | np.ndarray | jax.Array):
        array = np.asarray(value)
        return to_jsonable(array.item() if array.ndim == 0 else array.tolist())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Write JSON atomically: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_jsonable(payload), indent=2, allow_nan=False, default=str)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(text + "\n")
        tmp = f.name
    os.replace(tmp, path)
    return path


def write_report(
    out_dir: Path, name: str, numbers: dict[str, Any], config: Any, wall_s: float
) -> Path:
    """`out_dir/name.json`: the experiment's numbers, its config and provenance."""
    payload = {
        "experiment": name,
        "numbers": numbers,
        "wall_s": round(float(wall_s), 2),
        "config": config,
        "provenance": provenance(),
    }
    return write_json(Path(out_dir) / f"{name}.json", payload)
