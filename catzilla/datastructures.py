"""Request-side containers: headers, query parameters, uploads, per-request state.

Each is built lazily from what the parser handed over, so a handler that never looks at
its headers never pays for them.
"""
from __future__ import annotations

import typing

from ._native import parse_query
from .headerparse import combine_field

__all__ = ["Address", "Headers", "QueryParams", "State", "UploadFile"]


class Address(typing.NamedTuple):
    host: str
    port: int


class MultiDict(typing.Mapping[str, str]):
    """An immutable mapping that remembers every value of a repeated key.

    `m[key]` and `m.get(key)` give the last value (as Starlette does), `getlist` all of them.
    """

    __slots__ = ("_list", "_dict")

    def __init__(self, items: typing.Iterable[tuple[str, str]] = ()) -> None:
        self._list = list(items)
        self._dict = dict(self._list)

    def __getitem__(self, key: str) -> str:
        return self._dict[key]

    def __iter__(self) -> typing.Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def getlist(self, key: str) -> list[str]:
        return [v for k, v in self._list if k == key]

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._list)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._list!r})"


class QueryParams(MultiDict):
    __slots__ = ()

    @classmethod
    def from_string(cls, query: str | bytes) -> "QueryParams":
        """`a=1&b=x+y` -> {"a": "1", "b": "x y"}, percent-decoded as UTF-8."""
        return cls(parse_query(query))


class Headers(typing.Mapping[str, str]):
    """Case-insensitive, read-only request headers; repeated fields stay available.

    The server builds both views as the header lines arrive (ext/headers.c): `items`, every
    field in order with its name lower-cased, and the map with repeated fields combined
    (RFC 9110 5.3; Cookie pairs joined with "; "). Built by hand, the map is derived once.
    """

    __slots__ = ("_items", "_map")

    def __init__(self, items: typing.Iterable[tuple[str, str]] | None = None,
                 mapping: dict[str, str] | None = None) -> None:
        self._items: list[tuple[str, str]] = list(items) if items is not None else []
        self._map = mapping

    @classmethod
    def from_mapping(cls, mapping: typing.Mapping[str, str]) -> "Headers":
        return cls(mapping.items())

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def _mapping(self) -> dict[str, str]:
        mapping = self._map
        if mapping is None:
            mapping = {}
            for name, value in self._items:
                combine_field(mapping, name.lower(), value)
            self._map = mapping
        return mapping

    def __getitem__(self, key: str) -> str:
        return self._mapping()[key.lower()]

    def get(self, key: str, default: typing.Any = None) -> typing.Any:  # type: ignore[override]
        return self._mapping().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._mapping()

    def __iter__(self) -> typing.Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())

    def getlist(self, key: str) -> list[str]:
        wanted = key.lower()
        return [value for name, value in self._items if name.lower() == wanted]

    def __repr__(self) -> str:
        return f"Headers({self._mapping()!r})"


class State:
    """Free-form attributes: a request's (`request.state`) or the app's (`app.state`).
    `State(mapping)` starts with a shallow copy of `mapping`'s items as attributes."""

    def __init__(self, state: typing.Mapping[str, typing.Any] | None = None) -> None:
        object.__setattr__(self, "_data", dict(state) if state else {})

    def __setattr__(self, name: str, value: typing.Any) -> None:
        self._data[name] = value

    def __getattr__(self, name: str) -> typing.Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"'State' has no attribute {name!r}") from None

    def __delattr__(self, name: str) -> None:
        try:
            del self._data[name]
        except KeyError:
            raise AttributeError(f"'State' has no attribute {name!r}") from None

    # Item access too: Catzilla 0.2.3's request.state was a dict (`request.state["user"]`).
    def __getitem__(self, name: str) -> typing.Any:
        return self._data[name]

    def __setitem__(self, name: str, value: typing.Any) -> None:
        self._data[name] = value

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def get(self, name: str, default: typing.Any = None) -> typing.Any:
        return self._data.get(name, default)

    def __repr__(self) -> str:
        return f"State({self._data!r})"


class UploadFile:
    """A file from a multipart form. The whole request body is already in memory, so `read`
    is synchronous and works the same in `def` and `async def` handlers."""

    __slots__ = ("filename", "content_type", "headers", "_data", "_position")

    def __init__(
        self, filename: str, data: bytes, content_type: str = "application/octet-stream",
        headers: Headers | None = None,
    ) -> None:
        self.filename = filename
        self.content_type = content_type
        self.headers = headers or Headers()
        self._data = data
        self._position = 0

    @property
    def size(self) -> int:
        return len(self._data)

    def read(self, size: int = -1) -> bytes:
        start = self._position
        end = len(self._data) if size is None or size < 0 else min(start + size, len(self._data))
        self._position = end
        return self._data[start:end]

    def seek(self, offset: int) -> None:
        self._position = max(0, min(offset, len(self._data)))

    def __repr__(self) -> str:
        return f"UploadFile(filename={self.filename!r}, size={self.size}, content_type={self.content_type!r})"
