"""Middleware that wraps the handling of a request: Starlette's `BaseHTTPMiddleware` shape.

    class Timing(BaseHTTPMiddleware):
        async def dispatch(self, request, call_next):
            response = await call_next(request)
            response.headers["x-took"] = "..."
            return response

    app.add_middleware(Timing)                     # or: @app.middleware("http")

`call_next(request)` runs the rest of the chain (inner middleware, hooks, the handler, or
the 404/405 answer) and returns its `Response`. Unlike Starlette's class of this name, no
extra task or memory stream is made per request: the chain is plain awaits, compiled once
at start-up, and context variables set inside are seen after.
"""
from __future__ import annotations

import typing

from ..request import Request
from ..responses import Response

__all__ = ["BaseHTTPMiddleware", "Middleware", "CallNext", "DispatchFunction"]

CallNext = typing.Callable[[Request], typing.Awaitable[Response]]
DispatchFunction = typing.Callable[[Request, CallNext], typing.Awaitable[Response]]


class BaseHTTPMiddleware:
    """Subclass and define `dispatch`, or pass `dispatch=` (what `@app.middleware("http")`
    does). `app` is the application it wraps, as in Starlette."""

    def __init__(self, app: typing.Any = None, dispatch: DispatchFunction | None = None) -> None:
        self.app = app
        if dispatch is not None:
            self.dispatch = dispatch  # type: ignore[method-assign]

    async def dispatch(self, request: Request, call_next: CallNext) -> Response:
        raise NotImplementedError("define dispatch(request, call_next), or pass dispatch=")


class Middleware:
    """A middleware class and its options, built when the app starts (Starlette's
    `Middleware(cls, **options)`, for `Catzilla(middleware=[...])`)."""

    def __init__(self, cls: type, *args: typing.Any, **options: typing.Any) -> None:
        self.cls, self.args, self.options = cls, args, options

    def build(self, app: typing.Any) -> BaseHTTPMiddleware:
        return self.cls(app, *self.args, **self.options)

    def __repr__(self) -> str:
        return f"Middleware({self.cls.__name__}, {self.options!r})"
