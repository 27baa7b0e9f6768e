"""Parameter markers: `q: int = Query(10, ge=0)` or `q: Annotated[int, Query(ge=0)] = 10`
says where a handler parameter comes from and what it must satisfy; `Depends(fn)` says it is
what `fn` returns. They are read once, when the route is registered (FastAPI's
`fastapi.params`)."""
from __future__ import annotations

import re
import typing

__all__ = ["Param", "Query", "Path", "Header", "Cookie", "Body", "Form", "File", "Depends"]

Source = typing.Literal["query", "path", "header", "cookie", "body", "form", "file"]

# The constraints a marker may carry, as msgspec.Meta spells them (and FastAPI does).
CONSTRAINTS = ("ge", "gt", "le", "lt", "multiple_of", "min_length", "max_length", "pattern")


class Param:
    __slots__ = (
        "source", "default", "alias", "title", "description", "ge", "gt", "le", "lt", "multiple_of",
        "min_length", "max_length", "pattern", "embed", "convert_underscores", "media_type",
        "examples", "deprecated", "include_in_schema", "max_size", "max_files", "allowed_types",
    )

    def __init__(
        self,
        source: Source,
        default: typing.Any = ...,
        *,
        alias: str | None = None,
        title: str | None = None,
        description: str | None = None,
        ge: float | None = None,
        gt: float | None = None,
        le: float | None = None,
        lt: float | None = None,
        multiple_of: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        regex: str | None = None,  # FastAPI's older name for pattern
        embed: bool = False,
        convert_underscores: bool = True,
        media_type: str | None = None,
        examples: list[typing.Any] | None = None,
        example: typing.Any = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        max_size: int | str | None = None,
        max_files: int | None = None,
        allowed_types: typing.Sequence[str] | None = None,
    ) -> None:
        self.source = source
        self.default = default
        self.alias = alias
        self.title = title
        self.description = description
        self.ge, self.gt, self.le, self.lt, self.multiple_of = ge, gt, le, lt, multiple_of
        self.min_length, self.max_length = min_length, max_length
        self.pattern = pattern if pattern is not None else regex
        self.embed = embed
        self.convert_underscores = convert_underscores
        self.media_type = media_type
        self.examples = examples if examples is not None else ([example] if example is not None else None)
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        # An upload's own limits (File() only, Catzilla 0.2.3's keywords): bytes per file,
        # files per parameter, media types taken; checked once the form is parsed.
        if (max_size is not None or max_files is not None or allowed_types is not None) and source != "file":
            raise TypeError("max_size=, max_files= and allowed_types= are File() keywords")
        self.max_size = parse_size(max_size) if max_size is not None else None
        if max_files is not None and (isinstance(max_files, bool) or not isinstance(max_files, int)
                                      or max_files < 1):
            raise ValueError(f"max_files is a number of files >= 1, got {max_files!r}")
        self.max_files = max_files
        self.allowed_types = frozenset(t.lower() for t in allowed_types) if allowed_types is not None else None

    @property
    def required(self) -> bool:
        return self.default is ...

    def constraints(self) -> dict[str, typing.Any]:
        return {name: getattr(self, name) for name in CONSTRAINTS if getattr(self, name) is not None}

    def __repr__(self) -> str:
        return f"{self.source.capitalize()}({self.default!r})"


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)B?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}


def parse_size(size: int | str) -> int:
    """Bytes from `1048576` or Catzilla 0.2.3's `"1MB"` (units of 1024, as there)."""
    if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
        return size
    match = _SIZE.fullmatch(size.strip()) if isinstance(size, str) else None
    if match is None:
        raise ValueError(f"a size is bytes >= 0 or a string such as '50MB', got {size!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _marker(source: Source) -> typing.Callable[..., typing.Any]:
    def marker(default: typing.Any = ..., **options: typing.Any) -> typing.Any:
        return Param(source, default, **options)

    marker.__name__ = marker.__qualname__ = source.capitalize()
    marker.__doc__ = f"The parameter comes from the request's {source}; `...` means required."
    return marker


Query = _marker("query")
Path = _marker("path")
Header = _marker("header")
Cookie = _marker("cookie")
Body = _marker("body")
Form = _marker("form")
File = _marker("file")


class Depends:
    """`Depends(fn)`: the parameter is what `fn` returns (or yields), `fn`'s own parameters
    bound from the request like a handler's. Called once per request however many times it
    is used, unless `use_cache=False`. `Depends("name")` (Catzilla 0.2.3) is the service
    called `name` in the app's container (see catzilla.dependencies.set_service_resolver)."""

    __slots__ = ("dependency", "use_cache")

    def __init__(self, dependency: typing.Callable[..., typing.Any] | str | None = None, *,
                 use_cache: bool = True) -> None:
        self.dependency = dependency
        self.use_cache = use_cache

    def __repr__(self) -> str:
        name = self.dependency if isinstance(self.dependency, str) else \
            getattr(self.dependency, "__name__", type(self.dependency).__name__)
        return f"Depends({name}{'' if self.use_cache else ', use_cache=False'})"
