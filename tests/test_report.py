"""Reports: atomic JSON files, provenance, histories and wall time."""

import dataclasses
import json
import subprocess

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


def _git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_the_dirty_flag_counts_untracked_code_but_not_untracked_notes(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "gravity").mkdir()
    (tmp_path / "gravity" / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    clean = report.git_commit(tmp_path)
    assert clean is not None and not clean.endswith("+dirty")
    (tmp_path / "notes.txt").write_text("not code\n")
    assert report.git_commit(tmp_path) == clean
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "new.py").write_text("y = 2\n")
    assert report.git_commit(tmp_path) == clean + "+dirty"
    (tmp_path / "experiments" / "new.py").unlink()
    (tmp_path / "gravity" / "a.py").write_text("x = 2\n")
    assert report.git_commit(tmp_path) == clean + "+dirty"
