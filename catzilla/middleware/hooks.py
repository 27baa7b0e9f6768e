"""`ZeroAllocMiddleware`: Catzilla 0.2.3's object for registering hook middleware, kept so
its apps import and run; every hook it registers is an ordinary app hook (see
`Scope.middleware`)."""
from __future__ import annotations

import typing

__all__ = ["ZeroAllocMiddleware"]


class ZeroAllocMiddleware:
    def __init__(self, app: typing.Any) -> None:
        self.app = app

    def middleware(self, priority: int = 50, pre_route: bool = True, post_route: bool = False,
                   name: str | None = None) -> typing.Callable[[typing.Any], typing.Any]:
        """`@mw.middleware(priority=10)`: the same as `@app.middleware(priority=10)`."""
        return self.app.middleware(priority=priority, pre_route=pre_route, post_route=post_route, name=name)

    def get_stats(self) -> dict[str, typing.Any]:
        return self.app.get_middleware_stats()
