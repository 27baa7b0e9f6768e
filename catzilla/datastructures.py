"""Request-side containers: headers, query parameters, uploads, per-request state.

Each is built lazily from what the parser handed over, so a handler that never looks at
its headers never pays for them.
"""
from __future__ import annotations

import typing
from urllib.parse import unquote_plus

__all__ = ["Address", "Headers", "QueryParams", "State", "UploadFile", "parse_query"]


class Address(typing.NamedTuple):
    host: str
    port: int


def parse_query(query: str) -> list[tuple[str, str]]:
    """`a=1&b=x+y&a=2` -> [("a", "1"), ("b", "x y"), ("a", "2")]; blank values kept."""
    pairs = []
    for field in query.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "%" in field or "+" in field:
            name, value = unquote_plus(name), unquote_plus(value)
        pairs.append((name, value))
    return pairs


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
    def from_string(cls, query: str) -> "QueryParams":
        return cls(parse_query(query))


class Headers(typing.Mapping[str, str]):
    """Case-insensitive, read-only request headers; repeated fields stay available."""

    __slots__ = ("_raw", "_dict")

    def __init__(self, raw: list[tuple[bytes, bytes]] | None = None) -> None:
        self._raw: list[tuple[bytes, bytes]] = raw if raw is not None else []
        self._dict: dict[str, str] | None = None

    @classmethod
    def from_mapping(cls, mapping: typing.Mapping[str, str]) -> "Headers":
        return cls([(k.encode("latin-1"), v.encode("latin-1")) for k, v in mapping.items()])

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        return self._raw

    def _mapping(self) -> dict[str, str]:
        mapping = self._dict
        if mapping is None:
            mapping = {}
            for name, value in self._raw:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                # RFC 9110 5.3: repeated fields combine into one comma-separated list.
                mapping[key] = f"{mapping[key]}, {text}" if key in mapping else text
            self._dict = mapping
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
        wanted = key.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self._raw if k.lower() == wanted]

    def __repr__(self) -> str:
        return f"Headers({self._mapping()!r})"


class State:
    """Free-form attributes a handler or middleware hangs on a request."""

    def __init__(self) -> None:
        object.__setattr__(self, "_data", {})

    def __setattr__(self, name: str, value: typing.Any) -> None:
        self._data[name] = value

    def __getattr__(self, name: str) -> typing.Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"'State' has no attribute {name!r}") from None

    def __delattr__(self, name: str) -> None:
        del self._data[name]


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
