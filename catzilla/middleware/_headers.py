"""Case-insensitive edits of a response's `headers`, a plain dict whose keys are spelled
however the handler spelled them ("content-type", "Content-Type", ...): a middleware that
sets a field must replace every spelling of it, or the response would carry it twice."""
from __future__ import annotations

import typing

__all__ = ["get_header", "set_header", "pop_header", "add_vary"]


def _keys(headers: typing.Mapping[str, str], name: str) -> list[str]:
    lowered = name.lower()
    return [key for key in headers if key.lower() == lowered]


def get_header(headers: typing.Mapping[str, str], name: str) -> str | None:
    keys = _keys(headers, name)
    return headers[keys[-1]] if keys else None


def set_header(headers: dict[str, str], name: str, value: str) -> None:
    for key in _keys(headers, name):
        del headers[key]
    headers[name] = value


def pop_header(headers: dict[str, str], name: str) -> str | None:
    value = None
    for key in _keys(headers, name):
        value = headers.pop(key)
    return value


def add_vary(headers: dict[str, str], field: str) -> None:
    """Add `field` to Vary, keeping what is there (RFC 9110 12.5.5); "*" already covers it."""
    if not headers:  # the usual response: no field to merge with, in any spelling
        headers["Vary"] = field
        return
    current = get_header(headers, "Vary")
    if not current:
        set_header(headers, "Vary", field)
        return
    present = {item.strip().lower() for item in current.split(",")}
    if field.lower() not in present and "*" not in present:
        set_header(headers, "Vary", f"{current}, {field}")
