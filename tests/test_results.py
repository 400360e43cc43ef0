"""Reports: atomic JSON files, provenance, histories and wall time."""

import dataclasses
import json

import numpy as np
import pytest

from gravity import results


@dataclasses.dataclass(frozen=True)
class _Config:
    name: str = "x"
    values: tuple = (1, 2.5)


def test_write_json_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = results.write_json(tmp_path / "a" / "b.json", {"x": np.float32(1.5), "y": float("nan")})
    assert json.loads(path.read_text()) == {"x": 1.5, "y": None}
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]

    def interrupted(f):
        f.write(b"half a fi")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        results.atomic_write(tmp_path / "a" / "c.npz", interrupted)
    assert sorted(p.name for p in path.parent.iterdir()) == ["b.json"]


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
