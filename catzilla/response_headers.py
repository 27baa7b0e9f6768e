"""A response's header fields: a list of raw (name, value) pairs, so a field can repeat (two
`Set-Cookie` stay two), and `MutableHeaders`, the case-insensitive view Starlette users know.

The list is the response's own (`response.raw_headers`); the view only edits it. Names keep
the spelling they were given (HTTP field names are case-insensitive, RFC 9110 5.1); the view
compares and lists them lower-cased, as Starlette's does.
"""
from __future__ import annotations

import typing

from ._native import HeaderFields, headers_of, register_fields

__all__ = ["MutableHeaders", "RawHeaders", "headers_view", "raw_pairs", "field_value", "set_field", "remove_field",
           "add_vary"]

RawHeaders = list[tuple[bytes, bytes]]


def _raw(text: str | bytes) -> bytes:
    if type(text) is str:  # nearly always: no isinstance walk
        return text.encode("latin-1")
    return text if isinstance(text, bytes) else str(text).encode("latin-1")


# -- edits of a raw list, for middleware that knows its fields at start-up -----------------
# Middleware (CORS, GZip...) edits the list itself with pairs encoded once, when it is built:
# no view object, no str -> bytes per request. `name` arguments are lower-case bytes.


def field_value(fields: RawHeaders, name: bytes) -> bytes | None:
    """The first value of the field `name`, or None."""
    for field, value in fields:
        if field.lower() == name:
            return value
    return None


def set_field(fields: RawHeaders, pair: tuple[bytes, bytes]) -> None:
    """Set one field: the first of `pair`'s name takes its value, any others go."""
    wanted = pair[0].lower()
    for i, (name, _) in enumerate(fields):
        if name.lower() == wanted:
            fields[i] = pair
            rest = [field for field in fields[i + 1:] if field[0].lower() != wanted]
            if len(rest) != len(fields) - i - 1:
                fields[i + 1:] = rest
            return
    fields.append(pair)


def remove_field(fields: RawHeaders, name: bytes) -> bool:
    """Remove every field `name`; whether there was one."""
    kept = [pair for pair in fields if pair[0].lower() != name]
    if len(kept) == len(fields):
        return False
    fields[:] = kept
    return True


def add_vary(fields: RawHeaders, pair: tuple[bytes, bytes]) -> None:
    """Add the request field `pair[1]` names to Vary (`pair` is (b"Vary", field), encoded
    once), keeping what is there (RFC 9110 12.5.5); "*" already covers it."""
    for i, (name, value) in enumerate(fields):
        if name.lower() == b"vary":
            break
    else:
        fields.append(pair)
        return
    if not value:
        fields[i] = pair
        return
    present = {item.strip().lower() for item in value.split(b",")}
    if pair[1].lower() not in present and b"*" not in present:
        fields[i] = (name, value + b", " + pair[1])


def raw_pairs(headers: typing.Any) -> RawHeaders:
    """What a response constructor accepts as `headers=`: a mapping, a MutableHeaders, or an
    iterable of (name, value) pairs (str or bytes), as raw pairs in order."""
    if not headers:
        return []
    if type(headers) is dict:  # the usual `headers={...}`: no ABC checks
        try:
            return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        except AttributeError:  # a non-str name or value: the general path below
            pass
    if isinstance(headers, MutableHeaders):
        return list(headers.raw)
    items = headers.items() if isinstance(headers, typing.Mapping) else headers
    return [(_raw(name), _raw(value)) for name, value in items]


def set_item(view: "MutableHeaders", key: str, value: str) -> None:
    """`view[key] = value`: the first field of that name takes the value, any others go.
    (HeaderFields does it in C for str, what hooks nearly always give: this is the
    reference, and what it falls back on.)"""
    pair = (_raw(key), _raw(value))
    fields = view._list
    if fields:
        set_field(fields, pair)
    else:
        fields.append(pair)


def del_item(view: "MutableHeaders", key: str) -> None:
    """`del view[key]`: every field of that name goes."""
    if not remove_field(view._list, _raw(key).lower()):
        raise KeyError(key)


class MutableHeaders(HeaderFields, typing.MutableMapping[str, str]):
    """Case-insensitive view of a raw header list (starlette.datastructures.MutableHeaders).

    `headers[name]` is the first value; setting replaces every field of that name with one;
    `append` adds another field of the same name; `del` removes them all. The list is
    `_list` and setting and deleting are HeaderFields' (ext/fields.c: `set_item` and
    `del_item` below, in C)."""

    __slots__ = ()

    def __init__(self, headers: typing.Any = None, *, raw: RawHeaders | None = None) -> None:
        self._list: RawHeaders = raw if raw is not None else raw_pairs(headers)

    @property
    def raw(self) -> RawHeaders:
        return self._list

    def keys(self) -> list[str]:  # type: ignore[override]
        return [name.decode("latin-1").lower() for name, _ in self._list]

    def values(self) -> list[str]:  # type: ignore[override]
        return [value.decode("latin-1") for _, value in self._list]

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return [(name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in self._list]

    multi_items = items

    def getlist(self, key: str) -> list[str]:
        wanted = _raw(key).lower()
        return [value.decode("latin-1") for name, value in self._list if name.lower() == wanted]

    def __getitem__(self, key: str) -> str:
        wanted = _raw(key).lower()
        for name, value in self._list:
            if name.lower() == wanted:
                return value.decode("latin-1")
        raise KeyError(key)

    def get(self, key: str, default: typing.Any = None) -> typing.Any:  # type: ignore[override]
        # Without __getitem__'s KeyError: middleware asks for fields that are mostly absent.
        wanted = _raw(key).lower()
        for name, value in self._list:
            if name.lower() == wanted:
                return value.decode("latin-1")
        return default

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, (str, bytes)):
            return False
        wanted = _raw(key).lower()
        return any(name.lower() == wanted for name, _ in self._list)

    def __iter__(self) -> typing.Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._list)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MutableHeaders):
            return sorted(self.items()) == sorted(other.items())
        if isinstance(other, typing.Mapping):
            return dict(self.items()) == {str(k).lower(): v for k, v in other.items()}
        return NotImplemented

    def setdefault(self, key: str, value: str = "") -> str:  # type: ignore[override]
        """The value of `key`, set to `value` first when absent."""
        try:
            return self[key]
        except KeyError:
            self._list.append((_raw(key), _raw(value)))
            return value

    def append(self, key: str, value: str) -> None:
        """Add a field even if one of that name is there (Set-Cookie, Link, Vary...)."""
        self._list.append((_raw(key), _raw(value)))

    def update(self, other: typing.Any = (), /, **kwargs: str) -> None:  # type: ignore[override]
        items = other.items() if hasattr(other, "items") else other
        for key, value in items:
            self[key] = value
        for key, value in kwargs.items():
            self[key] = value

    def add_vary_header(self, vary: str) -> None:
        existing = self.get("vary")
        if existing is not None:
            vary = ", ".join([existing, vary])
        self["vary"] = vary

    def __reduce__(self) -> tuple[typing.Any, ...]:
        # (copy and pickle, as for the slotted class it was: the list is the state)
        return _over, (self._list,)

    def mutablecopy(self) -> "MutableHeaders":
        return MutableHeaders(raw=list(self._list))

    def __repr__(self) -> str:
        return f"MutableHeaders({self.items()!r})"


def _over(raw: RawHeaders) -> MutableHeaders:
    return MutableHeaders(raw=raw)


def _replace(response: typing.Any, headers: typing.Any) -> None:
    response.raw_headers = raw_pairs(headers)


# A response's `headers`: the view of its `raw_headers`; assigning a mapping replaces them.
# (headers_of: the view made in C, ext/fields.c; no frame on the path of every request a hook
# or middleware edits headers on.)
headers_view = property(headers_of, _replace, doc="The case-insensitive view of `raw_headers`.")

register_fields(MutableHeaders, set_item, del_item)
