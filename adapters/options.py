"""Adapter-specific ``-o KEY=VALUE`` options arrive as strings: one parser for the pairs, and one reader for the
numeric ones, so every adapter refuses a bad value with the same clear message, before any weights are loaded or
connections opened."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from owleval.adapters.base import AdapterError
from owleval.errors import OwlEvalError

Number = TypeVar("Number", int, float)


def parse_option_pairs(pairs: list[str]) -> dict[str, str]:
    """The ``-o KEY=VALUE`` flags of a command as a dict (a later KEY wins)."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OwlEvalError(f"-o {pair!r}: expected KEY=VALUE")
        options[key.strip()] = value
    return options


def number_option(options: Mapping[str, str], key: str, default: Number, minimum: Number) -> Number:
    """``options[key]`` as a number of ``default``'s type (int or float), at least ``minimum``; ``default`` when
    the option is absent or empty."""
    raw = options.get(key)
    if raw is None or raw == "":
        return default
    kind = type(default)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a number"
        raise AdapterError(f"option {key}={raw!r} must be {what}") from None
    if not value >= minimum:  # also refuses nan
        raise AdapterError(f"option {key}={raw!r} must be at least {minimum}")
    return value
