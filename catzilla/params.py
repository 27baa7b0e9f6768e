"""Parameter markers: `q: int = Query(10, ge=0)` says where a handler parameter comes from
and what it must satisfy. They are read once, when the route is registered."""
from __future__ import annotations

import typing

__all__ = ["Param", "Query", "Path", "Header", "Cookie", "Body", "Form", "File"]

Source = typing.Literal["query", "path", "header", "cookie", "body", "form", "file"]


class Param:
    __slots__ = (
        "source", "default", "alias", "description", "ge", "gt", "le", "lt",
        "min_length", "max_length", "pattern", "embed", "convert_underscores",
    )

    def __init__(
        self,
        source: Source,
        default: typing.Any = ...,
        *,
        alias: str | None = None,
        description: str | None = None,
        ge: float | None = None,
        gt: float | None = None,
        le: float | None = None,
        lt: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        embed: bool = False,
        convert_underscores: bool = True,
    ) -> None:
        self.source = source
        self.default = default
        self.alias = alias
        self.description = description
        self.ge, self.gt, self.le, self.lt = ge, gt, le, lt
        self.min_length, self.max_length = min_length, max_length
        self.pattern = pattern
        self.embed = embed
        self.convert_underscores = convert_underscores

    @property
    def required(self) -> bool:
        return self.default is ...

    def constraints(self) -> dict[str, typing.Any]:
        names = ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def __repr__(self) -> str:
        return f"{self.source.capitalize()}({self.default!r})"


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
