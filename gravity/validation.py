"""Validation shared by every config: one-line errors that name the field and what is allowed."""

from __future__ import annotations


class ConfigError(ValueError):
    """A knob or config field outside what is allowed; the message names the field."""


def check(condition: bool, field: str, allowed: str, value: object) -> None:
    """Raise a one-line `ConfigError` naming `field` and what is allowed, unless `condition`."""
    if not condition:
        raise ConfigError(f"{field} = {value!r} is invalid: {allowed}")
