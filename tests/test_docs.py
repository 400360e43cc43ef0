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


@pytest.fixture(scope="module")
def verdict_records():
    from gravity.run import verdicts

    return verdicts.scoreboard(ROOT / "figures", verdicts.declared_claims())


def test_the_readme_holds_the_generated_verdicts_summary(verdict_records):
    from gravity.run import verdicts

    text = (ROOT / "README.md").read_text()
    expected = verdicts.with_table(text, verdicts.summary(verdict_records))
    assert text == expected, "README's verdicts are stale: gravity verdicts --readme README.md"


def test_the_scoreboard_page_holds_every_claim(verdict_records):
    from gravity.run import verdicts

    page = ROOT / verdicts.SCOREBOARD_PAGE
    text = page.read_text()
    markers = (verdicts.PAGE_START, verdicts.PAGE_END)
    expected = verdicts.with_table(text, verdicts.markdown(verdict_records), markers)
    assert text == expected, f"the scoreboard is stale: gravity verdicts --page {page}"


def test_every_experiment_makes_claims_on_its_committed_figure(verdict_records):
    from gravity.run.experiment import catalogue

    judged = {record["experiment"] for record in verdict_records}
    assert judged == set(catalogue()) and len(verdict_records) >= 25
    for record in verdict_records:
        assert record["verdict"] in ("supported", "not supported", "inconclusive", "cannot test")
        assert record["verdict"] != "cannot test" or record["reason"]


def test_the_performance_page_holds_the_generated_cost_table():
    from gravity.run import costs, verdicts

    page = ROOT / "docs" / "performance.md"
    text = page.read_text()
    table = costs.markdown(costs.cost_rows(ROOT / "figures"))
    expected = verdicts.with_table(text, table, costs.PAGE_MARKERS)
    assert text == expected, "the cost table is stale: gravity costs --page docs/performance.md"


def test_the_performance_page_holds_the_six_figures_timed_table():
    import json

    from benchmarks import figures
    from gravity.run import verdicts

    page = ROOT / "docs" / "performance.md"
    text = page.read_text()
    result = json.loads((ROOT / "benchmarks" / "results" / "figures.json").read_text())
    expected = verdicts.with_table(text, figures.table(result), figures.PAGE_MARKERS)
    assert text == expected, (
        "the six figures' table is stale: python -m benchmarks.figures --from "
        "benchmarks/results/figures.json --page docs/performance.md"
    )


def test_the_defences_page_holds_the_generated_arena_tables():
    from gravity.run import defence_table, verdicts

    page = ROOT / defence_table.PAGE
    text = page.read_text()
    tables = defence_table.page_tables(ROOT / "figures")
    expected = verdicts.with_table(text, tables, defence_table.PAGE_MARKERS)
    assert text == expected, (
        "the arena tables are stale: gravity defence-table --page docs/defences.md"
    )
