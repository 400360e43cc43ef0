"""Validation shared by every config: one-line errors that name the field and what is allowed."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
    """A knob or config field outside what is allowed; the message names the field."""


def check(condition: bool, field: str, allowed: str, value: object) -> None:
    """Raise a one-line `ConfigError` naming `field` and what is allowed, unless `condition`."""
    if not condition:
        raise ConfigError(f"{field} = {value!r} is invalid: {allowed}")


def check_one_of(value: object, values: tuple, field: str, what: str) -> None:
    """Refuse a field that picks one of another field's values (`what` names them) unless it
    does."""
    check(value in values, field, f"one of {what} {values}", value)


def check_widths(hidden: tuple[int, ...], field: str) -> None:
    """Refuse a network's hidden widths unless they are a non-empty tuple of positive sizes."""
    check(
        len(hidden) >= 1 and all(w >= 1 for w in hidden),
        field,
        "a non-empty tuple of positive widths",
        hidden,
    )


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """ "; did you mean X?" for the valid name closest to a misspelt one (difflib), else ""."""
    if not isinstance(name, str):
        return ""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean {close[0]}?" if close else ""


def one_of(choices: Iterable[str], name: object = None) -> str:
    """ "one of A, B, C" and, for a misspelt `name`, the closest of them."""
    choices = list(choices)
    return f"one of {', '.join(choices)}{did_you_mean(name, choices)}"


def check_choice(name: object, choices: Iterable[str], field: str) -> None:
    """Refuse a name that is not among `choices`, in one line that lists them all and suggests
    the closest (an unknown experiment, phase, field, model ...)."""
    choices = list(choices)
    check(isinstance(name, str) and name in choices, field, one_of(choices, name), name)
