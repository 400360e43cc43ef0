"""The result store: every sweep's runs kept on disk, checksummed, resumable and readable by
anyone as a labelled xarray Dataset.

One directory per (experiment, sweep, key) under the root ($GRAVITY_RESULTS, else `results/`):

    root/experiment/label-KEY/
        config.json     what was hashed into KEY, the schema version, provenance at the start
        chunks/*.npz    each finished chunk of runs, with a SHA-256 of its arrays inside it
        result.zarr/    the assembled sweep: a Zarr v3 group that `xarray.open_zarr` opens
                        without gravity (named dimensions: the sweep's axes, `seed`, record steps)
        result.json     metadata, provenance and a SHA-256 of every array; written last, so it
                        marks completion
        damaged/        files that failed their checks, moved aside (never deleted)

The key hashes the sweep's config (axes, knobs, specs, measurement and engine source digests, the
chunk size) and the **layout** that changes the bits of a result: the backend, its device kind
and count, the jax/jaxlib versions and the memory budget (which fixes the executed batch). One
key is one answer: a sweep computed on 1 device and on 2 is stored twice, never served across.

Every file is written to a temporary name and renamed into place, so a kill never leaves half a
file. On reading, a chunk or entry that is missing, truncated, corrupt, fails its checksum or
belongs to another config is reported in one line on stderr, moved to `damaged/`, and only that
chunk is recomputed (a damaged `result.zarr`/`result.json` is reassembled from the chunks, which
are kept). `force=True` (`--force`) discards an entry and computes everything again. Old stores
(schema 2: `arrays.npz`) have other keys, so they are recomputed, never misread.

Folders are created private (`gravity.run.folders`: 0700, or 0770 with GRAVITY_SHARED=1).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from gravity.run import folders
from gravity.run.report import atomic_write, provenance, to_jsonable, write_json
from gravity.validation import check

SCHEMA_VERSION = 3
RESULTS_ENV = "GRAVITY_RESULTS"
CHECKSUM = "__checksum__"
DATASET = "result.zarr"
META = "result.json"


def default_root() -> Path:
    """Where results are stored: $GRAVITY_RESULTS, else `results/` in the working directory."""
    return Path(os.environ.get(RESULTS_ENV, "results"))


def config_hash(config: Any) -> str:
    """A stable 16-hex-digit hash of a config's JSON form (keys sorted)."""
    text = json.dumps(to_jsonable(config), sort_keys=True, allow_nan=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def layout(
    devices: Sequence[Any],
    memory_budget_gb: float | None = None,
    compile_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What, besides the config, changes a sweep's bits: the backend, device kind and count
    (the run axis is sharded over them), the XLA versions, the memory budget, and the compile
    options the runner chose (held only when there are any, so keys without stay as they were)."""
    first = devices[0]
    keyed = {
        "backend": first.platform,
        "device_kind": getattr(first, "device_kind", ""),
        "devices": len(devices),
        "jax": metadata.version("jax"),
        "jaxlib": metadata.version("jaxlib"),
        "memory_budget_gb": memory_budget_gb,
    }
    return {**keyed, "compile_options": dict(compile_options)} if compile_options else keyed


def check_readers() -> None:
    """Refuse (one line, before anything runs) a store on a machine without zarr and xarray,
    which write and label a finished sweep: better than failing after the compute."""
    import importlib.util

    missing = [name for name in ("zarr", "xarray") if importlib.util.find_spec(name) is None]
    check(
        not missing,
        "store",
        f"False on a machine without {' and '.join(missing)} (the result store writes Zarr "
        "datasets; install them, or run with store=False to keep results in memory)",
        "a ResultStore",
    )


def checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes (C order), names sorted."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def report_damage(path: Path, reason: str, moved: Path | None, action: str) -> None:
    """The one line a damaged store file gets (stderr): what, why, where it went, what now."""
    where = f"; moved to {moved}" if moved is not None else ""
    print(f"gravity: store: {path} is damaged ({reason}){where}; {action}", file=sys.stderr)


class Entry:
    """One stored sweep: `root/experiment/label-KEY/` (see the module docstring)."""

    def __init__(self, path: Path, config: Any, digest: str):
        self.path = Path(path)
        self.config = config
        self.hash = digest

    @property
    def chunk_dir(self) -> Path:
        return self.path / "chunks"

    def chunk_path(self, name: str) -> Path:
        return self.chunk_dir / f"{name}.npz"

    def is_complete(self) -> bool:
        return (self.path / META).is_file() and (self.path / DATASET).is_dir()

    def start(self) -> None:
        """Create the entry (idempotent) and record its config once."""
        folders.make_folder(self.path)
        if not (self.path / "config.json").is_file():
            write_json(
                self.path / "config.json",
                {
                    "schema_version": SCHEMA_VERSION,
                    "hash": self.hash,
                    "config": self.config,
                    "provenance": provenance(),
                },
                folders.file_mode(),
            )

    def write_chunk(self, name: str, arrays: Mapping[str, np.ndarray]) -> Path:
        """Write a finished chunk with its checksum, atomically."""
        folders.make_folder(self.chunk_dir)
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        payload = {**arrays, CHECKSUM: np.asarray(checksum(arrays))}
        return atomic_write(
            self.chunk_path(name), lambda f: np.savez(f, **payload), folders.file_mode()
        )

    def read_chunk(self, name: str, runs: np.ndarray | None = None) -> dict[str, np.ndarray] | None:
        """A finished chunk's arrays; None if it is missing, or (reported, moved aside) if it is
        unreadable, fails its checksum, or holds other runs than `runs`."""
        path = self.chunk_path(name)
        if not path.is_file():
            return None
        try:
            with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except Exception as error:  # any failure to decode the file means it is damaged
            return self._quarantine(path, _reason(error), "recomputing that chunk")
        stored = arrays.pop(CHECKSUM, None)
        if stored is None or str(stored) != checksum(arrays):
            return self._quarantine(path, "checksum mismatch", "recomputing that chunk")
        if runs is not None and not np.array_equal(arrays.get("__runs__"), runs):
            return self._quarantine(path, "holds other runs", "recomputing that chunk")
        return arrays

    def finish(
        self,
        arrays: Mapping[str, np.ndarray],
        meta: Mapping[str, Any],
        dims: Mapping[str, tuple[str, ...]],
        coords: Mapping[str, np.ndarray],
    ) -> None:
        """Write the assembled arrays as a labelled Zarr dataset, then the metadata with every
        array's checksum (the completion mark). The chunks stay: a damaged dataset is
        reassembled from them without computing anything."""
        write_dataset(self.path / DATASET, arrays, dims, coords, {"hash": self.hash})
        write_json(
            self.path / META,
            {
                "schema_version": SCHEMA_VERSION,
                "hash": self.hash,
                **meta,
                "checksums": {name: checksum({name: a}) for name, a in arrays.items()},
                "provenance": provenance(),
            },
            folders.file_mode(),
        )

    def load(self) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """(arrays, metadata) of a complete entry; None if it is damaged (reported and moved
        aside, so the caller reassembles it from the chunks)."""
        meta_path, data_path = self.path / META, self.path / DATASET
        try:
            meta = json.loads(meta_path.read_text())
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as error:
            self._quarantine(meta_path, _reason(error), "reassembling the sweep")
            return None
        if meta.get("schema_version") != SCHEMA_VERSION or meta.get("hash") != self.hash:
            self._quarantine(meta_path, "another schema or config", "reassembling the sweep")
            return None
        try:
            arrays = read_dataset(data_path)
        except Exception as error:  # any failure to decode the dataset means it is damaged
            self._quarantine(data_path, _reason(error), "reassembling the sweep")
            return None
        expected = meta.get("checksums", {})
        wrong = sorted(
            name
            for name in expected.keys() | arrays.keys()
            if name not in arrays
            or name not in expected
            or checksum({name: arrays[name]}) != expected[name]
        )
        if wrong:
            self._quarantine(data_path, f"checksum mismatch in {wrong[0]}", "reassembling it")
            return None
        return arrays, meta

    def clear(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _quarantine(self, path: Path, reason: str, action: str) -> None:
        """Move a damaged file or folder to `damaged/` (never delete it) and say so."""
        moved = None
        try:
            folders.make_folder(self.path / "damaged")
            moved = self.path / "damaged" / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}"
            while moved.exists():
                moved = moved.with_name(moved.name + "+")
            os.replace(path, moved)
        except OSError:
            moved = None
        report_damage(path, reason, moved, action)
        return None


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def variable_name(name: str) -> str:
    """An output's name as a Zarr/xarray variable: '/' (a Zarr group separator) becomes '.'."""
    return name.replace("/", ".")


def write_dataset(
    path: Path,
    arrays: Mapping[str, np.ndarray],
    dims: Mapping[str, tuple[str, ...]],
    coords: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any],
) -> Path:
    """Write arrays with named dimensions and coordinates as a Zarr v3 group, atomically (a
    temporary folder renamed into place). Output names are kept in the attribute `names`."""
    import zarr

    path = Path(path)
    folders.make_folder(path.parent)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        group = zarr.open_group(tmp, mode="w", zarr_format=3)
        names = {}
        for name, array in arrays.items():
            names[variable_name(name)] = name
            _write_array(group, variable_name(name), np.asarray(array), dims[name])
        for dim, values in coords.items():
            _write_array(group, dim, np.asarray(values), (dim,))
        group.attrs.update({**to_jsonable(dict(attrs)), "names": names})
        os.chmod(tmp, folders.folder_mode())
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _write_array(group, name: str, array: np.ndarray, dims: tuple[str, ...]) -> None:
    if array.dtype.kind in "UO":
        stored = group.create_array(name, shape=array.shape, dtype=str, dimension_names=dims)
        stored[...] = array.astype(object)
        return
    group.create_array(name, data=array, dimension_names=dims)


def read_dataset(path: Path) -> dict[str, np.ndarray]:
    """The output arrays of a dataset written by `write_dataset`, by their output names."""
    import zarr

    group = zarr.open_group(Path(path), mode="r")
    names = group.attrs["names"]
    return {name: np.asarray(group[variable][...]) for variable, name in names.items()}


class ResultStore:
    """The result store: entries keyed by (experiment, config and layout hash) under `root`.

    force: discard any stored entry when it is opened, so it is computed again.
    """

    def __init__(self, root: Path | str | None = None, *, force: bool = False):
        self.root = Path(root) if root is not None else default_root()
        self.force = force

    def entry(
        self, experiment: str, label: str, config: Any, layout: Mapping[str, Any] | None = None
    ) -> Entry:
        """The entry for `config` computed on `layout` (`gravity.run.store.layout`), named
        `label-KEY`; cleared if forced."""
        keyed = {"schema_version": SCHEMA_VERSION, "config": config, "layout": layout}
        digest = config_hash(keyed)
        entry = Entry(self.root / experiment / f"{label}-{digest}", keyed, digest)
        if self.force:
            entry.clear()
        return entry
