"""Request-side containers: headers, query parameters, uploads, per-request state.

Each is built lazily from what the parser handed over, so a handler that never looks at
its headers never pays for them.
"""
from __future__ import annotations

import os
import shutil
import typing
import urllib.parse

from ._native import parse_query
from .headerparse import combine_field

__all__ = ["Address", "Headers", "QueryParams", "State", "UploadFile", "URL"]


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


class URL(str):
    """The request's URL: prints as `http://host/path?query` (a str, as it always was), with
    Starlette's parts as attributes."""

    _split: urllib.parse.SplitResult | None = None

    @classmethod
    def build(cls, scheme: str, netloc: str, path: str, query: str) -> "URL":
        """From parts already known (the request's own): `path` may hold a decoded `?` or
        `#` that parsing the text again would misread."""
        url = cls(f"{scheme}://{netloc}{path}?{query}" if query else f"{scheme}://{netloc}{path}")
        url._split = urllib.parse.SplitResult(scheme, netloc, path, query, "")
        return url

    @property
    def _parts(self) -> urllib.parse.SplitResult:
        split = self._split
        if split is None:
            split = self._split = urllib.parse.urlsplit(self)
        return split

    @property
    def scheme(self) -> str:
        return self._parts.scheme

    @property
    def netloc(self) -> str:
        return self._parts.netloc

    @property
    def path(self) -> str:
        return self._parts.path

    @property
    def query(self) -> str:
        return self._parts.query

    @property
    def fragment(self) -> str:
        return self._parts.fragment

    @property
    def hostname(self) -> str | None:
        return self._parts.hostname

    @property
    def port(self) -> int | None:
        try:
            return self._parts.port
        except ValueError:  # a Host header the client made up
            return None

    @property
    def is_secure(self) -> bool:
        return self.scheme in ("https", "wss")

    def replace(self, *args: typing.Any, **parts: str) -> "URL | str":  # type: ignore[override]
        """Starlette's: a copy with some of scheme, netloc, path, query, fragment changed.
        With positional arguments, str.replace (the URL was a plain str before)."""
        if args:
            return str.replace(self, *args)
        return URL(urllib.parse.urlunsplit(self._parts._replace(**parts)))

    def __repr__(self) -> str:
        return f"URL({str(self)!r})"


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

    # Single-field look-ups are the cheap way in: one dict look-up in the map the server
    # built, no copy made. Names are looked up as given first (code spells them in lower
    # case, as the map holds them), then lower-cased.

    def __getitem__(self, key: str) -> str:
        mapping = self._map
        if mapping is None:
            mapping = self._mapping()
        value = mapping.get(key)
        return value if value is not None else mapping[key.lower()]

    def get(self, key: str, default: typing.Any = None) -> typing.Any:  # type: ignore[override]
        """The field `key` (any case; repeated fields combined), or `default`."""
        mapping = self._map
        if mapping is None:
            mapping = self._mapping()
        value = mapping.get(key)
        return value if value is not None else mapping.get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        mapping = self._map
        if mapping is None:
            mapping = self._mapping()
        return isinstance(key, str) and (key in mapping or key.lower() in mapping)

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


class Ready:
    """A value that is also awaitable: `x` and `await x` give the same thing. Lets one method
    serve a `def` handler (Catzilla 0.2.3, the seed) and an `async def` one (Starlette)."""

    __slots__ = ()

    def __await__(self) -> typing.Generator[typing.Any, None, typing.Any]:
        return self
        yield  # pragma: no cover  (makes this a generator that never suspends)


class ReadyBytes(bytes, Ready):
    """Bytes that may be awaited (`await file.read()`), giving plain bytes."""

    __slots__ = ()

    def __await__(self) -> typing.Generator[typing.Any, None, bytes]:
        return bytes(self)
        yield  # pragma: no cover


class _ReadyNone(Ready):
    """What `seek`, `write` and `close` return: nothing, awaitable or not."""

    __slots__ = ()

    def __await__(self) -> typing.Generator[typing.Any, None, None]:
        return None
        yield  # pragma: no cover

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "None"


DONE = _ReadyNone()


class UploadFile:
    """A file from a multipart form (Starlette's UploadFile, names and all). Its bytes are in
    `file`: memory up to the spool size, a temporary file on disk beyond it. Every method
    works with and without `await` (`data = file.read()` in a `def` handler, `data = await
    file.read()` in an `async def` one); each runs at once, a read from disk included."""

    __slots__ = ("file", "filename", "size", "headers", "_content_type")

    def __init__(
        self, file: typing.BinaryIO, *, size: int | None = None, filename: str | None = None,
        headers: Headers | None = None, content_type: str | None = None,
    ) -> None:
        self.file = file
        self.filename = filename
        self.size = size
        self.headers = headers if headers is not None else Headers()
        self._content_type = content_type

    @property
    def content_type(self) -> str | None:
        if self._content_type is not None:
            return self._content_type
        return self.headers.get("content-type")

    @property
    def on_disk(self) -> bool:
        """Spooled to a temporary file (larger than the spool size)."""
        return getattr(self.file, "_rolled", True) is not False

    def read(self, size: int = -1) -> ReadyBytes:
        return ReadyBytes(self.file.read(-1 if size is None else size))

    def write(self, data: bytes) -> _ReadyNone:
        self.file.write(data)
        if self.size is not None:
            self.size += len(data)
        return DONE

    def seek(self, offset: int) -> _ReadyNone:
        self.file.seek(offset)
        return DONE

    def close(self) -> _ReadyNone:
        self.file.close()
        return DONE

    def save_to(self, path: "str | os.PathLike[str]", stream: bool = True) -> typing.Any:
        """Copy the whole upload to `path` (created or truncated), whatever has been read of
        it; in the kernel (copy_file_range) when the upload is on disk. `path` may be a
        directory: the file keeps its own name there, its last path component only (a
        client's "../x" cannot leave the directory). Returns the path written, a str that
        may also be awaited (Catzilla 0.2.3's `saved = file.save_to(dir, stream=True)`;
        `stream` is accepted for it: the copy never holds the whole file in memory)."""
        target = os.fspath(path)
        if os.path.isdir(target):
            name = os.path.basename((self.filename or "").replace("\\", "/"))
            if name in ("", ".", ".."):
                raise ValueError(f"upload {self.filename!r} has no file name to save under in {target}")
            target = os.path.join(target, name)
        self.file.seek(0)
        with open(target, "wb") as out:
            if not _copy_in_kernel(self.file, out):
                shutil.copyfileobj(self.file, out, COPY_CHUNK)
        self.file.seek(0)
        return ready(target)

    def __repr__(self) -> str:
        return f"UploadFile(filename={self.filename!r}, size={self.size}, headers={self.headers!r})"


# Bytes per read/write when an upload is copied in user space: large enough that a big
# file costs few system calls, small enough not to matter next to the spool.
COPY_CHUNK = 1024 * 1024


def _copy_in_kernel(source: typing.BinaryIO, out: typing.BinaryIO) -> bool:
    """copy_file_range between the upload's file and `out`: no bytes through Python. False
    (nothing copied) when the upload is still in memory, or the call is not available on
    this system or these files."""
    if getattr(source, "_rolled", True) is False or not hasattr(os, "copy_file_range"):
        return False  # a SpooledTemporaryFile still in memory: fileno() would roll it over
    offset = 0
    try:
        source_fd, target_fd = source.fileno(), out.fileno()
        while True:
            copied = os.copy_file_range(source_fd, target_fd, 1 << 30, offset, offset)
            if copied == 0:
                return True
            offset += copied
    except OSError:  # io.UnsupportedOperation included
        if offset:  # part of it went: finish in user space from there
            source.seek(offset)
            shutil.copyfileobj(source, out, COPY_CHUNK)
            return True
        return False


def _ready_type(base: type) -> type:
    """`base` with __await__ giving a plain `base` copy: a value a handler may use as it is
    (Catzilla 0.2.3's `request.json()`) or await (Starlette's `await request.json()`)."""
    def __await__(self: typing.Any) -> typing.Generator[typing.Any, None, typing.Any]:
        return base(self)
        yield  # pragma: no cover

    return type(f"Ready{base.__name__.capitalize()}", (base,), {"__slots__": (), "__await__": __await__})


class ReadyValue(Ready):
    """A JSON `true`, `false` or `null` that may be awaited: bool and None cannot be
    subclassed, so this stands in for them (equal to the value, and as true or false)."""

    __slots__ = ("value",)

    def __init__(self, value: typing.Any) -> None:
        self.value = value

    def __await__(self) -> typing.Generator[typing.Any, None, typing.Any]:
        return self.value
        yield  # pragma: no cover

    def __bool__(self) -> bool:
        return bool(self.value)

    def __eq__(self, other: object) -> bool:
        return self.value == other

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return repr(self.value)


_READY = {base: _ready_type(base) for base in (dict, list, str, int, float)}


def ready(value: typing.Any) -> typing.Any:
    """`value`, and awaitable (see _ready_type)."""
    kind = _READY.get(type(value))
    return kind(value) if kind is not None else ReadyValue(value)
