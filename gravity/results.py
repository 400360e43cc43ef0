"""The on-disk result store, and writing what an experiment found.

Two things live here, both at the edge of the library (I/O only, no JAX transforms):

- **Reports**: every experiment writes `DIR/NAME.json` (numbers, config, package versions, git
  commit, devices) beside `DIR/NAME.png` (`write_report`).
- **The result store** (`ResultStore`): one directory per (experiment, config hash) holding the
  config, the arrays, provenance and a schema version. A sweep writes each finished chunk into it
  atomically, resumes from the finished chunks after a kill, and once complete is loaded instead of
  recomputed; `force=True` (the CLI's `--force`) discards a stored entry and computes it again.

Layout of an entry (`root/experiment/label-HASH/`):

    config.json     the full config that was hashed, schema version, provenance at the start
    chunks/*.npz    finished chunks of runs (while a sweep is in progress)
    arrays.npz      the assembled arrays (written once, atomically)
    result.json     metadata and provenance at the end; written last, so it marks completion

Every file is written to a temporary name in the same folder and renamed into place, so a reader
(or a resumed run) never sees half a file. The hash covers the config only, not the code: an
experiment whose measurement changes bumps its own version string in the config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np

from gravity.stats import mean_sd  # noqa: F401  (re-exported: experiments import it here)

SCHEMA_VERSION = 2
PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "scipy", "matplotlib")
RESULTS_ENV = "GRAVITY_RESULTS"


def git_commit() -> str | None:
    """The commit of the working tree, with '+dirty' if it has uncommitted changes outside
    `figures/` (which a run of `make figures` rewrites as it goes)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!figures"],
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


def _atomic_write(path: Path, write) -> Path:
    """Call `write(file_object)` on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Write JSON atomically: readers never see half a file."""
    text = json.dumps(to_jsonable(payload), indent=2, allow_nan=False, default=str) + "\n"
    return _atomic_write(path, lambda f: f.write(text.encode()))


def save_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write named arrays as one .npz, atomically."""
    return _atomic_write(
        path, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
    )


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read every array of an .npz written by `save_arrays` into memory."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


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


def config_hash(config: Any) -> str:
    """A stable 16-hex-digit hash of a config's JSON form (keys sorted)."""
    text = json.dumps(to_jsonable(config), sort_keys=True, allow_nan=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_root() -> Path:
    """Where results are stored: $GRAVITY_RESULTS, else `results/` in the working directory."""
    return Path(os.environ.get(RESULTS_ENV, "results"))


class Entry:
    """One stored configuration: `root/experiment/label-HASH/` (see the module docstring)."""

    def __init__(self, path: Path, config: Any, digest: str):
        self.path = Path(path)
        self.config = config
        self.hash = digest

    @property
    def chunk_dir(self) -> Path:
        return self.path / "chunks"

    def is_complete(self) -> bool:
        return (self.path / "result.json").is_file() and (self.path / "arrays.npz").is_file()

    def start(self) -> None:
        """Create the entry (idempotent) and record its config once."""
        if not (self.path / "config.json").is_file():
            write_json(
                self.path / "config.json",
                {
                    "schema_version": SCHEMA_VERSION,
                    "hash": self.hash,
                    "config": self.config,
                    "provenance": provenance(),
                },
            )

    def chunk_path(self, name: str) -> Path:
        return self.chunk_dir / f"{name}.npz"

    def write_chunk(self, name: str, arrays: Mapping[str, np.ndarray]) -> Path:
        return save_arrays(self.chunk_path(name), arrays)

    def read_chunk(self, name: str) -> dict[str, np.ndarray] | None:
        """A finished chunk's arrays, or None if it is missing or unreadable."""
        path = self.chunk_path(name)
        if not path.is_file():
            return None
        try:
            return load_arrays(path)
        except (OSError, ValueError, EOFError):
            return None

    def finish(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """Write the assembled arrays, then the metadata (the completion mark), then drop chunks."""
        save_arrays(self.path / "arrays.npz", arrays)
        write_json(
            self.path / "result.json",
            {
                "schema_version": SCHEMA_VERSION,
                "hash": self.hash,
                **meta,
                "provenance": provenance(),
            },
        )
        shutil.rmtree(self.chunk_dir, ignore_errors=True)

    def load(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, metadata) of a complete entry."""
        meta = json.loads((self.path / "result.json").read_text())
        if meta.get("schema_version") != SCHEMA_VERSION or meta.get("hash") != self.hash:
            raise ValueError(f"{self.path} holds another schema or config; rerun with --force")
        return load_arrays(self.path / "arrays.npz"), meta

    def clear(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class ResultStore:
    """The result store: entries keyed by (experiment, config hash) under `root`.

    force: discard any stored entry when it is opened, so it is computed again.
    """

    def __init__(self, root: Path | str | None = None, *, force: bool = False):
        self.root = Path(root) if root is not None else default_root()
        self.force = force

    def entry(self, experiment: str, label: str, config: Any) -> Entry:
        """The entry for `config` in `experiment`, named `label-HASH`; cleared if forced."""
        digest = config_hash({"schema_version": SCHEMA_VERSION, "config": config})
        entry = Entry(self.root / experiment / f"{label}-{digest}", config, digest)
        if self.force:
            entry.clear()
        return entry
