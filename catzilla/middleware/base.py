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

A middleware that does something before the rest of the chain and something after it, and
awaits nothing itself, can say so by being a `PhasedMiddleware` (the built-in ones are):
`on_request` and `on_response` instead of `dispatch`. A chain of such middleware around
hooks and a handler that never suspend is then run as one plain function call (see
pipeline.py), with no coroutine per layer.
"""
from __future__ import annotations

import typing

from ..request import Request
from ..responses import Response

__all__ = ["BaseHTTPMiddleware", "PhasedMiddleware", "Middleware", "CallNext", "DispatchFunction"]

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


class PhasedMiddleware(BaseHTTPMiddleware):
    """A middleware in two synchronous halves around the rest of the chain:

        state = on_request(request)        # a Response answers here: the rest does not run
        response = on_response(request, await call_next(request), state)

    `dispatch` is exactly that, so the middleware also works wherever a `dispatch` is
    awaited; where the chain cannot suspend, pipeline.py calls the halves directly. A
    subclass that overrides `dispatch` is treated as any other middleware. An exception
    from the rest of the chain goes through, as from an `await call_next(...)` not caught."""

    def on_request(self, request: Request) -> typing.Any:
        """Before the rest of the chain: a Response to answer with, or the state that
        `on_response` gets."""
        return None

    def on_response(self, request: Request, response: Response, state: typing.Any) -> Response:
        """After it, with what `on_request` returned."""
        return response

    async def dispatch(self, request: Request, call_next: CallNext) -> Response:
        state = self.on_request(request)
        if isinstance(state, Response):
            return state
        return self.on_response(request, await call_next(request), state)

    @property
    def phases(self) -> "tuple[typing.Callable[[Request], typing.Any], typing.Any] | None":
        """(on_request, on_response or None when it does nothing) if the halves say all
        this middleware does, else None (its class, or the object, has its own dispatch)."""
        if type(self).dispatch is not PhasedMiddleware.dispatch or "dispatch" in vars(self):
            return None
        after = None if type(self).on_response is PhasedMiddleware.on_response else self.on_response
        return self.on_request, after


class Middleware:
    """A middleware class and its options, built when the app starts (Starlette's
    `Middleware(cls, **options)`, for `Catzilla(middleware=[...])`)."""

    def __init__(self, cls: type, *args: typing.Any, **options: typing.Any) -> None:
        self.cls, self.args, self.options = cls, args, options

    def build(self, app: typing.Any) -> BaseHTTPMiddleware:
        return self.cls(app, *self.args, **self.options)

    def __repr__(self) -> str:
        return f"Middleware({self.cls.__name__}, {self.options!r})"
