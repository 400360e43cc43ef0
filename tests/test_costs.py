"""`gravity costs` reads every figure's costs from its JSON and nothing else."""

from __future__ import annotations

import json

from gravity.run import costs, verdicts


def report(commit: str, *, loaded_from: str | None = None) -> dict:
    sweep = {"timings": {"program_0": {"compile_s": 2.0, "run_s": 3.0}}}
    if loaded_from is not None:
        sweep |= {"loaded_from_store": True, "computed_at_commit": loaded_from}
    return {
        "n_histories": 48,
        "wall_s": 7.5,
        "sweeps": {"mlp": sweep, "transformer": {"timings": {"p": {"compile_s": 1.0}}}},
        "provenance": {"git_commit": commit, "devices": ["cpu:0", "cpu:1"], "packages": {}},
    }


def test_a_row_counts_and_sums_every_program_and_names_the_computing_commits(tmp_path):
    (tmp_path / "b.json").write_text(json.dumps(report("a" * 40, loaded_from="c" * 40)))
    (tmp_path / "a.json").write_text(json.dumps(report("d" * 40 + "+dirty")))
    first, second = costs.cost_rows(tmp_path)
    assert first["experiment"] == "a" and first["computed at"] == "ddddddd+dirty"
    assert second["computed at"] == "aaaaaaa, sweeps from ccccccc"
    assert (second["compile s"], second["run s"], second["wall s"]) == (3.0, 3.0, 7.5)
    assert second["programs"] == 2  # one per timed program of every sweep
    total = costs.markdown([first, second]).splitlines()[-1]
    assert total.startswith("| **all** | 96 | 4 | 15.0 | 6.0 | 6.0 |")


def test_a_loaded_sweep_of_the_same_commit_is_not_named_twice(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(report("e" * 40, loaded_from="e" * 40)))
    assert costs.cost_rows(tmp_path)[0]["computed at"] == "eeeeeee"


def test_the_page_is_rewritten_between_its_markers_only(tmp_path, capsys):
    (tmp_path / "a.json").write_text(json.dumps(report("f" * 40)))
    page = tmp_path / "page.md"
    start, end = costs.PAGE_MARKERS
    page.write_text(f"before\n{start}\nold table\n{end}\nafter\n")
    assert costs.main(["--figures", str(tmp_path), "--page", str(page)]) == 0
    text = page.read_text()
    assert "old table" not in text and text.startswith("before\n") and text.endswith("after\n")
    assert (
        verdicts.with_table(text, costs.markdown(costs.cost_rows(tmp_path)), costs.PAGE_MARKERS)
        == text
    )


def test_no_figures_or_an_unreadable_one_is_one_line_and_exit_2(tmp_path, capsys):
    assert costs.main(["--figures", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    (tmp_path / "a.json").write_text("{not json")
    assert costs.main(["--figures", str(tmp_path)]) == 2
    assert "a.json cannot be read" in capsys.readouterr().err
