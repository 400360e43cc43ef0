"""The result store: stable config hashes, atomic files, entries that resume, load and reset."""

import dataclasses
import json

import numpy as np
import pytest

from gravity import presets, results


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
    assert results.config_hash(a) == results.config_hash(b)
    assert len(results.config_hash(a)) == 16
    changed = dict(a, config=_Config(values=(1, 2.6)))
    assert results.config_hash(changed) != results.config_hash(a)
    assert results.to_jsonable(_measure) == f"{__name__}:_measure"


def test_write_json_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = results.write_json(tmp_path / "a" / "b.json", {"x": np.float32(1.5), "y": float("nan")})
    assert json.loads(path.read_text()) == {"x": 1.5, "y": None}
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]

    def interrupted(f):
        f.write(b"half a fi")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        results._atomic_write(tmp_path / "a" / "c.npz", interrupted)
    assert sorted(p.name for p in path.parent.iterdir()) == ["b.json"]


def test_entry_lifecycle(tmp_path):
    store = results.ResultStore(tmp_path)
    entry = store.entry("exp", "grid", {"k": 1})
    assert entry.path.parent == tmp_path / "exp" and entry.path.name.startswith("grid-")
    assert not entry.is_complete()
    entry.start()
    assert json.loads((entry.path / "config.json").read_text())["config"] == {"k": 1}
    entry.write_chunk("g000-c0000", {"a": np.arange(4), "__runs__": np.arange(4)})
    np.testing.assert_array_equal(entry.read_chunk("g000-c0000")["a"], np.arange(4))
    assert entry.read_chunk("missing") is None
    entry.chunk_path("broken").write_bytes(b"not an npz")
    assert entry.read_chunk("broken") is None
    entry.finish({"a": np.ones((2, 2))}, {"note": "done"})
    assert entry.is_complete() and not entry.chunk_dir.exists()
    arrays, meta = store.entry("exp", "grid", {"k": 1}).load()
    np.testing.assert_array_equal(arrays["a"], np.ones((2, 2)))
    assert meta["note"] == "done" and meta["schema_version"] == results.SCHEMA_VERSION
    assert meta["provenance"]["packages"]["jax"]
    # Another config is another entry; forcing clears the stored one.
    assert not store.entry("exp", "grid", {"k": 2}).is_complete()
    assert (
        not results.ResultStore(tmp_path, force=True).entry("exp", "grid", {"k": 1}).is_complete()
    )


def test_load_refuses_another_schema(tmp_path):
    entry = results.ResultStore(tmp_path).entry("exp", "grid", {"k": 1})
    entry.finish({"a": np.zeros(1)}, {})
    meta = json.loads((entry.path / "result.json").read_text())
    meta["schema_version"] = 0
    (entry.path / "result.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="--force"):
        entry.load()


def test_default_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path / "store"))
    assert results.ResultStore().root == tmp_path / "store"
    monkeypatch.delenv(results.RESULTS_ENV)
    assert results.default_root().name == "results"


def test_write_report_records_histories_and_wall_time(tmp_path):
    path = results.write_report(
        tmp_path,
        "demo",
        {"x": results.mean_sd([1.0, 3.0, np.nan])},
        _Config(),
        1.234,
        n_histories=12,
        extra={"sweep": {"programs": 2}},
    )
    report = json.loads(path.read_text())
    assert report["n_histories"] == 12 and report["wall_s"] == 1.23
    assert report["numbers"]["x"] == {"mean": 2.0, "sd": 1.0, "n": 2}
    assert report["sweep"] == {"programs": 2}
    assert report["config"]["__type__"] == "_Config"
