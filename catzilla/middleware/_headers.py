"""Case-insensitive edits of a response's `headers` (a MutableHeaders view over its raw
field list, catzilla.response_headers): setting a field replaces every spelling of it, so a
middleware never makes a response carry a field twice."""
from __future__ import annotations

import typing

__all__ = ["get_header", "set_header", "pop_header", "add_vary"]

Headers = typing.MutableMapping[str, str]


def get_header(headers: Headers, name: str) -> str | None:
    return headers.get(name)


def set_header(headers: Headers, name: str, value: str) -> None:
    headers[name] = value


def pop_header(headers: Headers, name: str) -> str | None:
    return headers.pop(name, None)


def add_vary(headers: Headers, field: str) -> None:
    """Add `field` to Vary, keeping what is there (RFC 9110 12.5.5); "*" already covers it."""
    current = headers.get("vary")
    if not current:
        headers["Vary"] = field
        return
    present = {item.strip().lower() for item in current.split(",")}
    if field.lower() not in present and "*" not in present:
        headers["Vary"] = f"{current}, {field}"
