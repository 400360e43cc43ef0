"""The scoreboard on tiny synthetic figures: every claim judged and printed as a plain or a
Markdown table; a missing or stale JSON is one line and exit 2, never half a table."""

import json

import pytest

from gravity.instruments import claims
from gravity.run import verdicts


def write(folder, experiment, numbers):
    (folder / f"{experiment}.json").write_text(
        json.dumps({"experiment": experiment, "numbers": numbers})
    )


CLAIMS = [
    claims.Claim(
        id="erosion-1",
        experiment="erosion",
        statement="benign fine-tuning erodes safety (paper: harmfulness 0.19)",
        paper_value=0.19,
        json_key="mlp.erosion",
        rule=claims.exceeds(0.1),
        preregistered=True,
    ),
    claims.Claim(
        id="reversion-1",
        experiment="reversion",
        statement="drift aligns with v_rev | above its null (paper: 0.648)",
        paper_value=0.648,
        json_key="mlp.alignment",
        rule=claims.exceeds_control(),
        control=claims.Control("same-basis null p99", "mlp.null_p99"),
        preregistered=False,
    ),
]


@pytest.fixture
def figures(tmp_path):
    write(tmp_path, "erosion", {"mlp": {"erosion": [0.6, 0.7, 0.65, 0.72]}})
    write(
        tmp_path,
        "reversion",
        {"mlp": {"alignment": {"mean": 0.9, "sd": 0.01, "n": 4}, "null_p99": 0.8}},
    )
    return tmp_path


def test_scoreboard_judges_every_claim_in_order(figures):
    records = verdicts.scoreboard(figures, CLAIMS)
    assert [r["id"] for r in records] == ["erosion-1", "reversion-1"]
    assert [r["verdict"] for r in records] == ["supported", "supported"]


def test_main_prints_the_plain_and_the_markdown_table(figures, capsys):
    assert verdicts.main(["--figures", str(figures)], claims=CLAIMS) == 0
    plain = capsys.readouterr().out.splitlines()
    assert plain[0].split() == "claim paper/anchor ours control verdict registered JSON key".split()
    assert set(plain[1]) == {"-", " "} and len(plain) == 4
    assert "0.9 [" in plain[3] and "(n=4)" in plain[3] and "same-basis null p99 (0.8)" in plain[3]
    assert "pre-registered" in plain[2] and "post hoc" in plain[3]
    assert verdicts.main(["--figures", str(figures), "--markdown", "reversion"], claims=CLAIMS) == 0
    markdown = capsys.readouterr().out.splitlines()
    assert markdown[0].startswith("| claim | paper/anchor | ours |") and len(markdown) == 3
    assert markdown[1] == "| --- | --- | --- | --- | --- | --- | --- |"
    assert "v_rev \\| above its null" in markdown[2]  # a pipe in the words is escaped
    assert markdown[2].endswith("| supported | post hoc | mlp.alignment |")


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda folder: (folder / "erosion.json").unlink(), "erosion.json is missing"),
        (lambda folder: (folder / "erosion.json").write_text("{"), "erosion.json cannot be read"),
        (
            lambda folder: write(folder, "reversion", {"mlp": {"alignment": [0.9, 0.8]}}),
            "reversion.json is stale: it lacks mlp.null_p99",
        ),
    ],
)
def test_a_missing_or_stale_json_is_one_line_and_exit_2(figures, capsys, setup, message):
    setup(figures)
    assert verdicts.main(["--figures", str(figures)], claims=CLAIMS) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err and err.count("\n") == 1


def test_bad_requests_are_one_line_and_exit_2(figures, capsys):
    assert verdicts.main(["--figures", str(figures), "witness"], claims=CLAIMS) == 2
    assert "no claims for witness" in capsys.readouterr().err
    assert verdicts.main(["--figures", str(figures)], claims=[]) == 2
    assert "no experiment declares CLAIMS" in capsys.readouterr().err
    assert verdicts.main(["--figures", str(figures)], claims=[CLAIMS[0]] * 2) == 2
    assert "repeated: erosion-1" in capsys.readouterr().err
    assert verdicts.main(["--nonsense"], claims=CLAIMS) == 2


def test_a_claim_that_cannot_be_tested_says_why_in_the_table(tmp_path):
    write(tmp_path, "erosion", {"mlp": {"erosion": 0.65}})
    records = verdicts.scoreboard(tmp_path, CLAIMS[:1])
    assert records[0]["verdict"] == "cannot test"
    assert "- (no interval: one number" in verdicts.table(records)


def test_the_summary_counts_each_experiments_verdicts_and_totals_them():
    records = [
        {"experiment": "b", "verdict": "supported", "preregistered": True},
        {"experiment": "a", "verdict": "cannot test", "preregistered": False},
        {"experiment": "b", "verdict": "inconclusive", "preregistered": False},
        {"experiment": "b", "verdict": "supported", "preregistered": False},
    ]
    lines = verdicts.summary(records).splitlines()
    assert lines[0].startswith("| experiment | claims | supported | not supported |")
    assert lines[2:] == [
        "| b | 3 | 2 | 0 | 1 | 0 | 1 |",
        "| a | 1 | 0 | 0 | 0 | 1 | 0 |",
        "| **all** | 4 | 2 | 0 | 1 | 1 | 1 |",
    ]
