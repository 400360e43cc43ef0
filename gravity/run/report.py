"""Writing what an experiment found, and the JSON and file primitives the store shares.

Every experiment writes `DIR/NAME.json` (numbers, config, package versions, git commit, devices)
beside `DIR/NAME.png` (`write_report`). Files are written to a temporary name in the same folder
and renamed into place, so a reader never sees half a file. The result store (runs on disk,
checksummed, resumable) is `gravity.run.store`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np

from gravity.instruments.stats import mean_sd  # noqa: F401  (re-exported: experiments import it here)
from gravity.validation import check

SCHEMA_VERSION = 2  # of the reports (the store has its own: gravity.run.store)
PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "scipy", "matplotlib")


ROOT = Path(__file__).resolve().parent.parent.parent
"""The repository's root (this file is gravity/run/report.py)."""


def git_commit(root: Path = ROOT) -> str | None:
    """The commit of the working tree, with '+dirty' if it has uncommitted changes outside
    `figures/` (which a run of `make figures` rewrites as it goes) or untracked files under
    `gravity/` or `experiments/` (a new module changes what runs as much as an edit does)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!figures")
        untracked = git(
            "ls-files", "--others", "--exclude-standard", "--", "gravity", "experiments"
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if changed or untracked else "")


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
    """Configs (dataclasses), numpy / jax arrays, scalars and functions as plain JSON values.

    Functions (e.g. a sweep's measurement) become "module:qualname", so that a config's hash does
    not depend on where in memory a function happens to live.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__type__": type(value).__name__, **fields}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic | np.ndarray | jax.Array):
        array = np.asarray(value)
        return to_jsonable(array.item() if array.ndim == 0 else array.tolist())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{value.__module__}:{value.__qualname__}"
    return value


def atomic_write(path: Path, write, mode: int = 0o644) -> Path:
    """Call `write(file_object)` on a temporary file beside `path`, then rename it into place
    with permissions `mode` (reports are ordinary files; the store passes its private mode).
    A failed write (a full disk) raises an OSError that names `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, payload: dict[str, Any], mode: int = 0o644) -> Path:
    """Write JSON atomically: readers never see half a file."""
    text = json.dumps(to_jsonable(payload), indent=2, allow_nan=False, default=str) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()), mode)


def read_numbers(path: Path | str) -> dict[str, Any]:
    """The numbers of a figure's JSON report (a committed figure another experiment reads), or
    one line naming the file when there is none."""
    path = Path(path)
    check(
        path.is_file(), "figure", f"a JSON report at {path} (run its experiment first)", path.name
    )
    return json.loads(path.read_text())["numbers"]


def write_report(
    out_dir: Path,
    name: str,
    numbers: dict[str, Any],
    config: Any,
    wall_s: float,
    *,
    n_histories: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """`out_dir/name.json`: the experiment's numbers, its config and provenance.

    `n_histories` (training histories behind the figure) and `wall_s` sit beside the numbers;
    `extra` adds further top-level entries (e.g. how a sweep grouped its programs).
    """
    payload: dict[str, Any] = {"experiment": name, "numbers": numbers}
    if n_histories is not None:
        payload["n_histories"] = int(n_histories)
    payload["wall_s"] = round(float(wall_s), 2)
    payload.update(extra or {})
    payload["config"] = config
    payload["provenance"] = provenance()
    return write_json(Path(out_dir) / f"{name}.json", payload)
