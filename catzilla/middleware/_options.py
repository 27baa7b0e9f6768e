"""Checks on middleware options, so a mistake fails when the app starts instead of on some
later request (or never, silently allowing or refusing the wrong thing)."""
from __future__ import annotations

import typing

__all__ = ["strings", "integer", "boolean"]


def strings(name: str, value: typing.Iterable[str]) -> tuple[str, ...]:
    # A bare string is iterable too: allow_origins="https://a.com" would become 15 one-letter
    # origins. Refuse it rather than guess.
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a list of strings, not a single {type(value).__name__}: {value!r}")
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a list of strings, got {value!r}") from None
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} must contain strings only, got {item!r}")
    return items


def integer(name: str, value: int, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return value


def boolean(name: str, value: bool) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value
