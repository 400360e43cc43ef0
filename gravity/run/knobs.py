"""The knob catalogue: every name `gravity run NAME --set NAME=VALUE` accepts, with its type,
default and where it acts, generated from the dataclasses and their docstrings so that
`docs/knobs.md` cannot drift from the code (`tests/test_knobs.py` checks the file equals
`catalogue()`; `python -m gravity.run.knobs > docs/knobs.md` writes it again).

A documented dataclass lists its fields in its docstring as `name: what it is` lines (several
names may share one: `a, b: ...`), continuation lines indented further; `field_docs` reads them
and refuses a settable field that has none, so an undocumented knob fails the test.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from typing import Any

import jax

from gravity.engine.spec import PhaseSpec
from gravity.engine.worlds import WorldKnobs
from gravity.run import overrides
from gravity.validation import check

ENTRY = re.compile(r"^(\w+(?:, \w+)*): (.*)$")
NO_DEFAULT = "per history"


def field_docs(cls: type) -> dict[str, str]:
    """{field: its docstring entry, on one line} for the `name: text` entries of `cls`."""
    docs: dict[str, str] = {}
    current: list[str] = []
    for line in inspect.cleandoc(cls.__doc__ or "").splitlines():
        match = ENTRY.match(line)
        if match:
            current = match[1].split(", ")
            for name in current:
                docs[name] = match[2]
        elif line.startswith(" ") and current:
            for name in current:
                docs[name] += " " + line.strip()
        else:
            current = []
    return docs


def type_name(hint: Any) -> str:
    """A type as a user types its value: "float", "int", "a,b,c of str", "int or none"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a not in (type(None), jax.Array)]
        names = " or ".join(type_name(a) for a in members)
        return f"{names} or none" if type(None) in args else names
    if origin is tuple:
        element = args[0] if args else str
        if typing.get_origin(element) is tuple or (len(args) == 2 and args[1] is not Ellipsis):
            return "nested tuple (set it in code)"
        return f"comma list of {type_name(element)}"
    return getattr(hint, "__name__", str(hint))


def value_text(value: Any) -> str:
    """A default as `--set` would spell it."""
    if isinstance(value, tuple | list):
        return ",".join(map(value_text, value)) if value else "(empty)"
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "none"
    return str(value)


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return f"`{value_text(field.default)}`"
    if field.default_factory is not dataclasses.MISSING:
        return f"`{value_text(field.default_factory())}`"
    return NO_DEFAULT


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def require_docs(cls: type, names) -> dict[str, str]:
    """`field_docs(cls)`, refused in one line if any of `names` has no entry."""
    docs = field_docs(cls)
    missing = [name for name in names if name not in docs]
    check(not missing, f"{cls.__name__} docstring", "an entry `name: ...` for every knob", missing)
    return docs


def world_rows() -> list[str]:
    docs = require_docs(WorldKnobs, [f.name for f in dataclasses.fields(WorldKnobs)])
    hints = typing.get_type_hints(WorldKnobs)
    rows = []
    for field in dataclasses.fields(WorldKnobs):
        kind = type_name(hints[field.name])
        scale = "integer >= 1" if kind == "int" else "probability in [0, 1]"
        rows.append(
            f"| `world.{field.name}` | {scale} | {_default(field)} | {_cell(docs[field.name])} |"
        )
    return rows


def phase_rows() -> list[str]:
    settable = overrides.phase_fields()
    docs = {**field_docs(PhaseSpec), **overrides.PHASE_KNOBS}
    missing = [name for name in settable if name not in docs]
    check(not missing, "PhaseSpec/Knobs docstring", "an entry for every phase knob", missing)
    fields = {f.name: f for f in dataclasses.fields(PhaseSpec)}
    rows = []
    for name, hint in settable.items():
        default = _default(fields[name]) if name in fields else NO_DEFAULT
        where = "`HistorySpec` (static)" if name in fields else "`Knobs` (traced)"
        rows.append(
            f"| `phases.PHASE.{name}` | {type_name(hint)} | {default} | {where} | "
            f"{_cell(docs[name])} |"
        )
    return rows


def model_rows() -> list[str]:
    from gravity.engine.models import SIZE_FIELDS, ModelConfig

    settable = overrides.model_fields()
    docs = require_docs(ModelConfig, list(settable))
    fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    return [
        f"| `model.{name}` | {type_name(hint)} | {SIZE_FIELDS[name]} | "
        f"{_default(fields[name])} | {_cell(docs[name])} |"
        for name, hint in settable.items()
    ]


def experiment_sections() -> list[str]:
    """Per experiment: its Config fields with their types, full and `--quick` values."""
    from gravity.run.experiment import catalogue, load

    lines = []
    for name, description in catalogue().items():
        chosen = load(name)
        full, quick = chosen.make_config(), chosen.make_config(quick=True)
        hints = typing.get_type_hints(type(full))
        lines += [
            "",
            f"### {name}",
            "",
            f"{description}. `gravity show {name} [--quick]` prints them resolved.",
            "",
            "| NAME | type | default | `--quick` |",
            "|---|---|---|---|",
        ]
        for field in dataclasses.fields(full):
            values = [value_text(getattr(c, field.name)) for c in (full, quick)]
            lines.append(
                f"| `{field.name}` | {type_name(hints[field.name])} | `{values[0]}` | "
                f"`{values[1]}` |"
            )
    return lines


HEADER = """\
# Knob catalogue

Every NAME that `gravity run EXPERIMENT --set NAME=VALUE` (and `gravity show`) accepts: its
type or scale, its default, and where it acts. Generated from the code by `gravity/run/knobs.py`
(`python -m gravity.run.knobs > docs/knobs.md`); `tests/test_knobs.py` fails when this file and
the code disagree. How `--set` parses values and what it refuses: [usage.md](usage.md).

An unknown NAME is refused in one line that lists the valid ones and the closest of them
(`--set world.benign_overlp=0.1` -> `did you mean world.benign_overlap?`).
"""

WORLD_TEXT = """\
## World knobs: `world.FIELD`

`gravity.engine.worlds.WorldKnobs`, set in every history of the experiment. They act where the world
draws data: each phase's batches (by the phase's data kind) and the fixed probe sets. All are
traced (`Knobs.world`), so a sweep over one is a vmapped axis, not another program.

| NAME | scale | default | what it does |
|---|---|---|---|
"""

PHASE_TEXT = """\
## Phase knobs: `phases.PHASE.FIELD`

A field of one phase (`gravity.engine.spec.PhaseSpec`, static: a new value is a new compiled
program) or that phase's learning rate (`Knobs.learning_rate[PHASE]`, traced). PHASE is a phase of
every history the experiment runs (`gravity show NAME` lists them; the standard histories have
pretrain, helpful, safety, benign). `name` and `data` cannot be overridden. A default "per
history" is set by the experiment's histories (the standard ones: `gravity.engine.presets`).

Weight decay is per phase and lr-coupled: with `adamw` (decoupled, as torch's AdamW) or `sgd`
(L2 on the gradient) one step shrinks the parameters by lr * wd * theta besides the gradient
step. `adam` has none, so `--set phases.benign.weight_decay=0.1` on an adam phase is refused
and names the fix: `--set phases.benign.optimizer=adamw`. `gravity show` prints each phase's
optimizer with its decay, e.g. `adamw (wd 0.1)`.

| NAME | type | default | lives in | what it does |
|---|---|---|---|---|
"""

MODEL_TEXT = """\
## Model knobs: `model.FIELD`

A size field of `gravity.engine.models.ModelConfig`, set in every history of the model family
that reads it (static: a new value is a new compiled program); refused where the experiment runs
no history of that family. The defaults below are the dataclass's; the standard histories set
their own sizes (`gravity.engine.presets`; `gravity show NAME` prints them). A different size
changes every number: the committed figures are at the standard sizes.

| NAME | type | family | default | what it does |
|---|---|---|---|---|
"""

CONFIG_TEXT = """\
## Experiment config fields: `FIELD`

Each experiment's frozen `Config` (`experiments/NAME.py`): sizes, seeds, the values its own
axes sweep. `--quick` applies first, then `--set` in order. A `world.`/`phases.` override of
something an experiment's axes already vary is refused: set its config field instead (e.g.
`overlaps=` for `overlap`).
"""


def catalogue() -> str:
    """docs/knobs.md, from the code."""
    parts = [
        HEADER,
        WORLD_TEXT + "\n".join(world_rows()) + "\n",
        PHASE_TEXT + "\n".join(phase_rows()) + "\n",
        MODEL_TEXT + "\n".join(model_rows()) + "\n",
        CONFIG_TEXT + "\n".join(experiment_sections()) + "\n",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    print(catalogue(), end="")
