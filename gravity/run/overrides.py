"""Command-line overrides of an experiment: `NAME=VALUE`, validated, applied without editing code.

Four kinds of NAME, one syntax (`gravity run NAME --set NAME=VALUE ...`):

- `FIELD`: a field of the experiment's frozen `Config` (`seeds=8`, `learning_rate=3e-3`,
  `models=mlp`); the value is parsed to the field's type, tuples as comma lists (`a,b,c`; an
  empty value is the empty tuple), `none` for an optional field.
- `world.FIELD`: a `gravity.engine.worlds.WorldKnobs` field in every history's knobs
  (`world.benign_overlap=0.1`).
- `phases.PHASE.FIELD`: a `gravity.engine.spec.PhaseSpec` field of one phase in every history's spec
  (`phases.benign.steps=300`, `phases.benign.optimizer=adamw`, `phases.benign.weight_decay=0.1`),
  or `phases.PHASE.learning_rate`, that phase's learning rate knob. A weight decay is refused
  where the phase's optimizer has none (adam), naming the optimizer to set with it.
- `model.FIELD`: a `gravity.engine.models.ModelConfig` size field in every history of the model
  family that reads it (`model.d_model=64` and `model.readout_only=true` in the transformer's
  histories, `model.hidden=256,256` in the MLP's; `SIZE_FIELDS`); refused where no history
  is of that family.

An unknown name is refused with the valid ones and the closest of them ("did you mean ...?").

History overrides (`world.`, `phases.`, `model.`) wrap each sweep's `build` (`apply_to_sweeps`),
so they change the specs and knobs the result store hashes: an overridden run never reads another's
results. They are refused, with one line naming the field, when the experiment's own axes
already vary that field, when a phase is missing from a history, and when an experiment's
histories are not `HistorySpec`s. Every number must be finite and >= 0 (no knob of this project
is negative) and every integer below 2**31 (step counters are int32).

A command line is parsed once (`parse_command`: its config built, every value checked, nothing
built yet, so JAX can still be set up) and resolved once (`Parsed.resolve`; `resolve` does both):
a `gravity.run.experiment.Prepared` run, which the run, `gravity show` and the cluster's jobs read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gravity.engine.models import SIZE_FIELDS, ModelConfig
from gravity.engine.spec import (
    DECAYING,
    OPTIMIZERS,
    HistorySpec,
    Knobs,
    PhaseSpec,
    decay_refusal,
    with_phase,
)
from gravity.engine.worlds import WorldKnobs
from gravity.run import resources
from gravity.validation import ConfigError, check, check_choice, did_you_mean

if TYPE_CHECKING:
    from gravity.run.experiment import Prepared

MAX_INT = 2**31 - 1
WORLD, PHASES, MODEL = "world", "phases", "model"
FIXED_PHASE_FIELDS = ("name", "data")
"""Phase fields an override may not change: they name the phase and choose its data."""
PHASE_KNOBS = {
    "learning_rate": "the phase's learning rate, the optimizer's step size (> 0; "
    "`Knobs.learning_rate[PHASE]`)",
}
"""Per-phase numeric knobs settable as `phases.PHASE.NAME` (they live in `Knobs`), with what
each is (for the knob catalogue, `gravity.run.knobs`)."""
RECORD_FIELDS = ("n_records", "dense_steps")
"""Phase fields bounded as they are parsed: a spec builds its record schedule from them."""


@dataclasses.dataclass(frozen=True)
class Override:
    """One `NAME=VALUE`: what it targets ("config", "world", "phases" or "model"), the field path
    within it (("seeds",), ("benign_overlap",), ("benign", "steps")) and the parsed value."""

    target: str
    path: tuple[str, ...]
    value: Any

    @property
    def name(self) -> str:
        return ".".join(self.path if self.target == "config" else (self.target, *self.path))


def parse(texts: Sequence[str], config: Any) -> tuple[Override, ...]:
    """`NAME=VALUE` strings as overrides of `config`'s experiment (one-line `ConfigError` on a
    malformed, unknown or ill-typed one)."""
    return tuple(_parse_one(text, config) for text in texts)


def _parse_one(text: str, config: Any) -> Override:
    name, sep, raw = text.partition("=")
    name = name.strip()
    check(bool(sep) and bool(name), "--set", "NAME=VALUE", text)
    parts = name.split(".")
    if parts[0] == WORLD:
        hints = _hints(WorldKnobs)
        check(len(parts) == 2 and parts[1] in hints, "--set", _allowed(config, name), name)
        value = _parse_value(raw, hints[parts[1]], f"--set {name}")
        WorldKnobs(**{parts[1]: value}).validate()
        return Override(WORLD, (parts[1],), value)
    if parts[0] == MODEL:
        fields = model_fields()
        check(len(parts) == 2 and parts[1] in fields, "--set", _allowed(config, name), name)
        value = _parse_value(raw, fields[parts[1]], f"--set {name}")
        if not isinstance(value, bool):
            sizes = value if isinstance(value, tuple) else (value,)
            check(bool(sizes) and min(sizes) >= 1, f"--set {name}", "sizes >= 1", raw)
        return Override(MODEL, (parts[1],), value)
    if parts[0] == PHASES:
        check(len(parts) == 3, "--set", _allowed(config, name), name)
        phase, field = parts[1], parts[2]
        hints = phase_fields()
        check(
            field in hints,
            f"--set {PHASES}.{phase}.FIELD",
            f"one of {', '.join(hints)}"
            + did_you_mean(name, [f"{PHASES}.{phase}.{f}" for f in hints]),
            field,
        )
        value = _parse_value(raw, hints[field], f"--set {name}")
        if field in RECORD_FIELDS:
            resources.check_records(f"--set {PHASES}.{phase}", field, value)
        if field == "optimizer":
            check_choice(value, OPTIMIZERS, f"--set {name}")
        return Override(PHASES, (phase, field), value)
    hints = _hints(type(config))
    check(len(parts) == 1 and name in hints, "--set", _allowed(config, name), name)
    return Override("config", (name,), _parse_value(raw, hints[name], f"--set {name}"))


def phase_fields() -> dict[str, Any]:
    """What `phases.PHASE.FIELD` may name, with its type: the `PhaseSpec` fields an override may
    change, then the per-phase knobs (`PHASE_KNOBS`)."""
    hints = {f: t for f, t in _hints(PhaseSpec).items() if f not in FIXED_PHASE_FIELDS}
    return {**hints, **{k: float for k in PHASE_KNOBS}}


def model_fields() -> dict[str, Any]:
    """What `model.FIELD` may name, with its type (`SIZE_FIELDS`)."""
    hints = _hints(ModelConfig)
    return {field: hints[field] for field in SIZE_FIELDS}


def _hints(cls: type) -> dict[str, Any]:
    """A dataclass's fields and their (resolved) types."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _allowed(config: Any, name: str) -> str:
    """Every name `--set` knows, and the closest to the unknown `name`."""
    fields, world = list(_hints(type(config))), list(_hints(WorldKnobs))
    parts = name.split(".")
    phase = parts[1] if parts[0] == PHASES and len(parts) >= 3 else "PHASE"
    known = [*fields, *(f"{WORLD}.{f}" for f in world)]
    known += [f"{PHASES}.{phase}.{f}" for f in phase_fields()]
    known += [f"{MODEL}.{f}" for f in model_fields()]
    return (
        f"a config field ({', '.join(fields)}), {WORLD}.FIELD ({', '.join(world)}), "
        f"{PHASES}.PHASE.FIELD ({', '.join(phase_fields())}) or {MODEL}.FIELD "
        f"({', '.join(model_fields())}){did_you_mean(name, known)}"
    )


def _parse_value(raw: str, hint: Any, field: str) -> Any:
    """`raw` parsed to the type `hint` (bool, int, float, str, tuples of them, optionals)."""
    raw = raw.strip()
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if raw.lower() == "none" and len(members) < len(args):
            return None
        scalars = [t for t in (float, int, bool, str) if t in members]
        check(bool(scalars), field, "a field the command line can set", raw)
        return _parse_value(raw, scalars[0], field)
    if origin is tuple:
        element = args[0] if args else str
        items = raw.split(",") if raw else []
        return tuple(_parse_value(item, element, field) for item in items)
    if hint is bool:
        check(raw.lower() in ("true", "false", "1", "0"), field, "true or false", raw)
        return raw.lower() in ("true", "1")
    if hint is int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{field} = {raw!r} is invalid: an integer") from None
        check(0 <= value <= MAX_INT, field, f"an integer in 0..{MAX_INT}", value)
        return value
    if hint is float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{field} = {raw!r} is invalid: a number") from None
        check(math.isfinite(value) and value >= 0, field, "a finite number >= 0", raw)
        return value
    if hint is str:
        return raw
    raise ConfigError(f"{field} = {raw!r} is invalid: a field the command line can set")


def apply_to_config(config: Any, overrides: Sequence[Override]) -> Any:
    """`config` with its `FIELD=VALUE` overrides (its own validation runs again)."""
    changes = {o.path[0]: o.value for o in overrides if o.target == "config"}
    return dataclasses.replace(config, **changes) if changes else config


def history_overrides(overrides: Sequence[Override]) -> tuple[Override, ...]:
    return tuple(o for o in overrides if o.target != "config")


def record(overrides: Sequence[Override]) -> dict[str, Any]:
    """The overrides as {name: value}, for a report's config."""
    return {o.name: o.value for o in overrides}


@dataclasses.dataclass(frozen=True)
class OverriddenBuild:
    """A sweep's `build` with history overrides applied to every (spec, knobs) it returns."""

    build: Any
    overrides: tuple[Override, ...]

    def __call__(self, **point) -> tuple[Any, Any]:
        spec, knobs = self.build(**point)
        return override_history(spec, knobs, self.overrides)


def override_history(
    spec: HistorySpec, knobs: Knobs, overrides: Sequence[Override]
) -> tuple[HistorySpec, Knobs]:
    """One history's (spec, knobs) with `world.`, `phases.` and `model.` overrides applied and
    checked (a `model.` field of another model family than the history's is left alone)."""
    if not overrides:
        return spec, knobs
    check(
        isinstance(spec, HistorySpec) and isinstance(knobs, Knobs),
        f"--set {overrides[0].name}",
        f"an override of HistorySpec histories (this experiment's are {type(spec).__name__})",
        overrides[0].value,
    )
    world, rates, changes, sizes = {}, dict(knobs.learning_rate), {}, {}
    for o in overrides:
        if o.target == WORLD:
            world[o.path[0]] = o.value
            continue
        if o.target == MODEL:
            if SIZE_FIELDS[o.path[0]] == spec.model.kind:
                sizes[o.path[0]] = o.value
            continue
        phase, field = o.path
        known = [f"{PHASES}.{p}.{field}" for p in spec.phase_names]
        check(
            phase in spec.phase_names,
            f"--set {o.name}",
            _phases(spec) + did_you_mean(o.name, known),
            phase,
        )
        if field in PHASE_KNOBS:
            check(o.value > 0, f"--set {o.name}", "a positive learning rate", o.value)
            check(
                o.value <= float(np.finfo(np.float32).max),
                f"--set {o.name}",
                "a learning rate float32 holds (at most 3.4e+38)",
                o.value,
            )
            rates[phase] = np.float32(o.value)
        else:
            changes.setdefault(phase, {})[field] = o.value
    for phase, fields in changes.items():
        _check_decay(spec.phase(phase), fields)
        spec = with_phase(spec, phase, **fields)
    if sizes:
        spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, **sizes))
    knobs = dataclasses.replace(
        knobs, learning_rate=rates, world=dataclasses.replace(knobs.world, **world).validate()
    )
    return spec, knobs


def _check_decay(phase: PhaseSpec, changes: Mapping[str, Any]) -> None:
    """Refuse a weight decay the phase's optimizer (after the overrides) would ignore, naming
    the `--set` that chooses one with a decay (every field of a phase is set at once, so the
    order of `--set phases.P.optimizer` and `--set phases.P.weight_decay` does not matter)."""
    optimizer = changes.get("optimizer", phase.optimizer)
    decay = changes.get("weight_decay", phase.weight_decay)
    check(
        decay == 0 or optimizer in DECAYING,
        f"--set {PHASES}.{phase.name}.weight_decay",
        decay_refusal(optimizer, f"--set {PHASES}.{phase.name}.optimizer="),
        decay,
    )


def _phases(spec: HistorySpec) -> str:
    return f"a phase of every history ({', '.join(spec.phase_names)})"


def apply_to_sweeps(sweeps: Mapping[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """Every history sweep with its `build` wrapped by the history overrides, after checking
    that none overrides what the sweep's own axes vary (each grid point is built once to check).
    Sweeps of other runs (e.g. metastability's Langevin wells) are kept as they are; an
    experiment with no history sweep at all refuses the overrides in one line."""
    chosen = history_overrides(overrides)
    if not chosen:
        return dict(sweeps)
    out, histories, kinds = dict(sweeps), 0, set()
    for label, sweep in sweeps.items():
        built = [sweep.build(**p, **b) for p in sweep.points() for b in sweep.branch_points()]
        if not isinstance(built[0][0], HistorySpec):
            continue
        histories += 1
        kinds |= {spec.model.kind for spec, _ in built}
        for spec, knobs in built:
            _check_record_counts(spec, override_history(spec, knobs, chosen)[0], chosen)
        for o in chosen:
            check(
                len({_current(spec, knobs, o) for spec, knobs in built}) <= 1,
                f"--set {o.name}",
                f"a field that sweep {label} does not vary (its axes: "
                f"{', '.join(a.name for a in sweep.all_axes)}); set the experiment's config",
                o.value,
            )
        out[label] = dataclasses.replace(sweep, build=OverriddenBuild(sweep.build, chosen))
    if not histories:
        override_history(*built[0], chosen)  # refuses: names the experiment's spec type
    for o in (o for o in chosen if o.target == MODEL):
        family = SIZE_FIELDS[o.path[0]]
        check(
            family in kinds,
            f"--set {o.name}",
            f"a field of a model this experiment runs ({', '.join(sorted(kinds))}); "
            f"{o.path[0]} is the {family}'s",
            o.value,
        )
    return out


def _check_record_counts(before: HistorySpec, after: HistorySpec, overrides) -> None:
    """Refuse phase overrides that change how many steps a phase records: experiments read
    their metrics against their own config's record steps, so a changed count would fail only
    after the whole run (a changed schedule of the same length is allowed; see docs/usage.md)."""
    for old, new in zip(before.phases, after.phases, strict=True):
        count = len(old.record_steps)
        names = [o.name for o in overrides if o.target == PHASES and o.path[0] == old.name]
        check(
            len(new.record_steps) == count,
            f"--set {' '.join(names)}",
            f"values that keep the {old.name} phase's number of recorded steps ({count}), "
            "which this experiment's analysis assumes",
            len(new.record_steps),
        )


def _current(spec: Any, knobs: Any, override: Override) -> Any:
    """The value a history has for an override's field before it is applied (hashable)."""
    if override.target == WORLD:
        return float(np.asarray(getattr(knobs.world, override.path[0])).ravel()[0])
    if override.target == MODEL:
        return getattr(spec.model, override.path[0])
    phase, field = override.path
    if field in PHASE_KNOBS:
        return float(np.asarray(knobs.learning_rate[phase]).ravel()[0])
    return getattr(spec.phase(phase), field)


RESOLUTION_ERRORS = (ValueError, TypeError, KeyError, IndexError, ArithmeticError)
"""What an experiment's own code may raise on a value it cannot use, while its config is checked
or its sweeps are built: with overrides given, these end in one line naming them (without, they
are a bug and propagate)."""


@contextlib.contextmanager
def _named_in_one_line(settings: Sequence[str]):
    """Turn an experiment's own error on overridden values into one line naming the `--set`s."""
    try:
        yield
    except ConfigError:
        raise
    except RESOLUTION_ERRORS as error:
        if not settings:
            raise
        message = f"{type(error).__name__}: {error}"
        raise ConfigError(f"--set {' '.join(settings)!r} is invalid: {message}") from None


@dataclasses.dataclass(frozen=True)
class Parsed:
    """What a command line asks for, parsed and checked once, with nothing built (JAX untouched,
    so the command line can still set JAX up): the experiment, its config (`--quick`, `--seeds`,
    then the `--set` fields), the overrides, and the `--set` texts they came from."""

    experiment: Any
    config: Any
    overrides: tuple[Override, ...]
    settings: tuple[str, ...] = ()

    def resolve(self, memory_limit: int | None = None) -> Prepared:
        """The run prepared once (`gravity.run.experiment.prepare`: `sweeps(config)` called once,
        every grid point built once, history overrides applied), checked before anything is
        planned or compiled: every grid point's (spec, knobs), and the estimated memory of the
        sweeps with the bounds on steps, batch size and records (`gravity.run.resources`)."""
        from gravity.run.experiment import prepare  # it imports this module
        from gravity.run.sweep import plan_sweep

        with _named_in_one_line(self.settings):
            prepared = prepare(self.experiment, self.config, self.overrides)
            histories = prepared.n_histories
            check(histories >= 1, "config", "a config that runs at least one history", histories)
            resources.check_fits_memory(prepared.sweeps.values(), memory_limit)
            for sweep in prepared.sweeps.values():
                plan_sweep(sweep, 1)
        return prepared


def parse_command(
    experiment: Any, settings: Sequence[str] = (), *, quick: bool = False, seeds: int | None = None
) -> Parsed:
    """The config and overrides a command line asks for (`--quick`, `--seeds`, then `--set`),
    each value parsed and checked, the config built once."""
    config = experiment.make_config(quick=quick, seeds=seeds)
    overrides = parse(settings, config)
    with _named_in_one_line(settings):
        config = apply_to_config(config, overrides)
    return Parsed(experiment, config, overrides, tuple(settings))


def resolve(
    experiment: Any,
    settings: Sequence[str] = (),
    *,
    quick: bool = False,
    seeds: int | None = None,
    memory_limit: int | None = None,
) -> Prepared:
    """A command line's run, parsed (`parse_command`) and prepared once (`Parsed.resolve`): a
    `gravity.run.experiment.Prepared`."""
    return parse_command(experiment, settings, quick=quick, seeds=seeds).resolve(memory_limit)
