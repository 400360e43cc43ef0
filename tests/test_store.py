"""The result store on its own: stable keys, checksummed chunks, labelled datasets, private
folders. (Damage and recovery on real sweeps, and the device layout in the key: test_sweep.py.)"""

import dataclasses
import json
import stat

import numpy as np
import pytest
import xarray as xr

from gravity.engine import presets
from gravity.run import store
from gravity.run.store import RESULTS_ENV, ResultStore, config_hash, default_root


@dataclasses.dataclass(frozen=True)
class _Config:
    name: str = "x"
    values: tuple = (1, 2.5)


def _measure(key, spec, knobs):
    return {}


def test_config_hash_is_stable_and_sensitive():
    spec = presets.standard_spec("mlp", "tiny")
    a = {"spec": spec, "config": _Config(), "fn": _measure, "array": np.arange(3.0)}
    b = {"array": np.arange(3.0), "fn": _measure, "config": _Config(), "spec": spec}
    assert config_hash(a) == config_hash(b)
    assert len(config_hash(a)) == 16
    changed = dict(a, config=_Config(values=(1, 2.6)))
    assert config_hash(changed) != config_hash(a)


def test_checksum_sees_values_dtypes_shapes_and_names():
    arrays = {"a": np.arange(4.0), "b": np.zeros((2, 2), np.int32)}
    digest = store.checksum(arrays)
    assert digest == store.checksum(dict(reversed(arrays.items())))
    assert digest != store.checksum({**arrays, "a": np.arange(4.0) / 2})
    assert digest != store.checksum({**arrays, "a": np.arange(4.0, dtype=np.float32)})
    assert digest != store.checksum({**arrays, "b": np.zeros((4,), np.int32)})
    assert digest != store.checksum({"c": arrays["a"], "b": arrays["b"]})


def test_entry_lifecycle(tmp_path, capfd):
    results = ResultStore(tmp_path)
    entry = results.entry("exp", "grid", {"k": 1})
    assert entry.path.parent == tmp_path / "exp" and entry.path.name.startswith("grid-")
    assert not entry.is_complete()
    entry.start()
    assert json.loads((entry.path / "config.json").read_text())["config"]["config"] == {"k": 1}
    entry.write_chunk("g000-c0000", {"a": np.arange(4), "__runs__": np.arange(4)})
    np.testing.assert_array_equal(entry.read_chunk("g000-c0000")["a"], np.arange(4))
    assert entry.read_chunk("g000-c0000", runs=np.arange(4)) is not None
    assert entry.read_chunk("missing") is None and capfd.readouterr().err == ""
    entry.chunk_path("broken").write_bytes(b"not an npz")
    assert entry.read_chunk("broken") is None
    line = capfd.readouterr().err.strip()
    assert line.startswith(f"gravity: store: {entry.chunk_path('broken')} is damaged (")
    assert "\n" not in line and (entry.path / "damaged").is_dir()

    arrays = {"a": np.ones((2, 3)), "__diverged__": np.zeros(2, bool)}
    dims = {"a": ("x", "seed"), "__diverged__": ("x",)}
    entry.finish(arrays, {"note": "done"}, dims, {"x": np.array(["p", "q"], dtype=object)})
    assert entry.is_complete() and entry.chunk_dir.is_dir()
    loaded, meta = results.entry("exp", "grid", {"k": 1}).load()
    np.testing.assert_array_equal(loaded["a"], np.ones((2, 3)))
    assert meta["note"] == "done" and meta["schema_version"] == store.SCHEMA_VERSION
    assert meta["provenance"]["packages"]["jax"]
    opened = xr.open_zarr(entry.path / "result.zarr", consolidated=False)
    assert opened["a"].dims == ("x", "seed") and opened["x"].values.tolist() == ["p", "q"]
    # Another config or layout is another entry; forcing clears the stored one.
    assert not results.entry("exp", "grid", {"k": 2}).is_complete()
    assert not results.entry("exp", "grid", {"k": 1}, {"devices": 2}).is_complete()
    assert not ResultStore(tmp_path, force=True).entry("exp", "grid", {"k": 1}).is_complete()


def test_another_schema_is_reported_and_moved_aside(tmp_path, capfd):
    entry = ResultStore(tmp_path).entry("exp", "grid", {"k": 1})
    entry.finish({"a": np.zeros(1)}, {}, {"a": ("x",)}, {})
    meta = json.loads((entry.path / "result.json").read_text())
    meta["schema_version"] = 2
    (entry.path / "result.json").write_text(json.dumps(meta))
    assert entry.load() is None and not entry.is_complete()
    assert "another schema or config" in capfd.readouterr().err


def test_default_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "store"))
    assert ResultStore().root == tmp_path / "store"
    monkeypatch.delenv(RESULTS_ENV)
    assert default_root().name == "results"


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_folders_and_files_are_private_unless_shared(tmp_path, monkeypatch):
    monkeypatch.delenv("GRAVITY_SHARED", raising=False)
    entry = ResultStore(tmp_path / "private").entry("exp", "grid", {"k": 1})
    entry.start()
    entry.write_chunk("g000-c0000", {"a": np.arange(2)})
    assert _mode(tmp_path / "private") == 0o700 and _mode(entry.path) == 0o700
    assert _mode(entry.chunk_path("g000-c0000")) == 0o600
    assert _mode(entry.path / "config.json") == 0o600
    monkeypatch.setenv("GRAVITY_SHARED", "1")
    shared = ResultStore(tmp_path / "shared").entry("exp", "grid", {"k": 1})
    shared.write_chunk("g000-c0000", {"a": np.arange(2)})
    assert _mode(tmp_path / "shared") & 0o070 == 0o070 & ~_umask()
    assert _mode(shared.chunk_path("g000-c0000")) == 0o660


def _umask() -> int:
    import os

    current = os.umask(0)
    os.umask(current)
    return current


def test_a_store_without_zarr_is_refused_before_anything_runs(monkeypatch):
    import importlib.util

    from gravity.run.sweep import runner
    from gravity.validation import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "zarr" else real(name, *a)
    )
    with pytest.raises(ConfigError, match="without zarr"):
        runner.run_sweeps([], store=True)
    assert runner.run_sweeps([], store=False) == []
