"""Reports: atomic JSON files, provenance, histories and wall time."""

import dataclasses
import json

import numpy as np
import pytest

from gravity.run import report


@dataclasses.dataclass(frozen=True)
class _Config:
    name: str = "x"
    values: tuple = (1, 2.5)


def test_write_json_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = report.write_json(tmp_path / "a" / "b.json", {"x": np.float32(1.5), "y": float("nan")})
    assert json.loads(path.read_text()) == {"x": 1.5, "y": None}
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]

    def interrupted(f):
        f.write(b"half a fi")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        report.atomic_write(tmp_path / "a" / "c.npz", interrupted)
    assert sorted(p.name for p in path.parent.iterdir()) == ["b.json"]


def test_write_report_records_histories_and_wall_time(tmp_path):
    path = report.write_report(
        tmp_path,
        "demo",
        {"x": report.mean_sd([1.0, 3.0, np.nan])},
        _Config(),
        1.234,
        n_histories=12,
        extra={"sweep": {"programs": 2}},
    )
    written = json.loads(path.read_text())
    assert written["n_histories"] == 12 and written["wall_s"] == 1.23
    assert written["numbers"]["x"] == {"mean": 2.0, "sd": 1.0, "n": 2}
    assert written["sweep"] == {"programs": 2}
    assert written["config"]["__type__"] == "_Config"
