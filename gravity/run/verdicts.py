"""`gravity verdicts`: the scoreboard of every claim, computed from the figures' JSON.

    gravity verdicts [NAME ...] [--figures DIR] [--markdown] [--readme README.md] [--page PAGE]

Each claim (`gravity.instruments.claims.Claim`, declared in its experiment's claim file,
`experiments/claims/NAME.toml`) is judged on `DIR/EXPERIMENT.json` (default `figures/`) by its
own rule; the table says, per claim, the paper's or the anchor's number, ours as "estimate
[low, high] (n)", the control, the verdict, whether the rule was pre-registered or post hoc,
and the JSON key the estimate came from. `--markdown` prints the same table in Markdown;
`--page` writes it into a page (docs/results/scoreboard.md holds it), `--readme` writes the
per-experiment summary (`summary`: how many claims got each verdict) into the README.

A figure's JSON that is missing, unreadable or stale (it lacks a key its claims read: it was
written before the claims were) ends with one line naming the file and what to do, exit 2, and
no table: a scoreboard is never printed from half its inputs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gravity.instruments import claims as claiming
from gravity.validation import ConfigError

FIGURES = Path("figures")
COLUMNS = ("claim", "paper/anchor", "ours", "control", "verdict", "registered", "JSON key")


class StaleFigures(ConfigError):
    """A figure's JSON is missing, unreadable or older than the claims that read it."""


def load_numbers(figures_dir: Path, experiment: str) -> Mapping[str, Any]:
    """The "numbers" of `figures_dir/experiment.json`; StaleFigures if there are none."""
    path = Path(figures_dir) / f"{experiment}.json"
    if not path.is_file():
        raise StaleFigures(f"{path} is missing: run `gravity run {experiment}` first")
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise StaleFigures(f"{path} cannot be read ({error}): run the experiment again") from None
    numbers = payload.get("numbers") if isinstance(payload, dict) else None
    if not isinstance(numbers, Mapping):
        raise StaleFigures(f"{path} holds no numbers: run `gravity run {experiment}` again")
    return numbers


def scoreboard(figures_dir: Path, claims: Sequence[claiming.Claim]) -> list[dict[str, Any]]:
    """The verdict record (`claims.evaluate`) of every claim, in order, each on its
    experiment's JSON in `figures_dir`. Every missing or stale file is named in one
    StaleFigures message before any claim is judged."""
    ids = [claim.id for claim in claims]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ConfigError(f"claim ids must be unique; repeated: {', '.join(repeated)}")
    problems, numbers_of = [], {}
    for experiment in dict.fromkeys(claim.experiment for claim in claims):
        try:
            numbers_of[experiment] = load_numbers(figures_dir, experiment)
        except StaleFigures as error:
            problems.append(str(error))
            continue
        missing = [
            key
            for claim in claims
            if claim.experiment == experiment
            for key in claiming.keys_read(claim)
            if not claiming.has_key(numbers_of[experiment], key)
        ]
        if missing:
            path = Path(figures_dir) / f"{experiment}.json"
            problems.append(
                f"{path} is stale: it lacks {', '.join(dict.fromkeys(missing))}; "
                f"run `gravity run {experiment}` again (without a `--set` that leaves parts out)"
            )
    if problems:
        raise StaleFigures("; ".join(problems))
    return [claiming.evaluate(claim, numbers_of[claim.experiment]) for claim in claims]


def _number(value: Any) -> str:
    """A number in three significant figures; "-" for none or NaN."""
    if value is None or not math.isfinite(float(value)):
        return "-"
    return f"{float(value):.3g}"


def _ours(record: Mapping[str, Any]) -> str:
    """ "estimate [low, high] (n)", or "-" and the reason where the claim cannot be tested."""
    if record["verdict"] == claiming.CANNOT_TEST:
        return f"- ({record['reason']})"
    low, high = record["interval"]
    n = "?" if record["n"] is None else record["n"]
    return f"{_number(record['estimate'])} [{_number(low)}, {_number(high)}] (n={n})"


def _control(record: Mapping[str, Any]) -> str:
    value = record["control_value"]
    if value is None or not math.isfinite(float(value)):
        return record["control"]
    return f"{record['control']} ({_number(value)})"


def rows(records: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """One row of cells per record, in the order of COLUMNS."""
    return [
        (
            f"{record['id']}: {record['statement']}",
            _number(record["paper"]),
            _ours(record),
            _control(record),
            record["verdict"],
            "pre-registered" if record["preregistered"] else "post hoc",
            record["json_key"],
        )
        for record in records
    ]


def table(records: Sequence[Mapping[str, Any]]) -> str:
    """The scoreboard as a plain text table, columns padded to their widest cell."""
    lines = [COLUMNS, *rows(records)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    text = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def markdown(records: Sequence[Mapping[str, Any]]) -> str:
    """The scoreboard as a Markdown table."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join(
        [line(COLUMNS), line(["---"] * len(COLUMNS)), *(line(row) for row in rows(records))]
    )


SUMMARY_COLUMNS = (
    "experiment",
    "claims",
    "supported",
    "not supported",
    "inconclusive",
    "cannot test",
    "pre-registered",
)


def summary(records: Sequence[Mapping[str, Any]]) -> str:
    """One Markdown row per experiment (in the records' order): how many of its claims got each
    verdict and how many were pre-registered, and a total row."""
    experiments = list(dict.fromkeys(record["experiment"] for record in records))

    def counts(chosen) -> list[str]:
        verdicts = [record["verdict"] for record in chosen]
        cells = [len(chosen), *(verdicts.count(v) for v in SUMMARY_COLUMNS[2:6])]
        return [str(c) for c in (*cells, sum(r["preregistered"] for r in chosen))]

    lines = ["| " + " | ".join(SUMMARY_COLUMNS) + " |", "|" + "---|" * len(SUMMARY_COLUMNS)]
    for name in experiments:
        chosen = [record for record in records if record["experiment"] == name]
        lines.append("| " + " | ".join([name, *counts(chosen)]) + " |")
    lines.append("| " + " | ".join(["**all**", *counts(list(records))]) + " |")
    return "\n".join(lines)


README_START = "<!-- verdicts: generated by `gravity verdicts --markdown --readme README.md` -->"
README_END = "<!-- verdicts: end -->"
PAGE_START = "<!-- scoreboard: generated by `gravity verdicts --markdown --page PAGE` -->"
PAGE_END = "<!-- scoreboard: end -->"
SCOREBOARD_PAGE = Path("docs/results/scoreboard.md")


def with_table(
    text: str, table_markdown: str, markers: tuple[str, str] = (README_START, README_END)
) -> str:
    """`text` (the README, or another page) with the block between its two marker lines
    replaced by the table; ConfigError if the markers are not there once each, in order."""
    first, last = markers
    start, end = text.find(first), text.find(last)
    if start < 0 or end < start or text.count(first) != 1:
        raise ConfigError(f"the page needs the lines {first!r} and {last!r}")
    head, tail = text[: start + len(first)], text[end:]
    return f"{head}\n{table_markdown}\n{tail}"


def declared_claims() -> list[claiming.Claim]:
    """Every experiment's claims (its claim file's, `Experiment.claims`; none where it declares
    none), in the order of the experiments' catalogue. Imports the experiment modules."""
    from gravity.run.experiment import catalogue, load

    return [claim for name in catalogue() for claim in load(name).claims]


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one-line `ConfigError`s (exit 2, no usage block)."""

    def error(self, message: str):
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gravity verdicts", description="The scoreboard of every claim.")
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these experiments")
    parser.add_argument("--figures", type=Path, default=FIGURES, help="where NAME.json lie")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument(
        "--readme", type=Path, default=None, help="write the per-experiment summary into it"
    )
    parser.add_argument(
        "--page", type=Path, default=None, help="write the whole Markdown table into this page"
    )
    return parser


def main(argv: list[str] | None = None, *, claims: Sequence[claiming.Claim] | None = None) -> int:
    """Print the scoreboard; exit 2 with one line on stderr for bad arguments, no claims, or a
    missing or stale JSON. `claims` replaces the experiments' declared ones (tests)."""
    try:
        args = _parser().parse_args(argv)
        chosen = list(declared_claims() if claims is None else claims)
        known = {claim.experiment for claim in chosen}
        unknown = [name for name in args.names if name not in known]
        if unknown:
            raise ConfigError(
                f"no claims for {', '.join(unknown)}: experiments with claims are "
                f"{', '.join(sorted(known)) or 'none yet'}"
            )
        chosen = [claim for claim in chosen if not args.names or claim.experiment in args.names]
        if not chosen:
            raise ConfigError("no claims to judge: no experiment declares CLAIMS yet")
        records = scoreboard(args.figures, chosen)
    except ConfigError as error:
        print(f"gravity verdicts: {error}", file=sys.stderr)
        return 2
    if args.readme is not None:
        path = Path(args.readme)
        path.write_text(with_table(path.read_text(), summary(records)))
    if args.page is not None:
        path = Path(args.page)
        path.write_text(with_table(path.read_text(), markdown(records), (PAGE_START, PAGE_END)))
    print(markdown(records) if args.markdown else table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
