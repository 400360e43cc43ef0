"""`gravity defence-table` reads every number from the arena's JSON and judges each defence's
survival claim on it; bad or stale input is one line and exit 2."""

from __future__ import annotations

import json

import pytest

from gravity.instruments import claims
from gravity.run import defence_table, verdicts
from gravity.validation import ConfigError

CLAIM = """
[[claim]]
id = "arena-rehearsal-survives-mlp"
statement = "rehearsal survives (mlp)"
key = "mlp.arms.rehearsal.worst_case_per_seed"
statistic = { name = "paired", treatment_key = "mlp.arms.rehearsal.worst_case_per_seed", \
control_key = "mlp.arms.none.worst_case_per_seed", better = "lower" }
control = { words = "no defence's worst case on the same seeds (paired)" }
rule = { name = "beats_control" }
preregistered = true
"""


def arm(harm: float, worst: list[float] | None) -> dict:
    kept = worst is not None
    mean = sum(worst) / len(worst) if kept else None
    return {
        "standard": {
            "harmfulness_heldout_T": {"mean": harm},
            "task_accuracy_T": {"mean": 0.95},
        },
        "worst_case": {"mean": mean, "interval": [mean, mean] if kept else [None, None]},
        "worst_case_configuration": (
            {
                "optimizer": "adam",
                "learning_rate": 0.01,
                "steps": 50,
                "batch_scale": 4.0,
                "benign_overlap": 1.0,
            }
            if kept
            else None
        ),
        "worst_case_per_seed": worst if kept else [None] * 4,
    }


def report() -> dict:
    arms = {
        "none": arm(0.7, [0.80, 0.82, 0.81, 0.83]),
        "rehearsal": arm(0.05, [0.20, 0.18, 0.19, 0.21]),
        "antidote": arm(0.08, None),
    }
    return {
        "numbers": {"mlp": {"arms": arms, "n_seeds": 4}},
        "config": {
            "models": ["mlp"],
            "strengths": [["rehearsal", 0.25], ["antidote", 0.3]],
            "alignment_strengths": [],
        },
    }


@pytest.fixture(scope="module")
def declared(tmp_path_factory):
    path = tmp_path_factory.mktemp("claims") / "arena.toml"
    path.write_text(CLAIM)
    return claims.load(path, "arena")


def test_each_arm_is_a_row_with_its_numbers_and_its_judged_claim(declared):
    table = defence_table.model_table(
        "mlp",
        report()["numbers"],
        report()["config"],
        defence_table.judged(report()["numbers"], declared),
    )
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()[2:]}
    assert list(rows) == ["none", "rehearsal", "antidote"]
    assert "0.050, 0.950" in rows["rehearsal"] and "fine-tuning (0.25)" in rows["rehearsal"]
    assert "0.195 [0.195, 0.195]" in rows["rehearsal"]  # the worst case, from the JSON
    assert rows["rehearsal"].endswith("| supported |")  # cuts 0.60 to 0.64, all above 0
    assert "0.620 [" in rows["rehearsal"]  # the mean paired cut
    assert rows["none"].endswith("| — | — |")  # no claim, no verdict
    assert "none keeps the task" in rows["antidote"]


def test_the_page_is_rewritten_between_its_markers_and_the_published_table_leads(
    tmp_path, declared, monkeypatch
):
    (tmp_path / "arena.json").write_text(json.dumps(report()))
    page = tmp_path / "page.md"
    start, end = defence_table.PAGE_MARKERS
    page.write_text(f"before\n{start}\nold\n{end}\nafter\n")
    monkeypatch.setattr(defence_table, "arena_claims", lambda: declared)
    assert defence_table.main(["--figures", str(tmp_path), "--page", str(page)]) == 0
    text = page.read_text()
    assert "old" not in text and text.startswith("before\n") and text.endswith("after\n")
    expected = defence_table.markdown(report(), declared)
    assert verdicts.with_table(text, expected, defence_table.PAGE_MARKERS) == text
    assert expected.index("#### Published") < expected.index("#### mlp")


def test_an_arm_without_a_published_headline_is_refused():
    with pytest.raises(ConfigError, match="no published headline for damped"):
        defence_table.published_table(["none", "damped"])


def test_a_json_lacking_a_claims_key_is_stale(declared):
    numbers = report()["numbers"]
    del numbers["mlp"]["arms"]["none"]["worst_case_per_seed"]
    with pytest.raises(ConfigError, match="stale: it lacks mlp.arms.none.worst_case_per_seed"):
        defence_table.judged(numbers, declared)


def test_a_missing_or_unreadable_json_is_one_line_and_exit_2(tmp_path, capsys):
    assert defence_table.main(["--figures", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    (tmp_path / "arena.json").write_text("{not json")
    assert defence_table.main(["--figures", str(tmp_path)]) == 2
    assert "arena.json cannot be read" in capsys.readouterr().err


STRENGTH_CLAIM = CLAIM.replace(
    "arena-rehearsal-survives-mlp", "strengths-vaccine-tenth-survives-mlp"
)
STRENGTH_CLAIM = STRENGTH_CLAIM.replace("mlp.arms.rehearsal.", "mlp.arms.vaccine.tenth.")


def test_the_strength_sweep_is_a_row_per_defence_and_scale_with_its_claim(tmp_path):
    path = tmp_path / "arena_strengths.toml"
    path.write_text(STRENGTH_CLAIM)
    declared = claims.load(path, "arena_strengths")
    tenth = {**arm(0.6, [0.70, 0.72, 0.71, 0.73]), "strength": 0.2}
    tenfold = {**arm(0.8, [0.85, 0.86, 0.84, 0.85]), "strength": 20.0}
    report = {
        "numbers": {
            "mlp": {
                "arms": {
                    "none": arm(0.7, [0.80, 0.82, 0.81, 0.83]),
                    "vaccine": {"tenth": tenth, "tenfold": tenfold},
                },
                "n_seeds": 4,
            },
            "grid": {"scales": {"tenth": 0.1, "tenfold": 10.0}},
        }
    }
    table = defence_table.strengths_table(report, declared)
    rows = [line for line in table.splitlines() if line.startswith("| vaccine")]
    assert len(rows) == 2
    assert "| 0.1x (0.2) |" in rows[0] and "0.100 [" in rows[0]  # each seed's cut is 0.10
    assert rows[0].endswith("| supported |")
    assert "| 10x (20) |" in rows[1] and rows[1].endswith("| — | — |")  # no claim declared


def test_the_command_line_names_the_folder_and_a_missing_table_number_in_one_line(
    tmp_path, capsys, declared, monkeypatch
):
    from gravity.run import cli

    broken = report()
    del broken["numbers"]["mlp"]["arms"]["antidote"]["standard"]
    (tmp_path / "arena.json").write_text(json.dumps(broken))
    monkeypatch.setattr(defence_table, "arena_claims", lambda name="arena": declared)
    assert cli.main(["defence-table", "--figures", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "arena.json") in err and "'standard'" in err
