"""The teaching notebooks: each is a plain-text jupytext notebook that says what it teaches and
what to try next, and each runs without error at its small size (`notebooks/render.py --small`,
two at a time, the way `make notebooks` renders them), its figures kept in the rendered
notebook."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's own paths, no warning
jupytext = pytest.importorskip("jupytext")
pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parent.parent
RENDER = ROOT / "notebooks" / "render.py"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.py"))
SIZE_SWITCH = 'os.environ.get("GRAVITY_NOTEBOOK_SIZE") == "small"'


def test_there_are_teaching_notebooks():
    assert len(NOTEBOOKS) >= 4, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_teaches_and_has_a_size_switch(path):
    cells = jupytext.read(path).cells
    assert cells[0].cell_type == "markdown" and "What this teaches" in cells[0].source
    assert cells[-1].cell_type == "markdown" and "What to try next" in cells[-1].source
    assert any(c.cell_type == "code" and SIZE_SWITCH in c.source for c in cells)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """Every notebook executed at its small size, into a temporary folder and result store:
    the folder, with `NAME.ipynb` for each notebook and `summary.json`."""
    out = tmp_path_factory.mktemp("rendered")
    env = dict(os.environ, GRAVITY_RESULTS=str(out / "results"), JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, str(RENDER), "--small", "--jobs", "2", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(proc.stdout)
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_at_its_small_size(rendered, path):
    entry = json.loads((rendered / "summary.json").read_text())[path.stem]
    assert entry["ok"], entry["error"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_rendered_notebook_keeps_its_figures(rendered, path):
    """Every cell that shows a figure holds it as an image/png output (no figure is dropped by a
    non-interactive backend), so a notebook that draws has at least one image."""
    cells = nbformat.read(rendered / f"{path.stem}.ipynb", as_version=4).cells
    drawing = [c for c in cells if c.cell_type == "code" and "plt.show()" in c.source]
    assert drawing or "matplotlib" not in path.read_text(), "imports matplotlib, shows nothing"
    for cell in drawing:
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert images, f"no image/png output in the cell:\n{cell.source}"
