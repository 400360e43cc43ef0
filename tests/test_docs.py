"""The documentation stays true to the code: every import its examples show works, and the
README stays a front page (what it is, two commands, where to read on), not a results paper."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CODE = re.compile(r"```python\n(.*?)```", re.S)
IMPORT = re.compile(r"^(?:from gravity[\w.]* import [^\n(]+|import gravity[\w.]*)$", re.M)


def shown_imports(page: Path) -> list[str]:
    """The gravity imports in a page's Python code blocks."""
    blocks = CODE.findall(page.read_text())
    return [line for block in blocks for line in IMPORT.findall(block)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_import_a_page_shows_works(page):
    for line in shown_imports(page):
        exec(line, {})  # an ImportError names the page's stale line


def test_the_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "make run" in text and "make test" in text
    for link in re.findall(r"\]\(((?:docs|figures)/[^)#]+)", text):
        assert (ROOT / link).exists(), f"README links to a missing {link}"
